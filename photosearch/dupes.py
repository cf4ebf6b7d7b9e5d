"""Finding exact and near-duplicate photos, and choosing which copy to keep.

Signals (``method``):

- exact: the same content hash (always reported);
- hash: pHash Hamming distance <= ``hash_distance`` between any of a photo's 8
  rotation/mirror variants and another photo (borders trimmed first), found
  with multi-index hashing (FAISS ``IndexBinaryMultiHash``): 4 tables of 16
  bits, probing buckets within ``hash_distance // 4`` bit flips, which finds
  every pair within the distance (pigeonhole) without an O(n^2) scan;
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
from typing import Any

import numpy as np

from photosearch.catalog import Catalog
from photosearch.errors import UsageError
from photosearch.hashes import to_codes

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
PADDED = 0.9


@dataclass
class Member:
    id: int
    path: str
    width: int | None
    height: int | None
    format: str | None
    size: int
    taken_at: datetime | None
    why: str = ""

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["taken_at"] = self.taken_at.isoformat() if self.taken_at else None
        return d


@dataclass
class Group:
    keeper: Member
    members: list[Member]            # the keeper first
    kind: str                        # "exact" or "near"
    scores: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
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


def hash_pairs(ids: np.ndarray, phash: np.ndarray, max_distance: int) -> dict[tuple[int, int], int]:
    """Pairs (a < b) whose pHash variants come within ``max_distance``; value: the smallest distance."""
    import faiss

    usable = phash.any(axis=1)  # all-zero: blank or tiny image, nothing to compare
    ids, phash = ids[usable], phash[usable]
    if len(ids) < 2:
        return {}
    index = faiss.IndexBinaryMultiHash(64, 4, 16)
    index.nflip = max_distance // 4  # pigeonhole: one 16-bit chunk is within this many flips
    index.add(to_codes(phash[:, 0]))
    out: dict[tuple[int, int], int] = {}
    # Variant 3 (three quarter-turns) is the inverse of variant 1: its matches are found from the other side.
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


def clip_pairs(catalog: Catalog, model: str, vectors_dir: Any, min_score: float, k: int,
               exact_max: int, dim: int) -> dict[tuple[int, int], float]:
    """Pairs (a < b) among each photo's k nearest CLIP neighbours with cosine >= min_score."""
    from photosearch.vectors import load_for_search

    index, _ = load_for_search(catalog, vectors_dir, model, exact_max=exact_max, dim=dim)
    if index.ntotal < 2:
        return {}
    out: dict[tuple[int, int], float] = {}
    for ids, vecs in catalog.iter_vectors(model, chunk=20_000, searchable=True):
        scores, found = index.search(vecs, k + 1, nprobe=1)
        rows = np.repeat(ids, scores.shape[1])
        s, f = scores.reshape(-1), found.reshape(-1)
        keep = (f >= 0) & (f != rows) & (s >= min_score)
        for x, y, sc in zip(rows[keep].tolist(), f[keep].tolist(), s[keep].tolist()):
            key = (min(x, y), max(x, y))
            out[key] = max(out.get(key, -1.0), sc)
    return out


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


def find_groups(catalog: Catalog, model: str | None, vectors_dir: Any, *, method: str = "both",
                thresholds: Thresholds | None = None, exact_only: bool = False, exact_max: int = 20_000,
                dim: int | None = None) -> list[Group]:
    """Duplicate groups in the catalog, each with its suggested keeper first."""
    if method not in METHODS:
        raise UsageError(f"--method must be one of {', '.join(METHODS)}")
    t = (thresholds or Thresholds()).validate()
    if method in ("clip", "both") and not exact_only and (model is None or dim is None):
        raise UsageError("CLIP duplicates need an installed model (or use --method hash)")
    uf = _UnionFind()
    kinds: dict[tuple[int, int], str] = {}
    # Exact copies first: same bytes.
    for ids in catalog.exact_duplicate_ids():
        for other in ids[1:]:
            uf.union(ids[0], other)
            kinds[(min(ids[0], other), max(ids[0], other))] = "exact"
    if not exact_only:
        rejected = catalog.not_duplicate_pairs()
        edges: list[tuple[int, int]] = []
        hp: dict[tuple[int, int], int] = {}
        if method in ("hash", "both"):
            ids, ph, _ = catalog.all_hashes()
            hp = hash_pairs(ids, ph, t.hash_distance)
        if method == "hash":
            edges = list(hp)
        else:
            cp = clip_pairs(catalog, model, vectors_dir, min(t.clip_alone, 1.0), t.neighbours, exact_max, dim)
            edges = [p for p in cp]
            if method == "both":
                cos = _pair_cosines(catalog, model, [p for p in hp if p not in cp])
                edges += [p for p, c in cos.items() if c >= t.clip_confirm]
        for a, b in edges:
            if (a, b) not in rejected:
                uf.union(a, b)
                kinds.setdefault((a, b), "near")
    by_root: dict[int, list[int]] = {}
    for x in list(uf.parent):
        by_root.setdefault(uf.find(x), []).append(x)
    groups_ids = [sorted(set(v)) for v in by_root.values() if len(set(v)) > 1]
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
        exact = len({m["content_hash"] for m in members}) == 1
        groups.append(_make_group(members, "exact" if exact else "near"))
    groups.sort(key=lambda g: (-len(g.members), g.keeper.path))
    return groups


def _metadata_count(r: dict[str, Any]) -> int:
    fields = ("taken_at", "camera_make", "camera_model", "lens", "gps_lat", "rating", "title", "description")
    return sum(1 for f in fields if r.get(f) not in (None, "")) + len(r.get("keywords") or [])


def _is_original(r: dict[str, Any]) -> int:
    """2 for camera RAW, 1 for a file with camera metadata, 0 for what looks like a re-encode."""
    if (r.get("format") or "").upper() in RAW_FORMATS:
        return 2
    return 1 if (r.get("camera_make") or r.get("camera_model")) else 0


def keeper_key(r: dict[str, Any]) -> tuple[Any, ...]:
    """Sort key, best first: resolution, then original over re-encode (RAW, camera metadata, bigger
    file), then most metadata, then oldest (taken, then file time), then path."""
    # Pixels of the picture itself: padding around a copy does not make it better, and a padded
    # copy is a derived one, so it loses to an unpadded one of about the same size.
    pixels = (r.get("width") or 0) * (r.get("height") or 0)
    if r.get("padded"):
        pixels = int(r["content_pixels"] * PADDED)
    taken = r.get("taken_at") or datetime.max
    return (-pixels, -_is_original(r), -r["size"], -_metadata_count(r), taken, r["mtime_ns"], r["path"])


def _make_group(rows: list[dict[str, Any]], kind: str) -> Group:
    ordered = sorted(rows, key=keeper_key)
    best = ordered[0]
    members = []
    for r in ordered:
        m = Member(r["id"], r["path"], r["width"], r["height"], r["format"], r["size"], r["taken_at"])
        m.why = _why(r, best)
        members.append(m)
    return Group(keeper=members[0], members=members, kind=kind)


def _why(r: dict[str, Any], best: dict[str, Any]) -> str:
    def res(x: dict[str, Any]) -> str:
        return f"{x.get('width')}x{x.get('height')}"

    if r is best:
        return f"keeper: highest resolution ({res(r)})" + (
            ", original" if _is_original(r) else "") + (f", {_metadata_count(r)} metadata fields" if _metadata_count(r) else "")
    if r["content_hash"] == best["content_hash"]:
        return "exact copy of the keeper (same bytes)"
    pr, pb = keeper_key(r)[0], keeper_key(best)[0]
    if pr > pb:  # keys are negated
        if r.get("padded"):
            return "padded copy (uniform borders around the picture)"
        return f"lower resolution ({res(r)} vs {res(best)})"
    if _is_original(r) < _is_original(best) or r["size"] < best["size"]:
        return "re-encoded copy (same resolution, smaller file or no camera metadata)"
    if _metadata_count(r) < _metadata_count(best):
        return "less metadata than the keeper"
    return "newer copy"
