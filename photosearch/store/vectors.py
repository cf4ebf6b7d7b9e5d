"""FAISS wrapper: build, add, remove, search, save and load vector indexes.

Ids are catalog photo ids (or face ids, for a face model's index). Small libraries get an exact flat index; above
``exact_max`` vectors an IVF index with 8-bit scalar quantization whose
``nprobe`` is tuned at build time for recall@10 against exact search.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from photosearch.config import DEFAULT_EXACT_MAX, ENV_EXACT_MAX, LibraryPaths, env_int
from photosearch.errors import LibraryError
from photosearch.store.rows import Rows

if TYPE_CHECKING:
    from photosearch.store.catalog import Catalog


class VectorSource(Protocol):
    """The vectors one index is built from: a model's photo embeddings, or its face vectors."""

    key: str          # the index's name in the catalog's vector_index table
    has_rows: bool    # whether a rows file (photo result fields) goes beside the index

    def write_rows(self, path: Path) -> int:
        """Write the rows file of this index (``has_rows`` sources): what a search shows per id."""

    def count(self) -> int:
        """Number of vectors."""

    def ids(self) -> np.ndarray:
        """Ids of all the vectors."""

    def sample(self, n: int, seed: int) -> np.ndarray:
        """A reproducible random sample of ``n`` vectors."""

    def iter(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """All (ids, vectors), in chunks."""

    def vectors(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) for those of ``ids`` that exist."""

#: Recall@10 against exact search that the tuned nprobe must reach on probe queries.
TARGET_RECALL = 0.95


def _faiss():  # type: ignore[no-untyped-def]
    import faiss

    return faiss


def nlist_for(n: int) -> int:
    """Number of IVF lists: about 4*sqrt(n), a power of two, at least 64."""
    return max(64, 2 ** round(math.log2(max(1.0, 4 * math.sqrt(n)))))


@dataclass
class VectorIndex:
    """A FAISS index over (photo id, vector) pairs, inner product on L2-normalized vectors."""

    index: object
    kind: str
    nprobe: int | None = None

    # -- building -------------------------------------------------------------------------

    @classmethod
    def build(cls, ids: np.ndarray, vectors: np.ndarray, *, exact_max: int, dim: int | None = None,
              seed: int = 0) -> VectorIndex:
        """Build from arrays in memory (see :meth:`build_streaming` for catalog-sized inputs)."""
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        d = vectors.shape[1] if len(vectors) else int(dim or 0)
        step = 100_000

        def chunks() -> Iterator[tuple[np.ndarray, np.ndarray]]:
            for i in range(0, len(ids), step):
                yield ids[i:i + step], vectors[i:i + step]

        rng = np.random.default_rng(seed)
        n_sample = min(len(ids), 64 * nlist_for(len(ids)))
        pick = np.sort(rng.choice(len(ids), n_sample, replace=False)) if n_sample < len(ids) else np.arange(len(ids))
        return cls.build_streaming(len(ids), d, vectors[pick], chunks, exact_max=exact_max, seed=seed)

    @classmethod
    def build_streaming(cls, n: int, dim: int, sample: np.ndarray,
                        chunks: Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]], *,
                        exact_max: int, seed: int = 0) -> VectorIndex:
        """Build an index over ``n`` vectors delivered by ``chunks()`` (called up to twice).

        ``sample`` is a random subset of the vectors (for IVF training and nprobe tuning).
        """
        faiss = _faiss()
        if dim <= 0:
            raise ValueError("cannot build an index without a dimension")
        if n <= exact_max:
            index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
            out = cls(index, "flat")
            for ids, vecs in chunks():
                out.add(ids, vecs)
            return out
        nlist = nlist_for(n)
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFScalarQuantizer(quantizer, dim, nlist, faiss.ScalarQuantizer.QT_8bit,
                                              faiss.METRIC_INNER_PRODUCT)
        index.own_fields = True
        quantizer.this.disown()
        index.cp.seed = seed
        index.cp.niter = 10  # k-means converges early on this data; 25 (the default) costs 2.5x
        index.train(np.ascontiguousarray(sample, dtype=np.float32))
        out = cls(index, "ivf")
        for ids, vecs in chunks():
            out.add(ids, vecs)
        out.nprobe = out.tune_nprobe(sample, chunks, seed=seed)
        return out

    def tune_nprobe(self, sample: np.ndarray, chunks: Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]], *,
                    n_queries: int = 200, seed: int = 0) -> int:
        """Smallest power-of-two nprobe reaching TARGET_RECALL@10 against exact search."""
        faiss = _faiss()
        rng = np.random.default_rng(seed + 1)
        base = sample[rng.choice(len(sample), min(n_queries, len(sample)), replace=False)]
        # Queries near, but not on, stored vectors (text and outside photos never coincide with
        # one), from close to far: far queries need the most lists.
        noise = rng.standard_normal(base.shape).astype(np.float32)
        noise /= np.linalg.norm(noise, axis=1, keepdims=True)
        # (Noise of norm 2 and more gives queries unrelated to anything stored, for which "the"
        # 10 nearest are arbitrary; tuning on those would probe half the lists.)
        levels = np.resize(np.array([0.3, 0.6, 1.0], dtype=np.float32), len(base))[:, None]
        queries = base + noise * levels
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        truth = exact_topk_streaming(queries, chunks(), 10)
        nlist = self.index.nlist
        # Never below 1/32 of the lists: cheap (a few ms at 1M) and a margin for unlike queries.
        nprobe = max(1, nlist // 32)
        while True:
            _, found = self.index.search(queries, 10, params=faiss.SearchParametersIVF(nprobe=nprobe))
            recall = recall_at_k(truth, found)
            if recall >= TARGET_RECALL or nprobe >= nlist // 2:
                return nprobe
            nprobe *= 2

    # -- editing --------------------------------------------------------------------------

    @property
    def ntotal(self) -> int:
        """Number of vectors in the index."""
        return int(self.index.ntotal)

    @property
    def dim(self) -> int:
        """The vectors' dimension."""
        return int(self.index.d)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors under the given ids."""
        if len(ids):
            self.index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32),
                                    np.ascontiguousarray(ids, dtype=np.int64))

    def remove(self, ids: np.ndarray) -> None:
        """Remove the vectors with these ids."""
        if len(ids):
            self.index.remove_ids(_faiss().IDSelectorBatch(np.ascontiguousarray(ids, dtype=np.int64)))

    def ids(self) -> np.ndarray:
        """Ids of all the vectors in the index."""
        faiss = _faiss()
        if self.kind == "flat":
            return faiss.vector_to_array(self.index.id_map).astype(np.int64)
        invlists = self.index.invlists
        parts = []
        for lst in range(self.index.nlist):
            n = invlists.list_size(lst)
            if n:
                parts.append(faiss.rev_swig_ptr(invlists.get_ids(lst), n).copy())
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, dtype=np.int64)

    # -- searching ------------------------------------------------------------------------

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None,
               nprobe: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, ids) per query; ``allowed`` restricts results to those ids. Missing slots have id -1."""
        faiss = _faiss()
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if self.ntotal == 0 or k <= 0:
            return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        k = min(k, self.ntotal)
        sel = faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64)) if allowed is not None else None
        if self.kind == "flat":
            params = faiss.SearchParameters(sel=sel) if sel is not None else None
        else:
            nprobe = nprobe or self.nprobe or 1
            nlist = faiss.extract_index_ivf(self.index).nlist
            if allowed is not None and self.ntotal:
                # A filter keeping a fraction f of photos leaves ~f of each list; probe 1/f more lists.
                frac = max(len(allowed) / self.ntotal, 1e-6)
                nprobe = int(min(nlist, math.ceil(nprobe / frac)))
            params = faiss.SearchParametersIVF(nprobe=nprobe, sel=sel)
            if self.kind == "ondisk" and isinstance(self.index, faiss.IndexPreTransform):
                params = faiss.SearchParametersPreTransform(index_params=params)
        if len(queries) >= 16:
            return self.index.search(queries, k, params=params)
        # One query gains nothing from OpenMP threads, and on busy cores their barriers cost
        # 5-20 ms (measured); search it on this thread.
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            return self.index.search(queries, k, params=params)
        finally:
            faiss.omp_set_num_threads(threads)

    # -- files ----------------------------------------------------------------------------

    def save(self, path: Path) -> None:
        """Write atomically: a temporary file renamed into place."""
        from photosearch.files import replacing

        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with replacing(path) as tmp:
                _faiss().write_index(self.index, str(tmp))
        except OSError as exc:
            raise LibraryError(f"cannot write the vector index {path}: {exc.strerror}") from None

    @classmethod
    def load(cls, path: Path, kind: str, nprobe: int | None, *, mmap: bool = False) -> VectorIndex:
        """Read an index; ``mmap`` maps it read-only (a query touches only the lists it probes).
        An ``ondisk`` index (ondisk.py) always reads its lists from disk as queries probe them."""
        faiss = _faiss()
        flags = faiss.IO_FLAG_ONDISK_SAME_DIR if kind == "ondisk" else faiss.IO_FLAG_MMAP if mmap else 0
        try:
            if kind == "ondisk":
                from photosearch.store.ondisk import native_stdout_silenced

                with native_stdout_silenced():  # faiss printf()s the lists file it resolves
                    index = faiss.read_index(str(path), flags)
            else:
                index = faiss.read_index(str(path), flags)
        except RuntimeError as exc:
            raise LibraryError(f"cannot read the vector index {path}: {str(exc).splitlines()[0][:200]}") from None
        return cls(index, kind, nprobe)


def exact_search(query: np.ndarray, ids: np.ndarray, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force top-k by inner product over a (small) set of vectors: the oracle and the filtered path."""
    if len(ids) == 0:
        return np.zeros(0, np.float32), np.zeros(0, np.int64)
    scores = vectors @ np.asarray(query, dtype=np.float32).reshape(-1)
    k = min(k, len(ids))
    top = np.argpartition(-scores, k - 1)[:k]
    top = top[np.lexsort((ids[top], -scores[top]))]
    return scores[top], ids[top]


def exact_topk_streaming(queries: np.ndarray, chunks: Iterator[tuple[np.ndarray, np.ndarray]], k: int) -> np.ndarray:
    """Exact top-k ids per query over vectors streamed in chunks (the brute-force oracle)."""
    best_s = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(queries), 0), dtype=np.int64)
    for ids, vecs in chunks:
        scores = queries @ np.asarray(vecs, dtype=np.float32).T
        all_s = np.concatenate([best_s, scores], axis=1)
        all_i = np.concatenate([best_i, np.broadcast_to(ids, scores.shape)], axis=1)
        keep = min(k, all_s.shape[1])
        top = np.argpartition(-all_s, keep - 1, axis=1)[:, :keep]
        best_s = np.take_along_axis(all_s, top, axis=1)
        best_i = np.take_along_axis(all_i, top, axis=1)
    order = np.argsort(-best_s, axis=1, kind="stable")
    return np.take_along_axis(best_i, order, axis=1)


def recall_at_k(truth: np.ndarray, found: np.ndarray) -> float:
    """Mean fraction of each query's true top-k found in its returned top-k."""
    k = truth.shape[1]
    return float(np.mean([len(set(t.tolist()) & set(f.tolist())) / k for t, f in zip(truth, found)]))


# -- the index of a library, kept in step with its catalog -----------------------------------


def needs_rebuild(index: VectorIndex, n: int, exact_max: int) -> bool:
    """True when ``n`` vectors call for another index kind or a much larger IVF."""
    if index.kind == "flat":
        return n > exact_max
    return n <= exact_max // 2 or nlist_for(n) >= 4 * index.index.nlist


def _source(catalog: Catalog, model: str | VectorSource) -> VectorSource:
    return catalog.photo_vectors(model) if isinstance(model, str) else model


def build_from_catalog(catalog: Catalog, model: str | VectorSource, *, exact_max: int, dim: int,
                       seed: int = 0) -> VectorIndex:
    """Build an index over a model's photo vectors (or another source), IVF-trained on a sample when large."""
    src = _source(catalog, model)
    n = src.count()
    sample = src.sample(min(n, 64 * nlist_for(n)), seed) if n > exact_max else None
    return VectorIndex.build_streaming(
        n, dim, sample if sample is not None else np.zeros((0, dim), np.float32),
        src.iter, exact_max=exact_max, seed=seed,
    )


def sync_with_catalog(index: VectorIndex | None, catalog: Catalog, model: str | VectorSource, *, exact_max: int,
                      dim: int) -> VectorIndex:
    """Bring ``index`` in line with the catalog's vectors (by id set difference), rebuilding if needed."""
    src = _source(catalog, model)
    catalog_ids = src.ids()
    if index is None or needs_rebuild(index, len(catalog_ids), exact_max) or index.dim != dim:
        return build_from_catalog(catalog, src, exact_max=exact_max, dim=dim)
    have = index.ids()
    index.remove(np.setdiff1d(have, catalog_ids, assume_unique=True))
    missing = np.setdiff1d(catalog_ids, have, assume_unique=True)
    if len(missing):
        ids, vecs = src.vectors(missing)
        index.add(ids, vecs)
    return index


def index_file_name(model: str, version: int) -> str:
    """The index file name of a model at a data version."""
    return f"{model}-v{version}.faiss"


def ondisk_min() -> int:
    """Vector count above which an on-disk index is used: ``$PHOTOSEARCH_ONDISK_MIN`` or the default."""
    from photosearch.config import DEFAULT_ONDISK_MIN, ENV_ONDISK_MIN, env_int

    return env_int(ENV_ONDISK_MIN, DEFAULT_ONDISK_MIN)


def ondisk_folder(vectors_dir: Path, key: str) -> Path:
    """The on-disk index folder of an index key (``:`` replaced by ``-``)."""
    return vectors_dir / f"{key.replace(':', '-')}-ondisk"


def sync_ondisk(catalog: Catalog, vectors_dir: Path, src: VectorSource, *, dim: int) -> VectorIndex:
    """The source's on-disk IVF index (ondisk.py), brought in line with the catalog block by block."""
    from photosearch.config import DEFAULT_ONDISK_BLOCK, ENV_ONDISK_BLOCK, ENV_ONDISK_BYTES, env_int
    from photosearch.models.base import default_threads
    from photosearch.store.ondisk import OnDiskIndex

    folder = ondisk_folder(vectors_dir, src.key)
    idx = OnDiskIndex(folder)
    idx.sync(src, dim, bytes_per_vector=env_int(ENV_ONDISK_BYTES, dim),
             block=max(1, env_int(ENV_ONDISK_BLOCK, DEFAULT_ONDISK_BLOCK)), threads=default_threads())
    nlist = idx.spec.nlist
    # Probe 1/16 of the lists (at least 16): tuning against exact search is itself O(N) per query
    # here; measured recall@10 against nprobe is in benchmarks/RESULTS.md (scale-out).
    out = VectorIndex.load(folder / "populated.index", "ondisk", min(nlist, max(16, nlist // 16)))
    return out


def load_for_search(catalog: Catalog, vectors_dir: Path, model: str | VectorSource, *, exact_max: int,
                    dim: int) -> tuple[VectorIndex, bool]:
    """The model's index as of the catalog's current data; second value True if it had to be synced.

    Photo vector sources with more than ``PHOTOSEARCH_ONDISK_MIN`` vectors get an on-disk index."""
    src = _source(catalog, model)
    state = catalog.index_state(src.key)
    index = None
    if state is not None and (vectors_dir / state["file"]).is_file():
        current = state["version"] == catalog.data_version()
        if current:
            # A current index is only read: map it.
            return VectorIndex.load(vectors_dir / state["file"], state["kind"], state["nprobe"], mmap=True), False
    if hasattr(src, "blocks") and (src.count() > ondisk_min()
                                   or (state is not None and state["kind"] == "ondisk" and src.count() > ondisk_min() // 2)):
        return sync_ondisk(catalog, vectors_dir, src, dim=dim), True
    if state is not None and state["kind"] != "ondisk" and (vectors_dir / state["file"]).is_file():
        # A stale index is edited in memory: load it.
        index = VectorIndex.load(vectors_dir / state["file"], state["kind"], state["nprobe"])
    return sync_with_catalog(index, catalog, src, exact_max=exact_max, dim=dim), True


def load_published(library_root: Path, vectors_dir: Path, model: str) -> tuple[VectorIndex, Rows] | None:
    """The model's index and rows file if ``state.json`` says they are current; else None.

    Reads no catalog: this is the fast path of an unfiltered search.
    """
    from photosearch.store.catalog import read_state

    state = read_state(library_root)
    entry = (state or {}).get("indexes", {}).get(model)
    if not entry or not entry.get("rows") or entry["version"] != state.get("data_version"):
        return None
    try:
        rows = Rows(vectors_dir / entry["rows"])
        index = VectorIndex.load(vectors_dir / entry["file"], entry["kind"], entry["nprobe"], mmap=True)
    except (OSError, ValueError, LibraryError):
        return None
    return index, rows


def save_for_catalog(index: VectorIndex, catalog: Catalog, vectors_dir: Path, model: str | VectorSource) -> None:
    """Write the index and (for photo indexes) its rows file under versioned names, then point the
    catalog (and state.json) at them, then drop the old files."""
    src = _source(catalog, model)
    version = catalog.data_version()
    name = index_file_name(src.key.replace(":", "-"), version)
    rows_name = name.removesuffix(".faiss") + ".rows" if src.has_rows else ""
    old = catalog.index_state(src.key)
    if index.kind == "ondisk":
        # Written in place by sync_ondisk (its merge replaces populated.index atomically).
        name = f"{ondisk_folder(vectors_dir, src.key).name}/populated.index"
    else:
        index.save(vectors_dir / name)
    if rows_name:
        try:
            src.write_rows(vectors_dir / rows_name)
        except OSError as exc:
            raise LibraryError(f"cannot write {vectors_dir / rows_name}: {exc.strerror}") from None
    catalog.set_index_state(src.key, name, rows_name, version, index.kind, index.ntotal, index.nprobe)
    if old is not None:
        for f in (old["file"], old.get("rows_file")):
            if f and f not in (name, rows_name):
                (vectors_dir / f).unlink(missing_ok=True)
        if old["kind"] == "ondisk" and index.kind != "ondisk":
            import shutil

            shutil.rmtree(ondisk_folder(vectors_dir, src.key), ignore_errors=True)


def refresh_index(paths: LibraryPaths, model_name: str, dim: int, exact_max: int | None = None, *,
                  faces: bool = False) -> None:
    """Sync and save a model's FAISS index (``faces``: a face model's) with the catalog (e.g. after
    a crash, a quarantine or a model switch)."""
    exact_max = exact_max if exact_max is not None else env_int(ENV_EXACT_MAX, DEFAULT_EXACT_MAX)
    from photosearch.store.catalog import Catalog

    with Catalog.open(paths.catalog) as cat:
        src = cat.face_vectors(model_name) if faces else cat.photo_vectors(model_name)
        if faces and src.count() == 0 and cat.index_state(src.key) is None:
            return
        index, _ = load_for_search(cat, paths.vectors, src, exact_max=exact_max, dim=dim)
        save_for_catalog(index, cat, paths.vectors, src)
