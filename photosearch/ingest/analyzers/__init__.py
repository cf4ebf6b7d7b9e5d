"""The analyzers: each turns a decoded photo into one kind of index data (see base.Analyzer).

The pipeline runs them in this order on every photo it decodes; adding one means writing its
module here and listing it in :func:`default_analyzers` (see ARCHITECTURE.md)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from photosearch.ingest.analyzers.base import Analyzer, Photo

if TYPE_CHECKING:
    from photosearch.models.base import ImageEncoder
    from photosearch.models.faces import FaceEngine


def default_analyzers(model: ImageEncoder, model_name: str, faces: FaceEngine | None = None, *,
                      library_root: Path | None = None) -> list[Analyzer]:
    """CLIP, video frames, hashes, window hashes, thumbnail (with a library folder), faces (with a face engine),
    Takeout and the catalog record, in the order they run (the record merges Takeout's fields)."""
    from photosearch.ingest.analyzers.clip import ClipAnalyzer
    from photosearch.ingest.analyzers.faces import FacesAnalyzer
    from photosearch.ingest.analyzers.frames import FramesAnalyzer
    from photosearch.ingest.analyzers.hashes import HashesAnalyzer
    from photosearch.ingest.analyzers.record import RecordAnalyzer
    from photosearch.ingest.analyzers.takeout import TakeoutAnalyzer
    from photosearch.ingest.analyzers.thumbnail import ThumbnailAnalyzer
    from photosearch.ingest.analyzers.windows import WindowsAnalyzer

    out: list[Analyzer] = [ClipAnalyzer(model, model_name), FramesAnalyzer(model, model_name), HashesAnalyzer(),
                           WindowsAnalyzer()]
    if library_root is not None:
        out.append(ThumbnailAnalyzer(library_root))
    if faces is not None:
        out.append(FacesAnalyzer(faces))
    out += [TakeoutAnalyzer(), RecordAnalyzer()]
    return out


__all__ = ["Analyzer", "Photo", "default_analyzers"]
