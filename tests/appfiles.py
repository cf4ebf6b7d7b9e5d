"""Test helpers: image files carrying metadata the way other photo apps write it.

Each app function takes an existing JPEG (a copy the test owns), writes the
fields that app writes with exiftool, and returns an :class:`AppFile` saying
what a reader should find (keywords, hierarchy, people, rating, title,
description) and ``fields``: every tag written, as exiftool reads it back right
after writing.  After another program has written to the file,
``fields_intact(app_file, read(app_file.metadata_file))`` lists the app's
fields that were lost or changed.

Sources for each app's field choices
------------------------------------
digiKam: KDE/digikam core/libs/metadataengine/dmetadata/
  dmetadatasettingscontainer.cpp (default namespaces: tags to digiKam:TagsList
  and MicrosoftPhoto:LastKeywordXMP with "/", lr:hierarchicalSubject with "|",
  dc:subject and IPTC Keywords with leaf names; rating to xmp:Rating,
  MicrosoftPhoto:Rating 1/25/50/75/99, Exif 0x4746/0x4749, IPTC Urgency
  8,6,5,4,2,1; comment to dc:description, exif:UserComment,
  tiff:ImageDescription, JPEG comment, Exif ImageDescription, IPTC Caption),
  dmetadata_tags.cpp setItemTagsPath (leaf = last path element),
  metadatahub.cpp writeTags (assigned tags only, no ancestors),
  dmetadata_faces.cpp (MWG: centre x/y normalized, Type Face; MP: "x, y, w, h"
  from the top-left); https://github.com/RhetTbull/osxphotos/issues/633 (dump
  of a digiKam file: AppliedToDimensions in pixels, MP Rectangle). Sidecar
  "name.ext.xmp" (digiKam default; Immich docs "XMP Sidecars").
Lightroom Classic: exiftool TagNames/XMP.html (XMP-lr HierarchicalSubject,
  "|") and TagNames/MWG.html (MWG face regions as Lightroom writes them);
  dc:subject gets each keyword plus its parents; raw sidecar "name.xmp"
  (IMG_1234.CR3 -> IMG_1234.xmp) with photoshop:SidecarForExtension and crs:.
Immich: immich-app/immich server/src/services/metadata.service.ts
  handleSidecarWrite: Description, ImageDescription, DateTimeOriginal,
  GPSLatitude, GPSLongitude, Rating, TagsList ("Places/France/Paris") written
  by exiftool-vendored to `${originalPath}.xmp`; no dc:subject, title, faces.
Windows Explorer / Photo Gallery: learn.microsoft.com/windows/win32/wic/
  -wic-photoprop-system-keywords (dc:subject, IPTC keywords, XPKeywords,
  LastKeywordXMP), -system-simplerating (Exif 0x4746 + xmp:Rating),
  -system-rating (Exif 0x4749 + MicrosoftPhoto:Rating), -system-title
  (XPTitle, dc:title, UserComment, exif:UserComment, ImageDescription,
  dc:description: Title also fills the description), -wic-people-tagging
  (MP regions, Rectangle normalized from the top-left); exiftool
  TagNames/Microsoft.html; github.com/numer4tor/Metadata-Management JPEG.md.
Apple Photos export ("Title, Keywords and Caption", location):
  github.com/sambecker/exif-photo-blog/issues/292 (caption in IFD0
  ImageDescription, title and keywords in IPTC), immich-app/immich#16026,
  RhetTbull/osxphotos#380 (XMP-dc:Description + IPTC:Caption-Abstract),
  RhetTbull/photosmeta README (Photos does not export Faces): no names; the
  camera's unnamed face regions (MWG + XMP-apple-fi) stay in the file.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

EXIFTOOL = shutil.which("exiftool") or "exiftool"
STARS_TO_PERCENT = {0: 0, 1: 1, 2: 25, 3: 50, 4: 75, 5: 99}  # Microsoft
STARS_TO_URGENCY = {0: 8, 1: 6, 2: 5, 3: 4, 4: 2, 5: 1}  # digiKam -> IPTC


@dataclass
class AppFile:
    """What one app wrote and what a reader should get out of it."""

    app: str
    files: list[Path]  # paths written: the image, or the sidecar alone
    keywords: set[str]  # flat keywords a reader should find
    hierarchy: set[str]  # "Parent/Child" tag paths (two levels or more)
    people: set[str]
    rating: int  # stars 0-5
    title: str
    description: str
    fields: dict[str, Any] = field(default_factory=dict)  # "Group:Tag" -> value
    gps: tuple[float, float] | None = None  # signed decimal lat, lon

    @property
    def metadata_file(self) -> Path:
        """The file holding the app's metadata (sidecar or image)."""
        return self.files[0]


def read(path: str | os.PathLike[str]) -> dict[str, Any]:
    """All tags of one file: ``exiftool -j -G1 -struct -n``."""
    res = subprocess.run(
        [EXIFTOOL, "-j", "-G1", "-struct", "-n", str(path)],
        capture_output=True, check=True,
    )
    return json.loads(res.stdout.decode("utf-8"))[0]


def fields_intact(app_file: AppFile, after: dict[str, Any]) -> list[str]:
    """Names of the app's fields lost or changed in ``after`` (a read()).

    Lists must keep every original item (writers may append); region
    structures are compared on their names (Type for unnamed regions).
    """
    return [key for key, before in app_file.fields.items()
            if key not in after or not _same(before, after[key])]


def _same(before: Any, now: Any) -> bool:
    if isinstance(before, dict) and ("RegionList" in before or "Regions" in before):
        return isinstance(now, dict) and not (
            Counter(_region_names(before)) - Counter(_region_names(now)))
    if isinstance(before, list) or isinstance(now, list):
        old = before if isinstance(before, list) else [before]
        new = now if isinstance(now, list) else [now]
        return {_norm(v) for v in old} <= {_norm(v) for v in new}
    return _norm(before) == _norm(now)


def _region_names(info: dict[str, Any]) -> list[str]:
    regions = info.get("RegionList", info.get("Regions", []))
    if isinstance(regions, dict):
        regions = [regions]
    return [str(r.get("Name") or r.get("PersonDisplayName") or r.get("Type") or "?")
            for r in regions if isinstance(r, dict)]


def _norm(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    try:
        return round(float(value), 6)
    except (TypeError, ValueError):
        return value


def _write(target: Path, tags: dict[str, Any]) -> dict[str, Any]:
    """Write ``tags`` (exiftool JSON import) and return them as read back."""
    with tempfile.NamedTemporaryFile(
            "w", suffix=".json", encoding="utf-8", delete=False) as fh:
        json.dump([{"SourceFile": "*", **tags}], fh, ensure_ascii=False)
    try:
        res = subprocess.run(
            [EXIFTOOL, "-q", "-overwrite_original", "-charset", "iptc=UTF8",
             f"-j={fh.name}", str(target)],
            capture_output=True, text=True,
        )
    finally:
        os.unlink(fh.name)
    if res.returncode:
        raise RuntimeError(f"exiftool failed on {target}: {res.stderr.strip()}")
    after = read(target)
    missing = [key for key in tags if key not in after]
    if missing:
        raise RuntimeError(f"exiftool did not write {missing} to {target}")
    return {key: after[key] for key in tags}


def _size(path: Path) -> tuple[int, int]:
    info = read(path)
    return int(info["File:ImageWidth"]), int(info["File:ImageHeight"])


def _boxes(n: int) -> list[tuple[float, float, float, float]]:
    """Face boxes (centre x, centre y, w, h), normalized, side by side."""
    return [(round(0.5 + (i - (n - 1) / 2) * 0.25, 6), 0.4, 0.2, 0.3) for i in range(n)]


def _mwg(names: list[str], size: tuple[int, int]) -> dict[str, Any]:
    return {
        "AppliedToDimensions": {"W": size[0], "H": size[1], "Unit": "pixel"},
        "RegionList": [
            {"Name": name, "Type": "Face",
             "Area": {"X": x, "Y": y, "W": w, "H": h, "Unit": "normalized"}}
            for name, (x, y, w, h) in zip(names, _boxes(len(names)))],
    }


def _mp(names: list[str]) -> dict[str, Any]:
    return {"Regions": [
        {"PersonDisplayName": name,
         "Rectangle": f"{x - w / 2:g}, {y - h / 2:g}, {w:g}, {h:g}"}
        for name, (x, y, w, h) in zip(names, _boxes(len(names)))]}


def _leaves(paths: list[str]) -> list[str]:
    return [p.split("/")[-1] for p in paths]


def _with_parents(paths: list[str]) -> list[str]:
    out: list[str] = []
    for p in paths:
        out += [part for part in p.split("/") if part not in out]
    return out


def _nested(paths: list[str]) -> set[str]:
    return {p for p in paths if "/" in p}


def digikam(path: Path, *, sidecar: bool = False, rating: int = 3) -> AppFile:
    """digiKam 7/8 default metadata settings; ``sidecar`` = "sidecar only"."""
    path = Path(path)
    tags = ["Places/France/Paris", "Food/Café", "People/Alice"]
    people = ["Alice"]
    title, desc = "Paris by night", "Dinner near the Seine"
    xmp: dict[str, Any] = {
        "XMP-digiKam:TagsList": tags,
        "XMP-microsoft:LastKeywordXMP": tags,
        "XMP-lr:HierarchicalSubject": [t.replace("/", "|") for t in tags],
        "XMP-dc:Subject": _leaves(tags),
        "XMP-xmp:Rating": rating,
        "XMP-microsoft:RatingPercent": STARS_TO_PERCENT[rating],
        "XMP-dc:Title": title,
        "XMP-dc:Description": desc,
        "XMP-exif:UserComment": desc,
        "XMP-tiff:ImageDescription": desc,
        "XMP-mwg-rs:RegionInfo": _mwg(people, _size(path)),
        "XMP-MP:RegionInfoMP": _mp(people),
    }
    if sidecar:  # Exiv2 sidecars hold XMP only
        target = Path(f"{path}.xmp")
    else:
        target = path
        xmp.update({
            "IPTC:CodedCharacterSet": "UTF8",
            "IPTC:Keywords": _leaves(tags),
            "IPTC:ObjectName": title,
            "IPTC:Caption-Abstract": desc,
            "IPTC:Urgency": STARS_TO_URGENCY[rating],
            "IFD0:ImageDescription": desc,
            "IFD0:Rating": rating,
            "IFD0:RatingPercent": STARS_TO_PERCENT[rating],
            "File:Comment": desc,
        })
    return AppFile("digikam", [target], set(_leaves(tags)), _nested(tags),
                   set(people), rating, title, desc, _write(target, xmp))


def lightroom(path: Path, *, sidecar: bool = False) -> AppFile:
    """Lightroom Classic "Save Metadata to File"; ``sidecar`` = raw-style name.xmp."""
    path = Path(path)
    tags = ["Places/France/Paris", "Food/Café", "Zoë"]  # "Zoë" is a person keyword
    people = ["Zoë"]
    title, desc, rating = "Eiffel Tower", "Evening walk, café stop", 4
    xmp: dict[str, Any] = {
        "XMP-lr:HierarchicalSubject": [t.replace("/", "|") for t in tags],
        "XMP-dc:Subject": _with_parents(tags),
        "XMP-xmp:Rating": rating,
        "XMP-xmp:Label": "Red",
        "XMP-xmp:CreatorTool": "Adobe Photoshop Lightroom Classic 13.0 (Windows)",
        "XMP-dc:Title": title,
        "XMP-dc:Description": desc,
        "XMP-mwg-rs:RegionInfo": _mwg(people, _size(path)),
        "XMP-crs:ProcessVersion": "11.0",
        "XMP-crs:Exposure2012": "+0.35",
    }
    target = path
    if sidecar:
        target = path.with_suffix(".xmp")
        xmp["XMP-photoshop:SidecarForExtension"] = path.suffix.lstrip(".").upper()
    return AppFile("lightroom", [target], set(_with_parents(tags)), _nested(tags),
                   set(people), rating, title, desc, _write(target, xmp))


def immich(path: Path) -> AppFile:
    """Immich's sidecar write job: always ``name.ext.xmp``, image untouched."""
    path = Path(path)
    tags = ["Places/France/Paris", "Café"]
    desc, rating, lat, lon = "Sunset over the river", 4, -22.9519, -43.2105
    target = Path(f"{path}.xmp")
    xmp = {
        "XMP-dc:Description": desc,
        "XMP-tiff:ImageDescription": desc,
        "XMP-exif:DateTimeOriginal": "2023-07-14T18:30:00.000-03:00",
        "XMP-exif:GPSLatitude": lat,
        "XMP-exif:GPSLongitude": lon,
        "XMP-xmp:Rating": rating,
        "XMP-digiKam:TagsList": tags,
    }
    return AppFile("immich", [target], set(_leaves(tags)), _nested(tags), set(),
                   rating, "", desc, _write(target, xmp), gps=(lat, lon))


def windows(path: Path, *, rating: int = 4) -> AppFile:
    """Windows Explorer File > Properties (tags, rating, title, comments)
    plus Windows Photo Gallery people tags.  No hierarchy, no IPTC."""
    path = Path(path)
    keywords, people = ["Café", "Sunset"], ["Zoë", "Bob"]
    title = "Sunset at the beach"  # Explorer copies Title into the description
    tags = {
        "IFD0:XPKeywords": ";".join(keywords),
        "XMP-dc:Subject": keywords,
        "XMP-microsoft:LastKeywordXMP": keywords,
        "IFD0:Rating": rating,
        "XMP-xmp:Rating": rating,
        "IFD0:RatingPercent": STARS_TO_PERCENT[rating],
        "XMP-microsoft:RatingPercent": STARS_TO_PERCENT[rating],
        "IFD0:XPTitle": title,
        "XMP-dc:Title": title,
        "ExifIFD:UserComment": title,
        "XMP-exif:UserComment": title,
        "IFD0:ImageDescription": title,
        "XMP-dc:Description": title,
        "IFD0:XPComment": "Comment typed in Explorer",
        "XMP-MP:RegionInfoMP": _mp(people),
    }
    return AppFile("windows", [path], set(keywords), set(), set(people), rating,
                   title, title, _write(path, tags))


def apple(path: Path) -> AppFile:
    """Apple Photos export with title/keywords/caption and location."""
    path = Path(path)
    keywords = ["Beach", "Café"]
    title, caption, lat, lon = "Morning coffee", "Croissant and café crème", 38.7223, -9.1393
    width, height = _size(path)
    faces = {  # the iPhone camera's unnamed face region, kept on export
        "AppliedToDimensions": {"W": width, "H": height, "Unit": "pixel"},
        "RegionList": [{
            "Type": "Face",
            "Area": {"X": 0.5, "Y": 0.4, "W": 0.2, "H": 0.3, "Unit": "normalized"},
            "Extensions": {"XMP-apple-fi:AngleInfoYaw": 0, "XMP-apple-fi:AngleInfoRoll": 0,
                           "XMP-apple-fi:ConfidenceLevel": 870, "XMP-apple-fi:FaceID": 1,
                           "XMP-apple-fi:TimeStamp": 0}}],
    }
    tags = {
        "IPTC:CodedCharacterSet": "UTF8",
        "IPTC:Keywords": keywords,
        "XMP-dc:Subject": keywords,
        "IPTC:ObjectName": title,
        "XMP-dc:Title": title,
        "IPTC:Caption-Abstract": caption,
        "XMP-dc:Description": caption,
        "IFD0:ImageDescription": caption,
        "ExifIFD:DateTimeOriginal": "2023:05:02 08:15:00",
        "ExifIFD:OffsetTimeOriginal": "+01:00",
        "GPS:GPSLatitude": abs(lat),
        "GPS:GPSLatitudeRef": "N" if lat >= 0 else "S",
        "GPS:GPSLongitude": abs(lon),
        "GPS:GPSLongitudeRef": "E" if lon >= 0 else "W",
        "XMP-mwg-rs:RegionInfo": faces,
    }
    return AppFile("apple", [path], set(keywords), set(), set(), 0, title, caption,
                   _write(path, tags), gps=(lat, lon))


# name -> function(path), for pytest.mark.parametrize
APPS: dict[str, Callable[[Path], AppFile]] = {
    "digikam": digikam,
    "digikam_sidecar": lambda p: digikam(p, sidecar=True),
    "lightroom": lightroom,
    "lightroom_sidecar": lambda p: lightroom(p, sidecar=True),
    "immich": immich,
    "windows": windows,
    "apple": apple,
}
