"""Do two images show the same picture? Local features (OpenCV's ORB) matched between them and a
homography fitted with RANSAC: a crop, a screenshot, a framed or re-exposed copy keeps many
points in one geometric relation; two different photos, even of the same scene, keep few.

Used to confirm duplicate candidates that hashes alone would not trust (query/dupes.py); run
only on those candidate pairs, never across a library.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from PIL import Image

#: Shorter side the images are matched at (the 320 px thumbnails are read as they are).
MATCH_SIDE = 320
FEATURES = 1000
#: Lowe's ratio test on the two nearest descriptors.
RATIO = 0.8
#: Points that agree with one homography (within RANSAC_PIXELS) for two images to be one picture.
#: Measured on ../shared photos through benchmarks/bench_dupes.py's edits, on 640 px thumbnails:
#: copies kept 52 or more (crops to half the area, screenshots, frames, exposure, JPEG 30; all
#: but one 128 or more), unrelated photos at most 32. A mirror image matches nothing (ORB's
#: descriptors are not mirror-invariant): hashes find those.
MIN_INLIERS = 50
RANSAC_PIXELS = 5.0


@dataclass(frozen=True)
class Features:
    """An image's ORB keypoints (x, y) and descriptors (n, 32) uint8."""

    points: np.ndarray
    descriptors: np.ndarray | None


def features(image: "Image.Image") -> Features:
    """ORB features of ``image`` at :data:`MATCH_SIDE` on its shorter side."""
    import cv2

    gray = np.asarray(image.convert("L"))
    k = MATCH_SIDE / max(1, min(gray.shape))
    if abs(k - 1) > 0.05:
        gray = cv2.resize(gray, (max(1, round(gray.shape[1] * k)), max(1, round(gray.shape[0] * k))),
                          interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR)
    orb = cv2.ORB_create(nfeatures=FEATURES, fastThreshold=10)
    kp, des = orb.detectAndCompute(gray, None)
    return Features(np.float32([p.pt for p in kp]).reshape(-1, 2), des)


def inliers(a: Features, b: Features) -> int:
    """How many matched points of ``a`` and ``b`` one homography explains (0 when too few match)."""
    import cv2

    if a.descriptors is None or b.descriptors is None or len(a.descriptors) < 8 or len(b.descriptors) < 8:
        return 0
    pairs: Any = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(a.descriptors, b.descriptors, k=2)
    good = [m[0] for m in pairs if len(m) == 2 and m[0].distance < RATIO * m[1].distance]
    if len(good) < MIN_INLIERS:
        return 0
    src = a.points[[m.queryIdx for m in good]]
    dst = b.points[[m.trainIdx for m in good]]
    _, mask = cv2.findHomography(src, dst, cv2.RANSAC, RANSAC_PIXELS)
    return 0 if mask is None else int(mask.sum())


def same_picture(a: Features, b: Features) -> bool:
    """True when ``a`` and ``b`` show one picture (at least :data:`MIN_INLIERS` inliers)."""
    return inliers(a, b) >= MIN_INLIERS
