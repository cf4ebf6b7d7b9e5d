#!/usr/bin/env python3
"""The web UI's timeline at 100k photos (issue 21): the first screen, a year of scrolling, the months.

    python3 benchmarks/bench_timeline.py [--n 100000] [--rounds 5] [--json-out FILE]

A catalog of --n photo rows made through the product's own writer (Catalog.insert_photos; the
photos spread over 10 years, 5% without a capture date, placed at their file time), served by the
real FastAPI app (`create_app`) through an in-process HTTP client with the page's cookie and token,
so each figure is a whole request: routing, the token check, the catalog query, JSON. Figures
(median over --rounds, server warm):

- first screen: GET /api/timeline?limit=200 (what the page asks first) and /api/timeline/months;
- a year of scrolling: the pages the page asks for while scrolling from the newest photo back one
  year (200 first, then 1000 a request; the cursor of each page is the last photo of the one before),
  summed;
- a deep page: the page 90% of the way down the timeline (keyset paging: as cheap as the first);
- an album of 5,000 photos: GET /api/albums/NAME?limit=5000 (a manual album made in the catalog);
- the viewer: GET /api/photos/ID (details, neighbours) and GET /api/photos/ID/file of a real 12 MP
  JPEG (one row pointed at a file bench_index.py / bench_faces.py prepared, if there is one).
Goals: first screen < 300 ms, a year of scrolling < 1 s of requests, the viewer's full image < 500 ms,
an album of 5,000 < 300 ms.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
WORK = HERE / "work"
sys.path.insert(0, str(HERE.parent))


def build(n: int) -> Path:
    from photosearch.api import Library
    from photosearch.store.catalog import Catalog
    from photosearch.store.records import PhotoRecord

    lib_dir = WORK / f"timeline-lib-{n}"
    if (lib_dir / "catalog.duckdb").is_file():
        return lib_dir
    lib_dir.mkdir(parents=True, exist_ok=True)
    Library(lib_dir)
    rng = np.random.default_rng(0)
    start = datetime(2016, 1, 1)
    seconds = rng.uniform(0, 10 * 365 * 86400, n)
    with Catalog.open(lib_dir / "catalog.duckdb") as cat:
        for lo in range(0, n, 20_000):
            recs = []
            for i in range(lo, min(n, lo + 20_000)):
                taken = start + timedelta(seconds=float(seconds[i]))
                w, h = (4000, 3000) if i % 3 else (3000, 4000)
                recs.append(PhotoRecord(path=f"/photos/{i // 1000:03d}/IMG_{i:06d}.jpg", content_hash=f"{i:064x}",
                                        size=2_500_000, mtime_ns=int(taken.timestamp() * 1e9), width=w, height=h,
                                        format="JPEG", taken_at=None if i % 20 == 0 else taken))
            with cat.transaction():
                cat.insert_photos(recs)
        with cat.transaction():
            album = cat.create_album("Five thousand")
            cat.add_to_album(album, [int(i) for i in rng.choice(np.arange(1, n + 1), size=min(5000, n), replace=False)])
    return lib_dir


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json-out", type=Path)
    args = ap.parse_args()
    from fastapi.testclient import TestClient

    from photosearch.api import Library
    from photosearch.web.server import create_app

    t0 = time.perf_counter()
    lib_dir = build(args.n)
    print(f"library of {args.n} photos ready in {time.perf_counter() - t0:.1f} s: {lib_dir}")
    app = create_app(Library(lib_dir))
    c = TestClient(app, base_url="http://127.0.0.1")
    c.get(f"/?token={app.state.token}", follow_redirects=False)

    def get(url: str) -> tuple[float, dict]:
        t = time.perf_counter()
        r = c.get(url)
        dt = time.perf_counter() - t
        assert r.status_code == 200, r.text
        return dt, r.json()

    get("/api/timeline?limit=200")  # warm: the catalog's first open, Python's first calls
    real = sorted(WORK.glob("*photos-4000x3000*/IMG_00000.jpg"))
    viewer_id = None
    if real:
        from photosearch.store.catalog import Catalog

        viewer_id = get("/api/timeline?limit=1")[1]["photos"][0]["id"]
        with Catalog.open(lib_dir / "catalog.duckdb") as cat, cat.transaction():
            cat.con.execute("UPDATE photos SET path = ? WHERE id = ?", [str(real[0].resolve()), viewer_id])
        real[0].read_bytes()  # in the page cache, as a photo just shown in the grid would be
    res: dict = {"n": args.n, "first_page_ms": [], "months_ms": [], "year_ms": [], "year_pages": [], "deep_page_ms": [],
                 "album_5000_ms": [], "viewer_details_ms": [], "viewer_file_ms": []}
    months = get("/api/timeline/months")[1]["months"]
    deep_cursor = months[int(len(months) * 0.9)]["cursor"]
    for _ in range(args.rounds):
        dt, doc = get("/api/timeline?limit=200")
        res["first_page_ms"].append(dt * 1e3)
        res["months_ms"].append(get("/api/timeline/months")[0] * 1e3)
        newest = datetime.fromisoformat(doc["photos"][0]["at"])
        total, pages, cursor = dt, 1, doc["next"]
        while cursor and datetime.fromisoformat(doc["photos"][-1]["at"]) > newest - timedelta(days=365):
            dt, doc = get(f"/api/timeline?limit=1000&cursor={cursor}")
            total, pages, cursor = total + dt, pages + 1, doc["next"]
        res["year_ms"].append(total * 1e3)
        res["year_pages"].append(pages)
        res["deep_page_ms"].append(get(f"/api/timeline?limit=200&cursor={deep_cursor}")[0] * 1e3)
        dt, doc = get("/api/albums/Five%20thousand?limit=5000")
        assert len(doc["results"]) == min(5000, args.n)
        res["album_5000_ms"].append(dt * 1e3)
        if viewer_id is not None:
            res["viewer_details_ms"].append(get(f"/api/photos/{viewer_id}")[0] * 1e3)
            t = time.perf_counter()
            r = c.get(f"/api/photos/{viewer_id}/file")
            assert r.status_code == 200 and len(r.content) > 1_000_000
            res["viewer_file_ms"].append((time.perf_counter() - t) * 1e3)
    summary = {k: statistics.median(v) for k, v in res.items() if isinstance(v, list) and v}
    print(json.dumps({"n": args.n, **{k: round(v, 1) for k, v in summary.items()}}))
    if args.json_out:
        args.json_out.write_text(json.dumps({"raw": res, "median": summary}, indent=1))


if __name__ == "__main__":
    main()
