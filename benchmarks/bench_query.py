"""Query benchmark: cold CLI queries, warm in-process queries and ANN recall at 10k/100k/1M photos.

Libraries are synthetic (catalog rows + clustered 512-d vectors, like CLIP image
embeddings) with a random-weights ViT-B-32-256 text tower installed through the
real `models import` path, so the query does exactly what a user's query does.

    python benchmarks/bench_query.py                       # 10k, 100k, 1M
    python benchmarks/bench_query.py --sizes 10000 100000  # fewer
    python benchmarks/bench_query.py --cold-runs 7

Built libraries are cached under benchmarks/work/ (about 2.2 GB per 1M photos).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
WORK = HERE / "work"
ARCH = "ViT-B-32-256"
DIM = 512
QUERIES = ["sunset at the beach", "a dog playing in the snow", "birthday cake with candles", "city skyline at night",
           "children at the playground", "mountain lake reflection", "a plate of pasta", "old car in a barn"]


def model_library() -> Path:
    """A library holding only a random-weights ViT-B-32-256, imported through the product."""
    lib = WORK / "query-model-lib"
    if (lib / "models" / ARCH / "model.json").is_file():
        return lib
    import open_clip
    import safetensors.torch
    import torch

    from photosearch.api import Library

    torch.manual_seed(0)
    model = open_clip.create_model(ARCH)
    WORK.mkdir(parents=True, exist_ok=True)
    ckpt = WORK / "vit-b-32-256-random.safetensors"
    safetensors.torch.save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(ckpt))
    Library(lib).import_model(ARCH, ckpt)
    return lib


def build_library(n: int) -> Path:
    from photosearch.store.catalog import Catalog
    from photosearch.config import DEFAULT_EXACT_MAX
    from photosearch.store.vectors import build_from_catalog, save_for_catalog

    lib = WORK / f"query-lib-{n}"
    done = lib / ".complete"
    if done.exists():
        return lib
    shutil.rmtree(lib, ignore_errors=True)
    shutil.copytree(model_library() / "models", lib / "models")
    started = time.perf_counter()
    with Catalog.open(lib / "catalog.duckdb") as cat:
        cat.con.execute(
            """
            INSERT INTO photos (id, path, content_hash, size, mtime_ns, width, height, format, taken_at,
                                camera_make, camera_model, keywords, indexed_at)
            SELECT i, '/photos/' || (i // 1000) || '/IMG_' || lpad(i::VARCHAR, 8, '0') || '.jpg', md5(i::VARCHAR),
                   2500000 + i % 99991, 1700000000000000000 + i, 4000, 3000, 'JPEG',
                   TIMESTAMP '2010-01-01' + INTERVAL (i % 5000) DAY,
                   ['Canon', 'NIKON CORPORATION', 'Apple', 'SONY'][i % 4 + 1],
                   ['Canon EOS R5', 'NIKON D850', 'iPhone 13 Pro', 'ILCE-7M3'][i % 4 + 1], [], now()
            FROM range(1, ? + 1) t(i)
            """,
            [n],
        )
        step = 100_000
        for start in range(0, n, step):
            m = min(step, n - start)
            cat.add_embeddings(ARCH, np.arange(start + 1, start + m + 1), clustered(n, start, m))
        cat.mark_changed()
        built = time.perf_counter()
        index = build_from_catalog(cat, ARCH, exact_max=DEFAULT_EXACT_MAX, dim=DIM)
        save_for_catalog(index, cat, lib / "vectors", ARCH)
        indexed = time.perf_counter()
    done.write_text(json.dumps({"catalog_s": built - started, "index_s": indexed - built, "kind": index.kind,
                                "nprobe": index.nprobe}))
    return lib


_CENTRES: dict[int, np.ndarray] = {}


def clustered(n: int, start: int, m: int) -> np.ndarray:
    """Rows start..start+m of an n-vector library: unit vectors around n/100 shared cluster centres,
    in-cluster cosine ~0.6-0.7 like CLIP photo embeddings of similar scenes."""
    k = max(10, n // 100)
    if n not in _CENTRES:
        rng = np.random.default_rng(12345)
        c = rng.standard_normal((k, DIM)).astype(np.float32)
        _CENTRES[n] = c / np.linalg.norm(c, axis=1, keepdims=True)
    rng = np.random.default_rng(start + 1)
    x = _CENTRES[n][rng.integers(0, k, m)]
    x = x + rng.standard_normal((m, DIM)).astype(np.float32) * (1.3 / np.sqrt(DIM))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _hwm_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def cold_query(lib: Path, text: str) -> tuple[float, float, int]:
    """Wall seconds and peak RSS (MB) of a new process running `photosearch TEXT --json`.

    Peak RSS is the child's own VmHWM, polled until it exits: ru_maxrss would include this
    (large) benchmark process, whose high-water mark Linux carries across fork and exec.
    """
    cmd = [sys.executable, "-m", "photosearch", text, "--json", "--library", str(lib)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    peak = 0.0
    while proc.poll() is None:
        hwm = _hwm_mb(proc.pid)
        if hwm:
            peak = max(peak, hwm)
        time.sleep(0.005)
    wall = time.perf_counter() - t0
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"query failed: {err.decode()}")
    return wall, peak, len(json.loads(out)["results"])


def warm_queries(lib: Path, n_queries: int = 40) -> dict[str, float]:
    from photosearch.config import LibraryPaths
    from photosearch.query.search import Searcher

    searcher = Searcher(LibraryPaths(lib))
    searcher.search_text("warm up")
    total, search_only = [], []
    model = searcher._load_model()
    from photosearch.store.catalog import Catalog
    from photosearch.store.vectors import load_for_search

    with Catalog.open(lib / "catalog.duckdb", read_only=True) as cat:
        index, _ = load_for_search(cat, lib / "vectors", ARCH, exact_max=searcher.exact_max, dim=DIM)
    for i in range(n_queries):
        text = f"{QUERIES[i % len(QUERIES)]} {i}"
        t0 = time.perf_counter()
        searcher.search_text(text, limit=20)
        total.append(time.perf_counter() - t0)
        q = model.encode_text([text])
        t0 = time.perf_counter()
        index.search(q, 20)
        search_only.append(time.perf_counter() - t0)
    return {"warm_total_ms": statistics.median(total) * 1000, "warm_ann_ms": statistics.median(search_only) * 1000}


def recall(lib: Path, n: int, n_queries: int = 200) -> dict[str, float]:
    """recall@10 of the saved index against exact search, for near and far queries."""
    from photosearch.store.catalog import Catalog
    from photosearch.store.vectors import exact_topk_streaming, load_for_search, recall_at_k

    with Catalog.open(lib / "catalog.duckdb", read_only=True) as cat:
        index, _ = load_for_search(cat, lib / "vectors", ARCH, exact_max=20_000, dim=DIM)
        rng = np.random.default_rng(7)
        base = cat.sample_vectors(ARCH, n_queries, seed=3)
        out = {}
        for name, sigma in (("near", 0.5), ("far", 1.5)):
            noise = rng.standard_normal(base.shape).astype(np.float32)
            q = base + noise / np.linalg.norm(noise, axis=1, keepdims=True) * sigma
            q /= np.linalg.norm(q, axis=1, keepdims=True)
            truth = exact_topk_streaming(q, cat.iter_vectors(ARCH), 10)
            _, found = index.search(q, 10)
            out[f"recall@10_{name}"] = recall_at_k(truth, found)
    out["kind"] = index.kind
    out["nprobe"] = index.nprobe or 0
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--cold-runs", type=int, default=5)
    ap.add_argument("--build-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    os.environ["HF_HUB_OFFLINE"] = "1"
    if args.build_only:
        for n in args.sizes:
            build_library(n)
        return
    rows = []
    for n in args.sizes:
        lib = WORK / f"query-lib-{n}"
        if not (lib / ".complete").exists():
            # Build in a child so this process stays small while it measures.
            subprocess.run([sys.executable, __file__, "--build-only", "--sizes", str(n)], check=True)
        build = json.loads((lib / ".complete").read_text())
        cold_query(lib, "warm the page cache")  # files in the OS cache: "cold" = new process, not cold disk
        runs = [cold_query(lib, QUERIES[i % len(QUERIES)]) for i in range(args.cold_runs)]
        row = {
            "photos": n,
            "cold_wall_s": statistics.median(r[0] for r in runs),
            "cold_peak_mb": max(r[1] for r in runs),
            "results": runs[0][2],
            "build_index_s": build["index_s"],
        }
        row.update(warm_queries(lib))
        row.update(recall(lib, n))
        rows.append(row)
        print(json.dumps(row), flush=True)
    print()
    print("| photos | index | nprobe | cold query (s) | cold peak RSS (MB) | warm query total (ms) | warm ANN only (ms) "
          "| recall@10 near | recall@10 far | index build (s) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['photos']:,} | {r['kind']} | {r['nprobe'] or '-'} | {r['cold_wall_s']:.2f} | {r['cold_peak_mb']:.0f} "
              f"| {r['warm_total_ms']:.1f} | {r['warm_ann_ms']:.2f} | {r['recall@10_near']:.3f} "
              f"| {r['recall@10_far']:.3f} | {r['build_index_s']:.1f} |")


if __name__ == "__main__":
    main()
