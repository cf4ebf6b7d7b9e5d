"""Finding exact and near-duplicate photos, and choosing which copy to keep.

Signals (``method``):

- exact: the same content hash (always reported);
- hash: pHash Hamming distance <= ``hash_distance`` between any of a photo's 8
  rotation/mirror variants and another photo (borders trimmed first), found
  exactly without an O(n^2) scan by multi-index hashing in numpy (``hash_pairs``:
  the 64 bits cut into chunks, buckets probed within a few bit flips of each
  chunk, which by the pigeonhole principle finds every pair within the distance);
- clip: cosine similarity of CLIP image vectors, from k-nearest-neighbour
  searches in the library's vector index.

``both`` (the default) links two photos when their hashes are close *and* CLIP
agrees (cosine >= ``clip_confirm``), or when CLIP alone is very sure
(cosine >= ``clip_alone``: crops and edits that hashes miss). Links form groups
(connected components); pairs marked "not duplicates" are never linked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from itertools import combinations
from math import comb
from typing import Any, Callable, Collection

import numpy as np

from photosearch.store.catalog import Catalog
from photosearch.errors import UsageError
from photosearch.media.hashes import EARLIER_WINDOWS, SEARCHED_WINDOWS, STRIPS_END, WINDOWS
from photosearch.models.base import default_threads

RAW_FORMATS = {"CR2", "CR3", "CRW", "NEF", "NRW", "ARW", "SRF", "SR2", "DNG", "RAF", "ORF", "RW2", "PEF", "SRW",
               "RAW", "RWL", "IIQ", "3FR", "ERF", "MRW", "X3F"}


@dataclass(frozen=True)
class Thresholds:
    """When two photos count as duplicates. See PRESETS and the README."""

    hash_distance: int = 7       # max pHash Hamming distance (of 64 bits)
    clip_confirm: float = 0.80   # cosine that confirms a hash match
    clip_alone: float = 0.95     # cosine that makes a duplicate without a hash match
    neighbours: int = 8          # CLIP neighbours examined per photo

    def validate(self) -> Thresholds:
        """Return self, or raise UsageError if a threshold is out of range."""
        if not 0 <= self.hash_distance <= 15:
            raise UsageError("--hash-distance must be between 0 and 15")
        for name, v in (("clip confirm", self.clip_confirm), ("--threshold", self.clip_alone)):
            if not -1.0 <= v <= 1.0:
                raise UsageError(f"{name} must be a cosine similarity between -1 and 1")
        return self


PRESETS = {
    "strict": Thresholds(hash_distance=3, clip_confirm=0.90, clip_alone=0.97),
    "default": Thresholds(),
    "loose": Thresholds(hash_distance=11, clip_confirm=0.70, clip_alone=0.92),
}
METHODS = ("hash", "clip", "both")
#: Verified candidates (see verified_candidates): whole-image hashes up to LOOSE_EXTRA bits past
#: the threshold and windows within it plus one bit, each margin narrowed where unrelated photos
#: would come within it by chance more than LOOSE_CHANCE times; the closest MAX_VERIFIED pairs.
LOOSE_EXTRA = 3
LOOSE_CHANCE = 100
#: The same for windows: ~14 a photo since the reshaped ones, and a 6-bit reach at 1M photos
#: expects ~125 chance pairs (under a second of pixel checks).
WINDOW_CHANCE = 150
MAX_VERIFIED = 20_000
#: Pairs CLIP alone finds that are not two camera shots, checked by default (see find_groups):
#: the surest this many (about 10 s of checks at most); past them such pairs are not linked.
MAX_CLIP_VERIFIED = 2_000
#: Edge strips (media/hashes.py): a photo's strip meets the same strip of another within at most
#: this many bits (a copy cut from its side: 0-2 bits on the benchmark's photos), narrowed like
#: the windows' reach; such pairs are held to a stricter pixel check (media/match.py), the
#: closest MAX_STRIP_VERIFIED at most. A strip met by more than STRIP_CROWD others is an interface's bar
#: or a letterhead, not a photo's edge: it is left out.
STRIP_DISTANCE = 3
MAX_STRIP_VERIFIED = 2_000
STRIP_CROWD = 4
CROWDED_QUARTER = 64
#: Keypoint patches (media/hashes.py): a patch of one photo meets a patch of another within at
#: most PATCH_DISTANCE bits (a crop of the other, anywhere in it: 0-4 bits on the benchmark's
#: photos; patch hashes split their bits evenly, so distances are even), and PATCH_NEAR bits in
#: a library of more than PATCH_WIDE patches, where the wider search's cost grows past a few
#: seconds (3 s at 250k photos, 31 s at 1M; 2 bits: 9 s at 1M). Narrowed like the windows'
#: reach. Such pairs are held to the stricter pixel check, like a strip's, the closest
#: MAX_PATCH_VERIFIED at most; a patch that meets more than PATCH_CROWD other photos is a
#: pattern (an icon, a logo, a watermark), not a place in one picture: it is left out.
PATCH_DISTANCE = 4
PATCH_NEAR = 2
PATCH_WIDE = 2_400_000
#: Past PATCH_WIDE patches, only each photo's PATCH_PROBES strongest patches are looked for among
#: all the others' (a crop's strongest keypoints are among its original's, and the other way
#: round): half the search (10.7 -> ~5.5 s at 1M photos; 7.3 s with the crowd rules).
PATCH_PROBES = 6
MAX_PATCH_VERIFIED = 2_000
PATCH_CROWD = 4
#: The thumbnail size pairs are verified on (a picture inside a screenshot needs the pixels).
VERIFY_SIZE = 640
#: Checks candidate pairs against the pixels: returns those that show one picture. Called as
#: ``verify(pairs)``, or ``verify(pairs, cut=pairs_found_by_a_strip_or_a_patch)``, which are held
#: to media/match.py ``same_picture``'s stricter rule for them.
Verifier = Callable[..., set[tuple[int, int]]]
PADDED = 0.9
#: The keeper rules, in the default order (``[dupes] keeper`` in the config reorders them): the
#: most pixels of picture (padding and borders not counted), the original over a re-encode (camera
#: RAW, else the JPEG quality read from the quantization tables), camera metadata, the most
#: metadata, the oldest.
KEEPER_RULES = ("resolution", "original", "camera", "metadata", "oldest")
#: Picture sizes within this fraction of each other are the same resolution (border trimming may
#: differ by a pixel or two between copies).
SAME_RESOLUTION = 0.03
#: JPEG qualities within this many points are the same (encoders round their tables).
SAME_QUALITY = 3


@dataclass
class Member:
    """One photo of a duplicate group; ``why`` explains why it is or is not the keeper."""

    id: int
    path: str
    width: int | None
    height: int | None
    format: str | None
    size: int
    taken_at: datetime | None
    why: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The member as a plain dict, ``taken_at`` as ISO text."""
        d = dict(self.__dict__)
        d["taken_at"] = self.taken_at.isoformat() if self.taken_at else None
        return d


@dataclass
class Group:
    """A group of duplicate photos (exact or near) and the keeper chosen among them."""

    keeper: Member
    members: list[Member]            # the keeper first
    kind: str                        # "exact" or "near"
    scores: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The group as a plain dict: keeper path, kind, members, and scores when any."""
        return {"keeper": self.keeper.path, "kind": self.kind, "members": [m.as_dict() for m in self.members],
                **({"scores": self.scores} if self.scores else {})}


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, x: int) -> int:
        root = x
        while self.parent.get(root, root) != root:
            root = self.parent[root]
        while self.parent.get(x, x) != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: int, b: int) -> None:
        self.parent.setdefault(a, a)
        self.parent.setdefault(b, b)
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


# Variant 3 (three quarter-turns) is the inverse of variant 1: its matches are found from the other side.
QUERY_VARIANTS = (0, 1, 2, 4, 5, 6, 7)
_BLOCK_PROBES = 1 << 18   # bucket look-ups per block: a few MB of temporaries, cache-friendly
_EXPAND_LIMIT = 1 << 20   # candidates per batch when a bucket is crowded (many identical hashes)
_MAX_CHUNK_BITS = 24      # direct-address tables of 2**bits buckets (8 bytes each)
_MAX_SLOTS = 64           # codes read per bucket look-up, at most
_COUNT_SHIFT = 40         # a bucket table entry: count << 40 | start


def hash_pairs(ids: np.ndarray, phash: np.ndarray, max_distance: int) -> dict[tuple[int, int], int]:
    """Pairs (a < b) whose pHash variants come within ``max_distance``; value: the smallest distance.

    Photo x's variants (all but variant 3) are compared with photo y's variant 0, both ways round;
    every pair within the distance is found (exactly, no O(n^2) scan). All-zero rows are skipped.

    Why it is exact (generalized pigeonhole): the 64 bits are cut into m disjoint chunks with
    per-chunk radii t_1..t_m, sum(t_i) >= max_distance - m + 1. If two codes are within
    max_distance, their chunk distances e_i add up to at most max_distance, so some chunk has
    e_i <= t_i (were every e_i >= t_i + 1, the sum would exceed max_distance). For each chunk, the
    variants are bucketed by their chunk value (a sorted array plus a direct-address table), and
    each photo's variant 0 looks up every bucket within t_i bit flips of its own chunk value; the
    candidates found get their exact distance (popcount of the XOR) and are kept when within
    range. Chunk widths and radii are chosen for the library size (``_plan``).
    """
    phash = np.asarray(phash, dtype=np.uint64).reshape(-1, 8)
    ids = np.asarray(ids)
    usable = phash.any(axis=1)  # all-zero: blank or tiny image, nothing to compare
    if not usable.all():
        ids, phash = ids[usable], phash[usable]
    n = len(ids)
    if n < 2:
        return {}
    a, b, dist = _row_pairs(phash, int(max_distance))
    return _unique_pairs(ids[a], ids[b], dist)


def window_pairs(ids: np.ndarray, phash: np.ndarray, win_ids: np.ndarray, windows: np.ndarray,
                 max_distance: int) -> dict[tuple[int, int], int]:
    """Pairs (a < b) where one photo's whole-image pHash (variant 0, borders trimmed, or the
    untrimmed one: ``windows[:, 0]``) is within ``max_distance`` of one of the other's window
    hashes (media/hashes.py ``window_hashes``: its untrimmed whole image, a crop of it, or a
    picture inside it), with the smallest such distance. Found like :func:`hash_pairs`."""
    if len(ids) < 2:
        return {}
    phash = np.asarray(phash, dtype=np.uint64).reshape(len(ids), -1)
    usable = phash.any(axis=1)
    ids, phash = np.asarray(ids)[usable], phash[usable]
    if len(ids) < 2 or not len(win_ids):
        return {}
    # The windows lined up with the rows of ``phash`` (0, never within range, for rows without).
    aligned = np.zeros((len(ids), windows.shape[1]), dtype=np.uint64)
    pos = np.searchsorted(ids, win_ids)
    ok = (pos < len(ids)) & (ids[np.minimum(pos, len(ids) - 1)] == win_ids)
    aligned[pos[ok]] = windows[ok]
    # Entry e: a window of row e % n, the untrimmed whole image first (a photo on a plain
    # background trims differently once re-exposed: its untrimmed hashes still meet).
    entries = np.ascontiguousarray(aligned.T).reshape(-1)
    # The untrimmed hash probes only where trimming changed it (a zero, no hash, never probes).
    other = np.flatnonzero((aligned[:, 0] != 0) & (aligned[:, 0] != phash[:, 0]))
    found = [_row_pairs(phash[:, :1], int(max_distance), entries=entries),
             _row_pairs(aligned[:, :1], int(max_distance), entries=entries, rows=other)]
    a, b, dist = (np.concatenate(x) for x in zip(*found))
    return _unique_pairs(ids[a], ids[b], dist)


def _unique_pairs(x: np.ndarray, y: np.ndarray, dist: np.ndarray) -> dict[tuple[int, int], int]:
    """{(a < b): the smallest distance found} of pairs of ids that may repeat."""
    key_lo, key_hi = np.minimum(x, y), np.maximum(x, y)
    order = np.lexsort((dist, key_hi, key_lo))  # the smallest distance first for each pair
    key_lo, key_hi, dist = key_lo[order], key_hi[order], dist[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = (key_lo[1:] != key_lo[:-1]) | (key_hi[1:] != key_hi[:-1])
    return {(int(p), int(q)): int(dd) for p, q, dd in
            zip(key_lo[first].tolist(), key_hi[first].tolist(), dist[first].tolist())}


def _row_pairs(phash: np.ndarray, d: int, plan: Any = "auto", entries: np.ndarray | None = None,
               rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row a, row b, distance) with a's variant 0 within ``d`` of b's variant in QUERY_VARIANTS
    (or of ``entries``' code e for row b = e % n), a != b; a pair may come more than once. Only
    the ``rows`` given probe, when given. ``plan``: "auto", None (every pair) or chunks."""
    n = len(phash)
    canon = np.ascontiguousarray(phash[:, 0] if rows is None else phash[rows, 0])
    if entries is None:   # entry e: variant QUERY_VARIANTS[e // n] of row e % n
        entries = np.ascontiguousarray(phash[:, QUERY_VARIANTS].T).reshape(-1)
    if not len(canon):
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    if plan == "auto":
        plan = _plan(len(canon), len(entries), d)
    found = [_all_pairs(canon, entries, d, n)] if plan is None else [
        _chunk_pairs(canon, entries, d, shift, width, radius, n) for shift, width, radius in plan]
    a, b, dist = (np.concatenate(x) for x in zip(*found))
    if rows is not None:
        a = rows[a]
    keep = a != b   # a photo's own variant 0
    return a[keep], b[keep], dist[keep]


def _all_pairs(canon: np.ndarray, entries: np.ndarray, d: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair compared: for tiny libraries (and as the reference in tests). (probe index,
    row e % n of the entry, distance)."""
    block = max(1, (1 << 22) // len(entries))
    out_a, out_b, out_d = [], [], []
    for b0 in range(0, len(canon), block):
        dist = _popcount(canon[b0:b0 + block, None] ^ entries[None, :])
        a, e = np.nonzero(dist <= d)
        out_a.append(a + b0)
        out_b.append(e % n)
        out_d.append(dist[a, e].astype(np.int64))
    return np.concatenate(out_a), np.concatenate(out_b), np.concatenate(out_d)


def _popcount(x: np.ndarray) -> np.ndarray:
    if hasattr(np, "bitwise_count"):  # numpy >= 2
        return np.bitwise_count(x)
    table = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)
    return table[np.ascontiguousarray(x, dtype=np.uint64).view(np.uint8)].reshape(*x.shape, 8).sum(-1, dtype=np.uint8)


def _plan(n_probe: int, n_stored: int, d: int) -> list[tuple[int, int, int]] | None:
    """Chunks (shift, width, radius) covering the 64 bits, radii summing to max(0, d - m + 1), of
    the least estimated cost; None where comparing every pair costs less (tiny or very loose).

    Cost: bucket look-ups (n_probe * ball size), candidates (pairs whose chunks fall within the
    radius), and building each chunk's table; in nanoseconds, measured on a 2-core x86-64."""
    pairs = float(n_probe) * n_stored
    best_cost, best = 4.0 * pairs, None  # every pair: XOR + popcount
    widths = np.arange(_MAX_CHUNK_BITS + 1)
    per_probe, extra = np.ones(len(widths)), np.zeros(len(widths))  # width 0: unused
    for w in range(1, len(widths)):
        mean = n_stored / 2.0 ** w
        slots = _slots(mean)
        per_probe[w] = 12.0 + (2.0 * slots if slots > 1 else 0.0)
        extra[w] = _poisson_excess(mean, slots)  # codes past the window, per look-up
    for m in range(-(-64 // _MAX_CHUNK_BITS), 9):
        total = max(0, d - m + 1)
        ball = np.array([[float(sum(comb(int(w), k) for k in range(r + 1))) if 0 < w and r <= w else np.inf
                          for r in range(total + 1)] for w in widths])
        cost = (n_probe * ball * (per_probe + 15.0 * extra)[:, None]
                + 3.0 * 2.0 ** widths[:, None] + 50.0 * n_stored + 30.0 * n_probe)
        dp = np.full((65, total + 1), np.inf)
        dp[0, 0] = 0.0
        parents = []
        for _ in range(m):
            new = np.full_like(dp, np.inf)
            parent = np.zeros(dp.shape + (2,), dtype=np.int64)
            for w in range(1, _MAX_CHUNK_BITS + 1):
                for r in range(min(w, total) + 1):
                    cand = dp[:65 - w, :total + 1 - r] + cost[w, r]
                    view = new[w:, r:]
                    better = cand < view
                    view[better] = cand[better]
                    parent[w:, r:][better] = (w, r)
            dp = new
            parents.append(parent)
        if dp[64, total] < best_cost:
            best_cost, best = float(dp[64, total]), []
            bits, rad = 64, total
            for parent in reversed(parents):
                w, r = (int(v) for v in parent[bits, rad])
                best.append((w, r))
                bits, rad = bits - w, rad - r
    if best is None:
        return None
    out, shift = [], 0
    for width, radius in best:
        out.append((shift, width, radius))
        shift += width
    return out


def _slots(mean: float) -> int:
    """Codes read per bucket look-up, for buckets of ``mean`` codes on average: the first one, or
    with crowded buckets (short chunks) a window that covers most buckets."""
    return 1 if mean < 4 else int(min(_MAX_SLOTS, np.ceil(mean + 3 * np.sqrt(mean))))


def _poisson_excess(mean: float, slots: int) -> float:
    """E[max(X - slots, 0)] for X ~ Poisson(mean)."""
    if mean > 200:
        return max(mean - slots, 0.0)
    p = np.exp(-mean)
    cdf, covered = p, 0.0
    for k in range(slots):
        covered += 1.0 - cdf
        p *= mean / (k + 1)
        cdf += p
    return max(mean - covered, 0.0)


def _flip_masks(width: int, radius: int) -> np.ndarray:
    masks = [0]
    for k in range(1, radius + 1):
        masks += [sum(1 << b for b in bits) for bits in combinations(range(width), k)]
    return np.array(masks, dtype=np.int64)


def _chunk_pairs(canon: np.ndarray, entries: np.ndarray, d: int, shift: int, width: int,
                 radius: int, rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row of the variant-0 side, row of the variant side, distance) of every pair within ``d``
    whose chunk values are within ``radius`` flips (and some others: every one is checked)."""
    n = len(canon)
    kmask = np.uint64((1 << width) - 1)
    sh = np.uint64(shift)
    # Stored side: all query variants, sorted by chunk value; bucket k is codes[start:start + count].
    # (In place where it can be: at 1M photos each of these arrays is 56 or 64 MB.)
    packed = ((entries >> sh) & kmask).astype(np.int64)
    packed <<= 32
    packed |= np.arange(len(entries), dtype=np.int64)
    packed.sort()
    counts = np.bincount(packed >> 32, minlength=1 << width)
    packed &= 0xFFFFFFFF
    entry = packed
    # Slots read per look-up: the bucket's first code, or with crowded buckets (short chunks) a
    # window of `slots` codes from its start, which covers most buckets.
    slots = _slots(len(entries) / 2.0 ** width)
    codes = np.zeros(len(entries) + slots, dtype=np.uint64)  # spare slots past the end
    np.take(entries, entry, out=codes[:len(entries)])
    window = np.lib.stride_tricks.sliding_window_view(codes, slots)
    starts = np.cumsum(counts)
    starts -= counts
    counts <<= _COUNT_SHIFT
    table = np.bitwise_or(counts, starts, out=counts)  # count > k: one comparison, table >= (k + 1) << shift
    del starts
    # Probing side: variant 0 sorted by chunk value, so that one flip mask over a block of photos
    # reads nearby table rows and codes (cache-friendly).
    key = ((canon >> sh) & kmask).astype(np.int64)
    packed = np.sort((key << 32) | np.arange(n, dtype=np.int64))
    del key
    items = packed & 0xFFFFFFFF
    keys = packed >> 32
    del packed
    qcodes = canon[items]
    masks = _flip_masks(width, radius)
    jobs = []
    for m0 in range(0, len(masks), _BLOCK_PROBES):
        fl = masks[m0:m0 + _BLOCK_PROBES]
        block = max(1, _BLOCK_PROBES // (len(fl) * slots))
        jobs += [(b0, block, fl) for b0 in range(0, n, block)]

    def run(job: tuple[int, int, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        b0, block, fl = job
        i, pos, dist = _probe_block(keys[b0:b0 + block], qcodes[b0:b0 + block], fl, table, codes, window, d)
        return i + b0, pos, dist

    workers = min(default_threads(), len(jobs))  # numpy releases the GIL in these loops
    if workers > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(workers) as pool:
            results = list(pool.map(run, jobs))
    else:
        results = [run(j) for j in jobs]
    results = [r for r in results if len(r[0])]
    found_item, found_pos, found_dist = ([r[k] for r in results] for k in range(3))
    if not found_item:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    a = items[np.concatenate(found_item)]
    b = entry[np.concatenate(found_pos)] % rows
    return a, b, np.concatenate(found_dist).astype(np.int64)


def _probe_block(keys: np.ndarray, q: np.ndarray, masks: np.ndarray, table: np.ndarray, codes: np.ndarray,
                 window: np.ndarray, d: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(index in block, position in codes, distance) of the hits of one block of probes."""
    nb, slots = len(keys), window.shape[1]
    tv = table[(masks[:, None] ^ keys[None, :]).reshape(-1)]  # probe p: mask p // nb, photo p % nb
    start = tv & ((1 << _COUNT_SHIFT) - 1)
    # Every probe reads the first `slots` codes from its bucket's start. Past the bucket's end
    # they belong to the next buckets: wasted but harmless comparisons, as every distance is checked.
    got = (codes[start] if slots == 1 else window[start]).reshape(len(masks), nb, slots)
    dist = _popcount(np.bitwise_xor(got, q[None, :, None], out=got)).reshape(-1)
    del got
    hit = np.flatnonzero(dist <= d)
    probe = hit // slots
    out_i, out_pos, out_dist = [probe % nb], [start[probe] + hit % slots], [dist[hit]]

    def check(probe: np.ndarray, pos: np.ndarray) -> None:
        dist = _popcount(codes[pos] ^ q[probe % nb])
        hit = np.flatnonzero(dist <= d)
        out_i.append(probe[hit] % nb)
        out_pos.append(pos[hit])
        out_dist.append(dist[hit])

    # Buckets with more codes: one more slot at a time for a few rounds...
    r = slots
    probe = np.flatnonzero(tv >= (r + 1) << _COUNT_SHIFT)
    count = tv[probe] >> _COUNT_SHIFT
    del tv
    while len(probe) and r < slots + 3:
        check(probe, start[probe] + r)
        r += 1
        more = count > r
        probe, count = probe[more], count[more]
    # ...then the rest of crowded buckets (many equal chunks), in bounded batches.
    if len(probe):
        for owner, pos in _expand(probe, start[probe] + r, count - r):
            check(owner, pos)
    return np.concatenate(out_i), np.concatenate(out_pos), np.concatenate(out_dist)


def _expand(owner: np.ndarray, start: np.ndarray, length: np.ndarray):  # type: ignore[no-untyped-def]
    """Batches (owner, position) listing the ranges start[k]:start[k] + length[k], at most
    ``_EXPAND_LIMIT`` positions a batch."""
    limit = _EXPAND_LIMIT
    if (length > limit).any():  # cut very long ranges into pieces
        pieces = -(-length // limit)
        first = np.cumsum(pieces) - pieces
        k = np.arange(int(pieces.sum())) - np.repeat(first, pieces)
        owner = np.repeat(owner, pieces)
        start = np.repeat(start, pieces) + k * limit
        length = np.minimum(np.repeat(length, pieces) - k * limit, limit)
    ends = np.cumsum(length)
    b = 0
    while b < len(length):
        e = max(b + 1, int(np.searchsorted(ends, (ends[b - 1] if b else 0) + limit, side="right")))
        lens = length[b:e]
        idx = np.repeat(np.arange(b, e), lens)
        offset = np.arange(len(idx)) - np.repeat(np.cumsum(lens) - lens, lens)
        yield owner[idx], start[idx] + offset
        b = e


def clip_pairs(catalog: Catalog, model: str, vectors_dir: Any, min_score: float, k: int,
               exact_max: int, dim: int) -> dict[tuple[int, int], float]:
    """Pairs (a < b) among each photo's k nearest CLIP neighbours with cosine >= min_score."""
    from photosearch.store.vectors import load_for_search

    index, _ = load_for_search(catalog, vectors_dir, model, exact_max=exact_max, dim=dim)
    if index.ntotal < 2:
        return {}
    preassigned = _list_of_ids(index) if index.kind == "ivf" else None
    out: dict[tuple[int, int], float] = {}
    for ids, vecs in catalog.iter_vectors(model, chunk=20_000, searchable=True):
        if preassigned is not None:
            scores, found = _search_own_list(index, preassigned, ids, vecs, k + 1)
        else:
            scores, found = index.search(vecs, k + 1, nprobe=1)
        rows = np.repeat(ids, scores.shape[1])
        s, f = scores.reshape(-1), found.reshape(-1)
        keep = (f >= 0) & (f != rows) & (s >= min_score)
        for x, y, sc in zip(rows[keep].tolist(), f[keep].tolist(), s[keep].tolist()):
            key = (min(x, y), max(x, y))
            out[key] = max(out.get(key, -1.0), sc)
    return out


def _list_of_ids(index: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sorted ids, the IVF list of each, the centroids) of an IVF index."""
    import faiss

    ivf = index.index
    invlists = ivf.invlists
    ids, lists = [], []
    for lst in range(ivf.nlist):
        n = invlists.list_size(lst)
        if n:
            ids.append(faiss.rev_swig_ptr(invlists.get_ids(lst), n).copy())
            lists.append(np.full(n, lst, np.int64))
    all_ids = np.concatenate(ids).astype(np.int64)
    all_lists = np.concatenate(lists)
    order = np.argsort(all_ids)
    centroids = ivf.quantizer.reconstruct_n(0, ivf.nlist)
    return all_ids[order], all_lists[order], centroids


def _search_own_list(index: Any, pre: tuple[np.ndarray, np.ndarray, np.ndarray], ids: np.ndarray,
                     vecs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The same as an nprobe=1 search of stored vectors, without the coarse quantizer: a stored
    vector's nearest centroid is the list it was added to (that is how it was assigned), so only
    that list is scanned. At 1M photos the quantizer was most of the time (4096 centroids each)."""
    sorted_ids, lists, centroids = pre
    pos = np.searchsorted(sorted_ids, ids)
    pos = np.minimum(pos, len(sorted_ids) - 1)
    known = sorted_ids[pos] == ids
    x = np.ascontiguousarray(vecs, dtype=np.float32)
    scores = np.full((len(ids), k), -np.inf, np.float32)
    found = np.full((len(ids), k), -1, np.int64)
    if known.any():
        assign = lists[pos[known]].reshape(-1, 1)
        xq = x[known]
        dq = np.einsum("ij,ij->i", xq, centroids[assign[:, 0]]).reshape(-1, 1).astype(np.float32)
        from concurrent.futures import ThreadPoolExecutor

        # FAISS scans preassigned lists on one thread here (measured: 27 s of one core at 1M
        # photos): a slice of the queries per core, on threads (FAISS releases the GIL).
        parts = np.array_split(np.arange(len(xq)), max(1, min(default_threads(), len(xq) // 256)))
        with ThreadPoolExecutor(len(parts)) as pool:
            got = list(pool.map(lambda p: index.index.search_preassigned(xq[p], k, assign[p], dq[p]), parts))
        scores[known] = np.concatenate([g[0] for g in got])
        found[known] = np.concatenate([g[1] for g in got])
    if (~known).any():  # not in the index (should not happen): search it normally
        d, i = index.search(x[~known], k, nprobe=1)
        scores[~known, :d.shape[1]], found[~known, :i.shape[1]] = d, i
    return scores, found


def _pair_cosines(catalog: Catalog, model: str, pairs: list[tuple[int, int]]) -> dict[tuple[int, int], float]:
    if not pairs:
        return {}
    ids = sorted({i for p in pairs for i in p})
    got_ids, vecs = catalog.vectors(model, ids)
    row = {int(i): n for n, i in enumerate(got_ids)}
    out = {}
    for a, b in pairs:
        if a in row and b in row:
            out[(a, b)] = float(vecs[row[a]] @ vecs[row[b]])
    return out


def pixel_verifier(catalog: Catalog, library_root: Any) -> Verifier:
    """A :data:`Verifier` that matches the photos' 640 px thumbnails (media/match.py; made from
    the file when missing, and cached for the web UI where the library can be written): a photo
    that cannot be read verifies nothing."""
    from concurrent.futures import ThreadPoolExecutor
    from pathlib import Path

    from photosearch.media import match

    def load(row: dict[str, Any]) -> match.Features | None:
        from photosearch.media.thumbs import photo_thumb_image

        try:
            return match.features(photo_thumb_image(Path(library_root), row["path"], row["content_hash"], VERIFY_SIZE))
        except Exception:  # noqa: BLE001 - gone, unreadable or corrupt: this pair is not confirmed
            return None

    def verify(pairs: list[tuple[int, int]], cut: Collection[tuple[int, int]] = ()) -> set[tuple[int, int]]:
        rows = catalog.photos_by_ids(sorted({i for p in pairs for i in p}))
        with ThreadPoolExecutor(default_threads()) as pool:   # OpenCV and the decoders release the GIL
            feats = dict(zip(rows, pool.map(load, rows.values())))
            ok = list(pool.map(lambda p: feats.get(p[0]) is not None and feats.get(p[1]) is not None
                               and match.same_picture(feats[p[0]], feats[p[1]], cut=p in cut), pairs))
        return {p for p, good in zip(pairs, ok) if good}

    return verify


def loose_distance(n: int, base: int) -> int:
    """How far past ``base`` whole-image hashes are looked at for verification in a library of
    ``n`` photos: up to :data:`LOOSE_EXTRA` bits, less where unrelated photos would come within
    that distance by chance more than :data:`LOOSE_CHANCE` times (7 variants a photo): at the
    default distance the whole margin up to ~50k photos, 2 bits at 100k, none from ~500k."""
    return _affordable(3.5 * n * max(n - 1, 0), base, min(base + LOOSE_EXTRA, 15))


def window_distance(n: int, base: int, windows: int | None = None) -> int:
    """How close a whole-image hash must come to another photo's window for verification: the
    threshold ``base`` and one more bit, less where chance alone would bring more than
    :data:`WINDOW_CHANCE` pairs (2 whole-image hashes of each of ``n`` photos against each of
    ``windows`` windows, :data:`WINDOWS` a photo when not given)."""
    windows = WINDOWS * n if windows is None else windows
    return _affordable(2.0 * windows * max(n - 1, 0), -1, base + 1, WINDOW_CHANCE)


def _affordable(codes: float, low: int, high: int, chance: float = LOOSE_CHANCE) -> int:
    """The largest distance in (low, high] at which ``codes`` comparisons of unrelated hashes
    (bits taken as fair coins) come within it fewer than ``chance`` times; ``low`` if none."""
    found = low
    for d in range(max(low + 1, 0), high + 1):
        if codes * sum(comb(64, k) for k in range(d + 1)) / 2.0 ** 64 > chance:
            break
        found = d
    return found


def verified_candidates(catalog: Catalog, t: Thresholds, linked: dict[tuple[int, int], int],
                        loose: dict[tuple[int, int], int], ids: np.ndarray,
                        ph: np.ndarray) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Pairs worth a look at their pixels (``verify``), closest first: at most
    :data:`MAX_VERIFIED` of ``loose``, whole-image hashes a little past the threshold (exposure, a
    10% crop, a caption), and of a whole image close to a window of the other (a crop to half the
    area, a screenshot or a framed copy holding it); then, apart, at most
    :data:`MAX_STRIP_VERIFIED` pairs found only by an edge strip (a copy cut from one side) and
    at most :data:`MAX_PATCH_VERIFIED` found only by a keypoint patch (a copy cropped anywhere),
    for the stricter check. ``linked`` pairs are left out."""
    win_ids, windows = catalog.all_windows(WINDOWS, narrowest=EARLIER_WINDOWS)
    searched, strips = windows[:, :SEARCHED_WINDOWS], windows[:, SEARCHED_WINDOWS:STRIPS_END]
    patches = windows[:, STRIPS_END:]
    far = window_distance(len(ids), t.hash_distance, int(np.count_nonzero(searched)))
    near = window_pairs(ids, ph, win_ids, searched, far) if far >= 0 else {}
    found: dict[tuple[int, int], int] = {}
    for p, d in [*loose.items(), *near.items()]:
        if p not in linked:
            found[p] = min(d, found.get(p, d))
    # Photos already linked (copies of one photo) share their strips: one photo for the crowd rule.
    uf = _UnionFind()
    for a, b in linked:
        uf.union(a, b)
    labels = np.array(win_ids, dtype=np.int64)
    members = np.fromiter(uf.parent, dtype=np.int64, count=len(uf.parent))
    at = np.searchsorted(win_ids, members)
    ok = at < len(win_ids)
    ok[ok] = np.asarray(win_ids)[at[ok]] == members[ok]
    labels[at[ok]] = [uf.find(int(m)) for m in members[ok]]
    cut = strip_pairs(win_ids, strips, strip_distance(strips), labels)
    cut = {p: d for p, d in cut.items() if p not in linked and p not in found}
    reach, probes = patch_reach(patches)
    spots = patch_pairs(win_ids, patches, reach, labels, probes=probes)
    spots = {p: d for p, d in spots.items() if p not in linked and p not in found and p not in cut}
    return (sorted(found, key=lambda p: (found[p], p))[:MAX_VERIFIED],
            sorted(cut, key=lambda p: (cut[p], p))[:MAX_STRIP_VERIFIED]
            + sorted(spots, key=lambda p: (spots[p], p))[:MAX_PATCH_VERIFIED])


def strip_distance(strips: np.ndarray) -> int:
    """How close two photos' same edge strips must be: up to :data:`STRIP_DISTANCE` bits, less
    where chance pairs would pass :data:`WINDOW_CHANCE` (each strip against the same strip of
    every other photo)."""
    held = np.count_nonzero(strips, axis=0).astype(float)
    return _affordable(float((held * np.maximum(held - 1, 0)).sum()), -1, STRIP_DISTANCE, WINDOW_CHANCE)


def strip_pairs(ids: np.ndarray, strips: np.ndarray, max_distance: int,
                labels: np.ndarray | None = None) -> dict[tuple[int, int], int]:
    """Pairs (a < b) of ``ids`` whose same edge strip (a column of ``strips``; 0: none) is within
    ``max_distance`` bits, with the smallest such distance; a strip shared (within it) by more
    than :data:`STRIP_CROWD` others is left out. Rows with one of ``labels`` (copies already
    linked) count as one, and are not paired with each other."""
    if max_distance < 0 or len(ids) < 2:
        return {}
    labels = np.arange(len(ids)) if labels is None else np.asarray(labels)
    found = []
    for k in range(strips.shape[1]):
        col = np.ascontiguousarray(strips[:, k])
        held = np.flatnonzero(col)
        if len(held) < 2:
            continue
        # The same value in many photos is an interface, not an edge, and so is a value whose
        # quarter is shared by far more photos than chance makes (a near-identical bar: it would
        # pair each with each): out before the search, which then stays small.
        alike = _holders(col[held], labels[held])
        held = held[(alike <= STRIP_CROWD) & ~_crowded_quarters(col[held], labels[held])]
        found.append(_held_pairs(col, held, int(max_distance), lambda e: labels[e], STRIP_CROWD))
    if not found:
        return {}
    a, b, dist = (np.concatenate(x) for x in zip(*found))
    return _unique_pairs(ids[a], ids[b], dist)


def patch_reach(patches: np.ndarray) -> tuple[int, int | None]:
    """How close a keypoint patch of one photo must come to one of another's, and how many of
    each photo's strongest patches are looked for (None: all): :data:`PATCH_DISTANCE` bits and
    all, or past :data:`PATCH_WIDE` patches :data:`PATCH_NEAR` bits and :data:`PATCH_PROBES`;
    the distance less where chance pairs would pass :data:`WINDOW_CHANCE` (each patch against
    every other)."""
    held = float(np.count_nonzero(patches))
    reach, probes = (PATCH_DISTANCE, None) if held <= PATCH_WIDE else (PATCH_NEAR, PATCH_PROBES)
    return _affordable(held * max(held - 1, 0) / 2, -1, reach, WINDOW_CHANCE), probes


def patch_pairs(ids: np.ndarray, patches: np.ndarray, max_distance: int,
                labels: np.ndarray | None = None, probes: int | None = None) -> dict[tuple[int, int], int]:
    """Pairs (a < b) of ``ids`` where a keypoint patch of one (a column of ``patches``; 0: none)
    is within ``max_distance`` bits of a patch of the other, in any column, with the smallest such
    distance; with ``probes``, one of the two patches is in the first ``probes`` columns. A patch
    that meets those of more than :data:`PATCH_CROWD` other photos is left out, and so is, before
    the search, one whose quarter is shared far beyond chance (a near-identical pattern in many
    photos). Rows with one of ``labels`` (copies already linked) count as one, and are not paired
    with each other."""
    n = len(ids)
    if max_distance < 0 or n < 2:
        return {}
    labels = np.arange(n) if labels is None else np.asarray(labels)
    # Entry e: patch e // n of row e % n, all columns searched as one (a crop's strongest
    # keypoints rank otherwise than in the photo it was cut from).
    codes = np.ascontiguousarray(np.asarray(patches, dtype=np.uint64).T).reshape(-1)
    held = np.flatnonzero(codes)
    if len(held) < 2:
        return {}
    held = held[~_crowded_quarters(codes[held], labels[held % n])]
    if len(held) < 2:
        return {}
    a, b, dist = _held_pairs(codes, held, int(max_distance), lambda e: labels[e % n], PATCH_CROWD,
                             rows=None if probes is None else held[held < probes * n])
    return _unique_pairs(ids[a % n], ids[b % n], dist)


def _held_pairs(codes: np.ndarray, held: np.ndarray, max_distance: int, label_of: Callable[[np.ndarray], np.ndarray],
                crowd: int, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(entry a, entry b, distance) of the ``held`` entries of ``codes`` within ``max_distance``
    of each other (probing from ``rows`` of them, all when None), of different labels
    (``label_of`` entries), leaving out every pair through an entry that meets more than
    ``crowd`` labels: a shared bar, icon or logo, not a place in one picture. A pair may come
    more than once."""
    mine = np.zeros(len(codes), dtype=bool)
    mine[held] = True
    codes = np.where(mine, codes, np.uint64(0))   # only held entries are met (0 meets no hash)
    a, b, dist = _row_pairs(codes[:, None], max_distance, entries=codes, rows=held if rows is None else rows)
    keep = mine[b] & (label_of(a) != label_of(b))
    a, b, dist = a[keep], b[keep], dist[keep]
    if not len(a):
        return a, b, dist
    met = np.unique(np.stack([np.concatenate([a, b]), label_of(np.concatenate([b, a]))]), axis=1)
    partners = np.bincount(met[0], minlength=len(codes))
    keep = (partners[a] <= crowd) & (partners[b] <= crowd)
    return a[keep], b[keep], dist[keep]


def _crowded_quarters(values: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Which ``values`` share one of their four 16-bit quarters with more photos (distinct
    ``labels``) than :data:`CROWDED_QUARTER`, or four times what chance gives: hashes within 3
    bits of each other share a quarter, so a large cluster of them is found without pairing it."""
    limit = max(CROWDED_QUARTER, 4.0 * len(values) / 65536)
    out = np.zeros(len(values), dtype=bool)
    for shift in (0, 16, 32, 48):
        out |= _holders((values >> np.uint64(shift)) & np.uint64(0xFFFF), labels, 16) > limit
    return out


def _holders(keys: np.ndarray, labels: np.ndarray, key_bits: int = 64) -> np.ndarray:
    """For each row, how many distinct ``labels`` (non-negative) hold its key (of ``key_bits``)."""
    labels = np.asarray(labels, dtype=np.int64)
    shift = int(labels.max(initial=0)).bit_length()
    if key_bits + shift <= 62:    # (key, label) as one integer: one sort
        small = keys.astype(np.int64)
        pairs = np.sort((small << shift) | labels)   # (np.unique is ten times slower here)
        pairs = pairs[np.r_[True, pairs[1:] != pairs[:-1]]]
        return np.bincount(pairs >> shift, minlength=1 << key_bits)[small]
    order = np.lexsort((labels, keys))
    k, lab = keys[order], np.asarray(labels)[order]
    new_key = np.r_[True, k[1:] != k[:-1]]
    new_pair = new_key | np.r_[True, lab[1:] != lab[:-1]]
    group = np.cumsum(new_key) - 1
    per_key = np.bincount(group, weights=new_pair).astype(np.int64)
    out = np.empty(len(keys), dtype=np.int64)
    out[order] = per_key[group]
    return out


def find_groups(catalog: Catalog, model: str | None, vectors_dir: Any, *, method: str = "both",
                thresholds: Thresholds | None = None, exact_only: bool = False, exact_max: int = 20_000,
                dim: int | None = None, keeper_rules: tuple[str, ...] = KEEPER_RULES,
                per_event: bool = False, verify: Verifier | None = None, verify_hash: bool = True,
                verify_clip: bool = False) -> list[Group]:
    """Duplicate groups in the catalog, each with its suggested keeper first (chosen by
    ``keeper_rules``). Exact duplicates are the same bytes, or the same image with other metadata
    (a copy that an app, or `sync`, wrote keywords into: media/identity.py). With ``per_event``,
    a group is split by event, so that each event keeps its best copy.

    With ``verify`` (pairs -> the pairs that show one picture, media/match.py on thumbnails):
    with ``verify_hash``, the hash methods also link :func:`verified_candidates` that pass it
    (crops, screenshots, framed and re-exposed copies that whole-image hashes miss), and pairs
    CLIP alone finds (clip, both) that are not two camera shots count only when they pass it;
    with ``verify_clip``, every pair CLIP alone finds does."""
    if method not in METHODS:
        raise UsageError(f"--method must be one of {', '.join(METHODS)}")
    t = (thresholds or Thresholds()).validate()
    if method in ("clip", "both") and not exact_only and (model is None or dim is None):
        raise UsageError("CLIP duplicates need an installed model (or use --method hash)")
    uf = _UnionFind()
    kinds: dict[tuple[int, int], str] = {}
    # Exact copies first: same bytes.
    for ids in [*catalog.exact_duplicate_ids(), *catalog.same_image_ids()]:
        for other in ids[1:]:
            uf.union(ids[0], other)
            kinds[(min(ids[0], other), max(ids[0], other))] = "exact"
    if not exact_only:
        rejected = catalog.not_duplicate_pairs()
        edges: list[tuple[int, int]] = []
        hp: dict[tuple[int, int], int] = {}
        verified: list[tuple[int, int]] = []
        clip_search: Any = None
        if method in ("clip", "both"):
            # CLIP's neighbours on a thread of their own while the hashes are searched: each
            # leaves part of the cores idle (at 1M photos 1.5 cores busy one after the other).
            from concurrent.futures import ThreadPoolExecutor

            def neighbours() -> dict[tuple[int, int], float]:
                with catalog.for_thread() as own:
                    return clip_pairs(own, model, vectors_dir, min(t.clip_alone, 1.0), t.neighbours, exact_max, dim)

            pool = ThreadPoolExecutor(1)
            clip_search = pool.submit(neighbours)
            pool.shutdown(wait=False)
        try:
            if method in ("hash", "both"):
                ids, ph, _ = catalog.all_hashes()
                # One search out to the verified margin: the pairs within the threshold are linked as
                # they are, the others only when their pixels agree.
                checks = verify is not None and verify_hash
                found = hash_pairs(ids, ph, loose_distance(len(ids), t.hash_distance) if checks else t.hash_distance)
                hp = {p: d for p, d in found.items() if d <= t.hash_distance}
                if checks:
                    loose = {p: d for p, d in found.items() if d > t.hash_distance}
                    candidates, cut = verified_candidates(catalog, t, hp, loose, ids, ph)
                    candidates = [p for p in candidates if p not in rejected]
                    cut = [p for p in cut if p not in rejected]
                    # One check for both kinds: a photo's thumbnail is read and matched once.
                    verified = sorted(verify(candidates + cut, cut=set(cut))) if candidates or cut else []
        except BaseException:
            if clip_search is not None:
                clip_search.exception()   # waited for: its cursor must not outlive the catalog
            raise
        if method == "hash":
            edges = list(hp) + verified
        else:
            cp = clip_search.result()
            if verify_clip and verify is not None and cp:
                # CLIP alone counts only where the pixels agree too (the surest first, at most
                # MAX_VERIFIED): a photo that only looks alike stays apart.
                checked = verify(sorted(cp, key=lambda p: (-cp[p], p))[:MAX_VERIFIED])
                cp = {p: c for p, c in cp.items() if p in checked}
            elif verify is not None and verify_hash and cp:
                # Screenshots and saved images of one app look alike to CLIP whatever they show:
                # a pair CLIP alone finds that is not two camera shots counts only where the
                # pixels agree (the surest MAX_CLIP_VERIFIED; past them, none: hashes find true copies).
                cameras = catalog.camera_shot_ids(sorted({i for p in cp for i in p}))
                unsure = sorted((p for p in cp if p[0] not in cameras or p[1] not in cameras),
                                key=lambda p: (-cp[p], p))
                checked = verify(unsure[:MAX_CLIP_VERIFIED]) if unsure else set()
                cp = {p: c for p, c in cp.items() if p in checked or (p[0] in cameras and p[1] in cameras)}
            edges = [p for p in cp]
            if method == "both":
                cos = _pair_cosines(catalog, model, [p for p in hp if p not in cp])
                edges += [p for p, c in cos.items() if c >= t.clip_confirm]
                edges += verified   # the pixels agree: surer than CLIP's cosine
        videos = catalog.video_ids()
        # A video is a duplicate of a video only, found by its frames lined up in time.
        edges = [(a, b) for a, b in edges if a not in videos and b not in videos]
        if videos:
            edges += video_pairs(catalog, t.hash_distance)
        for a, b in edges:
            if (a, b) not in rejected:
                uf.union(a, b)
                kinds.setdefault((a, b), "near")
    by_root: dict[int, list[int]] = {}
    for x in list(uf.parent):
        by_root.setdefault(uf.find(x), []).append(x)
    groups_ids = [sorted(set(v)) for v in by_root.values() if len(set(v)) > 1]
    if per_event:
        event_of = catalog.event_of_photos(sorted({i for g in groups_ids for i in g}))
        split: list[list[int]] = []
        for gid in groups_ids:
            by_event: dict[Any, list[int]] = {}
            for i in gid:   # photos in no event stay together
                by_event.setdefault(event_of.get(i), []).append(i)
            split += [ids for ids in by_event.values() if len(ids) > 1]
        groups_ids = split
    all_ids = sorted({i for g in groups_ids for i in g})
    rows = catalog.photos_by_ids(all_ids)
    for pid, (cw, ch) in catalog.content_sizes(all_ids).items():
        r = rows.get(pid)
        if r is not None and r["width"] and r["height"]:
            # Padded: uniform borders take 10% or more of a side (screenshots, letterboxed shares).
            r["padded"] = cw < PADDED * r["width"] or ch < PADDED * r["height"]
            r["content_pixels"] = cw * ch
    groups = []
    for gid in groups_ids:
        members = [r for r in (rows.get(i) for i in gid) if r is not None]
        if len(members) < 2:
            continue
        exact = len({m["content_hash"] for m in members}) == 1 or (
            len({m["content_id"] for m in members}) == 1 and members[0]["content_id"] is not None)
        groups.append(_make_group(members, "exact" if exact else "near", keeper_rules))
    groups.sort(key=lambda g: (-len(g.members), g.keeper.path))
    return groups


@dataclass
class ImportDuplicate:
    """A photo just imported that duplicates another: of which (``of``, a path), how (``kind``:
    ``exact`` same bytes or same image with other metadata, ``batch`` an exact copy of another
    file of the same import, ``near`` a near-duplicate at the strict threshold), whether it should
    go to quarantine (not when it is the better copy), and why."""

    id: int
    path: str
    of: str
    kind: str
    quarantine: bool
    why: str

    def as_dict(self) -> dict[str, Any]:
        """The decision as a plain dict."""
        return dict(self.__dict__)


def import_duplicates(catalog: Catalog, new_ids: list[int], outside: str, *,
                      rules: tuple[str, ...] = KEEPER_RULES) -> list[ImportDuplicate]:
    """Which of the photos just imported (``new_ids``, files under the folder ``outside``) are
    duplicates, by the same detection as ``dupes``: exact copies of library photos (same bytes, or
    the same image with other metadata, as a photo re-imported after `sync` wrote into it),
    exact copies within the import (the best copy stays), and near-duplicates of library photos
    at the strict hash threshold, quarantined only when the library's copy is the keeper."""
    from photosearch.files import text_path

    prefix = text_path(outside).rstrip("/") + "/"
    rows = catalog.photos_by_ids(new_ids)
    out: list[ImportDuplicate] = []
    done: set[int] = set()
    for pid, r in sorted(rows.items()):
        of = catalog.library_copy_of(r["content_hash"], outside, r.get("content_id"))
        if of:
            lib_row = catalog.photo_by_path(of)
            same = "same bytes" if lib_row and lib_row["content_hash"] == r["content_hash"] \
                else "the same image, other metadata"
            out.append(ImportDuplicate(pid, r["path"], of, "exact", True, f"exact copy of a library photo ({same})"))
            done.add(pid)
    by_identity: dict[str, list[dict[str, Any]]] = {}
    for pid, r in sorted(rows.items()):
        if pid not in done:
            by_identity.setdefault(r.get("content_id") or r["content_hash"], []).append(r)
    for copies in by_identity.values():
        if len(copies) > 1:
            keeper = _make_group(copies, "exact", rules).keeper
            for r in copies:
                if r["id"] != keeper.id:
                    out.append(ImportDuplicate(r["id"], r["path"], keeper.path, "batch", True,
                                               "exact copy of another file of this import"))
                    done.add(r["id"])
    ids, ph, _ = catalog.all_hashes()
    new = set(rows) - done
    if new and len(ids):
        strict = PRESETS["strict"].hash_distance
        near: dict[int, list[int]] = {}
        for a, b in hash_pairs(ids, ph, strict):
            for x, y in ((a, b), (b, a)):
                if x in new and y not in rows:
                    near.setdefault(x, []).append(y)
        lib_rows = catalog.photos_by_ids(sorted({y for ys in near.values() for y in ys}))
        for pid, others in sorted(near.items()):
            candidates = [lib_rows[y] for y in others if y in lib_rows and not lib_rows[y]["path"].startswith(prefix)]
            if not candidates:
                continue
            group = _make_group([rows[pid], *candidates], "near", rules)
            mine = next(m for m in group.members if m.id == pid)
            if group.keeper.id == pid:
                out.append(ImportDuplicate(pid, rows[pid]["path"], group.members[1].path, "near", False,
                                           f"near-duplicate of a library photo, kept: {mine.why}"))
            else:
                out.append(ImportDuplicate(pid, rows[pid]["path"], group.keeper.path, "near", True,
                                           f"near-duplicate of a library photo: {mine.why}"))
    return out


#: Frames of the shorter of two videos that must line up with the other (at one time offset) for
#: them to be one video: re-encoded, resized, or one a trim of the other.
VIDEO_MATCH = 0.5
#: Seconds by which matched frames may stray from the common offset (the two sampling grids and
#: their key frames need not fall on the same moments).
ALIGN_SLACK = 1.5


def video_pairs(catalog: Catalog, max_distance: int) -> list[tuple[int, int]]:
    """Pairs (a < b) of videos whose sampled frames line up in time: frame pairs within
    ``max_distance`` of pHash (found without an O(n^2) scan, :func:`hash_pairs`) vote for a
    time offset between the two videos; the videos match when, at the offset most votes agree
    on, at least :data:`VIDEO_MATCH` of the shorter one's frames have a match in the other."""
    fids, vids, ts, ph = catalog.frame_hashes()
    if len(fids) < 2:
        return []
    at = {int(f): i for i, f in enumerate(fids.tolist())}
    frames_of: dict[int, int] = {}
    for v in vids.tolist():
        frames_of[v] = frames_of.get(v, 0) + 1
    votes: dict[tuple[int, int], list[tuple[float, float]]] = {}
    for fa, fb in hash_pairs(fids, ph, max_distance):
        ia, ib = at[fa], at[fb]
        va, vb = int(vids[ia]), int(vids[ib])
        if va == vb:
            continue
        if va > vb:
            va, vb, ia, ib = vb, va, ib, ia
        votes.setdefault((va, vb), []).append((float(ts[ia]), float(ts[ib])))
    out = []
    for (va, vb), matched in sorted(votes.items()):
        deltas = np.round(np.array([tb - ta for ta, tb in matched]))
        values, counts = np.unique(deltas, return_counts=True)
        best = float(values[np.argmax(counts)])
        agree = [(ta, tb) for ta, tb in matched if abs((tb - ta) - best) <= ALIGN_SLACK]
        shorter = min(frames_of[va], frames_of[vb])
        need = max(1, int(np.ceil(VIDEO_MATCH * shorter)))
        if min(len({ta for ta, _ in agree}), len({tb for _, tb in agree})) >= need:
            out.append((va, vb))
    return out


def _metadata_count(r: dict[str, Any]) -> int:
    fields = ("taken_at", "camera_make", "camera_model", "lens", "gps_lat", "rating", "title", "description")
    return sum(1 for f in fields if r.get(f) not in (None, "")) + len(r.get("keywords") or [])


def _pixels(r: dict[str, Any]) -> int:
    if r.get("padded"):
        return int(r["content_pixels"])
    return (r.get("width") or 0) * (r.get("height") or 0)


def _original(r: dict[str, Any]) -> int | None:
    """How original a copy is: 200 for camera RAW, else its JPEG quality (1-100), else None (no
    way to tell: a PNG, a HEIC)."""
    fmt = (r.get("format") or "").upper()
    if fmt in RAW_FORMATS:
        return 200
    if fmt in ("JPEG", "MPO") and "jpeg_quality" not in r:
        # Read only when this rule is reached (a header read; most groups are decided before).
        from photosearch.files import os_path
        from photosearch.media.quality import jpeg_quality

        r["jpeg_quality"] = jpeg_quality(os_path(r["path"]))
    return r.get("jpeg_quality")


def _best(rows: list[dict[str, Any]], rule: str) -> list[dict[str, Any]]:
    """The rows that are best (or as good, within the rule's tolerance) by one rule."""
    if rule == "resolution":
        top = max(_pixels(r) for r in rows)
        return [r for r in rows if _pixels(r) >= top * (1 - SAME_RESOLUTION)]
    if rule == "original":
        known = [v for v in (_original(r) for r in rows) if v is not None]
        if not known:
            return rows
        top = max(known)
        return [r for r in rows if _original(r) is None or _original(r) >= top - SAME_QUALITY]
    if rule == "camera":
        top = max(bool(r.get("camera_make") or r.get("camera_model")) for r in rows)
        return [r for r in rows if bool(r.get("camera_make") or r.get("camera_model")) == top]
    if rule == "metadata":
        top = max(_metadata_count(r) for r in rows)
        return [r for r in rows if _metadata_count(r) == top]
    if rule == "oldest":
        key = min((r.get("taken_at") or datetime.max, r["mtime_ns"]) for r in rows)
        return [r for r in rows if (r.get("taken_at") or datetime.max, r["mtime_ns"]) == key]
    raise UsageError(f"unknown keeper rule {rule!r} (use {', '.join(KEEPER_RULES)})")


def check_rules(rules: Any) -> tuple[str, ...]:
    """Keeper rules from the config, checked: a list of names from :data:`KEEPER_RULES`."""
    if isinstance(rules, str) or not all(isinstance(x, str) for x in rules or ()):
        raise UsageError(f"[dupes] keeper must be a list of rule names ({', '.join(KEEPER_RULES)})")
    for rule in rules:
        if rule not in KEEPER_RULES:
            raise UsageError(f"[dupes] keeper: unknown rule {rule!r} (use {', '.join(KEEPER_RULES)})")
    return tuple(rules) or KEEPER_RULES


def choose_keeper(rows: list[dict[str, Any]], rules: tuple[str, ...] = KEEPER_RULES
                  ) -> tuple[dict[str, Any], str | None, dict[str, Any] | None]:
    """(the keeper, the rule that decided, the copy it decided against). Each rule in turn keeps
    the rows that are best by it; the rule that leaves one row decides, against the best of the
    rows it took out. When the copies tie on every rule, the first path wins (no rule decided)."""
    left = rows
    for rule in rules:
        narrowed = _best(left, rule)
        if len(narrowed) == 1:
            runner = min((r for r in left if r is not narrowed[0]), key=keeper_key, default=None)
            return narrowed[0], rule, runner
        left = narrowed
    return min(left, key=lambda r: r["path"]), None, None


def keeper_key(r: dict[str, Any]) -> tuple[Any, ...]:
    """Sort key of the non-keepers, best first: resolution, originality, camera metadata, metadata,
    oldest, path. (Videos: resolution, then the longer of two trims, then the bitrate.)"""
    taken = r.get("taken_at") or datetime.max
    if r.get("media") == "video":
        duration = r.get("duration") or 0.0
        pixels = (r.get("width") or 0) * (r.get("height") or 0)
        return (-pixels, -round(duration), -(r["size"] / duration if duration else 0), taken, r["mtime_ns"], r["path"])
    original = 200 if (r.get("format") or "").upper() in RAW_FORMATS else r.get("jpeg_quality") or 0  # (if read)
    return (-_pixels(r), -original, -bool(r.get("camera_make") or r.get("camera_model")),
            -_metadata_count(r), taken, r["mtime_ns"], r["path"])


def _make_group(rows: list[dict[str, Any]], kind: str, rules: tuple[str, ...] = KEEPER_RULES) -> Group:
    if rows[0].get("media") == "video":
        ordered = sorted(rows, key=keeper_key)
        best, decided, runner = ordered[0], None, None
    else:
        best, decided, runner = choose_keeper(rows, rules)
        ordered = [best, *sorted((r for r in rows if r is not best), key=keeper_key)]
    members = []
    for r in ordered:
        m = Member(r["id"], r["path"], r["width"], r["height"], r["format"], r["size"], r["taken_at"])
        m.why = _keeper_why(r, runner, decided) if r is best else _why(r, best, rules)
        members.append(m)
    return Group(keeper=members[0], members=members, kind=kind)


def _res(x: dict[str, Any]) -> str:
    return f"{x.get('width')}x{x.get('height')}"


def _fact(r: dict[str, Any], rule: str) -> str:
    """What one copy is by one rule, in words."""
    if rule == "resolution":
        return _res(r) + (" with borders" if r.get("padded") else "")
    if rule == "original":
        v = _original(r)
        return "camera RAW" if v == 200 else f"JPEG quality {v}" if v is not None else (r.get("format") or "?")
    if rule == "camera":
        return "camera metadata" if (r.get("camera_make") or r.get("camera_model")) else "no camera metadata"
    if rule == "metadata":
        return f"{_metadata_count(r)} metadata fields"
    taken = r.get("taken_at")
    return f"taken {taken:%Y-%m-%d %H:%M}" if taken else "the oldest file"


_KEEPER_WORDS = {"resolution": "highest resolution", "original": "the original", "camera": "has camera metadata",
                 "metadata": "most metadata", "oldest": "oldest"}


def _keeper_why(r: dict[str, Any], runner: dict[str, Any] | None, decided: str | None) -> str:
    if r.get("media") == "video":
        return f"keeper: highest resolution ({_res(r)})"
    if runner is None or decided is None:
        return f"keeper: the copies are alike ({_res(r)}); the first by path"
    return f"keeper: {_KEEPER_WORDS[decided]} ({_fact(r, decided)} vs {_fact(runner, decided)})"


def _why(r: dict[str, Any], best: dict[str, Any], rules: tuple[str, ...] = KEEPER_RULES) -> str:
    if r["content_hash"] == best["content_hash"]:
        return "exact copy of the keeper (same bytes)"
    same_image = r.get("content_id") and r.get("content_id") == best.get("content_id")
    prefix = "the same image as the keeper, other metadata; " if same_image else ""
    if r.get("media") == "video":
        pr, pb = keeper_key(r)[0], keeper_key(best)[0]
        if pr > pb:
            return f"lower resolution ({_res(r)} vs {_res(best)})"
        if round(r.get("duration") or 0) < round(best.get("duration") or 0):
            return f"shorter (a trim: {r.get('duration') or 0:.0f} s of {best.get('duration') or 0:.0f} s)"
        return "lower bitrate (a re-encode)"
    for rule in rules:
        if len(_best([r, best], rule)) == 1:
            if rule == "resolution":
                if r.get("padded"):
                    return prefix + f"padded copy (uniform borders around the picture; {_fact(r, rule)} vs {_res(best)})"
                return prefix + f"lower resolution ({_res(r)} vs {_res(best)})"
            if rule == "original":
                return prefix + f"re-encoded copy ({_fact(r, rule)} vs {_fact(best, rule)})"
            if rule == "camera":
                return prefix + "no camera metadata (the keeper has it)"
            if rule == "metadata":
                return prefix + f"less metadata than the keeper ({_metadata_count(r)} vs {_metadata_count(best)} fields)"
            return prefix + "newer copy"
    return prefix + "alike; the keeper comes first by path"
