"""Window hashes: pHashes of sub-windows of a photo (media/hashes.py ``window_hashes``), so that
duplicates finds its crops and the screenshots or framed copies that hold it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from photosearch.ingest.analyzers.base import Analyzer, Photo

if TYPE_CHECKING:
    from photosearch.store.catalog import Catalog


class WindowsAnalyzer(Analyzer):
    """Output: a tuple of window pHashes, empty for a video (table ``image_windows``)."""

    name = "windows"

    @property
    def check(self) -> tuple[str, str | None]:  # type: ignore[override]
        """Rows of this version's width: a photo hashed by an earlier version (fewer windows) is
        hashed again, alone."""
        from photosearch.media.hashes import WINDOWS

        return ("image_windows", str(WINDOWS))

    def analyze(self, photo: Photo) -> Any:
        from photosearch.media.hashes import window_hashes

        if photo.video is not None:
            return ()   # a video's duplicates go by its frames
        return window_hashes(photo.small)

    def columns(self, outputs: list[Any]) -> dict[str, Any]:
        import pyarrow as pa

        return {"windows": pa.array([list(o) if o is not None else None for o in outputs], pa.list_(pa.uint64()))}

    def from_row(self, row: dict[str, Any]) -> Any:
        return None if row.get("windows") is None else tuple(row["windows"])

    def store(self, cat: Catalog, rows: list[tuple[int, Any]]) -> int:
        cat.add_windows(rows)
        return 0
