"""The web UI's 320 px thumbnail, from the pixels decoded anyway (~4 ms a photo): cold result
pages then load from the cache instead of decoding 40 photos on demand."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from photosearch.ingest.analyzers.base import Analyzer, Photo


class ThumbnailAnalyzer(Analyzer):
    """Writes the thumbnail cache file; stores nothing in the catalog."""

    name = "thumbnail"

    def __init__(self, library_root: Path) -> None:
        self.root = library_root

    def wanted(self, item: Any) -> bool:
        return True  # whenever a photo is decoded: its cache file may be missing

    def analyze(self, photo: Photo) -> Any:
        from photosearch.media.thumbs import save_from_image

        try:
            save_from_image(self.root, photo.content_hash, photo.small)
        except (OSError, ValueError):
            pass  # a thumbnail is a convenience: the UI makes it on demand if it is missing
        return None
