"""Convert an open_clip checkpoint into the ONNX files photosearch runs.

This is the only module that imports torch and open_clip, and only inside
functions: indexing and search run on onnxruntime alone. Conversion writes
``visual.onnx``, ``textual.onnx``, ``tokenizer.json`` and ``model.json`` into a
folder, then checks the ONNX outputs against open_clip's torch model on the same
inputs (cosine >= 0.999) before the model may be installed.
"""

from __future__ import annotations

import gzip
import json
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from photosearch.errors import ModelError, NetworkError
from photosearch.models.clip import MODEL_FILES
from photosearch.files import file_sha256

#: Minimum cosine similarity between ONNX and torch embeddings for a conversion to pass.
MIN_COSINE = 0.999
VERIFY_PROMPTS = ("a photo of a dog", "sunset at the beach", "", "x" * 400)


def _import_torch() -> tuple[Any, Any]:
    try:
        import open_clip
        import torch
    except ImportError as exc:
        raise ModelError(
            f"converting a model needs torch and open_clip_torch ({exc.name} is missing): "
            "pip install 'photosearch[convert]'"
        ) from None
    return torch, open_clip


def resolve_arch(arch: str) -> str:
    """An open_clip model name, or a path to an open_clip model config JSON (registered on the fly)."""
    _, open_clip = _import_torch()
    if arch.endswith(".json"):
        path = Path(arch).expanduser()
        if not path.is_file():
            raise ModelError(f"model config not found: {arch}")
        try:
            json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ModelError(f"model config {arch} is not valid JSON: {exc}") from None
        open_clip.add_model_config(path)
        return path.stem
    if arch not in open_clip.list_models():
        close = [m for m in open_clip.list_models() if arch.lower() in m.lower()][:5]
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ModelError(f"unknown open_clip architecture {arch!r}{hint}")
    return arch


def load_open_clip(arch: str, checkpoint: str | None = None, pretrained: str | None = None) -> tuple[Any, str]:
    """Build the open_clip model from a local checkpoint file or a pretrained tag; returns (model, arch)."""
    torch, open_clip = _import_torch()
    name = resolve_arch(arch)
    try:
        if checkpoint is not None:
            model = open_clip.create_model(name, pretrained=str(checkpoint), device="cpu")
        elif pretrained is not None:
            model = open_clip.create_model(name, pretrained=pretrained, device="cpu", require_pretrained=True)
        else:
            model = open_clip.create_model(name, device="cpu")
    except (OSError, ConnectionError) as exc:
        if pretrained is not None:
            raise NetworkError(
                f"could not download {name}/{pretrained} ({type(exc).__name__}); on an offline machine fetch the "
                f"checkpoint elsewhere and run `photosearch models import {name} FILE`"
            ) from None
        raise ModelError(f"cannot read checkpoint {checkpoint}: {exc}") from None
    except (RuntimeError, AssertionError, KeyError) as exc:  # state_dict shape/key mismatches
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"checkpoint does not fit architecture {name}: {first[:200]}") from None
    except Exception as exc:  # safetensors / pickle errors on corrupt files
        if pretrained is not None and "offline" in str(exc).lower():
            raise NetworkError(
                f"cannot download {name}/{pretrained}: offline (HF_HUB_OFFLINE is set); "
                f"use `photosearch models import {name} FILE` with a local checkpoint"
            ) from None
        # torch's messages run to paragraphs; the first sentence says what happened.
        first = (str(exc).strip().splitlines() or [""])[0].split(". ")[0][:160]
        raise ModelError(f"cannot load checkpoint {checkpoint or pretrained}: not a usable open_clip checkpoint "
                         f"({type(exc).__name__}: {first})") from None
    model.eval()
    tokenizer = open_clip.get_tokenizer(name)
    if type(tokenizer).__name__ != "SimpleTokenizer":
        raise ModelError(f"{name} uses a {type(tokenizer).__name__}; photosearch supports CLIP-BPE text towers only")
    return model, name


class _TextTower:
    """Factory for the text wrapper; defined lazily because it subclasses torch.nn.Module."""

    @staticmethod
    def build(model: Any) -> tuple[Any, bool]:
        torch, open_clip = _import_torch()
        from open_clip.transformer import text_global_pool

        # With a causal mask and end-of-text pooling, the output does not depend on the padding
        # after the end-of-text token, so such towers are exported for any sequence length and
        # a query runs on its few tokens instead of 77 (about 4x faster).
        trimmable = (
            isinstance(model, open_clip.CLIP)
            and getattr(model, "text_pool_type", "argmax") == "argmax"
            and getattr(model, "attn_mask", None) is not None
        )

        class Text(torch.nn.Module):
            def __init__(self, m: Any) -> None:
                super().__init__()
                self.m = m

            def forward(self, text: Any) -> Any:
                m = self.m
                if not trimmable:
                    return m.encode_text(text)
                # CLIP.encode_text, for any sequence length up to the context length.
                seq = text.shape[1]
                x = m.token_embedding(text)
                x = x + m.positional_embedding[:seq]
                x = m.transformer(x, attn_mask=m.attn_mask[:seq, :seq])
                x = m.ln_final(x)
                x = text_global_pool(x, text, m.text_pool_type, eos_token_id=getattr(m, "text_eos_id", None))
                if m.text_projection is not None:
                    x = m.text_projection(x) if isinstance(m.text_projection, torch.nn.Linear) else x @ m.text_projection
                return x

        return Text(model).eval(), trimmable


def _export_text_dynamic(torch: Any, module: Any, example: Any, path: Path, context_length: int) -> None:
    """Export with symbolic batch and sequence axes (torch.export; the TorchScript exporter bakes 77 in)."""
    if hasattr(torch.backends, "mha"):
        torch.backends.mha.set_fastpath_enabled(False)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module, (example,), None, dynamo=True,
            # No output_names: the exporter already calls the token-embedding output "embedding".
            input_names=["tokens"],
            dynamic_shapes={"text": {0: torch.export.Dim("batch", min=1, max=4096),
                                     1: torch.export.Dim("sequence", min=2, max=context_length)}},
            opset_version=18, optimize=True, verbose=False,
        )
    graph = program.model.graph
    for node in graph:
        for value in node.outputs:
            if value.name == "embedding" and value is not graph.outputs[0]:
                value.name = "token_embedding_out"
    graph.outputs[0].name = "embedding"
    program.save(str(path), external_data=True)


def _optimize_offline(raw: Path, dest: Path) -> None:
    """Save a pre-optimized copy with page-aligned external weights.

    onnxruntime memory-maps external weights, so a query process maps the file instead of
    copying it (most of the token-embedding table is never touched), and with the graph
    already optimized a session loads in tens of milliseconds. For indexing, the mapped
    pages are dropped once weights are pre-packed, so weights are in memory once, not twice.
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    # EXTENDED, not ALL: the saved graph must not depend on this machine's CPU features.
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    opts.optimized_model_filepath = str(dest)
    opts.add_session_config_entry("session.optimized_model_external_initializers_file_name", dest.name + ".data")
    opts.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
    opts.log_severity_level = 3
    ort.InferenceSession(str(raw), opts, providers=["CPUExecutionProvider"])


def _export(torch: Any, module: Any, example: Any, path: Path, input_name: str, dynamic: dict[int, str]) -> None:
    # The fused MultiheadAttention fast path has no ONNX export; the plain path is identical.
    if hasattr(torch.backends, "mha"):
        torch.backends.mha.set_fastpath_enabled(False)
    with torch.no_grad(), warnings.catch_warnings():
        # Tracer warnings are about shapes we pin on purpose; verify() checks the result.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (example,),
            str(path),
            input_names=[input_name],
            output_names=["embedding"],
            dynamic_axes={input_name: dynamic, "embedding": {0: "batch"}},
            opset_version=17,
            do_constant_folding=True,
            dynamo=False,
        )


def _write_tokenizer(dest: Path) -> None:
    """Store the CLIP BPE merges as JSON so search needs neither open_clip nor the gzip file."""
    from open_clip.tokenizer import default_bpe

    merges = gzip.open(default_bpe()).read().decode("utf-8").split("\n")
    merges = merges[1:49152 - 256 - 2 + 1]
    dest.write_text(json.dumps({"type": "clip-bpe", "merges": merges}), encoding="utf-8")


def convert(
    arch: str,
    dest: Path,
    *,
    checkpoint: str | None = None,
    pretrained: str | None = None,
    source: str = "",
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Convert one open_clip model into ``dest`` (created) and verify it; returns model.json's content."""
    say = progress or (lambda _msg: None)
    torch, open_clip = _import_torch()
    torch.manual_seed(0)
    say("loading the open_clip model")
    model, name = load_open_clip(arch, checkpoint=checkpoint, pretrained=pretrained)
    cfg = dict(getattr(model.visual, "preprocess_cfg", {}) or {})
    size = cfg.get("size") or model.visual.image_size
    size = size if isinstance(size, int) else tuple(size)[0]
    context_length = int(getattr(model, "context_length", 77) or 77)
    dest.mkdir(parents=True, exist_ok=True)

    say("exporting the image tower to ONNX")
    visual = _ImageTower.build(model)
    raw = dest / ".raw"
    raw.mkdir()
    _export(torch, visual, torch.randn(2, 3, size, size), raw / "visual.onnx", "pixels", {0: "batch"})
    _optimize_offline(raw / "visual.onnx", dest / "visual.onnx")
    say("exporting the text tower to ONNX")
    text, trimmable = _TextTower.build(model)
    tokenizer = open_clip.get_tokenizer(name)
    if trimmable:
        # Batch and sequence of at least 2 each, or the exporter pins them.
        _export_text_dynamic(torch, text, tokenizer(["a photo of a cat", "hello"])[:, :10],
                             raw / "textual.onnx", context_length)
    else:
        _export(torch, text, tokenizer(["a photo of a cat", "hello"]), raw / "textual.onnx", "tokens", {0: "batch"})
    _optimize_offline(raw / "textual.onnx", dest / "textual.onnx")
    shutil.rmtree(raw)
    _write_tokenizer(dest / "tokenizer.json")

    with torch.no_grad():
        probe = torch.zeros(1, 3, size, size)
        embed_dim = int(model.encode_image(probe).shape[-1])
    spec: dict[str, Any] = {
        "name": dest.name,
        "arch": name,
        "source": source,
        "embed_dim": embed_dim,
        "image_size": int(size),
        "mean": [float(v) for v in cfg.get("mean", (0.48145466, 0.4578275, 0.40821073))],
        "std": [float(v) for v in cfg.get("std", (0.26862954, 0.26130258, 0.27577711))],
        "interpolation": cfg.get("interpolation", "bicubic"),
        "resize_mode": cfg.get("resize_mode", "shortest"),
        "context_length": context_length,
        "text_trim": trimmable,
        "eot_token": int(tokenizer.eot_token_id),
        "sot_token": int(tokenizer.sot_token_id),
    }
    say("verifying ONNX against open_clip")
    verify(model, tokenizer, dest, spec)
    spec["files"] = {f: file_sha256(dest / f) for f in MODEL_FILES}
    (dest / "model.json").write_text(json.dumps(spec, indent=2), encoding="utf-8")
    return spec


class _ImageTower:
    @staticmethod
    def build(model: Any) -> Any:
        torch, _ = _import_torch()

        class Image(torch.nn.Module):
            def __init__(self, m: Any) -> None:
                super().__init__()
                self.m = m

            def forward(self, pixels: Any) -> Any:
                return self.m.encode_image(pixels)

        return Image(model).eval()


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(axis=1)


def verify(model: Any, tokenizer: Any, folder: Path, spec: dict[str, Any]) -> dict[str, float]:
    """Compare ONNX and torch embeddings on fixed inputs; raise ModelError below MIN_COSINE."""
    torch, _ = _import_torch()
    from photosearch.models.clip import ClipModel

    onnx_model = ClipModel(folder, spec=spec)
    rng = np.random.default_rng(0)
    pixels = rng.standard_normal((2, 3, spec["image_size"], spec["image_size"])).astype(np.float32)
    with torch.no_grad():
        torch_img = model.encode_image(torch.from_numpy(pixels)).numpy()
        torch_txt = model.encode_text(tokenizer(list(VERIFY_PROMPTS))).numpy()
    onnx_img = onnx_model.encode_pixels(pixels, normalize=False)
    # One at a time as well as batched: a query is a batch of one.
    onnx_txt = np.concatenate([onnx_model.encode_text([p], normalize=False) for p in VERIFY_PROMPTS])
    onnx_txt_batch = onnx_model.encode_text(list(VERIFY_PROMPTS), normalize=False)
    torch_txt = np.concatenate([torch_txt, torch_txt])
    onnx_txt = np.concatenate([onnx_txt, onnx_txt_batch])
    worst = {"image": float(_cosines(torch_img, onnx_img).min()), "text": float(_cosines(torch_txt, onnx_txt).min())}
    onnx_model.close()
    if min(worst.values()) < MIN_COSINE:
        raise ModelError(
            f"ONNX conversion does not match open_clip (cosine image {worst['image']:.5f}, text {worst['text']:.5f})"
        )
    return worst


def hub_offline() -> bool:
    """True when the user (or a test) has said not to use the network (see models/network.py)."""
    from photosearch.models.network import offline

    return offline()
