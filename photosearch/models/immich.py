"""Immich's ONNX model folders: read and check one, install it, write one from an installed model.

The layout (as published on the Hugging Face hub under ``immich-app/<NAME>``)::

    config.json                  open_clip model config: embed_dim, vision_cfg, text_cfg
    visual/model.onnx            input "image", float32 NCHW; output 0 the embedding
    visual/preprocess_cfg.json   size, mean, std, interpolation, resize_mode
    textual/model.onnx           input "text" (int32 ids) or "input_ids" + "attention_mask" (M-CLIP)
    textual/tokenizer.json       HuggingFace tokenizers format
    textual/tokenizer_config.json  pad_token (and model_max_length)

An installed Immich model keeps exactly this layout inside ``models/<name>/`` plus a
``model.json`` with ``"layout": "immich"`` (see photosearch/store/schema/FORMAT.md). Nothing here imports
torch or onnx; onnxruntime and tokenizers load only when a model is checked.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

from photosearch.errors import InputError, ModelError
from photosearch.files import file_sha256
from photosearch.models.clip import IMMICH_FILES, IMMICH_LAYOUT, MODEL_FILES

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)

#: Hardware-specific builds Immich publishes beside the ONNX files (ARM NN, RKNN): never needed here.
#: ``.part``: an unfinished download (see hub.py).
_SKIP_SUFFIXES = (".armnn", ".rknn", ".md", ".part")
_TOWERS = ("visual", "textual")


def wanted(path: str) -> bool:
    """Whether a repository path belongs to the ONNX model: config.json and the files directly
    in visual/ and textual/ (the ONNX file, its external data, the JSON configs), not the
    hardware-specific subfolders."""
    parts = path.split("/")
    if parts == ["config.json"]:
        return True
    return len(parts) == 2 and parts[0] in _TOWERS and not parts[1].startswith(".") \
        and not parts[1].endswith(_SKIP_SUFFIXES)


def is_immich_folder(folder: Path) -> bool:
    """True when ``folder`` looks like an Immich model folder (config.json plus visual/ or textual/)."""
    return (folder / "config.json").is_file() and any((folder / t).is_dir() for t in _TOWERS)


def _read_json(folder: Path, rel: str) -> dict[str, Any]:
    try:
        doc = json.loads((folder / rel).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{folder / rel} is not readable JSON: {str(exc).splitlines()[0][:150]}") from None
    if not isinstance(doc, dict):
        raise InputError(f"{folder / rel} is not a JSON object")
    return doc


def _section(doc: dict[str, Any], key: str) -> dict[str, Any]:
    value = doc.get(key)
    return value if isinstance(value, dict) else {}


def check_folder(folder: Path) -> None:
    """InputError (one line) unless ``folder`` is an existing, complete Immich model folder."""
    if not folder.exists():
        raise InputError(f"model folder not found: {folder}")
    if not folder.is_dir():
        raise InputError(f"not a folder: {folder}")
    missing = [f for f in IMMICH_FILES if not (folder / f).is_file()]
    if missing:
        if not is_immich_folder(folder):
            raise InputError(f"{folder} is not an Immich model folder (needs {', '.join(IMMICH_FILES)})")
        raise InputError(f"Immich model folder {folder} is incomplete: {', '.join(missing)} missing")
    for rel in ("visual/model.onnx", "textual/model.onnx"):
        if (folder / rel).stat().st_size == 0:
            raise InputError(f"{folder / rel} is empty (0 bytes)")


def folder_spec(folder: Path, *, name: str, arch: str, source: str) -> dict[str, Any]:
    """model.json's content for the Immich folder ``folder`` (checked for completeness, not run)."""
    check_folder(folder)
    config = _read_json(folder, "config.json")
    pre = _read_json(folder, "visual/preprocess_cfg.json")
    tok_cfg = _read_json(folder, "textual/tokenizer_config.json")
    text_cfg = _section(config, "text_cfg")
    vision_cfg = _section(config, "vision_cfg")
    try:
        embed_dim = int(config["embed_dim"])
        size: Any = pre.get("size", vision_cfg.get("image_size"))
        image_size = int(size[0] if isinstance(size, (list, tuple)) else size)
        mean = [float(v) for v in pre.get("mean", OPENAI_MEAN)]
        std = [float(v) for v in pre.get("std", OPENAI_STD)]
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise InputError(f"{folder} has an unusable config.json or visual/preprocess_cfg.json "
                         f"({type(exc).__name__}: {exc})") from None
    if embed_dim <= 0 or image_size <= 0 or len(mean) != 3 or len(std) != 3:
        raise InputError(f"{folder}: embed_dim, size, mean or std in config.json/preprocess_cfg.json out of range")
    pad = tok_cfg.get("pad_token")
    if isinstance(pad, dict):  # an AddedToken serialized by transformers
        pad = pad.get("content")
    if not isinstance(pad, str) or not pad:
        raise InputError(f"{folder / 'textual/tokenizer_config.json'} names no pad_token")
    context = text_cfg.get("context_length")
    if not isinstance(context, int) or context <= 0:
        max_len = tok_cfg.get("model_max_length")
        # transformers writes 1e30 for "no limit": only a sensible value is a context length.
        context = int(max_len) if isinstance(max_len, (int, float)) and 0 < max_len <= 4096 else 77
    kwargs = _section(text_cfg, "tokenizer_kwargs")
    files = {}
    for rel in installable_files(folder):
        files[rel] = file_sha256(folder / rel)
    return {
        "name": name,
        "layout": IMMICH_LAYOUT,
        "arch": arch,
        "source": source,
        "embed_dim": embed_dim,
        "image_size": image_size,
        "mean": mean,
        "std": std,
        "interpolation": str(pre.get("interpolation", "bicubic")),
        "resize_mode": str(pre.get("resize_mode", "shortest")),
        "context_length": context,
        "text_trim": False,
        "text_clean": "canonicalize" if kwargs.get("clean") == "canonicalize" else "whitespace",
        "pad_token": pad,
        "files": files,
    }


def installable_files(folder: Path) -> list[str]:
    """The files of an Immich folder that belong in an installed model (relative paths, sorted)."""
    out = ["config.json"]
    for tower in _TOWERS:
        d = folder / tower
        if d.is_dir():
            out.extend(f"{tower}/{p.name}" for p in sorted(d.iterdir()) if p.is_file() and wanted(f"{tower}/{p.name}"))
    return out


def copy_folder(src: Path, dest: Path) -> None:
    """Copy the installable files of Immich folder ``src`` into ``dest`` (created)."""
    for rel in installable_files(src):
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / rel, target)


def trial_encode(folder: Path, spec: dict[str, Any]) -> None:
    """Load both ONNX files and embed one image and one text: ModelError unless both give finite
    vectors of ``embed_dim`` values (this is what makes a folder acceptable)."""
    import numpy as np
    from PIL import Image

    from photosearch.models.clip import ClipModel

    model = ClipModel(folder, spec=spec, threads=2)
    try:
        yy, xx = np.mgrid[0:180, 0:240]
        rgb = np.stack([xx * 255 // 240, yy * 255 // 180, (xx + yy) * 255 // 420], axis=-1).astype(np.uint8)
        try:
            img = model.encode_images([Image.fromarray(rgb)])
            txt = model.encode_text(["a photo of a dog"])
        except ModelError:
            raise
        except Exception as exc:  # onnxruntime errors: wrong input shapes, names or types
            raise ModelError(f"model in {folder} does not run: {str(exc).splitlines()[0][:200]}") from None
        for what, vec in (("image", img), ("text", txt)):
            if vec.ndim != 2 or vec.shape[0] != 1 or vec.shape[1] != spec["embed_dim"]:
                raise ModelError(f"model in {folder}: the {what} tower gives shape {tuple(vec.shape)}, "
                                 f"expected (1, {spec['embed_dim']}) from config.json's embed_dim")
            if not np.all(np.isfinite(vec)) or not math.isfinite(float(np.linalg.norm(vec))):
                raise ModelError(f"model in {folder}: the {what} tower gives non-finite values")
    finally:
        model.close()


# -- writing an Immich folder ---------------------------------------------------------------


def write_folder(folder: Path, spec: dict[str, Any], dest: Path) -> None:
    """Write installed model ``folder`` (either layout) into the new folder ``dest`` in Immich's layout."""
    if spec.get("layout") == IMMICH_LAYOUT:
        for rel in spec.get("files") or installable_files(folder):
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(folder / rel, target)
        return
    _write_converted(folder, spec, dest)


def _write_converted(folder: Path, spec: dict[str, Any], dest: Path) -> None:
    """A model converted from open_clip: ONNX files copied with their external data (the .onnx
    names its data file, which keeps its name beside model.json), configs and an HF tokenizer written.

    The ONNX inputs keep their names (``pixels``, ``tokens`` int64); photosearch reads input
    names from the session, so the folder imports anywhere photosearch runs.
    """
    from photosearch.models.tokenizer import CLIP_PAD_TOKEN, build_hf_clip_tokenizer

    missing = [f for f in MODEL_FILES if not (folder / f).is_file()]
    if missing:
        raise ModelError(f"model {folder.name!r} is incomplete ({', '.join(missing)} missing)")
    for tower, onnx in (("visual", "visual.onnx"), ("textual", "textual.onnx")):
        (dest / tower).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(folder / onnx, dest / tower / "model.onnx")
        shutil.copyfile(folder / f"{onnx}.data", dest / tower / f"{onnx}.data")
    context = int(spec.get("context_length", 77))
    config = {
        "embed_dim": int(spec["embed_dim"]),
        "vision_cfg": {"image_size": int(spec["image_size"])},
        "text_cfg": {"context_length": context, "vocab_size": 49408},
    }
    preprocess = {
        "size": int(spec["image_size"]),
        "mode": "RGB",
        "mean": list(spec["mean"]),
        "std": list(spec["std"]),
        "interpolation": spec.get("interpolation", "bicubic"),
        "resize_mode": spec.get("resize_mode", "shortest"),
        "fill_color": 0,
    }
    merges = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))["merges"]
    tokenizer: Any = build_hf_clip_tokenizer(merges)
    tokenizer.save(str(dest / "textual" / "tokenizer.json"))
    tok_cfg = {
        "tokenizer_class": "CLIPTokenizer",
        "bos_token": "<start_of_text>",
        "eos_token": "<end_of_text>",
        "unk_token": "<end_of_text>",
        "pad_token": CLIP_PAD_TOKEN,
        "model_max_length": context,
    }
    _write_json(dest / "config.json", config)
    _write_json(dest / "visual" / "preprocess_cfg.json", preprocess)
    _write_json(dest / "textual" / "tokenizer_config.json", tok_cfg)


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")




def prepare_destination(dest: Path) -> Path:
    """Check an export destination: a new or empty folder whose parent is writable; returns it resolved."""
    dest = dest.expanduser()
    if dest.exists():
        if not dest.is_dir():
            raise InputError(f"destination exists and is not a folder: {dest}")
        if any(dest.iterdir()):
            raise InputError(f"destination folder is not empty: {dest} (give a new or empty folder)")
    parent = dest.resolve().parent
    if not parent.is_dir():
        raise InputError(f"destination's parent folder does not exist: {parent}")
    if not os.access(parent, os.W_OK | os.X_OK) or (dest.exists() and not os.access(dest, os.W_OK | os.X_OK)):
        raise InputError(f"destination is not writable: {dest}")
    return dest.resolve()


__all__ = ["wanted", "is_immich_folder", "check_folder", "folder_spec", "installable_files", "copy_folder",
           "trial_encode", "write_folder", "prepare_destination"]
