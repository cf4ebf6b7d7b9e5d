"""Incremental, read-only, bad-input-proof indexing."""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import SHARED, needs_shared, write_photo
from photosearch.models.fakes import install_fake_clip
from photosearch.store.catalog import Catalog
from photosearch.errors import InputError, UsageError


def _catalog(library):
    return Catalog.open(library.paths.catalog, read_only=True)


def _rows(library) -> dict[str, int]:
    with _catalog(library) as cat:
        return {p: k.id for p, k in cat.known_files().items()}


def _vector(library, photo_id: int) -> np.ndarray:
    with _catalog(library) as cat:
        _, v = cat.vectors("fakeclip", [photo_id])
    return v[0]


def _folder(tmp_path: Path, n: int = 6) -> Path:
    folder = tmp_path / "photos"
    for i in range(n):
        write_photo(folder / ("sub" if i % 2 else "") / f"img{i}.jpg", seed=i)
    return folder


def test_first_run_then_unchanged(library, tmp_path):
    folder = _folder(tmp_path)
    s = library.index([folder])
    assert (s.indexed, s.unchanged, s.moved, s.removed, s.skipped) == (6, 0, 0, 0, [])
    assert s.total_photos == 6
    again = library.index([folder])
    assert (again.indexed, again.unchanged) == (0, 6)
    # A bare re-run walks the folders indexed before.
    bare = library.index()
    assert bare.unchanged == 6


def test_move_rename_copy_delete_change(library, tmp_path):
    folder = _folder(tmp_path)
    library.index([folder])
    before = _rows(library)
    moved_src, moved_dst = folder / "img0.jpg", folder / "sub" / "deeper" / "renamed.jpg"
    moved_dst.parent.mkdir(parents=True)
    vec_before = _vector(library, before[str(moved_src)])
    os.rename(moved_src, moved_dst)
    shutil.copy2(folder / "img2.jpg", folder / "copy-of-2.jpg")
    (folder / "img4.jpg").unlink()
    changed = folder / "sub" / "img1.jpg"
    write_photo(changed, seed=99)
    os.utime(folder / "sub" / "img3.jpg", ns=(time.time_ns(), time.time_ns() + 10**9))  # touched only

    s = library.index([folder])
    assert (s.moved, s.reused, s.removed) == (1, 1, 1)
    assert s.indexed == 1  # only the changed file was embedded again
    assert s.unchanged == 3  # img2, img5 and the touched img3
    after = _rows(library)
    assert after[str(moved_dst)] == before[str(moved_src)]  # moved: same id...
    assert np.array_equal(_vector(library, after[str(moved_dst)]), vec_before)  # ...same vector
    assert str(folder / "img4.jpg") not in after
    assert after[str(changed)] != before[str(changed)]  # changed bytes: a new id
    assert np.array_equal(_vector(library, after[str(folder / "copy-of-2.jpg")]),
                          _vector(library, after[str(folder / "img2.jpg")]))
    with _catalog(library) as cat:
        assert cat.count_photos() == 6 and cat.count_vectors("fakeclip") == 6
    # The vector index follows: searching returns only existing files.
    paths = {r.path for r in library.search_text("anything", limit=50)}
    assert paths == set(after)


def test_move_between_roots(library, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write_photo(a / "x.jpg", 1)
    write_photo(b / "y.jpg", 2)
    library.index([a, b])
    old = _rows(library)[str(a / "x.jpg")]
    os.rename(a / "x.jpg", b / "x.jpg")
    s = library.index([b])
    assert s.moved == 1 and _rows(library)[str(b / "x.jpg")] == old


def test_indexing_never_writes_photos(library, tmp_path):
    folder = _folder(tmp_path)
    if SHARED.is_dir():
        shutil.copytree(SHARED / "metadata", folder / "metadata")
    def snapshot():
        return {p: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
                for p in folder.rglob("*") if p.is_file()}
    before = snapshot()
    library.index([folder])
    assert snapshot() == before


@needs_shared
def test_broken_corpus(library, tmp_path):
    folder = tmp_path / "broken"
    shutil.copytree(SHARED / "broken", folder)
    s = library.index([folder])
    skipped = {Path(x.path).name: x.reason for x in s.skipped}
    with open(SHARED / "broken" / "expected.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    indexed = set(_rows(library))
    for row in rows:
        name, kind = row["file"], row["kind"]
        path = str(folder / name)
        if kind in ("ok", "orientation"):
            assert path in indexed, (name, skipped.get(name))
        elif kind == "truncated" and name.endswith(".heic"):
            assert (path in indexed) != (name in skipped)  # pillow-heif salvages a 16x16 image
        else:
            assert name in skipped and path not in indexed, name
            assert skipped[name] and "\n" not in skipped[name]
    assert s.indexed == len(indexed)
    # The second run neither retries nor lists the same bad files: it counts them, and the
    # library remembers each with its reason (`index --show-skipped`).
    again = library.index([folder])
    assert again.indexed == 0 and again.skipped == [] and again.skipped_before == len(skipped)
    assert {Path(x["path"]).name: x["reason"] for x in library.skipped_files()} == skipped


@needs_shared
def test_real_photos_metadata_in_catalog(library, tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    for name in ("Apple.jpg", "GPS.jpg", "MWG.jpg", "IPTC.jpg"):
        shutil.copy2(SHARED / "metadata" / name, folder / name)
    shutil.copy2(SHARED / "broken" / "pug.heic", folder / "pug.heic")
    library.index([folder])
    with _catalog(library) as cat:
        apple = cat.photo_by_path(str(folder / "Apple.jpg"))
        pug = cat.photo_by_path(str(folder / "pug.heic"))
        iptc = cat.photo_by_path(str(folder / "IPTC.jpg"))
    assert apple["camera_make"] == "Apple" and apple["camera_model"] == "iPhone 7"
    assert apple["gps_lat"] == pytest.approx(53.38285, abs=1e-3) and apple["taken_at"].year == 2016
    assert pug["format"] == "HEIF" and (pug["width"], pug["height"]) == (4032, 3024)
    assert iptc["keywords"] == ["ExifTool", "Test", "IPTC"] and iptc["title"] == "Test IPTC picture"


def test_model_switch_reembeds(library, tmp_path):
    folder = _folder(tmp_path, 4)
    library.index([folder])
    install_fake_clip(library.models.root, "second", seed=5)  # a second model, now the active one
    s = library.index()
    assert s.indexed == 4 and s.model == "second"
    with _catalog(library) as cat:
        assert cat.vector_models() == {"fakeclip": 4, "second": 4}
    assert len(library.search_text("x")) == 4
    library.use_model("fakeclip")
    assert library.index().unchanged == 4


def test_bad_roots(library, tmp_path):
    with pytest.raises(InputError, match="no such file or folder"):
        library.index([tmp_path / "missing"])
    with pytest.raises(UsageError, match="nothing to index"):
        library.index()


def test_unwritable_library(tmp_path, template_library):
    """A library path that cannot be created gives a one-line LibraryError, not a traceback."""
    from photosearch.api import Library
    from photosearch.errors import LibraryError

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    lib = Library(blocker / "library")
    shutil.copytree(template_library / "models", tmp_path / "models")
    from photosearch.ingest.runners import run_index

    model = Library(template_library).models.load()
    with pytest.raises(LibraryError, match="cannot create library folder"):
        run_index(lib.paths, model, model.name, [_folder(tmp_path, 1)])
