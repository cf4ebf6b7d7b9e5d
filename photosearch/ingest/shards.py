"""Shards: the unit of work for indexing archives too big for one machine, and the shard
embedder every engine embeds with.

1. The coordinator (the only process that writes the catalog) walks the roots, diffs the listing
   against the catalog in DuckDB, reserves catalog ids, and writes a *manifest* of the photos to
   embed as Parquet shards: ``<library>/shards/manifest/shard-NNNNNN.parquet`` (id, path, size,
   mtime_ns).
2. :class:`ShardEmbedder` turns one manifest shard into one *output* shard
   (``shards/out/shard-NNNNNN.parquet``: catalog fields, CLIP vector, perceptual hashes, faces,
   Takeout fields, or why a file was skipped; see photosearch/store/schema/FORMAT.md), written under a temporary
   name and renamed, so a shard is either complete or absent. Embedders never open the catalog.
   They run in this process (``engine="local"``) or on Ray Data actor pools (``engine="ray"``).
   Its :meth:`ShardEmbedder.stream` is also what the default pipeline indexer embeds with.
3. The coordinator ingests each output shard as it is finished (one transaction per shard,
   remembered in the ``shards`` table; moves, refreshes and faces as the pipeline indexer does
   them), then removes photos whose files are gone, updates people and syncs the vector indexes.

A crash anywhere loses at most the shards being embedded: a rerun ingests finished shards first,
embeds only shards without an output file and never plans a file twice.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from photosearch.config import LibraryPaths

T = TypeVar("T")
DEFAULT_SHARD_SIZE = 1000
ENV_CRASH_AFTER = "PHOTOSEARCH_TEST_CRASH_AFTER_SHARDS"  # tests: die (like kill -9) after N shards


@dataclass
class ShardRun:
    """What one sharded index run did."""

    engine: str = "local"
    planned: int = 0          # new shards written to the manifest this run
    embedded: int = 0         # shards embedded this run
    ingested: int = 0         # shards ingested this run
    photos: int = 0           # photos added to the catalog this run
    refreshed: int = 0        # cataloged photos whose missing vectors, hashes or faces were added
    moved: int = 0            # cataloged photos found at a new path (their rows followed them)
    removed: int = 0          # cataloged photos whose files are gone
    faces: int = 0            # faces found in the photos ingested this run
    people_updated: int = 0
    face_model: str | None = None
    skipped: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    total_photos: int = 0

    def as_dict(self) -> dict[str, Any]:
        """The run's fields as a plain dict, ``seconds`` rounded to milliseconds."""
        d = asdict(self)
        d["seconds"] = round(self.seconds, 3)
        return d


def shard_dirs(paths: LibraryPaths) -> tuple[Path, Path]:
    """The library's manifest and output shard folders, in that order."""
    root = paths.root / "shards"
    return root / "manifest", root / "out"


def _write_parquet_atomic(table: Any, dest: Path) -> None:
    import pyarrow.parquet as pq

    dest.parent.mkdir(parents=True, exist_ok=True)
    from photosearch.files import replacing

    with replacing(dest) as tmp:
        pq.write_table(table, tmp)


# -- 1. the coordinator's manifest ----------------------------------------------------------------


def plan(paths: LibraryPaths, roots: list[str], model_name: str, face_model: str | None = None, *,
         shard_size: int = DEFAULT_SHARD_SIZE,
         on_skip: Callable[[str, str], None] | None = None) -> tuple[int, list[int]]:
    """Write manifest shards for the files under ``roots`` that need embedding (the diff runs in
    DuckDB, see :meth:`Catalog.plan_listing`); returns (shards written, ids of cataloged photos
    under ``roots`` whose files were not found: moved or removed, settled after ingest)."""
    import pyarrow as pa

    from photosearch.store.catalog import Catalog
    from photosearch.media.scan import normalize_root, walk

    manifest_dir, _ = shard_dirs(paths)
    roots = [normalize_root(r) for r in roots]
    listed: dict[str, list[Any]] = {"path": [], "size": [], "mtime_ns": []}
    for e in walk(roots, exclude=os.path.normpath(str(paths.root)), on_error=on_skip):
        listed["path"].append(e.path)
        listed["size"].append(e.size)
        listed["mtime_ns"].append(e.mtime_ns)
    listing = pa.table({"path": pa.array(listed["path"], pa.string()), "size": pa.array(listed["size"], pa.int64()),
                        "mtime_ns": pa.array(listed["mtime_ns"], pa.int64())})
    del listed
    with Catalog.open(paths.catalog) as cat:
        with cat.transaction():
            for r in roots:
                cat.add_root(r)
        todo, gone = cat.plan_listing(listing, roots, model_name, face_model)
        if todo.num_rows == 0:
            return 0, gone
        written = 0
        with cat.transaction():
            ids = pa.array(cat.reserve_photo_ids(todo.num_rows), pa.int64())
            start = cat.next_shard_number()
            for n, i in enumerate(range(0, todo.num_rows, shard_size)):
                chunk = todo.slice(i, shard_size)
                name = f"shard-{start + n:06d}"
                table = pa.table({"id": ids.slice(i, shard_size), "path": chunk.column("path"),
                                  "size": chunk.column("size"), "mtime_ns": chunk.column("mtime_ns")})
                _write_parquet_atomic(table, manifest_dir / f"{name}.parquet")
                cat.add_shard(name, chunk.num_rows, chunk.column("path").to_pylist())
                written += 1
        return written, gone


# -- 2. the embedder (runs anywhere; never opens the catalog) -------------------------------------


class ShardEmbedder:
    """Embeds manifest shards: CLIP vectors, perceptual hashes, faces (with a face model) and
    metadata, through the same :class:`~photosearch.ingest.analyze.PhotoAnalyzer` as the pipeline
    indexer. Models are loaded once per embedder (one per Ray actor)."""

    def __init__(self, model_folder: str, *, face_root: str | None = None, face_model: str | None = None,
                 thumbs_root: str | None = None, threads: int = 1, workers: int = 1,
                 batch_size: int = 16) -> None:
        from photosearch.ingest.analyze import PhotoAnalyzer
        from photosearch.models.store import open_model

        faces = None
        if face_root and face_model:
            from photosearch.models.faces import FaceModelStore

            # One thread per face engine: photos are analyzed in parallel by the workers instead.
            faces = FaceModelStore.at(Path(face_root)).load(face_model, threads=1, auto_install=False)
        self.analyzer = PhotoAnalyzer(open_model(Path(model_folder), threads=threads), faces,
                                      thumbs_root=Path(thumbs_root) if thumbs_root else None)
        self.batch_size = batch_size
        self.workers = max(1, workers)

    @classmethod
    def with_analyzer(cls, analyzer: Any, *, workers: int = 1, batch_size: int = 16) -> ShardEmbedder:
        """An embedder around models already loaded (the pipeline indexer's)."""
        embedder = cls.__new__(cls)
        embedder.analyzer, embedder.workers, embedder.batch_size = analyzer, max(1, workers), batch_size
        return embedder

    def stream(self, items: Iterable[T], prepare: Callable[[T], Any]) -> Iterator[tuple[T, Any, np.ndarray | None]]:
        """(item, analysis, CLIP vector or None) for every item, as soon as it is done.

        ``prepare(item)`` (read, hash, analyze; see :class:`~photosearch.ingest.analyze.PhotoAnalyzer`)
        runs on ``workers`` threads a bounded distance ahead, so decoded pixels never pile up;
        analyses with pixels are encoded in batches of ``batch_size`` (and come out then), the
        others come out at once. Every engine embeds through this: the pipeline indexer streams
        into the catalog, :meth:`embed` into a Parquet shard."""
        batch: list[tuple[T, Any]] = []
        lookahead = max(2 * self.batch_size, 4 * self.workers)
        pending: deque[tuple[T, Future[Any]]] = deque()

        def encode() -> Iterator[tuple[T, Any, np.ndarray | None]]:
            vectors = self.analyzer.encode([a.pixels for _, a in batch])
            for (item, a), v in zip(batch, vectors):
                a.pixels = None
                yield item, a, v
            batch.clear()

        def take() -> Iterator[tuple[T, Any, np.ndarray | None]]:
            item, fut = pending.popleft()
            a = fut.result()
            if a.skip is None and a.pixels is not None:
                batch.append((item, a))
                if len(batch) >= self.batch_size:
                    yield from encode()
            else:
                yield item, a, None

        with ThreadPoolExecutor(self.workers, thread_name_prefix="decode") as pool:
            try:
                for item in items:
                    pending.append((item, pool.submit(prepare, item)))
                    if len(pending) >= lookahead:
                        yield from take()
                while pending:
                    yield from take()
            finally:
                for _, fut in pending:  # stopped early (an error, Ctrl-C): drop the look-ahead
                    fut.cancel()
        if batch:
            yield from encode()

    def embed(self, manifest: str, out: str) -> dict[str, Any]:
        """Embed one manifest shard into ``out`` (atomically); returns {"out", "photos", "skipped"}."""
        import pyarrow.parquet as pq

        rows = pq.read_table(manifest).to_pylist()
        results: list[Any] = [None] * len(rows)
        vectors = np.zeros((len(rows), self.analyzer.model.embed_dim), np.float32)
        for i, a, v in self.stream(range(len(rows)), lambda i: self._analyze(rows[i])):
            results[i] = a
            if v is not None:
                vectors[i] = v
        ok = sum(1 for a in results if a.skip is None)
        _write_parquet_atomic(_output_table(rows, results, vectors, self.analyzer.face_model), Path(out))
        return {"out": out, "photos": ok, "skipped": len(rows) - ok}

    def _analyze(self, r: dict[str, Any]) -> Any:
        from photosearch.ingest.analyze import Analysis, read_file
        from photosearch.media.scan import content_hash

        data, skip = read_file(r["path"])
        if data is None:
            return Analysis(skip="file vanished before embedding" if skip == "file vanished during indexing" else skip)
        res = Analysis(hash=content_hash(data))
        return self.analyzer.analyze(res, data, path=r["path"], size=r["size"], mtime_ns=r["mtime_ns"])

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Ray Data entry point: a batch of {"manifest", "out"} rows."""
        results = [self.embed(m, o) for m, o in zip(batch["manifest"], batch["out"])]
        return {"out": [r["out"] for r in results], "photos": [r["photos"] for r in results]}


def _output_table(rows: list[dict[str, Any]], results: list[Any], vectors: np.ndarray, face_model: str | None) -> Any:
    """The output shard: one row per manifest row (see FORMAT.md, "Shards")."""
    import json

    import pyarrow as pa

    from photosearch.store.catalog import PHOTO_COLUMNS, photo_arrow_type

    n, dim = vectors.shape
    recs = [a.record for a in results]
    cols: dict[str, Any] = {
        "id": pa.array([r["id"] for r in rows], pa.int64()),
        "path": pa.array([r["path"] for r in rows], pa.string()),
        "size": pa.array([r["size"] for r in rows], pa.int64()),
        "mtime_ns": pa.array([r["mtime_ns"] for r in rows], pa.int64()),
    }
    for c in PHOTO_COLUMNS:
        if c in cols:
            continue
        cols[c] = pa.array([getattr(rec, c) if rec is not None else None for rec in recs], photo_arrow_type(c))
    valid = np.array([a.skip is None for a in results], bool)
    cols["vector"] = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), dim,
                                                       mask=pa.array(~valid) if n else None)
    cols["phash"] = pa.array([list(a.hashes.phash) if a.hashes else None for a in results], pa.list_(pa.uint64()))
    cols["dhash"] = pa.array([int(a.hashes.dhash) if a.hashes else None for a in results], pa.uint64())
    cols["content_width"] = pa.array([round(a.size[0] * a.hashes.content[0]) if a.hashes and a.size else None
                                      for a in results], pa.int64())
    cols["content_height"] = pa.array([round(a.size[1] * a.hashes.content[1]) if a.hashes and a.size else None
                                       for a in results], pa.int64())
    cols["skip"] = pa.array([a.skip for a in results], pa.string())
    face_type = pa.struct([("x", pa.float64()), ("y", pa.float64()), ("w", pa.float64()), ("h", pa.float64()),
                           ("score", pa.float64()), ("vector", pa.list_(pa.float32())), ("source", pa.string()),
                           ("region_name", pa.string())])
    cols["faces"] = pa.array([
        None if a.faces is None else [
            {"x": f.box[0], "y": f.box[1], "w": f.box[2], "h": f.box[3], "score": f.score,
             "vector": None if f.vector is None else np.asarray(f.vector, np.float32).tolist(),
             "source": f.source, "region_name": f.region_name} for f in a.faces]
        for a in results], pa.list_(face_type))
    cols["face_model"] = pa.array([face_model if a.faces is not None else None for a in results], pa.string())
    cols["takeout"] = pa.array([
        None if a.takeout is None else json.dumps({
            "json_path": a.takeout.json_path, "gps_lat": a.takeout.gps_lat, "gps_lon": a.takeout.gps_lon,
            "taken_at": a.takeout.taken_at.isoformat() if a.takeout.taken_at else None,
            "description": a.takeout.description, "people": list(a.takeout.people)})
        for a in results], pa.string())
    return pa.table(cols)


def _todo(paths: LibraryPaths) -> list[tuple[str, str]]:
    manifest_dir, out_dir = shard_dirs(paths)
    if not manifest_dir.is_dir():
        return []
    return [(str(m), str(out_dir / m.name)) for m in sorted(manifest_dir.glob("shard-*.parquet"))
            if not (out_dir / m.name).exists()]


def embed_local(paths: LibraryPaths, model_folder: str, *, face_model: str | None = None,
                threads: int | None = None, on_shard: Callable[[dict[str, Any]], None] | None = None) -> int:
    """Embed every shard without output, in this process; ``on_shard`` gets each result as it
    is written (the coordinator ingests it then)."""
    from photosearch.models.base import default_threads

    todo = _todo(paths)
    if not todo:
        return 0
    n = threads or default_threads()
    embedder = ShardEmbedder(model_folder, face_root=str(paths.models / "faces"), face_model=face_model,
                             thumbs_root=str(paths.root), threads=n, workers=n)
    crash_after = int(os.environ.get(ENV_CRASH_AFTER, "0") or 0)
    for n, (manifest, out) in enumerate(todo, 1):
        result = embedder.embed(manifest, out)
        if crash_after and n >= crash_after:
            os._exit(137)  # as if killed right after the shard was written: no cleanup, no ingest
        if on_shard:
            on_shard(result)
    return len(todo)


def ray_env() -> None:
    """Ray on this machine listens on loopback only: with this setting every Ray server binds the
    node address, and the node address is 127.0.0.1 (by default it is the routable one)."""
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def embed_ray(paths: LibraryPaths, model_folder: str, *, face_model: str | None = None, address: str | None = None,
              workers: int = 2, cpus_per_worker: float = 0.5,
              on_shard: Callable[[dict[str, Any]], None] | None = None) -> int:
    """Embed every shard without output on Ray Data actor pools (a local loopback-only cluster
    unless ``address`` names one); ``on_shard`` gets each finished shard as Ray streams it back,
    so ingest overlaps embedding. Actors ask for fractional CPUs: whole ones can deadlock Ray
    Data's scheduler on 2 cores. Workers read photos and models by path: on a real cluster the
    library and the photos sit on storage every node mounts at the same path."""
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
                  "thumbs_root": None if address else str(paths.root)}
        done = 0
        crash_after = int(os.environ.get(ENV_CRASH_AFTER, "0") or 0)
        for row in ds.map_batches(ShardEmbedder, fn_constructor_args=(model_folder,), fn_constructor_kwargs=kwargs,
                                  batch_size=1, concurrency=workers, num_cpus=cpus_per_worker).iter_rows():
            done += 1
            if crash_after and done >= crash_after:
                os._exit(137)  # as if the coordinator were killed: Ray's processes die with it, no ingest
            if on_shard:
                on_shard({"out": row["out"], "photos": row["photos"]})
    finally:
        if started_here:
            ray.shutdown()
    return done


# -- 3. the coordinator's ingest -------------------------------------------------------------------


def ingest(paths: LibraryPaths, model_name: str, summary: ShardRun | None = None) -> ShardRun:
    """Add every finished, not yet ingested output shard to the catalog (one transaction each)."""
    from photosearch.store.catalog import Catalog

    summary = summary or ShardRun()
    _, out_dir = shard_dirs(paths)
    with Catalog.open(paths.catalog) as cat:
        for name in cat.uningested_shards():
            out = out_dir / f"{name}.parquet"
            if not out.is_file():
                continue
            with cat.transaction():
                got = cat.ingest_shard(str(out), model_name)
                cat.mark_shard_ingested(name)
            summary.ingested += 1
            summary.photos += got["added"]
            summary.refreshed += got["refreshed"]
            summary.moved += got["moved"]
            summary.faces += got["faces"]
            summary.skipped += got["skipped"]
    return summary


def run(paths: LibraryPaths, model: Any, roots: list[str], *, engine: str = "local", address: str | None = None,
        shard_size: int = DEFAULT_SHARD_SIZE, workers: int = 2, exact_max: int | None = None,
        face_model: str | None = None, on_shard: Callable[[ShardRun], None] | None = None) -> ShardRun:
    """Plan, embed (in process or on Ray) and ingest each shard as it is finished; then remove
    photos whose files are gone, update people and sync the vector indexes."""
    from photosearch.store.catalog import Catalog
    from photosearch.errors import UsageError

    if engine not in ("local", "ray"):
        raise UsageError("--engine is local or ray")
    import importlib.util

    missing = [m for m in ("pyarrow",) + (("ray",) if engine == "ray" else ()) if importlib.util.find_spec(m) is None]
    if missing:
        raise UsageError(f"--engine {engine} needs {', '.join(missing)}: pip install 'photosearch[scale]'")
    started = time.monotonic()
    summary = ShardRun(engine=engine, face_model=face_model)
    gone: list[int] = []
    if not roots:
        with Catalog.open(paths.catalog) as cat:
            roots = cat.roots()
    if roots:
        summary.planned, gone = plan(paths, roots, model.name, face_model, shard_size=shard_size,
                                     on_skip=lambda p, r: summary.skipped.append({"path": p, "reason": r}))
    ingest(paths, model.name, summary)  # shards embedded by an earlier, interrupted run

    def one_shard(_result: dict[str, Any]) -> None:
        summary.embedded += 1
        ingest(paths, model.name, summary)
        if on_shard:
            on_shard(summary)

    folder = str(model.folder)
    if engine == "ray":
        embed_ray(paths, folder, face_model=face_model, address=address, workers=workers, on_shard=one_shard)
    else:
        embed_local(paths, folder, face_model=face_model, on_shard=one_shard)
    from photosearch.ingest.finish import finish
    from photosearch.models.faces import face_model_dim

    face_dim = face_model_dim(paths.models / "faces" / face_model) if face_model else None
    with Catalog.open(paths.catalog) as cat:
        # Gone files whose bytes did not turn up elsewhere (a move) are removed.
        still = [i for i, p in cat.paths_by_ids(gone).items() if not os.path.exists(p)]
        done = finish(cat, paths.vectors, gone_ids=still, model=model.name, dim=model.embed_dim,
                      face_model=face_model, face_dim=face_dim, exact_max=exact_max)
    summary.removed, summary.people_updated, summary.total_photos = (done.removed, done.people_updated,
                                                                     done.total_photos)
    summary.seconds = time.monotonic() - started
    return summary


__all__ = ["plan", "ShardEmbedder", "embed_local", "embed_ray", "ingest", "run", "ShardRun", "shard_dirs", "ray_env"]
