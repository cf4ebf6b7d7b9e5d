"""Stage 1, plan: walk the roots, diff the listing against the catalog, and say what each file
needs.

The diff runs in DuckDB (:meth:`Catalog.diff_listing`), so a huge walk never becomes Python
dicts of the whole catalog. Each file to analyze becomes a :class:`WorkItem`: a new or changed
file (``full``: every analyzer runs) or a cataloged, unchanged one that lacks some analyzer's
data (only those run). ``known`` lists the content hashes of complete cataloged photos of the
same size: a file whose bytes turn out to be one of them (a copy, or a moved file) is not
decoded; the commit stage reuses what the catalog has.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from photosearch.errors import UsageError
from photosearch.files import text_path
from photosearch.media.scan import FileEntry, normalize_root, walk
from photosearch.store.catalog import Catalog


@dataclass
class WorkItem:
    """One file to analyze, and what the catalog knew about it when planned."""

    path: str
    size: int
    mtime_ns: int
    id: int | None = None           # a catalog id reserved for a new row (sharded runs), or None
    known_id: int | None = None     # the cataloged photo at this path, if any
    known_hash: str | None = None   # ... and its content hash
    known_content_id: str | None = None   # ... and the identity of its image data
    full: bool = True               # new or changed file: every analyzer runs
    lacks: frozenset[str] = frozenset()   # unchanged file: the analyzers whose data its row lacks
    known: frozenset[str] = frozenset()   # content hashes of complete cataloged photos of this size


@dataclass
class Plan:
    """What a run will do: the files to analyze, and the cataloged photos not found."""

    roots: list[str]
    items: list[WorkItem] = field(default_factory=list)
    gone_ids: list[int] = field(default_factory=list)   # cataloged under the roots, not walked
    unchanged: int = 0
    skipped_before: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)   # (path, reason) found by the walk
    new_skips: list[tuple[str, int, int, str]] = field(default_factory=list)  # to remember


def check_roots(given: Sequence[str], library_dir: str) -> list[str]:
    """Normalized roots; a root inside the library folder is refused."""
    roots = [normalize_root(r) for r in given]
    inside = [r for r in roots if _is_within(os.path.realpath(r), library_dir)]
    if inside:
        raise UsageError(f"{inside[0]} is inside the library folder {library_dir}: photosearch keeps its "
                         "catalog, models and thumbnails there and never indexes it; give your photo folders")
    return roots


def make_plan(cat: Catalog, roots: list[str], checks: dict[str, tuple[str, str | None]], *, library_dir: str,
              on_walked: Callable[[int], None] | None = None) -> Plan:
    """Walk ``roots`` and diff them against the catalog. ``checks`` maps an analyzer's name to
    the catalog table (and model) that shows a photo has its data (see :class:`Analyzer`)."""
    import numpy as np

    plan = Plan(roots=roots)
    skips_before = cat.shard_skips()

    def unsupported(entry: FileEntry, reason: str) -> None:
        if skips_before.get(entry.path) == (entry.size, entry.mtime_ns):
            plan.skipped_before += 1
        else:
            plan.skipped.append((entry.path, reason))
            plan.new_skips.append((entry.path, entry.size, entry.mtime_ns, reason))

    listed: dict[str, list[Any]] = {"path": [], "size": [], "mtime_ns": []}
    for n, e in enumerate(_walk(roots, library_dir, plan, unsupported), 1):
        listed["path"].append(e.path)
        listed["size"].append(e.size)
        listed["mtime_ns"].append(e.mtime_ns)
        if on_walked is not None and n % 500 == 0:
            on_walked(n)
    # Numpy arrays, registered in DuckDB as they are (an Arrow table would import pandas: ~0.2 s
    # of every `index` run, measured).
    listing = {"path": np.array(listed["path"], dtype=object), "size": np.array(listed["size"], np.int64),
               "mtime_ns": np.array(listed["mtime_ns"], np.int64)}
    del listed
    names = list(checks)
    todo, plan.gone_ids, plan.unchanged, failed = cat.diff_listing(listing, [text_path(r) for r in roots], [checks[n] for n in names])
    plan.skipped_before += failed
    for r in todo:
        plan.items.append(WorkItem(
            path=r["path"], size=r["size"], mtime_ns=r["mtime_ns"], known_id=r["known_id"],
            known_hash=r["known_hash"], known_content_id=r["known_content_id"], full=bool(r["is_full"]),
            lacks=frozenset(n for i, n in enumerate(names) if r[f"lacks_{i}"]),
            known=frozenset(r["known"] or ())))
    return plan


def _walk(roots: list[str], library_dir: str, plan: Plan,
          unsupported: Callable[[FileEntry, str], None]) -> Iterator[FileEntry]:
    yield from walk(roots, exclude=library_dir, on_error=lambda p, r: plan.skipped.append((p, r)),
                    on_unsupported=unsupported)


def _is_within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


__all__ = ["WorkItem", "Plan", "make_plan", "check_roots"]
