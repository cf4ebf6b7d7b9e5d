"""Indexing: scan -> diff against the catalog -> decode pool -> batched encode -> commit.

- Incremental: unchanged files (same path, size and mtime) are not read. New
  or changed files are hashed; bytes already in the catalog are not decoded
  again: a moved file keeps its row and vectors, a copy reuses the vectors.
- Crash-safe: work is committed in small DuckDB transactions (rows and vectors
  together), so a killed run loses at most the last batch and the next run
  continues from there. The FAISS index is derived data, synced at the end.
- Embedding is the shard embedder's (``ShardEmbedder.stream`` in shards.py, the same code
  `--engine local/ray` run): files are read and analyzed (analyze.py) in a thread pool ahead
  of batched inference (Pillow, hashlib and onnxruntime release the GIL), JPEGs DCT-scaled to
  the model's input size. This module adds what only a streaming run into the catalog needs:
  the diff, move and copy detection without decoding, and commits every few seconds.
- Indexing only reads photos; it never writes them.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable
from contextlib import closing
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from photosearch.ingest.analyze import Analysis, PhotoAnalyzer, read_file
from photosearch.ingest.finish import finish
from photosearch.store.catalog import Catalog, FaceRow, KnownFile, PhotoRecord
from photosearch.config import DEFAULT_EXACT_MAX, ENV_COMMIT_SECONDS, ENV_EXACT_MAX, LibraryPaths, env_int
from photosearch.errors import Interrupted, UsageError
from photosearch.models.base import ImageEncoder, default_threads
from photosearch.models.faces import FaceEngine
from photosearch.media.scan import FileEntry, content_hash, normalize_root, walk


@dataclass
class Skipped:
    """A file an index run skipped, and why."""

    path: str
    reason: str


@dataclass
class IndexSummary:
    """What one index run did. ``indexed`` counts photos newly embedded or added."""

    indexed: int = 0
    unchanged: int = 0
    moved: int = 0
    removed: int = 0
    reused: int = 0          # new paths whose bytes were already indexed (copies): vectors reused
    skipped: list[Skipped] = field(default_factory=list)
    seconds: float = 0.0
    model: str = ""
    total_photos: int = 0
    interrupted: bool = False
    face_model: str | None = None
    faces: int = 0            # faces found in the photos scanned this run
    people_updated: int = 0   # faces that joined a person or a new cluster after this run
    skipped_before: int = 0   # unchanged files that failed in an earlier run: not retried (--show-skipped)
    resumed: dict[str, Any] | None = None  # the interrupted run this one continued: {"kept", "at"}

    def as_dict(self) -> dict[str, Any]:
        """The summary as a plain dict, ``seconds`` rounded to milliseconds."""
        out = asdict(self)
        out["seconds"] = round(self.seconds, 3)
        return out


@dataclass
class Progress:
    """A progress event: ``stage`` is 'scan', 'index' or 'finish'."""

    stage: str
    done: int = 0
    total: int = 0
    path: str = ""


ProgressFn = Callable[[Progress], None]


@dataclass
class _Work:
    entry: FileEntry
    known: KnownFile | None      # the row at this path, if any
    refresh: bool = False        # unchanged file lacking a vector (e.g. new model), hashes or faces
    need_vector: bool = True
    need_faces: bool = True


@dataclass
class _Result(Analysis):
    work: _Work | None = None


@dataclass
class _RunState:
    """What one run knows about the catalog, for move and copy detection."""

    seen: set[str]
    by_hash: dict[str, list[KnownFile]]
    hash_to_id: dict[str, int]

    def vanished(self, content_hash: str, claimed: set[int]) -> KnownFile | None:
        """A cataloged file with these bytes whose path is gone (anywhere, not only under the roots)."""
        for k in self.by_hash.get(content_hash, ()):
            if k.id not in claimed and k.path not in self.seen and not os.path.exists(k.path):
                return k
        return None


class Indexer:
    """Runs index passes for one library with one image encoder."""

    def __init__(
        self,
        paths: LibraryPaths,
        model: ImageEncoder,
        model_name: str,
        *,
        batch_size: int = 16,
        workers: int | None = None,
        commit_every_s: float | None = None,
        exact_max: int | None = None,
        faces: FaceEngine | None = None,
    ) -> None:
        self.paths = paths
        self.model = model
        self.model_name = model_name
        self.faces = faces
        self.face_model = faces.name if faces is not None else None
        self.analyzer = PhotoAnalyzer(model, faces, thumbs_root=paths.root)
        self.batch_size = max(1, batch_size)
        self.workers = workers or default_threads()
        self.commit_every_s = commit_every_s if commit_every_s is not None else _env_seconds(ENV_COMMIT_SECONDS, 2.0)
        self.exact_max = exact_max if exact_max is not None else env_int(ENV_EXACT_MAX, DEFAULT_EXACT_MAX)

    # -- the whole pass ---------------------------------------------------------------------

    def run(self, roots: Iterable[str] | None = None, on_progress: ProgressFn | None = None, *,
            remember_roots: bool = True) -> IndexSummary:
        """Index ``roots`` (folders or files; default: every root indexed before). With
        ``remember_roots`` they become roots of the library (re-indexed by a plain `index`)."""
        started = time.monotonic()
        report = on_progress or (lambda _p: None)
        summary = IndexSummary(model=self.model_name, face_model=self.face_model)
        self.analyzer = PhotoAnalyzer(self.model, self.faces, thumbs_root=self.paths.root)  # fresh Takeout cache
        given = [normalize_root(r) for r in roots or []]
        library_dir = os.path.normpath(str(self.paths.root.resolve()))
        inside = [r for r in given if _is_within(os.path.realpath(r), library_dir)]
        if inside:
            raise UsageError(f"{inside[0]} is inside the library folder {library_dir}: photosearch keeps its "
                             "catalog, models and thumbnails there and never indexes it; give your photo folders")
        summary.resumed = _read_marker(self.paths.root)
        with Catalog.open(self.paths.catalog) as cat:
            if remember_roots:
                with cat.transaction():
                    for root in given:
                        cat.add_root(root)
            scan_roots = given or cat.roots()
            known = cat.known_files()
            with_vector = set(cat.ids_with_vectors(self.model_name).tolist())
            with_hashes = cat.ids_with_hashes()
            face_scanned = cat.face_scanned_ids(self.face_model) if self.face_model else None
            skips_before = cat.shard_skips()
            # Hashes whose bytes already have a vector for this model: no need to decode again.
            hash_to_id = {k.content_hash: k.id for k in known.values() if k.id in with_vector}
        if not scan_roots:
            raise UsageError("nothing to index: give one or more folders, e.g. `photosearch index ~/Pictures`")

        seen: set[str] = set()
        work: list[_Work] = []
        new_skips: list[tuple[str, int, int, str]] = []

        def skip_unsupported(entry: FileEntry, reason: str) -> None:
            if skips_before.get(entry.path) == (entry.size, entry.mtime_ns):
                summary.skipped_before += 1
            else:
                summary.skipped.append(Skipped(entry.path, reason))
                new_skips.append((entry.path, entry.size, entry.mtime_ns, reason))

        for i, entry in enumerate(walk(scan_roots, exclude=library_dir,
                                       on_error=lambda p, r: summary.skipped.append(Skipped(p, r)),
                                       on_unsupported=skip_unsupported)):
            seen.add(entry.path)
            k = known.get(entry.path)
            if k is None and skips_before.get(entry.path) == (entry.size, entry.mtime_ns):
                summary.skipped_before += 1  # failed before and unchanged since: not retried
                continue
            if k is not None and k.size == entry.size and k.mtime_ns == entry.mtime_ns:
                need_faces = face_scanned is not None and k.id not in face_scanned
                if k.id in with_vector and k.id in with_hashes and not need_faces:
                    summary.unchanged += 1
                else:
                    work.append(_Work(entry, k, refresh=True, need_vector=k.id not in with_vector,
                                      need_faces=need_faces))
            else:
                work.append(_Work(entry, k))
            if i % 500 == 0:
                report(Progress("scan", i + 1))
        # Rows under the walked roots whose files are gone: moved (if their bytes turn up) or removed.
        under = tuple(r.rstrip(os.sep) + os.sep for r in scan_roots if not os.path.isfile(r))
        gone_rows = [k for p, k in known.items()
                     if p not in seen and (p.startswith(under) or p in scan_roots) and not os.path.exists(p)]
        by_hash: dict[str, list[KnownFile]] = {}
        for k in known.values():
            by_hash.setdefault(k.content_hash, []).append(k)
        state = _RunState(seen=seen, by_hash=by_hash, hash_to_id=hash_to_id)

        writer = _Writer(self, summary, with_hashes)
        report(Progress("index", 0, len(work)))
        try:
            self._process(work, state, writer, summary, report)
            writer.flush()
        except KeyboardInterrupt:
            summary.interrupted = True
            writer.flush()
            kept = summary.indexed + summary.reused + summary.moved
            _write_marker(self.paths.root, kept, len(work))
            raise Interrupted(f"interrupted; {kept} photos kept (run the command again to continue)") from None
        finally:
            writer.close()
            summary.seconds = time.monotonic() - started
        # Files that failed are remembered (not retried while unchanged); fixed ones are forgotten.
        failed = {s.path for s in summary.skipped}
        new_skips += _skip_rows(work, summary.skipped)
        recovered = [w.entry.path for w in work if w.entry.path in skips_before and w.entry.path not in failed]
        # Whatever of the gone rows was not claimed by a move is removed.
        claimed = writer.moved_ids
        removed = [k.id for k in gone_rows if k.id not in claimed]
        report(Progress("finish", 0, 0))
        with Catalog.open(self.paths.catalog) as cat:
            with cat.transaction():
                cat.remember_skips(new_skips)
                cat.forget_skips(recovered + [p for p in skips_before if p not in seen and not os.path.exists(p)])
            done = finish(cat, self.paths.vectors, gone_ids=removed, model=self.model_name,
                          dim=self.model.embed_dim, face_model=self.face_model,
                          face_dim=self.faces.dim if self.faces is not None else None, exact_max=self.exact_max)
            summary.removed, summary.people_updated, summary.total_photos = (done.removed, done.people_updated,
                                                                             done.total_photos)
        _clear_marker(self.paths.root)
        summary.seconds = time.monotonic() - started
        return summary

    # -- the pipeline -----------------------------------------------------------------------

    def _process(self, work: list[_Work], state: _RunState, writer: _Writer, summary: IndexSummary,
                 report: ProgressFn) -> None:
        from photosearch.ingest.shards import ShardEmbedder

        # Bytes with a vector already, or of a vanished file (a move): hash them, don't decode.
        skip_hashes = set(state.hash_to_id) | {h for h, ks in state.by_hash.items()
                                               if any(k.path not in state.seen for k in ks)}
        # The shard embedder of `--engine local/ray`, streaming into the catalog instead of Parquet.
        embedder = ShardEmbedder.with_analyzer(self.analyzer, workers=self.workers, batch_size=self.batch_size)
        done = 0
        # closing(): on an error or Ctrl-C the look-ahead is cancelled now, not when collected.
        with closing(embedder.stream(work, lambda w: self._prepare(w, skip_hashes))) as results:
            for _w, res, vector in results:
                self._consume(res, vector, state, writer, summary)
                done += 1
                report(Progress("index", done, len(work)))

    def _consume(self, res: _Result, vector: np.ndarray | None, state: _RunState, writer: _Writer,
                 summary: IndexSummary) -> None:
        w = res.work
        if res.skip is not None:
            summary.skipped.append(Skipped(w.entry.path, res.skip))
        elif vector is not None:
            writer.add(res, vector)                     # new bytes, or a cataloged photo lacking a vector
        elif w.refresh:
            writer.add(res, None)                       # only the perceptual hashes or the faces were missing
            summary.unchanged += 1
        elif w.known is not None and res.hash == w.known.content_hash:
            writer.touch(w.known.id, w.entry)           # same bytes, new mtime: nothing to redo
            summary.unchanged += 1
        elif (src := state.vanished(res.hash, writer.moved_ids)) is not None:
            writer.move(src.id, w)                      # same bytes, old path gone: keep id and vectors
            summary.moved += 1
        elif res.hash in state.hash_to_id:
            writer.copy(state.hash_to_id[res.hash], w)
            summary.reused += 1
        else:
            # Its twin was claimed already (two moved copies of one file); decode it after all.
            res = self._prepare(w, set())
            if res.skip is not None:
                summary.skipped.append(Skipped(w.entry.path, res.skip))
            else:
                writer.add(res, self.analyzer.encode([res.pixels])[0])
                res.pixels = None
        writer.maybe_flush()

    def _prepare(self, w: _Work, skip_hashes: set[str]) -> _Result:
        """Runs in the decode pool: read once, hash, and analyze unless the bytes are known."""
        data, skip = read_file(w.entry.path)
        if data is None:
            return _Result(work=w, skip=skip)
        res = _Result(work=w, hash=content_hash(data))
        if not w.refresh and (res.hash in skip_hashes or (w.known is not None and res.hash == w.known.content_hash)):
            return res
        self.analyzer.analyze(res, data, path=w.entry.path, size=w.entry.size, mtime_ns=w.entry.mtime_ns,
                              need_vector=w.need_vector, scan_faces=w.need_faces or not w.refresh,
                              need_record=not w.refresh)
        return res


class _Writer:
    """Buffers catalog changes and commits them in transactions every few seconds.

    Commits run on a writer thread of their own, one at a time and in order, so the thread
    running CLIP does not stop for them (they took ~10% of its time, measured)."""

    def __init__(self, indexer: Indexer, summary: IndexSummary, hashed: set[int]) -> None:
        self.indexer = indexer
        self.summary = summary
        self.hashed = hashed  # ids that already have perceptual hashes
        self.ops: list[tuple[str, Any]] = []
        self.last_flush = time.monotonic()
        self.moved_ids: set[int] = set()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="catalog-writer")
        self._inflight: Future[None] | None = None

    def add(self, res: _Result, vector: np.ndarray | None) -> None:
        self.ops.append(("add", (res, vector)))

    def touch(self, photo_id: int, entry: FileEntry) -> None:
        self.ops.append(("touch", (photo_id, entry)))

    def move(self, photo_id: int, w: _Work) -> None:
        self.moved_ids.add(photo_id)
        self.ops.append(("move", (photo_id, w)))

    def copy(self, src_id: int, w: _Work) -> None:
        self.ops.append(("copy", (src_id, w)))

    def maybe_flush(self) -> None:
        if self.ops and time.monotonic() - self.last_flush >= self.indexer.commit_every_s:
            self._submit()

    def flush(self) -> None:
        """Commit everything buffered; returns once it is committed (re-raising its error)."""
        if self.ops:
            self._submit()
        self._wait()

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def _submit(self) -> None:
        self._wait()
        ops, self.ops = self.ops, []
        self.last_flush = time.monotonic()
        self._inflight = self._pool.submit(self._commit, ops)

    def _wait(self) -> None:
        if self._inflight is not None:
            done, self._inflight = self._inflight, None
            done.result()

    def _commit(self, ops: list[tuple[str, Any]]) -> None:
        model = self.indexer.model_name
        with Catalog.open(self.indexer.paths.catalog) as cat, cat.transaction():
            new_records: list[PhotoRecord] = []
            new_vectors: list[np.ndarray] = []
            new_results: list[_Result] = []
            vector_only: list[tuple[int, np.ndarray]] = []
            hash_rows: list[tuple[int, tuple[int, ...], int]] = []
            face_sets: list[tuple[int, list[FaceRow]]] = []
            for kind, arg in ops:
                if kind == "add":
                    res, vec = arg
                    w = res.work
                    if w.refresh:
                        if vec is not None:
                            vector_only.append((w.known.id, vec))
                        if res.hashes is not None and w.known.id not in self.hashed:
                            hash_rows.append(_hash_row(w.known.id, res))
                        if res.faces is not None:
                            face_sets.append((w.known.id, res.faces))
                        continue
                    if w.known is not None:  # the file at this path changed: old row and vectors go
                        cat.delete_photos([w.known.id])
                    new_records.append(res.record)
                    new_vectors.append(vec)
                    new_results.append(res)
                elif kind == "touch":
                    pid, entry = arg
                    cat.touch_photo(pid, entry.size, entry.mtime_ns)
                elif kind == "move":
                    pid, w = arg
                    if w.known is not None:  # a moved file landed on a path that had another photo
                        cat.delete_photos([w.known.id])
                    cat.move_photo(pid, w.entry.path, w.entry.size, w.entry.mtime_ns)
                elif kind == "copy":
                    src_id, w = arg
                    if w.known is not None:
                        cat.delete_photos([w.known.id])
                    src = cat.photos_by_ids([src_id]).get(src_id)
                    if src is None:
                        continue
                    record = PhotoRecord(**{k: src[k] for k in PhotoRecord.__dataclass_fields__ if k in src})
                    record.path, record.size, record.mtime_ns = w.entry.path, w.entry.size, w.entry.mtime_ns
                    (new_id,) = cat.insert_photos([record])
                    cat.copy_embeddings(src_id, new_id)
            if new_records:
                ids = cat.insert_photos(new_records)
                cat.add_embeddings(model, ids, np.stack(new_vectors))
                hash_rows += [_hash_row(i, r) for i, r in zip(ids, new_results) if r.hashes is not None]
                face_sets += [(i, r.faces) for i, r in zip(ids, new_results) if r.faces is not None]
                for i, r in zip(ids, new_results):
                    if r.takeout is not None:
                        cat.set_takeout(i, r.takeout)
                self.summary.indexed += len(ids)
            if vector_only:
                cat.add_embeddings(model, [i for i, _ in vector_only], np.stack([v for _, v in vector_only]))
                self.summary.indexed += len(vector_only)
            cat.add_hashes(hash_rows)
            for photo_id, rows in face_sets:
                _name_regions(cat, rows)
                self.summary.faces += sum(1 for r in rows if r.vector is not None)
            cat.add_face_scans(self.indexer.face_model, face_sets)


def _hash_row(photo_id: int, res: _Result) -> tuple[int, tuple[int, ...], int, int | None, int | None]:
    h = res.hashes
    w, hh = res.size or (None, None)
    cw = round(w * h.content[0]) if w else None
    ch = round(hh * h.content[1]) if hh else None
    return (photo_id, h.phash, h.dhash, cw, ch)


def _name_regions(cat: Catalog, rows: list[FaceRow]) -> None:
    """Faces named by a region in the file belong to that person (created if new)."""
    for row in rows:
        if row.region_name:
            person = cat.person_by_name(row.region_name)
            row.person_id = person["id"] if person else cat.create_person(row.region_name)
            row.assigned = "file"


_MARKER = "index-interrupted.json"


def _is_within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _write_marker(root: Any, kept: int, planned: int) -> None:
    """Note an interrupted run in the library, so the next one can say what it resumed."""
    from datetime import datetime

    try:
        from photosearch.files import write_atomic

        write_atomic(root / _MARKER, json.dumps({"kept": kept, "planned": planned,
                                                 "at": datetime.now().isoformat(timespec="seconds")}))
    except OSError:
        pass  # only a courtesy message depends on it


def _read_marker(root: Any) -> dict[str, Any] | None:
    try:
        data = json.loads((root / _MARKER).read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None


def _clear_marker(root: Any) -> None:
    try:
        (root / _MARKER).unlink()
    except OSError:
        pass


def _skip_rows(work: list[_Work], skipped: list[Skipped]) -> list[tuple[str, int, int, str]]:
    """(path, size, mtime_ns, reason) for the work items that were skipped."""
    reasons = {s.path: s.reason for s in skipped}
    return [(w.entry.path, w.entry.size, w.entry.mtime_ns, reasons[w.entry.path])
            for w in work if w.entry.path in reasons]


def _env_seconds(name: str, default: float) -> float:
    value = os.environ.get(name)
    try:
        return max(0.0, float(value)) if value else default
    except ValueError:
        raise UsageError(f"{name} must be a number of seconds, got {value!r}") from None


__all__ = ["Indexer", "IndexSummary", "Progress", "Skipped"]
