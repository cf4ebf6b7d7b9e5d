"""Sharded indexing (issue 8): Parquet shards, crash + resume, DuckDB reading shards, the on-disk
merged IVF index against exact search, and the same shards embedded on a local Ray cluster that
listens on 127.0.0.1 only (marked `ray`: run by .ci/run, not by the default `pytest -q`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import SHARED, needs_shared, run_cli, write_photo


def _photos(folder: Path, n: int) -> list[Path]:
    return [write_photo(folder / f"p{i:03d}.jpg", seed=500 + i, size=(120, 90)) for i in range(n)]


def _catalog_state(lib) -> tuple[dict[str, tuple], dict[str, np.ndarray]]:
    from photosearch.store.catalog import Catalog

    with Catalog.open(lib.paths.catalog, read_only=True) as cat:
        rows = {r[0]: r[1:] for r in cat.con.execute(
            "SELECT path, content_hash, width, height, format FROM photos").fetchall()}
        model = lib.models.active_name()
        ids, vecs = cat.vectors(model)
        paths = {i: p for i, p in cat.con.execute("SELECT id, path FROM photos").fetchall()}
    return rows, {paths[int(i)]: v for i, v in zip(ids, vecs)}


@pytest.mark.convert  # the real ONNX model: its batches must give the same vectors through either path
def test_local_shards_equal_the_pipeline_and_duckdb_reads_them(converted_library, tmp_path):
    import duckdb

    library = converted_library

    photos = tmp_path / "photos"
    _photos(photos, 23)
    (photos / "broken.jpg").write_bytes(b"not a jpeg")
    run = library.index_sharded([photos], engine="local", shard_size=10)
    assert (run.planned, run.embedded, run.ingested, run.photos) == (3, 3, 3, 23)
    assert [s["path"] for s in run.skipped] == [str(photos / "broken.jpg")]
    rows, vecs = _catalog_state(library)

    from photosearch.api import Library

    other = Library(tmp_path / "pipeline-lib")
    import shutil

    shutil.copytree(library.paths.models, other.paths.models)
    other.index([photos], faces=False)
    rows2, vecs2 = _catalog_state(other)
    assert rows == rows2
    for p in vecs:
        assert float(vecs[p] @ vecs2[p]) > 0.9999  # the same embedding through either path

    out = library.paths.root / "shards" / "out"
    n = duckdb.connect().execute(f"SELECT count(*) FROM read_parquet('{out}/*.parquet') WHERE skip IS NULL").fetchone()[0]
    assert n == 23
    # Searching works on the ingested shards, and a rerun has nothing to do.
    r = run_cli("anything", "--json", "--limit", "3", library=library.paths.root)
    assert len(json.loads(r.stdout)["results"]) == 3
    again = library.index_sharded([photos], engine="local", shard_size=10)
    assert (again.planned, again.embedded, again.ingested) == (0, 0, 0)


def test_crash_after_a_shard_then_resume(library, tmp_path):
    photos = tmp_path / "photos"
    _photos(photos, 25)
    env = {"PHOTOSEARCH_TEST_CRASH_AFTER_SHARDS": "1"}
    r = run_cli("index", str(photos), "--engine", "local", "--shard-size", "10", "--json", library=library.paths.root,
                env=env)
    assert r.returncode == 137  # died after embedding one shard, before any ingest
    out = library.paths.root / "shards" / "out"
    assert len(list(out.glob("shard-*.parquet"))) == 1
    assert not list(out.glob(".*tmp"))
    r = run_cli("index", "--engine", "local", "--json", library=library.paths.root)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert (doc["planned"], doc["embedded"], doc["ingested"], doc["photos"]) == (0, 2, 3, 25)
    rows, _ = _catalog_state(library)
    assert len(rows) == 25


def test_ondisk_merged_index_equals_exact_search_at_full_nprobe(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from photosearch.store.ondisk import OnDiskIndex, OnDiskSpec, sample_from_shards

    rng = np.random.default_rng(0)
    dim, shards, per = 32, 4, 500
    folder = tmp_path / "out"
    folder.mkdir()
    all_ids, all_vecs = [], []
    for s in range(shards):
        v = rng.standard_normal((per, dim)).astype(np.float32)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        ids = np.arange(s * per, (s + 1) * per) * 7 + 3  # sparse, stable ids
        pq.write_table(pa.table({"id": ids, "vector": pa.array(v.tolist(), pa.list_(pa.float32(), dim)),
                                 "skip": pa.array([None] * per, pa.string())}), folder / f"shard-{s:06d}.parquet")
        all_ids.append(ids)
        all_vecs.append(v)
    files = sorted(folder.glob("*.parquet"))
    idx = OnDiskIndex(tmp_path / "ivf")
    spec = OnDiskSpec.choose(dim, shards * per, bytes_per_vector=4 * dim)  # the budget allows flat codes
    assert spec.codec == "Flat"
    idx.train(spec, sample_from_shards(files[:3], 1000))
    assert idx.add_shards(files[:3], threads=2) == [f.stem for f in files[:3]]
    assert idx.merge() == 3 * per
    # A new shard joins without retraining or rebuilding the other blocks.
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "ivf" / "blocks").iterdir()}
    trained = (tmp_path / "ivf" / "trained.index").stat().st_mtime_ns
    assert idx.add_shards(files) == [files[3].stem]
    assert idx.merge() == shards * per
    assert all((tmp_path / "ivf" / "blocks" / n).stat().st_mtime_ns == t for n, t in before.items())
    assert (tmp_path / "ivf" / "trained.index").stat().st_mtime_ns == trained

    index = idx.load()
    ids, vecs = np.concatenate(all_ids), np.concatenate(all_vecs)
    q = rng.standard_normal((20, dim)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    scores, found = idx.search(index, q, 10, nprobe=spec.nlist)
    truth = ids[np.argsort(-(q @ vecs.T), axis=1)[:, :10]]
    assert (found == truth).all()
    # The PQ codec chosen under a small budget still finds most true neighbours.
    small = OnDiskSpec.choose(dim, shards * per, bytes_per_vector=16)
    assert small.codec == "PQ16" and small.opq


def _ids_by_path(lib) -> dict[str, int]:
    from photosearch.store.catalog import Catalog

    with Catalog.open(lib.paths.catalog, read_only=True) as cat:
        return {p: i for i, p in cat.con.execute("SELECT id, path FROM photos").fetchall()}


def test_shard_path_follows_moves_removals_changes_and_refreshes_in_place(library, tmp_path):
    photos = tmp_path / "photos"
    files = _photos(photos, 6)
    first = library.index_sharded([photos], engine="local", shard_size=4, faces=False)
    assert (first.photos, first.moved, first.removed) == (6, 0, 0)
    before = _ids_by_path(library)
    from photosearch.store.catalog import Catalog

    with Catalog.open(library.paths.catalog) as cat, cat.transaction():  # must follow the moved photo
        cat.set_ratings([before[str(files[0])]], 4)

    (photos / "sub").mkdir()
    moved_to = photos / "sub" / "renamed.jpg"
    files[0].rename(moved_to)
    files[1].unlink()
    write_photo(files[2], seed=999, size=(120, 90))  # same path, other bytes
    os.utime(files[2], ns=(1, 1))
    write_photo(photos / "new.jpg", seed=1000, size=(120, 90))
    run = library.index_sharded([photos], engine="local", shard_size=4, faces=False)
    assert (run.photos, run.moved, run.removed, run.refreshed) == (2, 1, 1, 0)
    after = _ids_by_path(library)
    assert after[str(moved_to)] == before[str(files[0])]  # the row (and its decisions) followed the file
    assert str(files[1]) not in after and str(files[0]) not in after
    assert after[str(files[2])] != before[str(files[2])]
    assert set(after) == {str(moved_to), str(files[2]), *map(str, files[3:]), str(photos / "new.jpg")}
    with Catalog.open(library.paths.catalog, read_only=True) as cat:
        assert cat.ratings() == {after[str(moved_to)]: 4}
    # Unchanged photos lacking a face scan are re-embedded and filled in place: ids stay.
    faces_run = library.index_sharded([photos], engine="local", shard_size=4, faces=True)
    assert faces_run.refreshed == 6 and faces_run.photos == 0
    assert _ids_by_path(library) == after
    again = library.index_sharded([photos], engine="local", shard_size=4, faces=True)
    assert (again.planned, again.refreshed, again.photos) == (0, 0, 0)


@needs_shared
def test_shard_embedder_finds_the_same_faces_as_the_pipeline(library, tmp_path):
    import shutil

    from photosearch.api import Library
    from photosearch.store.catalog import Catalog

    photos = tmp_path / "photos"
    photos.mkdir()
    picks = sorted(p for p in (SHARED / "faces").iterdir() if p.suffix.lower() == ".jpg")[:8]
    for p in picks:
        shutil.copy(p, photos / p.name)
    run = library.index_sharded([photos], engine="local", shard_size=3)
    other = Library(tmp_path / "pipeline-lib")
    shutil.copytree(library.paths.models, other.paths.models)
    summary = other.index([photos])
    assert run.faces == summary.faces > 0 and run.face_model == summary.face_model

    def faces(lib) -> dict[str, list[tuple]]:
        with Catalog.open(lib.paths.catalog, read_only=True) as cat:
            rows = cat.con.execute("SELECT p.path, f.x, f.y, f.w, f.h, f.vector FROM faces f "
                                   "JOIN photos p ON p.id = f.photo_id ORDER BY p.path, f.x").fetchall()
        out: dict[str, list[tuple]] = {}
        for path, x, y, w, h, v in rows:
            out.setdefault(path, []).append(((x, y, w, h), np.frombuffer(v, "<f4")))
        return out

    a, b = faces(library), faces(other)
    assert a.keys() == b.keys()
    for path in a:
        assert len(a[path]) == len(b[path])
        for (box1, v1), (box2, v2) in zip(a[path], b[path]):
            assert np.allclose(box1, box2, atol=1e-6)
            assert float(v1 @ v2) > 0.9999
    assert library.people()  # clustered after ingest
    hits = library.search_face(photos / picks[0].name, limit=3, all_faces=True)
    assert hits and hits[0].path != str(photos / picks[0].name)


def test_search_uses_the_on_disk_index_above_the_threshold_and_equals_exact(library, tmp_path, monkeypatch):
    from photosearch.store.catalog import Catalog, read_state

    model = library.models.load()
    monkeypatch.setenv("PHOTOSEARCH_ONDISK_MIN", "10")
    monkeypatch.setenv("PHOTOSEARCH_ONDISK_BYTES", str(4 * model.embed_dim))  # flat codes: exact in the lists
    monkeypatch.setenv("PHOTOSEARCH_ONDISK_BLOCK", "10")
    photos = tmp_path / "photos"
    _photos(photos, 23)
    library.index_sharded([photos], engine="local", shard_size=10, faces=False)
    state = read_state(library.paths.root)["indexes"][model.name]
    assert state["kind"] == "ondisk" and state["count"] == 23
    folder = library.paths.vectors / f"{model.name}-ondisk"
    assert (folder / "populated.index").is_file() and list(folder.glob("merged-*.ivfdata"))

    def exact(text: str, k: int) -> list[int]:
        q = model.encode_text([text])[0]
        with Catalog.open(library.paths.catalog, read_only=True) as cat:
            ids, vecs = cat.vectors(model.name)
        return [int(i) for i in ids[np.argsort(-(vecs @ q), kind="stable")[:k]]]

    for text in ("a red square", "blue sky"):
        got = [r.id for r in library.search_text(text, limit=10)]
        assert got == exact(text, 10)
    blocks = {p.name: p.stat().st_mtime_ns for p in (folder / "blocks").iterdir()}
    # New photos join: only the blocks holding their ids are built; the others stay as they are.
    for i in range(5):
        write_photo(photos / f"more{i}.jpg", seed=800 + i, size=(120, 90))
    library.index_sharded([photos], engine="local", shard_size=10, faces=False)
    now = {p.name: p.stat().st_mtime_ns for p in (folder / "blocks").iterdir()}
    kept = [n for n in blocks if now.get(n) == blocks[n]]
    built = [n for n in now if blocks.get(n) != now[n]]
    assert kept and built and len(kept) + len(built) == len(now)
    # A removed photo leaves the on-disk index at the next index run.
    gone = library.search_text("a red square", limit=1)[0]
    Path(gone.path).unlink()
    # (Through the CLI: faiss prints while merging and loading; --json must stay clean.)
    r = run_cli("index", str(photos), "--engine", "local", "--no-faces", "--json", library=library.paths.root)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["removed"] == 1
    got = [r.id for r in library.search_text("a red square", limit=10)]
    assert gone.id not in got and got == exact("a red square", 10)
    # The CLI's fast path (no catalog) reads the same on-disk index.
    r = run_cli("a red square", "--json", "--limit", "10", library=library.paths.root,
                env={"PHOTOSEARCH_ONDISK_MIN": "10"})
    assert r.returncode == 0, r.stderr
    assert [x["path"] for x in json.loads(r.stdout)["results"]] == \
        [x.path for x in library.search_text("a red square", limit=10)]


def _ray_processes() -> list[str]:
    """Command lines of running Ray node processes (read from /proc: no procps needed)."""
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if "raylet" in cmd or "gcs_server" in cmd:
                found.append(cmd)
    return found


@pytest.mark.ray
def test_ray_engine_resumes_after_a_crash_equals_local_and_listens_on_loopback_only(library, tmp_path):
    photos = tmp_path / "photos"
    _photos(photos, 12)
    # The coordinator dies (like kill -9) once the first shard came back from Ray, before ingest.
    crash = f"""
from photosearch.api import Library
Library({str(library.paths.root)!r}).index_sharded([{str(photos)!r}], engine="ray", shard_size=4, workers=2)
"""
    r = subprocess.run([sys.executable, "-c", crash], capture_output=True, text=True, timeout=600,
                       env={**os.environ, "HF_HUB_OFFLINE": "1", "PHOTOSEARCH_TEST_CRASH_AFTER_SHARDS": "1"})
    assert r.returncode == 137, r.stderr[-3000:]
    time.sleep(2)
    assert not _ray_processes(), "Ray processes outlived the killed coordinator"
    # Counted once Ray's workers are gone: one may finish writing its shard as the coordinator dies.
    out = library.paths.root / "shards" / "out"
    survived = len(list(out.glob("shard-*.parquet")))
    assert 1 <= survived <= 3
    import pyarrow.parquet as pq

    for f in out.glob("shard-*.parquet"):  # an output shard is whole or absent, never partial
        assert pq.read_table(f).num_rows == 4
    code = f"""
import json, subprocess, sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from photosearch.ingest.runners import ray_env
ray_env()
import ray
ray.init(include_dashboard=False, num_cpus=2, log_to_driver=False, configure_logging=False)
listening = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout
from photosearch.api import Library
lib = Library({str(library.paths.root)!r})
run = lib.index_sharded([{str(photos)!r}], engine="ray", shard_size=4, workers=2)
print(json.dumps({{"run": run.as_dict(), "ss": listening}}))
ray.shutdown()
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                       env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    doc = json.loads(r.stdout.strip().splitlines()[-1])
    # The resumed run ingests what the dead one embedded, embeds only the rest, and ends complete.
    assert doc["run"]["planned"] == 0 and doc["run"]["ingested"] == 3 and doc["run"]["photos"] == 12
    assert doc["run"]["embedded"] == 3 - survived  # shards that survived the crash are not embedded again
    ray_lines = [line for line in doc["ss"].splitlines() if any(
        name in line for name in ("raylet", "gcs_server", "ray::", "python"))]
    assert ray_lines, doc["ss"]
    for line in ray_lines:
        local = line.split()[3]
        assert local.startswith(("127.0.0.1:", "[::ffff:127.0.0.1]:", "[::1]:")), line
    rows, vecs = _catalog_state(library)

    from photosearch.api import Library
    import shutil

    other = Library(tmp_path / "local-lib")
    shutil.copytree(library.paths.models, other.paths.models)
    other.index_sharded([photos], engine="local", shard_size=4)
    rows2, vecs2 = _catalog_state(other)
    assert rows == rows2
    for p in vecs:
        assert float(vecs[p] @ vecs2[p]) > 0.9999
