"""The last stage of every indexing run, whichever runner did the analysis.

Rows of files that are gone go, Live Photos are paired (a short movie beside a still of the
same name and time), the keywords in the files become tags, faces are grouped into people, and
the vector indexes of the
CLIP model and the face model are brought up to the catalog and saved: in that order, because
updating people bumps the catalog's data version, and indexes saved before it would read as
stale to the next search or `status`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from photosearch.config import DEFAULT_EXACT_MAX, ENV_EXACT_MAX, env_int
from photosearch.store.catalog import Catalog
from photosearch.store.vectors import load_for_search, save_for_catalog


@dataclass
class Finished:
    """What the finish stage did."""

    removed: int = 0
    live_photos: int = 0      # Live Photo pairs found (movie beside its still)
    people_updated: int = 0
    total_photos: int = 0
    file_tags: int = 0        # (photo, tag) pairs read from the files' keywords


def finish(cat: Catalog, vectors_dir: Path, *, gone_ids: list[int], model: str, dim: int,
           face_model: str | None, face_dim: int | None, exact_max: int | None = None) -> Finished:
    """Remove ``gone_ids`` (rows of files that are gone and did not move), update people, save the indexes."""
    if exact_max is None:
        exact_max = env_int(ENV_EXACT_MAX, DEFAULT_EXACT_MAX)
    out = Finished()
    if gone_ids:
        with cat.transaction():
            cat.delete_photos(gone_ids)
        out.removed = len(gone_ids)
    pairs = live_photo_pairs(cat.live_photo_candidates())
    if pairs:
        with cat.transaction():
            cat.set_live_pairs(pairs)
        out.live_photos = len(pairs)
    # The files' keywords are read again only when the catalog changed since the last time (an
    # index run that found nothing new does not rewrite every file decision).
    if cat.get_setting("file_tags_version") != str(cat.data_version()):
        with cat.transaction():
            out.file_tags = refresh_file_tags(cat)
    if face_model:
        from photosearch.query.people import update_people

        with cat.transaction():
            out.people_updated = update_people(cat, face_model, exact_max=exact_max)
    save_index_if_stale(cat, vectors_dir, model, dim, exact_max)
    save_index_if_stale(cat, vectors_dir, cat.frame_vectors(model), dim, exact_max)
    if face_model and face_dim:
        save_index_if_stale(cat, vectors_dir, cat.face_vectors(face_model), face_dim, exact_max)
    _mark_text(cat, vectors_dir)
    with cat.transaction():   # (a setting: it does not change the data version)
        cat.set_setting("file_tags_version", str(cat.data_version()))
    out.total_photos = cat.count_photos()
    return out


#: The keyword root under which digiKam, Lightroom and photosearch file person names: people,
#: read from face regions and PersonInImage, not tags.
PEOPLE_ROOT = "people"


def refresh_file_tags(cat: Catalog) -> int:
    """The keywords in the files as tags (source ``file``, accepted): every part of a keyword
    path is a tag whose parent is the part before it, and the photo carries each part (so
    ``--tag France`` finds a photo kept under Places/France/Paris). Keywords under ``People``
    are person names, not tags; ``Albums/NAME`` puts the photo in album NAME; names a tag cannot have (``|``, ``/``, ``,``, line breaks,
    over 100 characters) are left out."""
    from photosearch.query.albums import ALBUMS_ROOT

    tags: dict[str, str | None] = {}
    members: list[tuple[int, str]] = []
    in_albums: list[tuple[int, str]] = []
    for pid, flat, path_texts in cat.keyword_rows():
        paths = [tuple(x for x in p.split("/") if x.strip()) for p in path_texts]
        in_paths = {part for p in paths for part in p}
        paths += [(k,) for k in flat if k not in in_paths]
        for path in paths:
            if len(path) == 2 and path[0].strip() == ALBUMS_ROOT:   # an album written by `sync`
                in_albums.append((pid, " ".join(path[1].split())))
                continue
            if not path or path[0].strip().lower() in (PEOPLE_ROOT, ALBUMS_ROOT.lower()):
                continue
            parent = None
            for part in path:
                name = " ".join(part.split())
                if not name or len(name) > 100 or any(ch in name for ch in "|/,\n\r\t"):
                    break
                tags.setdefault(name, parent)
                members.append((pid, name))
                parent = name
    cat.refresh_file_albums(in_albums)
    return cat.refresh_file_tags(list(tags.items()), members)


def _mark_text(cat: Catalog, vectors_dir: Path) -> None:
    """Say in the vectors folder whether photos have text (text searches then also look for words)."""
    from photosearch.query.search import TEXT_MARKER

    marker = vectors_dir / TEXT_MARKER
    if cat.text_counts()[1]:
        if not marker.exists():
            vectors_dir.mkdir(parents=True, exist_ok=True)
            marker.touch()
    else:
        marker.unlink(missing_ok=True)


#: The most a Live Photo's movie and still may differ in capture time (Apple writes the same second).
LIVE_PHOTO_SECONDS = 1.0


def live_photo_pairs(candidates: list[tuple[int, Any, int, Any, bool]]) -> list[tuple[int, int]]:
    """(movie id, still id) of the candidates (see ``live_photo_candidates``): the first still
    with the movie's Apple identifier, or else a still of the same name whose capture time is
    within :data:`LIVE_PHOTO_SECONDS`; one still per movie and one movie per still."""
    pairs: dict[int, int] = {}
    taken: set[int] = set()
    for movie, mt, still, st, by_id in candidates:
        if movie in pairs or still in taken:
            continue
        if by_id or (mt is not None and st is not None and abs((mt - st).total_seconds()) <= LIVE_PHOTO_SECONDS):
            pairs[movie] = still
            taken.add(still)
    return sorted(pairs.items())


def save_index_if_stale(cat: Catalog, vectors_dir: Path, source: object, dim: int, exact_max: int) -> None:
    """Bring one vector index (a CLIP model's name, or a face model's vector source) up to the
    catalog and save it, unless the saved one is current already."""
    key = source if isinstance(source, str) else source.key  # type: ignore[attr-defined]
    state = cat.index_state(key)
    if state is not None and state["version"] == cat.data_version() and (vectors_dir / state["file"]).is_file():
        return
    if not isinstance(source, str) and source.count() == 0 and state is None:  # type: ignore[attr-defined]
        return  # no face (or video frame) found yet: no index to write
    index, _ = load_for_search(cat, vectors_dir, source, exact_max=exact_max, dim=dim)
    save_for_catalog(index, cat, vectors_dir, source)
