"""Writing what photosearch knows back into the photos' own metadata (XMP, and IPTC for JPEG).

- People: every named person's faces become MWG face regions (``mwg-rs:Regions``, in the
  stored frame, see regions.py), plus ``Iptc4xmpExt:PersonInImage`` and the keywords
  ``People|Name`` (``lr:hierarchicalSubject``) and ``People/Name`` (``digiKam:TagsList``).
- Tags: accepted tags, and automatic ones at or above their threshold (unless accepted-only),
  as ``dc:subject`` (with their ancestors), ``lr:hierarchicalSubject`` (``Parent|Tag``),
  ``digiKam:TagsList`` (``Parent/Tag``) and, in JPEGs, IPTC ``Keywords``.
- Ratings set in photosearch (``photosearch rate``) as ``xmp:Rating``.
- Manual albums as the keyword ``Albums/NAME`` (query/albums.py; ``--no-albums`` leaves them out).
- With ``ocr`` (``sync --ocr``; off by default: photo text can be private), the text read in the
  photo, its lines one per line, as ``photosearch:Text`` (namespace ``http://ns.photosearch.dev/1.0/``).
- What a Google Takeout JSON said and the file lacks: the date (``exif:DateTimeOriginal``),
  the place (``exif:GPSLatitude/Longitude``), the description, and its people
  (PersonInImage and People keywords).

A sync is planned first (a dry run: what would change, per file) and applied
only on request, one file at a time through the safe writer in xmp.py: temp
copy, verify, atomic replace. One file's failure is reported and the others
go on. The catalog's size/mtime/hash of a rewritten photo are updated (its
pixels are verified unchanged), so the next index run does not re-embed it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from photosearch.actions.journal import JournalWriter
from photosearch.files import os_path
from photosearch.store.catalog import Catalog
from photosearch.media.xmp import LIST_KEYS, TEXT_KEY, MetadataUpdate, WriteError, preview

PEOPLE_ROOT = "People"


@dataclass
class SyncItem:
    """One photo's pending (or applied) metadata change."""

    photo_id: int
    path: str
    target: str = ""
    sidecar: bool = False
    people: list[str] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)   # human-readable, one per change
    status: str = "pending"                            # pending | written | unchanged | failed
    error: str | None = None
    note: str | None = None                            # e.g. why a sidecar was written instead
    action: str | None = None                          # the journaled action that wrote it (for undo)

    def as_dict(self) -> dict[str, Any]:
        """The item's fields as a plain dict."""
        return dict(self.__dict__)


def people_update(faces: list[dict[str, Any]], photo: dict[str, Any]) -> MetadataUpdate:
    """The metadata update naming the people in one photo."""
    names = list(dict.fromkeys(f["person"] for f in faces if f["person"]))
    regions = [(f["person"], (f["x"], f["y"], f["w"], f["h"])) for f in faces if f["person"]]
    return MetadataUpdate(
        persons=names,
        hierarchical=[f"{PEOPLE_ROOT}|{n}" for n in names],
        tags_list=[f"{PEOPLE_ROOT}/{n}" for n in names],
        people=regions,
        orientation=photo.get("orientation"),
        display_size=(photo.get("width") or 0, photo.get("height") or 0),
    )


def tags_update(tags: list[dict[str, Any]], parents: dict[str, str | None], accepted_only: bool) -> MetadataUpdate:
    """The keywords for one photo's tags: accepted ones, and automatic ones at or above their
    threshold unless ``accepted_only``; ancestors are keywords too, as Lightroom writes them."""
    from photosearch.query.tags import ancestors

    chosen = [t["tag"] for t in tags if t["state"] == "accepted" or (not accepted_only and t["on"])]
    chains = [ancestors(t, parents) for t in chosen]
    return MetadataUpdate(
        keywords=list(dict.fromkeys(k for c in chains for k in c)),
        hierarchical=["|".join(c) for c in chains],
        tags_list=["/".join(c) for c in chains],
    )


def _combine(a: MetadataUpdate, b: MetadataUpdate) -> MetadataUpdate:
    return MetadataUpdate(
        keywords=a.keywords + b.keywords, hierarchical=a.hierarchical + b.hierarchical,
        tags_list=a.tags_list + b.tags_list, persons=a.persons + b.persons, people=a.people + b.people,
        rating=b.rating if b.rating is not None else a.rating, description=a.description or b.description,
        orientation=a.orientation or b.orientation, display_size=a.display_size or b.display_size,
        text=a.text or b.text)


def updates(cat: Catalog, *, people: bool = True, tags: bool = True, ratings: bool = True,
            accepted_only: bool = False, takeout: bool = True, only_ids: list[int] | None = None,
            ocr: bool = False, albums: bool = True) -> dict[int, tuple[dict[str, Any], MetadataUpdate]]:
    """Per photo id (all, or ``only_ids``): (catalog row, what photosearch would write into it)."""
    from photosearch.query.albums import ALBUMS_ROOT

    in_albums = cat.albums_of_photos(cat.album_member_ids()) if albums else {}
    by_photo_faces = cat.named_faces_by_photo() if people else {}
    tag_photos = cat.tagged_photo_ids() if tags else []
    rated = cat.ratings() if ratings else {}
    from_takeout = cat.takeout_rows() if takeout else {}
    photo_people = cat.photo_people(list(from_takeout)) if people and from_takeout else {}
    texts = cat.text_of(cat.photos_with_text()) if ocr else {}
    ids = sorted(set(by_photo_faces) | set(tag_photos) | set(rated) | set(from_takeout) | set(texts) | set(in_albums))
    if only_ids is not None:
        ids = sorted(set(ids) & {int(i) for i in only_ids})
    photos = cat.photos_by_ids(ids)
    photo_tags = cat.tags_of_photos(tag_photos) if tags else {}
    parents = {t["name"]: t["parent"] for t in cat.tags()} if tags else {}
    out = {}
    for pid in ids:
        photo = photos.get(pid)
        if photo is None:
            continue
        u = MetadataUpdate()
        if pid in by_photo_faces:
            u = _combine(u, people_update(by_photo_faces[pid], photo))
        if pid in photo_tags:
            u = _combine(u, tags_update(photo_tags[pid], parents, accepted_only))
        if pid in rated:
            u.rating = rated[pid]
        if pid in photo_people:
            names = photo_people[pid]
            u = _combine(u, MetadataUpdate(persons=names, hierarchical=[f"{PEOPLE_ROOT}|{n}" for n in names],
                                           tags_list=[f"{PEOPLE_ROOT}/{n}" for n in names]))
        if pid in from_takeout:
            t = from_takeout[pid]
            u.description = u.description or t["description"]
            u.taken_at = t["taken_at"]
            if t["gps_lat"] is not None:
                u.gps = (t["gps_lat"], t["gps_lon"])
        if pid in texts:
            u.text = "\n".join(ln["text"] for ln in texts[pid])
        if pid in in_albums:
            names = in_albums[pid]
            u = _combine(u, MetadataUpdate(keywords=names, hierarchical=[f"{ALBUMS_ROOT}|{n}" for n in names],
                                           tags_list=[f"{ALBUMS_ROOT}/{n}" for n in names]))
        if not u.empty():
            out[pid] = (photo, u)
    return out


def _describe(changes: dict[str, Any], current: dict[str, Any]) -> list[str]:
    from photosearch.media.xmp import IPTC_KEYWORDS

    out = []
    names = {v: k for k, v in LIST_KEYS.items()} | {IPTC_KEYWORDS: "iptc"}
    for key in ("Xmp.exif.DateTimeOriginal", "Xmp.exif.GPSLatitude", "Xmp.exif.GPSLongitude", "Xmp.dc.description"):
        if key in changes:
            value = changes[key]
            out.append(f"+ {key.removeprefix('Xmp.')}: {next(iter(value.values())) if isinstance(value, dict) else value}")
    if "Xmp.xmp.Rating" in changes:
        out.append(f"+ xmp:Rating: {changes['Xmp.xmp.Rating']}")
    if TEXT_KEY in changes:
        text = " / ".join(changes[TEXT_KEY].splitlines())
        out.append(f"+ photosearch:Text: {text[:80]}{'...' if len(text) > 80 else ''}")
    for key, value in changes.items():
        if key in names:
            have = current.get(key) or []
            have = [have] if isinstance(have, str) else have
            for v in value:
                if v not in have:
                    out.append(f"+ {key.removeprefix('Xmp.')}: {v}")
    regions: dict[str, dict[str, str]] = {}
    for key, value in changes.items():
        if "/mwg-rs:RegionList[" in key and not value.startswith("type="):
            item = key.split("]/", 1)[0]
            regions.setdefault(item, {})[key.split("]/", 1)[1]] = value
    for fields in regions.values():
        a = {k.rsplit(":", 1)[-1]: v for k, v in fields.items()}
        out.append(f"+ face region {a.get('Name')!r}: centre {float(a['x']):.3f},{float(a['y']):.3f} "
                   f"size {float(a['w']):.3f}x{float(a['h']):.3f} (stored frame)")
    return out


def plan(cat: Catalog, *, people: bool = True, tags: bool = True, ratings: bool = True,
         accepted_only: bool = False, takeout: bool = True, only_ids: list[int] | None = None,
         sidecar_only: bool = False, ocr: bool = False, sidecar_name: str = "ext",
         dng_in_file: bool = False, albums: bool = True) -> list[SyncItem]:
    """Every photo whose metadata lacks something photosearch would write, with the changes."""
    items = []
    for pid, (photo, update) in updates(cat, people=people, tags=tags, ratings=ratings, accepted_only=accepted_only,
                                        takeout=takeout, only_ids=only_ids, ocr=ocr, albums=albums).items():
        item = SyncItem(pid, photo["path"], people=list(update.persons), keywords=list(update.keywords))
        try:
            item.target, item.sidecar, changes, current = preview(photo["path"], update, sidecar_only=sidecar_only,
                                                                  sidecar_name=sidecar_name, dng_in_file=dng_in_file)
        except WriteError as exc:
            item.status, item.error = "failed", str(exc)
            items.append(item)
            continue
        if changes:
            item.changes = _describe(changes, current)
            items.append(item)
    return items


def apply(cat: Catalog, items: list[SyncItem], journal: JournalWriter, *, people: bool = True, tags: bool = True,
          ratings: bool = True, accepted_only: bool = False, takeout: bool = True, only_ids: list[int] | None = None,
          sidecar_only: bool = False, keep_mtime: bool = True, on_item: Any = None, ocr: bool = False,
          sidecar_name: str = "ext", dng_in_file: bool = False, albums: bool = True) -> list[SyncItem]:
    """Write the planned items (each through the safe writer, journaled so that ``undo`` puts
    every file back byte for byte); failures are recorded per item."""
    from pathlib import Path

    from photosearch.actions.journal import journaled_write
    from photosearch.media.scan import file_sha256

    wanted = updates(cat, people=people, tags=tags, ratings=ratings, accepted_only=accepted_only, takeout=takeout,
                     only_ids=only_ids, ocr=ocr, albums=albums)
    rewritten: list[tuple[int, str, str]] = []   # (photo id, path, sha256): same pixels, new bytes
    for item in items:
        if item.status == "failed":
            continue
        if item.photo_id not in wanted:
            item.status, item.error = "failed", "no longer in the catalog"
            continue
        photo, update = wanted[item.photo_id]
        try:
            result = journaled_write(journal, Path(os_path(photo["path"])), update, target=Path(os_path(item.target)),
                                     photo_id=item.photo_id,
                                     catalog={k: photo[k] for k in ("content_hash", "size", "mtime_ns")},
                                     sidecar_only=sidecar_only, keep_mtime=keep_mtime, sidecar_name=sidecar_name,
                                     dng_in_file=dng_in_file)
        except (WriteError, OSError) as exc:
            item.status, item.error = "failed", str(exc)
        else:
            item.status = "written" if result.changed else "unchanged"
            item.note = result.note
            item.action = journal.path.stem if result.changed else None
            if result.note:
                item.target, item.sidecar = result.path, True
            if result.changed and not result.sidecar:
                rewritten.append((item.photo_id, photo["path"], result.sha256 or file_sha256(photo["path"])))
        if on_item:
            on_item(item)
        if len(rewritten) >= 500:
            _update_rows(cat, rewritten)
    _update_rows(cat, rewritten)
    return items


def _update_rows(cat: Catalog, rewritten: list[tuple[int, str, str]]) -> None:
    """Same pixels (verified by the writer), new bytes: the rows stay, with their vectors and
    faces, and take the new size, mtime and hash (one transaction per batch; a crash before it
    costs nothing: the next index sees the same image under new metadata)."""
    if not rewritten:
        return
    with cat.transaction():
        for pid, path, sha in rewritten:
            st = os.stat(os_path(path))
            cat.update_photo(pid, content_hash=sha, size=st.st_size, mtime_ns=st.st_mtime_ns)
    rewritten.clear()


__all__ = ["SyncItem", "plan", "apply", "people_update", "tags_update", "updates"]
