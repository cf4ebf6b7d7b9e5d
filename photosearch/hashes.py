"""Perceptual hashes for near-duplicate detection, computed at index time.

pHash (imagehash) of the photo after trimming uniform borders (screenshot-style
padding, letterboxing), in all eight rotations and mirrorings, so a rotated or
mirrored copy matches through one of its variants; plus a dHash as a second,
differently-built signal.

Hashes are 64-bit unsigned integers (the 8x8 bit matrix, row-major, most
significant bit first), which is also the byte order of FAISS binary codes.
"""

from __future__ import annotations

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
    phash: tuple[int, ...]   # 8 variants: k quarter-turns (k=0..3), then the same mirrored; all 0: unusable
    dhash: int
    content: tuple[float, float] = (1.0, 1.0)  # width, height fraction left after trimming borders

    @property
    def usable(self) -> bool:
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
    small = np.asarray(trimmed.convert("L").resize((32, 32), Image.Resampling.LANCZOS))
    if min(image.size) < MIN_SIDE or float(small.std()) < FLAT_STD:
        # A blank or tiny image has no structure to hash: every such image would "match".
        return PerceptualHashes(phash=(0,) * 8, dhash=0)
    content = (trimmed.width / image.width, trimmed.height / image.height)
    variants = []
    for mirrored in (False, True):
        base = np.fliplr(small) if mirrored else small
        for k in range(4):
            arr = np.ascontiguousarray(np.rot90(base, k))
            variants.append(_bits_to_int(imagehash.phash(Image.fromarray(arr)).hash))
    dhash = _bits_to_int(imagehash.dhash(trimmed).hash)
    return PerceptualHashes(phash=tuple(variants), dhash=dhash, content=content)


def to_codes(values: np.ndarray) -> np.ndarray:
    """uint64 hashes -> (n, 8) uint8 FAISS binary codes (big-endian, matching the bit order)."""
    return np.ascontiguousarray(np.asarray(values, dtype=">u8").view(np.uint8).reshape(-1, 8))
