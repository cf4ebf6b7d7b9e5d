"""The library facade: everything the CLI (or any other front end) does goes through here.

    from photosearch import api
    lib = api.Library("~/photos-library")          # or Library() for the default location
    lib.index(["~/Pictures"])
    for r in lib.search_text("sunset at the beach", limit=5):
        print(r.score, r.path)

Nothing here prints or exits: errors are PhotosearchError subclasses and
progress is reported through callbacks.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from photosearch.catalog import Catalog, Filters
from photosearch.config import LibraryPaths, resolve_library_dir
from photosearch.indexer import Indexer, IndexSummary, Progress
from photosearch.models.store import ModelInfo, ModelStore
from photosearch.search import SearchResult, Searcher, make_filters


class Library:
    """One photosearch library folder (catalog, vector indexes, models)."""

    def __init__(self, library: str | os.PathLike[str] | None = None) -> None:
        self.paths = LibraryPaths(resolve_library_dir(library))
        self.models = ModelStore(self.paths)

    # -- indexing -------------------------------------------------------------------------

    def index(self, roots: Iterable[str | os.PathLike[str]] | None = None, *,
              on_progress: Callable[[Progress], None] | None = None, model: Any = None,
              batch_size: int = 16, workers: int | None = None) -> IndexSummary:
        """Index (or re-index) folders; with no roots, every folder indexed before."""
        clip = model or self.models.load()
        indexer = Indexer(self.paths, clip, clip.name, batch_size=batch_size, workers=workers)
        return indexer.run([os.fspath(r) for r in roots or []], on_progress)

    # -- searching ------------------------------------------------------------------------

    def search_text(self, query: str, *, filters: Filters | None = None, limit: int = 20,
                    min_score: float | None = None) -> list[SearchResult]:
        return Searcher(self.paths).search_text(query, filters, limit, min_score)

    def search_image(self, photo: str | os.PathLike[str], *, filters: Filters | None = None, limit: int = 20,
                     min_score: float | None = None) -> list[SearchResult]:
        return Searcher(self.paths).search_image(photo, filters, limit, min_score)

    # -- models ---------------------------------------------------------------------------

    def list_models(self) -> list[ModelInfo]:
        return self.models.installed()

    def import_model(self, arch: str, file: str | os.PathLike[str], *, name: str | None = None,
                     force: bool = False, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
        return self.models.import_checkpoint(arch, file, name=name, force=force, progress=progress)

    def pull_model(self, spec: str | None = None, *, name: str | None = None, force: bool = False,
                   progress: Callable[[str], None] | None = None) -> dict[str, Any]:
        return self.models.pull(spec, name=name, force=force, progress=progress)

    def use_model(self, name: str) -> None:
        self.models.set_active(name)

    # -- status ---------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """Counts and locations, for `photosearch status`."""
        out: dict[str, Any] = {
            "library": str(self.paths.root),
            "active_model": self.models.active_name(),
            "models": self.models.names(),
            "photos": 0,
            "vectors": {},
            "roots": [],
            "index": {},
        }
        if not self.paths.catalog.exists():
            return out
        with Catalog.open(self.paths.catalog, read_only=True) as cat:
            out["photos"] = cat.count_photos()
            out["vectors"] = cat.vector_models()
            out["roots"] = cat.roots()
            for model in out["vectors"]:
                state = cat.index_state(model)
                if state:
                    out["index"][model] = {
                        "kind": state["kind"], "count": state["count"], "nprobe": state["nprobe"],
                        "current": state["version"] == cat.vectors_version(model),
                    }
        return out


__all__ = ["Library", "Filters", "make_filters", "SearchResult", "IndexSummary", "Progress"]
