"""How a photo looks, cheaply: sharpness and exposure from a small grey copy.

Films leave out blurred and badly exposed shots. Sharpness is the variance of the Laplacian of
the grey levels (0-255) at :data:`SIDE` px on the long side (a blurred photo has little fine
detail left). Exposure is read from the histogram: an underexposed shot has nothing bright in
it (its 99th percentile grey level is low; a low-key photo of a black cat still has bright
eyes), an overexposed one has much of the frame blown to white. Measured at one fixed size, so
the figures of a decode and of a thumbnail compare.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from PIL import Image

#: The long side the statistics are measured at.
SIDE = 256
#: Below this sharpness a shot is blurred (the real photos of ../shared measure 68 to 2,800 at
#: this size; blurred by 1/150 of their width, 2 to 35).
BLURRED = 40.0
#: A shot whose 99th percentile grey level is below this is dark. One with more than BLOWN of its
#: pixels at white, or brighter than BRIGHT on average with more than BLOWN_BRIGHT at white, is
#: overexposed (the real photos of ../shared: mean grey at most 0.68, blown at most 0.21).
DARK = 0.2
BLOWN = 0.3
BRIGHT = 0.72
BLOWN_BRIGHT = 0.05


@dataclass(frozen=True)
class Quality:
    """Sharpness (variance of the Laplacian), brightness (mean, 0-1), highlight (99th
    percentile, 0-1) and blown (share of pixels at white, 0-1)."""

    sharpness: float
    brightness: float
    highlight: float
    blown: float

    @property
    def blurred(self) -> bool:
        return self.sharpness < BLURRED

    @property
    def dark(self) -> bool:
        return self.highlight < DARK

    @property
    def overexposed(self) -> bool:
        return self.blown > BLOWN or (self.brightness > BRIGHT and self.blown > BLOWN_BRIGHT)

    @property
    def usable(self) -> bool:
        """Sharp enough and well enough exposed for a film."""
        return not (self.blurred or self.dark or self.overexposed)

    @property
    def score(self) -> float:
        """0-1: sharper and better exposed is higher (a film's choice among similar shots)."""
        sharp = min(1.0, float(np.log1p(self.sharpness) / np.log1p(2000.0)))
        exposure = 1.0 - min(1.0, abs(self.brightness - 0.45) * 1.5) - self.blown
        return float(max(0.0, 0.6 * sharp + 0.4 * max(0.0, exposure)))


def measure(image: Image.Image) -> Quality:
    """The quality figures of ``image`` (any size or mode)."""
    from PIL import Image as PILImage

    grey = image.convert("L")
    k = SIDE / max(grey.size)
    if k < 1:
        grey = grey.resize((max(3, round(grey.width * k)), max(3, round(grey.height * k))),
                           PILImage.Resampling.BILINEAR, reducing_gap=2.0)
    a = np.asarray(grey, dtype=np.float32)
    if a.shape[0] < 3 or a.shape[1] < 3:
        return Quality(0.0, float(a.mean() / 255.0) if a.size else 0.0, 0.0, 0.0)
    lap = a[1:-1, :-2] + a[1:-1, 2:] + a[:-2, 1:-1] + a[2:, 1:-1] - 4.0 * a[1:-1, 1:-1]
    return Quality(float(lap.var()), float(a.mean() / 255.0), float(np.percentile(a, 99) / 255.0),
                   float(np.mean(a >= 251)))


__all__ = ["Quality", "measure", "SIDE", "BLURRED", "DARK", "BLOWN"]


#: The IJG (libjpeg) standard luminance quantization table (JPEG standard, Annex K), in natural
#: order as Pillow gives tables: every encoder's "quality" scales it (libjpeg, Pillow, cameras).
_IJG_LUMA = np.array([16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
                      14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
                      18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
                      49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99], dtype=np.float64)


def jpeg_quality(path: str) -> int | None:
    """The quality (1-100) a JPEG was saved at, estimated from its luminance quantization table
    against libjpeg's standard one (a re-encode at 60 reads about 60, a camera's original 90+);
    None for anything that is not a readable JPEG. Reads the header only."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            if im.format not in ("JPEG", "MPO"):
                return None
            tables = getattr(im, "quantization", None) or {}
    except Exception:
        return None
    luma = tables.get(0)
    if luma is None or len(luma) != 64:
        return None
    # The quality whose libjpeg table is closest (exact for libjpeg-scaled tables; the nearest
    # for an encoder's own).
    diff = np.abs(_ijg_tables() - np.asarray(luma, dtype=np.float64)).sum(axis=1)
    return int(np.argmin(diff)) + 1


_TABLES: list[np.ndarray] = []


def _ijg_tables() -> np.ndarray:
    """libjpeg's luminance table at each quality 1-100 (jcparam.c: scale, round, clamp to 1-255)."""
    if not _TABLES:
        q = np.arange(1, 101, dtype=np.float64)[:, None]
        scale = np.where(q < 50, 5000.0 / q, 200.0 - 2.0 * q)
        _TABLES.append(np.clip(np.floor((_IJG_LUMA[None, :] * scale + 50.0) / 100.0), 1, 255))
    return _TABLES[0]
