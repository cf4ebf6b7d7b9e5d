"""Tags: the taxonomy's tags and aliases, scores and decisions.

A part of :class:`photosearch.store.catalog.Catalog` (which opens the connection and
keeps ``self.con`` and the ``_dirty`` flag of the running transaction).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np


from photosearch.store.records import TAGGED_SQL, row_chunks


class TagsStore:
    """Tags: the taxonomy's tags and aliases, scores and decisions."""

    con: Any
    _dirty: bool

    # -- tags -------------------------------------------------------------------------------

    def tags(self) -> list[dict[str, Any]]:
        """Every tag with its settings and counts (tagged = accepted or auto at/above threshold)."""
        cur = self.con.execute(
            "SELECT t.name, t.grp, t.parent, t.threshold, t.aliases, t.prompts, t.source, "
            "(SELECT count(*) FROM tag_decisions d WHERE d.tag = t.name AND d.state = 'accepted'), "
            "(SELECT count(*) FROM tag_decisions d WHERE d.tag = t.name AND d.state = 'rejected'), "
            "(SELECT count(*) FROM tag_scores s LEFT JOIN tag_decisions d ON d.photo_id = s.photo_id AND d.tag = s.tag "
            " WHERE s.tag = t.name AND s.score >= t.threshold AND d.state IS NULL), "
            "(SELECT count(*) FROM tag_scores s WHERE s.tag = t.name), "
            "(SELECT any_value(s.scorer) FROM tag_scores s WHERE s.tag = t.name) "
            "FROM tags t ORDER BY t.grp, t.name")
        names = ("name", "group", "parent", "threshold", "aliases", "prompts", "source", "accepted", "rejected",
                 "auto", "scored", "scorer")
        return [dict(zip(names, r)) for r in cur.fetchall()]

    def upsert_tags(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert or update tags (name, group, parent, threshold, aliases, prompts, source)."""
        for r in rows:
            self.con.execute("DELETE FROM tags WHERE lower(name) = lower(?)", [r["name"]])
            self.con.execute("INSERT INTO tags VALUES (?, ?, ?, ?, ?, ?, ?, now())",
                             [r["name"], r.get("group"), r.get("parent"), float(r.get("threshold", 0.6)),
                              list(r.get("aliases") or []), list(r.get("prompts") or []), r.get("source", "taxonomy")])

    def drop_tags(self, names: Sequence[str]) -> None:
        """Forget tags (their scores, decisions and probes too)."""
        for table, col in (("tag_scores", "tag"), ("tag_decisions", "tag"), ("tag_probes", "tag"), ("tags", "name")):
            self.con.execute(f"DELETE FROM {table} WHERE {col} IN (SELECT unnest(?::VARCHAR[]))", [list(names)])

    def replace_tag_scores(self, tag: str, model: str, scorer: str, ids: np.ndarray, scores: np.ndarray,
                           first: bool) -> None:
        """Store one chunk of a tag's scores; ``first`` drops the tag's previous scores."""
        if first:
            self.con.execute("DELETE FROM tag_scores WHERE tag = ?", [tag])
        if len(ids):
            frame = {"photo_id": np.asarray(ids, dtype=np.int64), "score": np.asarray(scores, dtype=np.float64)}
            self.con.register("_scores", frame)
            try:
                self.con.execute("INSERT INTO tag_scores SELECT photo_id, ?, score, ?, ? FROM _scores",
                                 [tag, model, scorer])
            finally:
                self.con.unregister("_scores")

    def set_decisions(self, photo_ids: Sequence[int], tag: str, state: str | None) -> None:
        """Record accepted/rejected (``None``: back to automatic) for photos and one tag."""
        ids = [int(i) for i in photo_ids]
        self.con.execute("DELETE FROM tag_decisions WHERE tag = ? AND photo_id IN (SELECT unnest(?::BIGINT[]))",
                         [tag, ids])
        if state is not None and ids:
            self.con.executemany("INSERT INTO tag_decisions (photo_id, tag, state, decided_at) VALUES (?, ?, ?, now())",
                                 [(i, tag, state) for i in ids])

    def refresh_file_tags(self, tags: Sequence[tuple[str, str | None]], memberships: Sequence[tuple[int, str]]) -> int:
        """Make the keywords read from the files the catalog's ``file`` decisions: ``tags`` (name,
        parent) are created where no tag of that name exists (any case; source ``file``, never
        scored), and ``memberships`` (photo id, tag name) replace every earlier ``file``
        decision, except where the user decided on that photo and tag. ``file`` tags left without
        any decision are forgotten. Returns the number of file decisions."""
        import pyarrow as pa

        known = {t.lower(): t for (t,) in self.con.execute("SELECT name FROM tags").fetchall()}
        new = []
        for name, parent in tags:
            if name.lower() not in known:
                known[name.lower()] = name
                new.append((name, known.get(parent.lower()) if parent else None))
        if new:
            self.con.executemany("INSERT INTO tags VALUES (?, 'Keywords', ?, 2.0, [], [], 'file', now())", new)
        self.con.execute("DELETE FROM tag_decisions WHERE source = 'file'")
        if memberships:
            table = pa.table({"photo_id": pa.array([m[0] for m in memberships], pa.int64()),
                              "tag": pa.array([known[m[1].lower()] for m in memberships], pa.string())})
            self.con.register("_file_tags", table)
            try:
                self.con.execute(
                    "INSERT INTO tag_decisions (photo_id, tag, state, decided_at, source) "
                    "SELECT DISTINCT f.photo_id, f.tag, 'accepted', now(), 'file' FROM _file_tags f "
                    "JOIN photos p ON p.id = f.photo_id WHERE NOT EXISTS (SELECT 1 FROM tag_decisions d "
                    "WHERE d.photo_id = f.photo_id AND d.tag = f.tag)")
            finally:
                self.con.unregister("_file_tags")
        self.con.execute("DELETE FROM tags WHERE source = 'file' AND NOT EXISTS "
                         "(SELECT 1 FROM tag_decisions d WHERE d.tag = tags.name) AND NOT EXISTS "
                         "(SELECT 1 FROM tags c WHERE c.parent = tags.name)")
        return int(self.con.execute("SELECT count(*) FROM tag_decisions WHERE source = 'file'").fetchone()[0])

    def keyword_rows(self) -> Iterator[tuple[int, list[str], list[str]]]:
        """(photo id, flat keywords, keyword paths) of every photo with keywords."""
        for rows in row_chunks(self.con, "SELECT id, keywords, keyword_paths FROM photos "
                               "WHERE len(keywords) > 0 OR len(keyword_paths) > 0", chunk=50_000):
            for pid, flat, paths in rows:
                yield pid, list(flat or []), list(paths or [])

    def decisions(self, tag: str) -> dict[int, str]:
        """Per-photo decision states (e.g. accepted, rejected) recorded for a tag."""
        return dict(self.con.execute("SELECT photo_id, state FROM tag_decisions WHERE tag = ?", [tag]).fetchall())

    def tags_of_photos(self, photo_ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
        """Per photo: its tags with score, state ('auto', 'accepted', 'rejected') and whether it counts."""
        cur = self.con.execute(
            "WITH p AS (SELECT unnest(?::BIGINT[]) AS id), "
            "x AS (SELECT s.photo_id, s.tag, s.score FROM tag_scores s WHERE s.photo_id IN (SELECT id FROM p) "
            "UNION ALL SELECT d.photo_id, d.tag, NULL FROM tag_decisions d WHERE d.photo_id IN (SELECT id FROM p) "
            "AND NOT EXISTS (SELECT 1 FROM tag_scores s WHERE s.photo_id = d.photo_id AND s.tag = d.tag)) "
            "SELECT x.photo_id, x.tag, x.score, coalesce(d.state, 'auto'), t.threshold, t.parent FROM x "
            "JOIN tags t ON t.name = x.tag LEFT JOIN tag_decisions d ON d.photo_id = x.photo_id AND d.tag = x.tag "
            "ORDER BY x.photo_id, x.score DESC NULLS FIRST, x.tag", [[int(i) for i in photo_ids]])
        out: dict[int, list[dict[str, Any]]] = {}
        for pid, tag, score, state, threshold, parent in cur.fetchall():
            on = state == "accepted" or (state == "auto" and score is not None and score >= threshold)
            out.setdefault(pid, []).append({"tag": tag, "score": score, "state": state, "on": on,
                                            "threshold": threshold, "parent": parent})
        return out

    def tagged_photo_ids(self) -> list[int]:
        """Photos carrying at least one tag (accepted, or auto at/above threshold)."""
        rows = self.con.execute(
            "SELECT photo_id FROM tag_decisions WHERE state = 'accepted' UNION "
            "SELECT s.photo_id FROM tag_scores s JOIN tags t ON t.name = s.tag LEFT JOIN tag_decisions d "
            "ON d.photo_id = s.photo_id AND d.tag = s.tag WHERE s.score >= t.threshold AND d.state IS NULL").fetchall()
        return sorted(r[0] for r in rows)

    def review_queue(self, below: float, above: float, tag: str | None, limit: int) -> list[dict[str, Any]]:
        """Undecided proposals with above <= score < below, grouped per photo, most likely first."""
        where = "s.score >= ? AND s.score < ? AND d.state IS NULL AND p.quarantined_at IS NULL"
        params: list[Any] = [above, below]
        if tag:
            where += " AND s.tag = ?"
            params.append(tag)
        cur = self.con.execute(
            "SELECT s.photo_id, p.path, list({'tag': s.tag, 'score': s.score} ORDER BY s.score DESC) AS tags, "
            "max(s.score) AS best FROM tag_scores s JOIN photos p ON p.id = s.photo_id "
            "LEFT JOIN tag_decisions d ON d.photo_id = s.photo_id AND d.tag = s.tag "
            f"WHERE {where} GROUP BY s.photo_id, p.path ORDER BY best DESC, s.photo_id LIMIT ?", [*params, int(limit)])
        return [{"photo_id": r[0], "path": r[1], "tags": [dict(t) for t in r[2]]} for r in cur.fetchall()]

    def tagged_ranked(self, tags: Sequence[str], limit: int) -> list[tuple[int, float]]:
        """Photos carrying all ``tags``, by their lowest score among them (accepted counts as 1)."""
        if not tags:
            return []
        clauses = " AND ".join([f"p.id IN ({TAGGED_SQL})"] * len(tags))
        params: list[Any] = []
        for t in tags:
            params += [t, t]
        cur = self.con.execute(
            f"SELECT p.id, min(CASE WHEN d.state = 'accepted' THEN 1.0 ELSE coalesce(s.score, 1.0) END) AS sc "
            f"FROM photos p LEFT JOIN tag_scores s ON s.photo_id = p.id AND s.tag IN (SELECT unnest(?::VARCHAR[])) "
            f"LEFT JOIN tag_decisions d ON d.photo_id = p.id AND d.tag = s.tag "
            f"WHERE p.quarantined_at IS NULL AND {clauses} GROUP BY p.id ORDER BY sc DESC, p.id LIMIT ?",
            [list(tags), *params, int(limit)])
        return [(r[0], float(r[1])) for r in cur.fetchall()]

    def set_ratings(self, photo_ids: Sequence[int], rating: int | None) -> None:
        """Set (or with None, clear) photosearch ratings; the catalog's rating column follows."""
        ids = [int(i) for i in photo_ids]
        self._dirty = True
        self.con.execute("DELETE FROM photo_ratings WHERE photo_id IN (SELECT unnest(?::BIGINT[]))", [ids])
        if rating is not None:
            self.con.executemany("INSERT INTO photo_ratings VALUES (?, ?, now())", [(i, rating) for i in ids])
            self.con.execute("UPDATE photos SET rating = ? WHERE id IN (SELECT unnest(?::BIGINT[]))", [rating, ids])

    def ratings(self) -> dict[int, int]:
        """Ratings of non-quarantined photos, by photo id."""
        return dict(self.con.execute("SELECT r.photo_id, r.rating FROM photo_ratings r JOIN photos p "
                                     "ON p.id = r.photo_id WHERE p.quarantined_at IS NULL").fetchall())

    def canonical_tag(self, name: str) -> str | None:
        """The tag a name or alias means (case-insensitive), or None."""
        key = " ".join(name.split()).lower()
        rows = self.con.execute("SELECT name, aliases FROM tags").fetchall()
        for tag, _ in rows:
            if tag.lower() == key:
                return tag
        for tag, aliases in rows:
            if key in (a.lower() for a in aliases or []):
                return tag
        return None

    def save_probe(self, tag: str, model: str, weights: np.ndarray, bias: float, positives: int, negatives: int) -> None:
        """Store a tag's linear probe for ``model``, with its training counts, replacing any previous one."""
        self.con.execute("DELETE FROM tag_probes WHERE tag = ?", [tag])
        self.con.execute("INSERT INTO tag_probes VALUES (?, ?, ?, ?, ?, ?, now())",
                         [tag, model, np.ascontiguousarray(weights, dtype="<f4").tobytes(), float(bias),
                          positives, negatives])

    def drop_probe(self, tag: str) -> None:
        """Delete a tag's probe."""
        self.con.execute("DELETE FROM tag_probes WHERE tag = ?", [tag])

    def probes(self, model: str) -> dict[str, tuple[np.ndarray, float, int, int]]:
        """The ``model`` probes by tag: (weights, bias, positives, negatives)."""
        rows = self.con.execute("SELECT tag, weights, bias, positives, negatives FROM tag_probes WHERE model = ?",
                                [model]).fetchall()
        return {r[0]: (np.frombuffer(r[1], dtype="<f4").copy(), float(r[2]), r[3], r[4]) for r in rows}

    def export_rows(self) -> Iterator[tuple[Any, ...]]:
        """(id, path, taken_at, camera_make, camera_model, gps_lat, gps_lon, rating) of every searchable
        photo, by path."""
        for rows in row_chunks(self.con, "SELECT id, path, taken_at, camera_make, camera_model, gps_lat, gps_lon, "
                               "rating FROM photos WHERE quarantined_at IS NULL ORDER BY path", chunk=10_000):
            yield from rows

    def people_of_photos(self, photo_ids: Sequence[int]) -> dict[int, list[str]]:
        """Names of the named people whose faces are in each photo, sorted (photos without any are absent)."""
        rows = self.con.execute(
            "SELECT f.photo_id, list(DISTINCT p.name ORDER BY p.name) FROM faces f JOIN people p ON p.id = f.person_id "
            "WHERE p.name IS NOT NULL AND f.photo_id IN (SELECT unnest(?::BIGINT[])) GROUP BY f.photo_id",
            [[int(i) for i in photo_ids]]).fetchall()
        return {r[0]: list(r[1]) for r in rows}

