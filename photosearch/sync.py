"""Writing what photosearch knows back into the photos' own metadata (XMP).

People (issue 3): every named person's faces become MWG face regions
(``mwg-rs:Regions``, in the stored frame, see regions.py), plus
``Iptc4xmpExt:PersonInImage`` and the keywords ``People|Name``
(``lr:hierarchicalSubject``) and ``People/Name`` (``digiKam:TagsList``).

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

from photosearch.catalog import Catalog
from photosearch.xmp import LIST_KEYS, MetadataUpdate, WriteError, preview, write

PEOPLE_ROOT = "People"


@dataclass
class SyncItem:
    """One photo's pending (or applied) metadata change."""

    photo_id: int
    path: str
    target: str = ""
    sidecar: bool = False
    people: list[str] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)   # human-readable, one per change
    status: str = "pending"                            # pending | written | unchanged | failed
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
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


def _describe(changes: dict[str, Any], current: dict[str, Any]) -> list[str]:
    out = []
    names = {v: k for k, v in LIST_KEYS.items()}
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


def plan_people(cat: Catalog, *, sidecar_only: bool = False) -> list[SyncItem]:
    """Every photo whose metadata lacks some of its named people, with what would be written."""
    by_photo = cat.named_faces_by_photo()
    photos = cat.photos_by_ids(list(by_photo))
    items = []
    for pid in sorted(by_photo):
        photo = photos.get(pid)
        if photo is None:
            continue
        update = people_update(by_photo[pid], photo)
        item = SyncItem(pid, photo["path"], people=list(update.persons))
        try:
            item.target, item.sidecar, changes, current = preview(photo["path"], update, sidecar_only=sidecar_only)
        except WriteError as exc:
            item.status, item.error = "failed", str(exc)
            items.append(item)
            continue
        if changes:
            item.changes = _describe(changes, current)
            items.append(item)
    return items


def apply_people(cat: Catalog, items: list[SyncItem], *, sidecar_only: bool = False,
                 keep_mtime: bool = True, on_item: Any = None) -> list[SyncItem]:
    """Write the planned items (each through the safe writer); failures are recorded per item."""
    from photosearch.scan import file_sha256

    by_photo = cat.named_faces_by_photo()
    photos = cat.photos_by_ids([i.photo_id for i in items])
    for item in items:
        if item.status == "failed":
            continue
        photo = photos.get(item.photo_id)
        if photo is None:
            item.status, item.error = "failed", "no longer in the catalog"
            continue
        update = people_update(by_photo.get(item.photo_id, []), photo)
        try:
            result = write(photo["path"], update, sidecar_only=sidecar_only, keep_mtime=keep_mtime)
        except WriteError as exc:
            item.status, item.error = "failed", str(exc)
        else:
            item.status = "written" if result.changed else "unchanged"
            if result.changed and not result.sidecar:
                # Same pixels (verified by the writer), new bytes: keep the row, its vectors and faces.
                st = os.stat(photo["path"])
                with cat.transaction():
                    cat.update_photo(item.photo_id, content_hash=file_sha256(photo["path"]), size=st.st_size,
                                     mtime_ns=st.st_mtime_ns)
        if on_item:
            on_item(item)
    return items


__all__ = ["SyncItem", "plan_people", "apply_people", "people_update"]
