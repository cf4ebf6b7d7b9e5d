"""CLIP on onnxruntime: preprocessing, image and text embeddings.

Preprocessing reproduces open_clip's torchvision pipeline on PIL images
(resize the shorter side with bicubic, center crop, normalize), so the ONNX
path gives the embeddings open_clip would give for the same weights.

Two folder layouts run here: photosearch's own (``visual.onnx``, ``textual.onnx``,
CLIP-BPE ``tokenizer.json``; made by convert.py) and Immich's (``visual/model.onnx``,
``textual/model.onnx``, a HuggingFace ``textual/tokenizer.json``; ``"layout": "immich"``
in model.json). Input names, dtypes and fixed batch/sequence sizes are read from the
ONNX sessions, so both export conventions (``pixels``/``tokens`` int64 with dynamic
axes, Immich's ``image``/``text`` int32 or ``input_ids``+``attention_mask`` at batch 1)
run through the same code.
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

#: ``layout`` in model.json of a model kept in Immich's folder layout.
IMMICH_LAYOUT = "immich"
#: The files an Immich model folder must have (its ONNX files may have external data beside them).
IMMICH_FILES = ("config.json", "visual/model.onnx", "visual/preprocess_cfg.json", "textual/model.onnx",
                "textual/tokenizer.json", "textual/tokenizer_config.json")

_ONNX_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
                "tensor(int64)": np.int64, "tensor(int32)": np.int32}


def model_files(spec: dict[str, Any]) -> tuple[str, ...]:
    """The files (relative paths) a model folder of this spec's layout must hold besides model.json."""
    if spec.get("kind") == "fake":  # models/fakes.py: model.json is all there is
        return ()
    return IMMICH_FILES if spec.get("layout") == IMMICH_LAYOUT else MODEL_FILES


def int8_file(folder: Path, spec: dict[str, Any]) -> Path:
    """Where a model folder keeps its int8 image tower (beside the fp32 one, in either layout)."""
    if spec.get("layout") == "immich":
        return folder / "visual" / "model.int8.onnx"
    return folder / "visual.int8.onnx"


def fp32_visual_file(folder: Path, spec: dict[str, Any]) -> Path:
    """The fp32 image tower of a model folder (either layout)."""
    return folder / ("visual/model.onnx" if spec.get("layout") == "immich" else "visual.onnx")


def has_int8(folder: Path, spec: dict[str, Any]) -> bool:
    """Whether the folder holds an int8 image tower that passed its check."""
    return bool((spec.get("int8") or {}).get("passed")) and int8_file(folder, spec).is_file()


_INTERPOLATION = ("bicubic", "bilinear", "nearest", "lanczos")


def read_spec(folder: Path) -> dict[str, Any]:
    """The model.json of an installed model folder (ModelError, one line, when missing or unreadable)."""
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
        precision: str = "fp32",
        device: str = "cpu",
        check: bool = True,
        visual_file: Path | None = None,
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
        self.immich = self.spec.get("layout") == IMMICH_LAYOUT
        if self.immich:
            visual, textual = "visual/model.onnx", "textual/model.onnx"
        else:
            visual, textual = "visual.onnx", "textual.onnx"
        #: The image tower's precision: "fp32", or "int8" (models/quantize.py; the text tower stays fp32).
        self.precision = precision
        if precision == "int8":
            if check and not has_int8(self.folder, self.spec):
                why = (self.spec.get("int8") or {}).get("reason") or "it has none yet"
                raise ModelError(f"model {self.name} has no int8 image tower that passed its check: {why}")
            visual = str((visual_file or int8_file(self.folder, self.spec)).relative_to(self.folder))
        elif precision != "fp32":
            raise ModelError(f"unknown precision {precision!r}: fp32 or int8")
        #: Where inference runs: "cpu" or "cuda" (onnxruntime-gpu's CUDA provider).
        self.device = device
        #: onnxruntime's threads per call (None: one per CPU).
        self.threads = threads
        self._visual = LazySession(self.folder / visual, threads=threads, session=visual_session, device=device)
        # Low-memory loading skips graph optimization because convert.py stores pre-optimized
        # files; Immich's are not, so they are optimized when loaded.
        self._text = LazySession(self.folder / textual, threads=threads, session=text_session,
                                 low_memory=low_memory_text and not self.immich, device=device)
        self._tokenizer: Any = None
        self._visual_io: _Inputs | None = None
        self._text_io: _Inputs | None = None

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

    def load_image_tower(self) -> None:
        """Create the image tower's session now (ModelError/DeviceError now, not at the first batch)."""
        self._visual.get()

    def encode_pixels(self, pixels: np.ndarray, normalize: bool = True) -> np.ndarray:
        """(N, 3, S, S) float32 -> (N, D) embeddings."""
        if self._visual_io is None:
            self._visual_io = _Inputs.of(self._visual.get(), "pixels", np.float32)
        io = self._visual_io
        out = _run(self._visual, {io.names[0]: np.ascontiguousarray(pixels, dtype=io.dtypes[0])}, io.batch)
        return _normalize(out) if normalize else out

    def encode_images(self, images: list[Any]) -> np.ndarray:
        """Normalized embeddings of upright images, one row per image."""
        return self.encode_pixels(np.stack([self.preprocess(im) for im in images]))

    # -- text ----------------------------------------------------------------------------

    def _text_inputs(self) -> _Inputs:
        if self._text_io is None:
            self._text_io = _Inputs.of(self._text.get(), "tokens", np.int64)
        return self._text_io

    def _context_length(self) -> int:
        # A sequence length fixed in the ONNX graph wins: it is the only one the model accepts.
        fixed = self._text_inputs().sequence if self.immich else None
        return int(fixed or self.spec.get("context_length", 77))

    def tokenizer(self) -> Any:
        """The model's tokenizer: CLIP BPE (photosearch layout) or HuggingFace tokenizers (Immich layout)."""
        if self._tokenizer is None:
            if self.immich:
                from photosearch.models.tokenizer import HFTokenizer

                self._tokenizer = HFTokenizer(self.folder / "textual" / "tokenizer.json", self._context_length(),
                                              str(self.spec.get("pad_token", "<|endoftext|>")),
                                              canonicalize=self.spec.get("text_clean") == "canonicalize")
            else:
                from photosearch.models.tokenizer import ClipTokenizer

                self._tokenizer = ClipTokenizer(self.folder / "tokenizer.json",
                                                int(self.spec.get("context_length", 77)))
        return self._tokenizer

    def _token_arrays(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(N, L) token ids and attention mask, padded as the model expects."""
        if self.immich:
            # Padded to the context length with the pad token, as Immich feeds these models.
            ids, mask = self.tokenizer().encode_batch(texts)
            return np.asarray(ids, dtype=np.int64), np.asarray(mask, dtype=np.int64)
        rows = self.tokenizer()(texts)
        ctx = int(self.spec.get("context_length", 77))
        # Trimmed models take any length up to the context; pad only to the longest text.
        length = max(len(t) for t in rows) if self.spec.get("text_trim") else ctx
        ids = np.zeros((len(rows), length), dtype=np.int64)
        mask = np.zeros((len(rows), length), dtype=np.int64)
        for i, t in enumerate(rows):
            ids[i, : len(t)] = t
            mask[i, : len(t)] = 1
        return ids, mask

    def tokens(self, texts: list[str]) -> np.ndarray:
        """(N, L) int64 token ids of the texts, as fed to the text tower (before its dtype cast)."""
        return self._token_arrays(texts)[0]

    def encode_text(self, texts: list[str], normalize: bool = True) -> np.ndarray:
        """Texts -> (N, D) embeddings."""
        io = self._text_inputs()
        ids, mask = self._token_arrays(texts)
        if "input_ids" in io.names:
            # M-CLIP (XLM-Roberta, LaBSE) text towers: ids plus attention mask.
            feeds = {name: (ids if name == "input_ids" else mask).astype(dtype)
                     for name, dtype in zip(io.names, io.dtypes, strict=True)
                     if name in ("input_ids", "attention_mask")}
        else:
            feeds = {io.names[0]: ids.astype(io.dtypes[0])}
        out = _run(self._text, feeds, io.batch)
        return _normalize(out) if normalize else out

    def close(self) -> None:
        """Release both the image and the text sessions."""
        self._visual.close()
        self._text.close()


class _Inputs:
    """A session's input names and dtypes, and the batch / sequence sizes its graph fixes (if any)."""

    def __init__(self, names: list[str], dtypes: list[Any], batch: int | None, sequence: int | None) -> None:
        self.names = names
        self.dtypes = dtypes
        self.batch = batch
        self.sequence = sequence

    @classmethod
    def of(cls, session: Any, default_name: str, default_dtype: Any) -> _Inputs:
        try:
            inputs = list(session.get_inputs())
        except AttributeError:  # an injected stand-in session without ONNX metadata
            return cls([default_name], [default_dtype], None, None)
        if not inputs:
            raise ModelError("the ONNX model has no inputs")
        names = [i.name for i in inputs]
        dtypes = []
        for i in inputs:
            if i.type not in _ONNX_DTYPES:
                raise ModelError(f"unsupported ONNX input {i.name!r} of type {i.type}")
            dtypes.append(_ONNX_DTYPES[i.type])
        shape = list(inputs[0].shape or [])
        batch = shape[0] if shape and isinstance(shape[0], int) and shape[0] > 0 else None
        sequence = shape[1] if len(shape) == 2 and isinstance(shape[1], int) and shape[1] > 0 else None
        return cls(names, dtypes, batch, sequence)


def _run(session: LazySession, feeds: dict[str, np.ndarray], batch: int | None) -> np.ndarray:
    """Run the session; a graph exported with a fixed batch size (Immich's: 1) is fed in chunks of it."""
    n = next(iter(feeds.values())).shape[0]
    if batch is None or n == batch:
        return np.asarray(session.run(feeds))
    outs = []
    for start in range(0, n, batch):
        part = {k: v[start:start + batch] for k, v in feeds.items()}
        m = next(iter(part.values())).shape[0]
        if m < batch:  # fill the last chunk with copies of its first row; those outputs are dropped
            part = {k: np.concatenate([v, np.repeat(v[:1], batch - m, axis=0)]) for k, v in part.items()}
        outs.append(np.asarray(session.run(part))[:m])
    return np.concatenate(outs)


def _normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)
