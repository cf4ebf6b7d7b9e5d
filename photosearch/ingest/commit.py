"""Stage 3, commit: the one writer. A batch of analysis results becomes catalog rows in the
caller's transaction, the same way for every runner:

- same path, same bytes: the row stays (size and mtime updated); whatever it lacked and the
  analyzers made is filled in place;
- same path, other bytes, same image (media/identity.py): another app edited its metadata; the
  row stays with its vectors, faces and decisions, and takes the new bytes' metadata;
- same path, other bytes: the file changed; its old row goes and the file is new;
- bytes of a cataloged photo whose file is gone: a move; the row, its vectors, faces, people and
  decisions follow the file; so they do when only the image is the same (moved and edited
  elsewhere), and the row takes the new metadata;
- bytes not decoded because the catalog has them (a copy): a new row sharing the original's data;
- anything else: a new row with every analyzer's output.

Files that could not be used are remembered (not retried while unchanged); files that now work
are forgotten. A skipped camera file that still said what it is (analyze.py: a video whose
frames are lost, a RAW file whose image is unreadable) also gets a row of that, without a
picture, when no row holds its path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from photosearch.files import path_exists
from photosearch.ingest.analyze import Result
from photosearch.ingest.analyzers import Analyzer
from photosearch.ingest.report import Skipped
from photosearch.store.catalog import PHOTO_COLUMNS, Catalog

#: Why a copy could not be committed: its original left the catalog while this run analyzed it.
#: Not remembered as a failure: the next run analyzes the file.
SOURCE_GONE = "its original changed while indexing; run `photosearch index` again"


@dataclass
class Committed:
    """What committing one batch did."""

    photos: int = 0       # new rows
    indexed: int = 0      # photos (and videos) given a CLIP vector
    refreshed: int = 0    # existing rows whose missing data was filled
    unchanged: int = 0    # same bytes, nothing to add (a touched file)
    moved: int = 0
    reused: int = 0       # copies
    found: dict[str, int] = field(default_factory=dict)   # per analyzer, what its store() found
    skipped: list[Skipped] = field(default_factory=list)
    kept: int = 0         # skipped files kept with their metadata, without a picture


def commit(cat: Catalog, results: list[Result], analyzers: list[Analyzer], *,
           exists: Callable[[str], bool] = path_exists) -> Committed:
    """Write one batch of results (call inside ``cat.transaction()``)."""
    done = Committed()
    at_path = cat.rows_at_paths([r.item.path for r in results if r.skip is None])
    by_hash: dict[str, list[list[Any]]] = {}
    for pid, path, h in cat.rows_with_hashes(sorted({r.hash for r in results if r.skip is None})):
        by_hash.setdefault(h, []).append([pid, path])
    by_image: dict[str, list[list[Any]]] = {}
    for pid, path, cid in cat.rows_with_content_ids(sorted({r.content_id for r in results
                                                            if r.skip is None and r.content_id})):
        by_image.setdefault(cid, []).append([pid, path])
    claimed: set[int] = set()
    fills: list[tuple[int, Result, bool]] = []    # existing rows to fill with what they lack; moved?
    new: list[Result] = []
    new_skips: list[tuple[str, int, int, str]] = []
    worked: list[str] = []
    kept = [r for r in results if r.skip is not None and "record" in r.outputs]
    held = set(cat.rows_at_paths([r.item.path for r in kept])) if kept else set()
    for r in results:
        item = r.item
        if r.skip is not None:
            done.skipped.append(Skipped(item.path, r.skip))
            if r.skip != SOURCE_GONE:
                new_skips.append((item.path, item.size, item.mtime_ns, r.skip))
            # A row already at this path stays as it was (its people, tags and ratings with it).
            if "record" in r.outputs and item.path not in held:
                (pid,) = cat.insert_photos([r.outputs["record"]], [item.id])
                _store(cat, [a for a in analyzers if not a.needs_pixels], [(pid, r)], done)
                held.add(item.path)
                done.kept += 1
            continue
        worked.append(item.path)
        row = at_path.get(item.path)
        if row is not None and row[1] == r.hash:
            cat.touch_photo(row[0], item.size, item.mtime_ns)
            if r.content_id is not None and row[2] is None:   # cataloged before identities existed
                cat.update_photo(row[0], content_id=r.content_id)
            fills.append((row[0], r, False))
            continue
        if row is not None and r.same_image and row[2] == r.content_id and "record" in r.outputs:
            record = r.outputs["record"]
            cat.update_photo(row[0], **{c: getattr(record, c) for c in PHOTO_COLUMNS if c != "path"})
            by_hash[row[1]] = [c for c in by_hash.get(row[1], []) if c[0] != row[0]]
            by_hash.setdefault(r.hash, []).append([row[0], item.path])
            _store(cat, [a for a in analyzers if a.check is None], [(row[0], r)], done)
            done.refreshed += 1
            continue
        if row is not None:  # the file at this path changed: its old row and data go
            cat.delete_photos([row[0]])
            by_hash[row[1]] = [c for c in by_hash.get(row[1], []) if c[0] != row[0]]
        twins = by_hash.get(r.hash, [])
        src = next((c for c in twins if c[0] not in claimed and c[1] != item.path and not exists(c[1])), None)
        edited = None
        if src is None and r.content_id is not None and "record" in r.outputs:
            edited = next((c for c in by_image.get(r.content_id, [])
                           if c[0] not in claimed and c[1] != item.path and not exists(c[1])), None)
        if edited is not None:   # moved and edited elsewhere: the row follows, with the new metadata
            record = r.outputs["record"]
            cat.update_photo(edited[0], **{c: getattr(record, c) for c in PHOTO_COLUMNS})
            claimed.add(edited[0])
            edited[1] = item.path
            _store(cat, [a for a in analyzers if a.check is None], [(edited[0], r)], done)
            fills.append((edited[0], r, True))
            done.moved += 1
        elif src is not None:
            cat.move_photo(src[0], item.path, item.size, item.mtime_ns)
            if r.content_id is not None:
                cat.update_photo(src[0], content_id=r.content_id)
            claimed.add(src[0])
            src[1] = item.path
            fills.append((src[0], r, True))
            done.moved += 1
        elif r.analyzed and "record" in r.outputs:
            new.append(r)
        elif twins:
            new_id = cat.copy_photo(twins[0][0], item.path, item.size, item.mtime_ns)
            twins.append([new_id, item.path])
            done.reused += 1
        else:
            done.skipped.append(Skipped(item.path, SOURCE_GONE))
    if new:
        ids = cat.insert_photos([r.outputs["record"] for r in new], [r.item.id for r in new])
        for i, r in zip(ids, new):
            by_hash.setdefault(r.hash, []).append([i, r.item.path])
        done.photos = len(ids)
        _store(cat, analyzers, list(zip(ids, new)), done)
    _fill(cat, analyzers, fills, done)
    cat.forget_skips(worked)
    cat.remember_skips(new_skips)
    return done


def _fill(cat: Catalog, analyzers: list[Analyzer], fills: list[tuple[int, Result, bool]], done: Committed) -> None:
    """Existing rows get the outputs of the checked analyzers whose data they lack, no more:
    faces already scanned keep their people and rejections. A same-path row given nothing, or
    no new vector, counts as unchanged (as before this run it had its vector)."""
    ids = [i for i, r, _ in fills if r.outputs]
    lacking = {a.name: cat.lacking(*a.check, ids) for a in analyzers if a.check is not None and ids}
    filled: set[int] = set()
    embedded: set[int] = set()
    for a in analyzers:
        if a.check is None:
            continue
        rows = [(i, r.outputs[a.name]) for i, r, _ in fills if a.name in r.outputs and i in lacking[a.name]]
        if rows:
            done.found[a.name] = done.found.get(a.name, 0) + a.store(cat, rows)
            filled.update(i for i, _ in rows)
            if a.name in VECTOR_ANALYZERS:
                embedded.update(i for i, _ in rows)
    done.indexed += len(embedded)
    for i, _, moved in fills:
        if not moved:
            done.refreshed += i in filled
            done.unchanged += i not in embedded


def _store(cat: Catalog, analyzers: list[Analyzer], rows: list[tuple[int, Result]], done: Committed) -> None:
    for a in analyzers:
        outs = [(i, r.outputs[a.name]) for i, r in rows if a.name in r.outputs]
        if outs:
            done.found[a.name] = done.found.get(a.name, 0) + a.store(cat, outs)
            if a.name in VECTOR_ANALYZERS:
                done.indexed += len(outs)


#: The analyzers that give a photo its CLIP vector: ``clip`` for photos, ``frames`` for videos.
VECTOR_ANALYZERS = ("clip", "frames")

__all__ = ["commit", "Committed", "SOURCE_GONE"]
