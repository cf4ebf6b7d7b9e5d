#!/usr/bin/env python3
"""What journaling a people edit costs (issue 21: every web action can be undone).

    python3 benchmarks/bench_edits.py [--faces 100000 1000000] [--rounds 5]

A catalog with --faces face rows (1 in 50 people, 20,000 clusters) made with SQL; then, side by
side in one run, naming a cluster (`query/people.name_person`: the name, and its faces marked as
assigned by hand) in a plain transaction and inside `actions/journal.journaled_edit` (the tracked
tables copied, the rows that changed diffed and journaled), and the undo of the journaled one
(`journal.undo_last`). Medians over --rounds, each on a different cluster.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from photosearch.actions.journal import journaled_edit, undo_last
from photosearch.config import LibraryPaths
from photosearch.query.people import name_person
from photosearch.store.catalog import Catalog

TABLES = ["people", "faces", "face_rejections", "settings"]
CLUSTERS = 20_000


def run(n_faces: int, rounds: int) -> dict[str, float]:
    root = Path(tempfile.mkdtemp(prefix=f"bench-edits-{n_faces}-"))
    paths = LibraryPaths(root)
    with Catalog.open(paths.catalog) as cat:
        cat.con.execute(f"INSERT INTO people SELECT i, NULL, now() FROM range(1, {CLUSTERS + 1}) t(i)")
        cat.con.execute("INSERT INTO faces (id, photo_id, model, x, y, w, h, score, person_id, assigned, source) "
                        f"SELECT i, i, 'm', 0, 0, 0.1, 0.1, 0.9, 1 + (i % {CLUSTERS}), 'auto', 'detected' "
                        f"FROM range(1, {n_faces + 1}) t(i)")
    plain, journaled, undo = [], [], []
    with Catalog.open(paths.catalog) as cat:
        for k in range(rounds):
            t = time.perf_counter()
            with cat.transaction():
                name_person(cat, 1 + 2 * k, f"Plain {k}")
            plain.append(time.perf_counter() - t)
            t = time.perf_counter()
            with journaled_edit(paths, cat, "people-name", TABLES):
                name_person(cat, 2 + 2 * k, f"Journaled {k}")
            journaled.append(time.perf_counter() - t)
    for _ in range(rounds):
        t = time.perf_counter()
        report = undo_last(paths)
        undo.append(time.perf_counter() - t)
        assert report.rows > 0 and not report.untouched
    return {"faces": n_faces, "plain_ms": 1000 * statistics.median(plain),
            "journaled_ms": 1000 * statistics.median(journaled), "undo_ms": 1000 * statistics.median(undo)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--faces", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    print("| faces | name a cluster, plain (ms) | journaled (ms) | its undo (ms) |")
    print("|---|---|---|---|")
    for n in args.faces:
        r = run(n, args.rounds)
        print(f"| {n:,} | {r['plain_ms']:.0f} | {r['journaled_ms']:.0f} | {r['undo_ms']:.0f} |")


if __name__ == "__main__":
    main()
