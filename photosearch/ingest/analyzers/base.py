"""What an analyzer is: one kind of data derived from a decoded photo, from pixels to catalog.

The pipeline (``ingest/analyze.py``) decodes each photo once into a :class:`Photo` and hands it
to every analyzer that :meth:`Analyzer.wanted` it; each returns its output, which travels in
the :class:`~photosearch.ingest.analyze.Result` (and, for sharded runs, in the output shard's
columns it declares) to the commit stage, which calls :meth:`Analyzer.store`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL import Image

    from photosearch.ingest.plan import WorkItem
    from photosearch.media.decode import Decoded, Metadata
    from photosearch.media.video import VideoInfo
    from photosearch.store.catalog import Catalog


@dataclass
class Photo:
    """A decoded photo, as every analyzer sees it."""

    item: WorkItem
    data: bytes                      # the file's bytes
    content_hash: str
    content_id: str | None           # the image data's identity (media/identity.py)
    decoded: Decoded                 # full-size width, height, format, orientation; ``image`` as decoded
    small: Image.Image               # at least the CLIP model's size: for CLIP, hashes, thumbnails
    outputs: dict[str, Any] = field(default_factory=dict)   # what the analyzers before this one made
    _metadata: Metadata | None = None
    # A video: what it says about itself, and its sampled frames (seconds, upright image at the
    # decode size), the first of which is ``decoded.image`` (and, reduced, ``small``).
    video: VideoInfo | None = None
    frames: list[tuple[float, Image.Image]] | None = None

    @property
    def image(self) -> Image.Image:
        """The pixels as decoded (larger than ``small`` when a face model wanted them)."""
        return self.decoded.image

    @property
    def metadata(self) -> Metadata:
        """EXIF, IPTC and XMP of the file and its XMP sidecar, read on first use."""
        if self._metadata is None:
            from photosearch.media.decode import read_metadata
            from photosearch.media.scan import sidecar_bytes

            self._metadata = read_metadata(self.data, sidecar_bytes(self.item.path))
        return self._metadata


class Analyzer:
    """One analyzer. Subclasses set :attr:`name` and override what they need.

    - :attr:`check`: the catalog table (and model) whose row shows a photo has this analyzer's
      data, from ``Catalog.CHECKED_TABLES``; a cataloged photo without it is analyzed again for it
      alone. None: not checked (the analyzer runs only for new or changed files).
    - :attr:`min_side`: the shorter side it needs the photo decoded to, at least.
    - :attr:`batched`: :meth:`analyze` returns an input that :meth:`finish_batch` turns into the
      output, many photos at a time (CLIP inference).
    - :attr:`beside`: :meth:`analyze` may run on a thread of its own beside the other analyzers
      of the same video (it reads only the Photo, and no analyzer reads its output): a long
      video's CLIP frames overlap with its faces.
    - :attr:`needs_pixels`: False for an analyzer that reads only the file's metadata; it also
      runs for a camera file kept without a picture (``Photo.image`` is None there).
    """

    name: str = ""
    check: tuple[str, str | None] | None = None
    min_side: int = 0
    batched: bool = False
    beside: bool = False
    needs_pixels: bool = True

    def wanted(self, item: WorkItem) -> bool:
        """Whether this analyzer runs for ``item``."""
        return item.full or self.name in item.lacks

    def analyze(self, photo: Photo) -> Any:
        """This analyzer's output for one photo (None: nothing to store)."""
        raise NotImplementedError

    def finish_batch(self, inputs: list[Any]) -> list[Any]:
        """Outputs for the inputs :meth:`analyze` returned (batched analyzers only)."""
        return inputs

    def warm(self) -> None:
        """Load now what :meth:`analyze` and :meth:`finish_batch` need (its model): the runner
        calls this on a thread of its own as a run starts, beside the first photos. An error
        may be ignored here: the first real call raises it."""

    @staticmethod
    def _warm(engine: Any, method: str = "warm") -> None:
        """Call ``engine.method()`` where the engine has it (a fake or injected one may not)."""
        load = getattr(engine, method, None)
        if load is not None:
            load()

    def columns(self, outputs: list[Any]) -> dict[str, Any]:
        """This analyzer's columns of an output shard (Arrow arrays), one value per row."""
        return {}

    def from_row(self, row: dict[str, Any]) -> Any:
        """The output read back from an output shard's row (None: none)."""
        return None

    def store(self, cat: Catalog, rows: list[tuple[int, Any]]) -> int:
        """Write outputs as (photo id, output) in the running transaction; returns how many
        things were found (faces, words: the run's report shows it)."""
        return 0


def file_ext(path: str) -> str:
    """The lower-case extension of ``path`` ('.jpg')."""
    return os.path.splitext(path)[1].lower()


__all__ = ["Analyzer", "Photo", "file_ext"]
