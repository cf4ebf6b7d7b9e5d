"""The pHash pair search (dupes.hash_pairs) is exact: the same pairs and distances as comparing
every pair, and as the FAISS multi-index-hash search it replaced."""

from __future__ import annotations

import numpy as np
import pytest

from photosearch.query import dupes
from photosearch.query.dupes import hash_pairs
from photosearch.media.hashes import to_codes

QUERIED = (0, 1, 2, 4, 5, 6, 7)  # variant 3 is the inverse of variant 1: matched from the other side


def _popcount(x: np.ndarray) -> np.ndarray:
    table = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)
    b = np.ascontiguousarray(x, dtype=np.uint64).view(np.uint8).reshape(*x.shape, 8)
    return table[b].sum(-1, dtype=np.int64)


_ORACLE: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def oracle(ids: np.ndarray, ph: np.ndarray, d: int) -> dict[tuple[int, int], int]:
    """Every pair: photo i's variants against photo j's variant 0, both ways round."""
    usable = ph.any(axis=1)
    ids, ph = ids[usable], ph[usable]
    key = hash((ids.tobytes(), ph.tobytes()))
    if key not in _ORACLE:  # the smallest distance of every pair, computed once per input
        n = len(ids)
        best = np.full((n, n), 99, dtype=np.uint8)
        for v in QUERIED:
            for r0 in range(0, n, 500):
                block = _popcount(ph[r0:r0 + 500, v][:, None] ^ ph[None, :, 0]).astype(np.uint8)
                np.minimum(best[r0:r0 + 500], block, out=best[r0:r0 + 500])
        best = np.minimum(best, best.T)
        np.fill_diagonal(best, 99)
        _ORACLE[key] = (ids, best)
    ids, best = _ORACLE[key]
    a, b = np.nonzero(np.triu(best <= d, 1))
    return {(int(min(ids[i], ids[j])), int(max(ids[i], ids[j]))): int(best[i, j]) for i, j in zip(a, b)}


def faiss_reference(ids: np.ndarray, phash: np.ndarray, max_distance: int) -> dict[tuple[int, int], int]:
    """The implementation before the chunked search (FAISS IndexBinaryMultiHash), verbatim."""
    import faiss

    usable = phash.any(axis=1)
    ids, phash = ids[usable], phash[usable]
    if len(ids) < 2:
        return {}
    index = faiss.IndexBinaryMultiHash(64, 4, 16)
    index.nflip = max_distance // 4
    index.add(to_codes(phash[:, 0]))
    out: dict[tuple[int, int], int] = {}
    for variant in (0, 1, 2, 4, 5, 6, 7):
        lims, dist, found = index.range_search(to_codes(phash[:, variant]), max_distance + 1)
        counts = np.diff(lims).astype(np.int64)
        rows = np.repeat(np.arange(len(ids)), counts)
        keep = rows != found
        a, b, d = ids[rows[keep]], ids[found[keep]], dist[keep].astype(int)
        for x, y, dd in zip(np.minimum(a, b).tolist(), np.maximum(a, b).tolist(), d.tolist()):
            if out.get((x, y), 99) > dd:
                out[(x, y)] = dd
    return out


def _flip(rng: np.random.Generator, value: int, k: int) -> int:
    for f in rng.choice(64, size=k, replace=False):
        value ^= 1 << int(f)
    return value


def make_hashes(n: int = 4000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random variants plus planted near pairs at every distance 0..16, through every variant,
    clusters of identical hashes, and the edge cases (zero rows, zero variant 0)."""
    rng = np.random.default_rng(seed)
    ph = rng.integers(0, 2**64 - 1, size=(n, 8), dtype=np.uint64, endpoint=True)
    row = iter(range(n))
    for dist in range(17):  # variant 0 near another photo's variant 0, at each distance
        for _ in range(12):
            a, b = next(row), next(row)
            ph[b, 0] = _flip(rng, int(ph[a, 0]), dist)
    for v in (1, 2, 3, 4, 5, 6, 7):  # a rotated/mirrored variant near another photo's variant 0
        for dist in (0, 1, 3, 7, 8, 11, 12, 15):
            a, b = next(row), next(row)
            ph[b, v] = _flip(rng, int(ph[a, 0]), dist)
    for _ in range(40):  # both ways round at once: the smaller distance wins
        a, b = next(row), next(row)
        ph[b, 0] = _flip(rng, int(ph[a, 0]), int(rng.integers(4, 12)))
        ph[a, 5] = _flip(rng, int(ph[b, 0]), int(rng.integers(0, 12)))
    for _ in range(30):  # a variant equal to the photo's own variant 0 (symmetric pictures)
        a = next(row)
        ph[a, int(rng.integers(1, 8))] = ph[a, 0]
    # Identical copies: a small cluster, and a crowded one (every chunk's bucket holds > 64 codes).
    small = [next(row) for _ in range(6)]
    ph[small] = ph[small[0]]
    crowded = [next(row) for _ in range(90)]
    ph[crowded] = ph[crowded[0]]
    for k, r in enumerate([next(row) for _ in range(20)]):  # near the crowded cluster
        ph[r, 0] = _flip(rng, int(ph[crowded[0], 0]), k % 10)
    # Chunk values that differ only in their lowest bits, next to each other in the sorted buckets.
    base = int(ph[next(row), 0])
    for k in range(16):
        ph[next(row), 0] = base ^ k ^ (k << 21) ^ (k << 42)
    # Blank or tiny images (all zero): skipped, even though they are at distance 0 from each other.
    zero = [next(row) for _ in range(5)]
    ph[zero] = 0
    # Variant 0 zero but other variants not: usable, and matched like any other hash.
    z0 = [next(row) for _ in range(3)]
    ph[z0, 0] = 0
    ph[next(row), 2] = 1 << 7
    ids = rng.permutation(np.arange(10, 10 + 3 * n, 3, dtype=np.int64))  # ids in no particular order
    return ids, ph


@pytest.fixture(scope="module")
def hashes() -> tuple[np.ndarray, np.ndarray]:
    return make_hashes()


@pytest.mark.parametrize("d", [0, 1, 3, 7, 11, 15])
def test_hash_pairs_equal_oracle(hashes, d):
    ids, ph = hashes
    want = oracle(ids, ph, d)
    got = hash_pairs(ids, ph, d)
    assert got == want
    assert list(got) == sorted(got)
    assert max(want.values()) == d  # planted pairs exactly at the threshold (and past it: left out)


@pytest.mark.parametrize("d", [3, 7, 11])
def test_hash_pairs_equal_previous_implementation(hashes, d):
    ids, ph = hashes
    assert hash_pairs(ids, ph, d) == faiss_reference(ids, ph, d)


def _plan(widths: list[int], radii: list[int]) -> list[tuple[int, int, int]]:
    assert sum(widths) == 64
    shifts = np.cumsum([0] + widths[:-1])
    return [(int(s), w, r) for s, w, r in zip(shifts, widths, radii)]


@pytest.mark.parametrize("d, plan", [
    (7, _plan([16, 16, 16, 16], [1, 1, 1, 1])),
    (7, _plan([18, 23, 23], [1, 2, 2])),           # the 1M plan: sparse buckets, single slots
    (7, _plan([10, 10, 10, 10, 12, 12], [0, 0, 0, 0, 1, 1])),  # crowded buckets: windows of slots
    (11, _plan([8, 8, 8, 8, 8, 8, 8, 8], [1, 1, 1, 1, 0, 0, 0, 0])),
    (3, _plan([21, 21, 22], [0, 0, 1])),
    (0, _plan([21, 21, 22], [0, 0, 0])),
    (7, None),                                     # every pair
])
def test_every_plan_is_exact(hashes, d, plan):
    ids, ph = hashes
    usable = ph.any(axis=1)
    a, b, dist = dupes._row_pairs(ph[usable], d, plan=plan)
    got: dict[tuple[int, int], int] = {}
    rid = ids[usable]
    for x, y, dd in zip(rid[a].tolist(), rid[b].tolist(), dist.tolist()):
        key = (min(x, y), max(x, y))
        got[key] = min(got.get(key, 99), dd)
    assert got == oracle(ids, ph, d)


def test_crowded_buckets_in_small_batches(hashes, monkeypatch):
    """Buckets far larger than a batch (thousands of identical hashes) are cut into batches."""
    monkeypatch.setattr(dupes, "_EXPAND_LIMIT", 7)
    ids, ph = hashes
    assert hash_pairs(ids, ph, 7) == oracle(ids, ph, 7)


def test_small_blocks_on_threads(hashes, monkeypatch):
    """Many blocks on several threads, and more flip masks than a block holds."""
    monkeypatch.setattr(dupes, "_BLOCK_PROBES", 400)
    monkeypatch.setenv("PHOTOSEARCH_THREADS", "3")
    ids, ph = hashes
    for d, plan in ((7, _plan([16, 16, 16, 16], [1, 1, 1, 1])), (11, _plan([16, 16, 16, 16], [2, 2, 2, 3]))):
        usable = ph.any(axis=1)
        a, b, dist = dupes._row_pairs(ph[usable], d, plan=plan)
        rid = ids[usable]
        got: dict[tuple[int, int], int] = {}
        for x, y, dd in zip(rid[a].tolist(), rid[b].tolist(), dist.tolist()):
            key = (min(x, y), max(x, y))
            got[key] = min(got.get(key, 99), dd)
        assert got == oracle(ids, ph, d)


@pytest.mark.parametrize("n", [100, 3000, 100_000, 1_000_000, 10_000_000])
@pytest.mark.parametrize("d", [0, 1, 3, 7, 11, 15])
def test_plans_cover_every_pair(n, d):
    """Pigeonhole: the chunks cover all 64 bits, and radii add up to at least d - m + 1."""
    plan = dupes._plan(n, 7 * n, d)
    if plan is None:
        return
    assert [s for s, _, _ in plan] == list(np.cumsum([0] + [w for _, w, _ in plan[:-1]]))
    assert sum(w for _, w, _ in plan) == 64
    assert all(1 <= w <= dupes._MAX_CHUNK_BITS and 0 <= r <= w for _, w, r in plan)
    assert sum(r for _, _, r in plan) >= d - len(plan) + 1


def test_small_inputs():
    ids = np.array([5, 3, 9], dtype=np.int64)
    ph = np.zeros((3, 8), dtype=np.uint64)
    assert hash_pairs(ids, ph, 7) == {}
    ph[0] = 0b1011
    assert hash_pairs(ids, ph, 7) == {}  # one usable photo
    ph[2] = 0b1000
    assert hash_pairs(ids, ph, 7) == {(5, 9): 2}
    assert hash_pairs(ids, ph, 1) == {}
    assert hash_pairs(ids[:0], ph[:0], 7) == {}
    ph[1, 4] = 0b1011  # a mirror of photo 3 matches photo 5's variant 0 exactly
    # and photo 9's variants come within 1 of photo 3's variant 0 (zero, yet usable)
    assert hash_pairs(ids, ph, 2) == {(3, 5): 0, (3, 9): 1, (5, 9): 2}
    assert hash_pairs(ids, ph, 2) == oracle(ids, ph, 2)


def test_clip_neighbours_scan_each_vectors_own_list_like_nprobe_1():
    """The CLIP pass skips the coarse quantizer: each stored vector's own IVF list is what an
    nprobe=1 search of it would scan."""
    from photosearch.query.dupes import _list_of_ids, _search_own_list
    from photosearch.store.vectors import VectorIndex

    rng = np.random.default_rng(3)
    n, d = 20_000, 32
    centres = rng.standard_normal((200, d)).astype(np.float32)
    x = (centres[rng.integers(0, 200, n)] + 0.3 * rng.standard_normal((n, d))).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    ids = rng.permutation(n * 5)[:n].astype(np.int64)
    index = VectorIndex.build(ids, x, exact_max=1000)
    assert index.kind == "ivf"
    want_s, want_i = index.search(x, 9, nprobe=1)
    got_s, got_i = _search_own_list(index, _list_of_ids(index), ids, x, 9)
    np.testing.assert_allclose(got_s, want_s, atol=1e-5)
    assert (got_i == want_i).mean() > 0.999  # only exact score ties may swap places
