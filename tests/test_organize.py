"""Events, organize + undo (byte-identical, sidecars included), Google Takeout sidecars, and the
watched import folder (slow partial copies, duplicates, clean shutdown)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from conftest import run_cli, write_photo

requires_exiftool = pytest.mark.skipif(shutil.which("exiftool") is None,
                                       reason="exiftool (Debian libimage-exiftool-perl) is not installed")

DATE = 0x9003   # EXIF DateTimeOriginal
EXIF_IFD = 0x8769


def dated_photo(path: Path, seed: int, when: str) -> Path:
    """A JPEG with an EXIF DateTimeOriginal ("YYYY:MM:DD HH:MM:SS")."""
    from PIL import Image

    write_photo(path, seed=seed, size=(160, 120))
    im = Image.open(path)
    exif = im.getexif()
    exif.get_ifd(EXIF_IFD)[DATE] = when
    exif[0x0132] = when
    im.save(path, quality=90, exif=exif.tobytes())
    return path


def tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# -- events ------------------------------------------------------------------------------------


def test_events_split_by_time_gap_and_distance():
    from photosearch.query.events import group

    t = lambda h: datetime(2024, 5, 1) + __import__("datetime").timedelta(hours=h)  # noqa: E731
    rows = [(1, t(0), 48.85, 2.35), (2, t(1), 48.86, 2.34),     # Paris, morning
            (3, t(2), 45.76, 4.84),                              # Lyon 390 km away: new event
            (4, t(9), None, None), (5, t(9.5), None, None),      # 7 h later: new event
            (6, t(30), None, None)]                              # next day: new event
    assert [[r[0] for r in g] for g in group(rows)] == [[1, 2], [3], [4, 5], [6]]
    assert [[r[0] for r in g] for g in group(rows, gap_hours=48, max_km=1000)] == [[1, 2, 3, 4, 5, 6]]


# -- organize + undo -------------------------------------------------------------------------------


def test_organize_dry_run_apply_collisions_rules_and_undo_round_trip(library, tmp_path):
    src = tmp_path / "import"
    dated_photo(src / "a" / "IMG_1.jpg", 1, "2023:07:14 10:00:00")
    dated_photo(src / "b" / "IMG_1.jpg", 2, "2023:07:14 11:00:00")           # same name, same day
    c = dated_photo(src / "c.jpg", 3, "2021:12:24 18:00:00")
    write_photo(src / "undated.jpg", seed=4)
    (src / "a" / "IMG_1.jpg.xmp").write_text("<x:xmpmeta xmlns:x='adobe:ns:meta/'/>")
    (src / "c.xmp").write_text("<x:xmpmeta xmlns:x='adobe:ns:meta/'/>")
    library.index([src], faces=False)
    root = library.paths.root
    run_cli("tag", "add", "bday", str(c), library=root)
    before = tree_digest(src)
    dest = tmp_path / "Library"

    r = run_cli("organize", "--into", str(dest), "--rule", "birthday -> {year}/Birthday", "--json", library=root)
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)["plan"]
    assert tree_digest(src) == before and not dest.exists()  # a dry run touches nothing
    dst = {Path(m["src"]).relative_to(src).as_posix(): Path(m["dst"]).relative_to(dest).as_posix()
           for m in plan["moves"]}
    event = next(e["name"] for e in library.events() if e["name"].startswith("2023-07-14"))
    assert dst["a/IMG_1.jpg"] == f"2023/07/{event}/IMG_1.jpg"
    assert dst["b/IMG_1.jpg"] == f"2023/07/{event}/IMG_1 (1).jpg"    # collision-safe, never overwritten
    assert dst["c.jpg"] == "2021/Birthday/c.jpg"                      # the tag rule
    assert dst["undated.jpg"] == "Undated/undated.jpg"

    r = run_cli("organize", "--into", str(dest), "--rule", "birthday -> {year}/Birthday", "--apply", library=root)
    assert r.returncode == 0, r.stderr
    assert (dest / f"2023/07/{event}/IMG_1.jpg.xmp").is_file()         # sidecars travel along
    assert (dest / "2021/Birthday/c.xmp").is_file()
    assert not any(p.is_file() for p in src.rglob("*"))
    # The catalog follows without re-embedding; searches give the new paths.
    assert library.index(faces=False).indexed == 0
    res = json.loads(run_cli("--tag", "birthday", "--json", library=root).stdout)["results"]
    assert [x["path"] for x in res] == [str(dest / "2021/Birthday/c.jpg")]

    r = run_cli("undo", "--json", library=root)
    assert r.returncode == 0, r.stderr
    assert tree_digest(src) == before                                   # byte-identical, sidecars included
    assert not any(p.is_file() for p in dest.rglob("*"))
    res = json.loads(run_cli("--tag", "birthday", "--json", library=root).stdout)["results"]
    assert [x["path"] for x in res] == [str(c)]

    r = run_cli("organize", "--into", str(dest), "--pattern", "{nope}", library=root)
    assert r.returncode == 2 and "unknown field" in r.stderr
    r = run_cli("organize", library=root)
    assert r.returncode == 2 and "--into" in r.stderr


def test_organize_copy_mode_and_its_undo(library, tmp_path):
    src = tmp_path / "import"
    a = dated_photo(src / "a.jpg", 1, "2020:01:02 03:04:05")
    library.index([src], faces=False)
    dest = tmp_path / "Library"
    r = run_cli("organize", "--into", str(dest), "--pattern", "{year}", "--copy", "--apply", "--json",
                library=library.paths.root)
    assert r.returncode == 0, r.stderr
    copy = dest / "2020" / "a.jpg"
    assert copy.read_bytes() == a.read_bytes() and a.exists()
    paths = {x["path"] for x in json.loads(run_cli("x", "--json", library=library.paths.root).stdout)["results"]}
    assert paths == {str(a), str(copy)}
    run_cli("undo", library=library.paths.root)
    assert not copy.exists() and a.exists()
    paths = {x["path"] for x in json.loads(run_cli("x", "--json", library=library.paths.root).stdout)["results"]}
    assert paths == {str(a)}


# -- Google Takeout --------------------------------------------------------------------------------


def _takeout_json(path: Path, title: str, ts: int | None, lat: float = 0.0, lon: float = 0.0,
                  description: str = "", people: list[str] | None = None) -> None:
    doc = {"title": title, "description": description, "imageViews": "3",
           "creationTime": {"timestamp": "1700000000", "formatted": "..."},
           "geoData": {"latitude": lat, "longitude": lon, "altitude": 0.0},
           "url": "https://photos.google.com/photo/x"}
    if ts is not None:
        doc["photoTakenTime"] = {"timestamp": str(ts), "formatted": "..."}
    if people:
        doc["people"] = [{"name": n} for n in people]
    path.write_text(json.dumps(doc), encoding="utf-8")


@requires_exiftool
def test_takeout_dates_places_people_with_truncated_and_numbered_names(library, tmp_path):
    export = tmp_path / "Takeout" / "Google Photos" / "Trip to Paris"
    export.mkdir(parents=True)
    ts = int(datetime(2019, 7, 14, 10, 0, tzinfo=timezone.utc).timestamp())
    plain = write_photo(export / "IMG_0001.jpg", seed=1)
    _takeout_json(export / "IMG_0001.jpg.json", "IMG_0001.jpg", ts, 48.8584, 2.2945, "Eiffel tower", ["Alice", "Bob"])
    # Two photos with one title: the copy is IMG_0002(1).jpg, its JSON IMG_0002.jpg(1).json.
    first = write_photo(export / "IMG_0002.jpg", seed=2)
    second = write_photo(export / "IMG_0002(1).jpg", seed=3)
    _takeout_json(export / "IMG_0002.jpg.json", "IMG_0002.jpg", ts + 60, 48.8606, 2.3376)
    _takeout_json(export / "IMG_0002.jpg(1).json", "IMG_0002.jpg", ts + 120, 48.853, 2.3499, people=["Carol"])
    # A long name: Takeout cut the JSON name (51 characters); the title keeps the whole name.
    long_name = "PXL_20190714_100500123.PORTRAIT-01.COVER_with_a_very_long_tail.jpg"
    longp = write_photo(export / long_name, seed=4)
    _takeout_json(export / (long_name + ".supplemental-metadata")[:46].__add__(".json"), long_name, ts + 180,
                  48.8738, 2.295)
    # An edited copy shares its original's JSON.
    edited = write_photo(export / "IMG_0001-edited.jpg", seed=5)
    library.index([tmp_path / "Takeout"], faces=False)
    root = library.paths.root

    from photosearch.store.catalog import Catalog

    with Catalog.open(library.paths.catalog, read_only=True) as cat:
        row = {Path(r["path"]).name: r for r in (cat.photo_by_path(str(p)) for p in
                                                  (plain, first, second, longp, edited))}
        people = cat.photo_people([r["id"] for r in row.values()])
    assert row["IMG_0001.jpg"]["taken_at"] == datetime(2019, 7, 14, 10, 0)
    assert abs(row["IMG_0001.jpg"]["gps_lat"] - 48.8584) < 1e-6 and row["IMG_0001.jpg"]["description"] == "Eiffel tower"
    assert row["IMG_0002.jpg"]["taken_at"] == datetime(2019, 7, 14, 10, 1)
    assert row["IMG_0002(1).jpg"]["taken_at"] == datetime(2019, 7, 14, 10, 2)   # its own (1) JSON
    assert row[long_name]["taken_at"] == datetime(2019, 7, 14, 10, 3)
    assert row["IMG_0001-edited.jpg"]["taken_at"] == datetime(2019, 7, 14, 10, 0)
    assert people[row["IMG_0001.jpg"]["id"]] == ["Alice", "Bob"]
    assert people[row["IMG_0002(1).jpg"]["id"]] == ["Carol"]

    # The place names the event; people filter searches.
    evs = json.loads(run_cli("events", "--json", library=root).stdout)["events"]
    assert len(evs) == 1 and "Paris" in evs[0]["name"] and evs[0]["photos"] == 5
    got = {Path(x["path"]).name for x in json.loads(run_cli("x", "--person", "alice", "--json", library=root).stdout)["results"]}
    assert got == {"IMG_0001.jpg", "IMG_0001-edited.jpg"}
    got = {Path(x["path"]).name for x in json.loads(run_cli("--event", "Paris", "--json", library=root).stdout)["results"]}
    assert len(got) == 5
    # Rating a photo keeps what Takeout said about it (people, place, event).
    assert run_cli("rate", "3", str(plain), library=root).returncode == 0
    with Catalog.open(library.paths.catalog, read_only=True) as cat:
        assert cat.photo_people([row["IMG_0001.jpg"]["id"]])[row["IMG_0001.jpg"]["id"]] == ["Alice", "Bob"]
        assert row["IMG_0001.jpg"]["id"] in cat.takeout_rows()
    # The shard path reads the same Takeout sidecars.
    import shutil

    from photosearch.api import Library

    sharded = Library(tmp_path / "sharded-lib")
    shutil.copytree(library.paths.models, sharded.paths.models)
    sharded.index_sharded([tmp_path / "Takeout"], engine="local", faces=False)
    with Catalog.open(sharded.paths.catalog, read_only=True) as cat:
        srow = {Path(r["path"]).name: r for r in (cat.photo_by_path(str(p)) for p in (plain, second, longp))}
        speople = cat.photo_people([r["id"] for r in srow.values()])
    for name in ("IMG_0001.jpg", "IMG_0002(1).jpg", long_name):
        assert srow[name]["taken_at"] == row[name]["taken_at"]
    assert speople[srow["IMG_0001.jpg"]["id"]] == ["Alice", "Bob"]

    # sync offers what Takeout knew and the files lack, and writes it.
    r = run_cli("sync", "--json", library=root)
    item = next(f for f in json.loads(r.stdout)["files"] if f["path"] == str(plain))
    assert any("DateTimeOriginal: 2019-07-14T10:00:00" in c for c in item["changes"])
    assert any("PersonInImage: Alice" in c for c in item["changes"])
    assert run_cli("sync", "--apply", library=root).returncode == 0
    out = json.loads(subprocess.run(["exiftool", "-j", "-n", "-XMP:all", str(plain)], capture_output=True, text=True,
                                    check=True).stdout)[0]
    assert out["DateTimeOriginal"].startswith("2019:07:14 10:00:00")
    assert abs(out["GPSLatitude"] - 48.8584) < 1e-4 and abs(out["GPSLongitude"] - 2.2945) < 1e-4
    assert set(out["PersonInImage"]) == {"Alice", "Bob"} and out["Description"] == "Eiffel tower"


# -- watch ------------------------------------------------------------------------------------------


def _photosearch(*args: str, library: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PHOTOSEARCH_LIBRARY": str(library)}
    return subprocess.Popen([sys.executable, "-m", "photosearch", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def test_watch_once_quarantines_exact_duplicates_and_organizes(library, tmp_path):
    lib_photos = tmp_path / "photos"
    known = dated_photo(lib_photos / "known.jpg", 1, "2022:03:04 05:06:07")
    library.index([lib_photos], faces=False)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    shutil.copy(known, inbox / "copy-of-known.jpg")
    new = dated_photo(inbox / "sub" / "new.jpg", 2, "2022:08:09 10:11:12")
    dest, quarantine = tmp_path / "Library", tmp_path / "quarantine"
    r = run_cli("watch", str(inbox), "--once", "--settle", "0.5", "--no-faces", "--quarantine", str(quarantine),
                "--into", str(dest), "--pattern", "{year}/{month:02}", "--json", library=library.paths.root)
    assert r.returncode == 0, r.stderr
    batches = json.loads(r.stdout)["batches"]  # --once: one JSON document
    assert sum(b["indexed"] for b in batches) == 2
    assert (quarantine / "copy-of-known.jpg").read_bytes() == known.read_bytes()
    assert (dest / "2022" / "08" / "new.jpg").is_file() and not new.exists()
    assert known.exists()  # the library's own copy is never touched
    res = {x["path"] for x in json.loads(run_cli("x", "--json", library=library.paths.root).stdout)["results"]}
    assert res == {str(known), str(dest / "2022" / "08" / "new.jpg")}


def test_watch_waits_for_a_slow_copy_and_stops_cleanly(library, tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    source = dated_photo(tmp_path / "src" / "slow.jpg", 7, "2024:01:02 03:04:05")
    data = source.read_bytes()
    dest = tmp_path / "Library"
    proc = _photosearch("watch", str(inbox), "--settle", "1.5", "--no-faces", "--into", str(dest),
                        "--pattern", "{year}", "--json", library=library.paths.root)
    try:
        time.sleep(2.0)  # the watcher is up
        target = inbox / "slow.jpg"
        with open(target, "wb") as f:  # a slow copy: pauses shorter than the settle time
            for i in range(0, len(data), max(1, len(data) // 5)):
                f.write(data[i:i + max(1, len(data) // 5)])
                f.flush()
                time.sleep(0.6)
        deadline = time.monotonic() + 120
        while not (dest / "2024" / "slow.jpg").exists() and time.monotonic() < deadline:
            time.sleep(0.3)
        assert (dest / "2024" / "slow.jpg").read_bytes() == data  # the whole file, not a prefix
    finally:
        proc.send_signal(signal.SIGTERM)
        out, errs = proc.communicate(timeout=60)
    assert proc.returncode == 0, errs
    batches = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert sum(b["indexed"] for b in batches) == 1 and not any(b["skipped"] for b in batches)
    r = run_cli("x", "--json", library=library.paths.root)
    assert [x["path"] for x in json.loads(r.stdout)["results"]] == [str(dest / "2024" / "slow.jpg")]
