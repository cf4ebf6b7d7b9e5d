"""The safe metadata writer: keywords, rating and description into XMP, never losing data.

In-file for formats exiv2 rewrites safely (JPEG, TIFF, PNG, WebP); an ``.xmp``
sidecar (``photo.ext.xmp``) for RAW, HEIC and everything else. Every write:

1. copies the file to a temporary name in the same folder,
2. merges the new values into the copy's XMP (existing keywords from other
   tools are kept; every other tag is left alone by exiv2),
3. re-reads the copy and checks the new values are there and the decoded
   pixels are identical to the original's,
4. atomically renames the copy over the original (mtime kept on request).

A failure at any step leaves the original untouched and raises WriteError.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from photosearch.files import fsync_dir, os_path
from photosearch.errors import PhotosearchError

IN_FILE_FORMATS = {"JPEG", "TIFF", "PNG", "WEBP", "MPO"}
_EMPTY_XMP = (
    '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
    '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    "</rdf:RDF></x:xmpmeta>\n<?xpacket end=\"w\"?>\n"
)


class WriteError(PhotosearchError):
    """Writing metadata to one file failed; the file is unchanged."""

    exit_code = 7


#: List-valued XMP properties photosearch adds to (never removing what other tools wrote).
LIST_KEYS = {
    "keywords": "Xmp.dc.subject",
    "hierarchical": "Xmp.lr.hierarchicalSubject",   # Lightroom: "People|Alice"
    "tags_list": "Xmp.digiKam.TagsList",             # digiKam: "People/Alice"
    "persons": "Xmp.iptcExt.PersonInImage",          # IPTC Extension PersonInImage
}


@dataclass
class MetadataUpdate:
    """Values to merge into a photo's XMP. List values are added to the existing ones.

    ``people`` are (name, box) face regions, boxes normalized to the photo as displayed; they
    are written as MWG regions in the stored frame (``orientation`` and ``display_size`` say how).
    """

    keywords: list[str] = field(default_factory=list)
    rating: int | None = None
    description: str | None = None
    hierarchical: list[str] = field(default_factory=list)
    tags_list: list[str] = field(default_factory=list)
    persons: list[str] = field(default_factory=list)
    people: list[tuple[str, tuple[float, float, float, float]]] = field(default_factory=list)
    orientation: int | None = None
    display_size: tuple[int, int] | None = None
    taken_at: Any = None                       # datetime: written only where the file has no date
    gps: tuple[float, float] | None = None     # written only where the file has no position
    text: str | None = None                    # the text read in the photo (``sync --ocr``)

    def empty(self) -> bool:
        """Whether the update changes nothing."""
        return (not any(getattr(self, f) for f in LIST_KEYS) and not self.people and self.rating is None
                and not self.description and self.taken_at is None and self.gps is None and not self.text)


@dataclass
class WriteResult:
    """What ``write`` did: the file written, whether it is a sidecar, and whether it changed."""

    path: str          # the file written (the photo, or its sidecar)
    sidecar: bool
    changed: bool


def _format_of(path: Path) -> str | None:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return (im.format or "").upper()
    except Exception:
        return None


def sidecar_path(photo: Path) -> Path:
    """An existing sidecar (``name.ext.xmp`` or ``name.xmp``), else ``name.ext.xmp``."""
    from photosearch.media.scan import find_sidecar

    existing = find_sidecar(str(photo))
    return Path(existing) if existing else photo.with_name(photo.name + ".xmp")


def _pixels_digest(path: Path) -> str:
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        return hashlib.sha256(im.tobytes()).hexdigest() + im.mode + str(im.size)


IPTC_KEYWORDS = "Iptc.Application2.Keywords"
ARRAY_TYPES = {"Xmp.dc.subject": "Bag", "Xmp.lr.hierarchicalSubject": "Bag", "Xmp.digiKam.TagsList": "Seq",
               "Xmp.iptcExt.PersonInImage": "Bag"}


def _xmp_coord(value: float, pos: str, neg: str) -> str:
    """XMP GPSCoordinate: degrees, decimal minutes and the reference letter ("48,51.20400N")."""
    ref = pos if value >= 0 else neg
    value = abs(value)
    deg = int(value)
    return f"{deg},{(value - deg) * 60:.5f}{ref}"


def _merge(current: dict, update: MetadataUpdate, iptc: dict | None = None, exif: dict | None = None) -> dict:
    """The pyexiv2 changes that bring ``current`` (XMP) and ``iptc`` (IPTC, None: not written) up to
    ``update`` (empty: nothing to do). IPTC keys start with ``Iptc.``. ``exif`` is the photo's
    EXIF: a date or position it already has is never written again."""
    changes: dict = {}
    exif = exif or {}
    if update.taken_at is not None and not any(
            k in current or k in exif for k in ("Exif.Photo.DateTimeOriginal", "Xmp.exif.DateTimeOriginal",
                                                "Xmp.photoshop.DateCreated")):
        changes["Xmp.exif.DateTimeOriginal"] = update.taken_at.strftime("%Y-%m-%dT%H:%M:%S")
    if update.gps is not None and not any(k in current or k in exif
                                          for k in ("Exif.GPSInfo.GPSLatitude", "Xmp.exif.GPSLatitude")):
        changes["Xmp.exif.GPSLatitude"] = _xmp_coord(update.gps[0], "N", "S")
        changes["Xmp.exif.GPSLongitude"] = _xmp_coord(update.gps[1], "E", "W")
    if iptc is not None and update.keywords:
        have = iptc.get(IPTC_KEYWORDS) or []
        have = [have] if isinstance(have, str) else list(have)
        # IPTC IIM limits a keyword to 64 bytes; longer ones live in XMP only.
        merged = list(dict.fromkeys([*have, *(k for k in update.keywords if len(k.encode()) <= 64)]))
        if merged != have:
            changes[IPTC_KEYWORDS] = merged
    for attr, key in LIST_KEYS.items():
        have = current.get(key) or []
        if isinstance(have, str):
            have = [have]
        merged = list(dict.fromkeys([*have, *getattr(update, attr)]))
        if merged != list(have):
            changes[key] = merged
    if update.people:
        from photosearch.media.regions import mwg_changes

        size = update.display_size or (0, 0)
        changes.update(mwg_changes(current, update.people, update.orientation, size))
    if update.rating is not None and str(current.get("Xmp.xmp.Rating", "")) != str(update.rating):
        changes["Xmp.xmp.Rating"] = str(int(update.rating))
    if update.text and current.get(TEXT_KEY) != update.text:
        changes[TEXT_KEY] = update.text
    if update.description:
        old = current.get("Xmp.dc.description")
        old_text = next(iter(old.values()), "") if isinstance(old, dict) else (old or "")
        if not old_text:
            changes["Xmp.dc.description"] = {'lang="x-default"': update.description}
    return changes


#: photosearch's own XMP namespace: ``photosearch:Text`` holds the text read in a photo (OCR,
#: written only by ``sync --ocr``; no standard property is meant for it).
PHOTOSEARCH_NS = "http://ns.photosearch.dev/1.0/"
TEXT_KEY = "Xmp.photosearch.Text"
_ns_registered = False


def _exiv2(path: Path) -> Any:
    """pyexiv2's image of ``path``, by the OS's bytes: pyexiv2 encodes names itself, which fails
    on names that are not UTF-8 (latin-1 maps each byte to itself)."""
    import pyexiv2

    global _ns_registered
    if not _ns_registered:
        try:
            pyexiv2.registerNs(PHOTOSEARCH_NS, "photosearch")
        except Exception:  # already known to exiv2 (a second library in this process)
            pass
        _ns_registered = True
    return pyexiv2.Image(os.fsencode(path).decode("latin-1"), encoding="latin-1")


def _read_xmp(path: Path) -> dict:
    img = _exiv2(path)
    try:
        return img.read_xmp()
    finally:
        img.close()


def _read_exif(path: Path) -> dict:
    try:
        img = _exiv2(path)
    except Exception:  # e.g. a format exiv2 cannot read: treat as "no EXIF"
        return {}
    try:
        return img.read_exif()
    except Exception:
        return {}
    finally:
        img.close()


def _read_iptc(path: Path) -> dict:
    img = _exiv2(path)
    try:
        return img.read_iptc()
    finally:
        img.close()


def _writes_iptc(target: Path, use_sidecar: bool) -> bool:
    """IPTC keywords are written in-file to JPEGs (where older tools read them)."""
    return not use_sidecar and _format_of(target) in ("JPEG", "MPO")


def _target(photo: Path, sidecar_only: bool) -> tuple[Path, bool]:
    if not photo.is_file():
        raise WriteError(f"cannot write metadata: no such file {photo}")
    fmt = _format_of(photo)
    use_sidecar = sidecar_only or fmt not in IN_FILE_FORMATS or not os.access(photo, os.W_OK)
    return (sidecar_path(photo) if use_sidecar else photo), use_sidecar


def preview(photo: str | os.PathLike[str], update: MetadataUpdate, *,
            sidecar_only: bool = False) -> tuple[str, bool, dict, dict]:
    """What :func:`write` would change, without writing: (target file, is sidecar, changes, current XMP)."""
    photo = Path(os_path(photo))
    target, use_sidecar = _target(photo, sidecar_only)
    try:
        current = _read_xmp(target) if target.exists() else {}
        iptc = _read_iptc(target) if _writes_iptc(target, use_sidecar) else None
        exif = _read_exif(Path(photo)) if update.taken_at is not None or update.gps is not None else {}
    except Exception as exc:
        raise WriteError(f"cannot read the metadata of {target}: {exc}") from None
    return str(target), use_sidecar, _merge(current, update, iptc, exif), {**current, **(iptc or {})}


def write(photo: str | os.PathLike[str], update: MetadataUpdate, *, sidecar_only: bool = False,
          keep_mtime: bool = True) -> WriteResult:
    """Merge ``update`` into ``photo``'s metadata safely (see the module docstring)."""
    photo = Path(os_path(photo))
    target, use_sidecar = _target(photo, sidecar_only)
    tmp = target.with_name(f".{target.name}.photosearch-tmp")
    stat = target.stat() if target.exists() else None
    try:
        if target.exists():
            shutil.copy2(target, tmp)
        else:
            tmp.write_text(_EMPTY_XMP, encoding="utf-8")
        img = _exiv2(tmp)
        try:
            iptc = img.read_iptc() if _writes_iptc(photo, use_sidecar) else None
            current = img.read_xmp()
            exif = _read_exif(photo) if update.taken_at is not None or update.gps is not None else {}
            changes = _merge(current, update, iptc, exif)
            if not changes:
                return WriteResult(str(target), use_sidecar, False)
            xmp_changes = {k: v for k, v in changes.items() if not k.startswith("Iptc.")}
            iptc_changes = {k: v for k, v in changes.items() if k.startswith("Iptc.")}
            # New arrays get the container type their schema defines (exiv2 would make a Seq).
            declare = {k: f'type="{ARRAY_TYPES[k]}"' for k in xmp_changes if k in ARRAY_TYPES and k not in current}
            if declare:
                img.modify_xmp(declare)
            if xmp_changes:
                img.modify_xmp(xmp_changes)
            if iptc_changes:
                img.modify_iptc(iptc_changes)
        finally:
            img.close()
        # Verify: the values are there, and the photo's pixels did not change.
        written = _read_xmp(tmp)
        if iptc_changes:
            written.update(_read_iptc(tmp))
        for key, value in changes.items():
            if isinstance(value, list):
                got = written.get(key) or []
                if not set(value) <= set([got] if isinstance(got, str) else got):
                    raise WriteError(f"verification failed for {photo}: {key} not written")
            elif written.get(key) != value:
                raise WriteError(f"verification failed for {photo}: {key} not written")
        if not use_sidecar and _pixels_digest(tmp) != _pixels_digest(photo):
            raise WriteError(f"verification failed for {photo}: image data changed")
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        if keep_mtime and stat is not None:
            os.utime(tmp, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        os.replace(tmp, target)
        fsync_dir(target.parent)  # the rename itself survives a power cut
        return WriteResult(str(target), use_sidecar, True)
    except WriteError:
        raise
    except Exception as exc:
        raise WriteError(f"cannot write metadata to {target}: {exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
