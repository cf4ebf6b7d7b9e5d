"""Do two images show the same picture? Local features (OpenCV's ORB) matched between them and a
homography fitted with RANSAC: a crop, a screenshot, a framed or re-exposed copy keeps many
points in one geometric relation; two different photos, even of the same scene, keep few. Two
screenshots of one app keep many too (its interface), but none inside the photos they show.

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
#: Two screenshots of one app showing different photos share the app's bars, buttons and text,
#: which ORB matches by the hundred. Such a pair is refused when, on both sides, a picture-like
#: rectangle (media/hashes.py ``content_rects``) holds many of the image's keypoints (RICH_SHARE)
#: but fewer than MIN_INSIDE of the agreeing points, or INSIDE_SHARE of them. Measured on
#: bench_dupes.py's library (every pair sharing 50 points or more): the 115 pairs of app
#: screenshots of different photos refused, none of the 3,360 pairs of copies (every edit kind);
#: with tests/test_dupes_recall.py's app, none of 28 pairs of different photos confirmed (all
#: 28 without the rule).
MIN_INSIDE = 8
INSIDE_SHARE = 0.05
#: A rectangle counts when it holds at least this share of the image's keypoints: a textured
#: picture, not a plain sky (or a part a crop left out) that a copy's points rightly miss.
RICH_SHARE = 0.25
#: A pair found only by its edge strips (a copy cut from one side), or by a keypoint patch (a crop
#: anywhere), must also have MIN_SHARE of the keypoints of the image with fewer agree: many of a
#: cut copy's points are the original's, while two screenshots of one app agree over its sidebar
#: and bars only. Measured (ORB at
#: 320 px): 18 strips cut from ../shared photos (55% and 60% of the width at either side, and the
#: two Obama crops) kept 0.06-0.55 of their points, all but one 0.10 or more; 15 pairs of 4:3
#: tablet screenshots of one photo app showing different photos, 0.04-0.08 (43-56 points). (How
#: far the agreeing points spread tells nothing: a photo's points gather on its textured parts.)
MIN_SHARE = 0.1


@dataclass(frozen=True)
class Features:
    """An image's ORB keypoints (x, y in pixels of the matched image, whose width and height are
    ``size``), descriptors (n, 32) uint8, and the picture-like rectangle it holds (left, top,
    right, bottom as fractions) when that holds :data:`RICH_SHARE` of its keypoints, else None."""

    points: np.ndarray
    descriptors: np.ndarray | None
    size: tuple[int, int] = (1, 1)
    picture: tuple[float, float, float, float] | None = None


def features(image: "Image.Image") -> Features:
    """ORB features of ``image`` at :data:`MATCH_SIDE` on its shorter side."""
    import cv2
    from PIL import Image

    from photosearch.media.hashes import content_rects

    gray = np.asarray(image.convert("L"))
    k = MATCH_SIDE / max(1, min(gray.shape))
    if abs(k - 1) > 0.05:
        gray = cv2.resize(gray, (max(1, round(gray.shape[1] * k)), max(1, round(gray.shape[0] * k))),
                          interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR)
    orb = cv2.ORB_create(nfeatures=FEATURES, fastThreshold=10)
    kp, des = orb.detectAndCompute(gray, None)
    points = np.float32([p.pt for p in kp]).reshape(-1, 2)
    h, w = gray.shape
    rects = content_rects(Image.fromarray(gray), limit=1)
    # Only a textured picture counts: a plain sky holds few points, which a copy rightly misses.
    picture = rects[0] if rects and _inside(points, (w, h), rects[0]) >= RICH_SHARE * max(1, len(points)) else None
    return Features(points, des, (w, h), picture)


def _agreeing(a: Features, b: Features) -> tuple[np.ndarray, np.ndarray]:
    """The matched points of ``a`` and of ``b`` that one homography explains; empty when too few
    match."""
    import cv2

    none = (np.zeros((0, 2), np.float32), np.zeros((0, 2), np.float32))
    if a.descriptors is None or b.descriptors is None or len(a.descriptors) < 8 or len(b.descriptors) < 8:
        return none
    pairs: Any = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(a.descriptors, b.descriptors, k=2)
    good = [m[0] for m in pairs if len(m) == 2 and m[0].distance < RATIO * m[1].distance]
    if len(good) < MIN_INLIERS:
        return none
    src = a.points[[m.queryIdx for m in good]]
    dst = b.points[[m.trainIdx for m in good]]
    _, mask = cv2.findHomography(src, dst, cv2.RANSAC, RANSAC_PIXELS)
    if mask is None:
        return none
    keep = mask.ravel().astype(bool)
    return src[keep], dst[keep]


def inliers(a: Features, b: Features) -> int:
    """How many matched points of ``a`` and ``b`` one homography explains (0 when too few match)."""
    return len(_agreeing(a, b)[0])


def _inside(points: np.ndarray, size: tuple[int, int], rect: tuple[float, float, float, float]) -> int:
    x0, y0, x1, y1 = rect
    x, y = points[:, 0] / size[0], points[:, 1] / size[1]
    return int(((x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)).sum())


def same_picture(a: Features, b: Features, *, cut: bool = False) -> bool:
    """True when ``a`` and ``b`` show one picture: at least :data:`MIN_INLIERS` inliers, and,
    when both hold a textured picture-like rectangle, enough of them inside it on one side at
    least (not only the app's page around two different photos). With ``cut`` (a pair found
    by an edge strip or a keypoint patch), they must also be :data:`MIN_SHARE` of the fewer
    keypoints (a copy cut from the other, not only a shared strip or detail)."""
    src, dst = _agreeing(a, b)
    n = len(src)
    if n < MIN_INLIERS:
        return False
    if cut and n < MIN_SHARE * min(len(a.points), len(b.points)):
        return False
    need = max(MIN_INSIDE, INSIDE_SHARE * n)
    return not all(f.picture is not None and _inside(pts, f.size, f.picture) < need for f, pts in ((a, src), (b, dst)))
