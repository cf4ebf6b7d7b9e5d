"""Perceptual hashes for near-duplicate detection, computed at index time.

pHash (imagehash) of the photo after trimming uniform borders (screenshot-style
padding, letterboxing), in all eight rotations and mirrorings, so a rotated or
mirrored copy matches through one of its variants; plus a dHash as a second,
differently-built signal.

Window hashes (``window_hashes``) add the pHash of sub-windows of the photo (centred and corner
crops, and rectangles bounded by edges: a picture inside a screenshot or a frame), so that a crop
of a photo, or a screenshot holding it, has a whole-image hash close to one of them; and of
the photo's edge strips and of square patches around its strongest keypoints, which a copy cut
from one side, or cropped anywhere, keeps.

Hashes are 64-bit unsigned integers (the 8x8 bit matrix, row-major, most
significant bit first), which is also the byte order of FAISS binary codes.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from PIL import Image

#: Pixels differing from the border colour by more than this (0-255) are content.
TRIM_TOLERANCE = 24
#: A row or column is border when at most this fraction of it is content.
TRIM_CONTENT_FRACTION = 0.02


#: Images smaller than this, or flatter than this (grey-level std), get no usable hash.
MIN_SIDE = 16
FLAT_STD = 3.0


@dataclass(frozen=True)
class PerceptualHashes:
    """A photo's perceptual hashes: pHash of its 8 rotations/mirrors, dHash, and the content fraction kept."""

    phash: tuple[int, ...]   # 8 variants: k quarter-turns (k=0..3), then the same mirrored; all 0: unusable
    dhash: int
    content: tuple[float, float] = (1.0, 1.0)  # width, height fraction left after trimming borders

    @property
    def usable(self) -> bool:
        """False when the pHash is all zeros (unusable for matching)."""
        return any(self.phash)


def trim_borders(image: "Image.Image") -> "Image.Image":
    """Crop uniform borders (padding, letterbox bars); the image itself if there are none."""
    gray = np.asarray(image.convert("L"), dtype=np.int16)
    h, w = gray.shape
    if h < 8 or w < 8:
        return image
    corners = np.array([gray[0, 0], gray[0, -1], gray[-1, 0], gray[-1, -1]])
    background = int(np.median(corners))
    content = np.abs(gray - background) > TRIM_TOLERANCE
    rows = np.flatnonzero(content.mean(axis=1) > TRIM_CONTENT_FRACTION)
    cols = np.flatnonzero(content.mean(axis=0) > TRIM_CONTENT_FRACTION)
    if len(rows) == 0 or len(cols) == 0:
        return image
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    # Only trim real borders: keep the image when the box is tiny or nearly the whole frame.
    if (bottom - top) * (right - left) < 0.2 * h * w:
        return image
    if top <= 0.01 * h and h - bottom <= 0.01 * h and left <= 0.01 * w and w - right <= 0.01 * w:
        return image
    sx, sy = image.width / w, image.height / h
    return image.crop((int(left * sx), int(top * sy), int(right * sx), int(bottom * sy)))


def _bits_to_int(bits: np.ndarray) -> int:
    return int.from_bytes(np.packbits(bits.reshape(-1).astype(np.uint8)).tobytes(), "big")


def compute(image: "Image.Image") -> PerceptualHashes:
    """Hashes of an upright RGB image (any size; the indexer passes its drafted decode)."""
    import imagehash
    from PIL import Image

    trimmed = trim_borders(image)
    gray = trimmed.convert("L")
    small = np.asarray(gray.resize((32, 32), Image.Resampling.LANCZOS))
    if min(image.size) < MIN_SIDE or float(small.std()) < FLAT_STD:
        # A blank or tiny image has no structure to hash: every such image would "match".
        return PerceptualHashes(phash=(0,) * 8, dhash=0)
    content = (trimmed.width / image.width, trimmed.height / image.height)
    # imagehash.dhash(trimmed) is this, from the grayscale image made once above.
    dhash = _bits_to_int(imagehash.dhash(gray).hash)
    return PerceptualHashes(phash=tuple(phash_variants(small)), dhash=dhash, content=content)


@functools.cache
def _dct_rows() -> np.ndarray:
    """The first 8 rows of the 32-point DCT-II as ``scipy.fftpack.dct`` computes it (unnormalized,
    2 cos(pi k (2n + 1) / 64)): imagehash.phash's 8x8 low-frequency block of a 32x32 image x is
    ``C @ x @ C.T``. The same bits as scipy's transform on real photos (benchmarks/RESULTS.md),
    without importing scipy, which cost every `index` ~0.25 s of CPU (its import and the threads
    of its BLAS)."""
    k, n = np.arange(8)[:, None], np.arange(32)[None, :]
    return 2.0 * np.cos(np.pi * k * (2 * n + 1) / 64)


def _settled(block: np.ndarray) -> np.ndarray:
    """DCT coefficients rounded to 1e-6: a coefficient that is 0 in exact arithmetic (a tiny or
    symmetric image has many) then compares with the median the same way on every CPU and with
    any transform, instead of by the sign of its rounding error (~1e-11)."""
    return np.round(block, 6)


def phash_variants(small: np.ndarray) -> list[int]:
    """imagehash.phash of the 32x32 grayscale ``small`` under the 4 rotations (np.rot90, k = 0..3)
    and the same after a left-right mirror, from one DCT: mirroring an axis of the pixels negates
    the DCT's odd coefficients along it and transposing the pixels transposes it, so every
    variant's 8x8 low-frequency block is a signed transpose of the first (8x fewer DCTs)."""
    c = _dct_rows()
    block = _settled(c @ np.asarray(small, np.float64) @ c.T)
    odd = (-1.0) ** np.arange(8)
    out = []
    for mirrored in (False, True):
        b = block * odd[None, :] if mirrored else block
        for _ in range(4):
            out.append(_bits_to_int(b > np.median(b)))
            b = odd[:, None] * b.T  # the DCT block of np.rot90 of the pixels
    return out


def to_codes(values: np.ndarray) -> np.ndarray:
    """uint64 hashes -> (n, 8) uint8 FAISS binary codes (big-endian, matching the bit order)."""
    return np.ascontiguousarray(np.asarray(values, dtype=">u8").view(np.uint8).reshape(-1, 8))


# -- sub-windows: crops, screenshots and framed copies -----------------------------------------

#: Fixed windows (left, top, right, bottom, as fractions of the image): centred crops of 85% and
#: 70% of the side (72% and 49% of the area), and the four corners at 75% of the side.
FIXED_WINDOWS = ((0.075, 0.075, 0.925, 0.925), (0.15, 0.15, 0.85, 0.85),
                 (0.0, 0.0, 0.75, 0.75), (0.25, 0.0, 1.0, 0.75), (0.0, 0.25, 0.75, 1.0), (0.25, 0.25, 1.0, 1.0))
#: Picture-like rectangles found by their edges (a photo inside a screenshot or a frame), at most.
CONTENT_WINDOWS = 3
#: Shapes (width / height) photos are reframed to for another screen or site: a square, 4:5 and
#: 9:16 portraits, 16:9. Each gets the largest centred window of that shape, unless the photo
#: has it already (within :data:`SAME_SHAPE`: the whole image is that window).
RESHAPED = (1.0, 4 / 5, 9 / 16, 16 / 9)
SAME_SHAPE = 1.06
#: Edge strips: the left and right strips at full height, as wide as this share of the height,
#: and the top and bottom strips at full width, as tall as this share of the width. A copy cut
#: from one side of a photo (a partial copy, one person cropped out of a group) keeps that
#: side's strip at the same scale, whatever its width. A strip is made only where it is at most
#: STRIP_MAX of the image across (else it is nearly the whole image); the ends of an image more
#: than STRIP_SHAPE times as tall as wide (a phone's screenshot: its app's bars, alike in every
#: screenshot of the app) and the sides of one that much wider than tall (a screen's sidebars)
#: are not.
STRIP_SHARE = 0.3
STRIP_MAX = 0.8
STRIP_SHAPE = 1.6
STRIPS = 4
#: Keypoint patches: a copy cropped anywhere (an off-centre half of the photo, a detail) keeps
#: the photo's strongest blobs inside it, each at the same place in the picture and the same size
#: relative to it, wherever the crop's edges fall (windows need the edges). Up to PATCHES of the
#: strongest SIFT keypoints, found at PATCH_DETECT_SIDE px on the longer side, each hashed over
#: a square PATCH_SCALE times the keypoint's size (at least PATCH_MIN_SIDE px of the hashed
#: image, and wholly inside it), upright. Measured on ../shared's photos (bench_dupes.py's
#: off-centre crop to half the area, and the same crop halved in size): a patch of the crop
#: within 4 bits of one of the original's for 16 of 16 photos each; no two patches of unrelated
#: photos within 6 bits among ~100 photos.
PATCHES = 12
PATCH_DETECT_SIDE = 160
PATCH_SCALE = 4.0
PATCH_MIN_SIDE = 16
#: Hashes per photo: the whole image as it is (borders not trimmed: a crop of a photo on a plain
#: background would otherwise lose its edges), the fixed windows, the found rectangles, the
#: reshaped windows, the edge strips, then the keypoint patches (0 where none). A whole image is
#: looked for among the first SEARCHED_WINDOWS; a strip only among the same strips of other
#: photos; a patch among the patches of other photos. Photos indexed before the reshaped
#: windows, the strips and the patches have the first EARLIER_WINDOWS (before the patches,
#: the first STRIPS_END).
SEARCHED_WINDOWS = 1 + len(FIXED_WINDOWS) + CONTENT_WINDOWS + len(RESHAPED)
STRIPS_END = SEARCHED_WINDOWS + STRIPS
WINDOWS = STRIPS_END + PATCHES
EARLIER_WINDOWS = SEARCHED_WINDOWS - len(RESHAPED)
#: A row (column) is an edge where this share of its pixels differ from the next row's by more than
#: EDGE_STEP grey levels (the border of a picture pasted into a screenshot, a frame's inner edge).
EDGE_SHARE = 0.5
EDGE_STEP = 20
#: A row (column) belongs to a picture on a plain page when this share of its pixels differ from
#: the page's colour by more than TRIM_TOLERANCE.
BAND_SHARE = 0.6
#: Longer side (at least) windows are hashed from.
WINDOW_SIDE = 240
#: Longer side the edges are looked for at, at most (the pixels hashes get are smaller than that).
EDGE_SIDE = 256


def window_hashes(image: "Image.Image") -> tuple[int, ...]:
    """pHashes (upright, variant 0) of the whole ``image`` untrimmed, then of its sub-windows
    (:data:`WINDOWS` in all; 0 for a flat or missing one): a crop of this photo, or a photo inside
    this one (a screenshot of it, a framed copy), has a whole-image hash close to one of them; a
    copy cut from one side shares an edge strip, and a copy cropped anywhere a keypoint patch."""
    from PIL import Image

    gray = image.convert("L")
    # A 32x32 hash needs no more than ~256 px: LANCZOS's cost grows with the pixels it reads.
    k = max(1, max(gray.size) // WINDOW_SIDE)
    if k > 1:
        gray = gray.reduce(k)
    w, h = gray.size
    content = content_rects(gray)
    rects = [(0.0, 0.0, 1.0, 1.0), *FIXED_WINDOWS, *content, *[None] * (CONTENT_WINDOWS - len(content)),
             *reshaped_rects(w, h), *strip_rects(w, h)]
    boxes: list[tuple[float, float, float, float] | None] = [
        None if r is None else (round(r[0] * w), round(r[1] * h), round(r[2] * w), round(r[3] * h)) for r in rects]
    boxes += patch_boxes(gray)
    smalls = np.zeros((WINDOWS, 32, 32))
    usable = np.zeros(WINDOWS, dtype=bool)
    for i, box in enumerate(boxes):
        if box is None:
            continue
        if min(box[2] - box[0], box[3] - box[1]) >= MIN_SIDE:
            # (resize's box argument reads the window straight from the image: no crop copy.)
            smalls[i] = np.asarray(gray.resize((32, 32), Image.Resampling.LANCZOS, box=box))
            usable[i] = float(smalls[i].std()) >= FLAT_STD
    # imagehash.phash of each (variant 0 of phash_variants), all windows in one product.
    c = _dct_rows()
    blocks = _settled(c @ smalls @ c.T).reshape(WINDOWS, 64)
    bits = blocks > np.median(blocks, axis=1, keepdims=True)
    return tuple(_bits_to_int(b) if ok else 0 for b, ok in zip(bits, usable))


_SIFT = threading.local()


def patch_boxes(gray: "Image.Image") -> list[tuple[float, float, float, float] | None]:
    """The squares (pixels of ``gray``, left, top, right, bottom) of the :data:`PATCHES`
    strongest keypoints of ``gray`` (OpenCV's SIFT detector, by response; one per place), None
    for each missing: what :func:`window_hashes` hashes as the keypoint patches."""
    import cv2

    a = np.asarray(gray)
    h, w = a.shape
    f = min(1.0, PATCH_DETECT_SIDE / max(w, h))
    if f < 1:
        a = cv2.resize(a, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
    sift = getattr(_SIFT, "detector", None)
    if sift is None:   # one a thread (analysis runs on several): made once, not per photo
        sift = _SIFT.detector = cv2.SIFT_create(nfeatures=3 * PATCHES)
    points = sorted(((-k.response, k.pt[0] / f, k.pt[1] / f, k.size / f) for k in sift.detect(a, None)))
    out: list[tuple[float, float, float, float]] = []
    for _, x, y, size in points:
        r = size * PATCH_SCALE / 2
        if 2 * r < PATCH_MIN_SIDE or x - r < 0 or y - r < 0 or x + r > w or y + r > h:
            continue
        # SIFT gives a point once per orientation: one patch per place.
        if any(abs(x - (b[0] + b[2]) / 2) < 2 and abs(y - (b[1] + b[3]) / 2) < 2 for b in out):
            continue
        out.append((x - r, y - r, x + r, y + r))
        if len(out) == PATCHES:
            break
    return [*out, *[None] * (PATCHES - len(out))]


def reshaped_rects(w: int, h: int) -> list[tuple[float, float, float, float] | None]:
    """For each shape of :data:`RESHAPED`, the largest centred window of it in a ``w`` x ``h``
    image (fractions), or None where the image has that shape already: a copy reframed to that
    shape (an Instagram square, a 9:16 story, a 16:9 screen) has a whole-image hash close to it."""
    out: list[tuple[float, float, float, float] | None] = []
    for shape in RESHAPED:
        ratio = (w / h) / shape
        if max(ratio, 1 / ratio) < SAME_SHAPE:
            out.append(None)
        elif ratio > 1:    # wider than the shape: the full height, the middle of the width
            out.append(((1 - 1 / ratio) / 2, 0.0, (1 + 1 / ratio) / 2, 1.0))
        else:
            out.append((0.0, (1 - ratio) / 2, 1.0, (1 + ratio) / 2))
    return out


def strip_rects(w: int, h: int) -> list[tuple[float, float, float, float] | None]:
    """The left, right, top and bottom strips of a ``w`` x ``h`` image (fractions), None where a
    strip would be more than :data:`STRIP_MAX` of the image across, and for the sides of an image
    :data:`STRIP_SHAPE` times wider than tall, or the ends of one that much taller than wide."""
    across, down = STRIP_SHARE * h / w, STRIP_SHARE * w / h
    sides = [(0.0, 0.0, across, 1.0), (1.0 - across, 0.0, 1.0, 1.0)] \
        if across <= STRIP_MAX and w <= STRIP_SHAPE * h else [None, None]
    ends = [(0.0, 0.0, 1.0, down), (0.0, 1.0 - down, 1.0, 1.0)] \
        if down <= STRIP_MAX and h <= STRIP_SHAPE * w else [None, None]
    return [*sides, *ends]


def content_rects(gray: "Image.Image", limit: int = CONTENT_WINDOWS) -> list[tuple[float, float, float, float]]:
    """Rectangles bounded by full-span edges (fractions of the image), the best ``limit``: where a
    screenshot or a frame holds a picture. Each side scores its edge's share (the image's own
    border a quarter); rectangles under 15% or over 92% of the image are left out."""
    import itertools

    from PIL import Image

    w, h = gray.size
    k = min(1.0, EDGE_SIDE / max(w, h))
    g = np.asarray(gray.resize((max(1, round(w * k)), max(1, round(h * k))), Image.Resampling.BILINEAR),
                   dtype=np.int16)
    gh, gw = g.shape
    if gh < 8 or gw < 8:
        return []

    def edges(share: np.ndarray, size: int) -> dict[int, float]:
        found = {0: 0.25, size: 0.25}
        for i in np.flatnonzero(share > EDGE_SHARE):
            p = int(i) + 1
            near = next((q for q in found if abs(q - p) <= 2), None)   # one edge (blurred over rows), not two
            if near is None:
                found[p] = float(share[i])
            elif share[i] > found[near] and near not in (0, size):
                del found[near]
                found[p] = float(share[i])
        return found

    band = _content_band(g)
    ys = edges((np.abs(np.diff(g, axis=0)) > EDGE_STEP).mean(axis=1), gh)
    xs = edges((np.abs(np.diff(g, axis=1)) > EDGE_STEP).mean(axis=0), gw)
    if len(ys) > 32 or len(xs) > 32:   # a busy pattern (stripes, text): no picture edges in it
        return [band] if band else []
    rects = []
    for y0, y1 in itertools.combinations(sorted(ys), 2):
        for x0, x1 in itertools.combinations(sorted(xs), 2):
            area = (y1 - y0) * (x1 - x0) / (gh * gw)
            if 0.15 <= area <= 0.92:
                rects.append((ys[y0] + ys[y1] + xs[x0] + xs[x1] + 0.01 * area, (x0 / gw, y0 / gh, x1 / gw, y1 / gh)))
    rects.sort(reverse=True)
    found = [r for _, r in rects]
    if band is not None:
        # The band first, unless an edge-bounded rectangle already is it (within 2% a side).
        found = [band, *(r for r in found if max(abs(a - b) for a, b in zip(r, band)) > 0.02)]
    return found[:limit]


def _content_band(g: np.ndarray) -> tuple[float, float, float, float] | None:
    """A picture on a plain page (a photo in an app's screenshot, a chat bubble): the longest run
    of rows in which most pixels differ from the page's colour (the commonest grey of the image's
    outer ring, its four sides weighing the same), narrowed to the columns in which most of those
    rows' pixels do. None when there is no such band of 15-92% of the image. Found where the
    picture's own edge is too faint for ``edges`` (a light sky against a white page)."""
    gh, gw = g.shape
    sides = [g[0], g[-1], g[:, 0], g[:, -1]]
    ring = np.concatenate(sides)
    # The page's colour: the ring's commonest grey (16 levels), each side weighing the same: a tall
    # picture spans most of the left and right sides, whose pixels would otherwise outnumber the
    # page's (a portrait photo in a phone's screenshot).
    votes = sum(np.bincount(np.clip(side, 0, 255) // 16, minlength=16) / len(side) for side in sides)
    common = int(np.argmax(votes))
    page = int(np.median(ring[np.clip(ring, 0, 255) // 16 == common]))
    content = np.abs(g - page) > TRIM_TOLERANCE
    share = content.mean(axis=1)
    busy = share >= BAND_SHARE
    best, start, gap = (0, 0), None, 0
    for y in range(gh + 1):
        if y < gh and busy[y]:
            start, gap = (y if start is None else start), 0
        elif start is not None:
            gap += 1
            if y == gh or gap > 2:   # a row or two of the picture may match the page
                end = y - gap + 1
                if end - start > best[1] - best[0]:
                    best = (start, end)
                start, gap = None, 0
    y0, y1 = best
    if y1 - y0 < 8:
        return None
    # A light sky or a dark ground at the picture's edge: rows still partly unlike the page.
    while y0 > 0 and share[y0 - 1] >= BAND_SHARE / 2.5:
        y0 -= 1
    while y1 < gh and share[y1] >= BAND_SHARE / 2.5:
        y1 += 1
    cols = np.flatnonzero(content[y0:y1].mean(axis=0) >= BAND_SHARE)
    if len(cols) == 0:
        return None
    x0, x1 = int(cols[0]), int(cols[-1]) + 1
    area = (y1 - y0) * (x1 - x0) / (gh * gw)
    return (x0 / gw, y0 / gh, x1 / gw, y1 / gh) if 0.15 <= area <= 0.92 else None
