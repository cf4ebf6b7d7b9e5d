"""A photo's identity: a hash of its image data alone, so an edit of its metadata (keywords,
rating, captions, GPS written by another app) leaves it the same photo.

- JPEG: the segments that define the image (frame, quantization and Huffman tables, restart
  interval) and the entropy-coded data from the first scan on; APPn (EXIF, XMP, IPTC, ICC) and
  comments are left out. The EXIF orientation is put in, because turning a photo changes what
  it shows (and its vectors).
- PNG: IHDR, PLTE, tRNS and the IDAT data; text, time and EXIF chunks are left out.
- WebP: the image chunks (VP8, VP8L, ALPH, ANIM, ANMF) and the EXIF orientation; EXIF, XMP and
  ICC chunks and the VP8X header (which a writer adds or changes with them) are left out.
- TIFF: the first image's strips or tiles and the tags that say how to read them (size, samples,
  compression, photometric, planar, predictor, orientation); the other tags (EXIF, XMP, IPTC) are
  left out, and so is where the data sits (metadata writers move it).
- HEIF (HEIC, AVIF): the coded data of the image items (HEVC/AV1 tiles, grid layouts) and the
  properties that say how to show them (decoder configuration, size, rotation, mirroring); the
  Exif and XMP items, and where any data sits, are left out. Camera RAW files in TIFF containers
  (NEF, CR2, DNG, IIQ) go by the TIFF rule.
- Other formats (CR3, RAF, RW2, GIF...): None (their identity is their bytes).

Only headers are parsed: nothing is decoded.
"""

from __future__ import annotations

import hashlib
import struct

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_IMAGE_CHUNKS = frozenset({b"IHDR", b"PLTE", b"tRNS", b"IDAT"})


def content_id(data: bytes) -> str | None:
    """The identity of the image in ``data`` (hex), or None when the format has none here or the
    file is malformed (then its bytes are its identity)."""
    try:
        if data[:3] == b"\xff\xd8\xff":
            return _jpeg(data)
        if data[:8] == _PNG_SIGNATURE:
            return _png(data)
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return _webp(data)
        if data[:4] in (b"II*\0", b"MM\0*"):
            return _tiff(data)
        if data[4:8] == b"ftyp":
            return _heif(data)
    except (Exception, MemoryError):  # noqa: BLE001 - a malformed or hostile header: the bytes are the identity
        return None
    return None


def _jpeg(data: bytes) -> str | None:
    h = hashlib.sha256(b"jpeg\0")
    orientation = 1
    i = 2
    n = len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:          # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        segment = data[i:i + 2 + length]
        if marker == 0xDA:          # start of scan: the rest is image data (and what follows it)
            h.update(segment)
            h.update(data[i + 2 + length:])
            h.update(b"orientation=%d" % orientation)
            return h.hexdigest()
        if marker == 0xE1 and segment[4:10] == b"Exif\0\0":
            orientation = _exif_orientation(segment[10:]) or orientation
        elif not (0xE0 <= marker <= 0xEF or marker == 0xFE):
            h.update(segment)
        i += 2 + length
    return None


def _exif_orientation(tiff: bytes) -> int | None:
    """Tag 0x0112 of IFD0 of a TIFF-structured EXIF block."""
    if tiff[:2] == b"II":
        e = "<"
    elif tiff[:2] == b"MM":
        e = ">"
    else:
        return None
    (ifd,) = struct.unpack(e + "I", tiff[4:8])
    (count,) = struct.unpack(e + "H", tiff[ifd:ifd + 2])
    for k in range(count):
        entry = tiff[ifd + 2 + 12 * k: ifd + 14 + 12 * k]
        tag, kind = struct.unpack(e + "HH", entry[:4])
        if tag == 0x0112 and kind == 3:
            value = struct.unpack(e + "H", entry[8:10])[0]
            return value if 1 <= value <= 8 else None
    return None


def _png(data: bytes) -> str | None:
    h = hashlib.sha256(b"png\0")
    i = 8
    n = len(data)
    while i + 8 <= n:
        length, kind = struct.unpack(">I4s", data[i:i + 8])
        if i + 12 + length > n:
            return None   # truncated
        if kind in _PNG_IMAGE_CHUNKS:
            h.update(kind)
            h.update(data[i + 8:i + 8 + length])
        if kind == b"IEND":
            return h.hexdigest()
        i += 12 + length
    return None


#: TIFF tags that say how the image data is read (and shown: orientation).
_TIFF_IMAGE_TAGS = (256, 257, 258, 259, 262, 274, 277, 284, 317, 322, 323, 338, 339)
_TIFF_TYPES = {1: ("B", 1), 3: ("H", 2), 4: ("I", 4), 16: ("Q", 8)}


def _ifd(data: bytes, e: str, at: int) -> dict[int, tuple[int, ...]] | None:
    """The numeric tags of the TIFF directory at ``at`` (None when it runs past the data)."""
    (count,) = struct.unpack(e + "H", data[at:at + 2])
    if at + 2 + 12 * count > len(data):
        return None
    tags: dict[int, tuple[int, ...]] = {}
    for k in range(count):
        tag, kind, n, raw = struct.unpack(e + "HHI4s", data[at + 2 + 12 * k: at + 14 + 12 * k])
        if kind not in _TIFF_TYPES or n > 1_000_000:   # a hostile count must not build a huge format
            tags.setdefault(tag, ())                   # (there, but not a number read here)
            continue
        fmt, size = _TIFF_TYPES[kind]
        if n * size <= 4:
            where = raw
        else:
            (at_value,) = struct.unpack(e + "I", raw)
            where = data[at_value:at_value + n * size]
        if len(where) < n * size:
            continue
        tags[tag] = struct.unpack(e + fmt * n, where[:n * size])
    return tags


def _image_hash(data: bytes, tags: dict[int, tuple[int, ...]], h, *, complete: bool = False) -> bool:
    """Feed an image's reading tags and its strips or tiles to ``h``; False when they are missing
    or run past the data, or (``complete``) are fewer than the image's size needs."""
    offsets, counts = tags.get(273) or tags.get(324), tags.get(279) or tags.get(325)
    if not offsets or not counts or len(offsets) != len(counts):
        return False
    if complete:
        width, height = (tags.get(256) or (0,))[0], (tags.get(257) or (0,))[0]
        planes = (tags.get(277) or (1,))[0] if (tags.get(284) or (1,))[0] == 2 else 1
        if 324 in tags:
            tw, tl = (tags.get(322) or (0,))[0], (tags.get(323) or (0,))[0]
            need = -(-width // tw) * -(-height // tl) if tw and tl else -1
        else:
            rows = (tags.get(278) or (height,))[0] or height
            need = -(-height // rows) if rows else -1
        if width <= 0 or height <= 0 or len(offsets) != need * planes:
            return False
    for tag in _TIFF_IMAGE_TAGS:
        if tags.get(tag):   # (a tag of a kind not read here, ``()``, stays out: identities stay as they were)
            h.update(b"%d=%r;" % (tag, tags[tag]))
    for off, n in zip(offsets, counts):
        if off + n > len(data) or (complete and n == 0):
            return False
        h.update(data[off:off + n])
    return True


def _tiff(data: bytes) -> str | None:
    e = "<" if data[:2] == b"II" else ">"
    (ifd,) = struct.unpack(e + "I", data[4:8])
    tags = _ifd(data, e, ifd)
    h = hashlib.sha256(b"tiff\0")
    return h.hexdigest() if tags is not None and _image_hash(data, tags, h) else None


def tiff_tags(data: bytes) -> dict[int, tuple[int, ...]]:
    """The tags of a TIFF's first directory: numbers as tuples, other kinds (text) as ``()``;
    empty when ``data`` is no TIFF or its header is malformed."""
    try:
        if data[:4] not in (b"II*\0", b"MM\0*"):
            return {}
        e = "<" if data[:2] == b"II" else ">"
        return _ifd(data, e, struct.unpack(e + "I", data[4:8])[0]) or {}
    except (Exception, MemoryError):  # noqa: BLE001 - a malformed or hostile header
        return {}


def raw_data_id(data: bytes) -> str | None:
    """A hash of a TIFF-based RAW file's (DNG, NEF...) full-resolution image data: the strips or
    tiles of every directory (the first, or one of its SubIFDs) marked as the main image, and the
    tags that say how to read them. None when there is no such image or its data is incomplete
    (fewer strips or tiles than its size needs, or some past the end of the file): a file whose
    raw data cannot be read whole cannot be shown unchanged after a rewrite."""
    try:
        if data[:4] not in (b"II*\0", b"MM\0*"):
            return None
        e = "<" if data[:2] == b"II" else ">"
        (first,) = struct.unpack(e + "I", data[4:8])
        tags = _ifd(data, e, first)
        if tags is None:
            return None
        directories = [tags] + [t for at in tags.get(330, ()) if (t := _ifd(data, e, at)) is not None]
        h = hashlib.sha256(b"raw\0")
        found = False
        for t in directories:
            if (t.get(254) or (0,))[0] != 0:      # NewSubfileType: a preview, not the raw image
                continue
            if not _image_hash(data, t, h, complete=True):
                return None
            found = True
        return h.hexdigest() if found else None
    except (Exception, MemoryError):  # noqa: BLE001 - a malformed or hostile header
        return None


_WEBP_IMAGE_CHUNKS = frozenset({b"VP8 ", b"VP8L", b"ALPH", b"ANIM", b"ANMF"})


def _webp(data: bytes) -> str | None:
    h = hashlib.sha256(b"webp\0")
    i = 12
    n = len(data)
    found = False
    orientation = 1
    while i + 8 <= n:
        kind = data[i:i + 4]
        (size,) = struct.unpack("<I", data[i + 4:i + 8])
        if i + 8 + size > n:
            return None   # truncated
        body = data[i + 8:i + 8 + size]
        if kind in _WEBP_IMAGE_CHUNKS:
            h.update(kind + body)
            found = found or kind in (b"VP8 ", b"VP8L", b"ANMF")
        elif kind == b"EXIF":
            orientation = _exif_orientation(body[6:] if body.startswith(b"Exif\0\0") else body) or orientation
        i += 8 + size + (size & 1)
    h.update(b"orientation=%d" % orientation)
    return h.hexdigest() if found else None


__all__ = ["content_id", "raw_data_id", "tiff_tags"]


_HEIF_IMAGE_ITEMS = frozenset({b"hvc1", b"av01", b"grid", b"iden", b"iovl", b"jpeg", b"unci"})
_HEIF_SHOWN_PROPS = frozenset({b"hvcC", b"av1C", b"ispe", b"irot", b"imir", b"clap", b"pixi"})


def _boxes(data: bytes, start: int, end: int):
    """(type, payload start, payload end) of the ISO-BMFF boxes in data[start:end]."""
    i = start
    while i + 8 <= end:
        size, kind = struct.unpack(">I4s", data[i:i + 8])
        head = 8
        if size == 1:
            size, head = struct.unpack(">Q", data[i + 8:i + 16])[0], 16
        elif size == 0:
            size = end - i
        if size < head or i + size > end:
            raise ValueError("bad box")
        yield kind, i + head, i + size
        i += size


def _uint(data: bytes, at: int, size: int) -> int:
    return int.from_bytes(data[at:at + size], "big") if size else 0


def _heif(data: bytes) -> str | None:
    meta = next(((a, b) for k, a, b in _boxes(data, 0, len(data)) if k == b"meta"), None)
    if meta is None:
        return None
    parts = {k: (a, b) for k, a, b in _boxes(data, meta[0] + 4, meta[1])}   # meta is a full box
    if b"iinf" not in parts or b"iloc" not in parts:
        return None
    # Item types (iinf/infe, versions 2 and 3).
    a, b = parts[b"iinf"]
    types: dict[int, bytes] = {}
    for kind, x, _ in _boxes(data, a + 4 + (2 if data[a] == 0 else 4), b):
        version = data[x]
        if kind != b"infe" or version < 2:
            continue
        wide = 4 if version == 3 else 2
        types[_uint(data, x + 4, wide)] = data[x + 4 + wide + 2:x + 4 + wide + 6]
    # Where each item's data is (iloc): file offsets (method 0) or the idat box (method 1).
    a, b = parts[b"iloc"]
    version = data[a]
    off_size, len_size, base_size = data[a + 4] >> 4, data[a + 4] & 15, data[a + 5] >> 4
    index_size = data[a + 5] & 15 if version in (1, 2) else 0
    i = a + 6
    count = _uint(data, i, 2 if version < 2 else 4)
    i += 2 if version < 2 else 4
    idat = parts.get(b"idat")
    h = hashlib.sha256(b"heif\0")
    for _ in range(count):
        wide = 2 if version < 2 else 4
        item = _uint(data, i, wide)
        i += wide
        method = _uint(data, i, 2) & 15 if version in (1, 2) else 0
        i += 2 if version in (1, 2) else 0
        i += 2                                            # data_reference_index
        base = _uint(data, i, base_size)
        i += base_size
        extents = _uint(data, i, 2)
        i += 2
        chunks = []
        for _ in range(extents):
            i += index_size
            off, length = _uint(data, i, off_size), _uint(data, i + off_size, len_size)
            i += off_size + len_size
            if method == 0:
                lo = base + off
            elif method == 1 and idat is not None:
                lo = idat[0] + base + off
            else:
                return None
            hi = len(data) if length == 0 else lo + length
            if hi > len(data):
                return None
            chunks.append((lo, hi))
        kind = types.get(item)
        if kind in _HEIF_IMAGE_ITEMS:
            h.update(struct.pack(">I4s", item, kind))
            for lo, hi in chunks:
                h.update(data[lo:hi])
    if i > b:
        return None
    prp = parts.get(b"iprp")
    if prp is not None:
        for kind, x, y in _boxes(data, *prp):
            if kind == b"ipco":
                for pk, px, py in _boxes(data, x, y):
                    if pk in _HEIF_SHOWN_PROPS:
                        h.update(pk + data[px:py])
    return h.hexdigest()
