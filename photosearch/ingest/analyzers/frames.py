"""Video frames: a CLIP vector for every sampled moment of a video (table ``frame_embeddings``).

The video's own row gets the first frame's vector from the CLIP analyzer, like a photo; this
analyzer adds the rest, so a search finds the moment. A video's frames are one batch."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from photosearch.ingest.analyzers.base import Analyzer, Photo
from photosearch.media.video import is_video

if TYPE_CHECKING:
    from photosearch.models.base import ImageEncoder
    from photosearch.store.catalog import Catalog

#: Frames encoded at once (bounded memory for the model's activations).
CHUNK = 32


class FramesAnalyzer(Analyzer):
    """Output: (seconds, vectors, pHash variants) of a video's sampled frames (columns ``frame_t``,
    ``frame_vectors``, ``frame_phash``); the first frame's vector is also the video's own
    (table ``embeddings``, which the CLIP analyzer leaves to this one for videos). It runs when
    the video is new or changed, and when that vector is missing (a new model)."""

    name = "frames"
    beside = True

    def __init__(self, model: ImageEncoder, model_name: str) -> None:
        self.model = model
        self.model_name = model_name
        self.min_side = model.image_size
        self.check = ("embeddings", model_name)   # the video's own vector: a new model redoes its frames

    def wanted(self, item: Any) -> bool:
        return is_video(item.path) and (item.full or self.name in item.lacks)

    def analyze(self, photo: Photo) -> Any:
        from photosearch.media.hashes import compute

        if not photo.frames:
            return None
        ts = [t for t, _ in photo.frames]
        vecs = []
        for i in range(0, len(photo.frames), CHUNK):
            batch = np.stack([self.model.preprocess(img) for _, img in photo.frames[i:i + CHUNK]])
            vecs.append(np.asarray(self.model.encode_pixels(batch), np.float32))
        # Each moment's pHash too: a re-encoded or trimmed copy of the video lines up by them.
        hashes = np.array([compute(img).phash for _, img in photo.frames], np.uint64).reshape(len(ts), 8)
        return ts, np.concatenate(vecs), hashes

    def columns(self, outputs: list[Any]) -> dict[str, Any]:
        import pyarrow as pa

        return {
            "frame_t": pa.array([None if o is None else list(o[0]) for o in outputs], pa.list_(pa.float64())),
            "frame_vectors": pa.array([None if o is None else o[1].astype(np.float32).tolist() for o in outputs],
                                      pa.list_(pa.list_(pa.float32()))),
            "frame_phash": pa.array([None if o is None else o[2].tolist() for o in outputs],
                                    pa.list_(pa.list_(pa.uint64()))),
        }

    def from_row(self, row: dict[str, Any]) -> Any:
        if row.get("frame_t") is None:
            return None
        hashes = row.get("frame_phash")
        return (list(row["frame_t"]), np.asarray(row["frame_vectors"], np.float32),
                None if hashes is None else np.asarray(hashes, np.uint64).reshape(-1, 8))

    def store(self, cat: Catalog, rows: list[tuple[int, Any]]) -> int:
        cat.add_frames(self.model_name, [(vid, ts, vecs, hashes) for vid, (ts, vecs, hashes) in rows])
        if rows:  # the video's own vector: its first frame's (the CLIP analyzer leaves videos to this one)
            cat.add_embeddings(self.model_name, [vid for vid, _ in rows], np.stack([out[1][0] for _, out in rows]))
        return 0


__all__ = ["FramesAnalyzer"]
