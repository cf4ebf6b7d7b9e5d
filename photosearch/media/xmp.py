"""The safe metadata writer: keywords, people, rating and description into XMP, never losing data.

Where: in-file for formats exiv2 rewrites safely (JPEG, PNG, WebP, and TIFF that is not a camera
RAW); an ``.xmp`` sidecar for RAW (recognised by content: DNG, NEF, CR2, IIQ... are TIFF
containers), HEIC and everything else, and for every photo that already has a sidecar (the
metadata stays where it lives). New sidecars are ``name.ext.xmp`` (digiKam, darktable, Immich)
or, with ``sidecar_name="base"``, ``name.xmp`` (Lightroom, Capture One); both are read.

What: see :func:`_merge` and the README's table. Keywords are merged across every field other
apps use (``dc:subject``, ``lr:hierarchicalSubject``, ``digiKam:TagsList``,
``MicrosoftPhoto:LastKeywordXMP``, IPTC ``Keywords``, Windows ``XPKeywords``), so each reader
finds the union, not only what photosearch adds.

How, every time:

1. copy the file to a temporary name in the same folder,
2. merge the new values into the copy (every other tag is left alone by exiv2),
3. re-read the copy and check the new values are there and the image data is identical to the
   original's (its identity, media/identity.py: the image data byte for byte without the
   metadata; else the decoded pixels),
4. atomically rename the copy over the original (mtime kept on request).

A failure at any step leaves the original untouched. A file exiv2 cannot rewrite (damaged
EXIF) gets a sidecar instead, and the result says why.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from photosearch.files import fsync_dir, os_path
from photosearch.errors import PhotosearchError

IN_FILE_FORMATS = {"JPEG", "TIFF", "PNG", "WEBP"}
SIDECAR_NAMES = ("ext", "base")
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
LAST_KEYWORD_KEY = "Xmp.MicrosoftPhoto.LastKeywordXMP"   # Windows: "People/Alice"
MS_RATING_KEY = "Xmp.MicrosoftPhoto.Rating"
IPTC_KEYWORDS = "Iptc.Application2.Keywords"
IPTC_CHARSET = "Iptc.Envelope.CharacterSet"
IPTC_UTF8 = "\x1b%G"
#: The list properties whose schema makes them Bags (exiv2 writes every list as a Seq; digiKam's
#: TagsList is a Seq), by their XML element names as exiv2 serializes them (prefix:name).
_BAG_ELEMENTS = ("dc:subject", "lr:hierarchicalSubject", "iptcExt:PersonInImage", "Iptc4xmpExt:PersonInImage",
                 "MicrosoftPhoto:LastKeywordXMP")


@dataclass
class MetadataUpdate:
    """Values to merge into a photo's XMP. List values are added to the existing ones.

    ``people`` are (name, box) face regions, boxes normalized to the photo as displayed; they
    are written as MWG and Microsoft regions in the stored frame (``orientation`` and
    ``display_size`` say how).
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
    """What ``write`` did: the file written, whether it is a sidecar, whether it changed, and why
    a sidecar was used for a photo that is normally written in-file (``note``)."""

    path: str          # the file written (the photo, or its sidecar)
    sidecar: bool
    changed: bool
    note: str | None = None
    sha256: str | None = None   # of the file written (when changed)


# -- where to write ---------------------------------------------------------------------------

#: Magic numbers of camera RAW formats that are not TIFF-shaped (ORF, RW2, RAF, CRW, CR3, X3F...).
_RAW_MAGIC = (b"IIRO", b"IIRS", b"MMOR", b"IIU\0", b"FUJIFILM", b"II\x1a\0\0\0HEAPCCDR", b"FOVb")


def file_format(path: Path) -> str | None:
    """The real format of a file for writing purposes: JPEG, PNG, WEBP, TIFF (a plain TIFF), DNG,
    RAW (any other camera RAW, whatever its TIFF container says), or None (anything else).

    RAW is recognised by content (a DNGVersion tag, Canon's CR signature, SubIFDs beside a camera
    make, a colour-filter-array image, a RAW magic number) and by its extension, so that a RAW
    file is never rewritten as if it were a TIFF."""
    from photosearch.media.decode import RAW_EXTENSIONS

    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError:
        return None
    raw_ext = path.suffix.lower() in RAW_EXTENSIONS
    if head.startswith(b"\xff\xd8\xff"):
        return "RAW" if raw_ext else "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head.startswith(_RAW_MAGIC) or (head[:4] == b"ftyp" and b"crx" in head) or head[4:12] == b"ftypcrx ":
        return "RAW"
    if head[:4] in (b"II*\0", b"MM\0*"):
        if head[8:10] == b"CR":          # Canon CR2
            return "RAW"
        tags = _tiff_tags(path)
        if 50706 in tags:                 # DNGVersion
            return "DNG"
        if raw_ext or (tags.get(262) or (0,))[0] in (32803, 34892) or (330 in tags and 271 in tags):
            return "RAW"
        return "TIFF"
    if head[:4] in (b"IIII", b"MMMM") or raw_ext:   # Phase One IIQ, and any RAW extension
        return "RAW"
    return None


def _tiff_tags(path: Path) -> dict[int, tuple[int, ...]]:
    """The first directory's tags, read from the header (no decoder: Pillow cannot open many
    RAW files' first image, e.g. a colour-filter-array one)."""
    import mmap

    from photosearch.media.identity import tiff_tags

    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return tiff_tags(data)
    except (OSError, ValueError):
        return {}


def sidecar_path(photo: Path, sidecar_name: str = "ext") -> Path:
    """An existing sidecar (``name.ext.xmp`` or ``name.xmp``), else the new one's path:
    ``name.ext.xmp`` or, with ``sidecar_name="base"``, ``name.xmp``."""
    from photosearch.media.scan import find_sidecar

    existing = find_sidecar(str(photo))
    if existing:
        return Path(existing)
    return photo.with_suffix(".xmp") if sidecar_name == "base" else photo.with_name(photo.name + ".xmp")


def _target(photo: Path, sidecar_only: bool, sidecar_name: str = "ext", dng_in_file: bool = False) -> tuple[Path, bool]:
    """Where a photo's metadata goes: (file, is a sidecar)."""
    from photosearch.media.scan import find_sidecar

    if not photo.is_file():
        raise WriteError(f"cannot write metadata: no such file {photo}")
    if sidecar_name not in SIDECAR_NAMES:
        raise WriteError(f"unknown sidecar name style {sidecar_name!r} (use ext or base)")
    existing = find_sidecar(str(photo))
    if existing:  # the metadata lives there: writing in-file would make the two disagree
        return Path(existing), True
    fmt = file_format(photo)
    in_file = fmt in IN_FILE_FORMATS or (fmt == "DNG" and dng_in_file)
    use_sidecar = sidecar_only or not in_file or not os.access(photo, os.W_OK)
    return (sidecar_path(photo, sidecar_name) if use_sidecar else photo), use_sidecar


# -- image data checks ------------------------------------------------------------------------

def _image_digest(path: Path, fmt: str | None, data: bytes | None = None) -> str:
    """What must not change when metadata is written: the photo's identity (media/identity.py:
    the image data without the metadata, for JPEG, PNG, WebP, TIFF), for a DNG its raw data
    (media/identity.py's raw_data_id; _ImageChanged when it is incomplete), else the decoded
    pixels. ``data``: the file's bytes when they are in memory already."""
    if fmt == "DNG":
        from photosearch.media.identity import raw_data_id

        digest = raw_data_id(data if data is not None else path.read_bytes())
        if digest is None:
            # (Decoding it instead would not do: a decoder fills what is missing with whatever its
            # memory held, so two reads of the same file need not agree.)
            raise _ImageChanged("its raw image data is incomplete, so an unchanged copy cannot be shown")
        return digest
    if fmt in IN_FILE_FORMATS:
        from photosearch.media.identity import content_id

        cid = content_id(data if data is not None else path.read_bytes())
        if cid is not None:
            return cid
    return _pixels_digest(path)


def _pixels_digest(path: Path) -> str:
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        return hashlib.sha256(im.tobytes()).hexdigest() + im.mode + str(im.size)


# -- what to write ----------------------------------------------------------------------------

def _xmp_coord(value: float, pos: str, neg: str) -> str:
    """XMP GPSCoordinate: degrees, decimal minutes and the reference letter ("48,51.20400N")."""
    ref = pos if value >= 0 else neg
    value = abs(value)
    deg = int(value)
    return f"{deg},{(value - deg) * 60:.5f}{ref}"


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value.strip() else []
    if isinstance(value, dict):
        return [str(v) for v in value.values()]
    return [str(v) for v in value if str(v).strip()]


def ms_rating_percent(stars: int) -> int:
    """Windows' percent for a star rating (what Explorer and Photo Gallery write)."""
    return {1: 1, 2: 25, 3: 50, 4: 75, 5: 99}.get(stars, 0)


def keyword_union(xmp: dict, iptc: dict | None, exif: dict | None, update: MetadataUpdate, *,
                  iptc_synced: bool = True) -> tuple[list[str], list[tuple[str, ...]]]:
    """Every keyword a photo has in any field (:func:`photosearch.media.decode.file_keywords`),
    and what ``update`` adds: (flat keywords, paths). Written into every field, so that a
    TagsList-first reader (digiKam, Immich) and a subject-first reader (Windows, Apple) see the
    same set."""
    from photosearch.media.decode import file_keywords

    paths = [tuple(p.strip() for p in v.split("|") if p.strip()) for v in update.hierarchical]
    paths += [tuple(p.strip() for p in v.split("/") if p.strip()) for v in update.tags_list]
    return file_keywords(xmp, iptc or {}, exif or {}, extra_flat=[*update.keywords, *update.persons],
                         extra_paths=paths, iptc_synced=iptc_synced)


def _added(have: list[str], want: list[str]) -> list[str] | None:
    """``have`` with ``want``'s new values appended, or None when nothing is new."""
    merged = list(dict.fromkeys([*have, *want]))
    return merged if merged != have else None


def _merge(current: dict, update: MetadataUpdate, iptc: dict | None = None, exif: dict | None = None,
           iptc_synced: bool = True) -> dict:
    """The pyexiv2 changes that bring ``current`` (XMP) and ``iptc`` (IPTC, None: not written) up to
    ``update`` (empty: nothing to do). IPTC keys start with ``Iptc.``. ``exif`` is the photo's
    EXIF: a date or position it already has is never written again, and its Windows keywords
    join the union."""
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
    adds_keywords = bool(update.keywords or update.hierarchical or update.tags_list or update.persons)
    if adds_keywords:
        flat, paths = keyword_union(current, iptc, exif, update, iptc_synced=iptc_synced)
        wanted = {LIST_KEYS["keywords"]: flat, LIST_KEYS["hierarchical"]: ["|".join(p) for p in paths],
                  LIST_KEYS["tags_list"]: ["/".join(p) for p in paths], LAST_KEYWORD_KEY: ["/".join(p) for p in paths]}
        for key, want in wanted.items():
            merged = _added(_as_list(current.get(key)), want)
            if merged is not None:
                changes[key] = merged
        if iptc is not None:
            # IPTC IIM limits a keyword to 64 bytes; longer ones live in XMP only.
            merged = _added(_as_list(iptc.get(IPTC_KEYWORDS)), [k for k in flat if len(k.encode()) <= 64])
            if merged is not None:
                changes[IPTC_KEYWORDS] = merged
                if iptc.get(IPTC_CHARSET) != IPTC_UTF8:
                    changes[IPTC_CHARSET] = IPTC_UTF8
    merged = _added(_as_list(current.get(LIST_KEYS["persons"])), update.persons)
    if merged is not None:
        changes[LIST_KEYS["persons"]] = merged
    if update.people:
        from photosearch.media.regions import mwg_changes

        size = update.display_size or (0, 0)
        changes.update(mwg_changes(current, update.people, update.orientation, size))
    if update.rating is not None:
        if str(current.get("Xmp.xmp.Rating", "")) != str(update.rating):
            changes["Xmp.xmp.Rating"] = str(int(update.rating))
        percent = str(ms_rating_percent(int(update.rating)))
        if update.rating >= 0 and str(current.get(MS_RATING_KEY, "")) != percent:
            changes[MS_RATING_KEY] = percent
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
    return _pyexiv2().Image(os.fsencode(path).decode("latin-1"), encoding="latin-1")


def _pyexiv2() -> Any:
    """pyexiv2, with exiv2 muted and photosearch's namespace known."""
    import pyexiv2

    global _ns_registered
    if not _ns_registered:
        pyexiv2.set_log_level(4)  # exiv2's warnings on odd files would go to the terminal
        try:
            pyexiv2.registerNs(PHOTOSEARCH_NS, "photosearch")
        except Exception:  # already known to exiv2 (a second library in this process)
            pass
        _ns_registered = True
    return pyexiv2


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


def _writes_iptc(photo: Path, use_sidecar: bool) -> bool:
    """IPTC keywords are written in-file to JPEGs (where older tools read them)."""
    return not use_sidecar and file_format(photo) == "JPEG"


def _bags(raw: str) -> str:
    """The raw XMP with the Bag properties' arrays made Bags again (exiv2 writes lists as Seq)."""
    for name in _BAG_ELEMENTS:
        raw = re.sub(rf"(<{name}>\s*<rdf:)Seq(>.*?</rdf:)Seq(>\s*</{name}>)", r"\1Bag\2Bag\3", raw, flags=re.S)
    return raw


def _with_current_iptc_digest(data: bytes) -> bytes:
    """``data`` with Photoshop's IPTCDigest (image resource 0x0425) matching the IPTC block
    (0x0404) again, so that Photoshop and ExifTool do not take the IPTC as stale. A JPEG without
    a digest is left as it is."""
    from photosearch.media.decode import photoshop_resources

    resources = photoshop_resources(data)
    if 0x0404 in resources and 0x0425 in resources:
        (start, end), (dstart, dend) = resources[0x0404], resources[0x0425]
        digest = hashlib.md5(data[start:end]).digest()
        if dend - dstart == 16 and data[dstart:dend] != digest:
            return data[:dstart] + digest + data[dend:]
    return data


def _current(target: Path, photo: Path, use_sidecar: bool, update: MetadataUpdate) -> tuple[dict, dict | None, dict]:
    """What is in the files now: (XMP of the target, IPTC if it is written, the photo's EXIF)."""
    current = _read_xmp(target) if target.exists() else {}
    iptc = _read_iptc(target) if _writes_iptc(photo, use_sidecar) else None
    exif = _read_exif(photo) if _needs_exif(update) else {}
    return current, iptc, exif


def _iptc_synced(path: Path, iptc: dict | None) -> bool:
    from photosearch.media.decode import iptc_is_synced

    if not iptc:
        return True
    with open(path, "rb") as f:
        return iptc_is_synced(f.read(1 << 20))   # the Photoshop block sits in the header


def _needs_exif(update: MetadataUpdate) -> bool:
    """Whether merging ``update`` reads the photo's EXIF (a date or place it has, its Windows keywords)."""
    return update.taken_at is not None or update.gps is not None or bool(
        update.keywords or update.hierarchical or update.tags_list or update.persons)


def preview(photo: str | os.PathLike[str], update: MetadataUpdate, *, sidecar_only: bool = False,
            sidecar_name: str = "ext", dng_in_file: bool = False) -> tuple[str, bool, dict, dict]:
    """What :func:`write` would change, without writing: (target file, is sidecar, changes, current XMP)."""
    photo = Path(os_path(photo))
    target, use_sidecar = _target(photo, sidecar_only, sidecar_name, dng_in_file)
    try:
        current, iptc, exif = _current(target, photo, use_sidecar, update)
    except Exception as exc:
        raise WriteError(f"cannot read the metadata of {target}: {exc}") from None
    changes = _merge(current, update, iptc, exif, _iptc_synced(target, iptc))
    return str(target), use_sidecar, changes, {**current, **(iptc or {})}


def write(photo: str | os.PathLike[str], update: MetadataUpdate, *, sidecar_only: bool = False,
          keep_mtime: bool = True, sidecar_name: str = "ext", dng_in_file: bool = False) -> WriteResult:
    """Merge ``update`` into ``photo``'s metadata safely (see the module docstring)."""
    photo = Path(os_path(photo))
    target, use_sidecar = _target(photo, sidecar_only, sidecar_name, dng_in_file)
    try:
        return _write(photo, target, use_sidecar, update, keep_mtime)
    except _ImageChanged as exc:
        if use_sidecar or file_format(photo) != "DNG":
            raise
        # A DNG asked to be written in-file whose raw data cannot be shown unchanged: a sidecar.
        result = _write(photo, sidecar_path(photo, sidecar_name), True, update, keep_mtime)
        result.note = f"written to a sidecar: {exc}"
        return result
    except _Exiv2Failed as exc:
        if use_sidecar:
            raise WriteError(f"cannot write metadata to {target}: {exc}") from None
        # exiv2 cannot rewrite this file (e.g. damaged EXIF): the metadata goes beside it instead.
        side = sidecar_path(photo, sidecar_name)
        try:
            result = _write(photo, side, True, update, keep_mtime)
        except _Exiv2Failed as exc2:
            raise WriteError(f"cannot write metadata to {side}: {exc2}") from None
        result.note = f"written to a sidecar: the file itself could not be rewritten ({exc})"
        return result


#: EXIF entries that say where data sits in the file, not what it is: a rewrite moves them.
_LOCATION = re.compile(r"(Offsets?|ByteCounts?|JPEGInterchangeFormat(Length)?)$")
_POINTERS = {"Exif.Image.ExifTag", "Exif.Image.GPSTag", "Exif.Photo.InteroperabilityTag", "Exif.Image.SubIFDs",
             "Exif.Image.XMLPacket"}   # (and XMLPacket: a TIFF's XMP, which is what is being written)
_STANDARD_GROUPS = ("Exif.Image.", "Exif.Photo.", "Exif.GPSInfo.", "Exif.Iop.", "Exif.Thumbnail.", "Exif.Image2.",
                    "Exif.Image3.", "Exif.SubImage", "Exif.MpfInfo.")


def _same_value(key: str, a: Any, b: Any) -> bool:
    """Whether two reads of one XMP/IPTC value are the same (exiv2 writes a GPS coordinate with
    more decimals than it read: ``22,57.114S`` comes back ``22,57.1140000S``)."""
    if a == b:
        return True
    if isinstance(a, str) and isinstance(b, str) and "GPS" in key:
        from photosearch.media.decode import _xmp_gps

        x, y = _xmp_gps(a), _xmp_gps(b)
        return x is not None and y is not None and abs(x - y) < 1e-9
    return False


def exif_changes(before: dict, after: dict) -> list[str]:
    """EXIF tags whose values differ between two reads of a photo (added, dropped or changed),
    leaving out where things sit (offsets, pointers) and a maker note's raw bytes when exiv2
    parsed it (it re-lays a known maker note; its parsed tags are compared one by one)."""
    parsed_note = any(not k.startswith(_STANDARD_GROUPS) for k in before)
    out = []
    for key in sorted(set(before) | set(after)):
        if key in _POINTERS or _LOCATION.search(key) or (key == "Exif.Photo.MakerNote" and parsed_note):
            continue
        if before.get(key) != after.get(key):
            out.append(key)
    return out


class _ImageChanged(WriteError):
    """The rewritten copy's image data differs from the original's (the original is untouched)."""


class _Exiv2Failed(Exception):
    """exiv2 could not read or modify the copy (the original is untouched)."""

    def __init__(self, message: str) -> None:
        # exiv2 joins its warnings into the message: the first line says what failed.
        super().__init__(next((ln.strip() for ln in message.splitlines() if ln.strip()), "exiv2 error"))


def _write(photo: Path, target: Path, use_sidecar: bool, update: MetadataUpdate, keep_mtime: bool) -> WriteResult:
    """One write: the file's bytes are read once, changed in memory by exiv2, written once to a
    temporary file, read back and verified, then renamed over the target."""
    tmp = target.with_name(f".{target.name}.photosearch-tmp")
    existed = target.exists()
    fmt = None if use_sidecar else file_format(photo)
    try:
        data = target.read_bytes() if existed else _EMPTY_XMP.encode("utf-8")
        pyexiv2 = _pyexiv2()
        try:
            img = pyexiv2.ImageData(data)
        except Exception as exc:
            raise _Exiv2Failed(str(exc)) from None
        try:
            try:
                iptc = img.read_iptc() if _writes_iptc(photo, use_sidecar) else None
                current = img.read_xmp()
                exif_before = img.read_exif() if not use_sidecar else None
            except Exception as exc:
                raise _Exiv2Failed(str(exc)) from None
            exif = _read_exif(photo) if _needs_exif(update) else {}
            from photosearch.media.decode import iptc_is_synced

            changes = _merge(current, update, iptc, exif, iptc_is_synced(data) if iptc else True)
            if not changes:
                return WriteResult(str(target), use_sidecar, False)
            xmp_changes = {k: v for k, v in changes.items() if not k.startswith("Iptc.")}
            iptc_changes = {k: v for k, v in changes.items() if k.startswith("Iptc.")}
            try:
                if xmp_changes:
                    img.modify_xmp(xmp_changes)
                    raw = img.read_raw_xmp()
                    fixed = _bags(raw)
                    if fixed != raw:
                        img.modify_raw_xmp(fixed)
                if iptc_changes:
                    img.modify_iptc(iptc_changes)
                new = img.get_bytes()
            except Exception as exc:
                raise _Exiv2Failed(str(exc)) from None
        finally:
            img.close()
        if iptc_changes:
            new = _with_current_iptc_digest(new)
        with open(tmp, "wb") as f:
            f.write(new)
            f.flush()
            os.fsync(f.fileno())
        # Verify what landed on disk: the new values are there ...
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
        # ... nothing else changed: every other XMP and IPTC value, and the EXIF ...
        for key, value in {**current, **(iptc or {} if iptc_changes else {})}.items():
            if key not in changes and not _same_value(key, written.get(key), value):
                # exiv2 would alter a value it does not round-trip (e.g. an ExifVersion in XMP):
                # never in the photo itself (a sidecar takes the write), never in a sidecar.
                if not use_sidecar:
                    raise _Exiv2Failed(f"exiv2 would change {key}")
                raise WriteError(f"verification failed for {target}: exiv2 would change {key}; not written")
        if exif_before is not None:
            changed = exif_changes(exif_before, _read_exif(tmp))
            if changed:   # exiv2 would drop or alter a tag: the metadata goes beside the file instead
                raise _Exiv2Failed(f"exiv2 would change its EXIF ({', '.join(changed[:3])})")
        # ... and the image data is the same.
        # (In-file, the target is the photo: its original bytes and the new ones are in memory.)
        if not use_sidecar and _image_digest(photo, fmt, data) != _image_digest(tmp, fmt, new) and (
                fmt == "DNG" or _pixels_digest(tmp) != _pixels_digest(photo)):
            # (Image data that exiv2 tidied, e.g. a truncated segment, is still fine when every
            # decoded pixel is the same.)
            raise _ImageChanged(f"verification failed for {photo}: image data changed")
        if existed:
            shutil.copystat(target, tmp)   # permissions, and the times (kept unless asked)
            if not keep_mtime:
                os.utime(tmp)
        os.replace(tmp, target)
        fsync_dir(target.parent)  # the rename itself survives a power cut
        return WriteResult(str(target), use_sidecar, True, sha256=hashlib.sha256(new).hexdigest())
    except (WriteError, _Exiv2Failed):
        raise
    except Exception as exc:
        raise WriteError(f"cannot write metadata to {target}: {exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
