"""Planning a film: which photos and clips, in what order, for how long, with which pan and zoom.

The selection (a text search, or filters: event, person, tag, dates) gives candidates. Planning
then, in order:

1. keeps the usable ones: not blurred, not dark, not blown out (media/quality.py, measured at
   index time with the hashes, or now from the thumbnail for older rows);
2. keeps one per duplicate group (same bytes, pHash within the `dupes` distance, or CLIP vectors
   at the `dupes` cosine), the best looking;
3. ranks them: the search score (or, without a query, how good the shot looks; in a person's film,
   how large and sharp that person's face is);
4. picks shots by maximal marginal relevance over CLIP vectors (relevant, and unlike the shots
   already picked), as many as the duration needs, and puts them in time order;
5. times them: a title card, the shots (stills 2-6 s; clips 2-6 s around their best moment: the
   search's, or the person's face, or the frame most like the whole clip), an end card, with
   crossfades; and gives each still a slow pan and zoom that keeps its faces in frame.

The same inputs give the same plan (ties break by id; the pan direction comes from the id).
Planning reads the catalog only, and at most :data:`MAX_CANDIDATES` candidates are looked at.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from photosearch.errors import InputError, UsageError
from photosearch.media.film import FilmPlan, Shot, check_plan, cover_box
from photosearch.media.quality import Quality
from photosearch.store.catalog import Catalog
from photosearch.store.records import Filters

#: Candidates looked at, at most (the best by search score, or spread evenly over time).
MAX_CANDIDATES = 600
TITLE_S, END_S, FADE_S = 3.0, 2.5, 0.6
STILL_S, MIN_SHOT_S, MAX_SHOT_S = 3.5, 2.0, 6.0
CLIP_S = 4.0
#: Maximal marginal relevance: weight of relevance against likeness to the shots already picked.
MMR_LAMBDA = 0.7
#: A still's zoom: the moving box is this share of the largest box of the film's shape.
ZOOM = 0.82


@dataclass
class Candidate:
    id: int
    row: dict[str, Any]
    score: float                  # relevance, 0-1
    quality: Quality | None
    t: float | None = None        # a video: its best moment
    face: dict[str, Any] | None = None   # a person's film: that person's face here
    faces: list[dict[str, Any]] = field(default_factory=list)   # every face in the photo (the pan keeps them)
    why: str = ""

    @property
    def video(self) -> bool:
        return self.row.get("media") == "video"


def plan_film(cat: Catalog, *, filters: Filters, scored: Sequence[tuple[int, float, float | None]] | None,
              model: str | None, library_root: Path, duration: float = 60.0, size: tuple[int, int] = (1920, 1080),
              fps: int = 30, title: str | None = None, music: str | None = None, query: str | None = None,
              selection: dict[str, Any] | None = None, only_ids: Sequence[int] | None = None) -> FilmPlan:
    """The shot list of a film over the selection: ``scored`` (photo id, search score, best moment
    of a video) from a text search, or else every photo passing ``filters`` (and among
    ``only_ids`` when given: a memory's photos)."""
    if not 4.0 <= duration <= 3600.0:
        raise UsageError("--duration must be 4 to 3600 seconds")
    if scored is not None:
        ranked = sorted(scored, key=lambda s: (-s[1], s[0]))[:MAX_CANDIDATES]
        ids = [s[0] for s in ranked]
        scores = {s[0]: s[1] for s in ranked}
        moments = {s[0]: s[2] for s in ranked if s[2] is not None}
    else:
        ids = cat.filtered_ids(filters).tolist()
        if only_ids is not None:
            ids = sorted(set(ids) & {int(i) for i in only_ids})
        if len(ids) > MAX_CANDIDATES:  # spread evenly over time
            order = cat.ids_by_time(ids)
            step = len(order) / MAX_CANDIDATES
            ids = [int(order[int(i * step)]) for i in range(MAX_CANDIDATES)]
        scores, moments = {}, {}
    if not ids:
        raise InputError("the selection is empty: no photo or video matches it (see `photosearch status`)")
    rows = cat.photos_by_ids(ids)
    cands = _candidates(cat, rows, scores, moments, library_root, filters.person, model)
    if not cands:
        raise InputError(f"the selection has {len(rows)} item(s) but none is usable in a film "
                         "(blurred, too dark, blown out, or gone)")
    # The candidates' CLIP vectors, read once: duplicate links, then diversity.
    found = dict(zip(*cat.vectors(model, [c.id for c in cands]))) if model else {}
    cands = _one_per_duplicate(cat, cands, found)
    vectors = _vectors(found, cands)
    times = _timing(duration)
    picked = _pick(cands, vectors, times)
    picked.sort(key=lambda c: (c.row.get("taken_at") or datetime.min, c.id))
    first = picked[0].row.get("taken_at")
    last = picked[-1].row.get("taken_at")
    shots = _shots(cat, picked, times, size, title or _default_title(filters, query), first, last,
                   _place(cat, picked))
    plan = FilmPlan(width=size[0], height=size[1], fps=fps, duration=round(shots[-1].end, 6),
                    title=shots[0].text[0] if shots[0].text else "", shots=shots, music=music,
                    selection=selection or {})
    check_plan(plan)
    return plan


# -- candidates -------------------------------------------------------------------------------

def _candidates(cat: Catalog, rows: dict[int, dict[str, Any]], scores: dict[int, float],
                moments: dict[int, float], root: Path, person: str | None, model: str | None) -> list[Candidate]:
    from photosearch.files import path_exists

    ids = sorted(rows)
    measured = cat.quality_of(ids)
    faces = cat.faces_of_photos(ids)
    out = []
    for pid in ids:
        row = rows[pid]
        if not path_exists(row["path"]):
            continue  # gone since indexing
        q = Quality(*measured[pid]) if pid in measured else _thumb_quality(root, row)
        if q is not None and not q.usable:
            continue
        if q is None:
            continue  # never measured nor thumbnailed: a file kept without a picture (ingest/analyze.py)
        look = q.score
        c = Candidate(pid, row, scores.get(pid, look), q, moments.get(pid),
                      faces=[f for f in faces.get(pid, []) if f.get("t") is None])
        if person:
            mine = [f for f in faces.get(pid, []) if (f.get("person") or "").lower() == person.lower()]
            if mine:
                c.face = max(mine, key=lambda f: f["w"] * f["h"])
                # Large and sharp: the face's share of the frame, then how the shot looks.
                c.score = 0.6 * min(1.0, math.sqrt(c.face["w"] * c.face["h"]) / 0.4) + 0.4 * look
                if c.video and c.face.get("t") is not None:
                    c.t = float(c.face["t"])
                c.why = f"{person}'s face, {c.face['w'] * c.face['h']:.0%} of the frame"
            else:
                c.score = 0.3 * look       # named in the file's people, no face box found here
        if not c.why:
            c.why = f"search score {scores[pid]:.3f}" if pid in scores else f"looks good ({look:.2f})"
        out.append(c)
    return out


def _thumb_quality(root: Path, row: dict[str, Any]) -> Quality | None:
    """Rows indexed before quality was measured: measure their cached thumbnail."""
    from PIL import Image

    from photosearch.media.quality import measure
    from photosearch.media.thumbs import thumb_path

    path = thumb_path(root, row["content_hash"], 320)
    try:
        with Image.open(path) as img:
            return measure(img.convert("RGB"))
    except (OSError, ValueError):
        return None


def _one_per_duplicate(cat: Catalog, cands: list[Candidate], vecs: dict[int, np.ndarray]) -> list[Candidate]:
    """The best looking (then most relevant, then lowest id) of each group of duplicates."""
    from photosearch.query.dupes import Thresholds, hash_pairs

    th = Thresholds()
    index = {c.id: i for i, c in enumerate(cands)}
    parent = list(range(len(cands)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def join(a: int, b: int) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    by_bytes: dict[str, int] = {}
    for i, c in enumerate(cands):
        j = by_bytes.setdefault(c.row["content_hash"], i)
        if j != i:
            join(i, j)
    photos = [c.id for c in cands if not c.video]
    hid, ph = cat.hashes_of(photos)
    if len(hid) > 1:
        for a, b in hash_pairs(hid, ph, th.hash_distance):
            join(index[int(a)], index[int(b)])
    vid = [pid for pid in photos if pid in vecs]
    if len(vid) > 1:
        vec = np.stack([vecs[pid] for pid in vid])
        sims = vec @ vec.T       # at most MAX_CANDIDATES squared: 360k products
        a, b = np.nonzero(np.triu(sims >= th.clip_alone, k=1))
        for x, y in zip(a.tolist(), b.tolist()):
            join(index[int(vid[x])], index[int(vid[y])])
    best: dict[int, Candidate] = {}
    for i, c in enumerate(cands):
        r = find(i)
        key = (c.quality.score if c.quality else 0.5, c.score, -c.id)
        if r not in best or key > (best[r].quality.score if best[r].quality else 0.5, best[r].score, -best[r].id):
            best[r] = c
    return sorted(best.values(), key=lambda c: c.id)


def _vectors(vecs: dict[int, np.ndarray], cands: list[Candidate]) -> np.ndarray | None:
    if not vecs or any(c.id not in vecs for c in cands):
        return None      # some lack a vector (a model change not re-indexed): diversity by time instead
    return np.stack([vecs[c.id] for c in cands])


# -- choosing and timing ----------------------------------------------------------------------

@dataclass
class _Times:
    duration: float
    title: float
    end: float
    fade: float
    still: float

    def room(self, n: int) -> float:
        """Seconds the n shots between the cards must fill (they overlap the cards and each other)."""
        return self.duration - self.title - self.end + (n + 1) * self.fade


def _timing(duration: float) -> _Times:
    """Cards and fades shrink in a short film (a 6 s film still has a title)."""
    return _Times(duration, min(TITLE_S, duration * 0.15), min(END_S, duration * 0.12),
                  min(FADE_S, duration * 0.05), STILL_S)


def _bounds(c: Candidate) -> tuple[float, float]:
    if c.video:
        length = float(c.row.get("duration") or 0.0)
        return min(MIN_SHOT_S, length), min(MAX_SHOT_S, length)
    return MIN_SHOT_S, MAX_SHOT_S


def _pick(cands: list[Candidate], vectors: np.ndarray | None, times: _Times) -> list[Candidate]:
    """Maximal marginal relevance, as many shots as the film's length needs."""
    cands = [c for c in cands if _bounds(c)[1] >= 1.0]        # a clip under a second is no shot
    if not cands:
        raise InputError("nothing in the selection can be a shot (clips under a second only)")
    most = times.room(len(cands))
    longest = sum(_bounds(c)[1] for c in cands)
    if longest < most - 1e-6:
        can = times.title + times.end - (len(cands) + 1) * times.fade + longest
        raise UsageError(f"the selection has {len(cands)} usable shot(s), enough for a film of at most "
                         f"{math.floor(can)} s: ask for --duration {math.floor(can)} or less, or widen the selection")
    want = max(1, round(times.room(0) / (times.still - times.fade)))
    rel = np.array([c.score for c in cands], np.float64)
    if rel.max() > rel.min():
        rel = (rel - rel.min()) / (rel.max() - rel.min())
    else:
        rel = np.ones_like(rel)
    picked: list[int] = []
    like = np.full(len(cands), -1.0)
    taken = [c.row.get("taken_at") for c in cands]
    while len(picked) < min(want, len(cands)) or (
            sum(_bounds(cands[i])[1] for i in picked) < times.room(len(picked)) and len(picked) < len(cands)):
        if vectors is not None:
            gain = MMR_LAMBDA * rel - (1 - MMR_LAMBDA) * np.maximum(like, 0.0)
        else:  # no vectors: unlike = far apart in time from the picked ones
            gain = MMR_LAMBDA * rel - (1 - MMR_LAMBDA) * _time_likeness(taken, picked)
        gain[picked] = -np.inf
        best = int(np.argmax(gain))      # ties: the first, i.e. the lowest id
        picked.append(best)
        if vectors is not None:
            like = np.maximum(like, vectors @ vectors[best])
    # Enough shots that none must run longer than allowed, few enough that none is shorter.
    while len(picked) > 1 and sum(_bounds(cands[i])[0] for i in picked) > times.room(len(picked)):
        picked.pop()
    return [cands[i] for i in picked]


def _time_likeness(taken: list[Any], picked: list[int]) -> np.ndarray:
    if not picked:
        return np.zeros(len(taken))
    t = np.array([x.timestamp() if x else 0.0 for x in taken])
    gaps = np.min(np.abs(t[:, None] - t[None, picked]), axis=1)
    return np.exp(-gaps / 3600.0)


def _lengths(picked: list[Candidate], room: float) -> list[float]:
    """Shot lengths filling ``room``: stills near STILL_S, clips near CLIP_S, each within its bounds."""
    bounds = [_bounds(c) for c in picked]
    base = [CLIP_S if c.video else STILL_S for c in picked]
    lo, hi = 0.01, 100.0
    for _ in range(80):        # bisection on a common scale (the total grows with it)
        mid = (lo + hi) / 2
        total = sum(min(b[1], max(b[0], x * mid)) for x, b in zip(base, bounds))
        lo, hi = (mid, hi) if total < room else (lo, mid)
    lengths = [min(b[1], max(b[0], x * lo)) for x, b in zip(base, bounds)]
    # Round to whole frames' worth of millisecond and put the remainder on the longest-free shot.
    lengths = [round(v, 3) for v in lengths]
    rest = round(room - sum(lengths), 6)
    i = max(range(len(picked)), key=lambda k: (bounds[k][1] - lengths[k], -k))
    lengths[i] = round(lengths[i] + rest, 6)
    return lengths


def _shots(cat: Catalog, picked: list[Candidate], times: _Times, size: tuple[int, int], title: str,
           first: datetime | None, last: datetime | None, place: str | None) -> list[Shot]:
    lengths = _lengths(picked, times.room(len(picked)))
    sub = [s for s in (_date_range(first, last), place) if s]
    shots = [Shot("title", 0.0, round(times.title, 6), text=[title, *sub])]
    at = shots[0].end
    for c, length in zip(picked, lengths):
        start = round(at - times.fade, 6)
        taken = c.row.get("taken_at")
        shot = Shot("clip" if c.video else "photo", start, length, fade=round(times.fade, 6), photo_id=c.id,
                    path=c.row["path"], taken_at=taken.isoformat() if taken else None, why=c.why)
        if c.video:
            _clip(cat, c, shot, length, size)
        else:
            _pan(c, shot, size)
        shots.append(shot)
        at = shot.end
    end = Shot("end", round(at - times.fade, 6), 0.0, fade=round(times.fade, 6),
               text=[title, "made with photosearch"])
    end.duration = round(times.duration - end.start, 6)
    shots.append(end)
    return shots


def _pan(c: Candidate, shot: Shot, size: tuple[int, int]) -> None:
    """A slow zoom in or out (alternating by id) drifting towards the faces, all faces in frame
    (no zoom when they would not fit)."""
    w, h = int(c.row.get("width") or size[0]), int(c.row.get("height") or size[1])
    full = cover_box((w, h), size)
    zw, zh = full[2] * ZOOM, full[3] * ZOOM
    # A person's film frames that person; any other film keeps every face in the photo.
    faces = [c.face] if c.face else c.faces
    if faces:
        fx0 = min(f["x"] for f in faces)
        fy0 = min(f["y"] for f in faces)
        fx1 = max(f["x"] + f["w"] for f in faces)
        fy1 = max(f["y"] + f["h"] for f in faces)
        cx, cy = (fx0 + fx1) / 2, (fy0 + fy1) / 2
        if fx1 - fx0 > zw * 0.9 or fy1 - fy0 > zh * 0.9:
            zw, zh = full[2], full[3]        # a face too large for the zoom: no zoom
    else:
        # No face: drift across, direction by id (the same plan every time).
        side = (c.id % 3) - 1
        cx, cy = 0.5 + side * 0.5 * (full[2] - zw), 0.5
    def around(bw: float, bh: float) -> list[float]:
        return [round(min(max(cx - bw / 2, 0.0), 1.0 - bw), 6), round(min(max(cy - bh / 2, 0.0), 1.0 - bh), 6),
                round(bw, 6), round(bh, 6)]

    # The wide box too is moved over the faces (a portrait photo in a landscape film is a band of it).
    wide = around(full[2], full[3]) if faces else [round(v, 6) for v in full]
    tight = around(zw, zh)
    shot.box_from, shot.box_to = (wide, tight) if c.id % 2 == 0 else (tight, wide)


def _clip(cat: Catalog, c: Candidate, shot: Shot, length: float, size: tuple[int, int]) -> None:
    """The clip's seconds around its best moment, and whether its sound is used."""
    dur = float(c.row.get("duration") or length)
    t = c.t
    why = "its best-matching moment"
    if t is None:
        t, why = _representative_moment(cat, c), "the moment most like the whole clip"
    t_in = min(max(0.0, t - length / 2), max(0.0, dur - length))
    shot.t_in, shot.t_out = round(t_in, 3), round(t_in + length, 3)
    w, h = int(c.row.get("width") or size[0]), int(c.row.get("height") or size[1])
    shot.box_from = shot.box_to = [round(v, 6) for v in cover_box((w, h), size)]
    shot.sound = True
    shot.why = f"{c.why}; {why} at {t:.1f} s"


def _representative_moment(cat: Catalog, c: Candidate) -> float:
    for model in cat.frame_models():
        _, ts, vecs = cat.frames_of(c.id, model)
        if len(ts):
            mean = vecs.mean(axis=0)
            return float(ts[int(np.argmax(vecs @ mean))])
    return float(c.row.get("duration") or 0.0) / 2


def _default_title(filters: Filters, query: str | None) -> str:
    if query:
        return query[:1].upper() + query[1:]
    if filters.person:
        return filters.person
    if filters.event:
        return filters.event
    if filters.tags:
        return ", ".join(filters.tags)
    return "Memories"


def _date_range(first: datetime | None, last: datetime | None) -> str | None:
    if first is None:
        return None
    if last is None or first.date() == last.date():
        return f"{first.day} {first:%B %Y}"
    if (first.year, first.month) == (last.year, last.month):
        return f"{first.day}-{last.day} {first:%B %Y}"
    if first.year == last.year:
        return f"{first.day} {first:%B} - {last.day} {last:%B %Y}"
    return f"{first:%B %Y} - {last:%B %Y}"


def _place(cat: Catalog, picked: list[Candidate]) -> str | None:
    """The place of the event most of the shots belong to, if any."""
    events = {e["id"]: e for e in cat.events()}
    of = cat.photo_event_ids()
    counts: dict[int, int] = {}
    for c in picked:
        if c.id in of:
            counts[of[c.id]] = counts.get(of[c.id], 0) + 1
    if not counts:
        return None
    top = max(counts, key=lambda k: (counts[k], -k))
    return events.get(top, {}).get("place")


__all__ = ["plan_film", "MAX_CANDIDATES"]
