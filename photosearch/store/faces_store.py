"""Faces (detected or from file regions) and people.

A part of :class:`photosearch.store.catalog.Catalog` (which opens the connection and
keeps ``self.con`` and the ``_dirty`` flag of the running transaction).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


from photosearch.store.records import FaceRow, _face_dict


class FacesStore:
    """Faces (detected or from file regions) and people."""

    con: Any
    _dirty: bool

    # -- faces ------------------------------------------------------------------------------

    def count_faces(self) -> int:
        """Number of faces in the catalog."""
        return int(self.con.execute("SELECT count(*) FROM faces").fetchone()[0])

    def face_scanned_ids(self, model: str) -> set[int]:
        """Photo ids the face model has looked at (with or without faces found)."""
        return {r[0] for r in self.con.execute("SELECT photo_id FROM face_scans WHERE model = ?", [model]).fetchall()}

    def add_faces(self, photo_id: int, model: str, faces: Sequence[FaceRow]) -> list[int]:
        """Record a face scan of one photo and its faces; returns the new face ids (in order)."""
        return self.add_face_scans(model, [(photo_id, faces)])

    def add_face_scans(self, model: str, scans: Sequence[tuple[int, Sequence[FaceRow]]]) -> list[int]:
        """Record face scans of several photos (a rescan replaces this model's faces and the faces
        read from the file's regions); returns the new face ids, photo by photo, in order.
        One statement per table for all photos: per-photo statements cost ~10 ms a photo."""
        if not scans:
            return []
        import pyarrow as pa

        self._dirty = True
        photo_ids = [int(p) for p, _ in scans]
        self.con.execute("DELETE FROM face_scans WHERE model = ? AND photo_id IN (SELECT unnest(?::BIGINT[]))",
                         [model, photo_ids])
        self.con.execute("DELETE FROM face_rejections WHERE face_id IN (SELECT id FROM faces WHERE photo_id IN "
                         "(SELECT unnest(?::BIGINT[])) AND (model = ? OR source = 'file'))", [photo_ids, model])
        self.con.execute("DELETE FROM faces WHERE photo_id IN (SELECT unnest(?::BIGINT[])) "
                         "AND (model = ? OR source = 'file')", [photo_ids, model])
        counts = pa.table({"photo_id": pa.array(photo_ids, pa.int64()),
                           "faces": pa.array([sum(1 for f in fs if f.vector is not None) for _, fs in scans],
                                             pa.int32())})
        self.con.register("_new_scans", counts)
        try:
            self.con.execute("INSERT INTO face_scans SELECT photo_id, ?, faces, now() FROM _new_scans", [model])
        finally:
            self.con.unregister("_new_scans")
        rows = [(pid, f) for pid, fs in scans for f in fs]
        if not rows:
            return []
        ids = [r[0] for r in self.con.execute("SELECT nextval('face_id_seq') FROM range(?)", [len(rows)]).fetchall()]
        table = pa.table({
            "id": pa.array(ids, pa.int64()),
            "photo_id": pa.array([int(p) for p, _ in rows], pa.int64()),
            "model": pa.array([f.model if f.vector is not None else None for _, f in rows], pa.string()),
            **{k: pa.array([float(f.box[i]) for _, f in rows], pa.float64()) for i, k in enumerate("xywh")},
            "score": pa.array([None if f.score is None else float(f.score) for _, f in rows], pa.float64()),
            "vector": pa.array([None if f.vector is None else np.ascontiguousarray(f.vector, dtype="<f4").tobytes()
                                for _, f in rows], pa.binary()),
            "person_id": pa.array([f.person_id for _, f in rows], pa.int64()),
            "assigned": pa.array([f.assigned for _, f in rows], pa.string()),
            "source": pa.array([f.source for _, f in rows], pa.string()),
            "region_name": pa.array([f.region_name for _, f in rows], pa.string()),
            "t": pa.array([f.t for _, f in rows], pa.float64()),
        })
        self.con.register("_new_faces", table)
        try:
            self.con.execute("INSERT INTO faces SELECT * FROM _new_faces")
        finally:
            self.con.unregister("_new_faces")
        return ids

    def faces_of_photos(self, photo_ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
        """Faces (with person names) of the given photos, largest first."""
        cur = self.con.execute(
            "SELECT f.id, f.photo_id, f.model, f.x, f.y, f.w, f.h, f.score, f.person_id, p.name, f.assigned, "
            "f.source, f.region_name, f.t FROM faces f LEFT JOIN people p ON p.id = f.person_id "
            "WHERE f.photo_id IN (SELECT unnest(?::BIGINT[])) ORDER BY f.photo_id, f.w * f.h DESC, f.id",
            [[int(i) for i in photo_ids]])
        out: dict[int, list[dict[str, Any]]] = {}
        for r in cur.fetchall():
            out.setdefault(r[1], []).append(_face_dict(r))
        return out

    def faces_by_ids(self, face_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        """Face dicts (with the person's name) by id (unknown ids are absent)."""
        cur = self.con.execute(
            "SELECT f.id, f.photo_id, f.model, f.x, f.y, f.w, f.h, f.score, f.person_id, p.name, f.assigned, "
            "f.source, f.region_name, f.t FROM faces f LEFT JOIN people p ON p.id = f.person_id "
            "WHERE f.id IN (SELECT unnest(?::BIGINT[]))", [[int(i) for i in face_ids]])
        return {r[0]: _face_dict(r) for r in cur.fetchall()}

    def face_photo_ids(self, face_ids: np.ndarray) -> np.ndarray:
        """The photo id of each face id (same order; -1 for unknown ids)."""
        res = self.con.execute("SELECT id, photo_id FROM faces WHERE id IN (SELECT unnest(?::BIGINT[]))",
                               [np.asarray(face_ids, dtype=np.int64).tolist()]).fetchall()
        lookup = dict(res)
        return np.array([lookup.get(int(i), -1) for i in face_ids], dtype=np.int64)

    def face_ids_of_photos(self, model: str, photo_ids: np.ndarray) -> np.ndarray:
        """Ids of the faces with vectors from ``model`` in the given photos."""
        res = self.con.execute(
            "SELECT id FROM faces WHERE model = ? AND vector IS NOT NULL "
            "AND photo_id IN (SELECT unnest(?::BIGINT[]))",
            [model, np.asarray(photo_ids, dtype=np.int64).tolist()]).fetchnumpy()
        return np.asarray(res["id"], dtype=np.int64)

    def face_table(self, model: str) -> dict[str, np.ndarray]:
        """Every searchable face with a vector of ``model``: id, photo_id, person_id (-1: none), vectors."""
        rows = self.con.execute(
            "SELECT f.id, f.photo_id, coalesce(f.person_id, -1), f.assigned, f.vector FROM faces f "
            "JOIN photos p ON p.id = f.photo_id WHERE f.model = ? AND f.vector IS NOT NULL "
            "AND p.quarantined_at IS NULL ORDER BY f.id", [model]).fetchall()
        n = len(rows)
        return {
            "id": np.fromiter((r[0] for r in rows), np.int64, n),
            "photo_id": np.fromiter((r[1] for r in rows), np.int64, n),
            "person_id": np.fromiter((r[2] for r in rows), np.int64, n),
            "assigned": np.array([r[3] or "" for r in rows], dtype=object),
            "vectors": (np.frombuffer(b"".join(r[4] for r in rows), dtype="<f4").reshape(n, -1)
                        if n else np.zeros((0, 0), np.float32)),
        }

    # -- people -----------------------------------------------------------------------------

    def people(self) -> list[dict[str, Any]]:
        """Every person and cluster with face and photo counts (quarantined photos not counted);
        named first, then by size."""
        cur = self.con.execute(
            "SELECT p.id, p.name, count(f.id) AS faces, count(DISTINCT f.photo_id) AS photos FROM people p "
            "LEFT JOIN faces f ON f.person_id = p.id "
            "AND f.photo_id IN (SELECT id FROM photos WHERE quarantined_at IS NULL) GROUP BY p.id, p.name "
            "ORDER BY p.name IS NULL, lower(p.name), faces DESC, p.id")
        return [dict(zip(("id", "name", "faces", "photos"), r)) for r in cur.fetchall()]

    def person(self, person_id: int) -> dict[str, Any] | None:
        """A person's id and name, or None if unknown."""
        row = self.con.execute("SELECT id, name FROM people WHERE id = ?", [int(person_id)]).fetchone()
        return None if row is None else {"id": row[0], "name": row[1]}

    def person_by_name(self, name: str) -> dict[str, Any] | None:
        """The lowest-id person with this name (case-insensitive), or None."""
        row = self.con.execute("SELECT id, name FROM people WHERE lower(name) = lower(?) ORDER BY id LIMIT 1",
                               [name]).fetchone()
        return None if row is None else {"id": row[0], "name": row[1]}

    def create_person(self, name: str | None = None) -> int:
        """Create a person, optionally named; returns the new id."""
        self._dirty = True
        pid = self.con.execute("SELECT nextval('person_id_seq')").fetchone()[0]
        self.con.execute("INSERT INTO people VALUES (?, ?, now())", [pid, name])
        return int(pid)

    def create_people(self, n: int) -> list[int]:
        """Create ``n`` unnamed people; returns their ids."""
        if n <= 0:
            return []
        self._dirty = True
        ids = [r[0] for r in self.con.execute("SELECT nextval('person_id_seq') FROM range(?)", [n]).fetchall()]
        self.con.executemany("INSERT INTO people VALUES (?, NULL, now())", [(i,) for i in ids])
        return ids

    def rename_person(self, person_id: int, name: str | None) -> None:
        """Set (or, with None, clear) a person's name."""
        self._dirty = True
        self.con.execute("UPDATE people SET name = ? WHERE id = ?", [name, int(person_id)])

    def assign_faces(self, face_ids: Sequence[int], person_id: int | None, assigned: str | None) -> None:
        """Assign faces to a person (None: nobody), recording how they were assigned."""
        if not len(face_ids):
            return
        self._dirty = True
        self.con.execute("UPDATE faces SET person_id = ?, assigned = ? WHERE id IN (SELECT unnest(?::BIGINT[]))",
                         [person_id, assigned, [int(i) for i in face_ids]])

    def assign_many(self, pairs: Sequence[tuple[int, int]], assigned: str) -> None:
        """(face id, person id) assignments in one statement."""
        if not pairs:
            return
        self._dirty = True
        frame = {"face_id": np.array([p[0] for p in pairs], np.int64), "person_id": np.array([p[1] for p in pairs], np.int64)}
        self.con.register("_assign", frame)
        try:
            self.con.execute("UPDATE faces SET person_id = a.person_id, assigned = ? FROM _assign a "
                             "WHERE faces.id = a.face_id", [assigned])
        finally:
            self.con.unregister("_assign")

    def mark_faces_processed(self, face_ids: Sequence[int]) -> None:
        """Clustering looked at these faces and found them no person."""
        if face_ids:
            self.con.execute("UPDATE faces SET assigned = 'none' WHERE id IN (SELECT unnest(?::BIGINT[])) "
                             "AND assigned IS NULL", [list(face_ids)])

    def reset_auto_assignments(self, model: str) -> None:
        """Unassign the faces of ``model`` that were not assigned by hand."""
        self._dirty = True
        self.con.execute("UPDATE faces SET person_id = NULL, assigned = NULL WHERE model = ? "
                         "AND (assigned IS NULL OR assigned IN ('auto', 'none'))", [model])

    def merge_people(self, into: int, others: Sequence[int]) -> None:
        """Move the faces and rejections of ``others`` to ``into``, then delete ``others``."""
        self._dirty = True
        others = [int(o) for o in others if int(o) != int(into)]
        self.con.execute("UPDATE faces SET person_id = ? WHERE person_id IN (SELECT unnest(?::BIGINT[]))",
                         [int(into), others])
        # A face rejected from a merged cluster stays rejected from the merged person.
        self.con.execute("INSERT OR IGNORE INTO face_rejections SELECT face_id, ?, rejected_at FROM face_rejections "
                         "WHERE person_id IN (SELECT unnest(?::BIGINT[]))", [int(into), others])
        self.con.execute("DELETE FROM face_rejections WHERE person_id IN (SELECT unnest(?::BIGINT[]))", [others])
        self.con.execute("DELETE FROM people WHERE id IN (SELECT unnest(?::BIGINT[]))", [others])

    def delete_empty_people(self) -> int:
        """Drop unnamed clusters left without faces; returns how many."""
        rows = self.con.execute("SELECT id FROM people WHERE name IS NULL AND id NOT IN "
                                "(SELECT person_id FROM faces WHERE person_id IS NOT NULL)").fetchall()
        if rows:
            self._dirty = True
            ids = [r[0] for r in rows]
            self.con.execute("DELETE FROM face_rejections WHERE person_id IN (SELECT unnest(?::BIGINT[]))", [ids])
            self.con.execute("DELETE FROM people WHERE id IN (SELECT unnest(?::BIGINT[]))", [ids])
        return len(rows)

    def reject_face(self, face_id: int, person_id: int) -> None:
        """Record that a face is not this person, and unassign it if it was theirs."""
        self._dirty = True
        self.con.execute("INSERT OR IGNORE INTO face_rejections VALUES (?, ?, now())", [int(face_id), int(person_id)])
        self.con.execute("UPDATE faces SET person_id = NULL, assigned = 'rejected' WHERE id = ? AND person_id = ?",
                         [int(face_id), int(person_id)])

    def rejections(self) -> set[tuple[int, int]]:
        """All (face id, person id) rejection pairs."""
        return {(a, b) for a, b in self.con.execute("SELECT face_id, person_id FROM face_rejections").fetchall()}

    def person_faces(self, person_id: int, limit: int | None = None) -> list[dict[str, Any]]:
        """Faces of one person with their photo paths, best detection first."""
        sql = ("SELECT f.id, f.photo_id, f.model, f.x, f.y, f.w, f.h, f.score, f.person_id, pp.name, f.assigned, "
               "f.source, f.region_name, ph.path, ph.orientation FROM faces f JOIN photos ph ON ph.id = f.photo_id "
               "LEFT JOIN people pp ON pp.id = f.person_id WHERE f.person_id = ? "
               "ORDER BY f.score DESC NULLS LAST, f.id")
        if limit:
            sql += f" LIMIT {int(limit)}"
        out = []
        for r in self.con.execute(sql, [int(person_id)]).fetchall():
            d = _face_dict(r[:13])
            d["path"] = r[13]
            out.append(d)
        return out

    def named_faces_by_photo(self) -> dict[int, list[dict[str, Any]]]:
        """Faces of named people, per photo (for writing people into files)."""
        cur = self.con.execute(
            "SELECT f.id, f.photo_id, f.model, f.x, f.y, f.w, f.h, f.score, f.person_id, p.name, f.assigned, "
            "f.source, f.region_name, f.t FROM faces f JOIN people p ON p.id = f.person_id JOIN photos ph "
            "ON ph.id = f.photo_id WHERE p.name IS NOT NULL AND ph.quarantined_at IS NULL ORDER BY f.photo_id, f.id")
        out: dict[int, list[dict[str, Any]]] = {}
        for r in cur.fetchall():
            out.setdefault(r[1], []).append(_face_dict(r))
        return out

