"""One ingest pipeline (issue 14): both runners run the same stages, reuse copies and moves by
content hash without decoding them, give the same report, and take a new analyzer as one module."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import SHARED, needs_shared, write_photo
from photosearch.ingest.analyzers import Analyzer
from photosearch.store.catalog import Catalog

pytest.importorskip("pyarrow")


def _photos(folder: Path, n: int) -> list[Path]:
    return [write_photo(folder / f"p{i:02d}.jpg", seed=700 + i, size=(120, 90)) for i in range(n)]


def _state(lib) -> dict[str, tuple[str, bytes]]:
    """path -> (content hash, CLIP vector bytes)."""
    with Catalog.open(lib.paths.catalog, read_only=True) as cat:
        rows = dict(cat.con.execute("SELECT id, path FROM photos").fetchall())
        hashes = dict(cat.con.execute("SELECT path, content_hash FROM photos").fetchall())
        ids, vecs = cat.vectors(lib.models.active_name())
    return {rows[int(i)]: (hashes[rows[int(i)]], v.tobytes()) for i, v in zip(ids, vecs)}


@pytest.mark.parametrize("engine", ["pipeline", "local"])
def test_copies_and_moves_are_reused_without_decoding_on_every_runner(library, tmp_path, monkeypatch, engine):
    import photosearch.media.decode as decode_mod

    photos = tmp_path / "photos"
    files = _photos(photos, 5)
    first = library.index([photos], engine=engine, faces=False, shard_size=2)
    assert (first.photos, first.indexed) == (5, 5)
    with Catalog.open(library.paths.catalog) as cat, cat.transaction():
        cat.set_ratings([cat.photo_by_path(str(files[1]))["id"]], 5)   # a decision the copy must share
        original_id = cat.photo_by_path(str(files[1]))["id"]
    shutil.copy(files[1], photos / "copy-of-p01.jpg")
    (photos / "moved").mkdir()
    files[2].rename(photos / "moved" / "p02.jpg")

    calls: list[Any] = []
    real = decode_mod.decode
    monkeypatch.setattr(decode_mod, "decode", lambda *a, **k: calls.append(1) or real(*a, **k))
    again = library.index([photos], engine=engine, faces=False, shard_size=2)
    assert calls == []  # neither the copy nor the moved file was decoded
    assert (again.photos, again.reused, again.moved, again.removed, again.indexed) == (0, 1, 1, 0, 0)
    state = _state(library)
    assert state[str(photos / "copy-of-p01.jpg")] == state[str(files[1])]
    assert str(files[2]) not in state and str(photos / "moved" / "p02.jpg") in state
    with Catalog.open(library.paths.catalog, read_only=True) as cat:
        copy_id = cat.photo_by_path(str(photos / "copy-of-p01.jpg"))["id"]
        assert copy_id != original_id
        assert cat.ratings() == {original_id: 5}   # ratings are the file's own; tags and faces are shared
        assert cat.content_sizes([copy_id])[copy_id] == cat.content_sizes([original_id])[original_id]  # hashes copied


def test_every_runner_stores_the_same_and_reports_the_same_fields(library, tmp_path):
    from photosearch.api import Library

    photos = tmp_path / "photos"
    _photos(photos, 7)
    (photos / "broken.jpg").write_bytes(b"not a jpeg")
    other = Library(tmp_path / "sharded-lib")
    shutil.copytree(library.paths.models, other.paths.models)
    a = library.index([photos], faces=False)
    b = other.index([photos], faces=False, engine="local", shard_size=3)
    assert a.as_dict().keys() == b.as_dict().keys()
    for key in ("indexed", "photos", "unchanged", "moved", "removed", "reused", "total_photos"):
        assert getattr(a, key) == getattr(b, key), key
    assert [s.path for s in a.skipped] == [s.path for s in b.skipped] == [str(photos / "broken.jpg")]
    assert (a.engine, a.planned, b.engine, b.planned, b.ingested) == ("pipeline", 0, "local", 3, 3)
    assert _state(library) == _state(other)


class MeanColour(Analyzer):
    """A new analyzer, written as a plugin would be: the mean RGB of the photo's small pixels."""

    name = "mean_colour"

    def __init__(self) -> None:
        self.stored: dict[str, list[float]] = {}

    def analyze(self, photo: Any) -> Any:
        return [float(c) for c in np.asarray(photo.small, np.float32).reshape(-1, 3).mean(axis=0)]

    def columns(self, outputs: list[Any]) -> dict[str, Any]:
        import pyarrow as pa

        return {"mean_colour": pa.array(outputs, pa.list_(pa.float64()))}

    def from_row(self, row: dict[str, Any]) -> Any:
        return row.get("mean_colour")

    def store(self, cat: Any, rows: list[tuple[int, Any]]) -> int:
        paths = cat.paths_by_ids([i for i, _ in rows])
        for i, out in rows:
            self.stored[paths[i]] = out
        return len(rows)


@pytest.mark.parametrize("engine", ["pipeline", "local"])
def test_a_new_analyzer_is_one_module_both_runners_call(library, tmp_path, engine):
    import pyarrow.parquet as pq

    from photosearch.ingest.runners import RunOptions, run_index

    photos = tmp_path / "photos"
    files = _photos(photos, 4)
    extra = MeanColour()
    model = library.models.load()
    report = run_index(library.paths, model, model.name, [str(photos)],
                       options=RunOptions(engine=engine, shard_size=3, extra_analyzers=(extra,)))
    assert report.photos == 4
    assert sorted(extra.stored) == sorted(map(str, files))
    from PIL import Image

    for f in files:  # the photos are flat-ish synthetic images: their mean colour is known
        expected = np.asarray(Image.open(f).convert("RGB"), np.float32).reshape(-1, 3).mean(axis=0)
        assert np.allclose(extra.stored[str(f)], expected, atol=4.0)
    outs = sorted((library.paths.root / "shards" / "out").glob("shard-*.parquet"))
    if engine == "local":  # the analyzer's column travels in the output shards
        assert [len(pq.read_table(o).column("mean_colour")) for o in outs] == [3, 1]
    else:
        assert outs == []


class _Overlaps:
    """The library's fake CLIP, each batch slowed a little and the calls in flight counted."""

    def __init__(self, model: Any, threads: int | None) -> None:
        import threading

        self.model, self.name, self.threads = model, model.name, threads
        self.image_size, self.embed_dim = model.image_size, model.embed_dim
        self.now = self.most = 0
        self._lock = threading.Lock()

    def preprocess(self, image: Any) -> Any:
        return self.model.preprocess(image)

    def encode_pixels(self, pixels: Any, normalize: bool = True) -> Any:
        import time

        with self._lock:
            self.now += 1
            self.most = max(self.most, self.now)
        try:
            time.sleep(0.05)
            return self.model.encode_pixels(pixels, normalize)
        finally:
            with self._lock:
                self.now -= 1


@needs_shared
def test_batches_encoded_at_once_store_what_one_at_a_time_stores(library, tmp_path):
    """A model running each call on one thread gets two batches at once (never more); every
    photo of ../shared comes out once, with the vector a one-at-a-time run gives."""
    from photosearch.api import Library
    from photosearch.ingest.runners import RunOptions, run_index

    photos = tmp_path / "photos"
    shutil.copytree(SHARED / "photos", photos)
    other = Library(tmp_path / "other-lib")
    shutil.copytree(library.paths.models, other.paths.models)
    runs = {}
    for lib, threads in ((library, 1), (other, None)):
        model = _Overlaps(lib.models.load(), threads)
        report = run_index(lib.paths, model, model.name, [str(photos)],
                           options=RunOptions(batch_size=2, workers=3))
        runs[threads] = (model.most, report.indexed, len(report.skipped))
    assert runs[1][1:] == runs[None][1:] and runs[1][1] >= 30
    assert 1 < runs[1][0] <= 2      # two batches at once at most (MAX_ENCODERS)
    assert runs[None][0] == 1       # a multi-threaded model: one batch at a time, as before
    assert _state(library) == _state(other)


class _Warmed(MeanColour):
    """MeanColour whose model 'loads' in warm(): it records where, then fails."""

    name = "warmed_colour"

    def __init__(self) -> None:
        super().__init__()
        self.warmed: list[str] = []

    def warm(self) -> None:
        import threading

        self.warmed.append(threading.current_thread().name)
        raise RuntimeError("a model that cannot be loaded ahead")


@needs_shared
def test_models_warm_beside_the_first_photos_only_when_there_is_work(library, tmp_path):
    """Each analyzer's warm() runs once on a thread of its own when a run has photos to analyze,
    and its failure costs nothing (the first real call would report a real error); a run with
    nothing new warms nothing."""
    from photosearch.ingest.runners import RunOptions, run_index

    photos = tmp_path / "photos"
    photos.mkdir()
    for p in sorted((SHARED / "photos").glob("*.jpg"))[:5]:
        shutil.copy(p, photos / p.name)
    extra = _Warmed()
    model = library.models.load()
    first = run_index(library.paths, model, model.name, [str(photos)], options=RunOptions(extra_analyzers=(extra,)))
    assert first.indexed == 5 and not first.skipped
    assert extra.warmed == ["warm-warmed_colour"]
    assert sorted(extra.stored) == sorted(str(p) for p in photos.iterdir())
    again = run_index(library.paths, model, model.name, [str(photos)], options=RunOptions(extra_analyzers=(extra,)))
    assert again.unchanged == 5 and extra.warmed == ["warm-warmed_colour"]


@pytest.mark.parametrize(("cores", "threads", "encoders"), [(1, 1, 1), (2, 1, 2), (3, 1, 2), (16, 8, 2)])
def test_clip_batches_split_the_cores_two_at_a_time(cores, threads, encoders):
    """Two CLIP batches at most run at once on the CPU (one more batch's activations in memory),
    each on half the cores; a GPU model, or one without its threads set, takes one at a time."""
    from types import SimpleNamespace

    from photosearch.ingest.runners import clip_threads, encoders_for

    assert clip_threads(cores) == threads
    assert encoders_for(SimpleNamespace(threads=threads, device="cpu"), cores) == encoders
    assert encoders_for(SimpleNamespace(threads=threads, device="cuda"), cores) == 1
    assert encoders_for(SimpleNamespace(threads=None, device="cpu"), cores) == 1
