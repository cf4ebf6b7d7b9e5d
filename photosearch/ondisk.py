"""An IVF index for archives whose vectors do not fit in RAM, built from shards and merged on disk.

- The codec is chosen under a memory budget per vector: PQ with ``m`` bytes per vector (an OPQ
  rotation in front when ``opq``), or flat storage when the budget allows it (exact within
  the probed lists, so a query at full ``nprobe`` equals exact search).
- Trained once on a sample (``trained.index``); each output shard is added with
  ``add_with_ids`` into its own block (``blocks/<shard>.index``), in parallel if wanted; blocks
  already built are kept, so new shards join without a rebuild.
- The blocks' inverted lists are merged into one file with ``faiss.contrib.ondisk.merge_ondisk``
  and read back with ``IO_FLAG_ONDISK_SAME_DIR``: a query reads only the lists it probes.
  (On faiss-cpu 1.15.1, ``IO_FLAG_MMAP`` then search segfaulted here; ONDISK_SAME_DIR works.)
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


def _faiss():  # type: ignore[no-untyped-def]
    import faiss

    return faiss


@dataclass
class OnDiskSpec:
    dim: int
    nlist: int
    codec: str            # "Flat" or "PQ<m>"
    opq: bool = False

    @property
    def factory(self) -> str:
        pre = f"OPQ{self._m},IVF{self.nlist}," if self.opq and self.codec != "Flat" else f"IVF{self.nlist},"
        return pre + self.codec

    @property
    def _m(self) -> int:
        return int(self.codec[2:]) if self.codec.startswith("PQ") else 0

    @staticmethod
    def choose(dim: int, n_expected: int, bytes_per_vector: int) -> OnDiskSpec:
        """Flat codes when 4*dim bytes fit the budget; else the largest PQ m dividing dim within it."""
        nlist = max(64, 2 ** round(np.log2(max(1.0, 4 * np.sqrt(max(n_expected, 1))))))
        if bytes_per_vector >= 4 * dim:
            return OnDiskSpec(dim, nlist, "Flat")
        m = max(m for m in (4, 8, 16, 32, 48, 64, 96, 128) if m <= bytes_per_vector and dim % m == 0)
        return OnDiskSpec(dim, nlist, f"PQ{m}", opq=True)


def _shard_vectors(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import pyarrow.parquet as pq

    rows = pq.read_table(path, columns=["id", "vector", "skip"]).to_pylist()
    ok = [r for r in rows if r["skip"] is None and r["vector"] is not None]
    if not ok:
        return np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
    return (np.array([r["id"] for r in ok], np.int64),
            np.asarray([r["vector"] for r in ok], np.float32))


class OnDiskIndex:
    """A folder: spec.json, trained.index, blocks/*.index, merged-*.ivfdata + populated.index."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    @property
    def spec(self) -> OnDiskSpec:
        return OnDiskSpec(**json.loads((self.folder / "spec.json").read_text()))

    def train(self, spec: OnDiskSpec, sample: np.ndarray) -> None:
        faiss = _faiss()
        self.folder.mkdir(parents=True, exist_ok=True)
        index = faiss.index_factory(spec.dim, spec.factory, faiss.METRIC_INNER_PRODUCT)
        index.train(np.ascontiguousarray(sample, np.float32))
        faiss.write_index(index, str(self.folder / "trained.index"))
        (self.folder / "spec.json").write_text(json.dumps(spec.__dict__))

    def add_shards(self, shard_files: list[Path], threads: int = 1) -> list[str]:
        """Build the block of every shard that has none yet; returns the shards added."""
        from concurrent.futures import ThreadPoolExecutor

        faiss = _faiss()
        blocks = self.folder / "blocks"
        blocks.mkdir(parents=True, exist_ok=True)
        todo = [f for f in shard_files if not (blocks / (f.stem + ".index")).exists()]

        def build(f: Path) -> str:
            ids, vecs = _shard_vectors(f)
            index = faiss.read_index(str(self.folder / "trained.index"))
            if len(ids):
                index.add_with_ids(vecs, ids)
            tmp = blocks / f".{f.stem}.index.tmp"
            faiss.write_index(index, str(tmp))
            os.replace(tmp, blocks / (f.stem + ".index"))
            return f.stem

        with ThreadPoolExecutor(max(1, threads)) as pool:
            return list(pool.map(build, todo))

    def merge(self) -> int:
        """Merge every block's inverted lists into one on-disk file; returns the vector count."""
        from faiss.contrib.ondisk import merge_ondisk

        faiss = _faiss()
        blocks = sorted((self.folder / "blocks").glob("*.index"))
        index = faiss.read_index(str(self.folder / "trained.index"))
        # A new lists file per merge: the current populated.index keeps pointing at a complete one
        # until the new index replaces it, so an interrupted merge leaves the old index usable.
        data = self.folder / f"merged-{time.time_ns()}.ivfdata"
        merge_ondisk(index, [str(b) for b in blocks], str(data))
        tmp = self.folder / ".populated.index.tmp"
        faiss.write_index(index, str(tmp))
        os.replace(tmp, self.folder / "populated.index")
        for old in self.folder.glob("merged-*.ivfdata"):
            if old != data:
                old.unlink(missing_ok=True)
        return int(index.ntotal)

    def load(self) -> Any:
        faiss = _faiss()
        return faiss.read_index(str(self.folder / "populated.index"), faiss.IO_FLAG_ONDISK_SAME_DIR)

    def search(self, index: Any, queries: np.ndarray, k: int, nprobe: int) -> tuple[np.ndarray, np.ndarray]:
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
    yield from sorted(Path(folder).glob("shard-*.parquet"))


__all__ = ["OnDiskIndex", "OnDiskSpec", "sample_from_shards", "iter_shards"]
