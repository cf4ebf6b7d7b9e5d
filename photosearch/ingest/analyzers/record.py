"""The catalog row of a new photo: size and format from the decode, the rest from its metadata
(the file's EXIF, IPTC and XMP, its XMP sidecar, and Google Takeout for what an export stripped)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from photosearch.ingest.analyzers.base import Analyzer, Photo
from photosearch.store.records import PHOTO_COLUMNS, PhotoRecord, photo_arrow_type


class RecordAnalyzer(Analyzer):
    """Output: the :class:`PhotoRecord` the commit stage inserts (the catalog columns of an
    output shard). Runs after the Takeout analyzer, whose output it merges."""

    name = "record"
    needs_pixels = False

    def wanted(self, item: Any) -> bool:
        return item.full

    def analyze(self, photo: Photo) -> Any:
        md = photo.metadata
        tk = photo.outputs.get("takeout")
        fields = asdict(md)
        fields.pop("regions")
        if tk is not None:  # the file's own metadata wins; Takeout fills what the export stripped
            fields["taken_at"] = md.taken_at or tk.taken_at
            if md.gps_lat is None and tk.gps_lat is not None:
                fields["gps_lat"], fields["gps_lon"] = tk.gps_lat, tk.gps_lon
            fields["description"] = md.description or tk.description
        d = photo.decoded
        item = photo.item
        return PhotoRecord(path=item.path, content_hash=photo.content_hash, size=item.size, mtime_ns=item.mtime_ns,
                           width=d.width, height=d.height, format=d.format, content_id=photo.content_id,
                           media="video" if photo.video else "photo",
                           duration=photo.video.duration if photo.video else None,
                           **{**fields, "orientation": d.orientation or md.orientation})

    def columns(self, outputs: list[Any]) -> dict[str, Any]:
        import pyarrow as pa

        cols = {c: pa.array([getattr(r, c) if r is not None else None for r in outputs], photo_arrow_type(c))
                for c in PHOTO_COLUMNS if c not in ("path", "size", "mtime_ns", "content_hash", "content_id")}
        cols["has_record"] = pa.array([r is not None for r in outputs], pa.bool_())
        return cols

    def from_row(self, row: dict[str, Any]) -> Any:
        if not row.get("has_record", row.get("skip") is None and row.get("width") is not None):
            return None
        fields = {c: row.get(c) for c in PHOTO_COLUMNS}
        fields["keywords"] = fields["keywords"] or []
        fields["keyword_paths"] = fields["keyword_paths"] or []
        return PhotoRecord(**fields)
