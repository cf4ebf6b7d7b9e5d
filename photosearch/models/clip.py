"""CLIP on onnxruntime: preprocessing, image and text embeddings.

Preprocessing reproduces open_clip's torchvision pipeline on PIL images
(resize the shorter side with bicubic, center crop, normalize), so the ONNX
path gives the embeddings open_clip would give for the same weights.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from photosearch.errors import ModelError
from photosearch.models.base import LazySession

#: The files of an installed model folder, besides model.json.
MODEL_FILES = ("visual.onnx", "visual.onnx.data", "textual.onnx", "textual.onnx.data", "tokenizer.json")

_INTERPOLATION = ("bicubic", "bilinear", "nearest", "lanczos")


def read_spec(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((folder / "model.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"model folder {folder} has no model.json (reinstall it with `photosearch models import`)") from None
    except (OSError, ValueError) as exc:
        raise ModelError(f"model folder {folder} has an unreadable model.json: {exc}") from None


class ClipModel:
    """One installed CLIP model. Sessions load lazily; pass ``visual_session``/``text_session`` to inject."""

    def __init__(
        self,
        folder: Path,
        spec: dict[str, Any] | None = None,
        *,
        threads: int | None = None,
        visual_session: Any = None,
        text_session: Any = None,
        low_memory_text: bool = False,
    ) -> None:
        self.folder = Path(folder)
        self.spec = spec if spec is not None else read_spec(self.folder)
        self.name: str = self.folder.name  # the installed name (the folder), whatever model.json says
        self.image_size: int = int(self.spec["image_size"])
        self.embed_dim: int = int(self.spec["embed_dim"])
        self._mean = np.asarray(self.spec["mean"], dtype=np.float32).reshape(3, 1, 1)
        self._std = np.asarray(self.spec["std"], dtype=np.float32).reshape(3, 1, 1)
        interp = self.spec.get("interpolation", "bicubic")
        self._interp = interp if interp in _INTERPOLATION else "bicubic"
        self._visual = LazySession(self.folder / "visual.onnx", threads=threads, session=visual_session)
        self._text = LazySession(self.folder / "textual.onnx", threads=threads, session=text_session,
                                 low_memory=low_memory_text)
        self._tokenizer: Any = None

    # -- images ------------------------------------------------------------------------

    def preprocess(self, image: Any) -> np.ndarray:
        """An upright RGB PIL image -> float32 array (3, S, S), normalized as the model was trained."""
        from PIL import Image

        resample = getattr(Image.Resampling, self._interp.upper())
        size = self.image_size
        if image.mode != "RGB":
            image = image.convert("RGB")
        mode = self.spec.get("resize_mode", "shortest")
        w, h = image.size
        if mode == "squash":
            image = image.resize((size, size), resample)
        elif mode == "longest":
            scale = size / max(w, h)
            nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
            canvas = Image.new("RGB", (size, size), (0, 0, 0))
            canvas.paste(image.resize((nw, nh), resample), ((size - nw) // 2, (size - nh) // 2))
            image = canvas
        else:
            # torchvision Resize(int): shorter side -> size, longer side truncated like int().
            if w <= h:
                nw, nh = size, int(size * h / w)
            else:
                nw, nh = int(size * w / h), size
            if (nw, nh) != (w, h):
                image = image.resize((nw, nh), resample)
            # torchvision CenterCrop rounding.
            left = int(round((nw - size) / 2.0))
            top = int(round((nh - size) / 2.0))
            if (nw, nh) != (size, size):
                image = image.crop((left, top, left + size, top + size))
        arr = np.asarray(image, dtype=np.float32).transpose(2, 0, 1) / np.float32(255.0)
        return (arr - self._mean) / self._std

    def encode_pixels(self, pixels: np.ndarray, normalize: bool = True) -> np.ndarray:
        """(N, 3, S, S) float32 -> (N, D) embeddings."""
        out = self._visual.run({"pixels": np.ascontiguousarray(pixels, dtype=np.float32)})
        return _normalize(out) if normalize else out

    def encode_images(self, images: list[Any]) -> np.ndarray:
        return self.encode_pixels(np.stack([self.preprocess(im) for im in images]))

    # -- text ----------------------------------------------------------------------------

    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            from photosearch.models.tokenizer import ClipTokenizer

            self._tokenizer = ClipTokenizer(self.folder / "tokenizer.json", int(self.spec.get("context_length", 77)))
        return self._tokenizer

    def tokens(self, texts: list[str]) -> np.ndarray:
        ids = self.tokenizer()(texts)
        ctx = int(self.spec.get("context_length", 77))
        # Trimmed models take any length up to the context; pad only to the longest text.
        length = max(len(t) for t in ids) if self.spec.get("text_trim") else ctx
        out = np.zeros((len(ids), length), dtype=np.int64)
        for i, t in enumerate(ids):
            out[i, : len(t)] = t
        return out

    def encode_text(self, texts: list[str], normalize: bool = True) -> np.ndarray:
        out = self._text.run({"tokens": self.tokens(texts)})
        return _normalize(out) if normalize else out

    def close(self) -> None:
        self._visual.close()
        self._text.close()


def _normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)
