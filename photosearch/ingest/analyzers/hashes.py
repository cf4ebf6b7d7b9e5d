"""Perceptual hashes (pHash variants, dHash) and the size of the content inside any border."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from photosearch.ingest.analyzers.base import Analyzer, Photo

if TYPE_CHECKING:
    from photosearch.store.catalog import Catalog


class HashesAnalyzer(Analyzer):
    """Output: (8 pHash variants, dHash, content width, content height) (table ``image_hashes``)."""

    name = "hashes"
    check = ("image_hashes", None)

    def analyze(self, photo: Photo) -> Any:
        from photosearch.media import hashes

        h = hashes.compute(photo.small)
        w, hh = photo.decoded.width, photo.decoded.height
        return (tuple(h.phash), int(h.dhash), round(w * h.content[0]) if w else None,
                round(hh * h.content[1]) if hh else None)

    def columns(self, outputs: list[Any]) -> dict[str, Any]:
        import pyarrow as pa

        return {
            "phash": pa.array([list(o[0]) if o else None for o in outputs], pa.list_(pa.uint64())),
            "dhash": pa.array([o[1] if o else None for o in outputs], pa.uint64()),
            "content_width": pa.array([o[2] if o else None for o in outputs], pa.int64()),
            "content_height": pa.array([o[3] if o else None for o in outputs], pa.int64()),
        }

    def from_row(self, row: dict[str, Any]) -> Any:
        if row.get("phash") is None:
            return None
        return (tuple(row["phash"]), row["dhash"], row.get("content_width"), row.get("content_height"))

    def store(self, cat: Catalog, rows: list[tuple[int, Any]]) -> int:
        cat.add_hashes([(i, *o) for i, o in rows])
        return 0
