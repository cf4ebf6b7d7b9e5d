"""Where a library lives and the settings read from the environment.

A *library* is one folder holding the catalog (DuckDB), the vector indexes
(FAISS) and the model store. It defaults to the per-user data folder and is
overridden by ``--library DIR`` or ``PHOTOSEARCH_LIBRARY``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ENV_LIBRARY = "PHOTOSEARCH_LIBRARY"
#: Libraries with at most this many vectors are searched exactly (flat index).
ENV_EXACT_MAX = "PHOTOSEARCH_EXACT_MAX"
DEFAULT_EXACT_MAX = 20_000
#: Libraries with more vectors than this search an IVF index merged on disk (ondisk.py) instead
#: of one held in memory: a query then reads only the lists it probes.
ENV_ONDISK_MIN = "PHOTOSEARCH_ONDISK_MIN"
DEFAULT_ONDISK_MIN = 5_000_000
#: Bytes per vector the on-disk index may store (dim: SQ8, the default; 4*dim: exact codes;
#: less: OPQ + PQ).
ENV_ONDISK_BYTES = "PHOTOSEARCH_ONDISK_BYTES"
#: Catalog ids per block of the on-disk index (a changed id rebuilds only its block).
ENV_ONDISK_BLOCK = "PHOTOSEARCH_ONDISK_BLOCK"
DEFAULT_ONDISK_BLOCK = 1_000_000
#: Seconds between catalog commits while indexing (what a crash can cost at most).
ENV_COMMIT_SECONDS = "PHOTOSEARCH_COMMIT_SECONDS"
#: Pixel limit for decoding; larger images are treated as decompression bombs.
ENV_MAX_PIXELS = "PHOTOSEARCH_MAX_PIXELS"
DEFAULT_MAX_PIXELS = 250_000_000

# Largest photo file read, in MB (a file is read whole: a 20 GB "photo" must not be).
ENV_MAX_FILE_MB = "PHOTOSEARCH_MAX_FILE_MB"
#: Per kind: camera RAW files and TIFF scans are big; everything else is far smaller.
DEFAULT_MAX_FILE_MB = {"raw": 400, "tiff": 1000, "video": 100_000, "other": 200}
#: Seconds one file may take to analyze (read, decode, every analyzer) before it is skipped as
#: unusable and remembered, so one pathological file cannot stall this run or the next.
ENV_FILE_SECONDS = "PHOTOSEARCH_FILE_SECONDS"
DEFAULT_FILE_SECONDS = 120
#: Longest side over shortest side beyond which an image is refused (a 1x60000 strip would make
#: the model's resize allocate gigabytes); the widest real panoramas stay far below it.
MAX_ASPECT_RATIO = 100


def default_library_dir() -> Path:
    """The per-user data folder (XDG on Linux) used when nothing else is given."""
    import platformdirs

    return Path(platformdirs.user_data_dir("photosearch", appauthor=False))


def resolve_library_dir(library: str | os.PathLike[str] | None = None) -> Path:
    """``library`` if given, else ``$PHOTOSEARCH_LIBRARY``, else the per-user data folder."""
    if library:
        return Path(library).expanduser().resolve()
    env = os.environ.get(ENV_LIBRARY)
    if env:
        return Path(env).expanduser().resolve()
    return default_library_dir()


def env_int(name: str, default: int) -> int:
    """Integer value of env variable ``name``, or ``default`` if unset or empty; UsageError if not an integer."""
    value = os.environ.get(name)
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        from photosearch.errors import UsageError

        raise UsageError(f"{name} must be an integer, got {value!r}") from None


@dataclass(frozen=True)
class LibraryPaths:
    """The files and folders inside one library folder."""

    root: Path

    @property
    def catalog(self) -> Path:
        """The DuckDB catalog file."""
        return self.root / "catalog.duckdb"

    @property
    def models(self) -> Path:
        """The folder of installed models."""
        return self.root / "models"

    @property
    def vectors(self) -> Path:
        """The folder of vector index files."""
        return self.root / "vectors"
