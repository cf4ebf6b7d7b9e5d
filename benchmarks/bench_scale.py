#!/usr/bin/env python3
"""Scale-out (issue 8): single-machine measurements for a 100M-photo plan, and the simulation.

    python3 benchmarks/bench_scale.py embed --n 200 --repeat 2 --json-out benchmarks/work/scale-embed.json  # ~5 min
    python3 benchmarks/bench_scale.py ingest --no-prefill-embeddings --json-out benchmarks/work/scale-ingest.json  # ~3 min
    python3 benchmarks/bench_scale.py index --json-out benchmarks/work/scale-index.json   # ~30 min on 2 cores:
        # OPQ training alone is ~3.5 min (OPQ64) and ~16 min (OPQ128); --budgets 64 for less
    python3 benchmarks/bench_scale.py index --budgets --sample 163840 --json-out benchmarks/work/scale-flat.json
        # Flat only, coarse quantizer trained on 40 vectors per list (~6 min)
    python3 benchmarks/bench_scale.py requery benchmarks/work/scale-index.json   # re-run query processes only
    python3 benchmarks/bench_scale.py simulate benchmarks/work/scale-*.json     # report + SCALE.md tables
    python3 benchmarks/bench_scale.py all --json-out benchmarks/work/scale.json  # embed, ingest, index in turn

embed   The shard worker (photosearch.ingest.runners.ShardWorker) on camera-like 12 MP JPEGs (bench_index.py's,
        reused from benchmarks/work/), random-weights ViT-B-32-256 (speed does not depend on
        the weights): in process (embed_local, onnxruntime threads 1 and 2) and on a local
        loopback-only Ray cluster (embed_ray, 1 and 2 actors of 0.5 CPU, one onnxruntime thread
        each). Each run plans a scratch library's manifest shards first and times only the
        embedding: wall (model load and, for Ray, actor start included), steady rate between the
        first and the last finished shard (from the output files' mtimes), CPU busy on the machine.
index   photosearch.store.ondisk at N synthetic 512-d unit vectors, clustered like bench_query.py's,
        written as Parquet output shards (id, vector FixedSizeList<float32>[512], skip null).
        For the codec OnDiskSpec.choose picks under each --budgets (bytes/vector) and Flat:
        sample (sample_from_shards), train, add_shards (one block per shard), merge (merge_ondisk),
        sizes on disk; then a fresh process loads populated.index with IO_FLAG_ONDISK_SAME_DIR and
        reports RSS (anon and file-backed), recall@10 against exact search and single-query
        latency per nprobe; and a "cold" process after the index files were evicted from the page
        cache with posix_fadvise(DONTNEED) (checked with fincore; only our own files: the page
        cache of this shared machine is not dropped).
ingest  The coordinator's commit of output shards (photosearch.ingest.runners.commit_shards -> ingest/commit.py) of synthetic
        full-schema output shards into a fresh DuckDB catalog, empty and pre-filled with
        --prefill photos; plus the plan's diff (Catalog.diff_listing: the walk listing joined
        against the catalog in DuckDB) at the pre-filled size.
requery Re-runs the query processes of a saved index run (index folders are kept; blocks are not).
simulate  The report and the N-machine tables of SCALE.md from saved figures (several files merge;
        everything in the simulation section is arithmetic on the measured figures).

Scratch data goes under benchmarks/work/ (git-ignored). Nothing is written to RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
WORK = HERE / "work"
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("PHOTOSEARCH_OFFLINE", "1")

from photosearch.ingest.runners import ray_env  # noqa: E402

ray_env()  # before anything imports ray: every Ray server binds 127.0.0.1

DIM = 512
ARCH = "ViT-B-32-256"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


class Busy:
    """Cores busy on the whole machine during a block (from /proc/stat), this process's own CPU
    (with waited-for children), and the load average before and after."""

    def __enter__(self) -> Busy:
        from bench_index import _own_cpu, _system_busy

        self._sys, self._own = _system_busy, _own_cpu
        self.load_before = loadavg()
        self.t0, self.busy0, self.own0 = time.perf_counter(), _system_busy(), _own_cpu()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.wall = time.perf_counter() - self.t0
        self.busy = max(0.0, (self._sys() - self.busy0) / self.wall)
        self.own = (self._own() - self.own0) / self.wall
        self.load_after = loadavg()

    def as_dict(self) -> dict[str, Any]:
        return {"machine_busy_cores": round(self.busy, 2), "own_cores": round(self.own, 2),
                "others_cores": round(max(0.0, self.busy - self.own), 2),
                "loadavg_before": self.load_before, "loadavg_after": self.load_after}


def idle_sample(seconds: float = 2.0) -> float:
    """Cores other processes keep busy right now (this one sleeps)."""
    from bench_index import _system_busy

    b0 = _system_busy()
    time.sleep(seconds)
    return round(max(0.0, (_system_busy() - b0) / seconds), 2)


def status_kb(pid: int | str = "self") -> dict[str, float]:
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem"):
                out[k] = int(v.split()[0]) / 1024  # MB
    return out


def dir_bytes(folder: Path, pattern: str = "*") -> int:
    return sum(p.stat().st_size for p in Path(folder).glob(pattern) if p.is_file())


# == 1. the shard worker ==========================================================================


def photo_folder(n: int) -> Path:
    """n camera-like 12 MP JPEGs: hard links to bench_index.py's (or bench_faces.py's) when present."""
    import bench_index

    dest = WORK / f"scale-photos-n{n}"
    if dest.is_dir() and len(list(dest.glob("*.jpg"))) == n:
        return dest
    candidates = sorted(WORK.glob("photos-4000x3000-q92-*-n*"), key=lambda p: -int(p.name.rsplit("-n", 1)[1])) + \
        sorted(WORK.glob("faces-photos-4000x3000-q92-*-n*"))
    src = None
    for c in candidates:
        files = sorted(c.glob("IMG_*.jpg"))
        if (c / "manifest.json").is_file() and len(files) >= n:
            src = files[:n]
            break
    if src is None:
        log(f"no prepared photos under {WORK}: generating {n} like bench_index.py")
        src = bench_index.prepare_photos(bench_index.PhotoSpec(n), os.cpu_count() or 1)[:n]
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    for f in src:
        try:
            os.link(f, dest / f.name)
        except OSError:
            shutil.copy2(f, dest / f.name)
    return dest


def _scratch_library(model_lib: Path, tag: str) -> Path:
    lib = WORK / "scale-runs" / f"{tag}-{os.getpid()}-{time.monotonic_ns()}"
    lib.mkdir(parents=True)
    shutil.copytree(model_lib / "models", lib / "models")
    return lib


def _out_times(out_dir: Path) -> list[tuple[float, int]]:
    import pyarrow.parquet as pq

    rows = []
    for f in out_dir.glob("shard-*.parquet"):
        rows.append((f.stat().st_mtime, pq.ParquetFile(f).metadata.num_rows))
    return sorted(rows)


def embed_bench(n: int, shard_size: int, repeat: int, configs: list[str]) -> dict[str, Any]:
    import bench_index
    import pyarrow.parquet as pq

    from photosearch.api import Library
    from photosearch.config import LibraryPaths
    from photosearch.ingest.runners import embed_local, embed_ray, plan_shards
    from photosearch.ingest.shardfile import shard_dirs

    photos = photo_folder(n)
    model_lib = bench_index.prepare_model()
    model = Library(model_lib).models.load()
    folder = str(model.folder)
    sizes = [f.stat().st_size for f in photos.glob("*.jpg")]
    res: dict[str, Any] = {"n": n, "shard_size": shard_size, "photos": str(photos), "mean_mb": np.mean(sizes) / 1e6,
                           "runs": [], "ray": {}}
    # Model load alone (what every embedder, process or actor, pays once).
    from photosearch.ingest.runners import ShardWorker

    t0 = time.perf_counter()
    e = ShardWorker(folder, threads=1)
    clip = e.analyzers[0].model
    clip.encode_pixels(np.zeros((1, 3, clip.image_size, clip.image_size), np.float32))
    res["model_load_s"] = time.perf_counter() - t0
    del e
    ray_started = False
    if any(c.startswith("ray") for c in configs):
        import ray

        t0 = time.perf_counter()
        ray.init(num_cpus=2, object_store_memory=256 * 1024 * 1024, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
        res["ray"]["init_s"] = time.perf_counter() - t0
        ray_started = True
        try:
            import ray.data

            ray.data.DataContext.get_current().enable_progress_bars = False
        except Exception:  # noqa: BLE001
            pass
        listening = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout.splitlines()
        ray_lines = [ln for ln in listening if any(k in ln for k in ("raylet", "gcs_server", "ray::", "python"))]
        res["ray"]["listeners"] = len(ray_lines)
        res["ray"]["non_loopback"] = [ln for ln in ray_lines if not ln.split()[3].startswith(
            ("127.0.0.1:", "[::ffff:127.0.0.1]:", "[::1]:"))]
        if res["ray"]["non_loopback"]:
            ray.shutdown()
            raise SystemExit(f"Ray listens beyond loopback: {res['ray']['non_loopback']}")
        log(f"ray.init {res['ray']['init_s']:.1f} s; {len(ray_lines)} Ray/python listeners, all on 127.0.0.1")
    for f in photos.glob("*.jpg"):      # page cache warm for every side
        f.read_bytes()
    try:
        for rnd in range(repeat):
            order = configs if rnd % 2 == 0 else configs[::-1]
            for cfg in order:
                engine, k = cfg.split(":")
                k = int(k)
                lib = _scratch_library(model_lib, f"embed-{engine}{k}")
                paths = LibraryPaths(lib)
                planned = plan_shards(paths, model, [str(photos)], shard_size=shard_size)
                _, out_dir = shard_dirs(paths)
                others = idle_sample(1.5)
                log(f"round {rnd}: {engine} {'threads' if engine == 'local' else 'actors'}={k}: {planned} shards "
                    f"of {shard_size}, {n} photos [others busy {others} cores, load {loadavg()}]")
                t_start = time.time()
                with Busy() as b:
                    if engine == "local":
                        done = embed_local(paths, folder, threads=k)
                    else:
                        done = embed_ray(paths, folder, workers=k, cpus_per_worker=0.5)
                times = _out_times(out_dir)
                embedded = sum(pq.read_table(f, columns=["skip"]).column("skip").null_count
                               for f in out_dir.glob("shard-*.parquet"))
                # Steady rate: after each of the k workers finished its first shard (model loaded,
                # actor started), the photos of the later shards over the time they took.
                first, last = times[0][0], times[-1][0]
                kth = times[min(k, len(times)) - 1][0] if engine == "ray" else first
                skip = min(k, len(times)) if engine == "ray" else 1
                steady_rows = sum(r for t, r in times[skip:])
                r = {"engine": engine, "k": k, "round": rnd, "shards": done, "photos": embedded, "wall_s": b.wall,
                     "photos_per_s": embedded / b.wall, "first_shard_s": first - t_start,
                     "shard_done_s": [round(t - t_start, 2) for t, _ in times],
                     "steady_photos_per_s": steady_rows / (last - kth) if last > kth and steady_rows else None,
                     "others_before_cores": others, **b.as_dict()}
                r["cpu_s_per_photo_machine"] = r["machine_busy_cores"] * b.wall / max(1, embedded)
                res["runs"].append(r)
                log(f"  {embedded} photos in {b.wall:.1f} s = {r['photos_per_s']:.2f} photos/s (steady "
                    f"{(r['steady_photos_per_s'] or 0):.2f}; first shard after {r['first_shard_s']:.1f} s); machine "
                    f"{r['machine_busy_cores']} cores busy, this process {r['own_cores']}")
                if embedded != n:
                    raise SystemExit(f"expected {n} embedded photos, found {embedded}")
                res.setdefault("out_bytes_per_photo", dir_bytes(out_dir, "shard-*.parquet") / embedded)
                shutil.rmtree(lib, ignore_errors=True)
    finally:
        if ray_started:
            import ray

            ray.shutdown()
    return res


# == 2. the on-disk IVF index ======================================================================


def _f32(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float32)


def vector_shards(n: int, rows: int) -> list[Path]:
    """n clustered unit vectors (bench_query.clustered) as Parquet output shards of ``rows`` rows;
    ids 1..n. Streamed: one shard in memory at a time. Cached."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from bench_query import clustered

    folder = WORK / f"scale-vectors-n{n}-r{rows}"
    done = folder / ".complete"
    if done.is_file():
        return sorted(folder.glob("shard-*.parquet"))
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    t0 = time.perf_counter()
    for s, start in enumerate(range(0, n, rows)):
        m = min(rows, n - start)
        v = _f32(clustered(n, start, m))
        table = pa.table({"id": pa.array(np.arange(start + 1, start + m + 1, dtype=np.int64)),
                          "vector": pa.FixedSizeListArray.from_arrays(pa.array(v.reshape(-1)), DIM),
                          "skip": pa.nulls(m, pa.string())})
        pq.write_table(table, folder / f"shard-{s:06d}.parquet")
    done.write_text(json.dumps({"seconds": time.perf_counter() - t0}))
    log(f"wrote {n:,} vectors as {len(list(folder.glob('shard-*.parquet')))} shards in {time.perf_counter() - t0:.0f} s")
    return sorted(folder.glob("shard-*.parquet"))


def _read_vectors(f: Path) -> tuple[np.ndarray, np.ndarray]:
    """(ids, vectors) of an output shard: the product's columnar reader."""
    from photosearch.store.ondisk import read_vectors

    return read_vectors(f)


def make_queries(files: list[Path], nq: int, seed: int = 7) -> dict[str, np.ndarray]:
    """bench_query.py's near (noise of norm 0.5 around a stored vector) and far (1.5) queries."""
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(files), nq)
    base = []
    for i in picks:
        _, v = _read_vectors(files[i])
        base.append(v[rng.integers(len(v))])
    base = np.stack(base)
    out = {}
    for name, sigma in (("near", 0.5), ("far", 1.5)):
        noise = rng.standard_normal(base.shape).astype(np.float32)
        q = base + noise / np.linalg.norm(noise, axis=1, keepdims=True) * sigma
        out[name] = _f32(q / np.linalg.norm(q, axis=1, keepdims=True))
    return out


def exact_topk(files: list[Path], q: np.ndarray, k: int = 10) -> np.ndarray:
    best_s = np.full((len(q), k), -np.inf, np.float32)
    best_i = np.zeros((len(q), k), np.int64)
    for f in files:
        ids, v = _read_vectors(f)
        s = q @ v.T
        top = np.argpartition(-s, k, axis=1)[:, :k]
        cs = np.concatenate([best_s, np.take_along_axis(s, top, 1)], 1)
        ci = np.concatenate([best_i, ids[top]], 1)
        o = np.argsort(-cs, axis=1)[:, :k]
        best_s, best_i = np.take_along_axis(cs, o, 1), np.take_along_axis(ci, o, 1)
    return best_i


def recall_at(truth: np.ndarray, found: np.ndarray) -> float:
    """|true top k  &  found (all of its columns)| / k, averaged over queries."""
    k = truth.shape[1]
    return float(np.mean([len(set(t) & set(f)) / k for t, f in zip(truth, found)]))


def nprobes(nlist: int) -> list[int]:
    out, p = [], 1
    while p < nlist:
        out.append(p)
        p *= 2
    return out + [nlist]


def fadvise_evict(folder: Path) -> dict[str, Any]:
    """Evict this index's own files from the page cache (POSIX_FADV_DONTNEED), and say how much
    of them fincore still reports resident."""
    for f in Path(folder).iterdir():
        if f.is_file() and (f.suffix in (".ivfdata", ".index")):
            fd = os.open(f, os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)
    return resident(folder)


def resident(folder: Path) -> dict[str, Any]:
    files = [str(f) for f in Path(folder).iterdir() if f.is_file() and f.suffix in (".ivfdata", ".index")]
    try:
        out = subprocess.run(["fincore", "-b", "-n", "-o", "RES,SIZE,FILE", *files], capture_output=True, text=True,
                             timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    res = size = 0
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0].isdigit():
            res += int(parts[0])
            size += int(parts[1])
    return {"resident_mb": res / 1e6, "size_mb": size / 1e6}


_QUERY_CHILD = "query-child"


def query_child(spec_path: str) -> None:
    """Runs in a fresh process: load, RSS, per nprobe recall and single-query latency."""
    job = json.loads(Path(spec_path).read_text())
    import faiss

    from photosearch.store.ondisk import OnDiskIndex

    faiss.omp_set_num_threads(job.get("omp", 2))
    before = status_kb()
    idx = OnDiskIndex(Path(job["folder"]))
    t0 = time.perf_counter()
    index = idx.load()
    load_s = time.perf_counter() - t0
    after_load = status_kb()
    q = {k: np.asarray(v, np.float32) for k, v in np.load(job["queries"]).items()}
    truth = {k: v for k, v in np.load(job["truth"]).items()}
    out: dict[str, Any] = {"load_s": load_s, "rss_start": before, "rss_after_load": after_load, "rows": []}
    if job.get("cold"):
        # Cold: the first single queries of a fresh process on evicted files, then the same again.
        p = job["cold_nprobe"]
        lat = []
        for i in range(job.get("cold_queries", 5)):
            t0 = time.perf_counter()
            idx.search(index, q["near"][i:i + 1], 10, nprobe=p)
            lat.append(time.perf_counter() - t0)
        again = []
        for i in range(job.get("cold_queries", 5)):
            t0 = time.perf_counter()
            idx.search(index, q["near"][i:i + 1], 10, nprobe=p)
            again.append(time.perf_counter() - t0)
        out.update(cold_nprobe=p, cold_ms=[x * 1e3 for x in lat], rerun_ms=[x * 1e3 for x in again],
                   rss_after=status_kb())
        Path(job["out"]).write_text(json.dumps(out))
        return
    nlist = job["nlist"]
    data_bytes = job["data_bytes"]
    for p in job["nprobes"]:
        row: dict[str, Any] = {"nprobe": p}
        # Recall on a batch; fewer queries where each one scans a lot (Flat at high nprobe).
        scan = data_bytes * p / nlist
        nq = int(max(20, min(len(q["near"]), job["scan_budget"] / max(scan, 1))))
        for name in ("near", "far"):
            t0 = time.perf_counter()
            _, found = idx.search(index, q[name][:nq], 10, nprobe=p)
            row[f"batch_ms_per_query_{name}"] = (time.perf_counter() - t0) * 1e3 / nq
            row[f"recall_{name}"] = recall_at(truth[name][:nq], found)
            # 10@100: the true top 10 among the first 100 (what an exact re-rank of 100 would reach).
            _, found100 = idx.search(index, q[name][:nq], 100, nprobe=p)
            row[f"recall10at100_{name}"] = recall_at(truth[name][:nq], found100)
        row["recall_queries"] = nq
        # Single-query latency (page cache warm after the batch): up to 30 queries or ~2 s.
        lat, t_all = [], time.perf_counter()
        for i in range(30):
            t0 = time.perf_counter()
            idx.search(index, q["near"][i:i + 1], 10, nprobe=p)
            lat.append(time.perf_counter() - t0)
            if time.perf_counter() - t_all > 2.0 and len(lat) >= 3:
                break
        row["single_ms_median"] = statistics.median(lat) * 1e3
        row["single_ms_p90"] = float(np.percentile(lat, 90)) * 1e3
        row["single_queries"] = len(lat)
        row["rss"] = status_kb()
        out["rows"].append(row)
        print(json.dumps({"nprobe": p, "recall_near": round(row["recall_near"], 3),
                          "recall10at100_near": round(row["recall10at100_near"], 3),
                          "recall_far": round(row["recall_far"], 3), "single_ms": round(row["single_ms_median"], 2),
                          "rss_anon_mb": round(row["rss"]["RssAnon"]), "rss_file_mb": round(row["rss"]["RssFile"])}),
              flush=True)
    out["rss_end"] = status_kb()
    Path(job["out"]).write_text(json.dumps(out))


def run_query_child(job: dict[str, Any], tag: str) -> dict[str, Any]:
    jf = WORK / "scale-runs" / f"query-{tag}-{os.getpid()}.json"
    jf.parent.mkdir(parents=True, exist_ok=True)
    job["out"] = str(jf.with_suffix(".out.json"))
    jf.write_text(json.dumps(job))
    subprocess.run([sys.executable, __file__, _QUERY_CHILD, str(jf)], check=True)
    return json.loads(Path(job["out"]).read_text())


def index_bench(n: int, rows: int, budgets: list[int], flat: bool, sample_n: int, add_threads: int, nq: int,
                scan_budget_gb: float, product_sample_shards: int) -> dict[str, Any]:
    from photosearch.store.ondisk import OnDiskIndex, OnDiskSpec, sample_from_shards

    files = vector_shards(n, rows)
    res: dict[str, Any] = {"n": n, "shard_rows": rows, "shards": len(files), "sample_n": sample_n,
                           "add_threads": add_threads, "vectors_bytes": dir_bytes(files[0].parent, "shard-*.parquet"),
                           "codecs": []}
    qfile = WORK / f"scale-queries-n{n}-r{rows}-q{nq}.npz"
    tfile = qfile.with_name(qfile.stem + "-truth.npz")
    if not tfile.is_file():
        log(f"queries ({nq} near + {nq} far) and exact top-10 over {n:,} vectors")
        t0 = time.perf_counter()
        qs = make_queries(files, nq)
        np.savez(qfile, **qs)
        np.savez(tfile, **{k: exact_topk(files, v) for k, v in qs.items()})
        res["exact_s"] = time.perf_counter() - t0
    # The product's sampler reads every shard in full (to_pylist): timed on the first
    # --product-sample-shards shards; the training sample itself is drawn the same way (the same
    # share of every shard, the same generator) through a columnar read.
    sub = files[:product_sample_shards]
    log(f"sample_from_shards on {len(sub)} of {len(files)} shards [reads each shard in full]")
    with Busy() as b:
        part = sample_from_shards(sub, sample_n * len(sub) // len(files))
    res["sample_product"] = {"shards": len(sub), "seconds": b.wall, "s_per_shard": b.wall / len(sub),
                             "extrapolated_all_s": b.wall / len(sub) * len(files), **b.as_dict()}
    log(f"  {b.wall:.1f} s ({b.wall / len(sub):.2f} s/shard -> {b.wall / len(sub) * len(files):.0f} s for all)")
    with Busy() as b:
        sample = sample_from_shards(files, sample_n)
    res["sample_product"]["same_draw"] = bool(len(part) <= len(sample) and np.allclose(sample[:len(part)], part))
    res["sample"] = {"seconds": b.wall, "n": len(sample), **b.as_dict()}
    log(f"  the same draw from all {len(files)} shards: {b.wall:.1f} s, {len(sample):,} vectors")
    specs = [OnDiskSpec.choose(DIM, n, bpv) for bpv in budgets]
    labels = [f"{bpv} B/vector" for bpv in budgets]
    if flat:
        specs.append(OnDiskSpec.choose(DIM, n, 4 * DIM))
        labels.append(f"{4 * DIM} B/vector (Flat)")
    for spec, label in zip(specs, labels):
        folder = WORK / f"scale-ivf-n{n}-r{rows}-{spec.factory.replace(',', '_')}-s{len(sample)}"
        shutil.rmtree(folder, ignore_errors=True)
        idx = OnDiskIndex(folder)
        row: dict[str, Any] = {"budget": label, "factory": spec.factory, "nlist": spec.nlist, "folder": str(folder),
                               "sample_n": len(sample)}
        log(f"{label}: {spec.factory}: train on {len(sample):,}")
        with Busy() as b:
            idx.train(spec, sample)
        row["train"] = {"seconds": b.wall, **b.as_dict()}
        log(f"  train {b.wall:.1f} s; add_shards ({len(files)} blocks, {add_threads} threads)")
        with Busy() as b:
            idx.add_shards(files, threads=add_threads)
        row["add"] = {"seconds": b.wall, **b.as_dict()}
        blocks = folder / "blocks"
        row["blocks_bytes"] = dir_bytes(blocks, "*.index")
        row["block_bytes_each"] = row["blocks_bytes"] / len(files)
        row["trained_bytes"] = (folder / "trained.index").stat().st_size
        log(f"  add {b.wall:.1f} s; blocks {row['blocks_bytes'] / 1e6:.0f} MB ({row['block_bytes_each'] / 1e6:.1f} MB "
            f"each, trained.index {row['trained_bytes'] / 1e6:.1f} MB); merge")
        with Busy() as b:
            total = idx.merge()
        row["merge"] = {"seconds": b.wall, "ntotal": total, **b.as_dict()}
        data = next(folder.glob("merged-*.ivfdata"))
        row["ivfdata_bytes"] = data.stat().st_size
        row["populated_bytes"] = (folder / "populated.index").stat().st_size
        row["bytes_per_vector_on_disk"] = (row["ivfdata_bytes"] + row["populated_bytes"]) / n
        log(f"  merge {b.wall:.1f} s: {total:,} vectors; ivfdata {row['ivfdata_bytes'] / 1e6:.0f} MB + populated.index "
            f"{row['populated_bytes'] / 1e6:.1f} MB = {row['bytes_per_vector_on_disk']:.1f} B/vector")
        shutil.rmtree(blocks)  # merged: the blocks are only needed to re-merge (we measured their size)
        job = {"folder": str(folder), "queries": str(qfile), "truth": str(tfile), "nlist": spec.nlist,
               "nprobes": nprobes(spec.nlist), "data_bytes": row["ivfdata_bytes"],
               "scan_budget": scan_budget_gb * 1e9, "omp": 2}
        # Cold first: evict our files, then a fresh process's first queries.
        cold_p = 64 if spec.nlist >= 64 else spec.nlist
        evicted = fadvise_evict(folder)
        log(f"  cold: after POSIX_FADV_DONTNEED {evicted.get('resident_mb', '?')} MB of "
            f"{evicted.get('size_mb', '?')} MB resident; fresh process, nprobe {cold_p}")
        cold = run_query_child({**job, "cold": True, "cold_nprobe": cold_p}, f"cold-{spec.codec}")
        cold["resident_before"] = evicted
        row["cold"] = cold
        log(f"  cold: load {cold['load_s'] * 1e3:.0f} ms, first queries {[round(x, 1) for x in cold['cold_ms']]} ms, "
            f"again {[round(x, 1) for x in cold['rerun_ms']]} ms")
        log("  warm: recall@10 and latency per nprobe (fresh process)")
        warm = run_query_child(job, f"warm-{spec.codec}")
        row["query"] = warm
        res["codecs"].append(row)
    return res


# == 3. the coordinator's ingest ==================================================================


def synthetic_out_shard(start_id: int, m: int, rng: np.random.Generator) -> Any:
    """An output shard in the columns and types of the format before issue 14 (read back by shardfile.read_output), synthetic values."""
    import pyarrow as pa

    ids = np.arange(start_id, start_id + m, dtype=np.int64)
    v = rng.standard_normal((m, DIM)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    s = [str(i) for i in ids]
    return pa.table({
        "id": pa.array(ids),
        "path": pa.array([f"/archive/{i // 1000:06d}/IMG_{i:09d}.jpg" for i in ids], pa.string()),
        "size": pa.array(2_500_000 + ids % 99991),
        "mtime_ns": pa.array(1_700_000_000_000_000_000 + ids),
        "content_hash": pa.array([f"{hash(x) & ((1 << 64) - 1):016x}" * 4 for x in s], pa.string()),
        "width": pa.array(np.full(m, 4000)), "height": pa.array(np.full(m, 3000)),
        "format": pa.array(["JPEG"] * m, pa.string()),
        "camera_make": pa.array(["BenchCam"] * m, pa.string()), "camera_model": pa.array(["BC-12 Mark II"] * m, pa.string()),
        "lens": pa.nulls(m, pa.string()), "gps_lat": pa.nulls(m, pa.float64()), "gps_lon": pa.nulls(m, pa.float64()),
        "orientation": pa.array(np.ones(m, np.int64)), "rating": pa.nulls(m, pa.int64()),
        "title": pa.nulls(m, pa.string()), "description": pa.nulls(m, pa.string()),
        "content_width": pa.array(np.full(m, 4000)), "content_height": pa.array(np.full(m, 3000)),
        "skip": pa.nulls(m, pa.string()),
        "taken_at": pa.array((1_600_000_000_000_000 + ids * 1_000_000).astype("datetime64[us]"), pa.timestamp("us")),
        "keywords": pa.array([[] for _ in range(m)], pa.list_(pa.string())),
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(v.reshape(-1)), DIM),
        "phash": pa.array(rng.integers(0, 2**63, (m, 8), dtype=np.uint64).tolist(), pa.list_(pa.uint64())),
        "dhash": pa.array(rng.integers(0, 2**63, m, dtype=np.uint64), pa.uint64()),
    })


def _timed_methods(cls: Any, names: list[str], acc: dict[str, float]) -> dict[str, Any]:
    saved = {}
    for name in names:
        orig = getattr(cls, name)
        saved[name] = orig

        def wrapper(*a: Any, _o: Any = orig, _n: str = name, **k: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return _o(*a, **k)
            finally:
                acc[_n] = acc.get(_n, 0.0) + time.perf_counter() - t0
        setattr(cls, name, wrapper)
    return saved


def ingest_bench(rows: int, prefill: list[int], shard_rows: int, prefill_rows: int,
                 prefill_embeddings: bool = False) -> dict[str, Any]:
    from photosearch.store.catalog import Catalog
    from photosearch.config import LibraryPaths
    from photosearch.ingest.runners import commit_shards
    from photosearch.ingest.shardfile import shard_dirs, write_table

    res: dict[str, Any] = {"shard_rows": shard_rows, "prefill_embeddings": prefill_embeddings, "runs": []}
    for pre in prefill:
        n_rows = rows if pre == 0 else prefill_rows
        lib = WORK / "scale-runs" / f"ingest-{pre}-{os.getpid()}"
        shutil.rmtree(lib, ignore_errors=True)
        lib.mkdir(parents=True)
        paths = LibraryPaths(lib)
        _, out_dir = shard_dirs(paths)
        run: dict[str, Any] = {"prefill": pre, "rows": n_rows}
        with Catalog.open(paths.catalog) as cat:
            if pre:
                t0 = time.perf_counter()
                cat.con.execute(
                    """INSERT INTO photos (id, path, content_hash, size, mtime_ns, width, height, format, taken_at,
                                           camera_make, camera_model, keywords, indexed_at)
                       SELECT i, '/old/' || (i // 1000) || '/IMG_' || lpad(i::VARCHAR, 9, '0') || '.jpg', md5(i::VARCHAR),
                              2500000 + i % 99991, 1700000000000000000 + i, 4000, 3000, 'JPEG',
                              TIMESTAMP '2010-01-01' + INTERVAL (i % 5000) DAY, 'BenchCam', 'BC-12', [], now()
                       FROM range(1, ? + 1) t(i)""", [pre])
                if prefill_embeddings:
                    cat.con.execute("INSERT INTO embeddings SELECT i, ?, repeat('\\x00'::BLOB, 2048) FROM range(1, ? + 1) t(i)",
                                    [ARCH, pre])
                cat.con.execute("CHECKPOINT")
                run["prefill_s"] = time.perf_counter() - t0
                # plan()'s diff: a walk listing of every cataloged file plus the new ones, anti-joined
                # against the catalog in DuckDB (Catalog.diff_listing).
                new_paths = [f"/new/{i // 1000}/IMG_{i:09d}.jpg" for i in range(n_rows)]
                got = cat.con.execute(
                    "SELECT path, size, mtime_ns FROM photos UNION ALL "
                    "SELECT unnest(?::VARCHAR[]), 2500000, 1800000000000000000", [new_paths]).fetchnumpy()
                listing = {"path": np.asarray(got["path"], dtype=object),
                           "size": np.asarray(got["size"], np.int64), "mtime_ns": np.asarray(got["mtime_ns"], np.int64)}
                with Busy() as b:
                    todo, gone, _, _ = cat.diff_listing(listing, ["/old", "/new"],
                                                        [("embeddings", ARCH), ("image_hashes", None)])
                run["plan_listing"] = {"seconds": b.wall, "listed": len(listing["path"]), "todo": len(todo),
                                       "gone": len(gone)}
                del listing, todo
                log(f"prefilled {pre:,} photos in {run['prefill_s']:.0f} s; diff_listing() over "
                    f"{run['plan_listing']['listed']:,} files {b.wall:.1f} s")
            base = pre + 1
            cat.con.execute(f"SELECT setval('photo_id_seq', {base + n_rows})")
            rng = np.random.default_rng(pre)
            t0 = time.perf_counter()
            names = []
            for s, start in enumerate(range(0, n_rows, shard_rows)):
                m = min(shard_rows, n_rows - start)
                table = synthetic_out_shard(base + start, m, rng)
                name = f"shard-{s:06d}"
                write_table(table, out_dir / f"{name}.parquet")
                with cat.transaction():
                    cat.add_shard(name, m, table.column("path").to_pylist())
                names.append(name)
            run["write_shards_s"] = time.perf_counter() - t0
        run["out_bytes_per_row"] = dir_bytes(out_dir, "shard-*.parquet") / n_rows
        size0 = paths.catalog.stat().st_size
        acc: dict[str, float] = {}
        saved = _timed_methods(Catalog, ["add_embeddings", "add_hashes", "delete_photos", "insert_photos",
                                         "rows_at_paths", "rows_with_hashes"], acc)
        log(f"ingest {len(names)} shards x {shard_rows} rows into a catalog of {pre:,} photos")
        try:
            with Busy() as b:
                # The commit needs the model's name and sizes only: the shards are synthetic.
                from types import SimpleNamespace

                done = commit_shards(paths, SimpleNamespace(name=ARCH, image_size=256, embed_dim=512))
                shards_done, photos_done = done.ingested, done.photos
        finally:
            for k, v in saved.items():
                setattr(Catalog, k, v)
        run.update(seconds=b.wall, shards=shards_done, photos=photos_done, rows_per_s=photos_done / b.wall,
                   split_s=acc, **b.as_dict())
        run["catalog_bytes_added_per_row"] = (paths.catalog.stat().st_size - size0) / max(1, photos_done)
        with Catalog.open(paths.catalog, read_only=True) as cat:
            run["catalog_photos"] = cat.count_photos()
        log(f"  {photos_done:,} rows in {b.wall:.1f} s = {run['rows_per_s']:,.0f} rows/s "
            f"({1e6 / run['rows_per_s'] / 60:.1f} min per 1M); split {', '.join(f'{k} {v:.1f} s' for k, v in acc.items())}")
        res["runs"].append(run)
        shutil.rmtree(lib, ignore_errors=True)
    return res


# == 4. the simulation =============================================================================


def simulate(res: dict[str, Any], target: int = 100_000_000) -> list[str]:
    """Extrapolations for SCALE.md. Measured inputs are named; everything else is arithmetic."""
    L: list[str] = []
    w = L.append
    emb = res.get("embed")
    per_core = 0.0
    if emb:
        best = {}
        for r in emb["runs"]:
            key = f"{r['engine']}:{r['k']}"
            best.setdefault(key, []).append(r["steady_photos_per_s"] or r["photos_per_s"])
        rates = {k: statistics.median(v) for k, v in best.items()}
        top_key = max(rates, key=rates.get)
        per_machine = rates[top_key]
        per_core = per_machine / 2
        w(f"measured per 2-core machine (steady, best config {top_key}): {per_machine:.2f} photos/s "
          f"= {per_core:.2f} photos/s per core")
        mb = emb.get("mean_mb", 2.5)
        w("")
        w("| machines | 2-core kind: photos/s | wall for 100M | 16-core kind (x8, extrapolated): photos/s | wall for 100M "
          "| read from storage, 16-core kind |")
        w("|---|---|---|---|---|---|")
        for n_m in (1, 10, 50, 100, 500):
            a = per_machine * n_m
            c = per_core * 16 * n_m
            w(f"| {n_m} | {a:,.0f} | {_dur(target / a)} | {c:,.0f} | {_dur(target / c)} | {c * mb * 8 / 1e3:,.1f} Gbit/s |")
    ing = res.get("ingest")
    model = ingest_model(ing) if ing else None
    if model:
        h, a, b, srows = model["hash_s_per_row"], model["base_s_per_shard"], model["scan_s_per_shard_per_row"], \
            model["shard_rows"]
        w("")
        w(f"ingest model (fit on the runs above): per shard of {srows} rows {srows * h:.2f} s add_hashes + {a:.3f} s "
          f"+ {b * 1e6:.3f} s per 1M photos already in the catalog")
        variants = {"as is": (h, a, b), "hashes inserted from Arrow (50x, repro)": (h / 50, a, b),
                    "and no per-shard scan of photos": (h / 50, a, 0.0)}
        totals = {}
        for name, (hh, aa, bb) in variants.items():
            for rows_per_shard in (srows, 10 * srows):
                totals[(name, rows_per_shard)] = ingest_total(target, rows_per_shard, hh, aa, bb)
        w("| ingest of 100M on one coordinator | shards of 1,000 | shards of 10,000 |")
        w("|---|---|---|")
        for name in variants:
            w(f"| {name} | {_dur(totals[(name, srows)])} | {_dur(totals[(name, 10 * srows)])} |")
        if emb:
            w("")
            w("| 16-core machines (x8, extrapolated) | embedding | ingest as is | embed then ingest (shards.run) "
              "| overlapped, ingest fixed (Arrow + no scan, shards of 10,000) |")
            w("|---|---|---|---|---|")
            fixed = totals[("and no per-shard scan of photos", 10 * srows)]
            asis = totals[("as is", srows)]
            for n_m in (1, 10, 50, 100, 500):
                e = target / (per_core * 16 * n_m)
                w(f"| {n_m} | {_dur(e)} | {_dur(asis)} | {_dur(e + asis)} | {_dur(max(e, fixed))} |")
    idx = res.get("index")
    if idx:
        w("")
        n = idx["n"]
        w(f"| codec (measured at {n:,}) | on disk per 1M | at 100M (x{target // n}) | RAM after load | nlist at 100M "
          "| quantizer at 100M |")
        w("|---|---|---|---|---|---|")
        from photosearch.store.ondisk import OnDiskSpec

        for c in idx["codecs"]:
            per1m = (c["ivfdata_bytes"] + c["populated_bytes"]) / (n / 1e6)
            s100 = OnDiskSpec.choose(DIM, target, int(c["budget"].split()[0]))
            quant = s100.nlist * DIM * 4
            w(f"| {c['factory']} (sample {c.get('sample_n', idx['sample']['n']):,}) | {per1m / 1e9:.2f} GB | {c['ivfdata_bytes'] * target / n / 1e9:.0f} GB + "
              f"{quant / 1e6:.0f} MB quantizer | {c['query']['rss_after_load']['VmRSS']:.0f} MB | {s100.nlist} "
              f"| {quant / 1e6:.0f} MB |")
    return L


def ingest_model(ing: dict[str, Any]) -> dict[str, float] | None:
    """Per-row add_hashes cost and a per-shard cost growing with the catalog (least squares)."""
    runs = [r for r in ing["runs"] if r.get("shards")]
    if not runs:
        return None
    h = statistics.median(r["split_s"].get("add_hashes", 0.0) / r["photos"] for r in runs)
    xs = np.array([r["prefill"] for r in runs], float)
    ys = np.array([(r["seconds"] - r["split_s"].get("add_hashes", 0.0)) / r["shards"] for r in runs])
    if len(set(xs)) > 1:
        b, a = np.polyfit(xs, ys, 1)
    else:
        b, a = 0.0, float(ys.mean())
    return {"hash_s_per_row": h, "base_s_per_shard": float(a), "scan_s_per_shard_per_row": max(0.0, float(b)),
            "shard_rows": ing["shard_rows"]}


def ingest_total(target: int, shard_rows: int, h: float, a: float, b: float) -> float:
    """Seconds to ingest target rows in shards of shard_rows into a catalog growing from 0."""
    k = target // shard_rows
    return k * (shard_rows * h + a) + b * shard_rows * k * (k - 1) / 2


def _dur(s: float) -> str:
    if s < 3600:
        return f"{s / 60:.0f} min"
    if s < 86400 * 2:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} days"


# == report ========================================================================================


def report(res: dict[str, Any]) -> list[str]:
    L: list[str] = []
    w = L.append
    meta = res["meta"]
    w("=" * 78)
    w(f"bench_scale  {meta['started']}  product {meta['commit']}  {meta['machine']}")
    w(f"loadavg at start {meta['load_start']}, at end {meta.get('load_end')}")
    emb = res.get("embed")
    if emb:
        w("-" * 78)
        w(f"(1) shard embedder, {emb['n']} photos of {emb['mean_mb']:.2f} MB (12 MP JPEG), shards of {emb['shard_size']}; "
          f"model load {emb['model_load_s']:.1f} s; ray.init {emb['ray'].get('init_s', 0):.1f} s")
        w("| engine | workers | round | wall s | photos/s (wall) | photos/s (steady) | first shard s | machine busy cores "
          "| others before | CPU s/photo (machine) |")
        w("|---|---|---|---|---|---|---|---|---|---|")
        for r in emb["runs"]:
            w(f"| {r['engine']} | {'threads' if r['engine'] == 'local' else 'actors'} {r['k']} | {r['round']} "
              f"| {r['wall_s']:.1f} | {r['photos_per_s']:.2f} | {(r['steady_photos_per_s'] or 0):.2f} "
              f"| {r['first_shard_s']:.1f} | {r['machine_busy_cores']:.2f} | {r['others_before_cores']:.2f} "
              f"| {r['cpu_s_per_photo_machine']:.2f} |")
        w(f"output shard bytes per photo: {emb.get('out_bytes_per_photo', 0):.0f}")
    idx = res.get("index")
    if idx:
        w("-" * 78)
        w(f"(2) on-disk IVF, {idx['n']:,} clustered 512-d vectors in {idx['shards']} shards of {idx['shard_rows']:,} "
          f"({idx['vectors_bytes'] / 1e9:.2f} GB Parquet); training sample {idx['sample']['n']:,}; add_shards threads "
          f"{idx['add_threads']}")
        sp = idx["sample_product"]
        w(f"product sample_from_shards: {sp['s_per_shard']:.2f} s per shard of {idx['shard_rows']:,} (timed on "
          f"{sp['shards']}) -> {sp['extrapolated_all_s']:.0f} s for all {idx['shards']}; columnar read of the same draw "
          f"{idx['sample']['seconds']:.1f} s (same vectors: {sp['same_draw']})")
        w("| codec | nlist | train sample | train s | add s | merge s | blocks MB (each) | ivfdata MB | populated.index MB "
          "| B/vector on disk | load ms | RSS after load MB (anon/file) |")
        w("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for c in idx["codecs"]:
            q = c["query"]
            ra = q["rss_after_load"]
            w(f"| {c['factory']} | {c['nlist']} | {c.get('sample_n', idx['sample']['n']):,} | {c['train']['seconds']:.1f} "
              f"| {c['add']['seconds']:.1f} "
              f"| {c['merge']['seconds']:.1f} | {c['blocks_bytes'] / 1e6:.0f} ({c['block_bytes_each'] / 1e6:.1f}) "
              f"| {c['ivfdata_bytes'] / 1e6:.0f} | {c['populated_bytes'] / 1e6:.1f} | {c['bytes_per_vector_on_disk']:.1f} "
              f"| {q['load_s'] * 1e3:.0f} | {ra['VmRSS']:.0f} ({ra['RssAnon']:.0f}/{ra['RssFile']:.0f}) |")
        for c in idx["codecs"]:
            w("")
            cold = c["cold"]
            w(f"{c['factory']} (trained on {c.get('sample_n', idx['sample']['n']):,}): recall@10 vs exact, single-query "
              "latency (warm page cache), RSS of the query process")
            w(f"  cold (fresh process after FADV_DONTNEED; {cold['resident_before'].get('resident_mb', '?')} MB resident "
              f"before): load {cold['load_s'] * 1e3:.0f} ms, first 5 queries at nprobe {cold['cold_nprobe']}: "
              f"{', '.join(f'{x:.1f}' for x in cold['cold_ms'])} ms; same again {', '.join(f'{x:.1f}' for x in cold['rerun_ms'])} ms")
            w("| nprobe | recall@10 near | recall@10 far | 10@100 near | 10@100 far | queries "
              "| single query ms (median, p90) | batch ms/query | RSS MB (anon/file) |")
            w("|---|---|---|---|---|---|---|---|---|")
            for r in c["query"]["rows"]:
                r100 = " | ".join(f"{r[k]:.3f}" if k in r else "-" for k in ("recall10at100_near", "recall10at100_far"))
                w(f"| {r['nprobe']} | {r['recall_near']:.3f} | {r['recall_far']:.3f} | {r100} | {r['recall_queries']} "
                  f"| {r['single_ms_median']:.2f}, {r['single_ms_p90']:.2f} | {r['batch_ms_per_query_near']:.2f} "
                  f"| {r['rss']['VmRSS']:.0f} ({r['rss']['RssAnon']:.0f}/{r['rss']['RssFile']:.0f}) |")
    ing = res.get("ingest")
    if ing:
        w("-" * 78)
        w(f"(3) coordinator ingest (shards.ingest), synthetic output shards of {ing['shard_rows']} rows")
        w("| catalog before | rows | seconds | rows/s | min per 1M | insert_photos / add_embeddings / add_hashes / "
          "delete_photos s | catalog bytes/row | out shard bytes/row | machine busy |")
        w("|---|---|---|---|---|---|---|---|---|")
        for r in ing["runs"]:
            s = r["split_s"]
            w(f"| {r['prefill']:,} | {r['photos']:,} | {r['seconds']:.1f} | {r['rows_per_s']:,.0f} "
              f"| {1e6 / r['rows_per_s'] / 60:.1f} | {s.get('insert_photos', s.get('ingest_shard', 0)):.1f} / {s.get('add_embeddings', 0):.1f} / "
              f"{s.get('add_hashes', 0):.1f} / {s.get('delete_photos', 0):.1f} | {r['catalog_bytes_added_per_row']:.0f} "
              f"| {r['out_bytes_per_row']:.0f} | {r['machine_busy_cores']} |")
            if "known_files" in r:  # figures saved before plan() diffed in DuckDB
                k = r["known_files"]
                mem = (f"{k['held_mb']:.0f} MB held, {k['peak_mb']:.0f} MB peak (traced)" if "held_mb" in k
                       else "memory not measured")
                w(f"  known_files() at {k['rows']:,} photos: {k['seconds']:.1f} s, {mem}")
            if "plan_listing" in r:
                k = r["plan_listing"]
                w(f"  diff_listing() of {k['listed']:,} walked files against {r['prefill']:,} cataloged: "
                  f"{k['seconds']:.1f} s ({k['todo']:,} to embed)")
    w("-" * 78)
    w("simulation (arithmetic on the figures above; see SCALE.md)")
    L.extend(simulate(res))
    w("=" * 78)
    return L


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["all", "embed", "index", "ingest", "simulate", "requery", _QUERY_CHILD])
    ap.add_argument("file", nargs="*", help="simulate: --json-out files (merged); requery: one --json-out file")
    ap.add_argument("--n", type=int, default=None, help="embed: photos (200); index: vectors (1,000,000)")
    ap.add_argument("--shard-size", type=int, default=25, help="embed: photos per manifest shard")
    ap.add_argument("--repeat", type=int, default=1, help="embed: rounds, order alternating")
    ap.add_argument("--configs", nargs="+", default=["local:1", "local:2", "ray:1", "ray:2"],
                    help="embed: local:THREADS and ray:ACTORS")
    ap.add_argument("--vector-shard-rows", type=int, default=10_000, help="index: vectors per output shard")
    ap.add_argument("--budgets", type=int, nargs="*", default=[64, 128], help="index: bytes per vector")
    ap.add_argument("--flat", action=argparse.BooleanOptionalAction, default=True, help="index: also Flat")
    ap.add_argument("--sample", type=int, default=20_000, help="index: training sample (sample_from_shards)")
    ap.add_argument("--add-threads", type=int, default=2)
    ap.add_argument("--product-sample-shards", type=int, default=10,
                    help="index: time the product's sample_from_shards on this many shards")
    ap.add_argument("--queries", type=int, default=100, help="index: near and far queries each")
    ap.add_argument("--scan-budget-gb", type=float, default=20.0,
                    help="index: fewer recall queries where each scans a lot (Flat at high nprobe)")
    ap.add_argument("--rows", type=int, default=20_000, help="ingest: rows into an empty catalog")
    ap.add_argument("--prefill", type=int, nargs="+", default=[0, 1_000_000, 10_000_000],
                    help="ingest: catalog sizes before")
    ap.add_argument("--prefill-rows", type=int, default=10_000, help="ingest: rows into each pre-filled catalog")
    ap.add_argument("--ingest-shard-rows", type=int, default=1000)
    ap.add_argument("--prefill-embeddings", action=argparse.BooleanOptionalAction, default=False,
                    help="ingest: also fill the embeddings table of pre-filled catalogs (2 KB/row of disk: 20 GB at 10M)")
    ap.add_argument("--json-out", type=Path, default=None)
    args = ap.parse_args()
    if args.what == _QUERY_CHILD:
        query_child(args.file[0])
        return
    if args.what == "requery":
        # Re-run the warm query process of every codec in a saved --json-out file (index folders kept).
        doc = json.loads(Path(args.file[0]).read_text())
        idx = doc["index"]
        n, rows = idx["n"], idx["shard_rows"]
        qfile = WORK / f"scale-queries-n{n}-r{rows}-q{args.queries}.npz"
        for c in idx["codecs"]:
            if all("recall10at100_near" in r for r in c["query"]["rows"]):
                continue
            folder = c.get("folder") or WORK / f"scale-ivf-n{n}-r{rows}-{c['factory'].replace(',', '_')}"
            log(f"requery {c['factory']}")
            c["query"] = run_query_child({"folder": str(folder), "queries": str(qfile),
                                          "truth": str(qfile.with_name(qfile.stem + "-truth.npz")),
                                          "nlist": c["nlist"], "nprobes": nprobes(c["nlist"]),
                                          "data_bytes": c["ivfdata_bytes"], "scan_budget": args.scan_budget_gb * 1e9,
                                          "omp": 2}, f"re-{c['factory']}")
            c["query"]["requeried"] = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
            Path(args.file[0]).write_text(json.dumps(doc, indent=1, default=str))
        return
    if args.what == "simulate":
        res = {}
        for f in args.file:
            doc = json.loads(Path(f).read_text())
            metas = res.get("metas", []) + [doc.pop("meta")]
            if "index" in doc and "index" in res:   # another index run: its codecs join the first's table
                res["index"]["codecs"] += doc.pop("index")["codecs"]
            res.update(doc)
            res["metas"] = metas
        res["meta"] = {**res["metas"][0], "load_end": res["metas"][-1].get("load_end"),
                       "started": " / ".join(m["started"] for m in res["metas"])}
        print("\n".join(report(res)))
        return
    WORK.mkdir(parents=True, exist_ok=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=HERE.parent).stdout.strip()
    res: dict[str, Any] = {"meta": {
        "started": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "commit": commit,
        "cmd": " ".join([Path(sys.executable).name, *sys.argv]), "load_start": loadavg(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
                   f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB RAM"}}
    t_all = time.perf_counter()

    def save() -> None:
        if args.json_out:
            args.json_out.write_text(json.dumps(res, indent=1, default=str))

    if args.what in ("all", "embed"):
        res["embed"] = embed_bench(args.n or 200, args.shard_size, args.repeat, args.configs)
        save()
    if args.what in ("all", "ingest"):
        res["ingest"] = ingest_bench(args.rows, args.prefill, args.ingest_shard_rows, args.prefill_rows,
                                     args.prefill_embeddings)
        save()
    if args.what in ("all", "index"):
        res["index"] = index_bench(args.n if args.what == "index" and args.n else 1_000_000, args.vector_shard_rows,
                                   args.budgets, args.flat, args.sample, args.add_threads, args.queries,
                                   args.scan_budget_gb, args.product_sample_shards)
        save()
    res["meta"]["load_end"] = loadavg()
    res["meta"]["seconds"] = time.perf_counter() - t_all
    save()
    print("\n".join(report(res)), flush=True)


if __name__ == "__main__":
    main()
