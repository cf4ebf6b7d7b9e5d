"""Immich-layout model folders: export, import, and `models pull` from a stand-in hub.

The hub is a local HTTP server bound to 127.0.0.1 (the tree API with real SHA-256 / git SHA-1
values, ``resolve/main/...`` with Range support and an LFS-style redirect); HF_ENDPOINT points
at it. No test sends traffic anywhere else.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import threading
import time
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import numpy as np
import pytest
from PIL import Image

from conftest import run_cli, write_photo
from photosearch.errors import InputError, ModelError, NetworkError, UsageError

pytestmark = pytest.mark.convert  # needs torch: converts the tiny open_clip model


@pytest.fixture
def library(converted_library):  # noqa: ANN001, ANN201 - this module is about converted ONNX models
    return converted_library

REPO = "tiny-immich__test"


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    return (a * b).sum(-1)


def _images(n: int = 4) -> list[Image.Image]:
    rng = np.random.default_rng(3)
    return [Image.fromarray(rng.integers(0, 255, (90 + 10 * i, 130, 3), dtype=np.uint8)) for i in range(n)]


PROMPTS = ["a photo of a dog", "Sunset at the BEACH!!", "Ünïcödé façade, naïve café", "2024-05-01 birthday 🎂",
           "", "word " * 100]


def _same_vectors(a: Any, b: Any, min_cos: float = 0.9999) -> None:
    ims = _images()
    assert _cos(a.encode_images(ims), b.encode_images(ims)).min() > min_cos
    assert _cos(a.encode_text(PROMPTS), b.encode_text(PROMPTS)).min() > min_cos
    # One at a time too: a query is a batch of one.
    assert _cos(a.encode_text(PROMPTS[:1]), b.encode_text(PROMPTS[:1])).min() > min_cos


def _one_line_error(result: Any, code: int) -> str:
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


# -- folders ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory, converted_template: Path) -> Path:
    """The tiny converted model written by `models export` (external-data ONNX files, HF tokenizer)."""
    from photosearch.api import Library

    dest = tmp_path_factory.mktemp("exported") / "tinyclip-immich"
    Library(converted_template).export_model("tinyclip", dest)
    return dest


@pytest.fixture(scope="module")
def hub_folder(tmp_path_factory: pytest.TempPathFactory, exported: Path) -> Path:
    """The export with self-contained model.onnx files, as Immich publishes them (one big file per tower)."""
    import onnx

    dest = tmp_path_factory.mktemp("hub") / REPO
    for rel in ("config.json", "visual/preprocess_cfg.json", "textual/tokenizer.json", "textual/tokenizer_config.json"):
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(exported / rel, dest / rel)
    for tower in ("visual", "textual"):
        onnx.save(onnx.load(str(exported / tower / "model.onnx")), str(dest / tower / "model.onnx"))
    # Files a real Immich repository has and a pull must leave alone.
    (dest / "README.md").write_text("# tiny\n")
    (dest / "visual" / "fp16").mkdir()
    (dest / "visual" / "fp16" / "model.armnn").write_bytes(b"\0" * 5000)
    return dest


@pytest.fixture(scope="module")
def immich_style(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: tuple[Path, Path],
                 exported: Path) -> Path:
    """The tiny model exported the way Immich's exporter does it: inputs ``image`` and ``text``
    (int32), batch fixed at 1, text padded with the end-of-text token."""
    import open_clip
    import torch

    config, ckpt = tiny_checkpoint
    open_clip.add_model_config(config)
    model = open_clip.create_model(config.stem, pretrained=str(ckpt)).eval()
    for param in model.parameters():
        param.requires_grad_(False)
    if hasattr(torch.backends, "mha"):
        torch.backends.mha.set_fastpath_enabled(False)

    class Visual(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.m = model

        def forward(self, image: Any) -> Any:
            return self.m.encode_image(image, normalize=True)

    class Text(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.m = model

        def forward(self, text: Any) -> Any:
            return self.m.encode_text(text, normalize=True)

    dest = tmp_path_factory.mktemp("immich-style") / "tiny-style__test"
    for rel in ("config.json", "visual/preprocess_cfg.json", "textual/tokenizer.json"):
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(exported / rel, dest / rel)
    (dest / "textual" / "tokenizer_config.json").write_text(json.dumps({"pad_token": "<end_of_text>"}))
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about shapes pinned on purpose
        torch.onnx.export(Visual(), (torch.randn(1, 3, 64, 64),), str(dest / "visual" / "model.onnx"),
                          input_names=["image"], output_names=["embedding"], opset_version=17, dynamo=False)
        torch.onnx.export(Text(), (torch.ones(1, 77, dtype=torch.int32),), str(dest / "textual" / "model.onnx"),
                          input_names=["text"], output_names=["embedding"], opset_version=17, dynamo=False)
    return dest


# -- a stand-in hub on 127.0.0.1 -----------------------------------------------------------------


def _git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class FakeHub(ThreadingHTTPServer):
    """The two hub endpoints a pull uses, over folders named like repositories."""

    daemon_threads = True

    def __init__(self, repos: dict[str, Path]) -> None:
        super().__init__(("127.0.0.1", 0), _HubHandler)
        self.repos = repos
        self.lock = threading.Lock()
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.bytes_sent = 0
        self.drop_after: dict[str, int] = {}  # repo path -> bytes to send before dropping the connection, once
        self.corrupt: set[str] = set()  # repo paths served with one byte changed (same size)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def listing(self, repo: str) -> list[dict[str, Any]]:
        root = self.repos[repo]
        out: list[dict[str, Any]] = []
        for p in sorted(root.rglob("*")):
            rel = p.relative_to(root).as_posix()
            if p.is_dir():
                out.append({"type": "directory", "path": rel, "size": 0, "oid": "0" * 40})
                continue
            data = p.read_bytes()
            if len(data) >= 10_000:  # big files live in LFS, as on the hub
                pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{hashlib.sha256(data).hexdigest()}\n"
                out.append({"type": "file", "path": rel, "size": len(data), "oid": _git_blob_sha1(pointer.encode()),
                            "lfs": {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 130}})
            else:
                out.append({"type": "file", "path": rel, "size": len(data), "oid": _git_blob_sha1(data)})
        return out


class _HubHandler(BaseHTTPRequestHandler):
    server: FakeHub

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _json(self, code: int, doc: Any) -> None:
        body = json.dumps(doc).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        hub = self.server
        path = unquote(urlsplit(self.path).path)
        with hub.lock:
            hub.requests.append((path, self.headers.get("Range")))
        parts = path.strip("/").split("/")
        # /api/models/immich-app/NAME/tree/main
        if parts[:3] == ["api", "models", "immich-app"] and parts[4:6] == ["tree", "main"]:
            if parts[3] not in hub.repos:
                return self._json(401, {"error": "Repository not found"})  # what the hub says, logged out
            return self._json(200, hub.listing(parts[3]))
        # /immich-app/NAME/resolve/main/PATH: LFS files redirect to /cdn/NAME/PATH, as the hub does.
        if parts[:1] == ["immich-app"] and parts[2:4] == ["resolve", "main"] and parts[1] in hub.repos:
            rel = "/".join(parts[4:])
            file = hub.repos[parts[1]] / rel
            if file.is_file() and file.stat().st_size >= 10_000:
                self.send_response(302)
                self.send_header("Location", f"/cdn/{parts[1]}/{rel}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            return self._send_file(parts[1], rel)
        if parts[:1] == ["cdn"] and len(parts) > 2 and parts[1] in hub.repos:
            return self._send_file(parts[1], "/".join(parts[2:]))
        return self._json(404, {"error": "not found"})

    def _send_file(self, repo: str, rel: str) -> None:
        hub = self.server
        file = hub.repos[repo] / rel
        if not file.is_file():
            return self._json(404, {"error": "Entry not found"})
        data = file.read_bytes()
        if rel in hub.corrupt:
            data = data[:-1] + bytes([data[-1] ^ 0xFF])
        start = 0
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes=") and rng.endswith("-"):
            start = int(rng[len("bytes="):-1])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        with hub.lock:
            cut = hub.drop_after.pop(rel, None)
        if cut is not None:
            self.wfile.write(body[:cut])
            self.wfile.flush()
            with hub.lock:
                hub.bytes_sent += cut
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body)
        with hub.lock:
            hub.bytes_sent += len(body)


@pytest.fixture
def hub(hub_folder: Path, monkeypatch: pytest.MonkeyPatch):
    """The stand-in hub serving ``immich-app/tiny-immich__test``; HF_ENDPOINT points at it, offline mode is off."""
    server = FakeHub({REPO: hub_folder})
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    for var in ("PHOTOSEARCH_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    yield server
    server.shutdown()
    server.server_close()


def _online_env(url: str) -> dict[str, str]:
    return {"HF_ENDPOINT": url, "HF_HUB_OFFLINE": "", "PHOTOSEARCH_OFFLINE": "", "NO_PROXY": "127.0.0.1"}


# -- (f) the HF tokenizer written on export ------------------------------------------------------


def test_exported_tokenizer_gives_clip_tokenizer_ids(library, exported):
    from tokenizers import Tokenizer

    from photosearch.models.tokenizer import HFTokenizer

    ours = library.models.load().tokenizer()
    hf = Tokenizer.from_file(str(exported / "textual" / "tokenizer.json"))
    hf.enable_truncation(max_length=77)
    padded = HFTokenizer(exported / "textual" / "tokenizer.json", 77,
                         json.loads((exported / "textual" / "tokenizer_config.json").read_text())["pad_token"])
    texts = ["a photo of a dog", "Sunset at the BEACH!!", "a dog's toy, isn't it? I'm sure we'll see",
             "price: $3.50 (50% off) #deal @home", "2024-05-01 birthday 123456789 3.14159",
             "Ünïcödé façade, naïve café!", "Straße ÆØÅ ÉCOLE", "東京タワー at night", "ΑΒΓ Ελληνικά кириллица",
             "emoji 🎂👨‍👩‍👧❤️ party", "it’s “quoted”", "ﬁne ligature", "ＡＢＣ１２３ full width",
             "  spaces\tand\nnewlines  ",
             "", "!!!", "<start_of_text> literal", "word " * 100, "x" * 400]
    for text in texts:
        expected = ours([text])[0]
        assert hf.encode(text).ids == expected, text
        ids, mask = padded.encode_batch([text])
        assert ids[0][: len(expected)] == expected and set(ids[0][len(expected):]) <= {0}, text
        assert sum(mask[0]) == len(expected)
    assert len(ours(["word " * 100])[0]) == 77  # truncated, end-of-text kept


# -- (e) export / import round trip ----------------------------------------------------------------


def test_export_import_round_trip_api(library, exported, tmp_path):
    spec = json.loads((library.models.root / "tinyclip" / "model.json").read_text())
    assert (exported / "visual" / "visual.onnx.data").is_file()  # the external data the .onnx names
    assert json.loads((exported / "config.json").read_text())["embed_dim"] == spec["embed_dim"]
    pre = json.loads((exported / "visual" / "preprocess_cfg.json").read_text())
    assert pre["size"] == spec["image_size"] and pre["mean"] == spec["mean"]

    installed = library.import_model_folder(exported, name="tiny-roundtrip")
    assert installed["layout"] == "immich" and installed["embed_dim"] == spec["embed_dim"]
    assert library.models.active_name() == "tiny-roundtrip"
    info = {m.name: m for m in library.list_models()}
    assert info["tiny-roundtrip"].active and info["tiny-roundtrip"].size_bytes > 10_000_000
    _same_vectors(library.models.load("tinyclip"), library.models.load("tiny-roundtrip"))

    # An Immich-layout model exports as it is, and imports again.
    again = library.export_model("tiny-roundtrip", tmp_path / "again")
    assert "textual/model.onnx" in again["files"] and "model.json" not in again["files"]
    library.import_model_folder(tmp_path / "again", name="tiny-again")
    _same_vectors(library.models.load("tinyclip"), library.models.load("tiny-again"))
    with pytest.raises(UsageError, match="already installed"):
        library.import_model_folder(exported, name="tiny-again")
    library.import_model_folder(exported, name="tiny-again", force=True)


def test_cli_export_import_json(library, tmp_path):
    lib = library.paths.root
    dest = tmp_path / "out"
    result = run_cli("models", "export", "tinyclip", str(dest), "--json", library=lib)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)["exported"]
    assert doc["path"] == str(dest) and "visual/model.onnx" in doc["files"]

    other = tmp_path / "other-lib"
    result = run_cli("models", "import", str(dest), "--json", library=other)
    assert result.returncode == 0, result.stderr
    installed = json.loads(result.stdout)["installed"]
    assert installed["name"] == "out" and installed["layout"] == "immich"
    listed = json.loads(run_cli("models", "--json", library=other).stdout)["models"]
    assert [(m["name"], m["active"]) for m in listed] == [("out", True)]

    from photosearch.api import Library

    _same_vectors(library.models.load("tinyclip"), Library(other).models.load("out"))


def test_immich_exporter_convention_runs(library, immich_style, tmp_path):
    """Inputs ``image``/``text`` int32, batch fixed at 1, EOT padding: the same vectors as our
    conversion, and indexing (batches of several photos) and search work with it."""
    spec = library.import_model_folder(immich_style)
    assert spec["name"] == "tiny-style__test" and spec["arch"] == "tiny-style"
    model = library.models.load()
    io = model._text_inputs()
    assert io.names == ["text"] and io.dtypes == [np.int32] and io.batch == 1 and io.sequence == 77
    _same_vectors(library.models.load("tinyclip"), model, min_cos=0.999)
    for i in range(5):
        write_photo(tmp_path / "photos" / f"p{i}.jpg", i)
    library.index([tmp_path / "photos"], faces=False)
    assert len(library.search_text("a red car", limit=3)) == 3


def test_multilingual_text_tower_gets_attention_mask(library, exported, tmp_path):
    """M-CLIP text towers take ``input_ids`` + ``attention_mask`` (int32); the mask must be the tokenizer's."""
    import torch

    torch.manual_seed(0)

    class MClip(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = torch.nn.Embedding(49408, 16)
            self.proj = torch.nn.Linear(16, 32)

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            x = self.emb(input_ids) * attention_mask.unsqueeze(2)
            x = x.sum(dim=1) / attention_mask.sum(dim=1)[:, None]
            return torch.nn.functional.normalize(self.proj(x), dim=-1)

    folder = tmp_path / "mclip-tiny"
    shutil.copytree(exported, folder)
    (folder / "textual" / "textual.onnx.data").unlink()
    (folder / "textual" / "tokenizer_config.json").write_text(json.dumps({"pad_token": "<end_of_text>",
                                                                          "model_max_length": 77}))
    text_tower = MClip().eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(text_tower, (torch.ones(1, 77, dtype=torch.int32), torch.ones(1, 77, dtype=torch.int32)),
                          str(folder / "textual" / "model.onnx"), input_names=["input_ids", "attention_mask"],
                          output_names=["embedding"], opset_version=17, dynamo=False)
    library.import_model_folder(folder)
    model = library.models.load("mclip-tiny")
    got = model.encode_text(PROMPTS[:4])
    ids, mask = model.tokenizer().encode_batch(PROMPTS[:4])
    with torch.no_grad():
        want = text_tower(torch.tensor(ids), torch.tensor(mask)).numpy()
    assert _cos(got, want).min() > 0.9999
    with torch.no_grad():  # without the mask (all ones) the vectors would differ
        unmasked = text_tower(torch.tensor(ids), torch.ones_like(torch.tensor(mask))).numpy()
    assert _cos(got, unmasked).min() < 0.999


# -- (a)-(d) pull ---------------------------------------------------------------------------------


def test_pull_downloads_checks_and_installs(library, hub, hub_folder):
    messages: list[str] = []
    spec = library.pull_model(REPO, name="tiny-pulled", progress=messages.append)
    assert spec["layout"] == "immich" and spec["source"] == f"pull:immich-app/{REPO}"
    assert library.models.active_name() == "tiny-pulled"
    folder = library.models.root / "tiny-pulled"
    assert (folder / "textual" / "model.onnx").read_bytes() == (hub_folder / "textual" / "model.onnx").read_bytes()
    # The hardware-specific builds and the README are not downloaded; the download folder is gone.
    assert not (folder / "visual" / "fp16").exists() and not (folder / "README.md").exists()
    assert not (library.models.root / ".downloads").exists()
    paths = [p for p, _ in hub.requests]
    assert not any("armnn" in p or "README" in p for p in paths)
    assert any(p.startswith("/cdn/") for p in paths)  # LFS files followed the redirect
    assert any("downloaded textual/model.onnx" in m for m in messages)
    _same_vectors(library.models.load("tinyclip"), library.models.load("tiny-pulled"))


def test_pull_resumes_a_broken_transfer(library, hub, hub_folder):
    size = (hub_folder / "textual" / "model.onnx").stat().st_size
    cut = size // 2
    hub.drop_after["textual/model.onnx"] = cut
    with pytest.raises(NetworkError) as info:
        library.pull_model(REPO, name="tiny-resumed")
    assert "\n" not in str(info.value) and "broke off" in str(info.value) and "again" in str(info.value)
    parts = list((library.models.root / ".downloads" / REPO / "textual").glob("model.onnx.*.part"))
    assert len(parts) == 1 and parts[0].stat().st_size == cut
    assert "tiny-resumed" not in library.models.names()

    first_bytes = hub.bytes_sent
    library.pull_model(REPO, name="tiny-resumed")
    # The Range header goes to resolve/main and, through the LFS redirect, to the CDN.
    ranges = [(p.split("/")[1], r) for p, r in hub.requests if p.endswith("textual/model.onnx") and r]
    assert ranges == [("immich-app", f"bytes={cut}-"), ("cdn", f"bytes={cut}-")]
    total = sum(f.stat().st_size for f in hub_folder.rglob("*") if f.is_file() and "fp16" not in f.parts
                and f.name != "README.md")
    assert hub.bytes_sent < 2 * total
    # Files finished on the first try are not fetched again; the broken one only from where it stopped.
    assert hub.bytes_sent - first_bytes <= total - cut + 1000
    _same_vectors(library.models.load("tinyclip"), library.models.load("tiny-resumed"))


@pytest.mark.parametrize("bad, kind", [("textual/model.onnx", "SHA-256"), ("config.json", "git SHA-1")])
def test_pull_refuses_a_file_that_fails_its_hash(library, hub, bad, kind):
    hub.corrupt.add(bad)
    with pytest.raises(ModelError) as info:
        library.pull_model(REPO, name="tiny-bad")
    assert not isinstance(info.value, NetworkError)
    assert kind in str(info.value) and bad in str(info.value) and "\n" not in str(info.value)
    assert "tiny-bad" not in library.models.names()
    where = (library.models.root / ".downloads" / REPO / bad).parent
    assert not list(where.glob(f"{Path(bad).name}*"))  # the bad download is deleted
    hub.corrupt.clear()
    library.pull_model(REPO, name="tiny-bad")  # the next try gets a good copy
    assert library.models.active_name() == "tiny-bad"


def test_pull_unknown_name(library, hub):
    with pytest.raises(UsageError, match="unknown model 'No-Such-Model__x'"):
        library.pull_model("No-Such-Model__x")
    result = run_cli("models", "pull", "No-Such-Model__x", library=library.paths.root, env=_online_env(hub.url))
    assert "unknown model" in _one_line_error(result, 2)


def test_pull_offline_fails_fast(library, monkeypatch):
    """An endpoint that accepts connections but never answers, one that refuses them, and offline mode."""
    for var in ("PHOTOSEARCH_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    silent = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # never accepted, never answered
    try:
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{silent.getsockname()[1]}")
        started = time.monotonic()
        with pytest.raises(NetworkError) as info:
            library.pull_model()
        assert time.monotonic() - started < 5
        message = str(info.value)
        assert "\n" not in message and "photosearch models import" in message

        result = run_cli("models", "pull", library=library.paths.root,
                         env=_online_env(f"http://127.0.0.1:{silent.getsockname()[1]}"))
        assert "cannot reach" in _one_line_error(result, 4)
    finally:
        silent.close()

    closed = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there: connection refused
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    started = time.monotonic()
    with pytest.raises(NetworkError):
        library.pull_model()
    assert time.monotonic() - started < 5

    monkeypatch.setenv("PHOTOSEARCH_OFFLINE", "1")
    started = time.monotonic()
    with pytest.raises(NetworkError, match="offline"):
        library.pull_model()
    assert time.monotonic() - started < 0.5
    assert library.models.names() == ["tinyclip"]


def test_pull_offline_mode_sends_nothing(library, hub, monkeypatch):
    monkeypatch.setenv("PHOTOSEARCH_OFFLINE", "1")
    with pytest.raises(NetworkError, match="offline"):
        library.pull_model(REPO)
    assert hub.requests == []


def test_every_fetch_refuses_in_offline_mode_whatever_comes_first(hub, tmp_path, monkeypatch):
    """Each network call checks offline mode itself: a download reached without the listing
    before it (or the face models' OpenCV Zoo fetch) sends nothing either."""
    from photosearch.models.faces import _download
    from photosearch.models.hub import HubClient, RemoteFile

    monkeypatch.setenv("PHOTOSEARCH_OFFLINE", "1")
    client = HubClient(REPO, base=hub.url)
    with pytest.raises(NetworkError, match="offline"):
        client.download(RemoteFile("config.json", 10, None, "0" * 40), tmp_path)
    with pytest.raises(OSError, match="offline"):
        _download(f"{hub.url}/face.onnx", tmp_path / "face.onnx")
    assert hub.requests == [] and not (tmp_path / "face.onnx").exists()


def test_cli_pull_json(library, hub):
    result = run_cli("models", "pull", REPO, "--name", "tiny-cli", "--json", library=library.paths.root,
                     env=_online_env(hub.url))
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["installed"]["name"] == "tiny-cli" and doc["installed"]["layout"] == "immich"


# -- (g) bad inputs through the CLI ----------------------------------------------------------------


def test_cli_bad_inputs(library, exported, tmp_path):
    lib = library.paths.root
    assert "model folder not found" in _one_line_error(run_cli("models", "import", str(tmp_path / "nope"),
                                                               library=lib), 3)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "not an Immich model folder" in _one_line_error(run_cli("models", "import", str(empty), library=lib), 3)

    partial = tmp_path / "partial"
    shutil.copytree(exported, partial)
    (partial / "textual" / "tokenizer_config.json").unlink()
    assert "incomplete" in _one_line_error(run_cli("models", "import", str(partial), library=lib), 3)

    corrupt = tmp_path / "corrupt"
    shutil.copytree(exported, corrupt)
    (corrupt / "visual" / "model.onnx").write_bytes(np.random.default_rng(0).bytes(5000))
    assert "cannot load model file" in _one_line_error(run_cli("models", "import", str(corrupt), "--json",
                                                               library=lib), 4)
    assert library.models.names() == ["tinyclip"]
    assert not [p for p in library.models.root.iterdir() if p.name.startswith(".tmp")]

    assert "already installed" in _one_line_error(run_cli("models", "import", str(exported), "--name", "tinyclip",
                                                          library=lib), 2)
    assert "no model named" in _one_line_error(run_cli("models", "export", "nope", str(tmp_path / "x"),
                                                       library=lib), 2)
    full = tmp_path / "full"
    full.mkdir()
    (full / "something.txt").write_text("x")
    assert "not empty" in _one_line_error(run_cli("models", "export", "tinyclip", str(full), "--json",
                                                  library=lib), 3)
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    assert "not a folder" in _one_line_error(run_cli("models", "export", "tinyclip", str(a_file), library=lib), 3)
    _one_line_error(run_cli("models", "export", "tinyclip", str(a_file / "sub"), library=lib), 3)
    if Path("/proc/self").is_dir():  # unwritable even for root
        assert "writable" in _one_line_error(run_cli("models", "export", "tinyclip", "/proc/photosearch-export",
                                                     library=lib), 3)


def test_api_bad_inputs(library, tmp_path):
    with pytest.raises(InputError, match="not found"):
        library.import_model_folder(tmp_path / "missing")
    bad_name = tmp_path / "bad name!"
    bad_name.mkdir()
    with pytest.raises(InputError):
        library.import_model_folder(bad_name)
    with pytest.raises(UsageError, match="invalid model name"):
        library.pull_model("../escape")
    with pytest.raises(UsageError):
        library.export_model("nope", tmp_path / "x")


def test_layouts_share_the_store(library, exported):
    """Old-format models still load; a model whose Immich files went missing says so."""
    library.import_model_folder(exported, name="tiny-imm")
    names = library.models.names()
    assert names == ["tiny-imm", "tinyclip"]
    assert library.models.load("tinyclip").encode_text(["a"]).shape == (1, 32)
    os.remove(library.models.root / "tiny-imm" / "textual" / "tokenizer.json")
    with pytest.raises(ModelError, match="incomplete"):
        library.models.load("tiny-imm")
