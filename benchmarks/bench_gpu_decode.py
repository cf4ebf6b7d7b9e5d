#!/usr/bin/env python3
"""JPEG decoding on the GPU (nvImageCodec, nvJPEG) against the product's CPU decode, on a lent GPU
machine (issue 22: what would lift the CPU-decode limit that bench_gpu.py found). A measurement
only: the product does not decode on the GPU.

    python3 benchmarks/bench_gpu_decode.py --out DIR [--photos 384] [--batch 64]

Photos: bench_gpu.py's generated 12 MP JPEGs. Figures: photos/s of (a) nvImageCodec batch decode to
GPU memory at full size, (b) the same plus a resize to the CLIP input on the GPU (CuPy, area
average), (c) the product's CPU decode (DCT-scaled to >= 224 px) on a thread per core.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--photos", type=int, default=384)
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    from bench_gpu import _prep_224, log, make_photo

    cores = len(os.sched_getaffinity(0))
    with ProcessPoolExecutor(cores) as procs:
        photos = list(procs.map(make_photo, range(args.photos)))
    res: dict = {"cores": cores, "photos": len(photos), "batch": args.batch,
                 "mean_mb": sum(map(len, photos)) / len(photos) / 1e6}
    with ThreadPoolExecutor(cores) as pool:
        list(pool.map(_prep_224, photos[:cores]))
        t0 = time.perf_counter()
        list(pool.map(_prep_224, photos))
        res["cpu_decode_photos_s"] = len(photos) / (time.perf_counter() - t0)
    log(f"CPU decode, {cores} threads: {res['cpu_decode_photos_s']:.0f} photos/s")
    try:
        import cupy as cp
        from nvidia import nvimgcodec
    except ImportError as exc:
        res["error"] = f"nvImageCodec or CuPy missing: {exc}"
        print(json.dumps(res))
        return
    decoder = nvimgcodec.Decoder()
    b = args.batch

    def gpu_decode(resize: bool) -> float:
        decoder.decode(photos[:b])  # warm-up: allocations, hardware decoder set-up
        cp.cuda.Device().synchronize()
        t0 = time.perf_counter()
        for start in range(0, len(photos), b):
            images = decoder.decode(photos[start:start + b])
            if resize:
                for im in images:
                    a = cp.asarray(im)  # (H, W, 3) uint8 on the GPU
                    h, w = a.shape[0] // 8 * 8, a.shape[1] // 8 * 8
                    a[:h, :w].reshape(h // 8, 8, w // 8, 8, 3).mean(axis=(1, 3), dtype=cp.float32)
        cp.cuda.Device().synchronize()
        return len(photos) / (time.perf_counter() - t0)

    try:
        res["gpu_decode_photos_s"] = gpu_decode(False)
        log(f"nvImageCodec decode, batches of {b}: {res['gpu_decode_photos_s']:.0f} photos/s")
        res["gpu_decode_resize_photos_s"] = gpu_decode(True)
        log(f"  + area resize on the GPU: {res['gpu_decode_resize_photos_s']:.0f} photos/s")
    except Exception as exc:  # noqa: BLE001 - a measurement: say what failed
        res["error"] = f"{type(exc).__name__}: {exc}"
    (args.out / "gpu_decode.json").write_text(json.dumps(res, indent=1))
    print(json.dumps(res))


if __name__ == "__main__":
    main()
