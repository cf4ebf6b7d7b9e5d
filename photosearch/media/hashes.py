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


def phash_variants(small: np.ndarray) -> list[int]:
    """imagehash.phash of the 32x32 grayscale ``small`` under the 4 rotations (np.rot90, k = 0..3)
    and the same after a left-right mirror, from one DCT: mirroring an axis of the pixels negates
    the DCT's odd coefficients along it and transposing the pixels transposes it, so every
    variant's 8x8 low-frequency block is a signed transpose of the first (8x fewer DCTs)."""
    import scipy.fftpack

    block = scipy.fftpack.dct(scipy.fftpack.dct(small, axis=0), axis=1)[:8, :8]
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
