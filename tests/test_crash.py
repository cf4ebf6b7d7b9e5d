"""kill -9 in the middle of indexing leaves a usable library, and the next run finishes the job."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from conftest import run_cli, write_photo
from photosearch.store.catalog import Catalog
from photosearch.errors import LibraryError


def _count(catalog_path) -> int:
    try:
        with Catalog.open(catalog_path, read_only=True, wait_s=0.5) as cat:
            return cat.count_photos()
    except LibraryError:
        return 0


def test_kill9_then_resume(library, tmp_path):
    n = 600
    folder = tmp_path / "photos"
    for i in range(n):
        write_photo(folder / f"d{i // 100}" / f"p{i:04}.jpg", seed=10_000 + i, size=(160, 120))
    env = {**os.environ, "PHOTOSEARCH_LIBRARY": str(library.paths.root), "HF_HUB_OFFLINE": "1",
           "PHOTOSEARCH_COMMIT_SECONDS": "0.1", "PHOTOSEARCH_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "photosearch", "index", str(folder), "--json", "--batch-size", "4"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    committed = 0
    while time.monotonic() < deadline and proc.poll() is None:
        if library.paths.catalog.exists():
            committed = _count(library.paths.catalog)
            if committed >= 8:
                break
        time.sleep(0.05)
    assert proc.poll() is None, "indexing finished before it could be killed; make the test bigger"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL

    # Usable right away: committed photos are searchable.
    r = run_cli("anything", "--json", "--limit", "1000", library=library.paths.root)
    assert r.returncode == 0, r.stderr
    found = json.loads(r.stdout)["results"]
    assert 8 <= len(found) < n

    # The next run does the rest, and nothing twice.
    r = run_cli("index", str(folder), "--json", library=library.paths.root)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["unchanged"] + summary["indexed"] == n
    assert summary["unchanged"] >= len(found) and summary["indexed"] <= n - len(found)
    with Catalog.open(library.paths.catalog, read_only=True) as cat:
        paths = list(cat.known_files())
        assert len(paths) == len(set(paths)) == n
        assert cat.count_vectors("fakeclip") == n
        assert cat.index_state("fakeclip")["version"] == cat.data_version()
    r = run_cli("anything", "--json", "--limit", "1000", library=library.paths.root)
    assert len(json.loads(r.stdout)["results"]) == n
