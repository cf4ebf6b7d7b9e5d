"""Thumbnails (the web UI shows them), made while indexing or on demand and cached in the library as WebP.

``<library>/thumbs/<hash[:2]>/<content hash>-<size>.webp``: keyed by the photo's bytes, so a
moved photo keeps its thumbnail and a changed one gets a new one. EXIF orientation is applied
(decode does it); HEIC and RAW (embedded preview) work like everywhere else; a video's is
its first sampled frame, and a face's in a video is cut from the frame it was seen in.
"""

from __future__ import annotations

import os
from pathlib import Path

from photosearch.files import os_path

SIZES = (160, 320, 640)


def _decode(path: str, size: int, t: float | None = None):  # type: ignore[no-untyped-def]
    from photosearch.media.decode import decode
    from photosearch.media.video import frame_at, is_video

    if is_video(path):  # a video's thumbnail is its frame at t (its first by default)
        return frame_at(path, t or 0.0, min_side=size)
    with open(os_path(path), "rb") as f:
        data = f.read()
    return decode(data, ext=os.path.splitext(path)[1].lower(), min_side=size).image


def _save(img, dest: Path) -> None:  # type: ignore[no-untyped-def]
    from photosearch.files import replacing

    dest.parent.mkdir(parents=True, exist_ok=True)
    # A cache: no fsync (a thumbnail lost in a power cut is made again). Each call gets a
    # temporary name of its own, so two threads making one thumbnail never share one.
    try:
        with replacing(dest, durable=False) as tmp, open(tmp, "wb") as f:
            # method 0: a third less CPU than 2 (2.0 against 3.0 ms for a 320 px thumbnail, each
            # photo indexed makes one), files ~14% larger, no worse to the eye (PSNR 36.6 against
            # 36.3 dB on real photos; benchmarks/RESULTS.md, session 18).
            img.save(f, "WEBP", quality=80, method=0)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def thumb_path(library_root: Path, content_hash: str, size: int = 320) -> Path:
    """Where the WebP thumbnail of a content hash at ``size`` is cached in the library."""
    return library_root / "thumbs" / content_hash[:2] / f"{content_hash}-{size}.webp"


def save_from_image(library_root: Path, content_hash: str, image, size: int = 320) -> None:  # type: ignore[no-untyped-def]
    """Make a photo's thumbnail from an image already decoded (the indexer's), if missing."""
    dest = thumb_path(library_root, content_hash, size)
    if dest.is_file():
        return
    img = image.copy()
    # Box-reduce first, then resample (reducing_gap 1.0): 2.7x less CPU than the default 2.0
    # for a 1000 px decode, pixels within ~1 level of it on average (measured).
    img.thumbnail((size, size), reducing_gap=1.0)
    _save(img, dest)


def photo_thumb(library_root: Path, path: str, content_hash: str, size: int) -> Path:
    """The cached thumbnail of a photo (made now if missing); raises DecodeError/OSError."""
    dest, img = _cached_or_made(library_root, path, content_hash, size)
    if img is not None:
        _save(img, dest)
    return dest


def _cached_or_made(library_root: Path, path: str, content_hash: str, size: int):  # type: ignore[no-untyped-def]
    """(where the thumbnail of the nearest cached size lives, None if it is there, else the image made now)."""
    size = min(SIZES, key=lambda s: abs(s - size))
    dest = thumb_path(library_root, content_hash, size)
    if dest.is_file():
        return dest, None
    img = _decode(path, size)
    img.thumbnail((size, size))
    return dest, img


def photo_thumb_image(library_root: Path, path: str, content_hash: str, size: int):  # type: ignore[no-untyped-def]
    """The photo's thumbnail as a loaded PIL image: the cached one, else made now and cached
    where the library can be written (a read-only library still gets its image, uncached);
    raises DecodeError/OSError for a photo that cannot be read."""
    from PIL import Image

    dest, img = _cached_or_made(library_root, path, content_hash, size)
    if img is None:
        with Image.open(dest) as im:
            im.load()
            return im
    try:
        _save(img, dest)
    except OSError:
        pass  # a cache only
    return img


def face_thumb(library_root: Path, path: str, content_hash: str, face: dict, size: int = 160) -> Path:
    """A square crop around one face (with some margin), cached like photo thumbnails."""
    dest = library_root / "thumbs" / content_hash[:2] / f"{content_hash}-face{face['id']}-{size}.webp"
    if dest.is_file():
        return dest
    img = _decode(path, size * 3, face.get("t"))
    w, h = img.size
    cx, cy = (face["x"] + face["w"] / 2) * w, (face["y"] + face["h"] / 2) * h
    side = max(face["w"] * w, face["h"] * h) * 1.5
    crop = img.crop((round(cx - side / 2), round(cy - side / 2), round(cx + side / 2), round(cy + side / 2)))
    _save(crop.resize((size, size)), dest)
    return dest
