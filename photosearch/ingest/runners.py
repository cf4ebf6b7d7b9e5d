"""The runners: one indexing run, plan -> analyze -> commit -> finish, run two ways.

- ``pipeline`` (the default): analysis streams on this machine's threads into the commit
  stage, which commits every few seconds on a writer thread of its own (so the thread running
  CLIP never waits for DuckDB); a killed run loses at most the last few seconds.
- ``local`` / ``ray`` (sharded): the plan is written as Parquet manifest shards, workers in
  this process or on Ray Data actor pools analyze a shard into an output shard, and each output
  shard is committed as it arrives; a rerun commits finished shards and analyzes only the rest.

Both use the same plan (``plan.py``), the same analyzers (``analyze.py``), the same writer
(``commit.py``) and the same finish (``finish.py``), and give the same :class:`IndexReport`.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from photosearch.config import ENV_COMMIT_SECONDS, LibraryPaths
from photosearch.errors import Interrupted, UsageError
from photosearch.files import path_exists
from photosearch.ingest.analyze import PhotoAnalyzer, Result
from photosearch.ingest.analyzers import Analyzer, default_analyzers
from photosearch.ingest.commit import Committed, commit
from photosearch.ingest.finish import finish
from photosearch.ingest.plan import Plan, check_roots, make_plan
from photosearch.ingest.report import IndexReport, Progress, ProgressFn, Skipped
from photosearch.ingest.shardfile import read_manifest, read_output, shard_dirs, write_manifest, write_output
from photosearch.store.catalog import Catalog
from photosearch.store.records import warm_arrow

DEFAULT_SHARD_SIZE = 1000
ENGINES = ("pipeline", "local", "ray")
ENV_CRASH_AFTER = "PHOTOSEARCH_TEST_CRASH_AFTER_SHARDS"  # tests: die (like kill -9) after N shards
ENV_PAUSE_FILE = "PHOTOSEARCH_TEST_PAUSE_FILE"  # tests: wait while this file exists, before analyzing
_MARKER = "index-interrupted.json"


@dataclass
class RunOptions:
    """How to run: the engine, and its knobs."""

    engine: str = "pipeline"
    batch_size: int = 16
    workers: int | None = None          # analysis threads (pipeline, local) or Ray actors (ray)
    shard_size: int = DEFAULT_SHARD_SIZE
    address: str | None = None          # ray: the cluster (default: a local one on 127.0.0.1)
    commit_every_s: float | None = None
    exact_max: int | None = None
    remember_roots: bool = True
    extra_analyzers: tuple[Analyzer, ...] = ()   # run after the default ones (must pickle for Ray)


def run_index(paths: LibraryPaths, model: Any, model_name: str, roots: Iterable[str], *, faces: Any = None,
              options: RunOptions | None = None, on_progress: ProgressFn | None = None) -> IndexReport:
    """Index ``roots`` (folders or files; default: every root indexed before) with the CLIP
    ``model`` and, if given, the face engine ``faces``. With ``remember_roots`` they become roots
    of the library (re-indexed by a plain `index`)."""
    opts = options or RunOptions()
    if opts.engine not in ENGINES:
        raise UsageError("--engine is pipeline, local or ray")
    if opts.engine != "pipeline":
        _require_scale(opts.engine)
    started = time.monotonic()
    report_fn = on_progress or (lambda _p: None)
    face_model = faces.name if faces is not None else None
    report = IndexReport(engine=opts.engine, model=model_name, face_model=face_model)
    analyzers = default_analyzers(model, model_name, faces, library_root=paths.root) + list(opts.extra_analyzers)
    library_dir = os.path.normpath(str(paths.root.resolve()))
    given = check_roots(list(roots), library_dir)
    report.resumed = _read_marker(paths.root)
    with Catalog.open(paths.catalog) as cat:
        if opts.remember_roots:
            with cat.transaction():
                for root in given:
                    cat.add_root(root)
        scan_roots = given or cat.roots()
        if not scan_roots:
            raise UsageError("nothing to index: give one or more folders, e.g. `photosearch index ~/Pictures`")
        # Shards an earlier sharded run analyzed but did not commit are committed first.
        _commit_finished_shards(cat, paths, analyzers, report)
        report.precision = getattr(model, "precision", "fp32")
        report.device = getattr(model, "device", "cpu")
        report.reembedded_from = _switch_precision(cat, paths, model_name, report.precision)
        if opts.engine == "pipeline":
            _release_pending_shards(cat, paths)  # their files are planned again, here
        checks = {a.name: a.check for a in analyzers if a.check is not None}
        plan = make_plan(cat, scan_roots, checks, library_dir=library_dir,
                         on_walked=lambda n: report_fn(Progress("scan", n)))
        with cat.transaction():
            cat.remember_skips(plan.new_skips)
    report.unchanged += plan.unchanged
    report.skipped_before += plan.skipped_before
    report.skipped += [Skipped(p, r) for p, r in plan.skipped]
    try:
        if opts.engine == "pipeline":
            _run_pipeline(paths, analyzers, model, plan, opts, report, report_fn)
        else:
            _run_sharded(paths, analyzers, model, model_name, face_model, plan, opts, report, report_fn)
    except KeyboardInterrupt:
        report.interrupted = True
        _write_marker(paths.root, report.kept, len(plan.items))
        raise Interrupted(f"interrupted; {report.kept} photos kept (run the command again to continue)") from None
    finally:
        report.seconds = time.monotonic() - started
    report_fn(Progress("finish"))
    with Catalog.open(paths.catalog) as cat:
        # Gone files whose bytes did not turn up elsewhere (a move) are removed.
        still = [i for i, p in cat.paths_by_ids(plan.gone_ids).items() if not path_exists(p)]
        with cat.transaction():
            cat.forget_skips([s["path"] for s in cat.skipped_files() if not path_exists(s["path"])])
        done = finish(cat, paths.vectors, gone_ids=still, model=model_name, dim=model.embed_dim,
                      face_model=face_model, face_dim=faces.dim if faces is not None else None,
                      exact_max=opts.exact_max)
    report.removed, report.people_updated, report.total_photos = done.removed, done.people_updated, done.total_photos
    report.live_photos = done.live_photos
    _clear_marker(paths.root)
    report.seconds = time.monotonic() - started
    return report


def _switch_precision(cat: Catalog, paths: LibraryPaths, model_name: str, precision: str) -> str | None:
    """Keep one precision per model's vectors: when this run's differs from the stored vectors',
    drop them (and their indexes) so that every photo is embedded again, like a new model.
    Returns the precision dropped, if any."""
    import shutil

    stored = cat.vectors_precision(model_name)
    if stored == precision:
        return None
    with cat.transaction():
        if stored is None:
            cat.set_vectors_precision(model_name, precision)
            return None
        stale = cat.reset_vectors(model_name, precision)
    for f in stale:
        (paths.vectors / f).unlink(missing_ok=True)
    for key in (model_name, f"frames:{model_name}"):
        shutil.rmtree(paths.vectors / f"{key.replace(':', '-')}-ondisk", ignore_errors=True)
    return stored


def _add(report: IndexReport, c: Committed) -> None:
    report.photos += c.photos
    report.indexed += c.indexed
    report.refreshed += c.refreshed
    report.unchanged += c.unchanged
    report.moved += c.moved
    report.reused += c.reused
    report.faces += c.found.get("faces", 0)
    report.text_lines += c.found.get("ocr", 0)
    report.skipped += c.skipped
    report.without_pixels += c.kept


# -- the in-process pipeline ------------------------------------------------------------------------


def _run_pipeline(paths: LibraryPaths, analyzers: list[Analyzer], model: Any, plan: Plan, opts: RunOptions,
                  report: IndexReport, report_fn: ProgressFn) -> None:
    from photosearch.models.base import default_threads

    workers = opts.workers or default_threads()
    analyzer = PhotoAnalyzer(analyzers, small_side=model.image_size, workers=workers, batch_size=opts.batch_size,
                             encoders=encoders_for(model, workers))
    every = opts.commit_every_s if opts.commit_every_s is not None else _env_seconds(ENV_COMMIT_SECONDS, 2.0)
    warming = _warm_up(analyzers) if plan.items else []
    writer = _Writer(paths, analyzers, report, every, warm=bool(plan.items))
    total = len(plan.items)
    report_fn(Progress("index", 0, total))
    _pause_for_tests()
    try:
        # closing(): on an error or Ctrl-C the look-ahead is cancelled now, not when collected.
        with closing(analyzer.stream(plan.items)) as results:
            for done, res in enumerate(results, 1):
                writer.add(res)
                report_fn(Progress("index", done, total))
        writer.flush()
    except KeyboardInterrupt:
        writer.flush()
        raise
    finally:
        writer.close()
        for t in warming:
            t.join()


def _warm_up(analyzers: list[Analyzer]) -> list[threading.Thread]:
    """Each analyzer's models loaded on a thread of its own, beside the first photos: a short
    run otherwise loads them one after another while a core waits (an `index` of a few photos
    takes ~0.3 s less: benchmarks/RESULTS.md, session 17)."""
    threads = []
    for a in analyzers:
        if type(a).warm is not Analyzer.warm:
            t = threading.Thread(target=_quietly, args=(a.warm,), name=f"warm-{a.name}", daemon=True)
            t.start()
            threads.append(t)
    return threads


def _quietly(fn: Callable[[], Any]) -> None:
    """Run a warm-up; its error, if any, is raised by the first real call instead."""
    try:
        fn()
    except Exception:  # noqa: BLE001 - see the docstring
        pass


#: CLIP batches encoded at once on the CPU, at most: one more batch's activations in memory than
#: one at a time (a large model's batch holds hundreds of MB), and each call's threads halved.
MAX_ENCODERS = 2


def clip_threads(workers: int) -> int:
    """The CLIP image tower's threads per call for an index on ``workers`` analysis threads (the
    CPU's): its batches run :data:`MAX_ENCODERS` at once, on the cores split between them. On 2
    cores each call runs on one thread, and never waits at a barrier for a thread whose core a
    decode thread holds (measured: 3-9% more photos a second end to end, benchmarks/RESULTS.md)."""
    return max(1, workers // MAX_ENCODERS)


def encoders_for(model: Any, workers: int) -> int:
    """How many batches to encode at once: with a CPU model whose threads per call are set (see
    :func:`clip_threads`), as many as fit in ``workers`` (:data:`MAX_ENCODERS` at most); else one
    at a time, on all the cores."""
    threads = getattr(model, "threads", None)
    if not threads or getattr(model, "device", "cpu") != "cpu":
        return 1
    return max(1, min(MAX_ENCODERS, workers // threads))


class _Writer:
    """Buffers results and commits them every few seconds, one commit at a time and in order, on
    a thread of its own: the thread running CLIP does not stop for them (they took ~10% of its
    time, measured)."""

    def __init__(self, paths: LibraryPaths, analyzers: list[Analyzer], report: IndexReport, every_s: float,
                 *, warm: bool = False) -> None:
        self.paths, self.analyzers, self.report, self.every_s = paths, analyzers, report, every_s
        self.buffer: list[Result] = []
        self.last = time.monotonic()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="catalog-writer")
        # With ``warm``, the writer's thread first imports what the first commit will.
        self._inflight: Future[None] | None = self._pool.submit(_quietly, warm_arrow) if warm else None

    def add(self, res: Result) -> None:
        self.buffer.append(res)
        if time.monotonic() - self.last >= self.every_s:
            self._submit()

    def flush(self) -> None:
        """Commit everything buffered; returns once it is committed (re-raising its error)."""
        if self.buffer:
            self._submit()
        self._wait()

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def _submit(self) -> None:
        self._wait()
        batch, self.buffer = self.buffer, []
        self.last = time.monotonic()
        self._inflight = self._pool.submit(self._commit, batch)

    def _wait(self) -> None:
        if self._inflight is not None:
            done, self._inflight = self._inflight, None
            done.result()

    def _commit(self, batch: list[Result]) -> None:
        with Catalog.open(self.paths.catalog) as cat, cat.transaction():
            c = commit(cat, batch, self.analyzers)
        _add(self.report, c)


# -- the sharded runner --------------------------------------------------------------------------------


def _run_sharded(paths: LibraryPaths, analyzers: list[Analyzer], model: Any, model_name: str,
                 face_model: str | None, plan: Plan, opts: RunOptions, report: IndexReport,
                 report_fn: ProgressFn) -> None:
    report.planned = _write_manifests(paths, plan, opts.shard_size)

    def one_shard(_out: str) -> None:
        report.embedded += 1
        with Catalog.open(paths.catalog) as cat:
            _commit_finished_shards(cat, paths, analyzers, report)
        report_fn(Progress("shard", report.ingested, report.planned, report=report))

    folder = str(model.folder)
    extra = list(opts.extra_analyzers)
    precision = getattr(model, "precision", "fp32")
    if opts.engine == "ray":
        embed_ray(paths, folder, face_model=face_model, address=opts.address, workers=opts.workers or 2,
                  extra_analyzers=extra, on_shard=one_shard, precision=precision)
    else:
        embed_local(paths, folder, face_model=face_model, threads=opts.workers, batch_size=opts.batch_size,
                    extra_analyzers=extra, on_shard=one_shard, precision=precision)


def plan_shards(paths: LibraryPaths, model: Any, roots: list[str], *, faces: Any = None,
                shard_size: int = DEFAULT_SHARD_SIZE) -> int:
    """The coordinator's plan alone: walk, diff and write manifest shards; returns how many
    (benchmarks and external schedulers; ``run_index`` does this itself)."""
    analyzers = default_analyzers(model, model.name, faces)
    checks = {a.name: a.check for a in analyzers if a.check is not None}
    library_dir = os.path.normpath(str(paths.root.resolve()))
    given = check_roots(roots, library_dir)
    with Catalog.open(paths.catalog) as cat:
        plan = make_plan(cat, given, checks, library_dir=library_dir)
    return _write_manifests(paths, plan, shard_size)


def commit_shards(paths: LibraryPaths, model: Any, *, faces: Any = None) -> IndexReport:
    """Commit every finished output shard not committed yet (benchmarks and external
    schedulers; ``run_index`` does this itself)."""
    report = IndexReport(engine="local", model=model.name)
    with Catalog.open(paths.catalog) as cat:
        _commit_finished_shards(cat, paths, default_analyzers(model, model.name, faces), report)
    return report


def _write_manifests(paths: LibraryPaths, plan: Plan, shard_size: int) -> int:
    """Write the plan's work items as manifest shards (catalog ids reserved); returns how many."""
    if not plan.items:
        return 0
    manifest_dir, _ = shard_dirs(paths)
    written = 0
    with Catalog.open(paths.catalog) as cat, cat.transaction():
        ids = cat.reserve_photo_ids(len(plan.items))
        for item, i in zip(plan.items, ids):
            item.id = i
        start = cat.next_shard_number()
        for n, at in enumerate(range(0, len(plan.items), shard_size)):
            chunk = plan.items[at:at + shard_size]
            name = f"shard-{start + n:06d}"
            write_manifest(chunk, manifest_dir / f"{name}.parquet")
            cat.add_shard(name, len(chunk), [i.path for i in chunk])
            written += 1
    return written


def _commit_finished_shards(cat: Catalog, paths: LibraryPaths, analyzers: list[Analyzer],
                            report: IndexReport) -> None:
    """Commit every output shard written and not yet committed (one transaction each)."""
    manifest_dir, out_dir = shard_dirs(paths)
    for name in cat.uningested_shards():
        out = out_dir / f"{name}.parquet"
        if not out.is_file():
            continue
        manifest = manifest_dir / f"{name}.parquet"
        items = read_manifest(manifest) if manifest.is_file() else None
        results = read_output(out, items, analyzers)
        with cat.transaction():
            c = commit(cat, results, analyzers)
            cat.mark_shard_ingested(name)
        _add(report, c)
        report.ingested += 1


def _release_pending_shards(cat: Catalog, paths: LibraryPaths) -> None:
    """Forget manifest shards no worker finished, so the in-process run plans their files again."""
    manifest_dir, _ = shard_dirs(paths)
    names = cat.uningested_shards()
    if not names:
        return
    with cat.transaction():
        cat.drop_shards(names)
    for name in names:
        try:
            (manifest_dir / f"{name}.parquet").unlink()
        except OSError:
            pass


class ShardWorker:
    """Analyzes manifest shards into output shards, with its own models (one per Ray actor).
    Never opens the catalog."""

    def __init__(self, model_folder: str, *, face_root: str | None = None, face_model: str | None = None,
                 thumbs_root: str | None = None, threads: int = 1, workers: int = 1, batch_size: int = 16,
                 extra_analyzers: list[Analyzer] | None = None, precision: str = "fp32") -> None:
        from photosearch.models.store import open_model

        faces = None
        if face_root and face_model:
            from photosearch.models.faces import FaceModelStore

            # One thread per face engine: photos are analyzed in parallel by the workers instead.
            faces = FaceModelStore.at(Path(face_root)).load(face_model, threads=1, auto_install=False)
        # The coordinator's precision: every shard's vectors in the one the catalog records.
        model = open_model(Path(model_folder), threads=threads, **({"precision": precision} if precision != "fp32" else {}))
        self.analyzers = default_analyzers(model, model.name, faces,
                                           library_root=Path(thumbs_root) if thumbs_root else None)
        self.analyzers += list(extra_analyzers or ())
        self.analyzer = PhotoAnalyzer(self.analyzers, small_side=model.image_size, workers=workers,
                                      batch_size=batch_size, encoders=encoders_for(model, workers))

    def embed(self, manifest: str, out: str) -> dict[str, Any]:
        """Analyze one manifest shard into ``out`` (atomically); returns {"out", "photos", "skipped"}."""
        items = read_manifest(manifest)
        done = {id(res.item): res for res in self.analyzer.stream(items)}  # batched ones come out late
        results = [done[id(i)] for i in items]
        for r in results:
            if r.skip == "file vanished during indexing":
                r.skip = "file vanished before embedding"
        write_output(results, self.analyzers, Path(out))
        ok = sum(1 for r in results if r.skip is None)
        return {"out": out, "photos": ok, "skipped": len(results) - ok}

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Ray Data entry point: a batch of {"manifest", "out"} rows."""
        results = [self.embed(m, o) for m, o in zip(batch["manifest"], batch["out"])]
        return {"out": [r["out"] for r in results], "photos": [r["photos"] for r in results]}


def _todo(paths: LibraryPaths) -> list[tuple[str, str]]:
    manifest_dir, out_dir = shard_dirs(paths)
    if not manifest_dir.is_dir():
        return []
    return [(str(m), str(out_dir / m.name)) for m in sorted(manifest_dir.glob("shard-*.parquet"))
            if not (out_dir / m.name).exists()]


def embed_local(paths: LibraryPaths, model_folder: str, *, face_model: str | None = None, threads: int | None = None,
                batch_size: int = 16, extra_analyzers: list[Analyzer] | None = None, on_shard: Any = None,
                precision: str = "fp32") -> int:
    """Analyze every shard without output, in this process; ``on_shard(out)`` as each is written."""
    from photosearch.models.base import default_threads

    todo = _todo(paths)
    if not todo:
        return 0
    n = threads or default_threads()
    worker = ShardWorker(model_folder, face_root=str(paths.models / "faces"), face_model=face_model,
                         thumbs_root=str(paths.root), threads=clip_threads(n), workers=n, batch_size=batch_size,
                         extra_analyzers=extra_analyzers, precision=precision)
    crash_after = int(os.environ.get(ENV_CRASH_AFTER, "0") or 0)
    for k, (manifest, out) in enumerate(todo, 1):
        worker.embed(manifest, out)
        if crash_after and k >= crash_after:
            os._exit(137)  # as if killed right after the shard was written: no cleanup, no commit
        if on_shard:
            on_shard(out)
    return len(todo)


def ray_env() -> None:
    """Ray on this machine listens on loopback only: with this setting every Ray server binds the
    node address, and the node address is 127.0.0.1 (by default it is the routable one)."""
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def embed_ray(paths: LibraryPaths, model_folder: str, *, face_model: str | None = None, address: str | None = None,
              workers: int = 2, cpus_per_worker: float = 0.5, extra_analyzers: list[Analyzer] | None = None,
              on_shard: Any = None, precision: str = "fp32") -> int:
    """Analyze every shard without output on Ray Data actor pools (a local loopback-only cluster
    unless ``address`` names one); ``on_shard(out)`` as Ray streams each back, so commits overlap
    analysis. Actors ask for fractional CPUs: whole ones can deadlock Ray Data's scheduler on 2
    cores. Workers read photos and models by path: on a real cluster the library and the photos
    sit on storage every node mounts at the same path."""
    todo = _todo(paths)
    if not todo:
        return 0
    ray_env()
    import ray

    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False,
                 **({} if address else {"num_cpus": max(2, os.cpu_count() or 2)}))
    try:
        ds = ray.data.from_items([{"manifest": m, "out": o} for m, o in todo])
        kwargs = {"face_root": str(paths.models / "faces"), "face_model": face_model, "threads": 1,
                  # Thumbnails only on a local cluster: a remote node cannot reach the library.
                  "thumbs_root": None if address else str(paths.root), "extra_analyzers": extra_analyzers,
                  "precision": precision}
        done = 0
        crash_after = int(os.environ.get(ENV_CRASH_AFTER, "0") or 0)
        for row in ds.map_batches(ShardWorker, fn_constructor_args=(model_folder,), fn_constructor_kwargs=kwargs,
                                  batch_size=1, concurrency=workers, num_cpus=cpus_per_worker).iter_rows():
            done += 1
            if crash_after and done >= crash_after:
                os._exit(137)  # as if the coordinator were killed: Ray's processes die with it, no commit
            if on_shard:
                on_shard(row["out"])
    finally:
        if started_here:
            ray.shutdown()
    return done


def _pause_for_tests() -> None:
    """Tests of concurrent runs hold a run here, mid-way, for as long as a file exists."""
    pause = os.environ.get(ENV_PAUSE_FILE)
    while pause and os.path.exists(pause):
        time.sleep(0.05)


def _require_scale(engine: str) -> None:
    import importlib.util

    missing = [m for m in ("pyarrow",) + (("ray",) if engine == "ray" else ()) if importlib.util.find_spec(m) is None]
    if missing:
        raise UsageError(f"--engine {engine} needs {', '.join(missing)}: pip install 'photosearch[scale]'")


def _write_marker(root: Path, kept: int, planned: int) -> None:
    """Note an interrupted run in the library, so the next one can say what it resumed."""
    from datetime import datetime

    from photosearch.files import write_atomic

    try:
        write_atomic(root / _MARKER, json.dumps({"kept": kept, "planned": planned,
                                                 "at": datetime.now().isoformat(timespec="seconds")}))
    except OSError:
        pass  # only a courtesy message depends on it


def _read_marker(root: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((root / _MARKER).read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None


def _clear_marker(root: Path) -> None:
    try:
        (root / _MARKER).unlink()
    except OSError:
        pass


def _env_seconds(name: str, default: float) -> float:
    value = os.environ.get(name)
    try:
        return max(0.0, float(value)) if value else default
    except ValueError:
        raise UsageError(f"{name} must be a number of seconds, got {value!r}") from None


__all__ = ["run_index", "RunOptions", "clip_threads", "ShardWorker", "plan_shards", "commit_shards", "embed_local", "embed_ray", "ray_env", "ENGINES",
           "DEFAULT_SHARD_SIZE"]
