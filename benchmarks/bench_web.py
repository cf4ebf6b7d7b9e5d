"""Web UI benchmark (issue 7): first page of search results and its thumbnails on a 100k-photo library.

Goal: "on a 100k-photo library with the server warm, the first page of results in < 300 ms and
its thumbnails in < 1 s cold".

The library is bench_query.py's synthetic one (catalog rows + clustered 512-d vectors, the
random-weights ViT-B-32-256 installed through `models import`, IVF index built and published),
copied to benchmarks/work/web-lib-N/ and re-pointed at real camera-like 12-MP JPEGs (the
4000x3000 q92 sets that bench_index.py / bench_faces.py prepare under benchmarks/work/; many rows
share a file, every row keeps its own content hash, so thumbnails are made and cached per row).
The index and its rows file are re-published, so no search rebuilds anything.

The server is the real `photosearch serve --port 0` in a child process; an httpx client on
127.0.0.1 trades the URL's token for the cookie and measures:

- the page (/, /static/app.js, /static/app.css);
- two servers side by side, order alternating per round: `cli` (as shipped) and `nodelay` (a
  what-if: the same CLI with its listening socket made with IPPROTO_TCP, so asyncio sets
  TCP_NODELAY on accepted connections);
- GET /api/search?q=...&limit=40 for several different queries, server warm (median, p95);
- the 40 thumbnails (/api/photos/ID/thumb?size=320, what the grid asks for) of a new query's
  first page: cold (<library>/thumbs emptied; with the JPEGs also evicted from the page cache,
  and with them in it) and warm (cached WebP), one connection at a time and with 6 parallel
  connections like a browser;
- in-process splits: where a search's time goes (a new Searcher per request, as the server does,
  vs. one kept Searcher) and what one thumbnail costs (read, draft JPEG decode, resize, WebP encode).

    python3 benchmarks/bench_web.py                       # ~3.5 min once the library is built
    python3 benchmarks/bench_web.py --search-rounds 3 --rounds 5 --json-out benchmarks/work/web.json  # ~5.5 min

Building: bench_query.py's 100k library if missing (~1 min on 2 cores), then the copy and
re-pointing (~5 s). Prepared 12-MP photo sets are reused; if none exist, 200 are made with
bench_index.py's generator (needs ../shared/data/photos, ~3 min).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
WORK = HERE / "work"
ARCH = "ViT-B-32-256"
DIM = 512
PHOTO_SETS = ("photos-4000x3000-*", "faces-photos-4000x3000-*")
SEARCH_QUERIES = [
    "sunset at the beach", "a dog playing in the snow", "birthday cake with candles", "city skyline at night",
    "children at the playground", "mountain lake reflection", "a plate of pasta", "old car in a barn",
    "a cat sleeping on a sofa", "fireworks over the river", "wedding couple dancing", "a red tram in the rain",
    "grandmother in the kitchen", "autumn forest path", "surfer on a big wave", "snowy village at dusk",
]
THUMB_QUERY = "a red bicycle leaning against a blue wall"
ENV = {"HF_HUB_OFFLINE": "1", "PHOTOSEARCH_OFFLINE": "1"}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# -- machine load ---------------------------------------------------------------------------------

def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def _system_busy() -> float:
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


def _proc_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Meter:
    """Wall time, the server's and this process's CPU, and the cores other processes used meanwhile."""

    def __init__(self, server_pid: int | None) -> None:
        self.pid = server_pid

    def __enter__(self) -> Meter:
        self.load0 = loadavg()
        self.t0, self.busy0 = time.perf_counter(), _system_busy()
        self.srv0 = _proc_cpu(self.pid) if self.pid else 0.0
        self.own0 = sum(os.times()[:2])
        return self

    def __exit__(self, *exc: Any) -> None:
        self.wall = time.perf_counter() - self.t0
        busy = _system_busy() - self.busy0
        self.server_cpu = (_proc_cpu(self.pid) - self.srv0) if self.pid else 0.0
        self.own_cpu = sum(os.times()[:2]) - self.own0
        self.others = max(0.0, (busy - self.server_cpu - self.own_cpu) / self.wall) if self.wall > 0 else 0.0
        self.load1 = loadavg()

    def as_dict(self) -> dict[str, Any]:
        return {"wall_s": self.wall, "server_cpu_s": self.server_cpu, "client_cpu_s": self.own_cpu,
                "others_cores": self.others, "loadavg_before": self.load0, "loadavg_after": self.load1}


# -- the library ----------------------------------------------------------------------------------

def photo_files(limit: int) -> list[Path]:
    """Camera-like 12-MP JPEGs already prepared under benchmarks/work/ (bench_index / bench_faces)."""
    files: list[Path] = []
    for pattern in PHOTO_SETS:
        for folder in sorted(WORK.glob(pattern)):
            if folder.is_dir():
                files += sorted(folder.glob("IMG_*.jpg"))
    return files[:limit]


def ensure_photos(limit: int) -> list[Path]:
    files = photo_files(limit)
    if len(files) >= 100:
        return files
    log("no prepared 12-MP photo set under benchmarks/work/: making 200 with bench_index.py's generator")
    sys.path.insert(0, str(HERE))
    import bench_index

    return bench_index.prepare_photos(bench_index.PhotoSpec(200), procs=os.cpu_count() or 2)


def build_library(n: int, limit: int) -> Path:
    """benchmarks/work/web-lib-N: bench_query's library re-pointed at real JPEGs, index re-published."""
    from photosearch.store.catalog import Catalog
    from photosearch.config import DEFAULT_EXACT_MAX
    from photosearch.store.vectors import load_for_search, save_for_catalog

    files = ensure_photos(limit)
    key = hashlib.sha256("\n".join(map(str, files)).encode()).hexdigest()[:16]
    lib = WORK / f"web-lib-{n}"
    done = lib / ".complete"
    if done.exists() and json.loads(done.read_text()).get("photos_key") == key:
        return lib
    src = WORK / f"query-lib-{n}"
    if not (src / ".complete").exists():
        log(f"building bench_query.py's {n}-photo library")
        subprocess.run([sys.executable, str(HERE / "bench_query.py"), "--build-only", "--sizes", str(n)],
                       check=True, env={**os.environ, **ENV})
    t0 = time.perf_counter()
    shutil.rmtree(lib, ignore_errors=True)
    shutil.copytree(src, lib, ignore=shutil.ignore_patterns(".complete", "thumbs"))
    copied = time.perf_counter()
    with Catalog.open(lib / "catalog.duckdb") as cat:
        cat.con.execute("CREATE TEMP TABLE bench_files (k BIGINT, path VARCHAR, size BIGINT)")
        cat.con.execute("INSERT INTO bench_files SELECT * FROM (SELECT unnest(?), unnest(?), unnest(?))",
                        [list(range(len(files))), [str(f) for f in files], [f.stat().st_size for f in files]])
        cat.con.execute("UPDATE photos SET path = f.path, size = f.size, camera_make = 'BenchCam', "
                        "camera_model = 'BC-12 Mark II' FROM bench_files f WHERE f.k = photos.id % ?", [len(files)])
        cat.mark_changed()
        # The index is stale by version only (same ids): load it, sync (nothing to add), and
        # publish it again with a rows file that carries the new paths.
        index, _ = load_for_search(cat, lib / "vectors", ARCH, exact_max=DEFAULT_EXACT_MAX, dim=DIM)
        save_for_catalog(index, cat, lib / "vectors", ARCH)
        n_rows = cat.con.execute("SELECT count(*), count(DISTINCT content_hash), count(DISTINCT path) "
                                 "FROM photos").fetchone()
        kind, nprobe = index.kind, index.nprobe
    done.write_text(json.dumps({"photos_key": key, "photo_files": len(files), "rows": n_rows[0],
                                "distinct_hashes": n_rows[1], "distinct_paths": n_rows[2], "kind": kind,
                                "nprobe": nprobe, "copy_s": copied - t0,
                                "repoint_s": time.perf_counter() - copied}))
    return lib


def check_library(lib: Path) -> dict[str, Any]:
    from photosearch.store.vectors import load_published

    info = json.loads((lib / ".complete").read_text())
    if load_published(lib, lib / "vectors", ARCH) is None:
        raise SystemExit(f"{lib}: the published index is not current (a search would rebuild it)")
    return info


# -- the server -----------------------------------------------------------------------------------

# What-if variant "nodelay": `photosearch serve` unchanged, except that the listening socket is made
# with proto=IPPROTO_TCP. serve() makes it as socket.socket(AF_INET, SOCK_STREAM) (proto 0), and
# asyncio only sets TCP_NODELAY on accepted sockets whose proto is IPPROTO_TCP: with Nagle on, a
# response written in two parts (headers, body) waits for the client's delayed ACK, ~40 ms.
NODELAY_LAUNCHER = r"""
import runpy, socket, sys
class _TCP(socket.socket):
    def __init__(self, family=-1, type=-1, proto=-1, fileno=None):
        if fileno is None and family in (socket.AF_INET, socket.AF_INET6) and type == socket.SOCK_STREAM \
                and proto in (-1, 0):
            proto = socket.IPPROTO_TCP
        super().__init__(family, type, proto, fileno)
socket.socket = _TCP
sys.argv = ["photosearch"] + sys.argv[1:]
runpy.run_module("photosearch", run_name="__main__", alter_sys=True)
"""
VARIANTS = {"cli": "photosearch serve, as shipped",
            "nodelay": "what-if: the same with the listening socket made with IPPROTO_TCP (TCP_NODELAY)"}


class Server:
    def __init__(self, lib: Path, variant: str = "cli") -> None:
        self.lib = lib
        self.variant = variant
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> tuple[str, float]:
        env = {**os.environ, **ENV, "PYTHONUNBUFFERED": "1"}
        args = ["serve", "--port", "0", "--library", str(self.lib)]
        if self.variant == "cli":
            cmd = [sys.executable, "-m", "photosearch", *args]
        else:
            cmd = [sys.executable, "-c", NODELAY_LAUNCHER, *args]
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        found: list[str] = []
        done = threading.Event()

        def read() -> None:
            assert self.proc and self.proc.stdout
            for line in self.proc.stdout:
                m = re.search(r"http://127\.0\.0\.1:\d+/\?token=\S+", line)
                if m and not found:
                    found.append(m.group(0))
                    done.set()
            done.set()

        threading.Thread(target=read, daemon=True).start()
        if not done.wait(90) or not found:
            self.stop()
            raise SystemExit("photosearch serve printed no URL")
        return found[0], time.perf_counter() - t0

    @property
    def pid(self) -> int:
        assert self.proc
        return self.proc.pid

    def rss_mb(self) -> float:
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith(("VmHWM:",)):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return 0.0

    def stop(self) -> str:
        if self.proc is None:
            return ""
        self.proc.terminate()
        try:
            _, err = self.proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        self.proc = None
        return err or ""


# -- measurements ---------------------------------------------------------------------------------

def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    k = (len(s) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def timed_get(client: Any, url: str, **kw: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    r = client.get(url, **kw)
    r.read()
    return time.perf_counter() - t0, r


def measure_page(client: Any, reps: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path in ("/", "/static/app.js", "/static/app.css"):
        times, size = [], 0
        for _ in range(reps):
            dt, r = timed_get(client, path)
            if r.status_code != 200:
                raise SystemExit(f"GET {path}: {r.status_code}")
            times.append(dt)
            size = len(r.content)
        out[path] = {"first_ms": times[0] * 1000, "median_ms": statistics.median(times) * 1000, "bytes": size}
    return out


def search(client: Any, q: str, limit: int = 40, offset: int = 0) -> tuple[float, list[dict[str, Any]]]:
    dt, r = timed_get(client, "/api/search", params={"q": q, "limit": limit, "offset": offset})
    if r.status_code != 200:
        raise SystemExit(f"search {q!r}: {r.status_code} {r.text[:200]}")
    return dt, r.json()["results"]


@dataclass
class Live:
    """One running server variant and a client holding its cookie."""
    name: str
    server: Server
    base: str
    client: Any


def alternate(items: list[Any], rnd: int) -> list[Any]:
    return items if rnd % 2 == 0 else items[::-1]


def measure_search(lives: list[Live], rounds: int) -> dict[str, dict[str, Any]]:
    """First pages of 16 queries per round (new words each round), variants alternating per round."""
    acc = {lv.name: {"first": [], "next": [], "cpu": 0.0, "others": [], "load": ""} for lv in lives}
    for rnd in range(rounds + 1):
        for lv in alternate(lives, rnd):
            a = acc[lv.name]
            with Meter(lv.server.pid) as m:
                n = 0
                if rnd < rounds:
                    for q in SEARCH_QUERIES:
                        text = q if rnd == 0 else f"{q} {rnd}"
                        dt, res = search(lv.client, text)
                        if len(res) != 40:
                            raise SystemExit(f"search {text!r}: {len(res)} results")
                        a["first"].append(dt)
                        n += 1
                else:  # scrolling: the second page of some of them
                    for q in SEARCH_QUERIES[:8]:
                        a["next"].append(search(lv.client, q, offset=40)[0])
                        n += 1
            a["cpu"] += m.server_cpu
            a["others"].append(m.others)
            a["load"] = m.load1
            log(f"  search {lv.name:8s} round {rnd}: others {m.others:.2f} cores, load {m.load1}")
    out = {}
    for name, a in acc.items():
        first, nxt = a["first"], a["next"]
        out[name] = {
            "first_page_ms": [t * 1000 for t in first], "next_page_ms": [t * 1000 for t in nxt],
            "median_ms": statistics.median(first) * 1000, "p95_ms": pct(first, 95) * 1000,
            "min_ms": min(first) * 1000, "max_ms": max(first) * 1000,
            "next_median_ms": statistics.median(nxt) * 1000,
            "server_cpu_ms_per_request": a["cpu"] / (len(first) + len(nxt)) * 1000,
            "others_cores": statistics.median(a["others"]), "loadavg_after": a["load"],
        }
    return out


def evict(paths: list[str]) -> None:
    """Drop these files' pages from the OS page cache (POSIX_FADV_DONTNEED; files only, not the machine)."""
    for p in set(paths):
        fd = os.open(p, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def fetch_thumbs(base: str, cookies: Any, ids: list[int], size: int, parallel: int) -> dict[str, Any]:
    import httpx

    lat: list[float] = []
    codes: list[int] = []
    nbytes = [0]
    lock = threading.Lock()
    limits = httpx.Limits(max_connections=parallel, max_keepalive_connections=parallel)
    with httpx.Client(base_url=base, cookies=cookies, limits=limits, timeout=120) as client:
        # Open the connections first, as a browser already has them from the page and the search.
        list(ThreadPoolExecutor(parallel).map(lambda _: client.get("/static/app.css").read(), range(parallel)))

        def one(pid: int) -> float:
            dt, r = timed_get(client, f"/api/photos/{pid}/thumb", params={"size": size})
            ok = r.status_code == 200 and r.content[:4] == b"RIFF" and r.content[8:12] == b"WEBP"
            with lock:
                codes.append(200 if ok else r.status_code or -1)
                nbytes[0] += len(r.content)
            return time.perf_counter()

        t0 = time.perf_counter()
        if parallel == 1:
            ends = [one(i) for i in ids]
        else:
            with ThreadPoolExecutor(parallel) as pool:
                ends = list(pool.map(one, ids))
        wall = time.perf_counter() - t0
    ends.sort()
    lat = [e - t0 for e in ends]
    return {"wall_s": wall, "first12_s": lat[min(11, len(lat) - 1)], "errors": sum(c != 200 for c in codes),
            "kb": nbytes[0] / 1024}


def measure_thumbs(lives: list[Live], lib: Path, rounds: int, size: int, parallel: int,
                   do_evict: bool) -> dict[str, Any]:
    """The 40 thumbnails of a new query's first page: cold (thumbnail cache emptied; JPEGs evicted from
    the page cache or read into it) and warm, 1 and `parallel` connections, variants alternating."""
    _, results = search(lives[0].client, THUMB_QUERY)
    ids = [r["id"] for r in results]
    paths = [r["path"] for r in results]
    thumbs = lib / "thumbs"
    modes = [("seq", 1), (f"par{parallel}", parallel)]
    conds = (["cold-disk"] if do_evict else []) + ["cold-cache", "warm"]
    runs: list[dict[str, Any]] = []
    for rnd in range(rounds):
        for cond in conds:
            for lv in alternate(lives, rnd):
                for mode, par in alternate(modes, rnd):
                    if cond != "warm":
                        shutil.rmtree(thumbs, ignore_errors=True)
                        if cond == "cold-disk":
                            evict(paths)
                        else:  # read the JPEGs once so they sit in the page cache
                            for p in set(paths):
                                Path(p).read_bytes()
                    else:  # make sure every thumbnail exists
                        fetch_thumbs(lv.base, lv.client.cookies, ids, size, parallel)
                    with Meter(lv.server.pid) as m:
                        r = fetch_thumbs(lv.base, lv.client.cookies, ids, size, par)
                    r.update(variant=lv.name, cond=cond, mode=mode, round=rnd, server_cpu_s=m.server_cpu,
                             others_cores=m.others, loadavg=m.load1)
                    runs.append(r)
                    log(f"  thumbs {lv.name:8s} {cond:10s} {mode:5s} round {rnd}: {r['wall_s'] * 1000:6.0f} ms "
                        f"(first 12: {r['first12_s'] * 1000:4.0f} ms, server CPU {m.server_cpu:.2f} s, "
                        f"others {m.others:.2f} cores, errors {r['errors']}, load {m.load1})")
    out: dict[str, Any] = {"ids": ids, "distinct_files": len(set(paths)), "runs": runs, "summary": {}}
    for lv in lives:
        summary = out["summary"][lv.name] = {}
        for cond in conds:
            for mode, _ in modes:
                sel = [r for r in runs if r["variant"] == lv.name and r["cond"] == cond and r["mode"] == mode]
                summary[f"{cond}/{mode}"] = {
                    "wall_ms": statistics.median(r["wall_s"] for r in sel) * 1000,
                    "wall_ms_min": min(r["wall_s"] for r in sel) * 1000,
                    "wall_ms_max": max(r["wall_s"] for r in sel) * 1000,
                    "first12_ms": statistics.median(r["first12_s"] for r in sel) * 1000,
                    "server_cpu_ms_per_thumb": statistics.median(r["server_cpu_s"] for r in sel) / len(ids) * 1000,
                    "others_cores": statistics.median(r["others_cores"] for r in sel),
                    "errors": sum(r["errors"] for r in sel), "kb": sel[0]["kb"],
                }
    return out


def thumb_split(paths: list[str], size: int, full_n: int) -> dict[str, Any]:
    """One thumbnail's cost in-process, single thread: read, draft decode, resize, WebP encode."""
    from PIL import Image

    from photosearch.media.decode import decode

    acc: dict[str, list[float]] = {"read": [], "decode": [], "resize": [], "webp": []}
    decoded_sizes = set()
    for p in paths:
        t0 = time.perf_counter()
        with open(p, "rb") as f:
            data = f.read()
        t1 = time.perf_counter()
        img = decode(data, ext=".jpg", min_side=size).image
        t2 = time.perf_counter()
        decoded_sizes.add(img.size)
        img.thumbnail((size, size))
        t3 = time.perf_counter()
        buf = io.BytesIO()
        img.save(buf, "WEBP", quality=80, method=2)
        t4 = time.perf_counter()
        for k, v in zip(acc, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            acc[k].append(v)
    out: dict[str, Any] = {k: statistics.median(v) * 1000 for k, v in acc.items()}
    out["total"] = sum(out[k] for k in acc)
    out["decoded_sizes"] = sorted(decoded_sizes)
    full = []
    for p in paths[:full_n]:
        data = Path(p).read_bytes()
        t0 = time.perf_counter()
        Image.open(io.BytesIO(data)).convert("RGB")
        full.append(time.perf_counter() - t0)
    out["full_decode"] = statistics.median(full) * 1000 if full else None
    # From an index-time image (the indexer already decodes every photo at draft size):
    # only the resize and the WebP encode would be left.
    out["from_index_time_image"] = out["resize"] + out["webp"]
    return out


def paths_of(lib: Path, ids: list[int]) -> list[str]:
    from photosearch.store.catalog import Catalog

    with Catalog.open(lib / "catalog.duckdb", read_only=True) as cat:
        rows = cat.photos_by_ids(ids)
    return [rows[i]["path"] for i in ids]


def search_split(lib: Path, n: int) -> dict[str, Any]:
    """Where a request's time goes: a new Searcher per search (what the server does) vs a kept one, and the
    catalog open that every thumbnail request does."""
    from photosearch.store.catalog import Catalog
    from photosearch.config import LibraryPaths
    from photosearch.models.store import ModelStore
    from photosearch.query.search import Searcher

    paths = LibraryPaths(lib)
    Searcher(paths).search_text("warm up", limit=40)
    fresh, kept, load, enc = [], [], [], []
    searcher = Searcher(paths)
    searcher.search_text("warm up 2", limit=40)
    model = searcher._load_model()
    for i in range(n):
        q = f"{SEARCH_QUERIES[i % len(SEARCH_QUERIES)]} split {i}"
        t0 = time.perf_counter()
        Searcher(paths).search_text(q, limit=40)
        fresh.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        searcher.search_text(q + " kept", limit=40)
        kept.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        ModelStore(paths).load(None, low_memory_text=True, threads=1)
        load.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        model.encode_text([q + " enc"])
        enc.append(time.perf_counter() - t0)
    cat_open = []
    for i in range(n):
        t0 = time.perf_counter()
        with Catalog.open(paths.catalog, read_only=True) as cat:
            cat.photos_by_ids([1 + i * 997])
        cat_open.append(time.perf_counter() - t0)
    return {"fresh_searcher_ms": statistics.median(fresh) * 1000, "kept_searcher_ms": statistics.median(kept) * 1000,
            "model_load_ms": statistics.median(load) * 1000, "encode_text_ms": statistics.median(enc) * 1000,
            "catalog_open_ms": statistics.median(cat_open) * 1000}


# -- report ---------------------------------------------------------------------------------------

LABELS = {"cold-disk": "cold, JPEGs not in page cache", "cold-cache": "cold, JPEGs in page cache",
          "warm": "warm (cached WebP)"}


def goals(v: dict[str, Any], par: int) -> tuple[str, str]:
    s, t = v["search"], v["thumbs"]["summary"]
    page = "MET" if s["p95_ms"] < 300 else ("met at the median only" if s["median_ms"] < 300 else "NOT met")
    cold = t.get(f"cold-disk/par{par}") or t.get(f"cold-cache/par{par}")
    thumbs = "MET" if cold and cold["wall_ms"] < 1000 else "NOT met"
    return (f"median {s['median_ms']:.0f} ms, p95 {s['p95_ms']:.0f} ms: {page}",
            f"{cold['wall_ms'] if cold else float('nan'):.0f} ms with {par} connections: {thumbs}")


def render(res: dict[str, Any]) -> list[str]:
    lib, a, par = res["library"], res["args"], res["args"]["parallel"]
    L = [f"library: {lib['rows']:,} photos ({lib['kind']}, nprobe {lib['nprobe']}), {lib['photo_files']} distinct "
         f"12-MP JPEG files, {lib['distinct_hashes']:,} content hashes", ""]
    for name, v in res["variants"].items():
        L.append(f"- {name} ({VARIANTS[name]}): start to URL {v['server']['start_s']:.2f} s, first search "
                 f"{v['server']['first_search_ms']:.0f} ms, server peak RSS {v['server']['peak_rss_mb']:.0f} MB")
    L += ["", "| server | request | first (ms) | median of 10 (ms) | bytes |", "|---|---|---|---|---|"]
    for name, v in res["variants"].items():
        for path, x in v["page"].items():
            L.append(f"| {name} | GET {path} | {x['first_ms']:.1f} | {x['median_ms']:.1f} | {x['bytes']:,} |")
    L += ["", "| server | search, server warm | requests | median (ms) | p95 (ms) | min-max (ms) "
          "| server CPU / request (ms) | others' cores | load avg after |", "|---|---|---|---|---|---|---|---|---|"]
    for name, v in res["variants"].items():
        s = v["search"]
        L.append(f"| {name} | first page (limit=40) | {len(s['first_page_ms'])} | {s['median_ms']:.0f} "
                 f"| {s['p95_ms']:.0f} | {s['min_ms']:.0f}-{s['max_ms']:.0f} | {s['server_cpu_ms_per_request']:.0f} "
                 f"| {s['others_cores']:.2f} | {s['loadavg_after']} |")
        L.append(f"| {name} | next page (offset=40) | {len(s['next_page_ms'])} | {s['next_median_ms']:.0f} "
                 f"| - | - | - | - | - |")
    L += ["", f"First page of {THUMB_QUERY!r}: {len(res['thumbs_ids'])} photos from {res['thumbs_distinct_files']} "
          "distinct files; every row has its own content hash, so every thumbnail is made and cached on its own.",
          "", f"| server | 40 thumbnails ({a['size']} px) | connections | wall, median of {a['rounds']} (ms) "
          "| min-max (ms) | first 12 done (ms) | server CPU / thumb (ms) | others' cores | errors |",
          "|---|---|---|---|---|---|---|---|---|"]
    for name, v in res["variants"].items():
        for key, x in v["thumbs"]["summary"].items():
            cond, mode = key.split("/")
            L.append(f"| {name} | {LABELS[cond]} | {1 if mode == 'seq' else mode[3:]} | {x['wall_ms']:.0f} "
                     f"| {x['wall_ms_min']:.0f}-{x['wall_ms_max']:.0f} | {x['first12_ms']:.0f} "
                     f"| {x['server_cpu_ms_per_thumb']:.1f} | {x['others_cores']:.2f} | {x['errors']} |")
    if "thumb_split" in res:
        L += ["", "| one thumbnail, in-process, 1 thread (median) | decoded at | read | draft decode | resize | WebP "
              "| total | full 12-MP decode |", "|---|---|---|---|---|---|---|---|"]
        for size, x in ((a["size"], res["thumb_split"]), (640, res.get("thumb_split_640"))):
            if x:
                dims = ", ".join(f"{w}x{h}" for w, h in x["decoded_sizes"])
                full = f"{x['full_decode']:.0f}" if x["full_decode"] else "-"
                L.append(f"| {size} px, {len(res['thumbs_ids']) if size == a['size'] else 16} photos | {dims} "
                         f"| {x['read']:.1f} | {x['decode']:.1f} | {x['resize']:.1f} | {x['webp']:.1f} "
                         f"| {x['total']:.1f} | {full} |")
    if "search_split" in res:
        x = res["search_split"]
        L += ["", "| in-process, 1 request's parts | median (ms) |", "|---|---|",
              f"| search_text, new Searcher per query (what the server does) | {x['fresh_searcher_ms']:.0f} |",
              f"| search_text, one kept Searcher | {x['kept_searcher_ms']:.0f} |",
              f"| encode_text alone | {x['encode_text_ms']:.0f} |",
              f"| Catalog.open(read_only) + photos_by_ids([id]) (every thumbnail request) "
              f"| {x['catalog_open_ms']:.0f} |"]
    L.append("")
    for name, v in res["variants"].items():
        g = goals(v, par)
        L.append(f"goals, {name}: first page < 300 ms: {g[0]}; thumbnails < 1 s cold: {g[1]}")
    return L


def start(lib: Path, variant: str) -> tuple[Live, dict[str, Any]]:
    import httpx

    server = Server(lib, variant)
    url, start_s = server.start()
    base = url.split("/?")[0]
    client = httpx.Client(base_url=base, timeout=120)
    r = client.get(url.removeprefix(base))
    if r.status_code != 303 or "photosearch_token" not in client.cookies:
        raise SystemExit(f"token exchange failed: {r.status_code}")
    bad = httpx.get(base + "/api/search", params={"q": "x"})
    if bad.status_code != 401:
        raise SystemExit(f"no cookie should be 401, got {bad.status_code}")
    first_ms = search(client, "warm up the server")[0] * 1000
    log(f"{variant}: server up in {start_s:.2f} s, first search {first_ms:.0f} ms")
    return Live(variant, server, base, client), {"start_s": start_s, "first_search_ms": first_ms}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000, help="photos in the library (default 100000)")
    ap.add_argument("--files", type=int, default=1500, help="most distinct JPEG files to point rows at")
    ap.add_argument("--search-rounds", type=int, default=2, help="rounds over the 16 queries (default 2)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of each thumbnail measurement (default 3)")
    ap.add_argument("--size", type=int, default=320, help="thumbnail size asked for (the grid's: 320)")
    ap.add_argument("--parallel", type=int, default=6, help="parallel connections, like a browser (default 6)")
    ap.add_argument("--no-evict", action="store_true", help="skip the cold runs with JPEGs out of the page cache")
    ap.add_argument("--no-split", action="store_true", help="skip the in-process splits")
    ap.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=["cli", "nodelay"],
                    help="servers to measure: cli (photosearch serve) and nodelay (the same with TCP_NODELAY)")
    ap.add_argument("--json-out", type=Path)
    ap.add_argument("--build-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    os.environ.update(ENV)
    if args.build_only:
        build_library(args.n, args.files)
        return
    t_start = time.perf_counter()
    lib = WORK / f"web-lib-{args.n}"
    log(f"library {lib} (load {loadavg()})")
    # Build in a child so this process stays small.
    subprocess.run([sys.executable, __file__, "--build-only", "--n", str(args.n), "--files", str(args.files)],
                   check=True)
    info = check_library(lib)
    res: dict[str, Any] = {"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                           "library": info, "loadavg_start": loadavg(), "variants": {}}
    lives: list[Live] = []
    try:
        for variant in args.variants:
            log(f"server {variant}: {VARIANTS[variant]}")
            lv, info_v = start(lib, variant)
            lives.append(lv)
            res["variants"][variant] = {"server": info_v}
        for lv in lives:
            v = res["variants"][lv.name]
            v["page"] = measure_page(lv.client, 10)
            log(f"{lv.name} page: " + ", ".join(f"{k} {x['median_ms']:.1f} ms" for k, x in v["page"].items()))
        for name, x in measure_search(lives, args.search_rounds).items():
            res["variants"][name]["search"] = x
            log(f"{name} search: median {x['median_ms']:.0f} ms, p95 {x['p95_ms']:.0f} ms")
        th = measure_thumbs(lives, lib, args.rounds, args.size, args.parallel, not args.no_evict)
        res["thumbs_ids"], res["thumb_runs"] = th["ids"], th["runs"]
        res["thumbs_distinct_files"] = th["distinct_files"]
        for lv in lives:
            v = res["variants"][lv.name]
            v["thumbs"] = {"summary": th["summary"][lv.name]}
            v["server"]["peak_rss_mb"] = lv.server.rss_mb()
    finally:
        for lv in lives:
            lv.client.close()
            err = lv.server.stop()
            if err.strip():
                res["variants"][lv.name]["server_stderr_tail"] = err[-2000:]
    if not args.no_split:
        paths = paths_of(lib, res["thumbs_ids"])
        res["thumb_split"] = thumb_split(paths, args.size, full_n=8)
        res["thumb_split_640"] = thumb_split(paths[:16], 640, full_n=0)
        log(f"thumb split: {res['thumb_split']}")
        res["search_split"] = search_split(lib, 16)
        log(f"search split: {res['search_split']}")
    res["loadavg_end"] = loadavg()
    res["runtime_s"] = time.perf_counter() - t_start
    print()
    for line in render(res):
        print(line)
    print(f"\nload average: start {res['loadavg_start']}, end {res['loadavg_end']}; runtime {res['runtime_s']:.0f} s")
    if args.json_out:
        args.json_out.write_text(json.dumps(res, indent=1, default=str))


if __name__ == "__main__":
    main()
