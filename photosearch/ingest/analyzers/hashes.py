"""Perceptual hashes (pHash variants, dHash), the size of the content inside any border, and how
the pixels look (sharpness, exposure: media/quality.py, for films)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from photosearch.ingest.analyzers.base import Analyzer, Photo

if TYPE_CHECKING:
    from photosearch.store.catalog import Catalog


class HashesAnalyzer(Analyzer):
    """Output: (8 pHash variants, dHash, content width, content height, sharpness, brightness,
    highlight, blown) (table ``image_hashes``)."""

    name = "hashes"
    check = ("image_hashes", None)

    def analyze(self, photo: Photo) -> Any:
        from photosearch.media import hashes
        from photosearch.media.quality import measure

        h = hashes.compute(photo.small)
        q = measure(photo.small)
        w, hh = photo.decoded.width, photo.decoded.height
        return (tuple(h.phash), int(h.dhash), round(w * h.content[0]) if w else None,
                round(hh * h.content[1]) if hh else None, q.sharpness, q.brightness, q.highlight, q.blown)

    def columns(self, outputs: list[Any]) -> dict[str, Any]:
        import pyarrow as pa

        return {
            "phash": pa.array([list(o[0]) if o else None for o in outputs], pa.list_(pa.uint64())),
            "dhash": pa.array([o[1] if o else None for o in outputs], pa.uint64()),
            "content_width": pa.array([o[2] if o else None for o in outputs], pa.int64()),
            "content_height": pa.array([o[3] if o else None for o in outputs], pa.int64()),
            **{name: pa.array([o[4 + i] if o else None for o in outputs], pa.float64())
               for i, name in enumerate(("sharpness", "brightness", "highlight", "blown"))},
        }

    def from_row(self, row: dict[str, Any]) -> Any:
        if row.get("phash") is None:
            return None
        return (tuple(row["phash"]), row["dhash"], row.get("content_width"), row.get("content_height"),
                row.get("sharpness"), row.get("brightness"), row.get("highlight"), row.get("blown"))

    def store(self, cat: Catalog, rows: list[tuple[int, Any]]) -> int:
        cat.add_hashes([(i, *o) for i, o in rows])
        return 0
