"""Indexing and every query run without torch: a model exported once (on a machine with torch)
is imported, indexed with and searched in processes where torch cannot be imported."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SHARED, run_cli, write_natural_photo

pytestmark = pytest.mark.convert  # needs torch: converts the tiny open_clip model

NO_TORCH = {"PYTHONPATH": str(Path(__file__).parent / "no_torch")}


def _run(*args: str, library: Path) -> dict:
    r = run_cli(*args, "--json", library=library, env=NO_TORCH)
    assert r.returncode == 0, (args, r.stderr)
    assert "Traceback" not in r.stderr
    return json.loads(r.stdout)


def test_torch_is_really_absent_there(tmp_path: Path):
    probe = subprocess.run([sys.executable, "-c", "import torch"], capture_output=True, text=True,
                           env={**os.environ, **NO_TORCH})
    assert probe.returncode != 0 and "No module named 'torch'" in probe.stderr
    # Converting a checkpoint is the one thing that needs torch: one line saying how to get it.
    ckpt = tmp_path / "model.safetensors"
    ckpt.write_bytes(b"\0" * 64)
    r = run_cli("models", "import", "ViT-B-32", str(ckpt), library=tmp_path / "lib", env=NO_TORCH)
    assert r.returncode == 4 and "Traceback" not in r.stderr
    assert "pip install 'photosearch[convert]'" in r.stderr.strip().splitlines()[-1]


def test_import_index_and_query_without_torch(converted_template: Path, tmp_path: Path, face_wheel: Path):
    # The export runs where torch is (this process's environment); all else runs without it.
    exported = tmp_path / "exported"
    r = run_cli("models", "export", "tinyclip", str(exported), "--json", library=converted_template)
    assert r.returncode == 0, r.stderr
    lib = tmp_path / "lib"
    installed = _run("models", "import", str(exported), "--name", "tiny-onnx", library=lib)
    assert installed["installed"]["name"] == "tiny-onnx"
    _run("models", "pull", "faces", "--from", str(face_wheel), library=lib)
    photos = tmp_path / "photos"
    if SHARED.is_dir():
        shutil.copytree(SHARED / "photos", photos)
    else:
        for i in range(6):
            write_natural_photo(photos / f"n{i}.jpg", seed=i)
    n = len([p for p in photos.iterdir() if p.suffix == ".jpg"])
    # fp32 on both sides: each install makes its own int8 tower, from its own graph (an exported
    # folder is re-saved), and their vectors agree with fp32's, not with each other's bit for bit.
    summary = _run("index", str(photos), "--precision", "fp32", library=lib)
    assert summary["indexed"] == n and summary["skipped"] == [] and summary["model"] == "tiny-onnx"
    results = _run("search", "a dog on the grass", "--limit", "5", library=lib)["results"]
    assert len(results) == 5 and results[0]["score"] >= results[-1]["score"]
    first = sorted(photos.glob("*.jpg"))[0]
    like = _run("like", str(first), "--limit", "3", library=lib)["results"]
    assert len(like) == 3 and str(first) not in [x["path"] for x in like]
    assert _run("tag", library=lib)["photos"] == n
    assert "groups" in _run("dupes", library=lib)
    # The same vectors as the torch-converted original gives, photo for photo.
    ref = tmp_path / "ref"
    shutil.copytree(converted_template, ref)
    assert run_cli("index", str(photos), "--no-faces", "--precision", "fp32", library=ref).returncode == 0
    theirs = run_cli("search", "a dog on the grass", "--limit", "5", "--json", library=ref)
    assert [x["path"] for x in json.loads(theirs.stdout)["results"]] == [x["path"] for x in results]
