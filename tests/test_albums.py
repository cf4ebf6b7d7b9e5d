"""Albums (issue 21): manual and smart (a saved search kept live), `--album` as a filter, and
albums written into the files as the keyword Albums/NAME, read back by a fresh library."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import run_cli, write_photo


def _json(r: subprocess.CompletedProcess[str]) -> dict:
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def _names(doc: dict) -> set[str]:
    return {Path(x["path"]).name for x in doc["results"]}


def test_manual_and_smart_albums_and_the_album_filter(library, tmp_path):
    photos = tmp_path / "photos"
    files = [write_photo(photos / f"p{i}.jpg", seed=i, size=(160, 120)) for i in range(4)]
    library.index([photos], faces=False)
    root = library.paths.root

    assert _json(run_cli("album", "create", "Summer  trip", "--json", library=root)) == {"album": "Summer trip",
                                                                                        "kind": "manual"}
    doc = _json(run_cli("album", "add", "summer trip", str(files[0]), str(files[1]), "--json", library=root))
    assert doc["added"] == 2
    r = run_cli("album", "add", "Summer trip", str(files[2]), str(tmp_path / "nope.jpg"), "--json", library=root)
    assert r.returncode == 3 and json.loads(r.stdout)["added"] == 1            # the rest done, the missing one named
    assert _names(_json(run_cli("album", "show", "Summer trip", "--json", library=root))) == {"p0.jpg", "p1.jpg",
                                                                                                "p2.jpg"}
    assert _names(_json(run_cli("--album", "summer trip", "--json", library=root))) == {"p0.jpg", "p1.jpg", "p2.jpg"}
    assert _names(_json(run_cli("anything", "--album", "Summer trip", "--json", library=root))) <= {
        "p0.jpg", "p1.jpg", "p2.jpg"}
    assert _json(run_cli("album", "remove", "Summer trip", str(files[1]), "--json", library=root))["removed"] == 1

    # A smart album: a saved search, run again each time (a photo tagged later joins it).
    run_cli("tag", "add", "Beach", str(files[3]), library=root)
    assert _json(run_cli("album", "create", "Beaches", "--tag", "beach", "--json", library=root))["kind"] == "smart"
    assert _names(_json(run_cli("album", "show", "Beaches", "--json", library=root))) == {"p3.jpg"}
    run_cli("tag", "add", "Beach", str(files[0]), library=root)
    assert _names(_json(run_cli("album", "show", "Beaches", "--json", library=root))) == {"p0.jpg", "p3.jpg"}
    albums = {a["name"]: a for a in _json(run_cli("album", "list", "--json", library=root))["albums"]}
    assert albums["Summer trip"]["photos"] == 2 and albums["Beaches"]["filters"] == {"tag": ["beach"]}

    # Bad input: one line each.
    for args in (("album", "create", "Summer trip"), ("album", "create", "a/b"), ("album", "add", "Nope", str(files[0])),
                 ("--album", "nope"), ("--album", "Beaches"), ("album", "add", "Beaches", str(files[0])),
                 ("album", "create", "X", "--rating", "9"), ("album", "show", "nope")):
        r = run_cli(*args, library=root)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, (args, r.stderr)
    assert _json(run_cli("album", "delete", "Summer trip", "--json", library=root))["deleted"]
    assert all(f.exists() for f in files)                                     # photos stay


@pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool is not installed")
def test_an_album_written_into_the_files_comes_back_in_a_fresh_library(library, tmp_path):
    photos = tmp_path / "photos"
    a = write_photo(photos / "a.jpg", seed=1, size=(160, 120))
    write_photo(photos / "b.jpg", seed=2, size=(160, 120))
    library.index([photos], faces=False)
    root = library.paths.root
    run_cli("album", "create", "Grandma", library=root)
    run_cli("album", "add", "Grandma", str(a), library=root)
    items = _json(run_cli("sync", "--apply", "--json", library=root))["files"]
    assert [Path(i["path"]).name for i in items] == ["a.jpg"]
    meta = json.loads(subprocess.run(["exiftool", "-j", "-G1", str(a)], capture_output=True, text=True).stdout)[0]
    assert "Albums/Grandma" in meta["XMP-digiKam:TagsList"] and "Albums|Grandma" in meta["XMP-lr:HierarchicalSubject"]
    # A fresh library over the same files: the album is back, and "Albums" is no tag.
    from photosearch.api import Library

    fresh = Library(tmp_path / "fresh")
    shutil.copytree(root / "models", fresh.paths.root / "models")
    fresh.index([photos], faces=False)
    albums = {x["name"]: x for x in fresh.albums()}
    assert albums["Grandma"]["photos"] == 1
    assert _names(_json(run_cli("--album", "Grandma", "--json", library=fresh.paths.root))) == {"a.jpg"}
    tags = {t["name"] for t in _json(run_cli("tags", "--json", library=fresh.paths.root))["tags"]}
    assert "Albums" not in tags and "Grandma" not in tags
    # A film of the album plans from its photos only.
    plan = _json(run_cli("film", "--album", "Grandma", "--plan", "--json", "--duration", "6", library=fresh.paths.root))
    assert {Path(s["path"]).name for s in plan["plan"]["shots"] if s.get("path")} == {"a.jpg"}
