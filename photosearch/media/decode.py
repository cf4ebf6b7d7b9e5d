"""Decoding photos for the models, and reading their metadata.

Everything here works on bytes already read from disk, so the indexer reads
each file exactly once (hash, metadata and pixels from the same buffer).

- JPEG: DCT-scaled decoding (Pillow ``draft``) straight to the model's size.
- HEIC/HEIF: pillow-heif.  RAW: the embedded preview through rawpy.
- EXIF orientation is applied; pixel counts above a limit are refused as
  decompression bombs before any pixel is decoded.
"""

from __future__ import annotations

import io
import re
import threading
import warnings
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from PIL import Image, ImageFile, ImageOps

from photosearch.config import DEFAULT_MAX_PIXELS, ENV_MAX_PIXELS, env_int
from photosearch.errors import DecodeError
from photosearch.media.video import VIDEO_EXTENSIONS

RAW_EXTENSIONS = frozenset({
    ".cr2", ".cr3", ".crw", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".dng", ".raf", ".orf",
    ".rw2", ".pef", ".srw", ".raw", ".rwl", ".iiq", ".3fr", ".erf", ".mrw", ".x3f",
})
HEIF_EXTENSIONS = frozenset({".heic", ".heif", ".hif"})
PIL_EXTENSIONS = frozenset({
    ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".tif", ".tiff", ".gif", ".bmp", ".mpo",
    ".psd",   # Photoshop: the composite image every saved document carries (8 bits a channel)
})

def _optional_pil_extensions() -> frozenset[str]:
    """Formats read only where this Pillow build has the codec (JPEG 2000 via OpenJPEG, AVIF)."""
    from PIL import features

    out: set[str] = set()
    if features.check_codec("jpg_2000"):
        out |= {".jp2", ".j2k", ".jpf", ".jpx", ".j2c"}
    if features.check("avif"):
        out |= {".avif"}
    return frozenset(out)


PIL_EXTENSIONS = PIL_EXTENSIONS | _optional_pil_extensions()
SUPPORTED_EXTENSIONS = PIL_EXTENSIONS | HEIF_EXTENSIONS | RAW_EXTENSIONS | VIDEO_EXTENSIONS

#: Media files photosearch sees but cannot read yet: reported as skipped, with why.
UNSUPPORTED_KINDS: dict[str, str] = {
    ".insv": "360-degree camera files are not indexed",
    ".lrv": "camera proxy videos are not indexed (the full video beside it is)",
    ".r3d": "RED camera RAW video is not supported",
    ".braw": "Blackmagic RAW video is not supported",
    ".psb": "Photoshop large documents (PSB) are not supported",
    ".jxl": "JPEG XL needs a Pillow plugin that is not installed",
    ".xcf": "GIMP documents are not supported",
    ".svg": "vector images are not supported",
    ".eps": "vector images are not supported",
    ".ico": "icons are not indexed",
    **({} if ".avif" in PIL_EXTENSIONS else {".avif": "AVIF needs a Pillow build with AVIF support"}),
    **({} if ".jp2" in PIL_EXTENSIONS else {e: "JPEG 2000 needs a Pillow build with OpenJPEG"
                                            for e in (".jp2", ".j2k", ".jpf", ".jpx")}),
}

# LibRaw's "flip" for a preview, as the equivalent EXIF orientation.
_LIBRAW_FLIP_TO_ORIENTATION = {0: 1, 3: 3, 5: 8, 6: 6}

_heif_lock = threading.Lock()
_heif_registered = False


def _ensure_heif() -> None:
    global _heif_registered
    if _heif_registered:
        return
    with _heif_lock:
        if not _heif_registered:
            import pillow_heif

            pillow_heif.register_heif_opener()
            _heif_registered = True


def max_pixels() -> int:
    """Decoding pixel limit: ``$PHOTOSEARCH_MAX_PIXELS`` or the default."""
    return env_int(ENV_MAX_PIXELS, DEFAULT_MAX_PIXELS)


@dataclass
class Decoded:
    """A decoded, upright RGB image (possibly reduced by draft) plus facts about the original."""

    image: Image.Image
    width: int            # full-size width as displayed (orientation applied)
    height: int
    format: str
    orientation: int | None


def _orientation_of(img: Image.Image) -> int | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = img.getexif().get(0x0112)
    except Exception:  # broken EXIF must never cost us the image
        return None
    if isinstance(value, int) and 1 <= value <= 8:
        return value
    return None


def _apply_orientation(img: Image.Image, orientation: int | None) -> Image.Image:
    method = {
        2: Image.Transpose.FLIP_LEFT_RIGHT,
        3: Image.Transpose.ROTATE_180,
        4: Image.Transpose.FLIP_TOP_BOTTOM,
        5: Image.Transpose.TRANSPOSE,
        6: Image.Transpose.ROTATE_270,
        7: Image.Transpose.TRANSVERSE,
        8: Image.Transpose.ROTATE_90,
    }.get(orientation or 1)
    return img.transpose(method) if method is not None else img


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode == "RGB":
        return img
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        # Composite on white so transparent areas do not turn black.
        rgba = img.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        img = ImageOps.autocontrast(img.convert("I").point(lambda v: v / 256).convert("L"))
    return img.convert("RGB")


_pillow_lock = threading.Lock()
_pillow_quiet = False


def _quiet_pillow() -> None:
    """Broken files say why through Pillow's exceptions, not on stderr: the libtiff inside
    Pillow prints its own warnings and errors straight to the process's stderr (hundreds of lines
    for a folder of odd TIFFs), and Pillow logs some errors just before raising them. Both are
    muted once, before the first file is opened (Pillow's logger only if no level was set)."""
    global _pillow_quiet
    if _pillow_quiet:
        return
    with _pillow_lock:
        if _pillow_quiet:
            return
        import logging

        if logging.getLogger("PIL").level == logging.NOTSET:
            logging.getLogger("PIL").setLevel(logging.CRITICAL)
        _mute_libtiff()
        _pillow_quiet = True


def _mute_libtiff() -> None:
    """Unset libtiff's message printers, on the copy Pillow loaded (Linux: found in the process's
    memory map; elsewhere, or if it cannot be found, nothing changes)."""
    import ctypes
    import importlib

    importlib.import_module("PIL._imaging")   # Pillow's libtiff is loaded with it

    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as f:
            path = next((p for p in (line.split()[-1] for line in f if "libtiff" in line) if ".so" in p), None)
        if path is None:
            return
        lib = ctypes.CDLL(path)
    except OSError:
        return
    for name in ("TIFFSetWarningHandler", "TIFFSetErrorHandler"):
        setter = getattr(lib, name, None)
        if setter is not None:
            setter.restype, setter.argtypes = ctypes.c_void_p, [ctypes.c_void_p]
            setter(None)


def _open_pil(data: bytes, min_side: int | None) -> tuple[Image.Image, int, int]:
    """Open with Pillow, enforce the pixel limit, draft JPEGs; returns (image, full_w, full_h)."""
    _quiet_pillow()
    limit = max_pixels()
    Image.MAX_IMAGE_PIXELS = limit
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            img = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError as exc:
            m = re.search(r"\((\d+) pixels\)", str(exc))
            declared = f"{int(m.group(1)):,} pixels declared" if m else "declared size"
            raise DecodeError(f"decompression bomb: {declared}, over the {limit:,}-pixel limit") from None
        except ValueError as exc:  # e.g. PNG text chunk too large (MAX_TEXT_CHUNK)
            raise DecodeError(f"decompression bomb or malformed data: {exc}") from None
        except Image.UnidentifiedImageError:
            raise DecodeError("not an image (unrecognized file format)") from None
        except (OSError, SyntaxError, EOFError) as exc:
            raise DecodeError(f"corrupt image: {exc}") from None
    width, height = img.size
    if width <= 0 or height <= 0:
        raise DecodeError("corrupt image: zero width or height")
    if width * height > limit:
        raise DecodeError(f"decompression bomb: {width}x{height} exceeds the {limit:,}-pixel limit")
    check_aspect(width, height)
    if min_side and img.format == "JPEG":
        # DCT scaling: decode at 1/2, 1/4 or 1/8 size while both sides stay >= min_side.
        img.draft("RGB", (min_side, min_side))
    return img, width, height


def check_aspect(width: int, height: int) -> None:
    """DecodeError for a strip so thin that resizing it for a model would allocate gigabytes."""
    from photosearch.config import MAX_ASPECT_RATIO

    if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        raise DecodeError(f"extreme aspect ratio: {width}x{height} (more than {MAX_ASPECT_RATIO}:1 is not a photo)")


def _libraw_message(exc: Exception) -> str:
    text = str(exc)
    m = re.fullmatch(r"b'(.*)'", text)
    return m.group(1) if m else (text or type(exc).__name__)


def _decode_raw(data: bytes, min_side: int | None) -> tuple[Image.Image, int, int, int | None]:
    import rawpy

    try:
        raw = rawpy.imread(io.BytesIO(data))
    except Exception as exc:  # LibRaw raises many types for unsupported or corrupt files
        raise DecodeError(f"unreadable camera RAW file: {_libraw_message(exc)}") from None
    with raw:
        flip = _LIBRAW_FLIP_TO_ORIENTATION.get(getattr(raw.sizes, "flip", 0), 1)
        try:
            thumb = raw.extract_thumb()
        except Exception:
            thumb = None
        if thumb is not None and thumb.format == rawpy.ThumbFormat.JPEG:
            img, width, height = _open_pil(bytes(thumb.data), min_side)
            own = _orientation_of(img)
            return img, width, height, own if own not in (None, 1) else flip
        if thumb is not None and thumb.format == rawpy.ThumbFormat.BITMAP:
            img = Image.fromarray(thumb.data)
            check_aspect(img.width, img.height)
            return img, img.width, img.height, flip
        try:
            rgb = raw.postprocess(half_size=True, use_camera_wb=True, output_bps=8)
        except Exception as exc:
            raise DecodeError(f"camera RAW file has no usable preview: {_libraw_message(exc)}") from None
        img = Image.fromarray(rgb)
        # postprocess already applies the flip.
        return img, img.width, img.height, 1


def decode(data: bytes, *, ext: str = "", min_side: int | None = None) -> Decoded:
    """Decode ``data`` to an upright RGB image whose shorter side is >= ``min_side`` when possible.

    ``ext`` (lower-case, with dot) only routes camera RAW files to rawpy; every
    other format is sniffed from the content, so mislabelled files still work.
    Raises :class:`DecodeError` with a one-line reason for anything unusable.
    """
    if not data:
        raise DecodeError("empty file (0 bytes)")
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    if ext in RAW_EXTENSIONS and not _looks_like_pil_format(data):
        img, width, height, orientation = _decode_raw(data, min_side)
        fmt = ext.lstrip(".").upper()
    else:
        heif = ext in HEIF_EXTENSIONS or _looks_like_heif(data)
        if heif:
            _ensure_heif()
        img, width, height = _open_pil(data, min_side)
        fmt = img.format or ext.lstrip(".").upper()
        orientation = None
        if heif and img.format == "HEIF" and min_side and min(width, height) >= 2 * min_side:
            # pillow-heif's rotations are applied by libheif (its EXIF orientation reads 1).
            orientation = _orientation_of(img)
            img = _heif_reduced(data, min(width, height) // min_side) or img
    _load_pixels(img)
    if orientation is None:
        # Only after load(): reading EXIF first can swallow a decoder error (PNG).
        orientation = _orientation_of(img)
    if min_side and min(img.size) >= 2 * min_side and img.mode in _REDUCIBLE:
        # Formats without DCT scaling (PNG, TIFF, WebP...) decode at full size: reduce before the
        # RGB conversion and everything after it, so a 250 MP scan costs one buffer, not five.
        img = img.reduce(min(img.size) // min_side)
    try:
        img = _to_rgb(img)
        img = _apply_orientation(img, orientation)
    except Exception as exc:
        raise DecodeError(f"corrupt image data: {exc}") from None
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    return Decoded(image=img, width=width, height=height, format=fmt, orientation=orientation)


def _heif_reduced(data: bytes, k: int) -> Image.Image | None:
    """A HEIF's primary image box-reduced by ``k`` straight from libheif's buffer: Pillow's
    plugin copies a decode into an image of 4 bytes a pixel before it can be reduced (a 200 MP
    photo took 1.4 GB, now 0.93; a 12 MP one ~23 ms less CPU). None where the image is not 8-bit
    RGB, RGBA or grey (Pillow's way then)."""
    import cv2
    import numpy as np
    import pillow_heif

    try:
        heif = pillow_heif.open_heif(data, convert_hdr_to_8bit=True)
        image = heif[heif.primary_index]
        if image.mode not in ("RGB", "RGBA", "L"):
            return None
        pixels = np.asarray(image)
    except Exception as exc:  # noqa: BLE001 - libheif raises several types for corrupt files
        raise DecodeError(f"corrupt image data: {(str(exc).splitlines() or [type(exc).__name__])[0]}") from None
    h, w = pixels.shape[:2]
    # Whole k x k blocks, as Image.reduce(k) averages them (to 0.1 of a level on ../shared's and
    # pillow-heif's HEICs); its last, partial block is left out (at most k - 1 pixels of edge).
    small = cv2.resize(pixels[: h // k * k, : w // k * k], (w // k, h // k), interpolation=cv2.INTER_AREA)
    return Image.fromarray(small, image.mode)


_REDUCIBLE = frozenset({"L", "LA", "RGB", "RGBA", "RGBX", "CMYK", "I", "F", "La", "RGBa"})


def _load_pixels(img: Image.Image) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img.load()
    except DecodeError:
        raise
    except Exception as exc:
        msg = str(exc) or type(exc).__name__
        if "truncated" in msg.lower():
            raise DecodeError(f"truncated image: {msg}") from None
        raise DecodeError(f"corrupt image data: {msg}") from None


def _looks_like_heif(data: bytes) -> bool:
    return len(data) >= 12 and data[4:8] == b"ftyp" and data[8:12] in (
        b"heic", b"heix", b"hevc", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1", b"avif",
    )


def _looks_like_pil_format(data: bytes) -> bool:
    """A file named like a RAW that is really a JPEG/PNG (some cameras, some exporters)."""
    return data[:3] == b"\xff\xd8\xff" or data[:8] == b"\x89PNG\r\n\x1a\n"


# -- metadata ------------------------------------------------------------------------------


@dataclass
class Metadata:
    """The catalog fields read from a photo's EXIF, IPTC and XMP (and an XMP sidecar)."""

    taken_at: datetime | None = None
    camera_make: str | None = None
    camera_model: str | None = None
    lens: str | None = None
    gps_lat: float | None = None
    gps_lon: float | None = None
    orientation: int | None = None
    keywords: list[str] = field(default_factory=list)          # flat: every keyword and path leaf
    keyword_paths: list[str] = field(default_factory=list)     # hierarchical ones, "Places/France/Paris"
    rating: int | None = None
    title: str | None = None
    description: str | None = None
    regions: list[Any] = field(default_factory=list)  # photosearch.media.regions.Region, displayed frame
    live_id: str | None = None  # Apple's Live Photo identifier (MakerNote MediaGroupUUID)


_exiv2_lock = threading.Lock()
_exiv2_ready = False


def _exiv2() -> Any:
    global _exiv2_ready
    import pyexiv2

    if not _exiv2_ready:
        with _exiv2_lock:
            if not _exiv2_ready:
                pyexiv2.set_log_level(4)  # mute exiv2's warnings on odd files
                _exiv2_ready = True
    return pyexiv2


def _read_tags(data: bytes) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    pyexiv2 = _exiv2()
    try:
        img = pyexiv2.ImageData(data)
    except Exception:
        return {}, {}, {}
    try:
        out = []
        for reader in (img.read_exif, img.read_iptc, img.read_xmp):
            try:
                out.append(reader(encoding="utf-8"))
            except Exception:
                try:
                    out.append(reader(encoding="latin-1"))
                except Exception:
                    out.append({})
        return out[0], out[1], out[2]
    finally:
        img.close()


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dict):  # XMP lang-alt: {'lang="x-default"': 'text'}
        value = next(iter(value.values()), None)
    if isinstance(value, list):
        value = value[0] if value else None
    if value is None:
        return None
    text = str(value).replace("\x00", "").strip()
    if text.lower().startswith("charset="):
        text = text.split(" ", 1)[1] if " " in text else ""
    return text or None


def _first(tags: dict[str, Any], *keys: str) -> str | None:
    for key in keys:
        text = _text(tags.get(key))
        if text:
            return text
    return None


_DATE_RE = re.compile(r"^(\d{4})[:\-](\d{2})[:\-](\d{2})(?:[ T](\d{2}):(\d{2})(?::(\d{2}))?)?")


def parse_date(text: str | None) -> datetime | None:
    """EXIF ``YYYY:MM:DD HH:MM:SS`` or XMP ISO dates; None for zeros and nonsense."""
    if not text:
        return None
    m = _DATE_RE.match(text.strip())
    if not m:
        return None
    y, mo, d, h, mi, s = (int(g) if g else 0 for g in m.groups())
    try:
        return datetime(y, mo, d, h, mi, s) if y > 1800 else None
    except ValueError:
        return None


def _rational(text: str) -> float:
    if "/" in text:
        num, den = text.split("/", 1)
        den_f = float(den)
        if den_f == 0:
            raise ZeroDivisionError
        return float(num) / den_f
    return float(text)


def _gps(exif: dict[str, Any], ref_key: str, key: str) -> float | None:
    value = exif.get(key)
    if not value:
        return None
    try:
        parts = [_rational(p) for p in str(value).split()]
        if not parts:
            return None
        deg = parts[0] + (parts[1] / 60 if len(parts) > 1 else 0) + (parts[2] / 3600 if len(parts) > 2 else 0)
    except (ValueError, ZeroDivisionError):
        return None
    ref = _text(exif.get(ref_key)) or ""
    if ref.upper().startswith(("S", "W")):
        deg = -deg
    return deg


def _xmp_gps(text: str | None) -> float | None:
    # XMP exif:GPSLatitude looks like "53,22.970833N" or "53,22,58.25N".
    if not text:
        return None
    m = re.match(r"^\s*(\d+(?:\.\d+)?)(?:,(\d+(?:\.\d+)?))?(?:,(\d+(?:\.\d+)?))?\s*([NSEW])\s*$", text)
    if not m:
        return None
    deg = float(m.group(1)) + float(m.group(2) or 0) / 60 + float(m.group(3) or 0) / 3600
    return -deg if m.group(4) in "SW" else deg


#: XMP list properties that hold keywords (flat, "|" paths, "/" paths).
KEYWORD_KEYS = ("Xmp.dc.subject", "Xmp.lr.hierarchicalSubject", "Xmp.digiKam.TagsList",
                "Xmp.MicrosoftPhoto.LastKeywordXMP")


def file_keywords(xmp: dict[str, Any], iptc: dict[str, Any], exif: dict[str, Any], *,
                  extra_flat: Any = (), extra_paths: Any = (),
                  iptc_synced: bool = True) -> tuple[list[str], list[tuple[str, ...]]]:
    """Every keyword a photo carries in any field: (flat keywords, keyword paths).

    Paths come from ``lr:hierarchicalSubject`` (Lightroom, ``|``), ``digiKam:TagsList`` and
    ``MicrosoftPhoto:LastKeywordXMP`` (digiKam, Immich, Windows, ``/``); flat keywords from
    ``dc:subject``, IPTC ``Keywords`` and Windows ``XPKeywords``. Each path's leaf is a flat
    keyword too, and a flat keyword found in no path is a path of its own."""
    paths: list[tuple[str, ...]] = list(extra_paths)
    for value in _as_list(xmp.get("Xmp.lr.hierarchicalSubject")):
        paths.append(tuple(p.strip() for p in value.split("|") if p.strip()))
    for key in ("Xmp.digiKam.TagsList", "Xmp.MicrosoftPhoto.LastKeywordXMP"):
        for value in _as_list(xmp.get(key)):
            paths.append(tuple(p.strip() for p in value.split("/") if p.strip()))
    paths = list(dict.fromkeys(p for p in paths if p))
    xp = _text(exif.get("Exif.Image.XPKeywords")) or ""
    # MWG: IPTC keywords synced with an existing dc:subject are XMP's (they may hold what the user
    # removed since); IPTC changed since by an IPTC-only app, or IPTC alone, counts.
    subject = _as_list(xmp.get("Xmp.dc.subject"))
    iptc_keywords = [] if subject and iptc_synced else _as_list(iptc.get("Iptc.Application2.Keywords"))
    flat = [*subject, *iptc_keywords,
            *(k for k in xp.split(";")), *extra_flat, *(p[-1] for p in paths)]
    flat = list(dict.fromkeys(k.strip() for k in flat if k and k.strip()))
    in_paths = {part for p in paths for part in p}
    return flat, paths + [(k,) for k in flat if k not in in_paths]


def photoshop_resources(data: bytes) -> dict[int, tuple[int, int]]:
    """A JPEG's Photoshop image resources (APP13 "Photoshop 3.0"): id -> (start, end) of each
    resource's data in ``data`` (0x0404: the IPTC block, 0x0425: its MD5, IPTCDigest)."""
    out: dict[int, tuple[int, int]] = {}
    i = 2
    if not data.startswith(b"\xff\xd8"):
        return out
    while i + 4 <= len(data) and data[i] == 0xFF and data[i + 1] != 0xDA:
        length = int.from_bytes(data[i + 2:i + 4], "big")
        end = min(len(data), i + 2 + length)
        if data[i + 1] == 0xED and data[i + 4:i + 18] == b"Photoshop 3.0\0":
            j = i + 18
            while j + 12 <= end and data[j:j + 4] == b"8BIM":
                rid = int.from_bytes(data[j + 4:j + 6], "big")
                k = j + 6 + ((1 + data[j + 6] + 1) & ~1)   # the name: a Pascal string padded to even length
                size = int.from_bytes(data[k:k + 4], "big")
                out.setdefault(rid, (k + 4, min(end, k + 4 + size)))
                j = k + 4 + size + (size % 2)
        i += 2 + length
    return out


def iptc_is_synced(data: bytes) -> bool:
    """Whether a JPEG's IPTC is what its XMP was last reconciled with (MWG): there is no
    IPTCDigest, or it matches the IPTC block. False: an app that knows only IPTC changed it since."""
    import hashlib

    resources = photoshop_resources(data)
    if 0x0425 not in resources or 0x0404 not in resources:
        return True
    (start, end), (dstart, dend) = resources[0x0404], resources[0x0425]
    return hashlib.md5(data[start:end]).digest() == data[dstart:dend]


def ms_percent_to_stars(percent: float) -> int:
    """Windows' rating percent as stars (Explorer writes 1, 25, 50, 75, 99)."""
    if percent <= 0:
        return 0
    return 1 if percent < 13 else 2 if percent < 38 else 3 if percent < 63 else 4 if percent < 88 else 5


def _rating(xmp: dict[str, Any], exif: dict[str, Any]) -> int | None:
    """Stars from xmp:Rating, else Windows' XMP or EXIF rating percent, else EXIF Rating."""
    try:
        stars = _first(xmp, "Xmp.xmp.Rating")
        if stars:
            return max(-1, min(5, int(float(stars))))
        percent = _first(xmp, "Xmp.MicrosoftPhoto.Rating") or _first(exif, "Exif.Image.RatingPercent")
        if percent:
            return ms_percent_to_stars(float(percent))
        stars = _first(exif, "Exif.Image.Rating")
        return max(-1, min(5, int(float(stars)))) if stars else None
    except ValueError:
        return None


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()] if "," in value else ([value.strip()] if value.strip() else [])
    if isinstance(value, dict):
        return [str(v) for v in value.values()]
    return [str(v).strip() for v in value if str(v).strip()]


def read_metadata(data: bytes, sidecar: bytes | None = None) -> Metadata:
    """Read catalog metadata from a photo's bytes, merged with an XMP sidecar if given.

    Never raises: files with broken or missing metadata give empty fields.
    """
    from photosearch.media.regions import has_regions, read_regions

    exif, iptc, xmp = _read_tags(data) if data else ({}, {}, {})
    extra_keywords: list[str] = []
    extra_paths: list[tuple[str, ...]] = []
    region_source = xmp
    if sidecar:
        s_exif, s_iptc, s_xmp = _read_tags(sidecar)
        if has_regions(s_xmp):  # regions are a whole: the sidecar's replace the file's, never mix
            region_source = s_xmp
        # A sidecar is the newer record (written by an editor after the shot): its values win,
        # except keywords, which are the union of both.
        extra_keywords, extra_paths = file_keywords(s_xmp, s_iptc, {})
        for key in KEYWORD_KEYS:
            s_xmp.pop(key, None)
        xmp = {**xmp, **s_xmp}
        exif = {**s_exif, **exif}
        iptc = {**iptc, **s_iptc}
    md = Metadata()
    md.taken_at = parse_date(_first(
        exif, "Exif.Photo.DateTimeOriginal", "Exif.Image.DateTimeOriginal", "Exif.Photo.DateTimeDigitized",
    )) or _with_iptc_time(_first(
        xmp, "Xmp.exif.DateTimeOriginal", "Xmp.photoshop.DateCreated", "Xmp.xmp.CreateDate",
    ), iptc) or parse_date(_first(exif, "Exif.Image.DateTime")) or _iptc_date(iptc)
    md.camera_make = _first(exif, "Exif.Image.Make", "Exif.PanasonicRaw.Make") or _first(xmp, "Xmp.tiff.Make")
    md.camera_model = _first(exif, "Exif.Image.Model", "Exif.PanasonicRaw.Model") or _first(xmp, "Xmp.tiff.Model")
    md.lens = _first(
        exif, "Exif.Photo.LensModel", "Exif.Canon.LensModel", "Exif.NikonLd3.LensIDNumber", "Exif.Photo.LensSpecification",
    ) or _first(xmp, "Xmp.aux.Lens", "Xmp.exifEX.LensModel")
    if md.lens and re.fullmatch(r"[\d/ ]+", md.lens):
        md.lens = None  # a bare rational spec is not a lens name
    md.gps_lat = _gps(exif, "Exif.GPSInfo.GPSLatitudeRef", "Exif.GPSInfo.GPSLatitude")
    md.gps_lon = _gps(exif, "Exif.GPSInfo.GPSLongitudeRef", "Exif.GPSInfo.GPSLongitude")
    if md.gps_lat is None or md.gps_lon is None:
        md.gps_lat = _xmp_gps(_text(xmp.get("Xmp.exif.GPSLatitude")))
        md.gps_lon = _xmp_gps(_text(xmp.get("Xmp.exif.GPSLongitude")))
    if md.gps_lat is None or md.gps_lon is None or not (-90 <= md.gps_lat <= 90 and -180 <= md.gps_lon <= 180):
        md.gps_lat = md.gps_lon = None
    orient = _first(exif, "Exif.Image.Orientation")
    md.orientation = int(orient) if orient and orient.isdigit() and 1 <= int(orient) <= 8 else None
    # Keywords are the union of every field apps write them to (not MWG's "XMP wins"): a keyword
    # that only one app wrote is still the user's keyword.
    flat, paths = file_keywords(xmp, iptc, exif, extra_flat=extra_keywords, extra_paths=extra_paths,
                                iptc_synced=iptc_is_synced(data) if iptc else True)
    md.keywords = flat
    md.keyword_paths = ["/".join(p) for p in paths if len(p) > 1]
    md.rating = _rating(xmp, exif)
    md.title = _first(xmp, "Xmp.dc.title") or _first(iptc, "Iptc.Application2.ObjectName", "Iptc.Application2.Headline")
    md.description = (
        _first(xmp, "Xmp.dc.description")
        or _first(iptc, "Iptc.Application2.Caption")
        or _first(exif, "Exif.Image.ImageDescription", "Exif.Photo.UserComment")
    )
    md.live_id = apple_live_id(exif.get("Exif.Photo.MakerNote"))
    try:
        md.regions = read_regions(region_source, md.orientation)
    except Exception:  # a malformed region must never cost us the photo
        md.regions = []
    return md


def apple_live_id(note: Any) -> str | None:
    """The Live Photo identifier in an Apple MakerNote (tag 0x0011, ExifTool's MediaGroupUUID,
    formerly ContentIdentifier; the movie's ``com.apple.quicktime.content.identifier`` holds the
    same UUID). ``note`` is the MakerNote as exiv2 gives it (decimal bytes) or as bytes; exiv2
    does not parse Apple's notes, so this reads its one IFD: ``Apple iOS\\0``, a version, a byte
    order mark, then entries whose offsets count from the note's start."""
    if isinstance(note, str):
        try:
            note = bytes(int(b) for b in note.split()[:65536])
        except ValueError:
            return None
    if not isinstance(note, (bytes, bytearray)) or not note.startswith(b"Apple iOS\0") or len(note) < 16:
        return None
    order = {b"MM": ">", b"II": "<"}.get(bytes(note[12:14]))
    if order is None:
        return None
    import struct

    (count,) = struct.unpack_from(order + "H", note, 14)
    for i in range(min(count, 256)):
        at = 16 + 12 * i
        if at + 12 > len(note):
            return None
        tag, kind, n, value = struct.unpack_from(order + "HHI4s", note, at)
        if tag != 0x0011 or kind != 2:
            continue
        raw = value[:n] if n <= 4 else note[struct.unpack(order + "I", value)[0]:][:n]
        text = bytes(raw).split(b"\0", 1)[0].decode("ascii", "replace").strip()
        return text or None
    return None


def _with_iptc_time(text: str | None, iptc: dict[str, Any]) -> datetime | None:
    """An XMP date; one without a time of day (Photo Mechanic, IPTC editors write
    ``photoshop:DateCreated`` as a day) takes IPTC's time when IPTC gives the same day, as
    ExifTool's composite DateTimeCreated does."""
    when = parse_date(text)
    if when is None or "T" in (text or "") or ":" in (text or "")[10:]:
        return when
    iptc_when = _iptc_date(iptc)
    return iptc_when if iptc_when is not None and iptc_when.date() == when.date() else when


def _iptc_date(iptc: dict[str, Any]) -> datetime | None:
    date = _text(iptc.get("Iptc.Application2.DateCreated"))
    if not date:
        return None
    time = _text(iptc.get("Iptc.Application2.TimeCreated")) or "00:00:00"
    return parse_date(f"{date} {time[:8]}")
