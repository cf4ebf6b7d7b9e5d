"""Shard bookkeeping, the indexing diff, and remembered skips.

A part of :class:`photosearch.store.catalog.Catalog` (which opens the connection and
keeps ``self.con`` and the ``_dirty`` flag of the running transaction).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any



class ShardsStore:
    """Shard bookkeeping, the indexing diff, and remembered skips."""

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
        row = self.con.execute("SELECT max(CAST(substr(name, 7) AS INTEGER)) FROM shards").fetchall()[0]
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

    def drop_shards(self, names: Sequence[str]) -> None:
        """Forget these shards (their paths are then planned again)."""
        self.con.execute("DELETE FROM shards WHERE name IN (SELECT unnest(?::VARCHAR[]))", [list(names)])

    def mark_shard_ingested(self, name: str) -> None:
        """Mark a shard as ingested now."""
        self.con.execute("UPDATE shards SET ingested_at = now() WHERE name = ?", [name])

    #: Tables that show a photo has an analyzer's data (see ``diff_listing``'s ``checks``), and
    #: whether their rows are per model.
    CHECKED_TABLES = {"embeddings": True, "image_hashes": False, "image_windows": False, "face_scans": True,
                      "ocr_scans": True}
    #: Checked tables whose check names the length their list column must have (0 or it): a
    #: photo with fewer window hashes than this version makes lacks them.
    WIDTH_CHECKED = {"image_windows": "windows"}

    def _lacks_sql(self, table: str, model: str | None, alias: str) -> tuple[str, list[Any]]:
        if table not in self.CHECKED_TABLES:
            raise ValueError(f"not a checked table: {table}")
        if table in self.WIDTH_CHECKED and model is not None:
            column = self.WIDTH_CHECKED[table]
            return (f"NOT EXISTS (SELECT 1 FROM {table} x WHERE x.photo_id = {alias}.id "
                    f"AND len(x.{column}) IN (0, ?))", [int(model)])
        if self.CHECKED_TABLES[table]:
            return (f"NOT EXISTS (SELECT 1 FROM {table} x WHERE x.photo_id = {alias}.id AND x.model = ?)",
                    [model])
        return f"NOT EXISTS (SELECT 1 FROM {table} x WHERE x.photo_id = {alias}.id)", []

    def diff_listing(self, listing: Any, roots: Sequence[str],
                     checks: Sequence[tuple[str, str | None]], *,
                     max_known: int = 64) -> tuple[list[dict[str, Any]], list[int], int, int]:
        """The diff of a walked listing against the catalog, in SQL (a 100M-file walk never
        becomes Python dicts).

        ``listing`` holds numpy arrays "path" (str objects), "size" and "mtime_ns" (int64) of every
        file walked under ``roots`` (registered as they are: no pandas or Arrow conversion);
        ``checks`` are (table, model or None) pairs from :data:`CHECKED_TABLES`, the data a
        cataloged photo must have. Returns:

        - the rows to analyze, as dicts: path, size, mtime_ns, known_id and known_hash
          (the row at this path), ``is_full`` (new or changed file), ``lacks_<i>`` (the row lacks
          check i), and ``known``: content hashes of complete cataloged photos of the same size
          (a copy or a moved file has the size of its original), at most ``max_known``;
        - ids of cataloged photos under ``roots`` whose path was not walked (moved or removed);
        - how many walked files are unchanged and complete;
        - how many are unchanged since an earlier run failed on them (not retried).

        Paths pending in a manifest shard are left out."""
        lacks_p, params_p, complete_q, params_q = [], [], [], []
        for i, (table, model) in enumerate(checks):
            sql, params = self._lacks_sql(table, model, "p")
            lacks_p.append(f"(p.id IS NOT NULL AND {sql}) AS lacks_{i}")
            params_p += params
            sql, params = self._lacks_sql(table, model, "q")
            complete_q.append(f"NOT {sql}")
            params_q += params
        lacks_cols = "".join(f", {c}" for c in lacks_p)
        any_lacks = " OR ".join(f"lacks_{i}" for i in range(len(checks))) or "false"
        complete = "".join(f" AND {c}" for c in complete_q)
        self.con.register("_listing", listing)
        try:
            self.con.execute(
                "CREATE OR REPLACE TEMP TABLE _diff AS "
                "SELECT l.path, l.size, l.mtime_ns, p.id AS known_id, p.content_hash AS known_hash, "
                "p.content_id AS known_content_id, "
                "(p.id IS NULL OR p.size <> l.size OR p.mtime_ns <> l.mtime_ns) AS is_full, "
                "EXISTS (SELECT 1 FROM shard_skips k WHERE k.path = l.path AND k.size = l.size "
                "        AND k.mtime_ns = l.mtime_ns) AS failed_before"
                f"{lacks_cols} FROM _listing l LEFT JOIN photos p ON p.path = l.path "
                "WHERE l.path NOT IN (SELECT unnest(paths) FROM shards WHERE ingested_at IS NULL)", params_p)
            unchanged, failed = self.con.execute(
                f"SELECT count(*) FILTER (WHERE NOT failed_before AND NOT is_full AND NOT ({any_lacks})), "
                "count(*) FILTER (WHERE failed_before) FROM _diff").fetchall()[0]
            cur = self.con.execute(
                "SELECT d.*, CASE WHEN d.is_full THEN list_slice((SELECT list(DISTINCT q.content_hash ORDER BY "
                f"q.content_hash) FROM photos q WHERE q.size = d.size{complete}), 1, ?) END AS known "
                f"FROM _diff d WHERE NOT d.failed_before AND (d.is_full OR {any_lacks}) ORDER BY d.path",
                params_q + [max_known])
            names = [d[0] for d in cur.description]
            todo = [dict(zip(names, row)) for row in cur.fetchall()]
            gone: list[int] = []
            for root in roots:
                prefix = root.rstrip(os.sep) + os.sep
                gone += [r[0] for r in self.con.execute(
                    "SELECT p.id FROM photos p WHERE (starts_with(p.path, ?) OR p.path = ?) "
                    "AND NOT EXISTS (SELECT 1 FROM _listing l WHERE l.path = p.path)", [prefix, root]).fetchall()]
        finally:
            self.con.unregister("_listing")
            self.con.execute("DROP TABLE IF EXISTS _diff")
        return todo, sorted(set(gone)), int(unchanged), int(failed)

    def lacking(self, table: str, model: str | None, ids: Sequence[int]) -> set[int]:
        """Those of ``ids`` (cataloged photos) without a row in checked ``table`` (for ``model``)."""
        if not len(ids):
            return set()
        sql, params = self._lacks_sql(table, model, "p")
        return {r[0] for r in self.con.execute(
            f"SELECT p.id FROM photos p WHERE p.id IN (SELECT unnest(?::BIGINT[])) AND {sql}",
            [[int(i) for i in ids]] + params).fetchall()}

    def rows_at_paths(self, paths: Sequence[str]) -> dict[str, tuple[int, str, str | None]]:
        """(id, content_hash, content_id) of the photos at these paths, by path."""
        if not paths:
            return {}
        return {r[0]: (r[1], r[2], r[3]) for r in self.con.execute(
            "SELECT path, id, content_hash, content_id FROM photos WHERE path IN (SELECT unnest(?::VARCHAR[]))",
            [list(paths)]).fetchall()}

    def rows_with_content_ids(self, ids: Sequence[str]) -> list[tuple[int, str, str]]:
        """(id, path, content_id) of the photos with these image identities, by id."""
        return self._rows_where_in("content_id", ids)

    def rows_with_hashes(self, hashes: Sequence[str]) -> list[tuple[int, str, str]]:
        """(id, path, content_hash) of the photos with these content hashes, by id."""
        return self._rows_where_in("content_hash", hashes)

    def _rows_where_in(self, column: str, values: Sequence[str]) -> list[tuple[int, str, str]]:
        if column not in ("content_id", "content_hash") or not values:
            return []
        return [tuple(r) for r in self.con.execute(
            f"SELECT id, path, {column} FROM photos WHERE {column} IN (SELECT unnest(?::VARCHAR[])) ORDER BY id",
            [list(values)]).fetchall()]

    def shard_skips(self) -> dict[str, tuple[int, int]]:
        """Files remembered as unusable, as path -> (size, mtime_ns)."""
        return {r[0]: (r[1], r[2]) for r in self.con.execute("SELECT path, size, mtime_ns FROM shard_skips").fetchall()}

    def remember_skips(self, rows: list[tuple[str, int, int, str]]) -> None:
        """Files that could not be used, as (path, size, mtime_ns, reason): not retried while unchanged."""
        if rows:
            self.con.executemany("INSERT OR REPLACE INTO shard_skips VALUES (?, ?, ?, ?)", rows)

    def forget_skips(self, paths: list[str]) -> None:
        """Forget the remembered skips of these paths, so they are tried again."""
        if paths:  # one statement: executemany costs milliseconds a row
            self.con.execute("DELETE FROM shard_skips WHERE path IN (SELECT unnest(?::VARCHAR[]))", [list(paths)])

    def forget_skips_under(self, roots: Sequence[str] | None = None) -> int:
        """Forget the remembered failures at or below ``roots`` (every one without): the next
        run tries those files again. Returns how many were forgotten."""
        where, params = "true", []
        if roots is not None:
            if not roots:
                return 0
            where = " OR ".join("(starts_with(path, ?) OR path = ?)" for _ in roots)
            params = [v for r in roots for v in (r.rstrip(os.sep) + os.sep, r)]
        n = int(self.con.execute(f"SELECT count(*) FROM shard_skips WHERE {where}", params).fetchone()[0])
        if n:
            self.con.execute(f"DELETE FROM shard_skips WHERE {where}", params)
        return n

    def count_without_pixels(self) -> int:
        """Cataloged photos whose file is remembered as unusable: camera files kept with their
        metadata, without a picture."""
        return int(self.con.execute("SELECT count(*) FROM photos p JOIN shard_skips k ON k.path = p.path "
                                    "AND k.size = p.size AND k.mtime_ns = p.mtime_ns").fetchone()[0])

    def skipped_files(self) -> list[dict[str, Any]]:
        """Every remembered skip: path, size, mtime_ns, reason (by path)."""
        rows = self.con.execute("SELECT path, size, mtime_ns, reason FROM shard_skips ORDER BY path").fetchall()
        return [{"path": r[0], "size": r[1], "mtime_ns": r[2], "reason": r[3]} for r in rows]

