"""Shards: the unit of work for indexing archives too big for one machine (and the same code in
one process).

1. The coordinator (the only process that writes the catalog) scans, diffs against the catalog,
   reserves catalog ids for the new photos, and writes a *manifest* of pending photos as Parquet
   shards: ``<library>/shards/manifest/shard-NNNNNN.parquet`` (id, path, size, mtime_ns).
2. An embedder turns one manifest shard into one *output* shard
   (``shards/out/shard-NNNNNN.parquet``: catalog fields, the CLIP vector, perceptual hashes,
   or the reason a file was skipped), written under a temporary name and renamed, so a shard is
   either complete or absent. Embedders never open the catalog. They run in this process
   (``engine="local"``) or on Ray Data actor pools (``engine="ray"``): one function, two drivers.
3. The coordinator ingests finished output shards through DuckDB's ``read_parquet`` (one
   transaction per shard, remembered in the ``shards`` table), then syncs the vector index.

A crash anywhere loses at most the shards being embedded: a rerun embeds only shards without an
output file and ingests only shards not yet ingested.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from photosearch.config import LibraryPaths

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
    skipped: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    total_photos: int = 0

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["seconds"] = round(self.seconds, 3)
        return d


def shard_dirs(paths: LibraryPaths) -> tuple[Path, Path]:
    root = paths.root / "shards"
    return root / "manifest", root / "out"


def _write_parquet_atomic(table: Any, dest: Path) -> None:
    import pyarrow.parquet as pq

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    pq.write_table(table, tmp)
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, dest)


# -- 1. the coordinator's manifest ----------------------------------------------------------------


def plan(paths: LibraryPaths, roots: list[str], *, shard_size: int = DEFAULT_SHARD_SIZE) -> int:
    """Write manifest shards for photos under ``roots`` that are neither cataloged (unchanged) nor
    already in a manifest; returns how many shards were written."""
    import pyarrow as pa

    from photosearch.catalog import Catalog
    from photosearch.scan import normalize_root, walk

    manifest_dir, _ = shard_dirs(paths)
    roots = [normalize_root(r) for r in roots]
    with Catalog.open(paths.catalog) as cat:
        with cat.transaction():
            for r in roots:
                cat.add_root(r)
        known = cat.known_files()
        pending = cat.pending_shard_paths()
        failed = cat.shard_skips()
        todo = []
        for e in walk(roots, exclude=os.path.normpath(str(paths.root))):
            k = known.get(e.path)
            if (k is not None and k.size == e.size and k.mtime_ns == e.mtime_ns) or e.path in pending \
                    or failed.get(e.path) == (e.size, e.mtime_ns):  # unusable and unchanged since
                continue
            todo.append(e)
        if not todo:
            return 0
        written = 0
        with cat.transaction():
            ids = cat.reserve_photo_ids(len(todo))
            start = cat.next_shard_number()
            for n, i in enumerate(range(0, len(todo), shard_size)):
                chunk = todo[i:i + shard_size]
                name = f"shard-{start + n:06d}"
                table = pa.table({
                    "id": pa.array(ids[i:i + shard_size], pa.int64()),
                    "path": pa.array([e.path for e in chunk], pa.string()),
                    "size": pa.array([e.size for e in chunk], pa.int64()),
                    "mtime_ns": pa.array([e.mtime_ns for e in chunk], pa.int64()),
                })
                _write_parquet_atomic(table, manifest_dir / f"{name}.parquet")
                cat.add_shard(name, len(chunk), [e.path for e in chunk])
                written += 1
        return written


# -- 2. the embedder (runs anywhere; never opens the catalog) -------------------------------------


class ShardEmbedder:
    """Embeds manifest shards with one CLIP model (loaded once per embedder: one per Ray actor)."""

    def __init__(self, model_folder: str, *, threads: int = 1, batch_size: int = 16) -> None:
        from photosearch.models.clip import ClipModel

        self.model = ClipModel(Path(model_folder), threads=threads)
        self.batch_size = batch_size

    def embed(self, manifest: str, out: str) -> dict[str, Any]:
        """Embed one manifest shard into ``out`` (atomically); returns {"out", "photos", "skipped"}."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        from photosearch import hashes
        from photosearch.errors import DecodeError
        from photosearch.imageio import decode, read_metadata
        from photosearch.scan import content_hash, find_sidecar

        rows = pq.read_table(manifest).to_pylist()
        dim = self.model.embed_dim
        cols: dict[str, list[Any]] = {k: [] for k in (
            "id", "path", "size", "mtime_ns", "content_hash", "width", "height", "format", "taken_at",
            "camera_make", "camera_model", "lens", "gps_lat", "gps_lon", "orientation", "keywords", "rating",
            "title", "description", "vector", "phash", "dhash", "content_width", "content_height", "skip")}
        pixels, slots = [], []
        for r in rows:
            rec = {k: None for k in cols}
            rec.update(id=r["id"], path=r["path"], size=r["size"], mtime_ns=r["mtime_ns"], keywords=[])
            try:
                with open(r["path"], "rb") as f:
                    data = f.read()
                rec["content_hash"] = content_hash(data)
                decoded = decode(data, ext=os.path.splitext(r["path"])[1].lower(), min_side=self.model.image_size)
                pixels.append(self.model.preprocess(decoded.image))
                slots.append(len(cols["id"]))
                h = hashes.compute(decoded.image)
                side = find_sidecar(r["path"])
                side_bytes = Path(side).read_bytes() if side and os.path.isfile(side) else None
                md = read_metadata(data, side_bytes)
                rec.update(width=decoded.width, height=decoded.height, format=decoded.format,
                           taken_at=md.taken_at, camera_make=md.camera_make, camera_model=md.camera_model,
                           lens=md.lens, gps_lat=md.gps_lat, gps_lon=md.gps_lon,
                           orientation=decoded.orientation or md.orientation, keywords=md.keywords,
                           rating=md.rating, title=md.title, description=md.description,
                           phash=[int(v) for v in h.phash], dhash=int(h.dhash),
                           content_width=round(decoded.width * h.content[0]),
                           content_height=round(decoded.height * h.content[1]))
            except FileNotFoundError:
                rec["skip"] = "file vanished before embedding"
            except OSError as exc:
                rec["skip"] = f"cannot read: {exc.strerror or exc}"
            except DecodeError as exc:
                rec["skip"] = exc.reason
            except MemoryError:
                rec["skip"] = "too large to decode in memory"
            for k in cols:
                cols[k].append(rec[k])
        vectors = np.zeros((len(rows), dim), np.float32)
        for i in range(0, len(pixels), self.batch_size):
            out_v = self.model.encode_pixels(np.stack(pixels[i:i + self.batch_size]))
            for slot, v in zip(slots[i:i + self.batch_size], out_v):
                vectors[slot] = v
        ok = set(slots)
        cols["vector"] = [vectors[j] if j in ok else None for j in range(len(rows))]
        table = pa.table({
            **{k: pa.array(v) for k, v in cols.items()
               if k not in ("vector", "phash", "dhash", "keywords", "taken_at")},
            "taken_at": pa.array(cols["taken_at"], pa.timestamp("us")),
            "keywords": pa.array(cols["keywords"], pa.list_(pa.string())),
            "vector": pa.array([None if v is None else v.tolist() for v in cols["vector"]], pa.list_(pa.float32(), dim)),
            "phash": pa.array(cols["phash"], pa.list_(pa.uint64())),
            "dhash": pa.array(cols["dhash"], pa.uint64()),
        })
        _write_parquet_atomic(table, Path(out))
        return {"out": out, "photos": len(slots), "skipped": len(rows) - len(slots)}

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


def embed_local(paths: LibraryPaths, model_folder: str, *, threads: int | None = None,
                on_shard: Callable[[dict[str, Any]], None] | None = None) -> int:
    """Embed every shard without output, in this process."""
    from photosearch.models.base import default_threads

    todo = _todo(paths)
    if not todo:
        return 0
    embedder = ShardEmbedder(model_folder, threads=threads or default_threads())
    crash_after = int(os.environ.get(ENV_CRASH_AFTER, "0") or 0)
    for n, (manifest, out) in enumerate(todo, 1):
        result = embedder.embed(manifest, out)
        if on_shard:
            on_shard(result)
        if crash_after and n >= crash_after:
            os._exit(137)  # as if killed: no cleanup, no ingest
    return len(todo)


def ray_env() -> None:
    """Ray on this machine listens on loopback only: with this setting every Ray server binds the
    node address, and the node address is 127.0.0.1 (by default it is the routable one)."""
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def embed_ray(paths: LibraryPaths, model_folder: str, *, address: str | None = None, workers: int = 2,
              cpus_per_worker: float = 0.5) -> int:
    """Embed every shard without output on Ray Data actor pools (a local loopback-only cluster
    unless ``address`` names one). Actors ask for fractional CPUs: whole ones can deadlock Ray
    Data's scheduler on 2 cores."""
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
        done = ds.map_batches(ShardEmbedder, fn_constructor_args=(model_folder,), fn_constructor_kwargs={"threads": 1},
                              batch_size=1, concurrency=workers, num_cpus=cpus_per_worker).take_all()
    finally:
        if started_here:
            ray.shutdown()
    return len(done)


# -- 3. the coordinator's ingest -------------------------------------------------------------------


def ingest(paths: LibraryPaths, model_name: str) -> tuple[int, int, list[dict[str, str]]]:
    """Add finished output shards to the catalog; returns (shards, photos, skipped files)."""
    from photosearch.catalog import Catalog

    _, out_dir = shard_dirs(paths)
    shards = photos = 0
    skipped: list[dict[str, str]] = []
    with Catalog.open(paths.catalog) as cat:
        for name in cat.uningested_shards():
            out = out_dir / f"{name}.parquet"
            if not out.is_file():
                continue
            with cat.transaction():
                added, skips = cat.ingest_shard(str(out), model_name)
                cat.mark_shard_ingested(name)
            shards += 1
            photos += added
            skipped += skips
    return shards, photos, skipped


def run(paths: LibraryPaths, model: Any, roots: list[str], *, engine: str = "local", address: str | None = None,
        shard_size: int = DEFAULT_SHARD_SIZE, workers: int = 2, exact_max: int | None = None) -> ShardRun:
    """Plan, embed (in process or on Ray) and ingest; then sync the vector index."""
    from photosearch.catalog import Catalog
    from photosearch.errors import UsageError
    from photosearch.indexer import refresh_index

    if engine not in ("local", "ray"):
        raise UsageError("--engine is local or ray")
    import importlib.util

    missing = [m for m in ("pyarrow",) + (("ray",) if engine == "ray" else ()) if importlib.util.find_spec(m) is None]
    if missing:
        raise UsageError(f"--engine {engine} needs {', '.join(missing)}: pip install 'photosearch[scale]'")
    started = time.monotonic()
    summary = ShardRun(engine=engine)
    if roots:
        summary.planned = plan(paths, roots, shard_size=shard_size)
    folder = str(model.folder)
    if engine == "ray":
        summary.embedded = embed_ray(paths, folder, address=address, workers=workers)
    else:
        summary.embedded = embed_local(paths, folder)
    summary.ingested, summary.photos, summary.skipped = ingest(paths, model.name)
    refresh_index(paths, model.name, model.embed_dim, exact_max)
    with Catalog.open(paths.catalog, read_only=True) as cat:
        summary.total_photos = cat.count_photos()
    summary.seconds = time.monotonic() - started
    return summary


__all__ = ["plan", "ShardEmbedder", "embed_local", "embed_ray", "ingest", "run", "ShardRun", "shard_dirs", "ray_env"]
