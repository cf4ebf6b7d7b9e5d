"""Text read in photos (OCR): lines with their boxes, and the `--words` search over them.

A part of :class:`photosearch.store.catalog.Catalog` (which opens the connection and
keeps ``self.con`` and the ``_dirty`` flag of the running transaction).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from typing import Any

from photosearch.store.records import SHOWN

#: What separates the words of a document (and so of the vocabulary typos are forgiven in): any
#: character but a letter or a digit, of any script (migration 0017).
WORD_SPLIT = r"[^\pL\pN]+"


class TextStore:
    """Text read in photos."""

    con: Any
    _dirty: bool

    def add_text(self, model: str, scans: Sequence[tuple[int, Sequence[dict[str, Any]]]]) -> int:
        """Replace the text of photos read by ``model``: (photo id, lines), each line a dict with
        text, norm, score, quad (8 fractions) and words ([[word, [x, y, w, h]], ...]); returns the
        lines stored. The photos' search document and words are rebuilt with them."""
        if not scans:
            return 0
        self._dirty = True
        ids = [int(pid) for pid, _ in scans]
        self.con.execute("DELETE FROM photo_text WHERE model = ? AND photo_id IN (SELECT unnest(?::BIGINT[]))",
                         [model, ids])
        self.con.execute("DELETE FROM ocr_scans WHERE model = ? AND photo_id IN (SELECT unnest(?::BIGINT[]))",
                         [model, ids])
        import pyarrow as pa

        # Registered Arrow tables, not executemany (as add_hashes: a batch is one insert).
        scanned = pa.table({"photo_id": pa.array(ids, pa.int64()),
                            "lines": pa.array([len(lines) for _, lines in scans], pa.int32())})
        self.con.register("_new_scans", scanned)
        try:
            self.con.execute("INSERT INTO ocr_scans SELECT photo_id, ?, lines, now() FROM _new_scans", [model])
        finally:
            self.con.unregister("_new_scans")
        rows = [(int(pid), i, ln) for pid, lines in scans for i, ln in enumerate(lines)]
        if rows:
            table = pa.table({
                "photo_id": pa.array([r[0] for r in rows], pa.int64()),
                "line": pa.array([r[1] for r in rows], pa.int32()),
                "text": pa.array([r[2]["text"] for r in rows], pa.string()),
                "norm": pa.array([r[2]["norm"] for r in rows], pa.string()),
                "score": pa.array([r[2]["score"] for r in rows], pa.float64()),
                "quad": pa.array([r[2]["quad"] for r in rows], pa.list_(pa.float64())),
                "words": pa.array([json.dumps(r[2]["words"]) for r in rows], pa.string()),
            })
            self.con.register("_new_text", table)
            try:
                self.con.execute("INSERT INTO photo_text SELECT photo_id, ?, line, text, norm, score, quad, words "
                                 "FROM _new_text", [model])
            finally:
                self.con.unregister("_new_text")
        self._index_text(ids)
        return len(rows)

    def _index_text(self, ids: list[int]) -> None:
        """Rebuild the search document and words of these photos from their lines."""
        self.con.execute("DELETE FROM photo_docs WHERE photo_id IN (SELECT unnest(?::BIGINT[]))", [ids])
        self.con.execute("DELETE FROM text_words WHERE photo_id IN (SELECT unnest(?::BIGINT[]))", [ids])
        # Spaces around the document: a term may be matched as a whole word (' cat ') too.
        self.con.execute(
            "INSERT INTO photo_docs SELECT photo_id, ' ' || string_agg(norm, ' ' ORDER BY model, line) || ' ' "
            "FROM photo_text WHERE photo_id IN (SELECT unnest(?::BIGINT[])) GROUP BY photo_id", [ids])
        self.con.execute(
            "INSERT INTO text_words SELECT DISTINCT w, photo_id FROM (SELECT photo_id, "
            "unnest(regexp_split_to_array(doc, ?)) AS w FROM photo_docs "
            "WHERE photo_id IN (SELECT unnest(?::BIGINT[]))) WHERE length(w) >= 2", [WORD_SPLIT, ids])
        self.con.execute("INSERT INTO text_vocab SELECT DISTINCT word FROM text_words "
                         "WHERE photo_id IN (SELECT unnest(?::BIGINT[])) ON CONFLICT DO NOTHING", [ids])

    def text_of(self, photo_ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
        """The lines read in these photos (any model), top to bottom, by photo id."""
        rows = self.con.execute(
            "SELECT photo_id, line, text, score, quad, words, model FROM photo_text "
            "WHERE photo_id IN (SELECT unnest(?::BIGINT[])) ORDER BY photo_id, model, line",
            [[int(i) for i in photo_ids]]).fetchall()
        out: dict[int, list[dict[str, Any]]] = {}
        for pid, line, text, score, quad, words, model in rows:
            out.setdefault(pid, []).append({"line": line, "text": text, "score": score, "quad": quad,
                                            "words": json.loads(words) if words else [], "model": model})
        return out

    def photos_with_text(self) -> list[int]:
        """Ids of the photos that have text read in them."""
        return [r[0] for r in self.con.execute("SELECT photo_id FROM photo_docs ORDER BY photo_id").fetchall()]

    def text_counts(self) -> tuple[int, int]:
        """(photos read by OCR, photos with text)."""
        row = self.con.execute("SELECT count(*), count(*) FILTER (WHERE lines > 0) FROM "
                               "(SELECT photo_id, max(lines) AS lines FROM ocr_scans GROUP BY photo_id)").fetchone()
        return int(row[0]), int(row[1])

    def unread_words(self, terms: Sequence[str]) -> set[str]:
        """The ``terms`` made of letters and digits alone that no word ever read contains: no
        photo's text holds them as a sub-string (other terms are not looked at)."""
        import unicodedata

        out = set()
        for term in {t for t in terms if t and all(unicodedata.category(c)[0] in "LN" for c in t)}:
            row = self.con.execute("SELECT EXISTS (SELECT 1 FROM text_vocab WHERE contains(word, ?))", [term]).fetchone()
            if not row[0]:
                out.add(term)
        return out

    def words_matching(self, terms: Sequence[str], phrases: Sequence[str], fuzzy: Sequence[tuple[str, int]],
                       allowed: Sequence[int] | None, limit: int, unread: Collection[str] = ()) -> list[tuple[int, int, int]]:
        """(photo id, terms and phrases found exactly, found within their typo distance) of the
        searchable photos whose normalized text contains every phrase and every term as a
        sub-string or, for ``fuzzy`` (term, distance) ones, holds a word within that many edits;
        most exact first. ``allowed``: only these ids (other filters). ``unread``: fuzzy terms
        known to be in no text (``unread_words``), not looked for as sub-strings."""
        params: list[Any] = []
        ctes, cols, conds, exact, near = [], [], [], [], []
        for i, (term, dist) in enumerate(fuzzy):
            # Words of the vocabulary within `dist` edits (a length window first), and their photos.
            ctes.append(f"f{i} AS (SELECT DISTINCT photo_id FROM text_words WHERE word IN (SELECT word FROM "
                        "text_vocab WHERE length(word) BETWEEN ? AND ? AND damerau_levenshtein(word, ?) <= ?))")
            params += [len(term) - dist, len(term) + dist, term, dist]
        col_params: list[Any] = []
        for i, (term, _) in enumerate(fuzzy):
            cols += [f"false AS e{i}" if term in unread else f"contains(d.doc, ?) AS e{i}",
                     f"d.photo_id IN (SELECT photo_id FROM f{i}) AS n{i}"]
            if term not in unread:
                col_params.append(term)
            conds.append(f"(e{i} OR n{i})")
            exact.append(f"e{i}::INT")
            near.append(f"(n{i} AND NOT e{i})::INT")
        for j, term in enumerate([*terms, *phrases]):
            cols.append(f"contains(d.doc, ?) AS x{j}")
            col_params.append(term)
            conds.append(f"x{j}")
            exact.append("1")
        if not conds:
            return []
        where = []
        if allowed is not None:
            where.append("d.photo_id IN (SELECT unnest(?::BIGINT[]))")
            col_params.append([int(i) for i in allowed])
        # A term in no text is found only near: the documents to look at are its photos alone.
        where += [f"d.photo_id IN (SELECT photo_id FROM f{i})" for i, (t, _) in enumerate(fuzzy) if t in unread][:1]
        where_allowed = (" WHERE " + " AND ".join(where)) if where else ""
        # Each term is looked for once per document. Hidden photos (quarantined, a Live Photo's
        # movie) are few: leaving them out is an anti-join with them, not a join of every match
        # with the photos table (a common word matches a third of a library). A deleted photo's
        # document goes with it (delete_photos).
        ctes.append(f"m AS (SELECT d.photo_id, {', '.join(cols)} FROM photo_docs d{where_allowed})")
        sql = ("WITH " + ", ".join(ctes) + " "
               f"SELECT m.photo_id, {' + '.join(exact)} AS exact, {' + '.join(near) if near else '0'} AS near "
               f"FROM m WHERE {' AND '.join(conds)} AND m.photo_id NOT IN "
               f"(SELECT id FROM photos WHERE NOT ({SHOWN.format(p='')})) "
               "ORDER BY exact DESC, near DESC, m.photo_id LIMIT ?")
        rows = self.con.execute(sql, params + col_params + [int(limit)]).fetchall()
        return [(int(r[0]), int(r[1]), int(r[2])) for r in rows]
