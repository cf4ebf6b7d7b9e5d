"""An IVF index for archives whose vectors do not fit in RAM, built from shards and merged on disk.

- The codec is chosen under a byte budget per vector: flat storage when the budget allows it
  (exact within the probed lists, so a query at full ``nprobe`` equals exact search), 8-bit
  scalar quantization (``SQ8``: ``dim`` bytes, the default), or PQ with ``m`` bytes per vector
  (an OPQ rotation in front when ``opq``).
- Trained once on a sample (``trained.index``); vectors are added with ``add_with_ids`` into
  blocks (``blocks/*.index``), in parallel if wanted. A library's index (:meth:`OnDiskIndex.sync`)
  keeps one block per range of catalog ids (ids are reserved per shard, so a range is a run of
  shards) and rebuilds only blocks whose ids changed: new shards join without a rebuild. Blocks
  are stored without the coarse quantizer (only their inverted lists are merged), so they cost
  their vectors and not another copy of the centroids each.
- The blocks' inverted lists are merged into one file with ``faiss.contrib.ondisk.merge_ondisk``
  and read back with ``IO_FLAG_ONDISK_SAME_DIR``: a query reads only the lists it probes.
  (On faiss-cpu 1.15.1, ``IO_FLAG_MMAP`` then search segfaulted here; ONDISK_SAME_DIR works.)
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from photosearch.files import replacing, write_atomic


def _faiss():  # type: ignore[no-untyped-def]
    import faiss

    return faiss


@dataclass
class OnDiskSpec:
    """How an on-disk index is built: dimension, IVF list count, codec, OPQ, and the library size it was trained at."""

    dim: int
    nlist: int
    codec: str            # "Flat", "SQ8" or "PQ<m>"
    opq: bool = False
    trained_n: int = 0    # vectors in the library when it was trained (retrained after 16x growth)

    @property
    def factory(self) -> str:
        """The faiss ``index_factory`` string for this spec."""
        pre = f"OPQ{self._m},IVF{self.nlist}," if self.opq and self.codec != "Flat" else f"IVF{self.nlist},"
        return pre + self.codec

    @property
    def _m(self) -> int:
        return int(self.codec[2:]) if self.codec.startswith("PQ") else 0

    @staticmethod
    def choose(dim: int, n_expected: int, bytes_per_vector: int) -> OnDiskSpec:
        """Flat codes when 4*dim bytes fit the budget, SQ8 when dim bytes do; else the largest PQ
        m dividing dim within it."""
        nlist = max(64, 2 ** round(np.log2(max(1.0, 4 * np.sqrt(max(n_expected, 1))))))
        if bytes_per_vector >= 4 * dim:
            return OnDiskSpec(dim, nlist, "Flat")
        if bytes_per_vector >= dim:
            return OnDiskSpec(dim, nlist, "SQ8")
        m = max(m for m in (4, 8, 16, 32, 48, 64, 96, 128) if m <= bytes_per_vector and dim % m == 0)
        return OnDiskSpec(dim, nlist, f"PQ{m}", opq=True)


def _shard_vectors(path: Path) -> tuple[np.ndarray, np.ndarray]:
    return read_vectors(path)


def read_vectors(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(ids, vectors) of an output shard's embedded photos, without Python lists."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=["id", "vector", "skip"])
    table = table.filter(pc.is_null(table.column("skip")))
    if table.num_rows == 0:
        return np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
    vec = table.column("vector").combine_chunks()
    dim = vec.type.list_size
    flat = vec.flatten().to_numpy(zero_copy_only=False)
    return (table.column("id").to_numpy().astype(np.int64),
            np.ascontiguousarray(flat, np.float32).reshape(-1, dim))


@contextmanager
def native_stdout_silenced() -> Iterator[None]:
    """File descriptor 1 points at /dev/null meanwhile (native code's prints would corrupt --json)."""
    import sys

    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 1)
        yield
    finally:
        try:
            import ctypes

            ctypes.CDLL(None).fflush(None)  # C stdio buffers go to /dev/null too, not after restore
        except (OSError, AttributeError):
            pass
        os.dup2(saved, 1)
        os.close(saved)




class OnDiskIndex:
    """A folder: spec.json, trained.index, blocks/*.index, merged-*.ivfdata + populated.index."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    @property
    def spec(self) -> OnDiskSpec:
        """The spec read from the folder's spec.json."""
        return OnDiskSpec(**json.loads((self.folder / "spec.json").read_text()))

    def train(self, spec: OnDiskSpec, sample: np.ndarray) -> None:
        """Train an empty index for ``spec`` on ``sample`` and save it with the spec in the folder."""
        faiss = _faiss()
        self.folder.mkdir(parents=True, exist_ok=True)
        index = faiss.index_factory(spec.dim, spec.factory, faiss.METRIC_INNER_PRODUCT)
        index.train(np.ascontiguousarray(sample, np.float32))
        faiss.write_index(index, str(self.folder / "trained.index"))
        (self.folder / "spec.json").write_text(json.dumps(spec.__dict__))

    def add_shards(self, shard_files: list[Path], threads: int = 1) -> list[str]:
        """Build the block of every shard that has none yet; returns the shards added."""
        from concurrent.futures import ThreadPoolExecutor

        blocks = self.folder / "blocks"
        blocks.mkdir(parents=True, exist_ok=True)
        todo = [f for f in shard_files if not (blocks / (f.stem + ".index")).exists()]

        def build(f: Path) -> str:
            ids, vecs = _shard_vectors(f)
            self._write_block(ids, vecs, blocks / (f.stem + ".index"))
            return f.stem

        with ThreadPoolExecutor(max(1, threads)) as pool:
            return list(pool.map(build, todo))

    def _write_block(self, ids: np.ndarray, vecs: np.ndarray, dest: Path) -> None:
        faiss = _faiss()
        index = faiss.read_index(str(self.folder / "trained.index"))
        if len(ids):
            index.add_with_ids(np.ascontiguousarray(vecs, np.float32), np.ascontiguousarray(ids, np.int64))
        ivf = faiss.extract_index_ivf(index)
        # Only the inverted lists are merged: keep the centroids out of every block. The empty
        # stand-in is held here and the real quantizer put back, so the index frees what it owns.
        real, empty = ivf.quantizer, faiss.IndexFlatIP(ivf.d)
        ivf.quantizer = empty
        try:
            with replacing(dest) as tmp:
                faiss.write_index(index, str(tmp))
        finally:
            ivf.quantizer = real

    def sync(self, source: Any, dim: int, *, bytes_per_vector: int, block: int = 1_000_000,
             threads: int = 1) -> dict[str, Any]:
        """Bring the index in line with ``source`` (a catalog vector source with ``blocks`` and
        ``range``): train if untrained or outgrown, rebuild the blocks whose ids changed, drop
        emptied ones, merge if anything changed. Returns {"count", "rebuilt", "trained"}."""
        from collections import deque
        from concurrent.futures import Future, ThreadPoolExecutor

        n = source.count()
        spec_file, state_file = self.folder / "spec.json", self.folder / "blocks.json"
        spec = self.spec if spec_file.is_file() and (self.folder / "trained.index").is_file() else None
        trained = False
        if spec is None or spec.dim != dim or n >= 16 * max(1, spec.trained_n):
            spec = OnDiskSpec.choose(dim, n, bytes_per_vector)
            sample = source.sample(min(n, 64 * spec.nlist), 0)
            if len(sample) < spec.nlist:
                spec = OnDiskSpec(dim, max(1, len(sample) // 4), spec.codec, spec.opq)
            spec.trained_n = n
            for old in (self.folder / "blocks").glob("*.index") if (self.folder / "blocks").is_dir() else ():
                old.unlink()
            state_file.unlink(missing_ok=True)
            self.train(spec, sample)
            trained = True
        before = json.loads(state_file.read_text()) if state_file.is_file() else {}
        now = {str(b): [c, str(h)] for b, (c, h) in source.blocks(block).items()}
        changed = sorted(int(b) for b in now if before.get(b) != now[b])
        dropped = [b for b in before if b not in now]
        blocks_dir = self.folder / "blocks"
        blocks_dir.mkdir(parents=True, exist_ok=True)

        # The catalog is read on this thread (one DuckDB connection); blocks are filled and
        # written by the pool, at most ``threads`` blocks held at a time.
        with ThreadPoolExecutor(max(1, threads)) as pool:
            inflight: deque[Future[None]] = deque()
            for b in changed:
                ids, vecs = source.range(b * block, (b + 1) * block)
                inflight.append(pool.submit(self._write_block, ids, vecs, blocks_dir / f"block-{b:08d}.index"))
                if len(inflight) >= max(1, threads):
                    inflight.popleft().result()
            for f in inflight:
                f.result()
        for b in dropped:
            (blocks_dir / f"block-{int(b):08d}.index").unlink(missing_ok=True)
        if changed or dropped or not (self.folder / "populated.index").is_file():
            self.merge()
        write_atomic(state_file, json.dumps(now))
        return {"count": n, "rebuilt": len(changed), "trained": trained}

    def merge(self) -> int:
        """Merge every block's inverted lists into one on-disk file; returns the vector count."""
        from faiss.contrib.ondisk import merge_ondisk

        faiss = _faiss()
        blocks = sorted((self.folder / "blocks").glob("*.index"))
        index = faiss.read_index(str(self.folder / "trained.index"))
        # A new lists file per merge: the current populated.index keeps pointing at a complete one
        # until the new index replaces it, so an interrupted merge leaves the old index usable.
        data = self.folder / f"merged-{time.time_ns()}.ivfdata"
        with native_stdout_silenced():  # faiss printf()s as it sizes the file (--json goes to stdout)
            merge_ondisk(index, [str(b) for b in blocks], str(data))
        with replacing(self.folder / "populated.index") as tmp:
            faiss.write_index(index, str(tmp))
        for old in self.folder.glob("merged-*.ivfdata"):
            if old != data:
                old.unlink(missing_ok=True)
        return int(index.ntotal)

    def load(self) -> Any:
        """Open the merged index, reading inverted lists from disk on demand."""
        faiss = _faiss()
        with native_stdout_silenced():
            return faiss.read_index(str(self.folder / "populated.index"), faiss.IO_FLAG_ONDISK_SAME_DIR)

    def search(self, index: Any, queries: np.ndarray, k: int, nprobe: int) -> tuple[np.ndarray, np.ndarray]:
        """Scores and ids of the ``k`` best matches per query, probing ``nprobe`` lists."""
        faiss = _faiss()
        faiss.extract_index_ivf(index).nprobe = nprobe
        return index.search(np.ascontiguousarray(queries, np.float32), k)


def sample_from_shards(shard_files: list[Path], n: int, seed: int = 0) -> np.ndarray:
    """A random sample of up to ``n`` vectors across shards (for training)."""
    rng = np.random.default_rng(seed)
    per = max(1, n // max(1, len(shard_files)))
    parts = []
    for f in shard_files:
        _, v = _shard_vectors(f)
        if len(v):
            parts.append(v[rng.choice(len(v), min(per, len(v)), replace=False)])
    return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)


def iter_shards(folder: Path) -> Iterator[Path]:
    """The ``shard-*.parquet`` files in ``folder``, sorted."""
    yield from sorted(Path(folder).glob("shard-*.parquet"))


__all__ = ["OnDiskIndex", "OnDiskSpec", "sample_from_shards", "iter_shards"]
