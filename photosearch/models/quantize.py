"""int8 image towers: onnxruntime's dynamic quantization of a CLIP model's MatMuls, kept only
when its vectors match fp32's.

On a CPU without VNNI (this project's 2-core machine, AVX2) the int8 image tower of a
ViT-B-32-256 runs 2.5-2.9x faster than fp32 at a mean cosine of 0.9998 to fp32's vectors
(benchmarks/RESULTS.md). Only the MatMul weights become int8; activations are quantized per
batch at run time ("dynamic"), so no calibration set is needed to build the file. A model the
quantization hurts (outlier weights, an unusual export) is caught by :func:`check_int8`, which
compares int8 with fp32 on real photos where there are some (the library's thumbnails) and on
fixed generated images: below :data:`MIN_MEAN_COSINE` on average or :data:`MIN_COSINE` on any
image, the int8 file is dropped and the model stays fp32, with the reason in model.json.

The text tower stays fp32: a query is one short sequence, whose cost is loading, not MatMuls.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from photosearch.errors import ModelError
from photosearch.models.clip import fp32_visual_file, has_int8, int8_file

#: The precisions a CLIP image tower runs in, and what ``--precision`` accepts besides "auto".
PRECISIONS = ("fp32", "int8")
#: An int8 tower is kept only if its vectors reach these cosines to fp32's (the issue's bar).
MIN_MEAN_COSINE = 0.99
MIN_COSINE = 0.97
#: Real photos (library thumbnails) used by the check at most; generated images are always added.
MAX_CHECK_PHOTOS = 48
GENERATED_IMAGES = 16


def generated_images(n: int = GENERATED_IMAGES, size: int = 320) -> list[Any]:
    """Fixed images with a photo's statistics (1/f spectrum, colour, edges), the same on every
    machine: what the check always has, even in a library without photos."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(20261204)
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.fftfreq(size)[None, :]
    falloff = 1.0 / np.maximum(np.hypot(fx, fy), 1.0 / size)
    images = []
    for _ in range(n):
        channels = []
        for _c in range(3):
            phase = np.exp(2j * np.pi * rng.random((size, size)))
            field = np.real(np.fft.ifft2(falloff * phase))
            channels.append((field - field.mean()) / (field.std() + 1e-9))
        mix = rng.normal(0, 0.6, (3, 3)) + np.eye(3)  # correlated channels, as in photos
        rgb = np.tensordot(mix, np.stack(channels), axes=1)
        rgb = 128 + 40 * rgb + rng.uniform(-40, 40, (3, 1, 1))
        img = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8).transpose(1, 2, 0))
        draw = ImageDraw.Draw(img)
        for _s in range(int(rng.integers(2, 6))):  # a few hard-edged objects
            x0, y0 = rng.integers(0, size - 40, 2)
            x1, y1 = x0 + rng.integers(20, size // 2), y0 + rng.integers(20, size // 2)
            colour = tuple(int(v) for v in rng.integers(0, 256, 3))
            (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((int(x0), int(y0), int(x1), int(y1)), fill=colour)
        images.append(img)
    return images


def library_photos(library_root: Path, limit: int = MAX_CHECK_PHOTOS) -> list[Path]:
    """Up to ``limit`` of the library's thumbnails (real photos, already small), spread over its folders."""
    thumbs = library_root / "thumbs"
    if not thumbs.is_dir():
        return []
    found = sorted(thumbs.glob("*/*-320.webp"))
    step = max(1, len(found) // limit)
    return found[::step][:limit]


def quantize(src: Path, dest: Path) -> None:
    """Write ``src``'s int8 version to ``dest``: MatMul weights int8 (per tensor, symmetric),
    activations quantized at run time. ModelError (one line) if onnxruntime cannot."""
    try:
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:  # pragma: no cover - onnx is a dependency
        raise ModelError(f"cannot quantize: {exc}") from None
    import logging

    dest.parent.mkdir(parents=True, exist_ok=True)
    quiet = logging.getLogger()
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # quantize_dynamic logs a pre-processing hint at WARNING
    try:
        quantize_dynamic(str(src), str(dest), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"],
                         # Files made by convert.py are pre-optimized: fused ops whose output
                         # types shape inference cannot give are float.
                         extra_options={"MatMulConstBOnly": True, "DefaultTensorType": onnx.TensorProto.FLOAT})
    except Exception as exc:
        dest.unlink(missing_ok=True)
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "hard link" in why:  # onnx's guard against hard-link attacks on external weight files
            why = "its weights file has several hard links, which onnx refuses to read (replace them by copies)"
        raise ModelError(f"cannot quantize {src.name}: {why[:200]}") from None
    finally:
        quiet.setLevel(level)


def check_int8(fp32: Any, int8: Any, images: Iterable[Any]) -> dict[str, Any]:
    """Compare two image encoders (the same model in fp32 and int8) on ``images``: the cosine of
    each image's two vectors; ``passed`` when the mean and the minimum reach the bars."""
    pixels = np.stack([fp32.preprocess(im) for im in images])
    a = np.concatenate([fp32.encode_pixels(pixels[i:i + 16]) for i in range(0, len(pixels), 16)])
    b = np.concatenate([int8.encode_pixels(pixels[i:i + 16]) for i in range(0, len(pixels), 16)])
    cos = np.sum(a * b, axis=1)
    mean, low = float(np.mean(cos)), float(np.min(cos))
    passed = bool(np.all(np.isfinite(cos))) and mean >= MIN_MEAN_COSINE and low >= MIN_COSINE
    out = {"passed": passed, "mean_cosine": round(mean, 5), "min_cosine": round(low, 5), "images": int(len(cos))}
    if not passed:
        out["reason"] = (f"int8 vectors too far from fp32's (mean cosine {mean:.4f}, minimum {low:.4f}; "
                         f"needs {MIN_MEAN_COSINE} and {MIN_COSINE})")
    return out


def add_int8(folder: Path, spec: dict[str, Any], *, photos: Iterable[Path] = (),
             say: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Build and check the int8 image tower of the model in ``folder``; record the outcome in
    ``spec["int8"]`` (the caller writes model.json). A file that fails its check is removed."""
    from PIL import Image

    from photosearch.models.clip import ClipModel

    say = say or (lambda _m: None)
    if spec.get("kind") == "fake":
        return spec
    dest = int8_file(folder, spec)
    had = has_int8(folder, spec)
    building = dest.with_name(dest.name + ".part")  # the tower in use stays until the new one passed
    say("making the int8 image tower (onnxruntime dynamic quantization)")
    try:
        quantize(fp32_visual_file(folder, spec), building)
    except ModelError as exc:
        if had:
            raise  # the tower that passed before stays, and so does its record
        spec["int8"] = {"passed": False, "reason": exc.message}
        say(f"int8: kept fp32 only: {exc.message}")
        return spec
    images = []
    for p in photos:
        try:
            with Image.open(p) as im:
                images.append(im.convert("RGB"))
        except (OSError, ValueError):
            continue  # a thumbnail being rewritten or damaged: the others and the generated ones do
    real = len(images)
    images += generated_images()
    fp32 = ClipModel(folder, spec)
    int8 = ClipModel(folder, spec, precision="int8", check=False, visual_file=building)
    try:
        result = check_int8(fp32, int8, images)
    except ModelError as exc:
        result = {"passed": False, "reason": f"the int8 tower does not run: {exc.message}"}
    except Exception as exc:  # onnxruntime refusing an op of the quantized graph
        result = {"passed": False, "reason": f"the int8 tower does not run: {str(exc).splitlines()[0][:200]}"}
    finally:
        fp32.close()
        int8.close()
    result["photos"] = real
    spec["int8"] = result
    if result["passed"]:
        building.replace(dest)
        say(f"int8 image tower checked against fp32 on {result['images']} images: "
            f"mean cosine {result['mean_cosine']:.4f}, minimum {result['min_cosine']:.4f}")
    else:
        building.unlink(missing_ok=True)
        dest.unlink(missing_ok=True)
        say(f"int8: kept fp32 only: {result['reason']}")
    return spec


__all__ = ["PRECISIONS", "MIN_MEAN_COSINE", "MIN_COSINE", "add_int8", "check_int8", "quantize", "has_int8",
           "int8_file", "generated_images", "library_photos"]
