"""Model import, conversion and the ONNX runtime path, checked against open_clip itself."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import SHARED, make_checkpoint, needs_shared, run_cli, write_photo
from photosearch.errors import InputError, ModelError, NetworkError, UsageError

pytestmark = pytest.mark.convert  # needs torch: converts the tiny open_clip model


@pytest.fixture
def library(converted_library):  # noqa: ANN001, ANN201 - this module is about converted ONNX models
    return converted_library


def _open_clip_model(config: Path, ckpt: Path):
    import open_clip

    open_clip.add_model_config(config)
    model, _, preprocess = open_clip.create_model_and_transforms(config.stem, pretrained=str(ckpt))
    model.eval()
    return model, preprocess, open_clip.get_tokenizer(config.stem)


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    return (a * b).sum(-1)


def _photos(tmp_path: Path) -> list[Path]:
    if SHARED.is_dir():
        return sorted((SHARED / "photos").glob("*.jpg"))[:12]
    return [write_photo(tmp_path / f"p{i}.jpg", i, size=(300, 200)) for i in range(6)]


def test_onnx_matches_open_clip_on_photos_and_text(library, tiny_checkpoint, tmp_path):
    """Same weights, same inputs: ONNX (our preprocessing) vs open_clip torch (its transforms)."""
    import torch

    config, ckpt = tiny_checkpoint
    model, preprocess, tokenizer = _open_clip_model(config, ckpt)
    clip = library.models.load()
    photos = _photos(tmp_path)
    images = [Image.open(p).convert("RGB") for p in photos]
    ours_pixels = np.stack([clip.preprocess(im) for im in images])
    theirs_pixels = torch.stack([preprocess(im) for im in images])
    # Preprocessing reproduces torchvision's resize/crop/normalize.
    assert np.abs(ours_pixels - theirs_pixels.numpy()).max() < 1e-4
    with torch.no_grad():
        torch_img = model.encode_image(theirs_pixels).numpy()
        prompts = ["sunset at the beach", "a photo of a dog", "Ünïcödé façade, naïve café!", "x " * 200, ""]
        torch_txt = model.encode_text(tokenizer(prompts)).numpy()
    assert _cos(torch_img, clip.encode_pixels(ours_pixels)).min() >= 0.999
    ours_txt = np.stack([clip.encode_text([p])[0] for p in prompts])
    assert _cos(torch_txt, ours_txt).min() >= 0.999


def test_tokenizer_matches_open_clip(library, tiny_checkpoint):
    from open_clip.tokenizer import SimpleTokenizer

    ref = SimpleTokenizer()
    ours = library.models.load().tokenizer()
    texts = ["Sunset at the BEACH!!", "a dog's toy", "東京タワー at night", "&amp; html &lt;b&gt;", "don't   stop",
             "2024-05-01 birthday 🎂", "word " * 100]
    for text in texts:
        expected = ref(text)[0].tolist()
        got = ours([text])[0]
        assert got == expected[: len(got)] and all(t == 0 for t in expected[len(got):]), text


def test_import_sets_active_and_lists(library, tmp_path):
    config, ckpt = make_checkpoint(tmp_path / "other", seed=7)
    spec = library.import_model(str(config), ckpt, name="tiny-seed7")
    assert spec["name"] == "tiny-seed7"
    names = {m.name: m for m in library.list_models()}
    assert set(names) == {"tinyclip", "tiny-seed7"}
    assert names["tiny-seed7"].active and not names["tinyclip"].active
    library.use_model("tinyclip")
    assert library.models.active_name() == "tinyclip"
    with pytest.raises(UsageError):
        library.use_model("nope")
    with pytest.raises(UsageError, match="already installed"):
        library.import_model(str(config), ckpt, name="tiny-seed7")
    # Different weights really give different embeddings.
    a = library.models.load("tinyclip").encode_text(["a cat"])
    b = library.models.load("tiny-seed7").encode_text(["a cat"])
    assert _cos(a, b)[0] < 0.99


def test_import_bad_inputs(library, tmp_path, tiny_checkpoint):
    config, _ = tiny_checkpoint
    with pytest.raises(InputError, match="not found"):
        library.import_model("ViT-B-32", tmp_path / "missing.safetensors")
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        library.import_model("ViT-B-32", empty)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ModelError):
        library.import_model(str(config), junk, name="junk")
    with pytest.raises(ModelError, match="unknown open_clip architecture"):
        library.import_model("ViT-Nope-99", junk)
    # A failed import leaves no half-installed model behind.
    assert library.models.names() == ["tinyclip"]
    assert not [p for p in library.paths.models.iterdir() if p.name.startswith(".tmp")]


def test_checkpoint_of_another_architecture_is_refused(library, tiny_checkpoint, tmp_path):
    _, ckpt = tiny_checkpoint
    with pytest.raises(ModelError, match="does not fit"):
        library.import_model("ViT-B-32", ckpt, name="wrong")


def test_pull_offline_fails_fast_with_both_commands(library):
    started = time.monotonic()
    with pytest.raises(NetworkError) as info:
        library.pull_model()
    assert time.monotonic() - started < 5
    assert "photosearch models import" in str(info.value)


def test_missing_model_message_names_pull_and_import(tmp_path):
    result = run_cli("sunset at the beach", library=tmp_path / "empty")
    assert result.returncode == 4
    assert "photosearch models pull" in result.stderr and "photosearch models import" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    result = run_cli("models", "pull", library=tmp_path / "empty")
    assert result.returncode == 4 and "offline" in result.stderr


def test_cli_models_import_and_list(tmp_path, tiny_checkpoint):
    config, ckpt = tiny_checkpoint
    lib = tmp_path / "lib"
    result = run_cli("models", "import", str(config), str(ckpt), "--json", library=lib)
    assert result.returncode == 0, result.stderr
    import json

    assert json.loads(result.stdout)["installed"]["name"] == "tinyclip"
    listed = json.loads(run_cli("models", "--json", library=lib).stdout)["models"]
    assert [m["name"] for m in listed] == ["tinyclip"] and listed[0]["active"]
    bad = run_cli("models", "use", "nope", library=lib)
    assert bad.returncode == 2 and "no model named" in bad.stderr


def test_query_path_never_imports_torch(library, tmp_path):
    write_photo(tmp_path / "photos" / "a.jpg", 1)
    library.index([tmp_path / "photos"])
    code = (
        "import sys; from photosearch.api import Library; lib = Library(sys.argv[1]);"
        "r = lib.search_text('a red car'); r2 = lib.search_image(sys.argv[2]);"
        "bad = [m for m in ('torch', 'open_clip', 'torchvision') if m in sys.modules];"
        "assert not bad, bad; print(len(r), len(r2))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(library.paths.root), str(tmp_path / "photos" / "a.jpg")],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", "0"]


@needs_shared
def test_import_cli_from_shared_photo_model_roundtrip(library):
    """Embeddings of a real photo are deterministic and normalized."""
    clip = library.models.load()
    img = Image.open(SHARED / "photos" / "skimage_chelsea.jpg").convert("RGB")
    a = clip.encode_images([img])
    b = clip.encode_images([img])
    assert np.allclose(a, b) and abs(np.linalg.norm(a) - 1) < 1e-5
