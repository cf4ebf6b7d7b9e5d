"""SQL of video frames: the sampled moments of each video and their CLIP vectors (migration 0010).

Frames have ids of their own (``frame_id_seq``) and vectors in ``frame_embeddings``, indexed apart
from photos (:class:`FrameVectors`, key ``frames:<model>``): code about photos never meets a frame id.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from photosearch.store.records import SHOWN, JoinedVectors



class FramesStore:
    """Mixin of :class:`~photosearch.store.catalog.Catalog`: video frames."""

    con: Any
    _dirty: bool

    def add_frames(self, model: str, videos: Sequence[tuple[int, Sequence[float], np.ndarray, np.ndarray | None]]) -> int:
        """Store the sampled frames of videos as (video id, seconds, vectors of ``model``, pHash
        variants (n, 8) or None: keep those known): a frame at a moment the video already has
        keeps its id; this model's vectors of the videos are replaced. Two bulk inserts for all
        of them (a statement a row costs about a millisecond). Returns the frames stored."""
        import pyarrow as pa

        if not videos:
            return 0
        self._dirty = True
        vids = [int(v) for v, *_ in videos]
        known = {(int(p), float(t)): (int(i), h) for i, p, t, h in self.con.execute(
            "SELECT id, photo_id, t, phash FROM video_frames WHERE photo_id IN (SELECT unnest(?::BIGINT[]))",
            [vids]).fetchall()}
        wanted = [(int(v), float(t)) for v, ts, _, _ in videos for t in ts]
        fresh = [k for k in dict.fromkeys(wanted) if k not in known]
        ids = iter(r[0] for r in self.con.execute("SELECT nextval('frame_id_seq') FROM range(?)",
                                                  [len(fresh)]).fetchall())
        known.update({k: (next(ids), None) for k in fresh})
        rows_id, rows_video, rows_t, rows_hash, vectors = [], [], [], [], []
        for v, ts, vecs, hashes in videos:
            for n, t in enumerate(ts):
                fid, old = known[(int(v), float(t))]
                rows_id.append(fid)
                rows_video.append(int(v))
                rows_t.append(float(t))
                rows_hash.append([int(x) for x in hashes[n]] if hashes is not None else old)
            vectors.append(np.ascontiguousarray(vecs, dtype="<f4"))
        frames = pa.table({"id": pa.array(rows_id, pa.int64()), "photo_id": pa.array(rows_video, pa.int64()),
                           "t": pa.array(rows_t, pa.float64()), "phash": pa.array(rows_hash, pa.list_(pa.uint64()))})
        flat = np.concatenate(vectors)
        embeddings = pa.table({"frame_id": pa.array(rows_id, pa.int64()), "model": pa.array([model] * len(rows_id)),
                               "vector": pa.array([r.tobytes() for r in flat], pa.binary())})
        self.con.execute("DELETE FROM frame_embeddings WHERE model = ? AND frame_id IN (SELECT id FROM video_frames "
                         "WHERE photo_id IN (SELECT unnest(?::BIGINT[])))", [model, vids])
        self.con.execute("DELETE FROM video_frames WHERE id IN (SELECT unnest(?::BIGINT[]))", [rows_id])
        for name, table, sql in (("_new_frames", frames, "INSERT INTO video_frames SELECT * FROM _new_frames"),
                                 ("_new_frame_vectors", embeddings,
                                  "INSERT INTO frame_embeddings SELECT * FROM _new_frame_vectors")):
            self.con.register(name, table)
            try:
                self.con.execute(sql)
            finally:
                self.con.unregister(name)
        return len(rows_id)

    def delete_frames(self, video_ids: Sequence[int]) -> None:
        """Remove the frames (and their vectors) of these videos."""
        ids = [int(i) for i in video_ids]
        self.con.execute("DELETE FROM frame_embeddings WHERE frame_id IN (SELECT id FROM video_frames "
                         "WHERE photo_id IN (SELECT unnest(?::BIGINT[])))", [ids])
        self.con.execute("DELETE FROM video_frames WHERE photo_id IN (SELECT unnest(?::BIGINT[]))", [ids])

    def copy_frames(self, src_id: int, dst_id: int) -> None:
        """Give the copy ``dst_id`` of a video the frames and vectors of ``src_id`` (new frame ids)."""
        rows = self.con.execute("SELECT id, t FROM video_frames WHERE photo_id = ? ORDER BY t", [src_id]).fetchall()
        for old, t in rows:
            (new,) = self.con.execute("SELECT nextval('frame_id_seq')").fetchone()
            self.con.execute("INSERT INTO video_frames SELECT ?, ?, t, phash FROM video_frames WHERE id = ?",
                             [new, dst_id, old])
            self.con.execute("INSERT INTO frame_embeddings SELECT ?, model, vector FROM frame_embeddings "
                             "WHERE frame_id = ?", [new, old])

    def frames_by_ids(self, frame_ids: Sequence[int]) -> dict[int, tuple[int, float]]:
        """{frame id: (video id, seconds)} of the known ``frame_ids``."""
        rows = self.con.execute("SELECT id, photo_id, t FROM video_frames WHERE id IN (SELECT unnest(?::BIGINT[]))",
                                [[int(i) for i in frame_ids]]).fetchall()
        return {int(i): (int(p), float(t)) for i, p, t in rows}

    def frame_ids_of(self, video_ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """Ids of the frames of these videos (int64 array)."""
        res = self.con.execute("SELECT id FROM video_frames WHERE photo_id IN (SELECT unnest(?::BIGINT[])) ORDER BY id",
                               [np.asarray(video_ids, dtype=np.int64).tolist()]).fetchnumpy()
        return np.asarray(res["id"], dtype=np.int64)

    def frames_of(self, video_id: int, model: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(frame ids, seconds, vectors of ``model``) of one video, in time order."""
        rows = self.con.execute("SELECT f.id, f.t, e.vector FROM video_frames f JOIN frame_embeddings e "
                                "ON e.frame_id = f.id WHERE f.photo_id = ? AND e.model = ? ORDER BY f.t",
                                [int(video_id), model]).fetchall()
        ids = np.array([r[0] for r in rows], np.int64)
        ts = np.array([r[1] for r in rows], np.float64)
        if not rows:  # no frames of this model (a video kept without a picture, or not re-indexed yet)
            return ids, ts, np.zeros((0, 0), np.float32)
        vecs = np.frombuffer(b"".join(r[2] for r in rows), dtype="<f4").reshape(len(rows), -1)
        return ids, ts, vecs

    def frame_models(self) -> list[str]:
        """The CLIP models that have frame vectors."""
        return [r[0] for r in self.con.execute("SELECT DISTINCT model FROM frame_embeddings ORDER BY model").fetchall()]

    def video_counts(self) -> tuple[int, int]:
        """(videos, sampled frames) in the catalog."""
        videos = self.con.execute("SELECT count(*) FROM photos WHERE media = 'video'").fetchone()[0]
        frames = self.con.execute("SELECT count(*) FROM video_frames").fetchone()[0]
        return int(videos), int(frames)

    def frame_hashes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(frame ids, video ids, seconds, pHash variants (n, 8) uint64) of the hashed frames of
        the videos a duplicate search may show."""
        rows = self.con.execute(
            "SELECT f.id, f.photo_id, f.t, f.phash FROM video_frames f JOIN photos p ON p.id = f.photo_id "
            f"WHERE f.phash IS NOT NULL AND len(f.phash) = 8 AND {SHOWN.format(p='p.')} ORDER BY f.id").fetchall()
        return (np.array([r[0] for r in rows], np.int64), np.array([r[1] for r in rows], np.int64),
                np.array([r[2] for r in rows], np.float64),
                np.array([r[3] for r in rows], np.uint64).reshape(len(rows), 8))

    def live_photo_candidates(self) -> list[tuple[int, Any, int, Any, bool]]:
        """(movie id, its time, still id, its time, by Apple's identifier) for videos not yet
        paired: a photo with the same Live Photo identifier (anywhere, whatever its name), or a
        photo of the same name in the same folder (IMG_1234.MOV and IMG_1234.HEIC) beside a short
        video, unless both carry identifiers that differ. By identifier first, then by id."""
        return self.con.execute(
            "WITH v AS (SELECT id, taken_at, live_id, duration, regexp_replace(path, '\\.[^./]*$', '') AS stem "
            "FROM photos WHERE media = 'video' AND live_of IS NULL AND quarantined_at IS NULL), "
            "s AS (SELECT id, taken_at, live_id, path FROM photos WHERE coalesce(media, 'photo') = 'photo' "
            "AND quarantined_at IS NULL AND id NOT IN (SELECT live_of FROM photos WHERE live_of IS NOT NULL)), "
            "by_id AS (SELECT v.id AS m, v.taken_at AS mt, s.id AS p, s.taken_at AS pt, true AS by_id "
            "FROM v JOIN s ON s.live_id = v.live_id), "
            "by_name AS (SELECT v.id, v.taken_at, s.id, s.taken_at, false FROM v JOIN s "
            "ON regexp_replace(s.path, '\\.[^./]*$', '') = v.stem WHERE coalesce(v.duration, 0) <= 10 "
            "AND (v.live_id IS NULL OR s.live_id IS NULL OR v.live_id = s.live_id)) "
            "SELECT * FROM (SELECT * FROM by_id UNION ALL SELECT * FROM by_name) ORDER BY 1, 5 DESC, 3").fetchall()

    def set_live_pairs(self, pairs: Sequence[tuple[int, int]]) -> None:
        """Mark movies as the moving half of Live Photos: (movie id, still id)."""
        if pairs:
            self._dirty = True
            self.con.executemany("UPDATE photos SET live_of = ? WHERE id = ?", [(s, m) for m, s in pairs])

    def live_movies_of(self, still_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        """The movie rows of these Live Photo stills, by still id."""
        rows = self._photo_dicts("WHERE live_of IN (SELECT unnest(?::BIGINT[]))",  # type: ignore[attr-defined]
                                 [[int(i) for i in still_ids]])
        return {r["live_of"]: r for r in rows}

    def frame_vectors(self, model: str) -> FrameVectors:
        """The frame vectors of ``model`` in searchable videos, as a vector index source."""
        return FrameVectors(self, model)  # type: ignore[arg-type]


class FrameVectors(JoinedVectors):
    """A model's frame vectors (frames of searchable videos only) as a vector index source."""

    KIND = "frames"
    has_rows = True
    _FROM = ("FROM frame_embeddings e JOIN video_frames f ON f.id = e.frame_id JOIN photos p ON p.id = f.photo_id "
             f"WHERE e.model = ? AND {SHOWN.format(p='p.')}")
    _ID, _VECTOR = "e.frame_id", "e.vector"
    _TABLE, _TABLE_ID = "frame_embeddings", "frame_id"

    def write_rows(self, path: Any) -> int:
        """The rows file beside the frames index: each frame's video and moment (a search merges
        moments without the catalog)."""
        from photosearch.store.rows import write_dicts

        rows = self.catalog.con.execute(
            f"SELECT DISTINCT e.frame_id, f.photo_id, f.t {self._FROM} ORDER BY e.frame_id", [self.model]).fetchall()
        return write_dicts(path, ((i, {"video": v, "t": t}) for i, v, t in rows))


__all__ = ["FramesStore", "FrameVectors"]
