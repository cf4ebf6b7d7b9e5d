"""Photos, their embeddings and perceptual hashes, and the saved vector indexes' state.

A part of :class:`photosearch.store.catalog.Catalog` (which opens the connection and
keeps ``self.con`` and the ``_dirty`` flag of the running transaction).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

import numpy as np

from photosearch.files import text_path
from photosearch.store.records import (PHOTO_COLUMNS, SHOWN, TAGGED_SQL, FaceVectors, Filters, KnownFile, PhotoRecord,
                                       PhotoVectors, ids_and_vectors, photo_arrow_type, row_chunks)


class PhotosStore:
    """Photos, their embeddings and perceptual hashes, and the saved vector indexes' state."""

    con: Any
    _dirty: bool

    # -- photos ---------------------------------------------------------------------------

    def known_files(self) -> dict[str, KnownFile]:
        """Every cataloged file by path."""
        rows = self.con.execute("SELECT id, path, size, mtime_ns, content_hash FROM photos").fetchall()
        return {r[1]: KnownFile(*r) for r in rows}

    def insert_photos(self, records: Sequence[PhotoRecord], ids: Sequence[int | None] | None = None) -> list[int]:
        """Insert rows and return their ids (in order): ``ids`` where given (reserved with
        :meth:`reserve_photo_ids`), new ones from the sequence otherwise."""
        if not records:
            return []
        self._dirty = True
        given = list(ids) if ids is not None else [None] * len(records)
        fresh = iter([r[0] for r in self.con.execute(
            "SELECT nextval('photo_id_seq') FROM range(?)", [sum(1 for i in given if i is None)]
        ).fetchall()])
        ids = [int(i) if i is not None else next(fresh) for i in given]
        import pyarrow as pa

        # One registered Arrow table, not executemany (~4 ms a row, measured while indexing).
        values = [rec.values() for rec in records]
        table = pa.table({"id": pa.array(ids, pa.int64()),
                          **{c: pa.array([v[i] for v in values], photo_arrow_type(c))
                             for i, c in enumerate(PHOTO_COLUMNS)}})
        cols = ", ".join(("id",) + PHOTO_COLUMNS)
        self.con.register("_new_photos", table)
        try:
            self.con.execute(f"INSERT INTO photos ({cols}, indexed_at) SELECT {cols}, now() FROM _new_photos")
        finally:
            self.con.unregister("_new_photos")
        return ids

    def move_photo(self, photo_id: int, path: str, size: int, mtime_ns: int) -> None:
        """Record that a photo now lives at ``path``, with its new size and mtime."""
        self._dirty = True
        self.con.execute(
            "UPDATE photos SET path = ?, size = ?, mtime_ns = ? WHERE id = ?", [text_path(path), size, mtime_ns, photo_id]
        )

    def update_photo(self, photo_id: int, **fields: Any) -> None:
        """Set some catalog columns of one photo."""
        unknown = set(fields) - set(PHOTO_COLUMNS)
        if unknown:
            raise ValueError(f"unknown photo columns: {sorted(unknown)}")
        if fields:
            self._dirty = True
            sets = ", ".join(f"{k} = ?" for k in fields)
            self.con.execute(f"UPDATE photos SET {sets} WHERE id = ?", [*fields.values(), photo_id])

    def touch_photo(self, photo_id: int, size: int, mtime_ns: int) -> None:
        """Update a photo's recorded size and mtime."""
        self.con.execute("UPDATE photos SET size = ?, mtime_ns = ? WHERE id = ?", [size, mtime_ns, photo_id])

    def delete_photos(self, ids: Iterable[int]) -> None:
        """Delete rows with their vectors, hashes and decisions."""
        ids = [int(i) for i in ids]
        if not ids:
            return
        self._dirty = True
        self.con.execute("DELETE FROM embeddings WHERE photo_id IN (SELECT unnest(?::BIGINT[]))", [ids])
        self.delete_frames(ids)
        self.con.execute("DELETE FROM image_hashes WHERE photo_id IN (SELECT unnest(?::BIGINT[]))", [ids])
        self.con.execute("DELETE FROM image_windows WHERE photo_id IN (SELECT unnest(?::BIGINT[]))", [ids])
        self.con.execute("DELETE FROM face_rejections WHERE face_id IN "
                         "(SELECT id FROM faces WHERE photo_id IN (SELECT unnest(?::BIGINT[])))", [ids])
        self.con.execute("DELETE FROM faces WHERE photo_id IN (SELECT unnest(?::BIGINT[]))", [ids])
        self.con.execute("DELETE FROM face_scans WHERE photo_id IN (SELECT unnest(?::BIGINT[]))", [ids])
        self.con.execute("DELETE FROM ocr_scans WHERE photo_id IN (SELECT unnest(?::BIGINT[]))", [ids])
        self.con.execute("DELETE FROM photo_text WHERE photo_id IN (SELECT unnest(?::BIGINT[]))", [ids])
        self.con.execute("DELETE FROM photo_docs WHERE photo_id IN (SELECT unnest(?::BIGINT[]))", [ids])
        self.con.execute("DELETE FROM text_words WHERE photo_id IN (SELECT unnest(?::BIGINT[]))", [ids])
        self.con.execute("DELETE FROM tag_scores WHERE photo_id IN (SELECT unnest(?::BIGINT[]))", [ids])
        self.con.execute("DELETE FROM tag_decisions WHERE photo_id IN (SELECT unnest(?::BIGINT[]))", [ids])
        self.con.execute("DELETE FROM photo_ratings WHERE photo_id IN (SELECT unnest(?::BIGINT[]))", [ids])
        self.con.execute("DELETE FROM album_photos WHERE photo_id IN (SELECT unnest(?::BIGINT[]))", [ids])
        self.con.execute("DELETE FROM takeout WHERE photo_id IN (SELECT unnest(?::BIGINT[]))", [ids])
        self.con.execute("DELETE FROM photo_people WHERE photo_id IN (SELECT unnest(?::BIGINT[]))", [ids])
        self.con.execute("DELETE FROM photo_events WHERE photo_id IN (SELECT unnest(?::BIGINT[]))", [ids])
        self.con.execute("DELETE FROM not_duplicates WHERE photo_a IN (SELECT unnest(?::BIGINT[])) "
                         "OR photo_b IN (SELECT unnest(?::BIGINT[]))", [ids, ids])
        self.con.execute("DELETE FROM photos WHERE id IN (SELECT unnest(?::BIGINT[]))", [ids])
        # A Live Photo movie whose still is gone is a video of its own again (finish may re-pair it).
        self.con.execute("UPDATE photos SET live_of = NULL WHERE live_of IN (SELECT unnest(?::BIGINT[]))", [ids])

    def photo_by_path(self, path: str) -> dict[str, Any] | None:
        """The photo row at ``path``, or None."""
        rows = self._photo_dicts("WHERE path = ?", [text_path(path)])
        return rows[0] if rows else None

    def photo_by_hash(self, content_hash: str) -> dict[str, Any] | None:
        """The lowest-id photo row with this content hash, or None."""
        rows = self._photo_dicts("WHERE content_hash = ? ORDER BY id LIMIT 1", [content_hash])
        return rows[0] if rows else None

    def photos_by_ids(self, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        """Photo rows by id (unknown ids are absent)."""
        if not ids:
            return {}
        # One list parameter: binding thousands of "?" costs ~4x the query (an album of 5,000).
        return {r["id"]: r for r in self._photo_dicts("WHERE id IN (SELECT unnest(?::BIGINT[]))",
                                                      [[int(i) for i in ids]])}

    def camera_shot_ids(self, ids: Sequence[int]) -> set[int]:
        """Those of ``ids`` whose photo names a camera (make or model) in its metadata."""
        if not ids:
            return set()
        return {r[0] for r in self.con.execute(
            "SELECT id FROM photos WHERE id IN (SELECT unnest(?::BIGINT[])) "
            "AND (coalesce(camera_make, '') <> '' OR coalesce(camera_model, '') <> '')",
            [[int(i) for i in ids]]).fetchall()}

    def _photo_dicts(self, where: str, params: list[Any]) -> list[dict[str, Any]]:
        cur = self.con.execute(f"SELECT id, {', '.join(PHOTO_COLUMNS)}, live_of FROM photos {where}", params)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]

    # -- timeline ---------------------------------------------------------------------------

    # A photo's place in time: its capture date, else its file's modification time.
    _WHEN = "coalesce(taken_at, make_timestamp(mtime_ns // 1000))"

    def timeline_page(self, after: tuple[datetime, int] | None, limit: int) -> list[dict[str, Any]]:
        """Rows (id, path, width, height, media, duration, taken_at, sort_at) of shown photos,
        newest first by capture date (else file time), then id: the ``limit`` that come after
        ``after`` = (sort_at, id) in that order. Keyset paging: a page deep in the timeline costs
        what the first one does."""
        where = SHOWN.format(p="")
        params: list[Any] = []
        if after is not None:
            where += f" AND ({self._WHEN} < ? OR ({self._WHEN} = ? AND id < ?))"
            params += [after[0], after[0], int(after[1])]
        cur = self.con.execute(
            f"SELECT id, path, width, height, media, duration, taken_at, {self._WHEN} AS sort_at FROM photos "
            f"WHERE {where} ORDER BY sort_at DESC, id DESC LIMIT ?", [*params, int(limit)])
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]

    def timeline_neighbors(self, photo_id: int) -> tuple[int | None, int | None]:
        """(newer, older): the ids beside a shown photo in timeline order (None at either end)."""
        shown = SHOWN.format(p="")
        row = self.con.execute(f"SELECT {self._WHEN}, id FROM photos WHERE id = ? AND {shown}", [photo_id]).fetchone()
        if row is None:
            return None, None
        at, pid = row
        newer = self.con.execute(
            f"SELECT id FROM photos WHERE {shown} AND ({self._WHEN} > ? OR ({self._WHEN} = ? AND id > ?)) "
            f"ORDER BY {self._WHEN}, id LIMIT 1", [at, at, pid]).fetchone()
        older = self.con.execute(
            f"SELECT id FROM photos WHERE {shown} AND ({self._WHEN} < ? OR ({self._WHEN} = ? AND id < ?)) "
            f"ORDER BY {self._WHEN} DESC, id DESC LIMIT 1", [at, at, pid]).fetchone()
        return (newer[0] if newer else None), (older[0] if older else None)

    def timeline_months(self) -> list[tuple[int, int, int]]:
        """(year, month, photos) of the shown photos, newest month first."""
        rows = self.con.execute(
            f"SELECT year(sort_at) AS y, month(sort_at) AS m, count(*) FROM (SELECT {self._WHEN} AS sort_at FROM photos "
            f"WHERE {SHOWN.format(p='')}) GROUP BY y, m ORDER BY y DESC, m DESC").fetchall()
        return [(int(y), int(m), int(n)) for y, m, n in rows]

    def count_photos(self) -> int:
        """Number of photos in the catalog, quarantined ones included."""
        return int(self.con.execute("SELECT count(*) FROM photos").fetchone()[0])

    def filtered_ids(self, filters: Filters) -> np.ndarray:
        """Ids of photos passing ``filters`` (int64 array)."""
        clauses, params = [], []
        if filters.after is not None:
            clauses.append("taken_at >= ?")
            params.append(filters.after)
        if filters.before is not None:
            clauses.append("taken_at < ?")
            params.append(filters.before)
        if filters.media:
            clauses.append("coalesce(media, 'photo') = ?")
            params.append(filters.media)
        if filters.camera:
            clauses.append("(camera_make ILIKE ? OR camera_model ILIKE ? OR concat_ws(' ', camera_make, camera_model) ILIKE ?)")
            like = f"%{filters.camera}%"
            params += [like, like, like]
        if filters.folder:
            folder = filters.folder.rstrip("/") + "/"
            clauses.append("starts_with(path, ?)")
            params.append(folder)
        if filters.person:
            clauses.append("id IN (SELECT f.photo_id FROM faces f JOIN people p ON p.id = f.person_id "
                           "WHERE lower(p.name) = lower(?) UNION SELECT photo_id FROM photo_people "
                           "WHERE lower(name) = lower(?))")
            params += [filters.person, filters.person]
        if filters.event:
            clauses.append("id IN (SELECT pe.photo_id FROM photo_events pe JOIN events e ON e.id = pe.event_id "
                           "WHERE e.key = ? OR CAST(e.id AS VARCHAR) = ? OR e.name ILIKE ?)")
            params += [filters.event, filters.event, f"%{filters.event}%"]
        if filters.album:
            from photosearch.errors import UsageError
            from photosearch.store.albums_store import ALBUM_SQL

            found = self.album(filters.album)  # type: ignore[attr-defined]
            if found is None:
                raise UsageError(f"no album {filters.album!r} (see `photosearch album list`)")
            if found["query"] or found["filters"]:
                raise UsageError(f"{found['name']!r} is a smart album (a saved search): "
                                 f"`photosearch album show {found['name']!r}` runs it")
            clauses.append(f"id IN ({ALBUM_SQL})")
            params.append(filters.album)
        if filters.min_rating is not None:
            clauses.append("coalesce(rating, 0) >= ?")
            params.append(int(filters.min_rating))
        if filters.meta:
            # Case and accents ignored; every word somewhere in the photo's own words.
            text = ("strip_accents(lower(concat_ws(' ', title, description, array_to_string(keywords, ' '), "
                    "array_to_string(keyword_paths, ' '), regexp_extract(path, '[^/\\\\]*$'))))")
            for word in filters.meta.split():
                clauses.append(f"contains({text}, strip_accents(lower(?)))")
                params.append(word)
        for name in filters.tags:
            tag = self.canonical_tag(name)
            if tag is None:
                from photosearch.errors import UsageError

                raise UsageError(f"unknown tag {name!r} (see `photosearch tags`)")
            clauses.append(f"id IN ({TAGGED_SQL})")
            params += [tag, tag]
        clauses.append(SHOWN.format(p=""))
        where = "WHERE " + " AND ".join(clauses)
        res = self.con.execute(f"SELECT id FROM photos {where}", params).fetchnumpy()
        return np.asarray(res["id"], dtype=np.int64)

    # -- embeddings -----------------------------------------------------------------------

    def add_embeddings(self, model: str, ids: Sequence[int], vectors: np.ndarray) -> None:
        """Store one ``model`` vector per photo id."""
        if not len(ids):
            return
        self._dirty = True
        vectors = np.ascontiguousarray(vectors, dtype="<f4")
        # Scanning registered numpy arrays is ~300x faster than executemany here.
        frame = {
            "photo_id": np.asarray(ids, dtype=np.int64),
            "vector": np.array([row.tobytes() for row in vectors], dtype=object),
        }
        self.con.register("_new_vectors", frame)
        try:
            self.con.execute("INSERT INTO embeddings SELECT photo_id, ?, vector FROM _new_vectors", [model])
        finally:
            self.con.unregister("_new_vectors")

    def copy_photo(self, src_id: int, path: str, size: int, mtime_ns: int) -> int:
        """A new row at ``path`` for a copy of photo ``src_id`` (same bytes): its catalog fields,
        vectors, hashes, faces, tags and people; returns the new id."""
        self._dirty = True
        (new_id,) = self.con.execute("SELECT nextval('photo_id_seq')").fetchone()
        cols = [c for c in PHOTO_COLUMNS if c not in ("path", "size", "mtime_ns")]
        self.con.execute(
            f"INSERT INTO photos (id, path, size, mtime_ns, {', '.join(cols)}, indexed_at) "
            f"SELECT ?, ?, ?, ?, {', '.join(cols)}, now() FROM photos WHERE id = ?",
            [new_id, text_path(path), size, mtime_ns, src_id])
        self.copy_embeddings(src_id, new_id)
        return int(new_id)

    def copy_embeddings(self, src_id: int, dst_id: int) -> None:
        """Give ``dst_id`` every vector and hash ``src_id`` has (same bytes, so the same)."""
        self._dirty = True
        self.con.execute(
            "INSERT INTO embeddings SELECT ?, model, vector FROM embeddings WHERE photo_id = ?", [dst_id, src_id]
        )
        self.con.execute(
            "INSERT INTO image_hashes SELECT ?, phash, dhash, content_width, content_height, sharpness, brightness, "
            "highlight, blown FROM image_hashes WHERE photo_id = ?", [dst_id, src_id]
        )
        self.con.execute("INSERT INTO image_windows SELECT ?, windows FROM image_windows WHERE photo_id = ?",
                         [dst_id, src_id])
        # A copy shows the same people: its faces keep their vectors and persons (new face ids).
        self.con.execute(
            "INSERT INTO faces SELECT nextval('face_id_seq'), ?, model, x, y, w, h, score, vector, person_id, "
            "assigned, source, region_name, t FROM faces WHERE photo_id = ? ORDER BY id", [dst_id, src_id])
        self.copy_frames(src_id, dst_id)
        self.con.execute("INSERT INTO face_scans SELECT ?, model, faces, scanned_at FROM face_scans "
                         "WHERE photo_id = ?", [dst_id, src_id])
        self.con.execute("INSERT INTO ocr_scans SELECT ?, model, lines, scanned_at FROM ocr_scans "
                         "WHERE photo_id = ?", [dst_id, src_id])
        self.con.execute("INSERT INTO photo_text SELECT ?, model, line, text, norm, score, quad, words FROM photo_text "
                         "WHERE photo_id = ?", [dst_id, src_id])
        self.con.execute("INSERT INTO photo_docs SELECT ?, doc FROM photo_docs WHERE photo_id = ?", [dst_id, src_id])
        self.con.execute("INSERT INTO text_words SELECT word, ? FROM text_words WHERE photo_id = ?", [dst_id, src_id])
        self.con.execute("INSERT INTO tag_scores SELECT ?, tag, score, model, scorer FROM tag_scores "
                         "WHERE photo_id = ?", [dst_id, src_id])
        self.con.execute("INSERT INTO tag_decisions SELECT ?, tag, state, decided_at, source FROM tag_decisions "
                         "WHERE photo_id = ?", [dst_id, src_id])
        self.con.execute("INSERT INTO photo_people SELECT ?, name, source FROM photo_people WHERE photo_id = ?",
                         [dst_id, src_id])

    def ids_with_vectors(self, model: str, *, searchable: bool = False) -> np.ndarray:
        """Photo ids having a vector of ``model``; ``searchable`` leaves out quarantined photos."""
        if searchable:
            res = self.con.execute(
                "SELECT e.photo_id FROM embeddings e JOIN photos p ON p.id = e.photo_id "
                f"WHERE e.model = ? AND {SHOWN.format(p='p.')}", [model]).fetchnumpy()
        else:
            res = self.con.execute("SELECT photo_id FROM embeddings WHERE model = ?", [model]).fetchnumpy()
        return np.asarray(res["photo_id"], dtype=np.int64)

    # -- perceptual hashes ----------------------------------------------------------------

    def add_hashes(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """(photo_id, 8 pHash variants, dHash, content width, content height[, sharpness,
        brightness, highlight, blown]) rows."""
        if not rows:
            return
        import pyarrow as pa

        # One registered Arrow table instead of executemany: ~50x faster (benchmarks/RESULTS.md, scale-out).
        table = pa.table({
            "photo_id": pa.array([int(r[0]) for r in rows], pa.int64()),
            "phash": pa.array([[int(v) for v in r[1]] for r in rows], pa.list_(pa.uint64())),
            "dhash": pa.array([int(r[2]) for r in rows], pa.uint64()),
            "content_width": pa.array([r[3] for r in rows], pa.int32()),
            "content_height": pa.array([r[4] for r in rows], pa.int32()),
            **{name: pa.array([r[5 + i] if len(r) > 5 + i else None for r in rows], pa.float64())
               for i, name in enumerate(("sharpness", "brightness", "highlight", "blown"))},
        })
        self.con.register("_new_hashes", table)
        try:
            self.con.execute("INSERT INTO image_hashes SELECT photo_id, phash, dhash, content_width, content_height, "
                             "sharpness, brightness, highlight, blown FROM _new_hashes")
        finally:
            self.con.unregister("_new_hashes")

    def add_windows(self, rows: Sequence[tuple[int, Sequence[int]]]) -> None:
        """(photo_id, window pHashes) rows (media/hashes.py window_hashes; empty for none), in
        place of an earlier version's (fewer windows)."""
        if not rows:
            return
        import pyarrow as pa

        table = pa.table({"photo_id": pa.array([int(r[0]) for r in rows], pa.int64()),
                          "windows": pa.array([[int(v) for v in r[1]] for r in rows], pa.list_(pa.uint64()))})
        self.con.register("_new_windows", table)
        try:
            self.con.execute("INSERT OR REPLACE INTO image_windows SELECT photo_id, windows FROM _new_windows")
        finally:
            self.con.unregister("_new_windows")

    def all_windows(self, width: int, *, narrowest: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(ids, window pHashes (n, ``width``) uint64) of searchable photos with ``width`` windows,
        or with ``narrowest`` to ``width`` (an earlier version's first windows; those it did not
        make are 0). Rows of other widths are left out."""
        res = self.con.execute(
            "SELECT w.photo_id, " + ", ".join(f"coalesce(w.windows[{k + 1}], 0) AS w{k}" for k in range(width)) + " "
            "FROM image_windows w JOIN photos p ON p.id = w.photo_id "
            f"WHERE len(w.windows) BETWEEN ? AND ? AND {SHOWN.format(p='p.')} "
            "AND coalesce(p.media, 'photo') = 'photo' ORDER BY w.photo_id", [narrowest or width, width]).fetchnumpy()
        ids = np.asarray(res["photo_id"], dtype=np.int64)
        if not len(ids):
            return ids, np.zeros((0, width), dtype=np.uint64)
        return ids, np.column_stack([np.asarray(res[f"w{k}"], dtype=np.uint64) for k in range(width)])

    def ids_by_time(self, ids: Sequence[int]) -> np.ndarray:
        """``ids`` ordered by capture time (undated first), then id."""
        res = self.con.execute("SELECT id FROM photos WHERE id IN (SELECT unnest(?::BIGINT[])) "
                               "ORDER BY taken_at NULLS FIRST, id", [[int(i) for i in ids]]).fetchnumpy()
        return np.asarray(res["id"], dtype=np.int64)

    def hashes_of(self, ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """(ids, pHash variants (n, 8) uint64) of those of ``ids`` that have hashes."""
        rows = self.con.execute(
            "SELECT photo_id, phash FROM image_hashes WHERE photo_id IN (SELECT unnest(?::BIGINT[])) "
            "AND len(phash) = 8 ORDER BY photo_id", [[int(i) for i in ids]]).fetchall()
        return (np.array([r[0] for r in rows], np.int64),
                np.array([r[1] for r in rows], np.uint64).reshape(len(rows), 8))

    def quality_of(self, ids: Sequence[int]) -> dict[int, tuple[float, float, float, float]]:
        """(sharpness, brightness, highlight, blown) by photo id, where measured (media/quality.py)."""
        rows = self.con.execute(
            "SELECT photo_id, sharpness, brightness, highlight, blown FROM image_hashes "
            "WHERE photo_id IN (SELECT unnest(?::BIGINT[])) AND sharpness IS NOT NULL", [[int(i) for i in ids]]).fetchall()
        return {r[0]: (r[1], r[2], r[3], r[4]) for r in rows}

    def content_sizes(self, ids: Sequence[int]) -> dict[int, tuple[int, int]]:
        """Content width and height (after border trimming) by photo id, where recorded."""
        rows = self.con.execute(
            "SELECT photo_id, content_width, content_height FROM image_hashes "
            "WHERE photo_id IN (SELECT unnest(?::BIGINT[])) AND content_width IS NOT NULL", [list(ids)]).fetchall()
        return {r[0]: (r[1], r[2]) for r in rows}

    def exact_duplicate_ids(self) -> list[list[int]]:
        """Ids of searchable photos sharing their bytes with another, grouped by content hash."""
        rows = self.con.execute(
            f"SELECT list(id ORDER BY id) FROM photos WHERE {SHOWN.format(p='')} "
            "GROUP BY content_hash HAVING count(*) > 1").fetchall()
        return [r[0] for r in rows]

    def same_image_ids(self) -> list[list[int]]:
        """Ids of searchable photos whose image data is another's with other metadata (the same
        content id, other bytes), grouped by content id."""
        rows = self.con.execute(
            f"SELECT list(id ORDER BY id) FROM photos WHERE {SHOWN.format(p='')} AND content_id IS NOT NULL "
            "GROUP BY content_id HAVING count(DISTINCT content_hash) > 1").fetchall()
        return [r[0] for r in rows]

    def event_of_photos(self, ids: Sequence[int]) -> dict[int, int]:
        """The event of each of these photos that is in one."""
        rows = self.con.execute("SELECT photo_id, event_id FROM photo_events "
                                "WHERE photo_id IN (SELECT unnest(?::BIGINT[]))", [list(ids)]).fetchall()
        return {r[0]: r[1] for r in rows}

    def not_duplicate_pairs(self) -> set[tuple[int, int]]:
        """All photo id pairs marked as not duplicates."""
        return {(a, b) for a, b in self.con.execute("SELECT photo_a, photo_b FROM not_duplicates").fetchall()}

    def add_not_duplicates(self, ids: Sequence[int]) -> int:
        """Remember that these photos are not duplicates of each other; returns pairs added."""
        known = self.not_duplicate_pairs()
        pairs = {(min(a, b), max(a, b)) for a in ids for b in ids if a != b} - known
        if pairs:
            self.con.executemany("INSERT INTO not_duplicates VALUES (?, ?, now())", sorted(pairs))
        return len(pairs)

    def set_quarantined(self, photo_id: int, path: str, when: datetime | None) -> None:
        """Record a quarantine move (``when`` set) or its undoing (``when`` None) with the new path."""
        self._dirty = True
        self.con.execute("UPDATE photos SET path = ?, quarantined_at = ? WHERE id = ?", [text_path(path), when, photo_id])

    def quarantined(self) -> list[dict[str, Any]]:
        """Id, path and quarantine time of the quarantined photos, oldest first."""
        cur = self.con.execute("SELECT id, path, quarantined_at FROM photos WHERE quarantined_at IS NOT NULL "
                               "ORDER BY quarantined_at, path")
        return [dict(zip(("id", "path", "quarantined_at"), r)) for r in cur.fetchall()]

    def ids_with_hashes(self) -> set[int]:
        """Ids of the photos that have perceptual hashes."""
        return {r[0] for r in self.con.execute("SELECT photo_id FROM image_hashes").fetchall()}

    def video_ids(self) -> set[int]:
        """Ids of the videos."""
        return {r[0] for r in self.con.execute("SELECT id FROM photos WHERE media = 'video'").fetchall()}

    def all_hashes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ids, phash variants (n, 8) uint64, dhash (n,) uint64) of searchable photos (videos
        have their own: ``frame_hashes``)."""
        # One numpy column per variant: lists through Python objects cost ~5 s at 1M photos.
        res = self.con.execute(
            "SELECT h.photo_id, " + ", ".join(f"h.phash[{k + 1}] AS v{k}" for k in range(8)) + ", h.dhash "
            "FROM image_hashes h JOIN photos p ON p.id = h.photo_id "
            f"WHERE {SHOWN.format(p='p.')} AND coalesce(p.media, 'photo') = 'photo' AND len(h.phash) = 8 "
            "ORDER BY h.photo_id").fetchnumpy()
        ids = np.asarray(res["photo_id"], dtype=np.int64)
        ph = np.column_stack([np.asarray(res[f"v{k}"], dtype=np.uint64) for k in range(8)]) if len(ids) \
            else np.zeros((0, 8), dtype=np.uint64)
        return ids, ph, np.asarray(res["dhash"], dtype=np.uint64)

    def vectors(self, model: str, ids: Sequence[int] | np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, vectors)`` for ``model``; all of them, or those among ``ids``."""
        if ids is None:
            cur = self.con.execute("SELECT photo_id, vector FROM embeddings WHERE model = ? ORDER BY photo_id", [model])
        else:
            cur = self.con.execute(
                "SELECT photo_id, vector FROM embeddings WHERE model = ? "
                "AND photo_id IN (SELECT unnest(?::BIGINT[])) ORDER BY photo_id",
                [model, np.asarray(ids, dtype=np.int64).tolist()],
            )
        res = cur.fetchnumpy()
        out_ids = np.asarray(res["photo_id"], dtype=np.int64)
        blobs = res["vector"]
        if len(blobs) == 0:
            return out_ids, np.zeros((0, 0), dtype=np.float32)
        vecs = np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(blobs), -1)
        return out_ids, vecs

    _SEARCHABLE = f" AND photo_id IN (SELECT id FROM photos WHERE {SHOWN.format(p='')})"

    def iter_vectors(self, model: str, chunk: int = 50_000, *,
                     searchable: bool = False) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """All vectors of ``model`` in id order, ``chunk`` at a time (bounded memory for big libraries)."""
        extra = self._SEARCHABLE if searchable else ""
        for rows in row_chunks(self.con, f"SELECT photo_id, vector FROM embeddings WHERE model = ?{extra} "
                               "ORDER BY photo_id", [model], chunk):
            yield ids_and_vectors(rows)

    def sample_vectors(self, model: str, n: int, seed: int = 0, *, searchable: bool = False) -> np.ndarray:
        """A reproducible random sample of ``n`` vectors (IVF training)."""
        extra = self._SEARCHABLE if searchable else ""
        rows = self.con.execute(
            f"SELECT vector FROM (SELECT vector FROM embeddings WHERE model = ?{extra}) "
            f"USING SAMPLE reservoir({int(n)} ROWS) REPEATABLE ({int(seed)})",
            [model],
        ).fetchall()
        return np.frombuffer(b"".join(r[0] for r in rows), dtype="<f4").reshape(len(rows), -1).copy()

    def count_vectors(self, model: str, *, searchable: bool = False) -> int:
        """Number of ``model`` vectors; with ``searchable``, only those of non-quarantined photos."""
        extra = self._SEARCHABLE if searchable else ""
        return int(self.con.execute(f"SELECT count(*) FROM embeddings WHERE model = ?{extra}", [model]).fetchone()[0])

    def vector_models(self) -> dict[str, int]:
        """Vector count per model."""
        rows = self.con.execute("SELECT model, count(*) FROM embeddings GROUP BY model").fetchall()
        return {r[0]: int(r[1]) for r in rows}

    def vectors_precision(self, model: str) -> str | None:
        """The precision (``fp32``/``int8``) ``model``'s stored vectors were made in; vectors stored
        before precisions were recorded are fp32. None when the model has no vectors."""
        stored = self.get_setting(f"precision:{model}")
        if stored is not None:
            return stored
        (n,) = self.con.execute("SELECT count(*) FROM embeddings WHERE model = ?", [model]).fetchone()
        return "fp32" if n else None

    def reset_vectors(self, model: str, precision: str) -> list[str]:
        """Drop every photo and frame vector of ``model`` and forget its indexes (so they are built
        again from what is stored next), recording ``precision`` for the vectors to come. Returns
        the index files that are no longer used (the caller removes them)."""
        self._dirty = True
        keys = [model, f"frames:{model}"]
        old = self.con.execute("SELECT file, rows_file, kind FROM vector_index WHERE model IN (SELECT unnest(?))",
                               [keys]).fetchall()
        self.con.execute("DELETE FROM embeddings WHERE model = ?", [model])
        self.con.execute("DELETE FROM frame_embeddings WHERE model = ?", [model])
        self.con.execute("DELETE FROM vector_index WHERE model IN (SELECT unnest(?))", [keys])
        self.set_setting(f"precision:{model}", precision)
        self.write_state()
        return [f for file, rows, kind in old for f in (file, rows) if f and kind != "ondisk"]

    def set_vectors_precision(self, model: str, precision: str) -> None:
        """Record the precision of ``model``'s vectors (stored and to come)."""
        self.set_setting(f"precision:{model}", precision)

    # -- vector index state -----------------------------------------------------------------

    def index_state(self, model: str) -> dict[str, Any] | None:
        """The recorded vector index of ``model`` as a dict, or None."""
        cur = self.con.execute("SELECT * FROM vector_index WHERE model = ?", [model])
        row = cur.fetchone()
        if row is None:
            return None
        return dict(zip([d[0] for d in cur.description], row))

    def set_index_state(self, model: str, file: str, rows_file: str, version: int, kind: str, count: int,
                        nprobe: int | None) -> None:
        """Record the vector index built for ``model`` and publish it in state.json."""
        with self.transaction():
            self.con.execute("DELETE FROM vector_index WHERE model = ?", [model])
            self.con.execute(
                "INSERT INTO vector_index (model, file, rows_file, version, kind, count, nprobe, built_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, now())", [model, file, rows_file, version, kind, count, nprobe]
            )
            self.write_state()

    def result_rows(self) -> Iterator[tuple[Any, ...]]:
        """(id, path, taken_at, camera_make, camera_model, width, height, format, keywords, media,
        duration) of searchable photos in id order, for the rows file written beside a vector index."""
        for rows in row_chunks(self.con, "SELECT id, path, taken_at, camera_make, camera_model, width, height, "
                               f"format, keywords, media, duration FROM photos WHERE {SHOWN.format(p='')} "
                               "ORDER BY id"):
            yield from rows


    def photo_vectors(self, model: str) -> PhotoVectors:
        """The searchable photo embeddings of ``model``, as a vector index source."""
        return PhotoVectors(self, model)

    def face_vectors(self, model: str) -> FaceVectors:
        """The searchable face vectors of face model ``model``, as a vector index source."""
        return FaceVectors(self, model)

