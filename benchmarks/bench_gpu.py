#!/usr/bin/env python3
"""CLIP indexing throughput with onnxruntime's CUDA provider against its CPU provider, on one machine
(issue 22, `index --device cuda`). Written for a lent GPU machine that has torch but not the
product's other dependencies: it uses only the product's model and decode code (photosearch.models
.clip, .convert, photosearch.media.decode) and so measures the stages a GPU changes, not a whole
`photosearch index` run.

    python3 benchmarks/bench_gpu.py --out DIR [--work /tmp/bench-gpu] [--photos 384] [--seconds 15]

1. a random-weights ViT-B-32-256 (torch seed 0) converted by the product's converter (open_clip ->
   ONNX, verified against open_clip);
2. --photos 12 MP camera-like JPEGs (4000x3000, q92, smooth scene + grain), made on every core;
3. decode + preprocess alone, on a thread pool of every core (the product's decode: DCT-scaled to
   the model's size; the product's preprocess): photos/s the CPU side can feed;
4. the image tower alone on pre-made pixels: CUDA (fp32, batches 32-256) and the CPU provider (fp32
   and int8, batch 16, every core): images/s;
5. the pipeline: the decode pool feeding the model in batches (CUDA at its best batch; the CPU
   provider beside it on the same photos): photos/s end to end for CLIP.
Prints one JSON document and writes it to DIR/gpu.json.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def make_photo(i: int) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(i)
    small = rng.uniform(0, 255, (6, 8, 3)).astype(np.uint8)
    img = np.asarray(Image.fromarray(small).resize((4000, 3000), Image.Resampling.BICUBIC), np.float32)
    img += rng.normal(0, 7, (3000, 4000, 1)).astype(np.float32)
    buf = io.BytesIO()
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=92)
    return buf.getvalue()


def convert_model(dest: Path) -> Path:
    import open_clip
    import safetensors.torch
    import torch

    from photosearch.models.convert import convert
    from photosearch.models.quantize import add_int8

    folder = dest / "ViT-B-32-256"
    if (folder / "model.json").is_file():
        return folder
    dest.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = open_clip.create_model("ViT-B-32-256")
    ckpt = dest / "ckpt.safetensors"
    safetensors.torch.save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(ckpt))
    del model
    spec = convert("ViT-B-32-256", folder, checkpoint=str(ckpt), progress=log)
    add_int8(folder, spec, say=log)
    (folder / "model.json").write_text(json.dumps(spec, indent=2))
    return folder


def rate(fn: Any, seconds: float, per_call: int) -> float:
    fn()  # warm-up
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        n += per_call
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True, help="where gpu.json goes")
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench-gpu"), help="the converted model (~0.5 GB)")
    ap.add_argument("--photos", type=int, default=384)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--decode-only", action="store_true",
                    help="only decode + preprocess: a thread pool (the product's) against a process pool")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.decode_only:
        res = decode_scaling(args.photos)
        (args.out / "decode.json").write_text(json.dumps(res, indent=1))
        print(json.dumps(res))
        return
    import onnxruntime as ort

    from photosearch.media.decode import decode
    from photosearch.models.clip import ClipModel

    cores = len(os.sched_getaffinity(0))
    res: dict[str, Any] = {"cores": cores, "onnxruntime": ort.__version__, "providers": ort.get_available_providers()}
    t0 = time.perf_counter()
    folder = convert_model(args.work)
    res["convert_s"] = time.perf_counter() - t0
    log(f"model ready in {res['convert_s']:.0f} s")
    with ThreadPoolExecutor(cores) as pool:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(cores) as procs:
            photos = list(procs.map(make_photo, range(args.photos)))
        log(f"{len(photos)} photos, {np.mean([len(p) for p in photos]) / 1e6:.2f} MB mean")
        cpu = ClipModel(folder, threads=cores)
        size = cpu.image_size

        def prep(data: bytes) -> np.ndarray:
            return cpu.preprocess(decode(data, ext=".jpg", min_side=size).image)

        t0 = time.perf_counter()
        pixels = list(pool.map(prep, photos))
        res["decode_preprocess_photos_s"] = len(photos) / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        list(pool.map(prep, photos))
        res["decode_preprocess_photos_s"] = max(res["decode_preprocess_photos_s"], len(photos) / (time.perf_counter() - t0))
        log(f"decode + preprocess on {cores} threads: {res['decode_preprocess_photos_s']:.0f} photos/s")
        batch16 = np.stack(pixels[:16])
        res["cpu_fp32_images_s"] = rate(lambda: cpu.encode_pixels(batch16), args.seconds, 16)
        cpu8 = ClipModel(folder, threads=cores, precision="int8")
        res["cpu_int8_images_s"] = rate(lambda: cpu8.encode_pixels(batch16), args.seconds, 16)
        log(f"CPU provider, {cores} threads: fp32 {res['cpu_fp32_images_s']:.0f}, int8 {res['cpu_int8_images_s']:.0f} images/s")
        res["cuda"] = {}
        if "CUDAExecutionProvider" in ort.get_available_providers():
            gpu = ClipModel(folder, device="cuda")
            try:
                gpu.load_image_tower()
            except Exception as exc:  # noqa: BLE001 - reported, the CPU figures stand
                res["cuda_error"] = str(exc)
                gpu = None
            if gpu is not None:
                for b in (32, 64, 128, 256):
                    batch = np.stack((pixels * (b // len(pixels) + 1))[:b])
                    res["cuda"][b] = rate(lambda batch=batch: gpu.encode_pixels(batch), args.seconds / 2, b)
                    log(f"CUDA fp32 batch {b}: {res['cuda'][b]:.0f} images/s")
                best = max(res["cuda"], key=res["cuda"].get)
                res["pipeline_cuda_photos_s"] = pipeline(pool, photos, prep, gpu, best)
                log(f"pipeline, decode pool -> CUDA batch {best}: {res['pipeline_cuda_photos_s']:.0f} photos/s")
        res["pipeline_cpu_int8_photos_s"] = pipeline(pool, photos[:128], prep, cpu8, 16)
        log(f"pipeline, decode pool -> CPU int8 batch 16: {res['pipeline_cpu_int8_photos_s']:.0f} photos/s")
    (args.out / "gpu.json").write_text(json.dumps(res, indent=1))
    print(json.dumps(res))


def _prep_224(data: bytes) -> int:
    """The product's decode (DCT-scaled to >= 224 px) and a CLIP-style preprocess, in a worker."""
    from photosearch.media.decode import decode

    img = decode(data, ext=".jpg", min_side=224).image
    w, h = img.size
    s = 224 / min(w, h)
    arr = np.asarray(img.resize((max(224, round(w * s)), max(224, round(h * s)))), dtype=np.float32)
    return int(arr.shape[0])


def decode_scaling(n: int) -> dict[str, Any]:
    """Photos/s of decode + preprocess on a pool of threads and on a pool of processes, 1..all cores."""
    from concurrent.futures import ProcessPoolExecutor

    cores = len(os.sched_getaffinity(0))
    with ProcessPoolExecutor(cores) as procs:
        photos = list(procs.map(make_photo, range(n)))
    res: dict[str, Any] = {"cores": cores, "photos": n, "mean_mb": float(np.mean([len(p) for p in photos]) / 1e6),
                           "threads": {}, "processes": {}}
    for k in sorted({1, 4, cores // 2, cores}):
        with ThreadPoolExecutor(k) as pool:
            list(pool.map(_prep_224, photos[:k]))
            t0 = time.perf_counter()
            list(pool.map(_prep_224, photos))
            res["threads"][k] = n / (time.perf_counter() - t0)
        with ProcessPoolExecutor(k) as procs:
            list(procs.map(_prep_224, photos[:k]))
            t0 = time.perf_counter()
            list(procs.map(_prep_224, photos, chunksize=4))
            res["processes"][k] = n / (time.perf_counter() - t0)
        log(f"{k} workers: threads {res['threads'][k]:.0f}, processes {res['processes'][k]:.0f} photos/s")
    return res


def pipeline(pool: ThreadPoolExecutor, photos: list[bytes], prep: Any, model: Any, batch: int) -> float:
    """Photos/s of the decode pool feeding ``model`` batches (decode of the next batch overlaps the model)."""
    t0 = time.perf_counter()
    futures = [pool.submit(prep, p) for p in photos]
    for start in range(0, len(futures), batch):
        model.encode_pixels(np.stack([f.result() for f in futures[start:start + batch]]))
    return len(photos) / (time.perf_counter() - t0)


if __name__ == "__main__":
    main()
