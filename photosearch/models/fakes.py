"""Deterministic stand-ins for the models, behind the same protocols, for tests and benchmarks.

They compute something real and repeatable from their input, never semantics: the same photo
always gives the same vector, different photos different ones, and a text's vector depends on
its words only. So every mechanism around a model (batching, storage, vector indexes, search
against brute-force oracles, copies and moves keeping vectors) can be tested without torch,
without model files and fast. What a model *means* is tested elsewhere: ONNX against open_clip
(tests/test_models.py) and the real face models on real faces (tests/test_faces.py).

A fake CLIP model is installed like any other, as a model folder whose ``model.json`` says
``"kind": "fake"`` (:func:`install_fake_clip`), so CLI runs in subprocesses use it too.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from photosearch.models.faces import Face

FAKE_KIND = "fake"


def _normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _word_vector(word: str, dim: int, seed: int) -> np.ndarray:
    digest = hashlib.blake2b(f"{seed}:{word}".encode(), digest_size=8).digest()
    return np.random.default_rng(int.from_bytes(digest, "little")).standard_normal(dim).astype(np.float32)


class FakeClip:
    """A CLIP stand-in (ImageEncoder and TextEncoder): a fixed random projection of the image
    shrunk to ``image_size`` pixels square, and a sum of per-word random vectors for text."""

    def __init__(self, *, dim: int = 32, image_size: int = 32, seed: int = 0, name: str = "fakeclip",
                 folder: Path | None = None) -> None:
        self.dim = self.embed_dim = int(dim)
        self.image_size = int(image_size)
        self.seed = int(seed)
        self.name = name
        self.folder = folder
        rng = np.random.default_rng(seed)
        features = 3 * self.image_size * self.image_size
        self._projection = (rng.standard_normal((features, self.dim)) / np.sqrt(features)).astype(np.float32)

    @classmethod
    def from_folder(cls, folder: Path, spec: dict[str, Any] | None = None) -> FakeClip:
        """The fake model installed in ``folder`` (see :func:`install_fake_clip`)."""
        spec = spec if spec is not None else json.loads((Path(folder) / "model.json").read_text(encoding="utf-8"))
        return cls(dim=int(spec["embed_dim"]), image_size=int(spec["image_size"]), seed=int(spec.get("seed", 0)),
                   name=Path(folder).name, folder=Path(folder))

    def preprocess(self, image: Any) -> np.ndarray:
        """An upright PIL image -> float32 (3, S, S), centred on 0."""
        from PIL import Image

        if image.mode != "RGB":
            image = image.convert("RGB")
        small = image.resize((self.image_size, self.image_size), Image.Resampling.BILINEAR)
        return np.asarray(small, dtype=np.float32).transpose(2, 0, 1) / np.float32(255.0) - np.float32(0.5)

    def encode_pixels(self, pixels: np.ndarray, normalize: bool = True) -> np.ndarray:
        """(N, 3, S, S) -> (N, dim)."""
        flat = np.asarray(pixels, dtype=np.float32).reshape(len(pixels), -1)
        out = flat @ self._projection
        return _normalize(out) if normalize else out

    def encode_images(self, images: list[Any]) -> np.ndarray:
        """Normalized fake embeddings of images, one row per image."""
        return self.encode_pixels(np.stack([self.preprocess(im) for im in images]))

    def encode_text(self, texts: list[str], normalize: bool = True) -> np.ndarray:
        """A vector per text: the sum of its lower-cased words' vectors (an empty text: a fixed one)."""
        out = np.zeros((len(texts), self.dim), np.float32)
        for i, text in enumerate(texts):
            words = text.lower().split() or [""]
            out[i] = np.sum([_word_vector(w, self.dim, self.seed) for w in words], axis=0)
        return _normalize(out) if normalize else out

    def close(self) -> None:
        """Nothing to release (the protocol's models hold sessions)."""


class FakeFaces:
    """A face engine stand-in: one "face" per image, the central square, whose vector is a fixed
    random projection of its pixels (so the same photo, or a copy of it, gives the same face)."""

    def __init__(self, *, dim: int = 16, seed: int = 0, name: str = "fakefaces") -> None:
        self.dim = int(dim)
        self.name = name
        self._clip = FakeClip(dim=self.dim, image_size=16, seed=seed + 1)

    def analyze(self, image: Any) -> list[Face]:
        """One fake face: the central square (none if under 8 pixels), its vector from FakeClip."""
        w, h = image.size
        side = min(w, h) // 2
        if side < 8:
            return []
        left, top = (w - side) // 2, (h - side) // 2
        crop = image.crop((left, top, left + side, top + side))
        vector = self._clip.encode_images([crop])[0]
        landmarks = np.array([[0.4, 0.4], [0.6, 0.4], [0.5, 0.5], [0.42, 0.6], [0.58, 0.6]], np.float32)
        return [Face(box=(left / w, top / h, side / w, side / h), score=0.99, landmarks=landmarks, vector=vector)]


def install_fake_clip(models_root: Path, name: str = "fakeclip", *, dim: int = 32, image_size: int = 32,
                      seed: int = 0) -> Path:
    """Write a fake CLIP model folder ``models_root/name`` (model.json only) and make it active."""
    from photosearch.files import write_atomic

    folder = Path(models_root) / name
    folder.mkdir(parents=True, exist_ok=True)
    spec = {"name": name, "kind": FAKE_KIND, "arch": "fake", "source": "fake (tests)", "embed_dim": dim,
            "image_size": image_size, "seed": seed}
    write_atomic(folder / "model.json", json.dumps(spec, indent=2))
    write_atomic(Path(models_root) / "ACTIVE", name + "\n")
    return folder


__all__ = ["FakeClip", "FakeFaces", "install_fake_clip", "FAKE_KIND"]
