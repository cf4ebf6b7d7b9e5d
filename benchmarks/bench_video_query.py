"""Does a library's video frames slow its searches? (issue 18)

Cold CLI queries (`photosearch TEXT --json`, a fresh process each) on the same synthetic
100k-photo library (bench_query.py's: clustered 512-d vectors, a random-weights ViT-B-32-256
text tower) without and with 1M video frame vectors (10,000 videos of 100 frames each, frame
vectors near their video's), alternating, in one run.

    python benchmarks/bench_video_query.py --photos 100000 --videos 10000 --frames 100 --runs 9
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_query import ARCH, DIM, QUERIES, WORK, build_library, cold_query, clustered  # noqa: E402


def with_frames(base: Path, n_photos: int, videos: int, frames: int) -> Path:
    """A copy of ``base`` whose last ``videos`` photos are videos with ``frames`` frames each."""
    import pyarrow as pa

    from photosearch.config import DEFAULT_EXACT_MAX
    from photosearch.ingest.finish import save_index_if_stale
    from photosearch.store.catalog import Catalog

    lib = WORK / f"query-lib-{n_photos}-frames-{videos}x{frames}"
    if (lib / ".complete").exists():
        return lib
    shutil.rmtree(lib, ignore_errors=True)
    shutil.copytree(base, lib)
    t0 = time.perf_counter()
    with Catalog.open(lib / "catalog.duckdb") as cat:
        first = n_photos - videos + 1
        cat.con.execute("UPDATE photos SET media = 'video', duration = ? WHERE id >= ?", [frames * 2.0, first])
        vids = np.arange(first, n_photos + 1)
        _, base_vecs = cat.vectors(ARCH, vids)
        rng = np.random.default_rng(7)
        for chunk in range(0, videos, 1000):
            vv = vids[chunk:chunk + 1000]
            bv = base_vecs[chunk:chunk + 1000]
            n = len(vv) * frames
            fid = np.arange(chunk * frames + 1, chunk * frames + n + 1)
            x = np.repeat(bv, frames, axis=0) + rng.standard_normal((n, DIM)).astype(np.float32) * (0.8 / np.sqrt(DIM))
            x /= np.linalg.norm(x, axis=1, keepdims=True)
            t = pa.table({"id": fid, "photo_id": np.repeat(vv, frames), "t": np.tile(np.arange(frames) * 2.0, len(vv))})
            cat.con.register("_f", t)
            cat.con.execute("INSERT INTO video_frames (id, photo_id, t) SELECT * FROM _f")
            cat.con.unregister("_f")
            e = pa.table({"frame_id": fid, "model": [ARCH] * n,
                          "vector": pa.array([r.tobytes() for r in x.astype("<f4")], pa.binary())})
            cat.con.register("_e", e)
            cat.con.execute("INSERT INTO frame_embeddings SELECT * FROM _e")
            cat.con.unregister("_e")
        cat.mark_changed()
        save_index_if_stale(cat, lib / "vectors", ARCH, DIM, DEFAULT_EXACT_MAX)
        save_index_if_stale(cat, lib / "vectors", cat.frame_vectors(ARCH), DIM, DEFAULT_EXACT_MAX)
    (lib / ".complete").write_text(json.dumps({"build_s": time.perf_counter() - t0}))
    return lib


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=int, default=100_000)
    ap.add_argument("--videos", type=int, default=10_000)
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--runs", type=int, default=9)
    args = ap.parse_args()
    base = build_library(args.photos)
    framed = with_frames(base, args.photos, args.videos, args.frames)
    times: dict[str, list[float]] = {"photos only": [], "with frames": []}
    rss: dict[str, list[float]] = {"photos only": [], "with frames": []}
    for i in range(args.runs):
        for label, lib in (("photos only", base), ("with frames", framed)):
            wall, peak, n = cold_query(lib, QUERIES[i % len(QUERIES)])
            assert n > 0
            times[label].append(wall)
            rss[label].append(peak)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(json.dumps({"photos": args.photos, "frame_vectors": args.videos * args.frames,
                      "cold_query_median_s": med, "ratio": med["with frames"] / med["photos only"],
                      "peak_rss_mb_median": {k: statistics.median(v) for k, v in rss.items()},
                      "runs": times}, indent=1))


if __name__ == "__main__":
    main()
