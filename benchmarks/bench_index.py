#!/usr/bin/env python3
"""Indexing throughput: photosearch end to end vs. its bare model, measured side by side.

    python3 benchmarks/bench_index.py                      # n=500 camera-like 12 MP JPEGs, 2 repeats
    python3 benchmarks/bench_index.py --n 100 --repeat 1   # quick
    python3 benchmarks/bench_index.py --naive --profile    # + naive serial reference, + stage profile
    python3 benchmarks/bench_index.py --e2e-config '' --e2e-config workers=1 --e2e-config threads=1,workers=2

What it measures (all in one process run, interleaved over --repeat rounds, so
drift on a shared machine does not favour one side):

  (a) bare model    ClipModel.encode_pixels (onnxruntime image tower) on pre-decoded,
                    preprocessed tensors, batches of 16 as the indexer uses: photos/s, t_model.
  (b) decode        photosearch.media.decode.decode(data, ext='.jpg', min_side=S) + ClipModel.preprocess,
                    one thread, bytes already in memory: t_decode (CPU time per image), plus the
                    other per-photo work of the indexer (sha256, metadata) and a few full decodes.
  (c) end to end    a fresh process `photosearch index DIR --json -q --library FRESH` (wall time
                    from spawn to exit, JSON summary checked: indexed == n), and its peak RSS.
  (d) report        e2e/bare, ceiling = t_model / (t_model + t_decode), (e2e/bare)/ceiling.

Scratch data (photos, the converted random-weights ViT-B-32-256, libraries) is cached
under benchmarks/work/ (git-ignored). Nothing is appended to RESULTS.md automatically;
--json-out writes the raw figures.
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
WORK = HERE / "work"
PHOTO_SRC = Path(os.environ.get("PHOTOSEARCH_BENCH_PHOTOS", HERE.parent.parent / "shared" / "data" / "photos"))
ARCH = "ViT-B-32-256"

# rclip's figures for the same comparison (its README/benchmarks): naive 4.0 photos/s,
# end to end 10.1 photos/s vs its bare model 13.4 photos/s (ratio 0.75), peak RSS 915 MB.
RCLIP = {"e2e": 10.1, "bare": 13.4, "ratio": 0.75, "rss_mb": 915, "naive": 4.0}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# -- 1. camera-like photos ------------------------------------------------------------------

@dataclass(frozen=True)
class PhotoSpec:
    n: int
    width: int = 4000
    height: int = 3000
    quality: int = 92
    target_mb: float = 2.5
    seed: int = 0

    @property
    def folder(self) -> Path:
        return WORK / f"photos-{self.width}x{self.height}-q{self.quality}-{self.target_mb}MB-s{self.seed}-n{self.n}"


def _make_one(job: tuple[int, str, PhotoSpec]) -> tuple[str, int, float]:
    """One camera-like JPEG: random crop/flip of a source photo, upscaled, film grain, EXIF."""
    from PIL import Image

    i, src, spec = job
    rng = np.random.default_rng([spec.seed, i])
    im = Image.open(src).convert("RGB")
    sw, sh = im.size
    portrait = sh > sw
    out_w, out_h = (spec.height, spec.width) if portrait else (spec.width, spec.height)
    aspect = out_w / out_h
    # Largest crop of the output aspect, then a random 70-100 % of it at a random place.
    cw, ch = (sw, sw / aspect) if sw / sh <= aspect else (sh * aspect, sh)
    f = rng.uniform(0.7, 1.0)
    cw, ch = cw * f, ch * f
    x0, y0 = rng.uniform(0, sw - cw), rng.uniform(0, sh - ch)
    im = im.resize((out_w, out_h), Image.Resampling.BICUBIC, box=(x0, y0, x0 + cw, y0 + ch))
    if rng.random() < 0.5:
        im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    base = np.asarray(im, dtype=np.float32)
    # Film grain: mostly luminance, a little chroma. Its strength is fitted per image so the
    # file lands near target_mb at the given quality, as a camera's JPEG would.
    grain = rng.standard_normal((out_h, out_w, 1), dtype=np.float32)
    grain = grain + 0.3 * rng.standard_normal((out_h, out_w, 3), dtype=np.float32)
    exif = Image.Exif()
    exif[0x010F] = "BenchCam"                                   # Make
    exif[0x0110] = "BC-12 Mark II"                              # Model
    exif[0x0112] = 1                                            # Orientation
    exif[0x0132] = f"2023:{1 + i % 12:02d}:{1 + i % 28:02d} 10:{i % 60:02d}:00"  # DateTime
    exif_bytes = exif.tobytes()
    target = spec.target_mb * 1e6

    def encode(sigma: float) -> bytes:
        arr = np.clip(base + sigma * grain, 0, 255).astype(np.uint8) if sigma > 0 else base.astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, "JPEG", quality=spec.quality, exif=exif_bytes)
        return buf.getvalue()

    # Secant search on sigma -> size (size grows roughly linearly with sigma in this range).
    plain = encode(0.0)
    if len(plain) >= target:  # already big without grain
        data, sigma = plain, 0.0
    else:
        lo_s, lo_b = 0.0, len(plain)
        sigma = 4.0
        for _ in range(6):
            data = encode(sigma)
            if abs(len(data) - target) <= 0.05 * target:
                break
            slope = (len(data) - lo_b) / (sigma - lo_s) if sigma != lo_s else 0.0
            lo_s, lo_b = sigma, len(data)
            sigma = float(np.clip(sigma + (target - len(data)) / max(slope, 1e4), 0.2, 40.0))
    path = spec.folder / f"IMG_{i:05d}.jpg"
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.rename(path)
    return str(path), len(data), sigma


def prepare_photos(spec: PhotoSpec, procs: int) -> list[Path]:
    manifest = spec.folder / "manifest.json"
    if manifest.is_file():
        files = sorted(spec.folder.glob("IMG_*.jpg"))
        if len(files) == spec.n:
            return files
    sources = sorted(PHOTO_SRC.glob("*.jpg"))
    if not sources:
        sys.exit(f"no source photos in {PHOTO_SRC}")
    spec.folder.mkdir(parents=True, exist_ok=True)
    for stale in spec.folder.iterdir():
        stale.unlink()
    log(f"preparing {spec.n} camera-like JPEGs ({spec.width}x{spec.height}, q{spec.quality}, "
        f"~{spec.target_mb} MB) from {len(sources)} photos in {PHOTO_SRC} with {procs} processes")
    jobs = [(i, str(sources[i % len(sources)]), spec) for i in range(spec.n)]
    t0 = time.monotonic()
    sizes: list[int] = []
    with multiprocessing.Pool(procs) as pool:
        for k, (_p, size, _s) in enumerate(pool.imap_unordered(_make_one, jobs, chunksize=4), 1):
            sizes.append(size)
            if k % 50 == 0 or k == spec.n:
                log(f"  {k}/{spec.n} photos, {time.monotonic() - t0:.0f} s")
    manifest.write_text(json.dumps({
        "spec": spec.__dict__, "sources": [s.name for s in sources],
        "mean_mb": sum(sizes) / len(sizes) / 1e6, "min_mb": min(sizes) / 1e6, "max_mb": max(sizes) / 1e6,
    }, indent=1))
    return sorted(spec.folder.glob("IMG_*.jpg"))


# -- 2. the model, through the product's real import path -----------------------------------

def converter_key() -> str:
    """Changes whenever the product's model conversion or loading code changes."""
    import hashlib

    import photosearch.models as pm

    h = hashlib.sha256()
    for name in ("convert.py", "store.py", "clip.py", "base.py"):
        f = Path(pm.__file__).parent / name
        h.update(f.read_bytes() if f.is_file() else b"")
    return h.hexdigest()[:10]


def prepare_model() -> Path:
    """A library folder holding only the converted random-weights ViT-B-32-256 (seed 0).

    Cached per version of the converter: a stale conversion is redone (and the old one removed).
    """
    lib = WORK / f"model-{ARCH}-seed0-{converter_key()}"
    done = lib / "models" / "ACTIVE"
    if done.is_file():
        return lib
    for stale in WORK.glob(f"model-{ARCH}-seed0*"):
        shutil.rmtree(stale, ignore_errors=True)
    import open_clip
    import safetensors.torch
    import torch

    from photosearch.api import Library

    log(f"creating random-weights {ARCH} (torch.manual_seed(0)) and importing it through Library.import_model")
    if lib.exists():
        shutil.rmtree(lib)
    lib.mkdir(parents=True)
    torch.manual_seed(0)
    model = open_clip.create_model(ARCH)
    ckpt = WORK / f"{ARCH}-seed0.safetensors"
    safetensors.torch.save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(ckpt))
    del model
    t0 = time.monotonic()
    Library(lib).import_model(ARCH, ckpt, progress=lambda m: log(f"  import: {m}"))
    log(f"  converted in {time.monotonic() - t0:.0f} s")
    ckpt.unlink()
    return lib


def fresh_library(model_lib: Path, tag: str) -> Path:
    runs = WORK / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    lib = runs / f"{tag}-{os.getpid()}-{time.monotonic_ns()}"
    lib.mkdir()
    shutil.copytree(model_lib / "models", lib / "models")
    return lib


# -- 3a/b. bare model and drafted decode ----------------------------------------------------

def measure_decode(model: Any, files: list[Path], keep: list[np.ndarray | None], full_n: int) -> dict[str, Any]:
    """One thread: decode(min_side) + preprocess per image, bytes already in memory."""
    from photosearch.media.decode import decode, read_metadata
    from photosearch.media.scan import content_hash

    phash = _perceptual_hash_fn()
    wall, cpu, dec_cpu, other_cpu = [], [], [], []
    draft_size = None
    for i, f in enumerate(files):
        data = f.read_bytes()                     # untimed: the bytes are in memory for the timing
        t0, c0 = time.perf_counter(), time.thread_time()
        d = decode(data, ext=".jpg", min_side=model.image_size)
        c1 = time.thread_time()
        px = model.preprocess(d.image)
        t2, c2 = time.perf_counter(), time.thread_time()
        content_hash(data)
        read_metadata(data, None)
        if phash is not None:
            phash(d.image)
        c3 = time.thread_time()
        wall.append(t2 - t0)
        cpu.append(c2 - c0)
        dec_cpu.append(c1 - c0)
        other_cpu.append(c3 - c2)
        keep[i] = px
        draft_size = list(d.image.size)
    full = []
    for f in files[:full_n]:
        data = f.read_bytes()
        c0 = time.thread_time()
        d = decode(data, ext=".jpg", min_side=None)
        model.preprocess(d.image)
        full.append(time.thread_time() - c0)
    n = len(files)
    return {
        "n": n,
        "t_decode_cpu": sum(cpu) / n,
        "t_decode_wall": sum(wall) / n,
        "t_decode_only_cpu": sum(dec_cpu) / n,
        "t_preprocess_cpu": (sum(cpu) - sum(dec_cpu)) / n,
        "t_hash_metadata_cpu": sum(other_cpu) / n,
        "t_full_decode_cpu": (sum(full) / len(full)) if full else None,
        "full_n": len(full),
        "decode_size": draft_size,
    }


def _perceptual_hash_fn() -> Any:
    """photosearch.media.hashes.compute if this version of the indexer computes perceptual hashes."""
    try:
        import photosearch.ingest.analyzers.hashes  # noqa: F401  (the pipeline's hashes analyzer)
        from photosearch.media import hashes
    except ImportError:
        return None
    return hashes.compute


def measure_bare(model: Any, pixels: list[np.ndarray], batch: int) -> dict[str, Any]:
    model.encode_pixels(np.stack(pixels[:batch]))      # warm-up: session creation, arena
    n = len(pixels)
    c0 = time.process_time()
    t0 = time.perf_counter()
    for i in range(0, n, batch):
        model.encode_pixels(np.stack(pixels[i:i + batch]))
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0
    return {"n": n, "seconds": wall, "photos_per_s": n / wall, "t_model": wall / n, "cores_busy": cpu / wall,
            "cpu_per_photo": cpu / n}


# -- 3c. end to end -------------------------------------------------------------------------

def parse_config(text: str) -> dict[str, Any]:
    """'workers=1,threads=2,batch=16,PHOTOSEARCH_COMMIT_SECONDS=10' -> dict (upper-case keys: env vars)."""
    out: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, _, value = part.partition("=")
        key = {"w": "workers", "t": "threads", "b": "batch"}.get(key.strip(), key.strip())
        if key.isupper():
            out[key] = value.strip()
        elif key in ("workers", "threads", "batch"):
            out[key] = int(value)
        else:
            raise SystemExit(f"--e2e-config: unknown key {key!r} (workers, threads, batch, or an ENV_VAR)")
    return out


def config_env(cfg: dict[str, Any]) -> dict[str, str]:
    env = {k: str(v) for k, v in cfg.items() if k.isupper()}
    if "threads" in cfg:
        env["PHOTOSEARCH_THREADS"] = str(cfg["threads"])
    return env


def config_label(cfg: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(cfg.items())) or "defaults"


_COMPILED: set[Path] = set()


def compile_bytecode(checkout: Path | str) -> None:
    """Write the .pyc files of ``checkout``'s package (once per run), as `pip install` does for an
    installed product: a checkout run in place (editable, or on PYTHONPATH) otherwise compiles
    every module from source at each start where PYTHONDONTWRITEBYTECODE is set, ~0.1 s of CPU
    a command that no installed product (nor rclip, pip-installed) pays."""
    pkg = Path(checkout).resolve() / "photosearch"
    if pkg not in _COMPILED and pkg.is_dir():
        import compileall

        compileall.compile_dir(str(pkg), quiet=1)
        _COMPILED.add(pkg)


def photosearch_cmd() -> list[str]:
    compile_bytecode(Path(__file__).resolve().parents[1])
    exe = Path(sys.executable).parent / "photosearch"
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "photosearch"]


# Peak RSS of a child: Linux carries the pre-exec address space's high-water mark into the
# child's ru_maxrss (exec_mmap -> setmax_mm_hiwater_rss), and subprocess forks (vforks) this
# big benchmark process, so waiting on the child directly would report *our* peak RSS. A
# small launcher process forks and execs the command instead and reports its rusage; its own
# footprint (~10 MB, see launcher_floor_mb) is the floor of what it can report.
_LAUNCHER = r"""
import json, os, sys, time
out, cmd = sys.argv[1], sys.argv[2:]
t0 = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(cmd[0], cmd)
    finally:
        os._exit(127)
_, status, ru = os.wait4(pid, 0)
wall = time.perf_counter() - t0
with open(out, "w") as f:
    json.dump({"wall": wall, "code": os.waitstatus_to_exitcode(status), "maxrss_kb": ru.ru_maxrss,
               "cpu": ru.ru_utime + ru.ru_stime, "nivcsw": ru.ru_nivcsw}, f)
"""


def launch(cmd: list[str], env: dict[str, str], stdout: Path, stderr: Path) -> dict[str, Any]:
    """Run cmd through the launcher; wall time is from its fork to its exit."""
    usage = stdout.with_suffix(".rusage.json")
    with open(stdout, "wb") as out, open(stderr, "wb") as err:
        subprocess.run([sys.executable, "-S", "-c", _LAUNCHER, str(usage), *cmd], stdout=out, stderr=err,
                       env=env, check=True)
    return json.loads(usage.read_text())


def launcher_floor_mb() -> float:
    tmp = WORK / "runs"
    tmp.mkdir(parents=True, exist_ok=True)
    r = launch(["true"], dict(os.environ), tmp / "floor.out", tmp / "floor.err")
    return r["maxrss_kb"] / 1024


def measure_e2e(model_lib: Path, photos: Path, n: int, cfg: dict[str, Any], keep_lib: bool) -> dict[str, Any]:
    lib = fresh_library(model_lib, "e2e")
    cmd = photosearch_cmd() + ["index", str(photos), "--json", "-q", "--library", str(lib)]
    if "workers" in cfg:
        cmd += ["--workers", str(cfg["workers"])]
    if "batch" in cfg:
        cmd += ["--batch-size", str(cfg["batch"])]
    env = {k: v for k, v in os.environ.items() if k != "PHOTOSEARCH_LIBRARY"}
    env.update(config_env(cfg))
    out_path, err_path = lib / "stdout.json", lib / "stderr.txt"
    ru = launch(cmd, env, out_path, err_path)
    wall = ru["wall"]
    if ru["code"] != 0:
        raise SystemExit(f"e2e run failed ({ru['code']}): {' '.join(cmd)}\n{err_path.read_text()[-2000:]}")
    summary = json.loads(out_path.read_text())
    if summary["indexed"] != n or summary["skipped"]:
        raise SystemExit(f"e2e run indexed {summary['indexed']} of {n}, skipped {summary['skipped'][:3]}")
    if not keep_lib:
        shutil.rmtree(lib, ignore_errors=True)
    return {
        "config": config_label(cfg), "cmd": cmd, "env_threads": env.get("PHOTOSEARCH_THREADS"),
        "seconds": wall, "photos_per_s": n / wall, "inner_seconds": summary["seconds"],
        "inner_photos_per_s": n / summary["seconds"],
        "peak_rss_mb": ru["maxrss_kb"] / 1024, "cpu_s": ru["cpu"], "cores_busy": ru["cpu"] / wall,
        "ctx_switches_invol": ru["nivcsw"],
    }


# -- 4. naive serial reference ---------------------------------------------------------------

def measure_naive(files: list[Path]) -> dict[str, Any]:
    """Full PIL decode + open_clip preprocess + torch encode_image, one photo at a time."""
    import open_clip
    import torch
    from PIL import Image

    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms(ARCH)
    model.eval()
    with torch.no_grad():
        model.encode_image(preprocess(Image.open(files[0]).convert("RGB")).unsqueeze(0))  # warm-up
        t0 = time.perf_counter()
        for f in files:
            img = Image.open(f).convert("RGB")
            model.encode_image(preprocess(img).unsqueeze(0))
        wall = time.perf_counter() - t0
    del model
    return {"n": len(files), "seconds": wall, "photos_per_s": len(files) / wall,
            "torch_threads": torch.get_num_threads()}


# -- optional: an instrumented in-process Indexer run -----------------------------------------

class _Acc:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.data: dict[str, list[float]] = {}

    def add(self, key: str, wall: float, cpu: float) -> None:
        with self.lock:
            v = self.data.setdefault(key, [0, 0.0, 0.0])
            v[0] += 1
            v[1] += wall
            v[2] += cpu


def profile_inprocess(model_lib: Path, photos: Path, n: int, cfg: dict[str, Any], spin: bool | None) -> dict[str, Any]:
    """Run the in-process runner with timers around its stages (monkeypatched here only)."""
    import concurrent.futures

    import psutil

    import photosearch.ingest.runners as runners
    import photosearch.media.decode as decode_mod
    import photosearch.media.scan as scan_mod
    from photosearch.api import Library
    from photosearch.models.base import default_threads

    acc = _Acc()

    def timed(key: str, fn: Any) -> Any:
        def wrapper(*a: Any, **k: Any) -> Any:
            t0, c0 = time.perf_counter(), time.thread_time()
            try:
                return fn(*a, **k)
            finally:
                acc.add(key, time.perf_counter() - t0, time.thread_time() - c0)
        return wrapper

    saved_env = {k: os.environ.get(k) for k in config_env(cfg)}
    os.environ.update(config_env(cfg))
    lib_dir = fresh_library(model_lib, "profile")
    lib = Library(lib_dir)
    threads = cfg.get("threads") or default_threads()
    session = None
    if spin is not None:
        import onnxruntime as ort
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        folder = lib.paths.models / lib.models.active_name()
        session = ort.InferenceSession(str(folder / "visual.onnx"), sess_options=opts,
                                       providers=["CPUExecutionProvider"])
    model = lib.models.load(threads=threads, visual_session=session)
    model.encode_pixels(np.zeros((1, 3, model.image_size, model.image_size), np.float32))  # create session now
    model.encode_pixels = timed("encode_pixels (main)", model.encode_pixels)     # type: ignore[method-assign]
    model.preprocess = timed("preprocess (pool)", model.preprocess)              # type: ignore[method-assign]

    # The analyzers import these at call time, so patching the modules reaches them.
    saved = {"decode": decode_mod.decode, "read_metadata": decode_mod.read_metadata,
             "content_hash": scan_mod.content_hash}
    saved_flush, saved_result = runners._Writer.flush, concurrent.futures.Future.result
    decode_mod.decode = timed("decode (pool)", saved["decode"])
    decode_mod.read_metadata = timed("read_metadata (pool)", saved["read_metadata"])
    scan_mod.content_hash = timed("sha256 (pool)", saved["content_hash"])
    runners._Writer.flush = timed("catalog flush (main)", saved_flush)
    from photosearch.media import hashes as hashes_mod
    saved_phash = getattr(hashes_mod, "compute", None)
    if saved_phash is not None:
        hashes_mod.compute = timed("perceptual hashes (pool)", saved_phash)

    main_ident = threading.get_ident()

    def result(self: Any, timeout: float | None = None) -> Any:
        if threading.get_ident() != main_ident:
            return saved_result(self, timeout)
        t0 = time.perf_counter()
        try:
            return saved_result(self, timeout)
        finally:
            acc.add("waiting for decode (main)", time.perf_counter() - t0, 0.0)
    concurrent.futures.Future.result = result  # type: ignore[method-assign]

    # Per-thread CPU, sampled, so exited pool threads are still counted.
    proc = psutil.Process()
    thread_cpu: dict[int, float] = {}
    stop = threading.Event()

    def sample() -> None:
        while True:
            for t in proc.threads():
                thread_cpu[t.id] = t.user_time + t.system_time
            if stop.wait(0.2):
                return
    before = {t.id: t.user_time + t.system_time for t in proc.threads()}
    names: dict[int, str] = {}

    def name_threads() -> None:
        while not stop.wait(0.1):
            for t in threading.enumerate():
                if t.native_id is not None:
                    names[t.native_id] = t.name
    sampler = threading.Thread(target=sample, name="bench-sampler", daemon=True)
    namer = threading.Thread(target=name_threads, name="bench-namer", daemon=True)
    sampler.start()
    namer.start()
    c0 = time.process_time()
    t0 = time.perf_counter()
    try:
        summary = lib.index([str(photos)], model=model, batch_size=cfg.get("batch", 16), workers=cfg.get("workers"))
    finally:
        wall = time.perf_counter() - t0
        cpu = time.process_time() - c0
        stop.set()
        sampler.join()
        namer.join()
        for name, fn in saved.items():
            setattr(scan_mod if name == "content_hash" else decode_mod, name, fn)
        runners._Writer.flush = saved_flush
        if saved_phash is not None:
            hashes_mod.compute = saved_phash
        concurrent.futures.Future.result = saved_result  # type: ignore[method-assign]
        shutil.rmtree(lib_dir, ignore_errors=True)
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    if summary.indexed != n:
        raise SystemExit(f"profile run indexed {summary.indexed} of {n}")
    groups: dict[str, float] = {}
    for tid, total in thread_cpu.items():
        spent = total - before.get(tid, 0.0)
        name = names.get(tid, "")
        if tid == threading.main_thread().native_id:
            g = "main (python + onnxruntime caller thread)"
        elif name.startswith("decode"):
            g = "decode pool threads"
        elif name.startswith("bench-"):
            g = "benchmark sampler threads"
        elif name:
            g = "other python threads"
        else:
            g = "native threads (onnxruntime intra-op pool, ...)"
        groups[g] = groups.get(g, 0.0) + spent
    return {
        "config": config_label(cfg) + ("" if spin is None else f",spinning={int(spin)}"),
        "seconds": wall, "photos_per_s": n / wall, "cpu_s": cpu, "cores_busy": cpu / wall,
        "stages": {k: {"calls": int(v[0]), "wall_s": v[1], "cpu_s": v[2]} for k, v in acc.data.items()},
        "thread_cpu_s": groups,
    }


def profile_in_child(model_lib: Path, photos: Path, n: int, cfg: dict[str, Any], spin: bool | None) -> dict[str, Any]:
    """profile_inprocess in a fresh interpreter: it imports the product code as it is now
    (consistent even if the working tree changed since this run started) and starts clean."""
    out = WORK / "runs" / f"profile-{os.getpid()}-{time.monotonic_ns()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    job = {"model_lib": str(model_lib), "photos": str(photos), "n": n, "cfg": cfg, "spin": spin, "out": str(out)}
    subprocess.run([sys.executable, str(Path(__file__).resolve()), "--profile-child", json.dumps(job)], check=True)
    result = json.loads(out.read_text())
    out.unlink()
    return result


def _profile_child(text: str) -> None:
    job = json.loads(text)
    r = profile_inprocess(Path(job["model_lib"]), Path(job["photos"]), job["n"], job["cfg"], job["spin"])
    Path(job["out"]).write_text(json.dumps(r))


# -- report ---------------------------------------------------------------------------------

def product_version() -> str:
    """The commit the product code is at, and whether its files differ from it."""
    root = HERE.parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "photosearch", "index", "pyproject.toml"],
                               cwd=root, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (no git)"
    return head + (" + uncommitted product changes" if dirty else "")


def med(values: list[float]) -> float:
    return statistics.median(values)


def spread(values: list[float], fmt: str = "{:.2f}") -> str:
    if len(values) == 1:
        return fmt.format(values[0])
    return f"{fmt.format(med(values))} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def render(res: dict[str, Any], meta: dict[str, Any]) -> list[str]:
    """The text report. Runs during which other processes kept more than meta['quiet'] cores
    busy are left out of the headline figures when quiet runs of the same kind exist."""
    n, quiet = meta["n"], meta["quiet"]

    def sel(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        ok = [r for r in runs if r.get("others_cores", 0.0) < quiet]
        return ok or runs

    bare, dec = sel(res["bare"]), sel(res["decode"])
    t_model = [r["t_model"] for r in bare]
    t_dec = [r["t_decode_cpu"] for r in dec]
    bare_pps = [r["photos_per_s"] for r in bare]
    ceiling = med(t_model) / (med(t_model) + med(t_dec))
    lines: list[str] = []
    w = lines.append
    w("")
    w("=" * 78)
    w(f"photosearch index throughput  {meta['started'][:16].replace('T', ' ')} UTC  n={n} photos, "
      f"{meta['repeat']} round(s)")
    w(f"photos: {meta['photos']}; model: random-weights {ARCH} via import_model (ONNX)")
    w(f"product: {meta['product_start']}" + ("" if meta["product_end"] == meta["product_start"]
                                           else f" at start, {meta['product_end']} at the end"))
    w(f"machine: {meta['machine']}")
    w(f"figures: median (min-max) over rounds in which other processes used < {quiet} cores "
      f"(all rounds where none was that quiet)")
    w("-" * 78)
    w(f"(a) bare model (ONNX image tower, batch {meta['batch']})   {spread(bare_pps)} photos/s"
      f"   t_model {spread([x * 1e3 for x in t_model], '{:.1f}')} ms   cores busy {spread([r['cores_busy'] for r in bare])}"
      f"   [{len(bare)}/{len(res['bare'])} rounds]")
    d0 = res["decode"][0]
    w(f"(b) drafted decode+preprocess, 1 thread   t_decode {spread([x * 1e3 for x in t_dec], '{:.1f}')} ms CPU/photo"
      f"  (decode {med([r['t_decode_only_cpu'] for r in dec]) * 1e3:.1f} + preprocess "
      f"{med([r['t_preprocess_cpu'] for r in dec]) * 1e3:.1f}; draft size {d0['decode_size']})"
      f"   [{len(dec)}/{len(res['decode'])} rounds]")
    if d0["t_full_decode_cpu"]:
        w(f"    full (non-draft) decode+preprocess: {d0['t_full_decode_cpu'] * 1e3:.0f} ms CPU/photo ({d0['full_n']} photos)"
          f" = {d0['t_full_decode_cpu'] / med(t_dec):.1f}x the drafted one")
    t_other = med([r["t_hash_metadata_cpu"] for r in dec])
    w(f"    other per-photo work in the indexer's workers (sha256 + metadata"
      f"{' + perceptual hashes' if meta['phash'] else ''}): {t_other * 1e3:.1f} ms CPU/photo")
    w(f"    ceiling = t_model/(t_model+t_decode) = {ceiling:.3f}")
    model_cpu = med([r["cpu_per_photo"] for r in bare])
    ncores = int(meta["machine"].split(" CPUs")[0].split(", ")[-1])
    bound = ncores / (model_cpu + med(t_dec) + t_other)
    w(f"    CPU bound: {ncores} cores / ({model_cpu * 1e3:.0f} model + {med(t_dec) * 1e3:.0f} decode + "
      f"{t_other * 1e3:.0f} other ms CPU/photo) = {bound:.2f} photos/s = bare x{bound / med(bare_pps):.3f}")
    head = None
    for label, all_runs in res["e2e"].items():
        if not all_runs:
            continue
        runs = sel(all_runs)
        pps = [r["photos_per_s"] for r in runs]
        # Per-round ratio: each e2e run against the bare run of the same round, both quiet;
        # else the ratio of the medians.
        pairs = [(e["photos_per_s"], b["photos_per_s"]) for e, b in zip(all_runs, res["bare"])
                 if e.get("others_cores", 0.0) < quiet and b.get("others_cores", 0.0) < quiet]
        ratio = med([a / b for a, b in pairs]) if pairs else med(pps) / med(bare_pps)
        row = {"label": label, "pps": pps, "ratio": ratio, "rss": max(r["peak_rss_mb"] for r in all_runs),
               "inner": med([r["inner_photos_per_s"] for r in runs]), "cores": med([r["cores_busy"] for r in runs]),
               "cpu_per_photo": med([r["cpu_s"] for r in runs]) / n}
        head = head or row
        w(f"(c) end to end [{label}]   {spread(pps)} photos/s [{len(runs)}/{len(all_runs)} rounds]   "
          f"e2e/bare {ratio:.3f}   /ceiling {ratio / ceiling:.3f}   peak RSS {row['rss']:.0f} MB")
        w(f"      inside the run {row['inner']:.2f} photos/s; process start/exit "
          f"{med([r['seconds'] - r['inner_seconds'] for r in runs]):.1f} s; {row['cores']:.2f} cores busy; "
          f"{row['cpu_per_photo'] * 1e3:.0f} ms CPU/photo")
    if head:
        w(f"    peak RSS is the child's own (ru_maxrss via a small launcher; launcher floor "
          f"{res.get('rss_floor_mb', 0):.0f} MB)")
        need = model_cpu + med(t_dec) + t_other
        w(f"    CPU check [{head['label']}]: {head['cpu_per_photo'] * 1e3:.0f} ms CPU/photo vs {need * 1e3:.0f} ms for its "
          f"parts measured alone: x{head['cpu_per_photo'] / need:.2f}")
    if res["naive"]:
        nv = res["naive"]
        w(f"naive serial (PIL full decode + torch, 1 at a time): {nv['photos_per_s']:.2f} photos/s "
          f"({nv['n']} photos, torch threads {nv['torch_threads']}; others used {nv.get('others_cores', 0):.2f} cores)")
    w("-" * 78)
    if head:
        w("summary                      photosearch      rclip")
        w(f"  end to end photos/s        {med(head['pps']):>8.2f}      {RCLIP['e2e']:>8.1f}")
        w(f"  bare model photos/s        {med(bare_pps):>8.2f}      {RCLIP['bare']:>8.1f}")
        w(f"  e2e/bare                   {head['ratio']:>8.3f}      {RCLIP['ratio']:>8.2f}")
        w(f"  ceiling t_m/(t_m+t_d)      {ceiling:>8.3f}")
        w(f"  (e2e/bare)/ceiling         {head['ratio'] / ceiling:>8.3f}      (goal >= 0.95: "
          f"{'met' if head['ratio'] / ceiling >= 0.95 else 'NOT met'})")
        w(f"  peak RSS MB                {head['rss']:>8.0f}      {RCLIP['rss_mb']:>8d}")
        if res["naive"]:
            w(f"  naive serial photos/s      {res['naive']['photos_per_s']:>8.2f}      {RCLIP['naive']:>8.1f}")
    w("-" * 78)
    w("rounds (photos/s or ms; [cores other processes used meanwhile])")
    for i in range(meta["repeat"]):
        parts = []
        if i < len(res["bare"]):
            b = res["bare"][i]
            parts.append(f"bare {b['photos_per_s']:.2f} [{b.get('others_cores', 0):.2f}]")
        if i < len(res["decode"]):
            d = res["decode"][i]
            parts.append(f"decode {d['t_decode_cpu'] * 1e3:.1f} ms [{d.get('others_cores', 0):.2f}]")
        for label, runs in res["e2e"].items():
            if i < len(runs):
                parts.append(f"{label} {runs[i]['photos_per_s']:.2f} [{runs[i].get('others_cores', 0):.2f}]")
        w(f"  {i}: " + "; ".join(parts))
    for p in res["profile"]:
        w("-" * 78)
        w(f"profile (in-process Indexer, {p['config']}): {p['photos_per_s']:.2f} photos/s, {p['seconds']:.1f} s, "
          f"{p['cores_busy']:.2f} cores busy [others {p.get('others_cores', 0):.2f}]")
        for k, v in sorted(p["stages"].items(), key=lambda kv: -kv[1]["wall_s"]):
            w(f"    {k:<28} {v['calls']:>5} calls  wall {v['wall_s']:7.2f} s  cpu {v['cpu_s']:7.2f} s")
        for k, v in sorted(p["thread_cpu_s"].items(), key=lambda kv: -kv[1]):
            w(f"    cpu {k:<46} {v:7.2f} s")
    w("=" * 78)
    return lines


class Contention:
    """CPU that other processes used while a measurement ran, in cores (from /proc/stat)."""

    def __enter__(self) -> Contention:
        self.t0, self.busy0, self.own0 = time.perf_counter(), _system_busy(), _own_cpu()
        return self

    def __exit__(self, *exc: Any) -> None:
        wall = time.perf_counter() - self.t0
        busy = _system_busy() - self.busy0
        own = _own_cpu() - self.own0
        self.others = max(0.0, (busy - own) / wall) if busy >= 0 and wall > 0 else 0.0


def _system_busy() -> float:
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return -1.0
    # user nice system idle iowait irq softirq steal ...: everything but idle and iowait
    return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


def _own_cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=500, help="number of photos (default 500)")
    ap.add_argument("--repeat", type=int, default=2, help="rounds of (a),(b),(c), order alternating (default 2)")
    ap.add_argument("--width", type=int, default=4000)
    ap.add_argument("--height", type=int, default=3000)
    ap.add_argument("--quality", type=int, default=92)
    ap.add_argument("--target-mb", type=float, default=2.5, help="approximate JPEG size (film grain is fitted)")
    ap.add_argument("--prep-procs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--batch", type=int, default=16, help="batch size of the bare-model measurement (indexer: 16)")
    ap.add_argument("--full-decode-n", type=int, default=10, help="images for the full (non-draft) decode reference")
    ap.add_argument("--e2e-config", action="append", default=None, metavar="K=V,...",
                    help="end-to-end variant: workers=N, threads=N (PHOTOSEARCH_THREADS), batch=N; "
                         "repeatable; '' means product defaults; the first one is the headline")
    ap.add_argument("--naive", action="store_true", help="also measure a naive serial PIL + torch pipeline")
    ap.add_argument("--naive-n", type=int, default=None, help="photos for --naive (default: all n)")
    ap.add_argument("--profile", action="store_true", help="also run an instrumented in-process Indexer")
    ap.add_argument("--profile-config", action="append", default=None, metavar="K=V,...",
                    help="configs for --profile (same keys as --e2e-config, plus spinning=0/1)")
    ap.add_argument("--skip-e2e", action="store_true")
    ap.add_argument("--keep-libs", action="store_true", help="keep the end-to-end libraries under work/runs/")
    ap.add_argument("--prepare-only", action="store_true")
    ap.add_argument("--json-out", type=Path, default=None, help="write all raw figures to this file")
    ap.add_argument("--quiet-threshold", type=float, default=0.25, metavar="CORES",
                    help="leave out of the headline runs during which other processes used more CPU than this")
    ap.add_argument("--profile-child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.profile_child:
        _profile_child(args.profile_child)
        return

    started = datetime.now(timezone.utc)
    version_at_start = product_version()
    WORK.mkdir(parents=True, exist_ok=True)
    spec = PhotoSpec(args.n, args.width, args.height, args.quality, args.target_mb)
    files = prepare_photos(spec, args.prep_procs)
    model_lib = prepare_model()
    manifest = json.loads((spec.folder / "manifest.json").read_text())
    log(f"{len(files)} photos in {spec.folder} (mean {manifest['mean_mb']:.2f} MB, "
        f"{manifest['min_mb']:.2f}-{manifest['max_mb']:.2f} MB); model library {model_lib}")
    if args.prepare_only:
        return
    for f in files:                                            # warm the page cache for every side
        f.read_bytes()

    from photosearch.api import Library
    from photosearch.models.base import default_threads

    model = Library(model_lib).models.load()
    configs = [parse_config(c) for c in (args.e2e_config or [""])]
    pixels: list[np.ndarray | None] = [None] * len(files)
    floor = launcher_floor_mb()
    res: dict[str, Any] = {"rss_floor_mb": floor, "decode": [], "bare": [], "e2e": {config_label(c): [] for c in configs},
                           "naive": None, "profile": []}

    def run_stage(stage: str, rnd: int) -> None:
        if stage == "decode":
            log(f"round {rnd}: (b) drafted decode + preprocess, 1 thread, {len(files)} photos")
            with Contention() as c:
                r = measure_decode(model, files, pixels, args.full_decode_n if rnd == 0 else 0)
            r["others_cores"] = c.others
            if rnd > 0:
                r["t_full_decode_cpu"] = res["decode"][0]["t_full_decode_cpu"]
            res["decode"].append(r)
            log(f"  t_decode {r['t_decode_cpu'] * 1e3:.1f} ms CPU/photo ({r['t_decode_wall'] * 1e3:.1f} ms wall)")
        elif stage == "bare":
            log(f"round {rnd}: (a) bare model, batches of {args.batch}")
            with Contention() as c:
                r = measure_bare(model, pixels, args.batch)  # type: ignore[arg-type]
            r["others_cores"] = c.others
            res["bare"].append(r)
            log(f"  {r['photos_per_s']:.2f} photos/s, t_model {r['t_model'] * 1e3:.1f} ms [others {c.others:.2f} cores]")
        else:
            order = configs if rnd % 2 == 0 else configs[::-1]
            for cfg in order:
                log(f"round {rnd}: (c) end to end, fresh process, {config_label(cfg)}")
                with Contention() as c:
                    r = measure_e2e(model_lib, spec.folder, len(files), cfg, args.keep_libs)
                r["others_cores"] = c.others
                res["e2e"][config_label(cfg)].append(r)
                log(f"  {r['photos_per_s']:.2f} photos/s ({r['seconds']:.1f} s), peak RSS {r['peak_rss_mb']:.0f} MB, "
                    f"{r['cores_busy']:.2f} cores busy [others {c.others:.2f} cores]")

    for rnd in range(args.repeat):
        order = ["decode", "bare", "e2e"] if rnd % 2 == 0 else ["e2e", "bare", "decode"]
        if args.skip_e2e:
            order.remove("e2e")
        for stage in order:
            run_stage(stage, rnd)

    if args.profile:
        for text in args.profile_config or [""]:
            cfg = parse_config(",".join(p for p in text.split(",") if not p.strip().startswith("spinning")))
            spin_parts = [p for p in text.split(",") if p.strip().startswith("spinning")]
            spin = bool(int(spin_parts[0].split("=")[1])) if spin_parts else None
            log(f"profile: instrumented in-process Indexer, {config_label(cfg)}" + (f", spinning={int(spin)}" if spin is not None else ""))
            with Contention() as c:
                p = profile_in_child(model_lib, spec.folder, len(files), cfg, spin)
            p["others_cores"] = c.others
            res["profile"].append(p)
            log(f"  {p['photos_per_s']:.2f} photos/s")
    if args.naive:
        nf = files[: args.naive_n or len(files)]
        log(f"naive: full PIL decode + open_clip torch encode_image, one at a time, {len(nf)} photos")
        with Contention() as c:
            res["naive"] = measure_naive(nf)
        res["naive"]["others_cores"] = c.others
        log(f"  {res['naive']['photos_per_s']:.2f} photos/s")

    # -- the report
    meta = {
        "started": started.isoformat(), "n": len(files), "repeat": args.repeat, "batch": args.batch,
        "photos": f"{spec.width}x{spec.height} JPEG q{spec.quality}, mean {manifest['mean_mb']:.2f} MB "
                  f"({manifest['min_mb']:.2f}-{manifest['max_mb']:.2f})",
        "product_start": version_at_start, "product_end": product_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs visible ({default_threads()} used by default), "
                   f"python {platform.python_version()}, no GPU",
        "phash": bool(_perceptual_hash_fn()), "quiet": args.quiet_threshold, "cmd": " ".join(sys.argv),
    }
    lines = render(res, meta)
    print("\n".join(lines), flush=True)
    if args.json_out:
        args.json_out.write_text(json.dumps({"meta": meta, "results": res, "report": lines}, indent=1, default=str))


if __name__ == "__main__":
    main()
