"""Face regions in files: MWG (digiKam, Lightroom, Picasa) and Microsoft Photo regions.

Read at index time (as named faces) and written by ``photosearch sync``.

Coordinates: photosearch keeps boxes normalized to the photo *as displayed*
(EXIF orientation applied), top-left origin. MWG regions are "applied to the
stored image" (MWG Guidelines 2.0, 5.9): normalized to the pixels as stored,
with ``stArea:x/y`` the region's *centre*, and ``AppliedToDimensions`` the
stored width and height. Microsoft Photo rectangles are "x, y, w, h" with a
top-left origin, taken here in the stored frame too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

Box = tuple[float, float, float, float]  # x, y, w, h (top-left origin), normalized

_MWG = "Xmp.mwg-rs.Regions"
_MWG_ITEM = re.compile(r"^Xmp\.mwg-rs\.Regions/mwg-rs:RegionList\[(\d+)\]/(.+)$")
_MP = "Xmp.MP.RegionInfo"
_MP_ITEM = re.compile(r"^Xmp\.MP\.RegionInfo/MPRI:Regions\[(\d+)\]/(.+)$")


@dataclass
class Region:
    """A named region read from a file; ``box`` is in the displayed frame."""

    name: str | None
    type: str
    box: Box
    source: str  # "mwg" or "mp"


def _point_to_display(u: float, v: float, orientation: int) -> tuple[float, float]:
    """A normalized point of the stored image -> the same point of the displayed image."""
    return {
        1: (u, v), 2: (1 - u, v), 3: (1 - u, 1 - v), 4: (u, 1 - v),
        5: (v, u), 6: (1 - v, u), 7: (1 - v, 1 - u), 8: (v, 1 - u),
    }.get(orientation, (u, v))


def _inverse(orientation: int) -> int:
    return {6: 8, 8: 6}.get(orientation, orientation)


def _transform(box: Box, fn: Any) -> Box:
    x, y, w, h = box
    (a, b), (c, d) = fn(x, y), fn(x + w, y + h)
    x0, x1, y0, y1 = min(a, c), max(a, c), min(b, d), max(b, d)
    return (x0, y0, x1 - x0, y1 - y0)


def stored_to_display(box: Box, orientation: int | None) -> Box:
    """Map a box from the stored pixel frame to the displayed frame (EXIF ``orientation`` applied)."""
    o = orientation or 1
    return _transform(box, lambda u, v: _point_to_display(u, v, o))


def display_to_stored(box: Box, orientation: int | None) -> Box:
    """Map a box from the displayed frame back to the stored pixel frame; inverse of ``stored_to_display``."""
    o = _inverse(orientation or 1)
    # The inverse of "stored -> displayed" for orientation o is the mapping of its inverse orientation.
    return _transform(box, lambda u, v: _point_to_display(u, v, o))


def stored_size(display_w: int, display_h: int, orientation: int | None) -> tuple[int, int]:
    """The stored pixel size of a photo displayed at ``display_w`` x ``display_h``."""
    return (display_h, display_w) if (orientation or 1) in (5, 6, 7, 8) else (display_w, display_h)


def _float(v: Any) -> float | None:
    try:
        return float(str(v).strip())
    except (TypeError, ValueError):
        return None


def _clip(box: Box) -> Box | None:
    x, y, w, h = box
    x0, y0 = max(0.0, x), max(0.0, y)
    x1, y1 = min(1.0, x + w), min(1.0, y + h)
    if x1 - x0 <= 0 or y1 - y0 <= 0:
        return None
    return (x0, y0, x1 - x0, y1 - y0)


def read_regions(xmp: dict[str, Any], orientation: int | None) -> list[Region]:
    """Face regions in an XMP dict (pyexiv2 keys), boxes in the displayed frame; a person named
    in both an MWG and a Microsoft region (as digiKam and photosearch write them) is read once."""
    out = _all_regions(xmp, orientation)
    mwg_names = {r.name.lower() for r in out if r.source == "mwg" and r.name}
    return [r for r in out if not (r.source == "mp" and r.name and r.name.lower() in mwg_names)]


def _all_regions(xmp: dict[str, Any], orientation: int | None) -> list[Region]:
    items: dict[tuple[str, int], dict[str, Any]] = {}
    for key, value in xmp.items():
        m = _MWG_ITEM.match(key)
        src = "mwg"
        if not m:
            m = _MP_ITEM.match(key)
            src = "mp"
        if m:
            items.setdefault((src, int(m.group(1))), {})[m.group(2)] = value
    out = []
    for (src, _), f in sorted(items.items()):
        if src == "mwg":
            kind = str(f.get("mwg-rs:Type") or "Face")
            unit = str(f.get("mwg-rs:Area/stArea:unit") or "normalized").lower()
            vals = [_float(f.get(f"mwg-rs:Area/stArea:{k}")) for k in "xywh"]
            if kind.lower() != "face" or unit != "normalized" or any(v is None for v in vals):
                continue
            cx, cy, w, h = vals  # type: ignore[misc]
            box = (cx - w / 2, cy - h / 2, w, h)
            name = f.get("mwg-rs:Name")
        else:
            rect = f.get("MPReg:Rectangle")
            parts = [_float(p) for p in str(rect or "").split(",")]
            if len(parts) != 4 or any(p is None for p in parts):
                continue
            box = tuple(parts)  # type: ignore[assignment]
            name, kind = f.get("MPReg:PersonDisplayName"), "Face"
        clipped = _clip(box)
        if clipped is None:
            continue
        name = str(name).strip() if name else None
        out.append(Region(name or None, "Face", stored_to_display(clipped, orientation), src))
    return out


def has_regions(xmp: dict[str, Any]) -> bool:
    """Whether the XMP metadata has MWG or Microsoft Photo face regions."""
    return any(k.startswith(_MWG) or k.startswith("Xmp.MP.RegionInfo") for k in xmp)


def mwg_changes(xmp: dict[str, Any], people: list[tuple[str, Box]], orientation: int | None,
                display_size: tuple[int, int]) -> dict[str, Any]:
    """pyexiv2 changes adding face regions for ``people`` (name, displayed box): MWG regions
    (digiKam, Lightroom, Picasa, Apple) and Microsoft Photo regions (Windows' People property).

    Regions already in the file (any tool's) are kept; a person already named in a region of one
    kind is not written again in that kind.
    """
    existing = _all_regions(xmp, orientation)
    changes: dict[str, Any] = {}
    named = {r.name.lower() for r in existing if r.name and r.source == "mwg"}
    todo = [(n, b) for n, b in people if n.lower() not in named]
    if todo:
        changes.update(_mwg_items(xmp, todo, orientation, display_size))
    named = {r.name.lower() for r in existing if r.name and r.source == "mp"}
    todo = [(n, b) for n, b in people if n.lower() not in named]
    if todo:
        changes.update(_mp_items(xmp, todo, orientation))
    return changes


def _mwg_items(xmp: dict[str, Any], todo: list[tuple[str, Box]], orientation: int | None,
               display_size: tuple[int, int]) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    count = max((int(m.group(1)) for k in xmp if (m := _MWG_ITEM.match(k))), default=0)
    if _MWG not in xmp:
        changes[_MWG] = 'type="Struct"'
    dims = f"{_MWG}/mwg-rs:AppliedToDimensions"
    if f"{dims}/stDim:w" not in xmp:
        sw, sh = stored_size(display_size[0], display_size[1], orientation)
        changes[dims] = 'type="Struct"'
        changes[f"{dims}/stDim:w"] = str(sw)
        changes[f"{dims}/stDim:h"] = str(sh)
        changes[f"{dims}/stDim:unit"] = "pixel"
    if f"{_MWG}/mwg-rs:RegionList" not in xmp:
        changes[f"{_MWG}/mwg-rs:RegionList"] = 'type="Bag"'
    for i, (name, box) in enumerate(todo, start=count + 1):
        x, y, w, h = display_to_stored(box, orientation)
        item = f"{_MWG}/mwg-rs:RegionList[{i}]"
        changes[item] = 'type="Struct"'
        changes[f"{item}/mwg-rs:Area"] = 'type="Struct"'
        changes[f"{item}/mwg-rs:Area/stArea:x"] = f"{x + w / 2:.6f}"
        changes[f"{item}/mwg-rs:Area/stArea:y"] = f"{y + h / 2:.6f}"
        changes[f"{item}/mwg-rs:Area/stArea:w"] = f"{w:.6f}"
        changes[f"{item}/mwg-rs:Area/stArea:h"] = f"{h:.6f}"
        changes[f"{item}/mwg-rs:Area/stArea:unit"] = "normalized"
        changes[f"{item}/mwg-rs:Name"] = name
        changes[f"{item}/mwg-rs:Type"] = "Face"
    return changes


def _mp_items(xmp: dict[str, Any], todo: list[tuple[str, Box]], orientation: int | None) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    count = max((int(m.group(1)) for k in xmp if (m := _MP_ITEM.match(k))), default=0)
    if _MP not in xmp:
        changes[_MP] = 'type="Struct"'
    if f"{_MP}/MPRI:Regions" not in xmp:
        changes[f"{_MP}/MPRI:Regions"] = 'type="Bag"'
    for i, (name, box) in enumerate(todo, start=count + 1):
        x, y, w, h = display_to_stored(box, orientation)
        item = f"{_MP}/MPRI:Regions[{i}]"
        changes[item] = 'type="Struct"'
        changes[f"{item}/MPReg:Rectangle"] = f"{x:.6f}, {y:.6f}, {w:.6f}, {h:.6f}"
        changes[f"{item}/MPReg:PersonDisplayName"] = name
    return changes


__all__ = ["Region", "Box", "read_regions", "mwg_changes", "stored_to_display", "display_to_stored", "stored_size",
           "has_regions"]
