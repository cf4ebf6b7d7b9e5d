#!/usr/bin/env python3
"""Tags (issue 5): `photosearch tag` speed on big libraries, and what few-shot probes learn.

    python3 benchmarks/bench_tags.py speed --sizes 10000 100000 1000000
    python3 benchmarks/bench_tags.py probe --targets 8 --seeds 3
    python3 benchmarks/bench_tags.py all --json-out benchmarks/work/tags.json

speed   Synthetic libraries (catalog rows + clustered 512-d unit vectors, like bench_query.py, written
        straight into the catalog) with the random-weights ViT-B-32-256 of bench_index.py installed.
        For each size:
          - `photosearch tag --json` in fresh processes: the first run on an untagged library and
            re-runs (which replace the 20 x N stored scores): wall time, peak RSS (ru_maxrss through
            bench_index.py's launcher), CPU;
          - the same Library.tag() in a child process with timers around its parts (catalog open,
            taxonomy sync, model load, text encoding of the prompts, reading vectors, storing scores,
            the final per-tag counts, COMMIT; matrix product + sigmoid is what is left of score_all),
            plus the bare `sigmoid(X @ W + b)` on the same number of vectors;
          - fresh `photosearch --tag Beach --json`, `photosearch review --json` processes (median
            after one warm-up) and `photosearch export --csv --out FILE`.
        Each size starts from a pristine copy of its catalog, so the first run is really a first run.

probe   Real pixels: every photo of ../shared/data/photos plus --variants realistic variants each
        (crop 60-90% of each side, mirror, rotation +-6 deg, brightness 0.7-1.3, resize, JPEG q40-90),
        indexed with Library.index(paths, faces=False) and the random-weights ViT-B-32-256. For each
        target photo (its variants + itself = the positive class; every other photo's = negatives) and
        seed, a fixed decision pool of 8 positives and 8 negatives is drawn; for k = 0, 1, 2, 4, 8 the
        first k of each are accepted / rejected on a user tag (Library.tag_photos), Library.tag(only=...)
        rescores, and the stored scores of the held-out photos (everything outside the pool: the same set
        for every k) give average precision, precision@10 and calibration at 0.6 / 0.9. A reference
        ranker that needs no training (cosine to the accepted photos' mean minus cosine to the rejected
        photos' mean) is computed from the same stored vectors. An offline ablation reruns the product's
        train_probe on the same decisions with PROBE_PRIOR patched (--priors; 1.0 is the product's and must
        reproduce the stored scores' AP).

        CLIP has random weights here (no weights can be downloaded), so the zero-shot prompt carries no
        meaning and k=0 is chance; this measures the probe's learning mechanics on real pixels, not what
        it adds on top of a real CLIP's zero-shot scores.

Scratch data goes to benchmarks/work/ (git-ignored). Nothing is written to RESULTS.md.
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
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
WORK = HERE / "work"
PHOTO_SRC = Path(os.environ.get("PHOTOSEARCH_BENCH_PHOTOS", HERE.parent.parent / "shared" / "data" / "photos"))
ARCH = "ViT-B-32-256"
DIM = 512
sys.path.insert(0, str(HERE))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("PHOTOSEARCH_OFFLINE", "1")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def model_lib() -> Path:
    """bench_index.py's random-weights ViT-B-32-256 (seed 0), imported through Library.import_model."""
    import bench_index

    return bench_index.prepare_model()


def env_for_cli() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PHOTOSEARCH_LIBRARY", "PHOTOSEARCH_TAXONOMY")}
    env.update(HF_HUB_OFFLINE="1", PHOTOSEARCH_OFFLINE="1")
    return env


def launch(cmd: list[str], tag: str) -> dict[str, Any]:
    """A fresh process through bench_index.py's launcher: wall, exit code, peak RSS, CPU; plus load and
    the CPU other processes used meanwhile (cores)."""
    import bench_index

    runs = WORK / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    out, err = runs / f"tags-{tag}.out", runs / f"tags-{tag}.err"
    with bench_index.Contention() as c:
        ru = bench_index.launch(cmd, env_for_cli(), out, err)
    if ru["code"] != 0:
        raise SystemExit(f"failed ({ru['code']}): {' '.join(cmd)}\n{err.read_text()[-2000:]}")
    ru["others_cores"] = c.others
    ru["peak_rss_mb"] = ru["maxrss_kb"] / 1024
    ru["stdout"] = out
    ru["loadavg"] = loadavg()
    return ru


# =================================================================================================
# speed
# =================================================================================================

def build_library(n: int) -> Path:
    """tags-lib-N: catalog rows + clustered vectors (bench_query.py's generator), no ANN index (tag, --tag,
    review and export never read it). Keeps a pristine copy of the catalog to restart from."""
    import bench_query

    from photosearch.store.catalog import Catalog

    lib = WORK / f"tags-lib-{n}"
    done = lib / ".complete"
    if done.exists():
        return lib
    shutil.rmtree(lib, ignore_errors=True)
    shutil.copytree(model_lib() / "models", lib / "models")
    t0 = time.perf_counter()
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
            """, [n])
        step = 100_000
        for start in range(0, n, step):
            m = min(step, n - start)
            cat.add_embeddings(ARCH, np.arange(start + 1, start + m + 1), bench_query.clustered(n, start, m))
        cat.mark_changed()
        cat.con.execute("CHECKPOINT")
    shutil.copyfile(lib / "catalog.duckdb", lib / "catalog.pristine")
    done.write_text(json.dumps({"build_s": time.perf_counter() - t0}))
    return lib


def restore(lib: Path) -> None:
    for p in lib.glob("catalog.duckdb*"):
        p.unlink()
    shutil.copyfile(lib / "catalog.pristine", lib / "catalog.duckdb")


def ps_cmd() -> list[str]:
    import bench_index

    return bench_index.photosearch_cmd()


def cli_tag(lib: Path, label: str) -> dict[str, Any]:
    ru = launch(ps_cmd() + ["tag", "--json", "--library", str(lib)], label)
    doc = json.loads(ru["stdout"].read_text())
    return {"wall_s": ru["wall"], "peak_rss_mb": ru["peak_rss_mb"], "cpu_s": ru["cpu"], "inner_s": doc["seconds"],
            "photos": doc["photos"], "tags": doc["tags"], "counts": doc["counts"], "others_cores": ru["others_cores"],
            "loadavg": ru["loadavg"]}


def cli_cold(lib: Path, args: list[str], label: str, runs: int) -> dict[str, Any]:
    """Median of fresh processes after one warm-up (files in the OS cache)."""
    launch(ps_cmd() + args + ["--library", str(lib)], f"{label}-warm")
    rs = [launch(ps_cmd() + args + ["--library", str(lib)], f"{label}-{i}") for i in range(runs)]
    doc = rs[-1]["stdout"].read_text()
    return {"wall_s": statistics.median(r["wall"] for r in rs), "wall_all": [round(r["wall"], 3) for r in rs],
            "peak_rss_mb": max(r["peak_rss_mb"] for r in rs), "others_cores": max(r["others_cores"] for r in rs),
            "loadavg": rs[-1]["loadavg"], "stdout_bytes": len(doc), "doc": doc}


def cli_export(lib: Path, label: str) -> dict[str, Any]:
    out = lib / "export.csv"
    ru = launch(ps_cmd() + ["export", "--csv", "--out", str(out), "--library", str(lib)], label)
    with open(out, newline="", encoding="utf-8") as f:
        rows = sum(1 for _ in csv.reader(f)) - 1
    size = out.stat().st_size
    out.unlink()
    return {"wall_s": ru["wall"], "peak_rss_mb": ru["peak_rss_mb"], "rows": rows, "mb": size / 1e6,
            "others_cores": ru["others_cores"], "loadavg": ru["loadavg"]}


# -- the in-process split ----------------------------------------------------------------------------

class Timers:
    def __init__(self) -> None:
        self.t: dict[str, float] = {}
        self.n: dict[str, int] = {}

    def add(self, key: str, dt: float) -> None:
        self.t[key] = self.t.get(key, 0.0) + dt
        self.n[key] = self.n.get(key, 0) + 1


def profile_child(lib: Path) -> dict[str, Any]:
    """Runs in a child process: Library.tag() twice (a first run on the pristine catalog, then a
    re-run) with timers around its parts (monkeypatched in this process only)."""
    import photosearch.query.tags as tg
    from photosearch import api
    from photosearch.store.catalog import Catalog
    from photosearch.models.store import ModelStore

    T = Timers()

    def timed(key: str, fn: Any) -> Any:
        def wrapper(*a: Any, **k: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                T.add(key, time.perf_counter() - t0)
        return wrapper

    orig_iter = Catalog.iter_vectors

    def iter_vectors(self: Any, *a: Any, **k: Any) -> Any:
        gen = orig_iter(self, *a, **k)
        while True:
            t0 = time.perf_counter()
            try:
                item = next(gen)
            except StopIteration:
                T.add("read vectors (iter_vectors)", time.perf_counter() - t0)
                return
            T.add("read vectors (iter_vectors)", time.perf_counter() - t0)
            yield item

    orig_tx = Catalog.transaction

    @contextmanager
    def transaction(self: Any) -> Any:
        cm = orig_tx(self)
        cm.__enter__()
        try:
            yield
        except BaseException as exc:
            cm.__exit__(type(exc), exc, exc.__traceback__)
            raise
        t0 = time.perf_counter()
        cm.__exit__(None, None, None)
        T.add("COMMIT", time.perf_counter() - t0)

    orig_open = Catalog.open.__func__

    @contextmanager
    def open_(cls: Any, *a: Any, **k: Any) -> Any:
        t0 = time.perf_counter()
        cm = orig_open(cls, *a, **k)
        cat = cm.__enter__()
        T.add("open catalog", time.perf_counter() - t0)
        try:
            yield cat
        except BaseException as exc:
            cm.__exit__(type(exc), exc, exc.__traceback__)
            raise
        t0 = time.perf_counter()
        cm.__exit__(None, None, None)
        T.add("close catalog", time.perf_counter() - t0)

    Catalog.replace_tag_scores = timed("store scores (replace_tag_scores)", Catalog.replace_tag_scores)
    orig_tags = Catalog.tags
    in_score_all = [False]

    def cat_tags(self: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return orig_tags(self)
        finally:
            if in_score_all[0]:
                T.add("cat.tags() (start + final counts)", time.perf_counter() - t0)

    orig_score_all = tg.score_all

    def score_all(*a: Any, **k: Any) -> Any:
        in_score_all[0] = True
        t0 = time.perf_counter()
        try:
            return orig_score_all(*a, **k)
        finally:
            in_score_all[0] = False
            T.add("score_all (total)", time.perf_counter() - t0)

    Catalog.tags = cat_tags
    ModelStore.load = timed("model load", ModelStore.load)
    api_tags = tg  # Library.tag imports these names from photosearch.query.tags at call time
    api_tags.load_taxonomy = timed("load taxonomy", tg.load_taxonomy)
    api_tags.sync_taxonomy = timed("sync taxonomy", tg.sync_taxonomy)
    api_tags.text_directions = timed("text encoding (prompts)", tg.text_directions)
    api_tags.train_probe = timed("train probes", tg.train_probe)
    api_tags.score_all = score_all
    Catalog.iter_vectors = iter_vectors
    Catalog.decisions = timed("decisions", Catalog.decisions)
    Catalog.count_vectors = timed("count_vectors", Catalog.count_vectors)
    Catalog.transaction = transaction
    Catalog.open = classmethod(open_)

    out = {}
    for phase in ("first", "rerun"):
        T.t.clear()
        T.n.clear()
        t0 = time.perf_counter()
        run = api.Library(lib).tag()
        total = time.perf_counter() - t0
        parts = dict(T.t)
        inside = sum(v for k, v in parts.items() if k in (
            "text encoding (prompts)", "read vectors (iter_vectors)", "store scores (replace_tag_scores)",
            "cat.tags() (start + final counts)", "decisions", "train probes"))
        parts["matrix product + sigmoid + rest of score_all"] = parts["score_all (total)"] - inside
        out[phase] = {"total_s": total, "parts": parts, "calls": dict(T.n), "photos": run.photos}
    # text encoding: the text tower's session creation vs encoding the prompts with a warm session
    from photosearch.query.tags import NEUTRAL_PROMPTS, load_taxonomy as _lt

    prompts = [p for t in _lt(None).tags for p in t.prompts] + list(NEUTRAL_PROMPTS)
    fresh = ModelStore(api.Library(lib).paths).load(threads=1)
    t0 = time.perf_counter()
    fresh.encode_text(["a photo"])
    out["text_first_call_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    fresh.encode_text(prompts)
    out["text_warm_prompts_s"] = time.perf_counter() - t0
    out["text_prompts"] = len(prompts)
    # the bare scoring math on the same number of vectors, chunks of 50,000 like score_all
    n = out["first"]["photos"]
    rng = np.random.default_rng(0)
    chunk = rng.standard_normal((min(n, 50_000), DIM)).astype(np.float32)
    W = rng.standard_normal((DIM, 20)).astype(np.float32)
    B = np.zeros(20, np.float32)
    t0 = time.perf_counter()
    done = 0
    while done < n:
        m = min(50_000, n - done)
        tg._sigmoid(chunk[:m] @ W + B)
        done += m
    out["bare_math_s"] = time.perf_counter() - t0
    return out


def run_profile(lib: Path) -> dict[str, Any]:
    restore(lib)
    res = subprocess.run([sys.executable, __file__, "_profile", str(lib)], capture_output=True, text=True,
                         env=env_for_cli())
    if res.returncode != 0:
        raise SystemExit(f"profile child failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def speed(sizes: list[int], reruns: int, cold_runs: int, export_max: int) -> list[dict[str, Any]]:
    rows = []
    for n in sizes:
        lib = WORK / f"tags-lib-{n}"
        if not (lib / ".complete").exists():
            log(f"building a {n:,}-photo library (child process)")
            subprocess.run([sys.executable, __file__, "_build", str(n)], check=True, env=env_for_cli())
        build = json.loads((lib / ".complete").read_text())
        log(f"{n:,}: restoring the pristine catalog; `photosearch tag` first run (load {loadavg()})")
        restore(lib)
        row: dict[str, Any] = {"photos": n, "build_s": build["build_s"],
                               "catalog_mb_pristine": (lib / "catalog.pristine").stat().st_size / 1e6}
        row["tag_first"] = cli_tag(lib, f"{n}-first")
        row["tag_reruns"] = []
        for i in range(reruns):
            log(f"{n:,}: `photosearch tag` re-run {i + 1} (load {loadavg()})")
            row["tag_reruns"].append(cli_tag(lib, f"{n}-rerun{i}"))
        row["catalog_mb_tagged"] = (lib / "catalog.duckdb").stat().st_size / 1e6
        counts = row["tag_first"]["counts"]
        row["beach_tagged"] = counts.get("Beach")
        row["tagged_min_max"] = [min(counts.values()), max(counts.values())] if counts else None
        log(f"{n:,}: `photosearch --tag Beach --json` x{cold_runs} (load {loadavg()})")
        q = cli_cold(lib, ["--tag", "Beach", "--json"], f"{n}-tagq", cold_runs)
        q["results"] = len(json.loads(q.pop("doc"))["results"])
        row["tag_query"] = q
        log(f"{n:,}: `photosearch review --json` x{cold_runs} (load {loadavg()})")
        r = cli_cold(lib, ["review", "--json"], f"{n}-review", cold_runs)
        r["items"] = len(json.loads(r.pop("doc"))["items"])
        row["review"] = r
        if n <= export_max:
            log(f"{n:,}: `photosearch export --csv` (load {loadavg()})")
            row["export"] = cli_export(lib, f"{n}-export")
        log(f"{n:,}: in-process split (child; restores the pristine catalog first)")
        row["profile"] = run_profile(lib)
        rows.append(row)
        print(json.dumps(row, default=str), flush=True)
    return rows


def render_speed(rows: list[dict[str, Any]]) -> list[str]:
    L = []
    w = L.append
    w("| photos | `tag` first run: wall (s) | its JSON `seconds` | peak RSS (MB) | CPU (s) "
      "| `tag` re-run: wall (s), median (each) | its JSON `seconds` | peak RSS (MB) | catalog MB before -> after | other processes (cores) | loadavg (1 min) |")
    w("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        f, rr = r["tag_first"], r["tag_reruns"]
        rw = statistics.median(x["wall_s"] for x in rr) if rr else float("nan")
        ri = statistics.median(x["inner_s"] for x in rr) if rr else float("nan")
        rm = max(x["peak_rss_mb"] for x in rr) if rr else float("nan")
        each = ", ".join(f"{x['wall_s']:.2f}" for x in rr)
        w(f"| {r['photos']:,} | {f['wall_s']:.2f} | {f['inner_s']:.2f} | {f['peak_rss_mb']:.0f} | {f['cpu_s']:.1f} "
          f"| {rw:.2f} ({each}) | {ri:.2f} | {rm:.0f} "
          f"| {r['catalog_mb_pristine']:.0f} -> {r['catalog_mb_tagged']:.0f} "
          f"| {max([f['others_cores']] + [x['others_cores'] for x in rr]):.2f} (max) "
          f"| {', '.join(x['loadavg'].split()[0] for x in [f] + rr)} |")
    w("")
    keys = ["open catalog", "load taxonomy", "sync taxonomy", "model load", "count_vectors", "text encoding (prompts)",
            "decisions", "read vectors (iter_vectors)", "matrix product + sigmoid + rest of score_all",
            "store scores (replace_tag_scores)", "cat.tags() (start + final counts)", "COMMIT", "close catalog"]
    head = "| part of Library.tag() (s) | " + " | ".join(f"{r['photos']:,} first | {r['photos']:,} re-run" for r in rows)
    w(head + " |")
    w("|---|" + "---|---|" * len(rows))
    for k in keys + ["Library.tag() total"]:
        cells = []
        for r in rows:
            for ph in ("first", "rerun"):
                p = r["profile"][ph]
                v = p["total_s"] if k == "Library.tag() total" else p["parts"].get(k)
                cells.append("-" if v is None else f"{v:.3f}")
        w(f"| {k} | " + " | ".join(cells) + " |")
    w("| for reference: bare `sigmoid(X @ W + b)`, 20 tags, chunks of 50k | " + " | ".join(
        f"{r['profile']['bare_math_s']:.3f} | " for r in rows) + "|")
    w("| for reference: text tower, first call (session creation) / 47 prompts warm | " + " | ".join(
        f"{r['profile']['text_first_call_s']:.3f} / {r['profile']['text_warm_prompts_s']:.3f} | " for r in rows) + "|")
    w("")
    w("| photos | `--tag Beach --json` (s) | peak RSS (MB) | results | Beach-tagged photos | `review --json` (s) "
      "| peak RSS (MB) | items | `export --csv` (s) | peak RSS (MB) | rows | CSV MB | loadavg (1 min) |")
    w("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        q, rv, e = r["tag_query"], r["review"], r.get("export")
        ex = (f"{e['wall_s']:.2f} | {e['peak_rss_mb']:.0f} | {e['rows']:,} | {e['mb']:.1f}" if e else "- | - | - | -")
        qs = ", ".join(f"{x:.2f}" for x in q["wall_all"])
        w(f"| {r['photos']:,} | {q['wall_s']:.2f} ({qs}) | {q['peak_rss_mb']:.0f} | {q['results']} | {r['beach_tagged']:,} "
          f"| {rv['wall_s']:.2f} ({', '.join(f'{x:.2f}' for x in rv['wall_all'])}) | {rv['peak_rss_mb']:.0f} "
          f"| {rv['items']} | {ex} | {q['loadavg'].split()[0]}, {rv['loadavg'].split()[0]} |")
    return L


# =================================================================================================
# probe
# =================================================================================================

def labels() -> dict[str, str]:
    with open(PHOTO_SRC / "labels.csv", newline="", encoding="utf-8") as f:
        return {r["file"]: r["label"] for r in csv.DictReader(f)}


def make_variant(src: Path, rng: np.random.Generator) -> Any:
    """One realistic re-take of a photo: crop, mirror, small rotation, brightness, resize (JPEG quality is
    chosen by the caller)."""
    from PIL import Image, ImageEnhance, ImageOps

    img = ImageOps.exif_transpose(Image.open(src)).convert("RGB")
    if rng.random() < 0.5:
        angle = float(rng.uniform(-6, 6))
        w0, h0 = img.size
        img = img.rotate(angle, resample=Image.Resampling.BICUBIC, expand=False)
        # keep the inside: no black corners
        a = abs(np.deg2rad(angle))
        k = 1 / (np.cos(a) + np.sin(a) * max(w0 / h0, h0 / w0))
        cw, ch = int(w0 * k), int(h0 * k)
        img = img.crop(((w0 - cw) // 2, (h0 - ch) // 2, (w0 - cw) // 2 + cw, (h0 - ch) // 2 + ch))
    w, h = img.size
    fx, fy = rng.uniform(0.6, 0.9), rng.uniform(0.6, 0.9)
    cw, ch = max(16, int(w * fx)), max(16, int(h * fy))
    x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    img = img.crop((x, y, x + cw, y + ch))
    if rng.random() < 0.5:
        img = ImageOps.mirror(img)
    img = ImageEnhance.Brightness(img).enhance(float(rng.uniform(0.7, 1.3)))
    scale = float(rng.uniform(0.6, 1.0))
    img = img.resize((max(16, int(img.width * scale)), max(16, int(img.height * scale))), Image.Resampling.LANCZOS)
    return img


def prepare_probe_photos(variants: int) -> Path:
    folder = WORK / f"tags-probe-photos-v{variants}-s0"
    done = folder / ".complete"
    if done.exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    srcs = sorted(PHOTO_SRC.glob("*.jpg"))
    for i, src in enumerate(srcs):
        rng = np.random.default_rng(1000 + i)
        shutil.copyfile(src, folder / f"{src.stem}__orig.jpg")
        for v in range(variants):
            img = make_variant(src, rng)
            img.save(folder / f"{src.stem}__v{v:02d}.jpg", quality=int(rng.integers(40, 91)))
    done.write_text(json.dumps({"sources": len(srcs), "variants": variants}))
    return folder


def probe_library(photos: Path) -> Path:
    from photosearch.api import Library

    lib = WORK / f"tags-probe-lib-{photos.name}"
    done = lib / ".complete"
    if done.exists():
        return lib
    shutil.rmtree(lib, ignore_errors=True)
    lib.mkdir(parents=True)
    shutil.copytree(model_lib() / "models", lib / "models")
    files = sorted(photos.glob("*.jpg"))
    t0 = time.perf_counter()
    summary = Library(lib).index([photos], faces=False)
    dt = time.perf_counter() - t0
    if summary.indexed + summary.reused != len(files) or summary.skipped:
        raise SystemExit(f"indexed {summary.indexed} (+{summary.reused} reused) of {len(files)}; "
                         f"skipped {summary.skipped[:3]}")
    done.write_text(json.dumps({"photos": len(files), "index_s": dt}))
    return lib


def average_precision(scores: np.ndarray, pos: np.ndarray) -> float:
    order = np.argsort(-scores, kind="stable")
    hits = pos[order].astype(np.float64)
    if hits.sum() == 0:
        return float("nan")
    prec = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float((prec * hits).sum() / hits.sum())


def precision_at(scores: np.ndarray, pos: np.ndarray, k: int) -> float:
    order = np.argsort(-scores, kind="stable")[:k]
    return float(pos[order].mean())


TARGETS_DEFAULT = ["skimage_chelsea", "skimage_coffee", "caer_puppy", "foolbox_imagenet_04_949", "sklearn_flower",
                   "caer_guitar", "foolbox_imagenet_16_251", "skimage_rocket", "foolbox_imagenet_13_471",
                   "caer_snow", "sklearn_china", "foolbox_imagenet_08_915"]


def prior_ablation(clip: Any, name: str, lib: Path, pos: np.ndarray, neg: np.ndarray, vec_of: dict[int, np.ndarray],
                   Hv: np.ndarray, held_pos: np.ndarray, priors: list[float]) -> dict[str, dict[str, float]]:
    """The product's train_probe, offline on the same decisions, with PROBE_PRIOR set to each of ``priors``
    (1.0 is the product's; its held-out AP must match the stored scores')."""
    import photosearch.query.tags as tg
    from photosearch.store.catalog import Catalog

    with Catalog.open(lib / "catalog.duckdb", read_only=True) as cat:
        row = next(t for t in cat.tags() if t["name"] == name)
    directions, neutral = tg.text_directions(clip, [row])
    w0, b0 = tg.zero_shot_weights(directions[0], neutral)
    ids = sorted([int(i) for i in pos] + [int(i) for i in neg])
    X = np.stack([vec_of[i] for i in ids])
    pos_set = {int(i) for i in pos}
    y = np.array([1.0 if i in pos_set else 0.0 for i in ids])
    saved = tg.PROBE_PRIOR
    out = {}
    try:
        for prior in priors:
            tg.PROBE_PRIOR = prior
            w, b = tg.train_probe(X, y, w0, b0)
            s = tg._sigmoid(Hv @ w + b).astype(np.float64)
            out[str(prior)] = {"ap": average_precision(s, held_pos), "p10": precision_at(s, held_pos, 10),
                               "n_ge06": int((s >= 0.6).sum()), "pos_ge06": int((s >= 0.6)[held_pos].sum()),
                               "n_ge09": int((s >= 0.9).sum()), "pos_ge09": int((s >= 0.9)[held_pos].sum()),
                               "w_shift": float(np.linalg.norm(w - w0) / max(np.linalg.norm(w0), 1e-12))}
    finally:
        tg.PROBE_PRIOR = saved
    return out


def tag_name(label: str) -> str:
    keep = "".join(ch if ch.isalnum() or ch in " -'" else " " for ch in label)
    return "bench " + " ".join(keep.split())[:60]


def probe(variants: int, n_targets: int, seeds: int, ks: list[int], pool: int,
          priors: list[float]) -> dict[str, Any]:
    from photosearch.api import Library
    from photosearch.store.catalog import Catalog

    photos = prepare_probe_photos(variants)
    log(f"probe: {len(list(photos.glob('*.jpg')))} photos in {photos}")
    lib = probe_library(photos)
    info = json.loads((lib / ".complete").read_text())
    log(f"probe: library {lib} ({info['photos']} photos, indexed in {info['index_s']:.0f} s)")
    L = Library(lib)
    clip = L.models.load(threads=1)
    with Catalog.open(lib / "catalog.duckdb", read_only=True) as cat:
        ids, vecs = cat.vectors(clip.name)
        paths = {pid: r["path"] for pid, r in cat.photos_by_ids(ids.tolist()).items()}
    vec_of = {int(i): v for i, v in zip(ids, vecs)}
    source_of = {pid: Path(p).name.split("__")[0] for pid, p in paths.items()}
    lab = labels()
    targets = TARGETS_DEFAULT[:n_targets]
    all_ids = np.array(sorted(paths), dtype=np.int64)
    # the whole library's CLIP vectors are alike under random weights: how alike (context for the notes)
    V = np.stack([vec_of[int(i)] for i in all_ids])
    sims = V @ V.T
    same = np.array([[source_of[int(a)] == source_of[int(b)] for b in all_ids] for a in all_ids])
    off = ~np.eye(len(all_ids), dtype=bool)
    context = {"cos_same_source_mean": float(sims[same & off].mean()), "cos_other_mean": float(sims[~same].mean()),
               "cos_other_p99": float(np.quantile(sims[~same], 0.99))}
    trials = []
    t_tag = []
    for target in targets:
        name = tag_name(lab[f"{target}.jpg"])
        pos_mask_all = np.array([source_of[int(i)] == target for i in all_ids])
        for seed in range(seeds):
            rng = np.random.default_rng(seed * 7919 + TARGETS_DEFAULT.index(target))
            pos_ids = rng.permutation(all_ids[pos_mask_all])[:pool]
            neg_ids = rng.permutation(all_ids[~pos_mask_all])[:pool]
            decided = set(pos_ids.tolist()) | set(neg_ids.tolist())
            held = np.array([i for i in all_ids if int(i) not in decided], dtype=np.int64)
            held_pos = np.array([source_of[int(i)] == target for i in held])
            # create the user tag (accept one photo, then forget the decision): k=0 scores it zero-shot
            L.tag_photos(name, [paths[int(pos_ids[0])]], state="accepted")
            for k in ks:
                L.tag_photos(name, [paths[int(i)] for i in sorted(decided)], state=None)
                if k:
                    L.tag_photos(name, [paths[int(i)] for i in pos_ids[:k]], state="accepted")
                    L.tag_photos(name, [paths[int(i)] for i in neg_ids[:k]], state="rejected")
                t0 = time.perf_counter()
                run = L.tag(only=[name], model=clip)
                t_tag.append(time.perf_counter() - t0)
                with Catalog.open(lib / "catalog.duckdb", read_only=True) as cat:
                    got = dict(cat.con.execute("SELECT photo_id, score FROM tag_scores WHERE tag = ?",
                                               [name]).fetchall())
                    scorer = cat.con.execute("SELECT any_value(scorer) FROM tag_scores WHERE tag = ?",
                                             [name]).fetchone()[0]
                s = np.array([got[int(i)] for i in held], dtype=np.float64)
                trial = {"target": target, "seed": seed, "k": k, "scorer": scorer, "probe": name in run.probes,
                         "held": len(held), "held_pos": int(held_pos.sum()),
                         "ap": average_precision(s, held_pos), "p10": precision_at(s, held_pos, 10),
                         "n_ge06": int((s >= 0.6).sum()), "pos_ge06": int((s >= 0.6)[held_pos].sum()),
                         "n_ge09": int((s >= 0.9).sum()), "pos_ge09": int((s >= 0.9)[held_pos].sum()),
                         "score_pos_mean": float(s[held_pos].mean()), "score_neg_mean": float(s[~held_pos].mean()),
                         "score_neg_p99": float(np.quantile(s[~held_pos], 0.99))}
                if k:
                    Hv = np.stack([vec_of[int(i)] for i in held])
                    if k >= 2 and priors:
                        trial["prior"] = prior_ablation(clip, name, lib, pos_ids[:k], neg_ids[:k], vec_of, Hv,
                                                        held_pos, priors)
                    cp = np.mean([vec_of[int(i)] for i in pos_ids[:k]], axis=0)
                    cn = np.mean([vec_of[int(i)] for i in neg_ids[:k]], axis=0)
                    c = Hv @ cp / np.linalg.norm(cp) - Hv @ cn / np.linalg.norm(cn)
                    trial["centroid_ap"] = average_precision(c, held_pos)
                    trial["centroid_p10"] = precision_at(c, held_pos, 10)
                trials.append(trial)
            L.tag_photos(name, [paths[int(i)] for i in sorted(decided)], state=None)
            log(f"probe: {target} seed {seed}: AP by k " + ", ".join(
                f"{t['k']}:{t['ap']:.3f}" for t in trials[-len(ks):]))
    summary = []
    for k in ks:
        ts = [t for t in trials if t["k"] == k]
        n06, p06 = sum(t["n_ge06"] for t in ts), sum(t["pos_ge06"] for t in ts)
        n09, p09 = sum(t["n_ge09"] for t in ts), sum(t["pos_ge09"] for t in ts)
        hp = sum(t["held_pos"] for t in ts)
        row = {"k": k, "trials": len(ts), "scorer": sorted({t["scorer"] for t in ts}),
               "ap": statistics.mean(t["ap"] for t in ts), "ap_sd": statistics.pstdev(t["ap"] for t in ts),
               "ap_median": statistics.median(t["ap"] for t in ts),
               "p10": statistics.mean(t["p10"] for t in ts),
               "chance_ap": statistics.mean(t["held_pos"] / t["held"] for t in ts),
               "held": ts[0]["held"], "held_pos": ts[0]["held_pos"],
               "ge06": n06, "ge06_precision": p06 / n06 if n06 else None, "ge06_recall": p06 / hp,
               "ge09": n09, "ge09_precision": p09 / n09 if n09 else None, "ge09_recall": p09 / hp,
               "score_pos_mean": statistics.mean(t["score_pos_mean"] for t in ts),
               "score_neg_mean": statistics.mean(t["score_neg_mean"] for t in ts),
               "score_neg_p99": statistics.mean(t["score_neg_p99"] for t in ts)}
        if k:
            row["centroid_ap"] = statistics.mean(t["centroid_ap"] for t in ts)
            row["centroid_p10"] = statistics.mean(t["centroid_p10"] for t in ts)
        if ts and "prior" in ts[0]:
            row["prior"] = {}
            for pr in ts[0]["prior"]:
                xs = [t["prior"][pr] for t in ts]
                n06, n09 = sum(x["n_ge06"] for x in xs), sum(x["n_ge09"] for x in xs)
                row["prior"][pr] = {
                    "ap": statistics.mean(x["ap"] for x in xs), "p10": statistics.mean(x["p10"] for x in xs),
                    "ge06_precision": sum(x["pos_ge06"] for x in xs) / n06 if n06 else None,
                    "ge06_recall": sum(x["pos_ge06"] for x in xs) / hp,
                    "ge09_precision": sum(x["pos_ge09"] for x in xs) / n09 if n09 else None,
                    "ge09_recall": sum(x["pos_ge09"] for x in xs) / hp,
                    "w_shift": statistics.mean(x["w_shift"] for x in xs),
                    "max_ap_diff_vs_stored": max(abs(x["ap"] - t["ap"]) for x, t in zip(xs, ts))}
        summary.append(row)
    return {"photos": info["photos"], "index_s": info["index_s"], "variants": variants, "targets": targets,
            "seeds": seeds, "pool": pool, "summary": summary, "trials": trials, "context": context,
            "tag_call_s_median": statistics.median(t_tag)}


def render_probe(res: dict[str, Any]) -> list[str]:
    L = []
    w = L.append
    s0 = res["summary"][0]
    w(f"{res['photos']} photos ({len(res['targets'])} targets x {res['seeds']} seeds; per trial {s0['held']} held-out "
      f"photos of which {s0['held_pos']} positives)")
    w("")
    w("| k accepted + k rejected | scorer | AP (mean +- sd) | AP median | P@10 | centroid AP | centroid P@10 | chance AP "
      "| score >= 0.6: photos / precision / recall | score >= 0.9: photos / precision / recall "
      "| mean score pos / neg (neg p99) |")
    w("|---|---|---|---|---|---|---|---|---|---|---|")

    def cal(n: int, p: float | None, r: float) -> str:
        return f"{n} / {'-' if p is None else f'{p:.2f}'} / {r:.2f}"

    for r in res["summary"]:
        cen = (f"{r['centroid_ap']:.3f} | {r['centroid_p10']:.2f}" if "centroid_ap" in r else "- | -")
        w(f"| {r['k']} | {', '.join(r['scorer'])} | {r['ap']:.3f} +- {r['ap_sd']:.3f} | {r['ap_median']:.3f} | {r['p10']:.2f} "
          f"| {cen} "
          f"| {r['chance_ap']:.3f} | {cal(r['ge06'], r['ge06_precision'], r['ge06_recall'])} "
          f"| {cal(r['ge09'], r['ge09_precision'], r['ge09_recall'])} "
          f"| {r['score_pos_mean']:.3f} / {r['score_neg_mean']:.3f} ({r['score_neg_p99']:.3f}) |")
    pri = [r for r in res["summary"] if "prior" in r]
    if pri:
        w("")
        w("Ablation (offline, same decisions and held-out photos): the product's train_probe with PROBE_PRIOR patched "
          "(1.0 = the product's).")
        w("")
        w("| k | PROBE_PRIOR | AP | P@10 | >= 0.6: precision / recall | >= 0.9: precision / recall "
          "| mean \\|w - w0\\| / \\|w0\\| | max \\|AP - stored AP\\| |")
        w("|---|---|---|---|---|---|---|---|")

        def f(v: float | None) -> str:
            return "-" if v is None else f"{v:.2f}"

        for r in pri:
            for pr, x in r["prior"].items():
                w(f"| {r['k']} | {pr} | {x['ap']:.3f} | {x['p10']:.2f} | {f(x['ge06_precision'])} / {f(x['ge06_recall'])} "
                  f"| {f(x['ge09_precision'])} / {f(x['ge09_recall'])} | {x['w_shift']:.3f} "
                  f"| {x['max_ap_diff_vs_stored']:.4f} |")
    c = res["context"]
    w("")
    w(f"cosine between stored vectors: same source photo {c['cos_same_source_mean']:.3f}, different photos "
      f"{c['cos_other_mean']:.3f} (p99 {c['cos_other_p99']:.3f}); Library.tag(only=[tag]) on this library: "
      f"{res['tag_call_s_median'] * 1000:.0f} ms median")
    return L


# =================================================================================================

def product_version() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=HERE.parent).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "photosearch"], capture_output=True, text=True,
                               cwd=HERE.parent).stdout.strip()
        return head + (" (+ uncommitted changes in photosearch/)" if dirty else "")
    except OSError:
        return "?"


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_build":
        build_library(int(sys.argv[2]))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "_profile":
        print(json.dumps(profile_child(Path(sys.argv[2]))))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["speed", "probe", "all"])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--reruns", type=int, default=2, help="`photosearch tag` re-runs per size after the first run")
    ap.add_argument("--cold-runs", type=int, default=3, help="fresh processes per query, after one warm-up")
    ap.add_argument("--export-max", type=int, default=1_000_000, help="time `export --csv` up to this size")
    ap.add_argument("--variants", type=int, default=20, help="variants per photo (probe)")
    ap.add_argument("--targets", type=int, default=8)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--ks", type=int, nargs="+", default=[0, 1, 2, 4, 8])
    ap.add_argument("--priors", type=float, nargs="*", default=[1.0, 0.1, 0.01],
                    help="PROBE_PRIOR values for the offline ablation (1.0 = the product's; none: skip it)")
    ap.add_argument("--json-out", type=Path)
    args = ap.parse_args()
    meta = {"started_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()), "product": product_version(),
            "loadavg_start": loadavg(), "cpus": os.cpu_count()}
    log(f"product {meta['product']}, load {meta['loadavg_start']}")
    t0 = time.perf_counter()
    res: dict[str, Any] = {"meta": meta}
    lines: list[str] = []
    if args.what in ("speed", "all"):
        res["speed"] = speed(args.sizes, args.reruns, args.cold_runs, args.export_max)
        lines += ["", "SPEED", ""] + render_speed(res["speed"])
    if args.what in ("probe", "all"):
        res["probe"] = probe(args.variants, args.targets, args.seeds, args.ks, max(args.ks), args.priors)
        lines += ["", "PROBE", ""] + render_probe(res["probe"])
    meta["loadavg_end"] = loadavg()
    meta["finished_utc"] = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    meta["seconds"] = time.perf_counter() - t0
    lines += ["", f"started {meta['started_utc']} UTC, finished {meta['finished_utc']} UTC ({meta['seconds']:.0f} s), "
                  f"product {meta['product']}, loadavg {meta['loadavg_start']} -> {meta['loadavg_end']}"]
    print("\n".join(lines))
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(res, indent=1, default=str))


if __name__ == "__main__":
    main()
