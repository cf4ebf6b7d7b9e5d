"""What an indexing run did: one report for every runner, and its progress events."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Skipped:
    """A file an index run skipped, and why."""

    path: str
    reason: str

    def __getitem__(self, key: str) -> str:
        """``skipped["path"]`` as well as ``skipped.path`` (sharded runs used to give dicts)."""
        if key not in ("path", "reason"):
            raise KeyError(key)
        return str(getattr(self, key))


@dataclass
class IndexReport:
    """What one index run did, whichever runner ran it.

    ``indexed`` counts photos embedded this run (new ones, and cataloged ones given a vector of a
    new model); ``photos`` the rows added; ``refreshed`` cataloged photos whose missing vector,
    hashes or faces were filled in place. The shard counts are 0 for the in-process pipeline."""

    engine: str = "pipeline"
    indexed: int = 0
    unchanged: int = 0
    moved: int = 0
    removed: int = 0
    reused: int = 0           # new paths whose bytes were already indexed (copies): nothing decoded
    photos: int = 0           # rows added to the catalog
    refreshed: int = 0        # cataloged photos filled in place, or re-read after an outside metadata edit
    skipped: list[Skipped] = field(default_factory=list)
    without_pixels: int = 0   # of those skipped, camera files kept with their metadata, without a picture
    seconds: float = 0.0
    model: str = ""
    total_photos: int = 0
    interrupted: bool = False
    face_model: str | None = None
    faces: int = 0            # faces found in the photos analyzed this run
    text_lines: int = 0       # lines of text read in photos this run (OCR)
    text_note: str | None = None   # why text was not read (no OCR models installed)
    people_updated: int = 0   # faces that joined a person or a new cluster after this run
    live_photos: int = 0      # Live Photos paired this run (a movie beside its still: one item)
    skipped_before: int = 0   # unchanged files that failed in an earlier run: not retried (--show-skipped)
    resumed: dict[str, Any] | None = None  # the interrupted run this one continued: {"kept", "at"}
    planned: int = 0          # shards written to the manifest this run (--engine local/ray)
    embedded: int = 0         # shards analyzed this run
    ingested: int = 0         # shards committed this run
    precision: str = "fp32"   # the CLIP image tower's precision (models/quantize.py)
    device: str = "cpu"       # where inference ran: cpu or cuda
    reembedded_from: str | None = None  # the precision the model's vectors were in before this run, if it changed
    precision_note: str | None = None   # why the precision is not the one asked for or expected

    @property
    def kept(self) -> int:
        """Photos this run added, moved or copied into the catalog."""
        return self.photos + self.moved + self.reused

    def as_dict(self) -> dict[str, Any]:
        """The report as a plain dict, ``seconds`` rounded to milliseconds."""
        out = asdict(self)
        out["seconds"] = round(self.seconds, 3)
        return out


@dataclass
class Progress:
    """A progress event. ``stage``: 'scan' (``done`` files walked), 'index' (``done`` of
    ``total`` photos analyzed and committed), 'shard' (a shard was committed; ``report`` so far)
    or 'finish'."""

    stage: str
    done: int = 0
    total: int = 0
    path: str = ""
    report: IndexReport | None = None


ProgressFn = Callable[[Progress], None]

__all__ = ["IndexReport", "Progress", "ProgressFn", "Skipped"]
