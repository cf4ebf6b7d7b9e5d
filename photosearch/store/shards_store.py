"""Shard bookkeeping and ingest from Parquet shards, and remembered skips.

A part of :class:`photosearch.store.catalog.Catalog` (which opens the connection and
keeps ``self.con`` and the ``_dirty`` flag of the running transaction).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import numpy as np


from photosearch.store.records import PHOTO_COLUMNS, FaceRow


class ShardsStore:
    """Shard bookkeeping and ingest from Parquet shards, and remembered skips."""

    con: Any
    _dirty: bool

    # -- shards -------------------------------------------------------------------------------

    def paths_by_ids(self, ids: Sequence[int]) -> dict[int, str]:
        """Photo paths by id (unknown ids are absent)."""
        if not len(ids):
            return {}
        return dict(self.con.execute("SELECT id, path FROM photos WHERE id IN (SELECT unnest(?::BIGINT[]))",
                                     [[int(i) for i in ids]]).fetchall())

    def reserve_photo_ids(self, n: int) -> list[int]:
        """Reserve ``n`` new photo ids from the catalog's sequence."""
        return [r[0] for r in self.con.execute("SELECT nextval('photo_id_seq') FROM range(?)", [n]).fetchall()]

    def next_shard_number(self) -> int:
        """The number after the highest recorded shard's (0 when none)."""
        row = self.con.execute("SELECT max(CAST(substr(name, 7) AS INTEGER)) FROM shards").fetchone()
        return 0 if row[0] is None else int(row[0]) + 1

    def add_shard(self, name: str, photos: int, paths: list[str]) -> None:
        """Record a new manifest shard, not yet ingested, and the paths it holds."""
        self.con.execute("INSERT INTO shards VALUES (?, ?, ?, now(), NULL)", [name, photos, paths])

    def pending_shard_paths(self) -> set[str]:
        """Paths in shards that are not ingested yet."""
        rows = self.con.execute("SELECT unnest(paths) FROM shards WHERE ingested_at IS NULL").fetchall()
        return {r[0] for r in rows}

    def uningested_shards(self) -> list[str]:
        """Names of the shards not ingested yet, sorted."""
        return [r[0] for r in self.con.execute("SELECT name FROM shards WHERE ingested_at IS NULL ORDER BY name").fetchall()]

    def mark_shard_ingested(self, name: str) -> None:
        """Mark a shard as ingested now."""
        self.con.execute("UPDATE shards SET ingested_at = now() WHERE name = ?", [name])

    def plan_listing(self, listing: Any, roots: Sequence[str], model: str,
                     face_model: str | None) -> tuple[Any, list[int]]:
        """The coordinator's diff, in SQL (a 100M-file walk never becomes Python dicts).

        ``listing`` is an Arrow table (path, size, mtime_ns) of every file walked under ``roots``.
        Returns (the listing's rows that need embedding: new, changed, or unchanged but missing a
        vector of ``model``, hashes or a scan by ``face_model``; neither pending in a shard nor an
        unchanged file known to be unusable) and the ids of cataloged photos under ``roots`` whose
        path was not walked (gone: moved or removed, decided after ingest)."""
        self.con.register("_listing", listing)
        try:
            todo = self.con.sql(
                "SELECT l.path, l.size, l.mtime_ns FROM _listing l "
                "LEFT JOIN photos p ON p.path = l.path AND p.size = l.size AND p.mtime_ns = l.mtime_ns "
                "LEFT JOIN (SELECT unnest(paths) AS path FROM shards WHERE ingested_at IS NULL) s ON s.path = l.path "
                "WHERE s.path IS NULL "
                "AND NOT EXISTS (SELECT 1 FROM shard_skips k WHERE k.path = l.path AND k.size = l.size "
                "                AND k.mtime_ns = l.mtime_ns) "
                "AND (p.id IS NULL "
                "     OR NOT EXISTS (SELECT 1 FROM embeddings e WHERE e.photo_id = p.id AND e.model = ?) "
                "     OR NOT EXISTS (SELECT 1 FROM image_hashes h WHERE h.photo_id = p.id) "
                "     OR (CAST(? AS VARCHAR) IS NOT NULL AND NOT EXISTS "
                "         (SELECT 1 FROM face_scans f WHERE f.photo_id = p.id AND f.model = ?))) "
                "ORDER BY l.path", params=[model, face_model, face_model]).to_arrow_table()
            gone: list[int] = []
            for root in roots:
                prefix = root.rstrip(os.sep) + os.sep
                gone += [r[0] for r in self.con.execute(
                    "SELECT p.id FROM photos p WHERE (starts_with(p.path, ?) OR p.path = ?) "
                    "AND NOT EXISTS (SELECT 1 FROM _listing l WHERE l.path = p.path)", [prefix, root]).fetchall()]
        finally:
            self.con.unregister("_listing")
        return todo, sorted(set(gone))

    def ingest_shard(self, out: str, model: str,
                     exists: Callable[[str], bool] = os.path.exists) -> dict[str, Any]:
        """Add one embedded output shard (Parquet, read by DuckDB) to the catalog, as the pipeline
        indexer would: a path cataloged with the same bytes keeps its row (missing vectors,
        hashes and faces are filled in); a changed file replaces its row; bytes of a cataloged
        photo whose file is gone are a move (the row, its vectors, faces, people and decisions
        follow the file); everything else is a new photo under its reserved id.

        Returns {"added", "refreshed", "moved", "faces", "skipped": [{"path", "reason"}]}."""
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        self._dirty = True
        table = pq.read_table(out)
        skipped = table.filter(pc.invert(pc.is_null(table.column("skip"))))
        table = table.filter(pc.is_null(table.column("skip")))
        # The joins read the shard file itself; vectors and faces come from the Arrow table.
        literal = str(out).replace("'", "''")
        self.con.execute(f"CREATE OR REPLACE TEMP VIEW _shard AS SELECT * FROM read_parquet('{literal}') "
                         "WHERE skip IS NULL")
        try:
            # Same path, same bytes: the cataloged row stays (a refresh, or a touched file).
            same: dict[int, int] = {}
            for new_id, old_id, size, mtime in self.con.execute(
                    "SELECT s.id, p.id, s.size, s.mtime_ns FROM _shard s JOIN photos p ON p.path = s.path "
                    "AND p.content_hash = s.content_hash").fetchall():
                same[new_id] = old_id
                self.touch_photo(old_id, size, mtime)
            # Same path, other bytes: the file changed; its old row goes.
            self.delete_photos([r[0] for r in self.con.execute(
                "SELECT p.id FROM _shard s JOIN photos p ON p.path = s.path "
                "AND p.content_hash <> s.content_hash").fetchall()])
            # Bytes cataloged under another path that no longer exists: a move.
            moved: dict[int, int] = {}
            claimed: set[int] = set()
            for new_id, old_id, old_path, path, size, mtime in self.con.execute(
                    "SELECT s.id, p.id, p.path, s.path, s.size, s.mtime_ns FROM _shard s "
                    "JOIN photos p ON p.content_hash = s.content_hash AND p.path <> s.path "
                    "ORDER BY s.id, p.id").fetchall():
                if new_id in same or new_id in moved or old_id in claimed or exists(old_path):
                    continue
                self.move_photo(old_id, path, size, mtime)
                moved[new_id] = old_id
                claimed.add(old_id)
            keep = sorted(set(same) | set(moved))
            cols = ", ".join(PHOTO_COLUMNS)
            self.con.execute(
                f"INSERT INTO photos (id, {cols}, indexed_at) SELECT id, {cols}, now() FROM _shard "
                "WHERE NOT list_contains(?::BIGINT[], id)", [keep])
            target = {**{i: i for i in table.column("id").to_pylist()}, **same}  # new id -> catalog id
            for new_id in moved:
                target.pop(new_id)  # a moved photo keeps what it had
            ids = np.asarray(table.column("id").to_numpy(), np.int64)
            pick = np.array([i in target for i in ids.tolist()], bool)
            if pick.any():
                # Only the rows filled in place can have them already: ask about those ids alone
                # (loading every id of a 100M catalog per shard would make ingest quadratic).
                have_vec = self._having("embeddings", list(same.values()), model)
                have_hash = self._having("image_hashes", list(same.values()))
                vec = table.column("vector").combine_chunks()
                flat = np.asarray(vec.flatten().to_numpy(zero_copy_only=False), np.float32)
                vectors = flat.reshape(len(ids), vec.type.list_size)
                dest = np.array([target.get(i, -1) for i in ids.tolist()], np.int64)
                want_vec = pick & np.array([d not in have_vec for d in dest.tolist()], bool)
                self.add_embeddings(model, dest[want_vec], vectors[want_vec])
                want_hash = [k for k in np.flatnonzero(pick) if dest[k] not in have_hash]
                if want_hash:
                    h = table.select(["phash", "dhash", "content_width", "content_height"]).take(want_hash).to_pylist()
                    self.add_hashes([(int(dest[k]), r["phash"], r["dhash"], r["content_width"], r["content_height"])
                                     for k, r in zip(want_hash, h)])
            faces = self._ingest_faces(table, target)
            self._ingest_takeout(table, target, same)
        finally:
            self.con.execute("DROP VIEW IF EXISTS _shard")
        self.con.execute("DELETE FROM shard_skips WHERE path IN (SELECT path FROM read_parquet(?))", [out])
        self.con.execute("INSERT INTO shard_skips SELECT path, size, mtime_ns, skip FROM read_parquet(?) "
                         "WHERE skip IS NOT NULL", [out])
        return {"added": table.num_rows - len(same) - len(moved), "refreshed": len(same), "moved": len(moved),
                "faces": faces,
                "skipped": [{"path": p, "reason": r} for p, r in zip(skipped.column("path").to_pylist(),
                                                                     skipped.column("skip").to_pylist())]}

    def _having(self, table: str, ids: Sequence[int], model: str | None = None) -> set[int]:
        """Those of ``ids`` with a row in ``table`` (for ``model``, if given)."""
        if not ids:
            return set()
        extra = " AND model = ?" if model is not None else ""
        return {r[0] for r in self.con.execute(
            f"SELECT photo_id FROM {table} WHERE photo_id IN (SELECT unnest(?::BIGINT[])){extra}",
            [[int(i) for i in ids]] + ([model] if model is not None else [])).fetchall()}

    def _ingest_faces(self, table: Any, target: dict[int, int]) -> int:
        """Faces of a shard's photos (those not yet scanned by the shard's face model)."""
        if "faces" not in table.column_names:
            return 0
        found = 0
        scanned: dict[str, set[int]] = {}
        batches: dict[str, list[tuple[int, list[FaceRow]]]] = {}
        rows = table.select(["id", "faces", "face_model"]).to_pylist()
        for r in rows:
            dest = target.get(r["id"])
            model = r["face_model"]
            if dest is None or model is None or r["faces"] is None:
                continue
            if model not in scanned:
                scanned[model] = self._having("face_scans", list(target.values()), model)
            if dest in scanned[model]:
                continue  # already scanned: keep its faces, people and rejections
            faces = [FaceRow(box=(f["x"], f["y"], f["w"], f["h"]), score=f["score"],
                             vector=None if f["vector"] is None else np.asarray(f["vector"], np.float32),
                             model=model if f["source"] == "detected" else None, source=f["source"],
                             region_name=f["region_name"]) for f in r["faces"]]
            for face in faces:
                if face.region_name:  # named by a region in the file: that person (created if new)
                    person = self.person_by_name(face.region_name)
                    face.person_id = person["id"] if person else self.create_person(face.region_name)
                    face.assigned = "file"
            batches.setdefault(model, []).append((dest, faces))
            found += sum(1 for f in faces if f.vector is not None)
        for model, scans in batches.items():
            self.add_face_scans(model, scans)
        return found

    def _ingest_takeout(self, table: Any, target: dict[int, int], same: dict[int, int]) -> None:
        if "takeout" not in table.column_names:
            return
        import json

        from photosearch.media.takeout import TakeoutInfo

        for r in table.select(["id", "takeout"]).to_pylist():
            dest = target.get(r["id"])
            if r["takeout"] is None or dest is None or r["id"] in same:
                continue
            d = json.loads(r["takeout"])
            taken = datetime.fromisoformat(d["taken_at"]) if d.get("taken_at") else None
            self.set_takeout(dest, TakeoutInfo(json_path=d["json_path"], taken_at=taken, gps_lat=d.get("gps_lat"),
                                               gps_lon=d.get("gps_lon"), description=d.get("description"),
                                               people=list(d.get("people") or [])))

    def shard_skips(self) -> dict[str, tuple[int, int]]:
        """Files remembered as unusable, as path -> (size, mtime_ns)."""
        return {r[0]: (r[1], r[2]) for r in self.con.execute("SELECT path, size, mtime_ns FROM shard_skips").fetchall()}

    def remember_skips(self, rows: list[tuple[str, int, int, str]]) -> None:
        """Files that could not be used, as (path, size, mtime_ns, reason): not retried while unchanged."""
        if rows:
            self.con.executemany("INSERT OR REPLACE INTO shard_skips VALUES (?, ?, ?, ?)", rows)

    def forget_skips(self, paths: list[str]) -> None:
        """Forget the remembered skips of these paths, so they are tried again."""
        if paths:
            self.con.executemany("DELETE FROM shard_skips WHERE path = ?", [[p] for p in paths])

    def skipped_files(self) -> list[dict[str, Any]]:
        """Every remembered skip: path, size, mtime_ns, reason (by path)."""
        rows = self.con.execute("SELECT path, size, mtime_ns, reason FROM shard_skips ORDER BY path").fetchall()
        return [{"path": r[0], "size": r[1], "mtime_ns": r[2], "reason": r[3]} for r in rows]

