"""File names that are not UTF-8 (issue 15): an old camera card or a Windows-1252 archive names
files in Latin-1. They are indexed, found, shown escaped, rewritten and moved like any other,
and re-indexing leaves them alone."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

from conftest import SHARED, needs_shared, run_cli, write_photo


def _name(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def test_names_that_are_not_utf8_are_kept_found_shown_escaped_and_moved(library, tmp_path):
    d = tmp_path / "card"
    d.mkdir()
    folder = os.fsdecode(os.path.join(os.fsencode(d), b"f\xeate"))       # a folder, too
    os.mkdir(folder)
    cafe = os.fsdecode(os.path.join(os.fsencode(d), b"caf\xe9.jpg"))
    write_photo(Path(cafe), seed=1)
    inner = write_photo(Path(folder) / "inner.jpg", seed=2)
    ok = write_photo(d / "ok.jpg", seed=3)
    root = library.paths.root

    r = run_cli("index", str(d), "--json", library=root)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["photos"] == 3 and doc["skipped"] == []

    r = run_cli("search", "anything", "--json", "-n", "10", library=root)
    assert r.returncode == 0, r.stderr
    assert "\x00" not in r.stdout
    shown = {x["path"] for x in json.loads(r.stdout)["results"]}
    assert shown == {f"{d}/caf\\xe9.jpg", f"{d}/f\\xeate/inner.jpg", str(ok)}
    r = run_cli("search", "anything", "-n", "10", library=root)                 # the table, too
    assert r.returncode == 0 and "caf\\xe9.jpg" in r.stdout and "\x00" not in r.stdout

    # The web UI's API shows them as the CLI does, and serves the file itself.
    from fastapi.testclient import TestClient

    from photosearch.web.server import create_app

    app = create_app(library)
    web = TestClient(app, base_url="http://127.0.0.1")
    web.get(f"/?token={app.state.token}", follow_redirects=False)
    hits = {x["path"]: x for x in web.get("/api/search", params={"q": "anything"}).json()["results"]}
    shown_cafe = f"{d}/caf\\xe9.jpg"
    assert shown_cafe in hits
    got = web.get(f"/api/photos/{hits[shown_cafe]['id']}/file")
    assert got.status_code == 200 and got.content == Path(cafe).read_bytes()

    # The OS's own name reaches the photo: like, rate, and sync's in-file write.
    r = run_cli("like", cafe, "--json", library=root)
    assert r.returncode == 0, r.stderr
    assert f"{d}/caf\\xe9.jpg" not in {x["path"] for x in json.loads(r.stdout)["results"]}
    r = run_cli("rate", "4", cafe, str(inner), "--json", library=root)
    assert r.returncode == 0, r.stderr
    before = Path(cafe).read_bytes()
    r = run_cli("sync", "--apply", "--no-people", "--json", library=root)
    assert r.returncode == 0, r.stderr
    written = {_name(f["path"]): f["status"] for f in json.loads(r.stdout)["files"]}
    assert written == {"caf\\xe9.jpg": "written", "inner.jpg": "written"}
    after = Path(cafe).read_bytes()
    assert after != before and b'xmp:Rating="4"' in after or b"<xmp:Rating>4</xmp:Rating>" in after

    # Re-indexing: nothing new, nothing lost (the rewritten file keeps its row and its rating).
    r = run_cli("index", str(d), "--json", library=root)
    doc = json.loads(r.stdout)
    assert r.returncode == 0 and doc["photos"] == 0 and doc["skipped"] == [], r.stdout

    # A copy with such a name is quarantined, and undo brings it back byte for byte.
    copy = os.fsdecode(os.path.join(os.fsencode(d), b"copie \xe0 garder.jpg"))
    shutil.copy(ok, copy)
    assert run_cli("index", str(d), library=root).returncode == 0
    q = tmp_path / "quarantine"
    r = run_cli("dupes", "--exact", "--move-to", str(q), "--apply", "--json", library=root)
    assert r.returncode == 0, r.stderr
    moved = [p for p in os.listdir(os.fsencode(q)) if p.endswith(b".jpg")] if q.exists() else []
    assert len(moved) == 1
    assert os.path.exists(copy) != os.path.exists(ok)                           # one of the two moved
    r = run_cli("undo", "--json", library=root)
    assert r.returncode == 0, r.stderr
    assert Path(copy).read_bytes() == ok.read_bytes()
    r = run_cli("index", str(d), "--json", library=root)
    assert json.loads(r.stdout)["photos"] == 0

    # organize files the folder with the odd name, bytes and all; undo puts it back.
    out = tmp_path / "sorted"
    r = run_cli("organize", folder, "--into", str(out), "--pattern", "x", "--apply", "--json", library=root)
    assert r.returncode == 0, r.stderr
    (filed,) = out.rglob("inner.jpg")                                              # Undated/: no capture date
    assert not os.path.exists(inner)
    r = run_cli("search", "anything", "--json", "-n", "10", library=root)
    assert str(filed) in {x["path"] for x in json.loads(r.stdout)["results"]}
    assert run_cli("undo", library=root).returncode == 0
    assert inner.is_file() and not filed.exists()
    r = run_cli("search", "anything", "--json", "-n", "10", library=root)
    assert f"{d}/f\\xeate/inner.jpg" in {x["path"] for x in json.loads(r.stdout)["results"]}


@needs_shared
def test_a_real_camera_file_under_a_latin1_name_keeps_its_metadata(library, tmp_path):
    d = tmp_path / "card"
    d.mkdir()
    name = os.fsdecode(os.path.join(os.fsencode(d), b"Stra\xdfe.jpg"))
    shutil.copy(SHARED / "metadata" / "GPS.jpg", name)
    r = run_cli("index", str(d), "--json", library=library.paths.root)
    assert r.returncode == 0 and json.loads(r.stdout)["photos"] == 1, r.stderr
    out = tmp_path / "export.csv"
    r = run_cli("export", "--csv", "--out", str(out), library=library.paths.root)
    assert r.returncode == 0, r.stderr
    (row,) = csv.DictReader(out.open(encoding="utf-8"))
    assert row["path"] == f"{d}/Stra\\xdfe.jpg"
    assert row["gps_lat"] and row["gps_lon"] and row["camera"], row        # read from the file's EXIF
