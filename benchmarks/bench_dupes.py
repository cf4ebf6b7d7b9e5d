"""Duplicate detection: quality on real photos with known transforms, and speed from 10k to 1M.

Quality: originals from ../shared/data/photos get near-duplicates made from them (JPEG quality
75/50/30, resize 50%/25%, crop 10%/30%, rotate 90, mirror, brightness, text overlay,
screenshot-style padding, PNG/WebP conversion) among distractors (the other photos and the face
photos). Everything is indexed through the real indexer; groups from `find_groups` are scored
as pairs: precision over all predicted pairs, recall per transform (original <-> copy), for
hashes alone, CLIP alone and both. Natural pairs (true, and counted apart from the transforms:
"natural pairs" found of all): the motorcycle stereo pair, the astronaut found in two folders,
and the two crops of one Obama photo (../shared/data/README.md).

NOTE: no CLIP weights can be downloaded on these machines; the CLIP model here has random
weights, so "clip" and "both" measure the mechanics, not the quality real weights would give.

Speed: synthetic pHash variants (random 64-bit codes, 1% planted near pairs) through the
pHash pair search (with the peak RSS while it runs, and the previous FAISS multi-index-hash
search side by side up to --old-max, checked to find the same pairs), and CLIP neighbour search
over the synthetic query-benchmark libraries (benchmarks/bench_query.py builds them), at growing
sizes.

    python benchmarks/bench_dupes.py quality
    python benchmarks/bench_dupes.py speed --sizes 10000 100000 1000000
    python benchmarks/bench_dupes.py cli --sizes 100000 1000000   # the whole CLI command, fresh process
    python benchmarks/bench_dupes.py verified --sizes 100000 1000000   # what verification adds
"""

from __future__ import annotations

import argparse
import itertools
import subprocess
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
WORK = HERE / "work"
SHARED = HERE.parent.parent / "shared" / "data"


def transforms(im):  # type: ignore[no-untyped-def]
    import io

    from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps

    w, h = im.size

    def jpeg(q: int) -> Image.Image:
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=q)
        return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")

    text = im.copy()
    draw = ImageDraw.Draw(text)
    for i in range(3):
        draw.text((10, 10 + 20 * i), "Summer holidays 2024 #beach", fill=(255, 255, 255))
    pad = Image.new("RGB", (int(w * 1.0), int(h * 2.1)), (245, 245, 245))  # a phone screenshot of the photo
    pad.paste(im, (0, int(h * 0.55)))
    # Harder kinds (issue 16): an off-centre crop to half the area, a corner crop, a phone
    # screenshot with an app's interface around the photo, a coloured frame, a square with a
    # blurred fill, and strong exposure and contrast changes.
    phone = Image.new("RGB", (1080, 2340), (255, 255, 255))
    ui = ImageDraw.Draw(phone)
    ui.rectangle((0, 0, 1080, 90), fill=(30, 30, 30))
    ui.text((40, 30), "9:41        LTE  87%", fill=(255, 255, 255))
    ui.text((40, 150), "alice_travels   Follow", fill=(0, 0, 0))
    ui.ellipse((40, 200, 140, 300), fill=(200, 120, 80))
    shown = int(1080 * h / w)
    phone.paste(im.resize((1080, shown)), (0, 330))
    for i in range(4):
        ui.ellipse((40 + i * 120, 360 + shown, 120 + i * 120, 440 + shown), outline=(0, 0, 0), width=4)
    ui.text((40, 480 + shown), "Liked by bob and 1,234 others", fill=(0, 0, 0))
    framed = Image.new("RGB", (int(w * 1.16), int(h * 1.16)), (180, 30, 40))
    framed.paste(im, (int(w * .08), int(h * .08)))
    side = max(w, h)
    square = im.resize((side, side)).filter(ImageFilter.GaussianBlur(30))
    square.paste(im, ((side - w) // 2, (side - h) // 2))
    def centred(aspect: float) -> Image.Image:   # the largest centred crop of that shape (w / h)
        cw, ch = (round(h * aspect), h) if w / h > aspect else (w, round(w / aspect))
        return im.crop(((w - cw) // 2, (h - ch) // 2, (w - cw) // 2 + cw, (h - ch) // 2 + ch))

    return {
        # Reframed for another screen or site (session 14): square, 4:5 and 9:16 portraits, 16:9.
        "crop_square": centred(1.0), "crop_4x5": centred(0.8), "crop_9x16": centred(9 / 16),
        "crop_16x9": centred(16 / 9) if w / h < 1.7 else centred(1.0),
        "crop_strip": im.crop((0, 0, int(w * 0.55), h)),   # a partial copy: the left 55%, full height
        "crop50": im.crop((int(w * .2), int(h * .1), int(w * .9), int(h * .81))),
        # More crops to half the area, where no window lies (session 15): off-centre at the top,
        # and lower right, then halved in size (a crop sent on through a messenger).
        "crop50_top": im.crop((int(w * .05), 0, int(w * .75), int(h * .71))),
        "crop50_small": im.crop((int(w * .25), int(h * .2), int(w * .95), int(h * .9))).resize(
            (max(1, int(w * .35)), max(1, int(h * .35)))),
        "crop_corner": im.crop((0, 0, int(w * .75), int(h * .75))),
        "screenshot_ui": phone, "framed": framed, "pad_blur": square,
        "dark": ImageEnhance.Brightness(im).enhance(0.55), "contrast": ImageEnhance.Contrast(im).enhance(1.6),
        "jpeg75": jpeg(75), "jpeg50": jpeg(50), "jpeg30": jpeg(30),
        "resize50": im.resize((w // 2, h // 2)), "resize25": im.resize((w // 4, h // 4)),
        "crop10": im.crop((int(w * .05), int(h * .05), int(w * .95), int(h * .95))),
        "crop30": im.crop((int(w * .15), int(h * .15), int(w * .85), int(h * .85))),
        "rotate90": im.rotate(90, expand=True), "mirror": ImageOps.mirror(im),
        "bright": ImageEnhance.Brightness(im).enhance(1.35), "text": text, "screenshot": pad,
        "png": im, "webp": im,
    }


def build_quality_set(folder: Path) -> tuple[dict[str, tuple[str, str]], set[tuple[str, str]]]:
    """Write the photo set; return {file: (original, transform)} and the natural true pairs."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    photos = sorted((SHARED / "photos").glob("*.jpg"))
    originals = [p for p in photos if "motorcycle" not in p.name][::2][:16]
    truth: dict[str, tuple[str, str]] = {}
    for p in photos + sorted((SHARED / "faces").glob("*.jpg")):
        dst = folder / (p.parent.name + "_" + p.name)
        if not dst.exists():
            shutil.copy(p, dst)
        truth[dst.name] = (dst.name, "original")
    for src in originals:
        im = Image.open(src).convert("RGB")
        key = "photos_" + src.name
        for name, t in transforms(im).items():
            ext = {"png": ".png", "webp": ".webp"}.get(name, ".jpg")
            out = folder / f"{src.stem}__{name}{ext}"
            if not out.exists():
                t.save(out, **({"quality": 92} if ext == ".jpg" else {}))
            truth[out.name] = (key, name)
    natural = {("photos_skimage_motorcycle_left.jpg", "photos_skimage_motorcycle_right.jpg")}
    # faces/skimage_astronaut.jpg is photos/skimage_astronaut.jpg byte for byte: an exact pair.
    natural.add(("faces_skimage_astronaut.jpg", "photos_skimage_astronaut.jpg"))
    # faces/face_recognition_obama_partial_face{,2}.jpg are crops of columns 419-909 and 0-550 of
    # face_recognition_obama.jpg (../shared/data/README.md): partial copies, one photo.
    obama = [f"faces_face_recognition_obama{s}.jpg" for s in ("", "_partial_face", "_partial_face2")]
    natural |= set(itertools.combinations(obama, 2))
    return truth, natural


def quality(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(HERE))
    from bench_query import model_library  # random-weights ViT-B-32-256, imported through the product

    from photosearch.api import Library
    from photosearch.query.dupes import PRESETS

    folder = WORK / "dupes-quality" / "photos"
    truth, natural = build_quality_set(folder)
    lib_dir = WORK / "dupes-quality" / "lib"
    if not (lib_dir / "models").exists():
        shutil.copytree(model_library() / "models", lib_dir / "models")
    lib = Library(lib_dir)
    summary = lib.index([folder])
    print(f"indexed {summary.indexed} new, {summary.unchanged} unchanged, {len(truth)} files", file=sys.stderr)

    origin = {f: o for f, (o, _) in truth.items()}
    kind = {f: t for f, (_, t) in truth.items()}

    def is_true(a: str, b: str) -> bool:
        if (min(a, b), max(a, b)) in {(min(x, y), max(x, y)) for x, y in natural}:
            return True
        return origin[a] == origin[b] and (kind[a] != "original" or kind[b] != "original")

    rows = []
    transforms_names = sorted({t for _, t in truth.values()} - {"original"})
    runs: list[tuple[str, str, Any]] = [(preset, method, verify) for preset in ("default", "strict", "loose")
                                        for method in ("hash", "clip", "both") for verify in (True, False, "clip")
                                        if verify is True or (verify is False and method == "hash")
                                        or (verify == "clip" and method != "hash" and preset == "default")]
    if args.imagededup:
        runs.append(("imagededup", "PHash (its default: 10 bits)", None))
    for preset, method, verify in runs:
        t0 = time.perf_counter()
        if verify is None:   # imagededup, in its own environment, on the same files
            found = json.loads(subprocess.run(
                [args.imagededup, "-c", "import json, sys\nfrom imagededup.methods import PHash\n"
                 "print(json.dumps(PHash(verbose=False).find_duplicates(image_dir=sys.argv[1])))", str(folder)],
                capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1])
            pred = {tuple(sorted((a, b))) for a, others in found.items() for b in others}
            used = method
        else:
            groups, used = lib.dupes(method=method, thresholds=PRESETS[preset], verify=verify is not False,
                                     verify_clip=verify == "clip")
            pred = set()
            for g in groups:
                names = sorted(Path(m.path).name for m in g.members)
                pred |= set(itertools.combinations(names, 2))
        seconds = time.perf_counter() - t0
        tp = sum(1 for a, b in pred if is_true(a, b))
        precision = tp / len(pred) if pred else 1.0
        per = {}
        for t in transforms_names:
            copies = [f for f, (o, k) in truth.items() if k == t]
            hit = sum(1 for f in copies if (min(f, origin[f]), max(f, origin[f])) in pred)
            per[t] = hit / len(copies)
        recall = float(np.mean(list(per.values())))
        natural_found = sum(1 for a, b in natural if (min(a, b), max(a, b)) in pred)
        rows.append({"preset": preset, "method": used + {False: " --no-verify", "clip": " --verify-clip"}.get(verify, ""),
                     "precision": precision, "recall": recall, "natural": f"{natural_found}/{len(natural)}",
                     "pairs": len(pred), "seconds": seconds, "per_transform": per})
        print(json.dumps(rows[-1]), flush=True)
    print()
    print("| preset | method | precision | recall (mean over transforms) | natural pairs | "
          + " | ".join(transforms_names) + " |")
    print("|---|---|---|---|---|" + "---|" * len(transforms_names))
    for r in rows:
        print(f"| {r['preset']} | {r['method']} | {r['precision']:.3f} | {r['recall']:.3f} | {r['natural']} | "
              + " | ".join(f"{r['per_transform'][t]:.2f}" for t in transforms_names) + " |")


def faiss_multihash_pairs(ids: np.ndarray, phash: np.ndarray, max_distance: int) -> dict[tuple[int, int], int]:
    """The pair search before the chunked one (FAISS IndexBinaryMultiHash, 4 x 16 bits), for comparison."""
    import faiss

    from photosearch.media.hashes import to_codes

    usable = phash.any(axis=1)
    ids, phash = ids[usable], phash[usable]
    if len(ids) < 2:
        return {}
    index = faiss.IndexBinaryMultiHash(64, 4, 16)
    index.nflip = max_distance // 4
    index.add(to_codes(phash[:, 0]))
    out: dict[tuple[int, int], int] = {}
    for variant in (0, 1, 2, 4, 5, 6, 7):
        lims, dist, found = index.range_search(to_codes(phash[:, variant]), max_distance + 1)
        counts = np.diff(lims).astype(np.int64)
        rows = np.repeat(np.arange(len(ids)), counts)
        keep = rows != found
        a, b, d = ids[rows[keep]], ids[found[keep]], dist[keep].astype(int)
        for x, y, dd in zip(np.minimum(a, b).tolist(), np.maximum(a, b).tolist(), d.tolist()):
            if out.get((x, y), 99) > dd:
                out[(x, y)] = dd
    return out


def _reset_peak_rss() -> bool:
    try:  # Linux: "5" resets the process's peak RSS (VmHWM) to its current RSS
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _rss_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _busy_seconds() -> float:
    """CPU seconds all processes spent busy so far (from /proc/stat), to tell a quiet machine."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    except OSError:
        return float("nan")
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def speed(args: argparse.Namespace) -> None:
    from photosearch.query.dupes import PRESETS, clip_pairs, hash_pairs

    print("| photos | hash pairs (s) | its CPU (s) | other processes (cores) | RSS before -> peak during hash pairs (MB) "
          "| previous FAISS multi-hash (s) | CLIP neighbours (s) | total (s) | pairs found (hash) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n in args.sizes:
        rng = np.random.default_rng(n)
        base = rng.integers(0, 2**64 - 1, size=n, dtype=np.uint64)
        ph = np.empty((n, 8), dtype=np.uint64)
        for v in range(8):
            ph[:, v] = rng.integers(0, 2**64 - 1, size=n, dtype=np.uint64)
        ph[:, 0] = base
        planted = rng.choice(n, n // 100, replace=False)
        for i in planted[: len(planted) // 2]:  # a copy of another photo, a few bits off
            j = (i + 1) % n
            v = int(ph[j, 0])
            for f in rng.choice(64, 3, replace=False):
                v ^= 1 << int(f)
            ph[i, 0] = v
        ids = np.arange(1, n + 1, dtype=np.int64)
        runs = []
        for _ in range(args.repeat):  # median of the runs
            rss_before, peak = _rss_mb("VmRSS"), float("nan")
            reset = _reset_peak_rss()
            busy0, cpu0, t0 = _busy_seconds(), time.process_time(), time.perf_counter()
            pairs = hash_pairs(ids, ph, PRESETS["default"].hash_distance)
            t_hash = time.perf_counter() - t0
            cpu = time.process_time() - cpu0
            others = max(0.0, (_busy_seconds() - busy0 - cpu) / t_hash)
            if reset:
                peak = _rss_mb("VmHWM")
            runs.append((t_hash, cpu, others, rss_before, peak))
        t_hash, cpu, others, rss_before, peak = sorted(runs)[len(runs) // 2]
        t_old = float("nan")
        if n <= args.old_max:  # the previous implementation, side by side; and the same pairs
            t0 = time.perf_counter()
            old = faiss_multihash_pairs(ids, ph, PRESETS["default"].hash_distance)
            t_old = time.perf_counter() - t0
            assert old == pairs, f"{n}: pairs differ from the previous implementation"
        lib = WORK / f"query-lib-{n}"
        t_clip = float("nan")
        if n <= args.clip_max and (lib / ".complete").exists():
            from photosearch.store.catalog import Catalog

            from photosearch.errors import LibraryError

            try:
                with Catalog.open(lib / "catalog.duckdb", read_only=True) as cat:
                    t0 = time.perf_counter()
                    clip_pairs(cat, "ViT-B-32-256", lib / "vectors", PRESETS["default"].clip_alone,
                               PRESETS["default"].neighbours, 20_000, 512)
                    t_clip = time.perf_counter() - t0
            except LibraryError as e:  # e.g. a library built before a catalog format change
                print(f"{n}: CLIP neighbours skipped: {e}", file=sys.stderr)
        def f(x: float, digits: int = 2) -> str:
            return "-" if x != x else f"{x:.{digits}f}"

        print(f"| {n:,} | {f(t_hash)} | {f(cpu)} | {f(others)} | {f(rss_before, 0)} -> {f(peak, 0)} | {f(t_old)} "
              f"| {f(t_clip)} | {f(t_hash + t_clip)} | {len(pairs):,} |", flush=True)


def verified(args: argparse.Namespace) -> None:
    """What verification adds to the pair search (issue 16), side by side in one run on synthetic
    hashes (random variants and windows, 1% planted near copies and 1% planted crops, borders
    trimmed in 10% of the photos): the
    threshold's search alone, the search out to the verified margin, the window search, and how
    many candidate pairs go to the pixel check (each ~10 ms of one core on 640 px thumbnails,
    measured by `quality`)."""
    # The windows a whole image is looked for among (the edge strips are searched strip to strip).
    from photosearch.media.hashes import SEARCHED_WINDOWS as WINDOWS
    from photosearch.query.dupes import PRESETS, hash_pairs, loose_distance, window_distance, window_pairs

    base = PRESETS["default"].hash_distance
    print("| photos | pairs within the threshold (s) | out to the verified margin (s) | margin (bits) "
          "| window pairs (s) | window distance (bits) | candidates to verify | planted crops found |")
    print("|---|---|---|---|---|---|---|---|")
    for n in args.sizes:
        rng = np.random.default_rng(n)
        ph = rng.integers(0, 2**64 - 1, size=(n, 8), dtype=np.uint64)
        win = rng.integers(0, 2**64 - 1, size=(n, WINDOWS), dtype=np.uint64)
        plain = rng.random(n) < 0.9   # photos without borders to trim (a guess): one whole-image hash
        win[plain, 0] = ph[plain, 0]
        planted = rng.choice(n, n // 50, replace=False)
        for i in planted[: n // 100]:    # near copies of the next photo
            v = int(ph[(i + 1) % n, 0])
            for f in rng.choice(64, 3, replace=False):
                v ^= 1 << int(f)
            ph[i, 0] = v
        crops = planted[n // 100:]
        for i in crops:                  # crops: close to one window of the next photo
            v = int(win[(i + 1) % n, 1 + int(rng.integers(0, WINDOWS - 1))])
            for f in rng.choice(64, 3, replace=False):
                v ^= 1 << int(f)
            ph[i, 0] = v
        ids = np.arange(1, n + 1, dtype=np.int64)
        t0 = time.perf_counter()
        linked = hash_pairs(ids, ph, base)
        t_base = time.perf_counter() - t0
        far = loose_distance(n, base)
        t0 = time.perf_counter()
        found = hash_pairs(ids, ph, far)
        t_far = time.perf_counter() - t0
        wd = window_distance(n, base, WINDOWS * n)
        t0 = time.perf_counter()
        near = window_pairs(ids, ph, ids, win, wd)
        t_win = time.perf_counter() - t0
        candidates = ({p for p, d in found.items() if d > base} | set(near)) - set(linked)   # as the product
        hit = sum(1 for i in crops if (min(ids[i], ids[(i + 1) % n]), max(ids[i], ids[(i + 1) % n])) in near)
        print(f"| {n:,} | {t_base:.2f} | {t_far:.2f} | {far} | {t_win:.2f} | {wd} | {len(candidates):,} "
              f"| {hit}/{len(crops)} |", flush=True)


def cli(args: argparse.Namespace) -> None:
    """The whole `photosearch dupes --json` as a user runs it (fresh process: import, catalog, hash
    pairs, CLIP neighbours, grouping, keepers, JSON), on a copy of query-lib-N with synthetic
    perceptual hashes inserted (as `speed` makes them: random variants, 1% planted copies)."""

    import pyarrow as pa

    from photosearch.store.catalog import Catalog

    # This checkout, and with --before another one (its own window width) side by side.
    products = [("this", None), *([("before", str(Path(args.before).resolve()))] if args.before else [])]
    print("| photos | product | command | wall (s) | CPU (s, user+sys of the process) | groups | other processes (cores) |")
    print("|---|---|---|---|---|---|---|")
    for n, extra, (product, where) in itertools.product(
            args.sizes, ([], ["--method", "hash"], ["--method", "hash", "--no-verify"]), products):
        # Each product from its own checkout: PYTHONPATH names it, and the commands run outside
        # both (`python -m` and `-c` put the working directory first on the path).
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": where or str(HERE.parent)}
        width = int(subprocess.run([sys.executable, "-c", "from photosearch.media.hashes import WINDOWS; print(WINDOWS)"],
                                   capture_output=True, text=True, env=env, check=True, cwd=WORK).stdout)
        src = WORK / f"query-lib-{n}"
        lib = WORK / f"dupes-cli-lib-{n}-w{width}"
        if not (lib / ".hashed").exists():
            shutil.rmtree(lib, ignore_errors=True)
            shutil.copytree(src, lib)
            rng = np.random.default_rng(n)
            with Catalog.open(lib / "catalog.duckdb") as cat, cat.transaction():
                ids = np.sort(cat.con.execute("SELECT id FROM photos").fetchnumpy()["id"]).astype(np.int64)
                ph = rng.integers(0, 2**64 - 1, size=(len(ids), 8), dtype=np.uint64)
                planted = rng.choice(len(ids), len(ids) // 100, replace=False)
                for i in planted[: len(planted) // 2]:
                    v = int(ph[(i + 1) % len(ids), 0])
                    for f in rng.choice(64, 3, replace=False):
                        v ^= 1 << int(f)
                    ph[i, 0] = v
                table = pa.table({"photo_id": pa.array(ids), "phash": pa.array(list(ph), pa.list_(pa.uint64())),
                                  "dhash": pa.array(rng.integers(0, 2**64 - 1, len(ids), dtype=np.uint64)),
                                  "content_width": pa.nulls(len(ids), pa.int32()),
                                  "content_height": pa.nulls(len(ids), pa.int32())})
                cat.con.register("_h", table)
                cat.con.execute("INSERT INTO image_hashes (photo_id, phash, dhash, content_width, content_height) "
                                "SELECT * FROM _h")
                cat.con.unregister("_h")
                # Window hashes (random; the untrimmed whole-image hash is the trimmed one for 90%).
                win = rng.integers(0, 2**64 - 1, size=(len(ids), width), dtype=np.uint64)
                plain = rng.random(len(ids)) < 0.9
                win[plain, 0] = ph[plain, 0]
                cat.add_windows(list(zip(ids.tolist(), win.tolist())))
                cat._dirty = True
            (lib / ".hashed").touch()
        import resource

        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        busy0 = _busy_seconds()
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "photosearch", "dupes", "--json", *extra, "--library", str(lib)],
                           capture_output=True, text=True, env=env, cwd=WORK)
        wall = time.perf_counter() - t0
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        if r.returncode != 0:
            print(f"{n}: failed: {r.stderr.strip()[-500:]}", file=sys.stderr)
            continue
        groups = len(json.loads(r.stdout)["groups"])
        cpu = ru.ru_utime + ru.ru_stime - ru0.ru_utime - ru0.ru_stime
        others = max(0.0, (_busy_seconds() - busy0 - cpu) / wall)
        print(f"| {n:,} | {product} | `dupes --json {' '.join(extra)}` | {wall:.1f} | {cpu:.1f} | {groups:,} "
              f"| {others:.2f} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    qp = sub.add_parser("quality")
    qp.add_argument("--imagededup", metavar="PYTHON", help="a Python with imagededup installed: its PHash side by side")
    sp = sub.add_parser("speed")
    sp.add_argument("--sizes", type=int, nargs="+", default=[10_000, 30_000, 100_000, 300_000, 1_000_000])
    sp.add_argument("--old-max", type=int, default=100_000,
                    help="also time the previous FAISS pair search (and check it finds the same pairs) up to this size")
    sp.add_argument("--repeat", type=int, default=1, help="hash pair runs per size (the median is shown)")
    sp.add_argument("--clip-max", type=int, default=10_000_000, help="time CLIP neighbours up to this size")
    vp = sub.add_parser("verified", help="what the verified candidates add to the pair search")
    vp.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    cp = sub.add_parser("cli", help="the whole `photosearch dupes --json` on query-lib-N plus synthetic hashes")
    cp.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    cp.add_argument("--before", metavar="CHECKOUT", help="another checkout of photosearch, run side by side")
    args = ap.parse_args()
    os.environ["HF_HUB_OFFLINE"] = "1"
    {"quality": quality, "speed": speed, "verified": verified, "cli": cli}[args.what](args)


if __name__ == "__main__":
    main()
