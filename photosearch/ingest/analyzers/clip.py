"""CLIP image vectors: pixels preprocessed per photo, encoded in batches."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from photosearch.ingest.analyzers.base import Analyzer, Photo
from photosearch.media.video import is_video

if TYPE_CHECKING:
    from photosearch.models.base import ImageEncoder
    from photosearch.store.catalog import Catalog


class ClipAnalyzer(Analyzer):
    """The CLIP model's image vector (column ``vector``; table ``embeddings``)."""

    name = "clip"
    batched = True

    def __init__(self, model: ImageEncoder, model_name: str) -> None:
        self.model = model
        self.model_name = model_name
        self.check = ("embeddings", model_name)
        self.min_side = model.image_size

    def wanted(self, item: Any) -> bool:
        # A video's own vector is its first frame's, which the frames analyzer computes anyway.
        return super().wanted(item) and not is_video(item.path)

    def analyze(self, photo: Photo) -> Any:
        return self.model.preprocess(photo.small)

    def finish_batch(self, inputs: list[Any]) -> list[Any]:
        return list(self.model.encode_pixels(np.stack(inputs)))

    def warm(self) -> None:
        self._warm(self.model, "load_image_tower")

    def columns(self, outputs: list[Any]) -> dict[str, Any]:
        import pyarrow as pa

        dim = self.model.embed_dim
        valid = np.array([o is not None for o in outputs], bool)
        flat = np.zeros((len(outputs), dim), np.float32)
        for i, o in enumerate(outputs):
            if o is not None:
                flat[i] = o
        return {"vector": pa.FixedSizeListArray.from_arrays(pa.array(flat.reshape(-1)), dim,
                                                            mask=pa.array(~valid) if len(outputs) else None)}

    def from_row(self, row: dict[str, Any]) -> Any:
        v = row.get("vector")
        return None if v is None else np.asarray(v, np.float32)

    def store(self, cat: Catalog, rows: list[tuple[int, Any]]) -> int:
        if rows:
            cat.add_embeddings(self.model_name, [i for i, _ in rows], np.stack([v for _, v in rows]))
        return 0
