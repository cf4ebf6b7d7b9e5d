"""People: clustering faces into people incrementally, naming, merging, rejecting, contact sheets.

Clustering (``update_people``, run after every index pass):

1. Only faces never processed are new; everything else keeps its person.
2. Each new face's nearest faces come from a FAISS index over all faces of
   the model (exact up to PHOTOSEARCH_EXACT_MAX faces, IVF above), so a run
   costs about (new faces x log), never a full recluster.
3. A new face joins the existing person whose faces it is most similar to *on
   average* (average linkage, computed from per-person vector sums), if that
   average reaches the threshold.
4. The rest are clustered among themselves and with earlier unclustered
   faces by average linkage over their nearest-neighbour edges, strongest
   edge first. Average (not single) linkage keeps chains of look-alikes, such
   as siblings, from merging. Clusters of 2+ faces become unnamed people.

Hard rules at every step: two faces in one photo are never the same person,
and a face is never put back into a person it was rejected from.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from photosearch.store.catalog import Catalog
from photosearch.files import os_path
from photosearch.errors import InputError, UsageError

#: Mean cosine similarity between a face and a person's faces (or between two clusters) needed to
#: put them together. SFace's published verification threshold is 0.363 (OpenCV Zoo); clustering
#: is kept a little stricter, since one wrong merge costs more than one missed join.
DEFAULT_THRESHOLD = 0.40
#: Neighbours looked at per new face.
NEIGHBOURS = 20


@dataclass
class _Cluster:
    total: np.ndarray
    n: int
    photos: set[int]
    faces: list[int]


def update_people(cat: Catalog, model: str, *, threshold: float = DEFAULT_THRESHOLD,
                  exact_max: int | None = None) -> int:
    """Assign never-processed faces of ``model`` to people or new clusters; returns faces assigned."""
    from photosearch.config import DEFAULT_EXACT_MAX, ENV_EXACT_MAX, env_int
    from photosearch.store.vectors import VectorIndex

    t = cat.face_table(model)
    n = len(t["id"])
    if n == 0:
        return 0
    new = np.where((t["person_id"] < 0) & (t["assigned"] == ""))[0]
    if len(new) == 0:
        return 0
    vecs = np.ascontiguousarray(t["vectors"], dtype=np.float32)
    face_ids, photo_ids, person_ids = t["id"], t["photo_id"], t["person_id"].copy()
    rejected: dict[int, set[int]] = {}
    for face, person in cat.rejections():
        rejected.setdefault(face, set()).add(person)

    # Existing people: vector sums and photo sets (for average linkage and cannot-link).
    people: dict[int, _Cluster] = {}
    for i in np.where(person_ids >= 0)[0]:
        p = int(person_ids[i])
        c = people.get(p)
        if c is None:
            people[p] = c = _Cluster(np.zeros(vecs.shape[1], np.float64), 0, set(), [])
        c.total += vecs[i]
        c.n += 1
        c.photos.add(int(photo_ids[i]))

    limit = exact_max if exact_max is not None else env_int(ENV_EXACT_MAX, DEFAULT_EXACT_MAX)
    index = VectorIndex.build(np.arange(n, dtype=np.int64), vecs, exact_max=limit)
    k = min(NEIGHBOURS + 1, n)
    sims, nbrs = index.search(vecs[new], k)

    changed: list[tuple[int, int]] = []  # (face id, person id)
    leftover: list[int] = []
    # 1) joins, most confident first
    proposals = []
    for row, i in enumerate(new):
        cands = {int(person_ids[j]) for s, j in zip(sims[row], nbrs[row]) if j >= 0 and j != i and s >= threshold
                 and person_ids[j] >= 0}
        best, best_score = None, threshold
        for p in cands:
            c = people[p]
            if p in rejected.get(int(face_ids[i]), ()) or int(photo_ids[i]) in c.photos:
                continue
            score = float(vecs[i] @ c.total) / c.n
            if score >= best_score:
                best, best_score = p, score
        proposals.append((best_score, int(i), best))
    for score, i, p in sorted(proposals, key=lambda x: -x[0]):
        c = people.get(p) if p is not None else None
        if c is None or int(photo_ids[i]) in c.photos or float(vecs[i] @ c.total) / c.n < threshold:
            leftover.append(i)
            continue
        c.total += vecs[i]
        c.n += 1
        c.photos.add(int(photo_ids[i]))
        person_ids[i] = p
        changed.append((int(face_ids[i]), p))

    # 2) cluster the rest with every other face that has no person (new or left over earlier)
    free = set(leftover) | {int(i) for i in np.where(person_ids < 0)[0]}
    clusters: dict[int, _Cluster] = {}
    parent: dict[int, int] = {}

    def root(x: int) -> int:
        while parent.get(x, x) != x:
            parent[x] = parent.get(parent[x], parent[x])
            x = parent[x]
        return x

    def cluster_of(i: int) -> _Cluster:
        c = clusters.get(i)
        if c is None:
            clusters[i] = c = _Cluster(vecs[i].astype(np.float64), 1, {int(photo_ids[i])}, [i])
        return c

    edges = []
    leftover_set = set(leftover)
    for row, i in enumerate(new):
        if int(i) not in leftover_set:
            continue
        for s, j in zip(sims[row], nbrs[row]):
            if j >= 0 and j != i and s >= threshold and int(j) in free:
                edges.append((float(s), int(i), int(j)))
    for _, a, b in sorted(edges, key=lambda e: -e[0]):
        ra, rb = root(a), root(b)
        if ra == rb:
            continue
        ca, cb = cluster_of(ra), cluster_of(rb)
        if ca.photos & cb.photos:
            continue
        if float(ca.total @ cb.total) / (ca.n * cb.n) < threshold:
            continue
        if ca.n < cb.n:
            ra, rb, ca, cb = rb, ra, cb, ca
        parent[rb] = ra
        ca.total += cb.total
        ca.n += cb.n
        ca.photos |= cb.photos
        ca.faces += cb.faces
        del clusters[rb]

    groups = [c for r, c in clusters.items() if root(r) == r and c.n >= 2]
    new_ids = cat.create_people(len(groups))
    for pid, c in zip(new_ids, groups):
        for i in c.faces:
            person_ids[i] = pid
            changed.append((int(face_ids[i]), pid))
    cat.assign_many(changed, "auto")
    # Faces still without a person are marked processed (they are looked at again as neighbours
    # of later faces, not re-searched every run).
    cat.mark_faces_processed([int(face_ids[i]) for i in new if person_ids[i] < 0])
    return len(changed)


def recluster(cat: Catalog, model: str, *, threshold: float = DEFAULT_THRESHOLD) -> int:
    """Forget every automatic assignment (names, hand assignments and rejections stay) and cluster again."""
    cat.reset_auto_assignments(model)
    cat.delete_empty_people()
    return update_people(cat, model, threshold=threshold)


# -- editing people ------------------------------------------------------------------------------


def resolve_person(cat: Catalog, ref: str | int) -> dict[str, Any]:
    """A person by id (digits) or by name (case-insensitive)."""
    text = str(ref).strip()
    person = cat.person(int(text)) if text.isdigit() else cat.person_by_name(text)
    if person is None:
        raise UsageError(f"no person or cluster {ref!r} (see `photosearch people`)")
    return person


def clean_name(name: str) -> str:
    """A person's name with its spaces tidied; UsageError for an empty or unwritable one (the
    name goes into keywords as ``People|Name``)."""
    name = " ".join(name.split())
    if not name:
        raise UsageError("the name is empty")
    if len(name) > 200 or any(ch in name for ch in "|/\n\r\t"):
        raise UsageError("a name may not contain '|', '/' or line breaks, and is at most 200 characters")
    return name


def name_person(cat: Catalog, ref: str | int, name: str) -> dict[str, Any]:
    """Name a person or cluster. If another person already has the name, the two are merged."""
    name = clean_name(name)
    person = resolve_person(cat, ref)
    other = cat.person_by_name(name)
    if other is not None and other["id"] != person["id"]:
        cat.merge_people(other["id"], [person["id"]])
        cat.rename_person(other["id"], name)
        return {"id": other["id"], "name": name, "merged": [person["id"]]}
    cat.rename_person(person["id"], name)
    cat.assign_faces([f["id"] for f in cat.person_faces(person["id"]) if f["assigned"] in ("auto", None)],
                     person["id"], "user")
    return {"id": person["id"], "name": name, "merged": []}


def name_face(cat: Catalog, face_id: int, name: str) -> dict[str, Any]:
    """Name one face (a face seen only once has no cluster to name): it joins the person of that
    name, who is created if there is none, as a face the user assigned; if the face was in a
    cluster, only this face leaves it."""
    name = clean_name(name)
    face = cat.faces_by_ids([face_id]).get(int(face_id))
    if face is None:
        raise InputError(f"no face {face_id}")
    person = cat.person_by_name(name)
    pid = person["id"] if person is not None else cat.create_person(name)
    if any(f["photo_id"] == face["photo_id"] and f["id"] != face["id"] for f in cat.person_faces(pid)):
        raise UsageError(f"{name} already has a face in this photo: two faces in one photo are never the same person")
    cat.assign_faces([face["id"]], pid, "user")
    cat.delete_empty_people()
    return {"face": face["id"], "id": pid, "name": name}


def merge_people(cat: Catalog, refs: Sequence[str | int]) -> dict[str, Any]:
    """Merge people into the first named one among them (else the first given)."""
    people = [resolve_person(cat, r) for r in refs]
    ids = list(dict.fromkeys(p["id"] for p in people))
    if len(ids) < 2:
        raise UsageError("give at least two different people or clusters to merge")
    named = [p for p in people if p["name"]]
    names = {p["name"].lower() for p in named}
    if len(names) > 1:
        raise UsageError("these are different named people (" + ", ".join(sorted({p['name'] for p in named}))
                         + "); rename one first if they really are the same person")
    into = named[0] if named else people[0]
    others = [i for i in ids if i != into["id"]]
    _check_no_shared_photo(cat, [into["id"], *others])
    cat.merge_people(into["id"], others)
    return {"id": into["id"], "name": into["name"], "merged": others}


#: Pairs whose centroids are at least this similar are suggested for a merge (the same-person
#: threshold of clustering, a little lower: clusters a face or two short of joining).
SUGGEST_THRESHOLD = DEFAULT_THRESHOLD - 0.05
_NOT_SAME = "people:not-same"


def merge_suggestions(cat: Catalog, model: str, *, limit: int = 20,
                      threshold: float = SUGGEST_THRESHOLD) -> list[dict[str, Any]]:
    """Pairs of people or clusters that may be one person: their faces' mean vectors at cosine
    >= ``threshold``, never two who appear in one photo, nor a pair answered "not the same";
    most similar first. {"a", "b": {"id", "name", "faces"}, "similarity"}."""
    import json

    t = cat.face_table(model)
    mask = t["person_id"] >= 0
    if not mask.any():
        return []
    persons = t["person_id"][mask]
    vecs = np.asarray(t["vectors"][mask], dtype=np.float32)
    ids, inverse = np.unique(persons, return_inverse=True)
    sums = np.zeros((len(ids), vecs.shape[1]), np.float32)
    np.add.at(sums, inverse, vecs)
    cents = sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
    photos: dict[int, set[int]] = {}
    for person, photo in zip(persons.tolist(), t["photo_id"][mask].tolist()):
        photos.setdefault(person, set()).add(photo)
    dismissed = {tuple(p) for p in json.loads(cat.get_setting(_NOT_SAME) or "[]")}
    info = {p["id"]: p for p in cat.people()}
    out = []
    # People are few next to photos (thousands); their centroid matrix is small, a block at a time.
    for lo in range(0, len(ids), 1024):
        sims = cents[lo:lo + 1024] @ cents.T
        for i, j in zip(*np.nonzero(sims >= threshold)):
            a, b = int(ids[lo + i]), int(ids[j])
            if a >= b or (a, b) in dismissed or photos[a] & photos[b]:
                continue
            pa, pb = info.get(a), info.get(b)
            if pa is None or pb is None or (pa["name"] and pb["name"] and pa["name"].lower() != pb["name"].lower()):
                continue
            out.append({"a": {k: pa[k] for k in ("id", "name", "faces")}, "b": {k: pb[k] for k in ("id", "name", "faces")},
                        "similarity": round(float(sims[i, j]), 4)})
    out.sort(key=lambda s: -s["similarity"])
    return out[:limit]


def dismiss_suggestion(cat: Catalog, a: int, b: int) -> None:
    """Remember that two people or clusters are not the same person (never suggested again)."""
    import json

    pairs = {tuple(p) for p in json.loads(cat.get_setting(_NOT_SAME) or "[]")}
    pairs.add((min(int(a), int(b)), max(int(a), int(b))))
    cat.set_setting(_NOT_SAME, json.dumps(sorted(pairs)))


def _check_no_shared_photo(cat: Catalog, person_ids: Sequence[int]) -> None:
    seen: dict[int, int] = {}
    for pid in person_ids:
        for f in cat.person_faces(pid):
            other = seen.get(f["photo_id"])
            if other is not None and other != pid:
                raise UsageError(
                    f"people {other} and {pid} both appear in {f['path']}: two faces in one photo are never "
                    "the same person (reject the wrong face first with `photosearch people reject FACE`)")
            seen[f["photo_id"]] = pid


def reject_face(cat: Catalog, face_id: int) -> dict[str, Any]:
    """Take a face out of its person; it is never proposed for that person again."""
    face = cat.faces_by_ids([face_id]).get(int(face_id))
    if face is None:
        raise UsageError(f"no face {face_id} (face ids are listed by `photosearch people show ID`)")
    if face["person_id"] is None:
        raise UsageError(f"face {face_id} belongs to no person")
    cat.reject_face(face_id, face["person_id"])
    cat.delete_empty_people()
    return {"face": int(face_id), "person_id": face["person_id"], "person": face["person"]}


# -- contact sheets ------------------------------------------------------------------------------

THUMB = 112
MARGIN = 0.25


def contact_sheet(cat: Catalog, person_id: int, out: Path, *, max_faces: int = 60, columns: int = 10) -> dict[str, Any]:
    """One JPEG of the person's face thumbnails (labelled with face ids), written to ``out``."""
    from PIL import Image, ImageDraw

    from photosearch.errors import DecodeError
    from photosearch.media.decode import decode

    faces = cat.person_faces(person_id, limit=max_faces)
    if not faces:
        raise UsageError(f"person {person_id} has no faces")
    cols = max(1, min(columns, len(faces)))
    rows = (len(faces) + cols - 1) // cols
    label_h = 14
    sheet = Image.new("RGB", (cols * THUMB, rows * (THUMB + label_h)), (32, 32, 32))
    draw = ImageDraw.Draw(sheet)
    placed = 0
    cache: dict[str, Any] = {}
    for n, f in enumerate(faces):
        img = cache.get(f["path"])
        if img is None:
            try:
                with open(os_path(f["path"]), "rb") as fh:
                    img = decode(fh.read(), ext=os.path.splitext(f["path"])[1].lower(), min_side=THUMB * 4).image
            except (OSError, DecodeError):
                img = False
            cache[f["path"]] = img
        x0, y0 = (n % cols) * THUMB, (n // cols) * (THUMB + label_h)
        if img:
            W, H = img.size
            cx, cy = (f["x"] + f["w"] / 2) * W, (f["y"] + f["h"] / 2) * H
            side = max(f["w"] * W, f["h"] * H) * (1 + 2 * MARGIN)
            box = (round(cx - side / 2), round(cy - side / 2), round(cx + side / 2), round(cy + side / 2))
            sheet.paste(img.crop(box).resize((THUMB, THUMB)), (x0, y0))
            placed += 1
        draw.text((x0 + 3, y0 + THUMB + 1), f"face {f['id']}", fill=(230, 230, 230))
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        from photosearch.files import replacing

        with replacing(out, suffix=".jpg") as tmp:
            sheet.save(tmp, "JPEG", quality=88)
    except OSError as exc:
        raise InputError(f"cannot write {out}: {exc.strerror}") from None
    return {"person_id": person_id, "path": str(out), "faces": len(faces), "placed": placed}


__all__ = ["update_people", "recluster", "name_person", "merge_people", "reject_face", "contact_sheet",
           "resolve_person", "DEFAULT_THRESHOLD"]
