"""`sync --apply` speed: 1,000 12 MP JPEGs with 3 keywords and 2 people each (goal: under 60 s).

    python benchmarks/bench_sync.py --n 1000                      # round A (the writer alone)
    python benchmarks/bench_sync.py --n 1000 --end-to-end         # and round B (the CLI)
    python benchmarks/bench_sync.py --n 1000 --end-to-end --profile-e2e --repeat 2

Photos: N camera-like 12 MP JPEGs (4000x3000, q92, 2.5-4 MB each, as a 12 MP camera writes
them), made once and cached in benchmarks/work/sync/photos. Like bench_film.py's
``photos_12mp`` they are the real photos of ../shared/data/photos and faces upscaled to
4000x3000, with an EXIF block (Make, Model, DateTimeOriginal, exposure, orientation 1); unlike
it they carry a fixed luma grain (sigma 6, shifted per photo) so that the file sizes are a
camera's (photos_12mp's smooth upscales are 0.3-1.5 MB) and their dates stay valid past 372
photos. They have no maker notes and no EXIF thumbnail. Every round copies them (shutil.copy2)
to a fresh folder first, so each round writes into untouched files; the copy is not timed and
leaves the files in the page cache (a warm cache, as after an `index`).

Round A, the writer alone: ``photosearch.media.xmp.write(path, update)`` for each file in one
process, ``update`` being what photosearch.actions.sync builds for a photo with 3 accepted tags
(Travel|Beach, Nature|Mountains, Events|Birthday) and 2 named people (Alice Martin, Bob Chen,
face boxes on the displayed photo): ``_combine(people_update(faces, photo), tags_update(tags,
parents, accepted_only=False))``, as ``sync.updates`` does. Wall time of the whole loop, per file
(median, p95) and projected to 1,000. Then cProfile over --profile-n more fresh files: where one
write's time goes (temp copy, exiv2 open/read/modify, verification re-read, the image-data digest,
fsync, rename).

Round B, end to end (--end-to-end): a real library over the first --e2e-n photos (default N)
in benchmarks/work/sync/e2e/photos, indexed with Library.index(faces=False, ocr=None) and the
deterministic fake CLIP model (photosearch/models/fakes.py, as the tests' ``library`` fixture;
no weights needed); the 3 tags accepted with the real CLI (`photosearch tag add Beach|Mountains|
Birthday PHOTOS...`). Synthetic: the faces. The photos show no detectable faces, so 2 face rows
per photo (the same boxes as round A, source "detected", no vector) and 2 named people (Alice
Martin, Bob Chen) are inserted with the store API (Catalog.create_person, then add_face_scans
with person_id set and assigned "user"): what sync reads (Catalog.named_faces_by_photo) is then
the same as for detected faces named with `people name`.
That library is built once and kept (benchmarks/work/sync/e2e-template-N); each round restores
the photos and a copy of it, then times, each in a fresh process (bench_video's launcher: wall,
CPU, peak RSS), `photosearch sync --json` (the plan alone, a dry run) and
`photosearch sync --apply --json` (plan, then per file: journal intent and a backup copy for
`undo`, the writer, journal done, the catalog row's new hash/size/mtime). With --profile-e2e,
Library.sync(apply=True) runs once more in this process under cProfile, by step.

After each round, --check sampled files (spread over the set) are read back with
`exiftool -j -struct -XMP:all -IPTC:Keywords -EXIF:Make -EXIF:DateTimeOriginal`: every keyword,
hierarchical keyword, PersonInImage and MWG face region is there, the EXIF is kept, and the
decoded pixels equal the original's.

One JSON document on stdout; progress on stderr. Scratch data goes to benchmarks/work/sync/
(ignored by git): the cached photos (~3.7 GB for 1,000) and round B's template library stay; each
round's copies (and sync's journal backups, another copy of every photo) are removed after the
checks unless --keep.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "data"
WORK = HERE / "work" / "sync"
sys.path.insert(0, str(HERE))

#: (tag, parent) of the built-in taxonomy: each is written with its parent chain.
TAGS = [("Beach", "Travel"), ("Mountains", "Nature"), ("Birthday", "Events")]
#: (name, displayed box x, y, w, h normalized), the same for every photo.
PEOPLE = [("Alice Martin", (0.20, 0.25, 0.12, 0.16)), ("Bob Chen", (0.60, 0.30, 0.10, 0.14))]
WIDTH, HEIGHT = 4000, 3000
GOAL_S = 60.0


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- photos -------------------------------------------------------------------------------------

_grain: np.ndarray | None = None


def _camera_jpeg(job: tuple[int, str, str]) -> str:
    """One 12 MP camera-like JPEG (run in a worker process)."""
    from PIL import Image

    global _grain
    i, src, dst = job
    if _grain is None:
        rng = np.random.default_rng(0)
        _grain = (rng.standard_normal((HEIGHT, WIDTH), dtype=np.float32) * 6).astype(np.int8)[..., None]
    img = Image.open(src).convert("RGB").resize((WIDTH, HEIGHT), Image.Resampling.BICUBIC)
    a = np.asarray(img).astype(np.int16)
    a += np.roll(_grain, (i * 7919) % WIDTH, axis=1)
    np.clip(a, 0, 255, out=a)
    exif = Image.Exif()
    exif[0x010F] = "Photosearch"        # Make
    exif[0x0110] = "Bench 12MP"         # Model
    exif[0x0112] = 1                    # Orientation
    exif[0x0131] = "Bench firmware 1.0"  # Software
    ifd = exif.get_ifd(0x8769)
    day, minute = divmod(i, 600)
    ifd[0x9003] = f"2024:{1 + day // 28:02d}:{1 + day % 28:02d} {8 + minute // 60:02d}:{minute % 60:02d}:00"
    ifd[0x829A] = 1 / 250               # ExposureTime
    ifd[0x829D] = 2.8                   # FNumber
    ifd[0x8827] = 100                   # ISO
    ifd[0xA434] = "Bench 24-70mm"       # LensModel
    tmp = Path(dst).with_suffix(".part.jpg")
    Image.fromarray(a.astype(np.uint8)).save(tmp, quality=92, exif=exif.tobytes())
    tmp.rename(dst)
    return dst


def camera_jpegs(folder: Path, n: int, workers: int) -> list[Path]:
    """N cached 12 MP camera-like JPEGs (made once, in ``workers`` processes)."""
    folder.mkdir(parents=True, exist_ok=True)
    sources = sorted((SHARED / "photos").glob("*.jpg")) + sorted((SHARED / "faces").glob("*.jpg"))
    if not sources:
        raise SystemExit(f"no source photos in {SHARED}")
    out = [folder / f"IMG_{i:04d}.jpg" for i in range(n)]
    jobs = [(i, str(sources[i % len(sources)]), str(p)) for i, p in enumerate(out) if not p.exists()]
    if jobs:
        log(f"making {len(jobs)} 12 MP JPEGs in {folder} ({workers} processes; once)")
        t0 = time.monotonic()
        if workers > 1:
            import multiprocessing

            with multiprocessing.get_context("fork").Pool(workers) as pool:
                for k, _ in enumerate(pool.imap_unordered(_camera_jpeg, jobs, chunksize=4), 1):
                    if k % 100 == 0:
                        log(f"  {k}/{len(jobs)}")
        else:
            for job in jobs:
                _camera_jpeg(job)
        log(f"made them in {time.monotonic() - t0:.0f} s")
    return out


def fresh_copy(files: list[Path], dest: Path) -> tuple[list[Path], float]:
    """Copies of ``files`` in an emptied ``dest`` (mtimes kept); the seconds it took."""
    t0 = time.monotonic()
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    out = []
    for f in files:
        shutil.copy2(f, dest / f.name)
        out.append(dest / f.name)
    return out, time.monotonic() - t0


# -- the update sync builds -------------------------------------------------------------------

def sync_update() -> Any:
    """What photosearch.actions.sync.updates builds for a photo with 3 accepted tags and 2 named people."""
    from photosearch.actions.sync import _combine, people_update, tags_update
    from photosearch.media.xmp import MetadataUpdate

    faces = [{"person": name, "x": b[0], "y": b[1], "w": b[2], "h": b[3]} for name, b in PEOPLE]
    photo = {"orientation": 1, "width": WIDTH, "height": HEIGHT}
    tags = [{"tag": t, "state": "accepted", "on": True, "score": None} for t, _ in TAGS]
    parents: dict[str, str | None] = {t: p for t, p in TAGS} | {p: None for _, p in TAGS}
    u = MetadataUpdate()
    u = _combine(u, people_update(faces, photo))
    return _combine(u, tags_update(tags, parents, False))


# -- checks -----------------------------------------------------------------------------------

def _as_list(v: Any) -> list:
    return [] if v is None else v if isinstance(v, list) else [v]


def check(files: list[Path], originals: dict[str, Path], sample: int) -> dict:
    """exiftool reads the keywords, people and regions back from a sample; EXIF and pixels are kept."""
    from PIL import Image

    if sample <= 0 or not files:
        return {"checked": 0}
    step = max(1, len(files) // sample)
    picked = files[::step][:sample]
    out = subprocess.run(["exiftool", "-j", "-struct", "-XMP:all", "-IPTC:Keywords", "-EXIF:Make",
                          "-EXIF:DateTimeOriginal", *map(str, picked)], capture_output=True, text=True)
    docs = json.loads(out.stdout or "[]")
    names = [n for n, _ in PEOPLE]
    flat = {x for t, p in TAGS for x in (t, p)} | set(names)
    hier = {f"{p}|{t}" for t, p in TAGS} | {f"People|{n}" for n in names}
    problems = []
    for doc in docs:
        f = Path(doc["SourceFile"])
        orig = originals[f.name]
        miss = []
        if not flat <= set(_as_list(doc.get("Subject"))):
            miss.append(f"Subject {sorted(flat - set(_as_list(doc.get('Subject'))))}")
        if not hier <= set(_as_list(doc.get("HierarchicalSubject"))):
            miss.append("HierarchicalSubject")
        if not {h.replace("|", "/") for h in hier} <= set(_as_list(doc.get("TagsList"))):
            miss.append("TagsList")
        if not set(names) <= set(_as_list(doc.get("PersonInImage"))):
            miss.append("PersonInImage")
        regions = (doc.get("RegionInfo") or {}).get("RegionList") or []
        if sorted(r.get("Name") for r in regions) != sorted(names):
            miss.append(f"RegionInfo names {[r.get('Name') for r in regions]}")
        if not flat <= {str(k) for k in _as_list(doc.get("Keywords"))}:
            miss.append("IPTC Keywords")
        if doc.get("Make") != "Photosearch" or not doc.get("DateTimeOriginal"):
            miss.append("EXIF lost")
        with Image.open(f) as a, Image.open(orig) as b:
            if a.tobytes() != b.tobytes():
                miss.append("pixels changed")
        if miss:
            problems.append({"file": f.name, "missing": miss})
    if len(docs) != len(picked):
        problems.append({"exiftool": f"read {len(docs)} of {len(picked)} files", "stderr": out.stderr[-500:]})
    return {"checked": len(picked), "ok": not problems, "problems": problems}


# -- round A ----------------------------------------------------------------------------------

def _write_with_retry(path: Path, update: Any, retries: int) -> Any:
    """xmp.write; an error other than WriteError (the writer being edited under us) is retried."""
    from photosearch.media import xmp

    for attempt in range(retries + 1):
        try:
            return xmp.write(path, update)
        except xmp.WriteError:
            raise
        except Exception as exc:  # noqa: BLE001
            if attempt == retries:
                raise
            log(f"  {path.name}: {type(exc).__name__}: {exc}; retrying in 60 s")
            time.sleep(60)
    raise AssertionError


def round_a(args: argparse.Namespace, photos: list[Path]) -> dict:
    from photosearch.media import xmp

    update = sync_update()
    originals = {p.name: p for p in photos}
    rounds = []
    for r in range(args.repeat):
        files, copy_s = fresh_copy(photos, WORK / "round-a")
        log(f"round A {r + 1}/{args.repeat}: copied {len(files)} photos in {copy_s:.1f} s (not timed); writing")
        times, failed, written = [], [], 0
        c0, t0 = time.process_time(), time.perf_counter()
        for k, f in enumerate(files, 1):
            t = time.perf_counter()
            try:
                res = _write_with_retry(f, update, args.retries)
            except xmp.WriteError as exc:
                failed.append({"file": f.name, "error": str(exc)})
            else:
                written += res.changed and not res.sidecar
            times.append(time.perf_counter() - t)
            if k % 100 == 0:
                log(f"  {k}/{len(files)}: {(time.perf_counter() - t0) / k * 1000:.0f} ms a file so far")
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        ms = sorted(x * 1000 for x in times)
        rec = {"files": len(files), "written_in_file": written, "failed": len(failed), "failures": failed[:5],
               "total_s": wall, "cpu_s": cpu, "per_file_ms_mean": wall / len(files) * 1000,
               "per_file_ms_median": statistics.median(ms), "per_file_ms_p95": ms[int(0.95 * (len(ms) - 1))],
               "per_file_ms_max": ms[-1], "projected_1000_s": wall / len(files) * 1000, "copy_s_untimed": copy_s}
        rec["check"] = check(files, originals, args.check)
        log(f"round A {r + 1}: {wall:.1f} s for {len(files)} files ({rec['per_file_ms_mean']:.0f} ms a file, "
            f"median {rec['per_file_ms_median']:.0f}, p95 {rec['per_file_ms_p95']:.0f}; CPU {cpu:.1f} s); "
            f"check ok: {rec['check'].get('ok')}")
        rounds.append(rec)
        if not args.keep:
            shutil.rmtree(WORK / "round-a", ignore_errors=True)
    best = min(rounds, key=lambda x: x["total_s"])
    med = statistics.median(x["projected_1000_s"] for x in rounds)
    return {"rounds": rounds, "projected_1000_s_median": med, "goal_s": GOAL_S, "meets_goal": med < GOAL_S,
            "per_file_ms_best": best["per_file_ms_mean"],
            "file_mb_mean": statistics.fmean(p.stat().st_size for p in photos) / 1e6}


#: Steps of one write, by the function (name as pstats shows it) that does each; cumulative
#: seconds, so nested ones overlap (e.g. _read_xmp includes its exiv2 open and read).
STEPS = {
    "target (format, sidecar, access checks)": ["_target"],
    "copy to temp (shutil.copy2)": ["copy2"],
    "exiv2 open (all opens)": ["__init__ @pyexiv2"],
    "exiv2 read_xmp (all)": ["read_xmp @pyexiv2"],
    "exiv2 read_iptc (all)": ["read_iptc @pyexiv2"],
    "exiv2 read_exif (all)": ["read_exif @pyexiv2"],
    "photo EXIF read (_read_exif)": ["_read_exif"],
    "merge (_merge)": ["_merge"],
    "exiv2 modify_xmp": ["modify_xmp @pyexiv2"],
    "exiv2 read_raw_xmp": ["read_raw_xmp @pyexiv2"],
    "Bag fix (_bags)": ["_bags"],
    "exiv2 modify_raw_xmp": ["modify_raw_xmp @pyexiv2"],
    "exiv2 modify_iptc": ["modify_iptc @pyexiv2"],
    "exiv2 close": ["close @pyexiv2"],
    "IPTC digest fix (_fix_iptc_digest)": ["_fix_iptc_digest"],
    "verify: re-read XMP (_read_xmp)": ["_read_xmp"],
    "verify: re-read IPTC (_read_iptc)": ["_read_iptc"],
    "verify: image-data digest (_image_digest, both files)": ["_image_digest"],
    "  of which file reads (read_bytes)": ["read_bytes"],
    "  of which SHA-256": ["<method 'update' of '_hashlib.HASH' objects>", "<built-in method _hashlib.openssl_sha256>"],
    "  of which pixel decode (_pixels_digest)": ["_pixels_digest"],
    "fsync (file + folder)": ["<built-in method posix.fsync>"],
    "rename (os.replace)": ["<built-in method posix.replace>"],
    "utime (keep mtime)": ["<built-in method posix.utime>"],
}


def _step_table(st: pstats.Stats, steps: dict[str, list[str]], n: int) -> dict:
    """Per-file cumulative ms and calls of each step's functions (``name`` or ``name @file-part``)."""

    def match(key: tuple[str, int, str], pattern: str) -> bool:
        fn, _, func = key
        name, _, where = pattern.partition(" @")
        return func == name and (not where or where in fn)

    out = {}
    for label, patterns in steps.items():
        hits = [v for k, v in st.stats.items() if any(match(k, p) for p in patterns)]  # type: ignore[attr-defined]
        out[label] = {"ms_per_file": round(sum(v[3] for v in hits) / n * 1000, 2),
                      "calls_per_file": round(sum(v[1] for v in hits) / n, 2)}
    return out


def _top(st: pstats.Stats, n: int, k: int = 15) -> list[dict]:
    top = sorted(st.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:k]  # type: ignore[attr-defined]
    return [{"function": f"{Path(key[0]).name}:{key[1]}({key[2]})", "ms_per_file": round(v[2] / n * 1000, 2),
             "calls_per_file": round(v[1] / n, 2)} for key, v in top]


def profile(args: argparse.Namespace, photos: list[Path]) -> dict:
    """cProfile over ``--profile-n`` fresh files: per-file seconds by step and the top functions."""
    from photosearch.media import xmp

    update = sync_update()
    files, _ = fresh_copy(photos[:args.profile_n], WORK / "profile")
    xmp.write(files[0], update)  # warm-up (imports, namespace registration), not profiled
    files = files[1:]
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    for f in files:
        xmp.write(f, update)
    prof.disable()
    wall = time.perf_counter() - t0
    st = pstats.Stats(prof)
    n = len(files)
    steps = _step_table(st, STEPS, n)
    log(f"profile: {n} files, {wall / n * 1000:.0f} ms a file under cProfile")
    for label, v in steps.items():
        log(f"  {label:55s} {v['ms_per_file']:8.1f} ms  ({v['calls_per_file']} calls)")
    shutil.rmtree(WORK / "profile", ignore_errors=True)
    return {"files": n, "ms_per_file_profiled": wall / n * 1000, "steps_cumulative": steps, "top_tottime": _top(st, n)}


# -- round B ----------------------------------------------------------------------------------

def build_e2e_template(args: argparse.Namespace, photos: list[Path], env: dict[str, str]) -> Path:
    """A library over e2e/photos with 3 accepted tags (CLI) and 2 named faces (store API) per photo."""
    from photosearch.api import Library
    from photosearch.models.fakes import install_fake_clip
    from photosearch.store.catalog import Catalog
    from photosearch.store.records import FaceRow

    template = WORK / f"e2e-template-{len(photos)}"
    if (template / ".complete").exists():
        return template
    shutil.rmtree(template, ignore_errors=True)
    folder = WORK / "e2e" / "photos"
    files, _ = fresh_copy(photos, folder)
    lib = Library(template)
    install_fake_clip(lib.models.root, "fakeclip")
    log(f"round B: indexing {len(files)} photos into {template} (fake CLIP, no faces, no OCR; once)")
    t0 = time.monotonic()
    report = lib.index([folder], faces=False, ocr=None)
    index_s = time.monotonic() - t0
    log(f"  indexed {report.indexed} in {index_s:.0f} s")
    tenv = {**env, "PHOTOSEARCH_LIBRARY": str(template)}
    for tag, _ in TAGS:
        r = subprocess.run([sys.executable, "-m", "photosearch", "tag", "add", tag, *map(str, files), "--json"],
                           env=tenv, capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"photosearch tag add {tag} failed ({r.returncode}):\n{r.stderr[-3000:]}")
    with Catalog.open(template / "catalog.duckdb") as cat:
        rows = cat.photos_under([str(folder)])
        with cat.transaction():
            people = {name: cat.create_person(name) for name, _ in PEOPLE}
            scans = [(r["id"], [FaceRow(box=box, score=0.95, vector=None, model=None, source="detected",
                                        person_id=people[name], assigned="user") for name, box in PEOPLE])
                     for r in rows]
            cat.add_face_scans("yunet-sface", scans)
        named = cat.named_faces_by_photo()
    if len(named) != len(files) or any(len(v) != 2 for v in named.values()):
        raise SystemExit(f"round B: {len(named)} photos with named faces, expected {len(files)} with 2 each")
    (template / ".complete").write_text(json.dumps({"index_s": index_s, "photos": len(files)}))
    return template


def restore_e2e(photos: list[Path], template: Path) -> tuple[list[Path], Path, float]:
    """The round's photos (pristine bytes, same paths as indexed) and a fresh copy of the library."""
    files, copy_s = fresh_copy(photos, WORK / "e2e" / "photos")
    lib = WORK / "e2e" / "lib"
    shutil.rmtree(lib, ignore_errors=True)
    shutil.copytree(template, lib)
    return files, lib, copy_s


def clean_e2e() -> None:
    """The round's photos and library (with sync's journal backups: a copy of every photo)."""
    for d in (WORK / "e2e" / "photos", WORK / "e2e" / "lib"):
        shutil.rmtree(d, ignore_errors=True)


def round_b(args: argparse.Namespace, photos: list[Path], env: dict[str, str]) -> dict:
    from bench_video import run_measured

    photos = photos[:args.e2e_n or len(photos)]
    template = build_e2e_template(args, photos, env)
    originals = {p.name: p for p in photos}
    rounds = []
    for r in range(args.repeat):
        files, lib, copy_s = restore_e2e(photos, template)
        lenv = {**env, "PHOTOSEARCH_LIBRARY": str(lib)}
        log(f"round B {r + 1}/{args.repeat}: {len(files)} photos restored ({copy_s:.1f} s, not timed); sync dry run")
        dry = run_measured(["sync", "--json"], lenv)
        planned = json.loads(dry.pop("out"))["files"]
        log(f"  dry run: {dry['wall_s']:.1f} s for {len(planned)} files; sync --apply")
        m = run_measured(["sync", "--apply", "--json"], lenv)
        done = json.loads(m.pop("out"))["files"]
        status: dict[str, int] = {}
        for f in done:
            status[f["status"]] = status.get(f["status"], 0) + 1
        rec = {"files": len(files), "planned": len(planned), "status": status,
               "failures": [{"path": f["path"], "error": f["error"]} for f in done if f["status"] == "failed"][:5],
               "dry_run": dry, "apply": m, "apply_per_file_ms": m["wall_s"] / len(files) * 1000,
               "projected_1000_s": m["wall_s"] / len(files) * 1000}
        rec["check"] = check(files, originals, args.check)
        log(f"round B {r + 1}: sync --apply {m['wall_s']:.1f} s ({rec['apply_per_file_ms']:.0f} ms a file, CPU "
            f"{m['cpu_s']:.1f} s, peak RSS {m['peak_rss_mb']:.0f} MB), {status}; check ok: {rec['check'].get('ok')}")
        rounds.append(rec)
        if not args.keep:
            clean_e2e()
    med = statistics.median(x["projected_1000_s"] for x in rounds)
    out = {"rounds": rounds, "projected_1000_s_median": med, "goal_s": GOAL_S, "meets_goal": med < GOAL_S,
           "template": json.loads((template / ".complete").read_text())}
    if args.profile_e2e:
        out["profile"] = profile_e2e(args, photos, template)
    return out


#: Steps of `sync --apply` (Library.sync), cumulative per file; nested ones overlap.
E2E_STEPS = {
    "plan (dry run part: preview of every file)": ["plan @actions/sync.py"],
    "apply (the write loop)": ["apply @actions/sync.py"],
    "  journaled_write (backup, journal, writer)": ["journaled_write"],
    "    the writer (xmp.write)": ["write @media/xmp.py"],
    "    backup + temp copies (shutil.copy2, all)": ["copy2"],
    "    journal records (each fsync'd)": ["_write @actions/journal.py"],
    "  catalog transactions (per file)": ["transaction @store/catalog.py"],
    "    state.json rewrite (mark_changed)": ["mark_changed @store/catalog.py"],
    "file_sha256 (journal before/after, catalog hash)": ["file_sha256"],
    "image-data digests (writer's check)": ["_image_digest"],
    "exiv2 modify_xmp + modify_raw_xmp + modify_iptc": ["modify_xmp @pyexiv2", "modify_raw_xmp @pyexiv2",
                                                       "modify_iptc @pyexiv2"],
    "fsync (all)": ["<built-in method posix.fsync>"],
    "rename (os.replace, all)": ["<built-in method posix.replace>"],
    "refresh vector indexes": ["_refresh_indexes"],
}


def profile_e2e(args: argparse.Namespace, photos: list[Path], template: Path) -> dict:
    """Library.sync(apply=True) (what `sync --apply` runs) in this process under cProfile."""
    from photosearch.api import Library

    _, lib_dir, _ = restore_e2e(photos, template)
    lib = Library(lib_dir)
    prof = cProfile.Profile()
    t0, c0 = time.perf_counter(), time.process_time()
    prof.enable()
    items = lib.sync(apply=True)
    prof.disable()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    n = len(photos)
    st = pstats.Stats(prof)
    steps = _step_table(st, E2E_STEPS, n)
    log(f"profile of sync --apply: {n} files, {wall:.1f} s ({wall / n * 1000:.0f} ms a file, CPU {cpu:.1f} s) "
        f"under cProfile; {sum(i.status == 'written' for i in items)} written")
    for label, v in steps.items():
        log(f"  {label:55s} {v['ms_per_file']:8.1f} ms  ({v['calls_per_file']} calls)")
    if not args.keep:
        clean_e2e()
    return {"files": n, "wall_s_profiled": wall, "cpu_s": cpu, "steps_cumulative": steps, "top_tottime": _top(st, n)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000, help="photos (round A)")
    ap.add_argument("--repeat", type=int, default=1, help="rounds of each part")
    ap.add_argument("--check", type=int, default=8, help="files read back with exiftool after each round")
    ap.add_argument("--profile-n", type=int, default=11, help="files written under cProfile (the first is a warm-up)")
    ap.add_argument("--end-to-end", action="store_true", help="also round B: `photosearch sync --apply` on a library")
    ap.add_argument("--e2e-n", type=int, default=0, help="photos in round B's library (default: --n)")
    ap.add_argument("--only-e2e", action="store_true", help="round B alone")
    ap.add_argument("--profile-e2e", action="store_true", help="round B: also Library.sync(apply=True) under cProfile")
    ap.add_argument("--keep", action="store_true", help="keep the rounds' folders (else removed after the checks)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes making the photos")
    ap.add_argument("--retries", type=int, default=3, help="retries (after 60 s) of a write that crashes")
    args = ap.parse_args()
    if shutil.which("exiftool") is None:
        raise SystemExit("exiftool is needed for the checks (Debian: libimage-exiftool-perl)")
    WORK.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PHOTOSEARCH_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    photos = camera_jpegs(WORK / "photos", max(args.n, args.e2e_n), args.workers)
    out: dict[str, Any] = {"photos": {"n": args.n, "size": f"{WIDTH}x{HEIGHT}",
                                      "mb_mean": statistics.fmean(p.stat().st_size for p in photos[:args.n]) / 1e6},
                           "update": {k: v for k, v in sync_update().__dict__.items() if v}}
    if not args.only_e2e:
        out["writer"] = round_a(args, photos[:args.n])
        out["profile"] = profile(args, photos)
    if args.end_to_end or args.only_e2e:
        out["end_to_end"] = round_b(args, photos, env)
    print(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main()
