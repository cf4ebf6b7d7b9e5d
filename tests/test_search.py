"""Search results checked against brute-force oracles over the catalog's vectors."""

from __future__ import annotations

import os
import shutil
from datetime import datetime

import numpy as np
import pytest

from conftest import SHARED, needs_shared, write_photo
from photosearch.store.catalog import Catalog
from photosearch.errors import InputError, NotIndexedError, UsageError
from photosearch.query.search import make_filters
from photosearch.store.vectors import VectorIndex, exact_topk_streaming, recall_at_k

DATES = [datetime(2019, 5, 1), datetime(2020, 7, 4), datetime(2021, 1, 2), datetime(2022, 12, 31)]
CAMERAS = [("Canon", "Canon EOS R5"), ("NIKON CORPORATION", "NIKON D850"), ("Apple", "iPhone 13 Pro"), ("", "")]


@pytest.fixture
def indexed(library, tmp_path):
    """24 photos with dates and cameras in EXIF, in two folders."""
    folder = tmp_path / "photos"
    for i in range(24):
        make, model = CAMERAS[i % 4]
        exif = {0x0132: DATES[i % 4].strftime("%Y:%m:%d %H:%M:%S")}
        if make:
            exif.update({0x010F: make, 0x0110: model})
        write_photo(folder / ("trip" if i < 12 else "home") / f"p{i:02}.jpg", seed=100 + i, exif=exif)
    library.index([folder])
    return library, folder


def _oracle(library, query: np.ndarray, allowed: set[str] | None = None) -> list[tuple[str, float]]:
    with Catalog.open(library.paths.catalog, read_only=True) as cat:
        ids, vecs = cat.vectors("fakeclip")
        rows = cat.photos_by_ids(ids.tolist())
    scores = vecs @ query
    out = [(rows[int(i)]["path"], float(s)) for i, s in zip(ids, scores)]
    if allowed is not None:
        out = [o for o in out if o[0] in allowed]
    return sorted(out, key=lambda o: -o[1])


def _check_same(results, oracle, limit):
    assert [r.path for r in results] == [p for p, _ in oracle[:limit]]
    assert np.allclose([r.score for r in results], [s for _, s in oracle[:limit]], atol=1e-5)


def test_text_search_equals_brute_force(indexed):
    library, _ = indexed
    q = library.models.load().encode_text(["a red square on a blue sky"])[0]
    results = library.search_text("a red square on a blue sky", limit=10)
    _check_same(results, _oracle(library, q), 10)
    assert [r.rank for r in results] == list(range(1, 11))


def test_filters_equal_brute_force_over_the_subset(indexed):
    library, folder = indexed
    q = library.models.load().encode_text(["mountains"])[0]
    with Catalog.open(library.paths.catalog, read_only=True) as cat:
        rows = list(cat.photos_by_ids(cat.ids_with_vectors("fakeclip").tolist()).values())
    cases = [
        (make_filters(after="2020-07"), lambda r: r["taken_at"] >= datetime(2020, 7, 1)),
        (make_filters(before="2021"), lambda r: r["taken_at"] < datetime(2021, 1, 1)),
        (make_filters(after="2020", before="2022"), lambda r: datetime(2020, 1, 1) <= r["taken_at"] < datetime(2022, 1, 1)),
        (make_filters(camera="nikon"), lambda r: "NIKON" in (r["camera_make"] or "")),
        (make_filters(camera="iphone"), lambda r: "iPhone" in (r["camera_model"] or "")),
        (make_filters(folder=folder / "trip"), lambda r: "/trip/" in r["path"]),
        (make_filters(folder=folder / "home", camera="canon"), lambda r: "/home/" in r["path"] and r["camera_make"] == "Canon"),
    ]
    for filters, keep in cases:
        allowed = {r["path"] for r in rows if keep(r)}
        assert 0 < len(allowed) < len(rows)
        results = library.search_text("mountains", filters=filters, limit=50)
        _check_same(results, _oracle(library, q, allowed), 50)


def test_min_score_and_limit(indexed):
    library, _ = indexed
    everything = library.search_text("a cat", limit=100)
    assert len(everything) == 24
    cut = everything[5].score
    some = library.search_text("a cat", limit=100, min_score=cut)
    assert all(r.score >= cut for r in some) and len(some) >= 6
    assert len(library.search_text("a cat", limit=3)) == 3


def test_like_inside_and_outside_the_library(indexed, tmp_path):
    library, folder = indexed
    photo = folder / "trip" / "p03.jpg"
    inside = library.search_image(photo, limit=5)
    assert str(photo) not in [r.path for r in inside]  # the photo itself is left out
    with Catalog.open(library.paths.catalog, read_only=True) as cat:
        pid = cat.photo_by_path(str(photo))["id"]
        _, v = cat.vectors("fakeclip", [pid])
    oracle = [o for o in _oracle(library, v[0]) if o[0] != str(photo)]
    _check_same(inside, oracle, 5)
    # The same bytes outside the library are recognised by hash: the same answer.
    outside = tmp_path / "elsewhere" / "copy.jpg"
    outside.parent.mkdir()
    shutil.copy(photo, outside)
    assert [r.path for r in library.search_image(outside, limit=5)] == [r.path for r in inside]
    # A new photo is embedded on the fly; results rank by its own vector.
    new = write_photo(tmp_path / "new.jpg", seed=4242)
    q = library.models.load().encode_images([__import__("PIL.Image").Image.open(new).convert("RGB")])[0]
    res = library.search_image(new, limit=5)
    assert [r.path for r in res] == [p for p, _ in _oracle(library, q)[:5]]


def test_like_errors(indexed, tmp_path):
    library, _ = indexed
    with pytest.raises(InputError, match="no such file"):
        library.search_image(tmp_path / "missing.jpg")
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    with pytest.raises(InputError, match="cannot use"):
        library.search_image(bad)
    with pytest.raises(InputError, match="folder"):
        library.search_image(tmp_path)


def test_bad_filters(indexed, tmp_path):
    with pytest.raises(UsageError):
        make_filters(after="yesterday")
    with pytest.raises(UsageError):
        make_filters(after="2022", before="2021")
    with pytest.raises(InputError):
        make_filters(folder=tmp_path / "nope")
    library, _ = indexed
    with pytest.raises(UsageError):
        library.search_text("   ")


def test_empty_library(library):
    with pytest.raises(NotIndexedError, match="photosearch index"):
        library.search_text("beach")


def test_stale_vector_index_is_synced(indexed, tmp_path, monkeypatch):
    """A catalog newer than its FAISS file (e.g. after kill -9) still answers exactly."""
    library, folder = indexed
    state_file = library.paths.vectors
    old_files = set(os.listdir(state_file))
    write_photo(folder / "home" / "late.jpg", seed=777)
    from photosearch.ingest import finish
    from photosearch.ingest.runners import run_index

    with monkeypatch.context() as m:  # simulate dying before the index file is written
        m.setattr(finish, "save_index_if_stale", lambda *a, **k: None)
        run_index(library.paths, library.models.load(), "fakeclip", [folder])
    assert set(os.listdir(state_file)) == old_files
    with Catalog.open(library.paths.catalog, read_only=True) as cat:
        state = cat.index_state("fakeclip")
        assert state["version"] < cat.data_version()
    q = library.models.load().encode_text(["late"])[0]
    _check_same(library.search_text("late", limit=25), _oracle(library, q), 25)
    assert library.status()["index"]["fakeclip"]["current"] is False
    library.index()
    assert library.status()["index"]["fakeclip"]["current"] is True


def _clustered(n: int, d: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((max(8, n // 100), d))
    x = centers[rng.integers(0, len(centers), n)] + 0.6 * rng.standard_normal((n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_ivf_recall_against_exact():
    n, d = 30_000, 64
    x = _clustered(n, d, 0)
    ids = np.arange(n, dtype=np.int64) * 7 + 3
    index = VectorIndex.build(ids, x, exact_max=10_000)
    assert index.kind == "ivf" and index.nprobe is not None
    rng = np.random.default_rng(9)
    q = x[rng.integers(0, n, 200)] + 0.5 * rng.standard_normal((200, d)).astype(np.float32) / np.sqrt(d) * 4
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    truth = exact_topk_streaming(q, iter([(ids, x)]), 10)
    _, found = index.search(q, 10)
    assert recall_at_k(truth, found) >= 0.95
    # Filtered IVF search only returns allowed ids.
    allowed = ids[::3]
    _, f = index.search(q[:5], 10, allowed=allowed)
    assert np.isin(f[f >= 0], allowed).all()
    # Removing and adding by id keeps the id set exact.
    index.remove(ids[:100])
    assert index.ntotal == n - 100 and not np.isin(ids[:100], index.ids()).any()


def test_flat_index_is_exact():
    x = _clustered(500, 16, 1)
    ids = np.arange(500, dtype=np.int64) + 1000
    index = VectorIndex.build(ids, x, exact_max=1000)
    q = x[:3]
    truth = exact_topk_streaming(q, iter([(ids, x)]), 10)
    _, found = index.search(q, 10)
    assert np.array_equal(truth, found)


@needs_shared
def test_real_photos_search_like_finds_identical_copy(library, tmp_path):
    folder = tmp_path / "photos"
    shutil.copytree(SHARED / "photos", folder)
    shutil.copy(SHARED / "faces" / "skimage_astronaut.jpg", folder / "astronaut-copy.jpg")
    library.index([folder])
    res = library.search_image(folder / "skimage_astronaut.jpg", limit=3)
    assert res[0].path == str(folder / "astronaut-copy.jpg") and res[0].score == pytest.approx(1.0, abs=1e-5)


def test_unfiltered_search_reads_no_catalog(indexed):
    """The fast path answers from the memory-mapped index and rows file: DuckDB is never imported."""
    import subprocess
    import sys

    library, _ = indexed
    code = ("import sys; from photosearch.api import Library; r = Library(sys.argv[1]).search_text('a boat');"
            "assert 'duckdb' not in sys.modules and 'torch' not in sys.modules; print(len(r), r[0].path)")
    out = subprocess.run([sys.executable, "-c", code, str(library.paths.root)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    expected = library.search_text("a boat")  # same process: also the fast path
    assert out.stdout.split() == [str(len(expected)), expected[0].path]


def test_moved_file_not_yet_saved_in_index_is_found_at_its_new_path(indexed, monkeypatch):
    """After a catalog change the published index is stale; results come from the catalog."""
    library, folder = indexed
    from photosearch.ingest import finish
    from photosearch.ingest.runners import run_index

    monkeypatch.setattr(finish, "save_index_if_stale", lambda *a, **k: None)  # the index is never saved
    old = folder / "trip" / "p00.jpg"
    new = folder / "trip" / "renamed.jpg"
    old.rename(new)
    summary = run_index(library.paths, library.models.load(), "fakeclip", [folder])
    monkeypatch.undo()
    assert summary.moved == 1
    paths = {r.path for r in library.search_text("anything", limit=100)}
    assert str(new) in paths and str(old) not in paths
