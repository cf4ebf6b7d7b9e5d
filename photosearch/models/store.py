"""The library's model store: installed models, the active one, pull and import.

Each model is a folder ``models/<name>/`` (see index/FORMAT.md); the active
model's name is in ``models/ACTIVE``. Installing converts into a temporary
folder and renames it into place, so a failed or interrupted install leaves
nothing half-written behind.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from photosearch.config import LibraryPaths
from photosearch.errors import InputError, ModelError, NetworkError, UsageError
from photosearch.models.clip import MODEL_FILES, ClipModel, read_spec

DEFAULT_ARCH = "ViT-B-32-256"
DEFAULT_PRETRAINED = "datacomp_s34b_b86k"
HUB_HOST = "huggingface.co"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def missing_model_message(library: Path) -> str:
    return (
        f"no CLIP model installed in {library}: run `photosearch models pull` (downloads "
        f"{DEFAULT_ARCH}/{DEFAULT_PRETRAINED}; needs internet) or, offline, "
        f"`photosearch models import ARCH FILE` (e.g. `photosearch models import {DEFAULT_ARCH} ./open_clip_model.safetensors`)"
    )


@dataclass
class ModelInfo:
    name: str
    arch: str
    source: str
    embed_dim: int
    image_size: int
    active: bool
    size_bytes: int

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class ModelStore:
    """Installed models of one library."""

    def __init__(self, paths: LibraryPaths) -> None:
        self.paths = paths
        self.root = paths.models

    def _active_file(self) -> Path:
        return self.root / "ACTIVE"

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir()
                      if p.is_dir() and not p.name.startswith(".") and (p / "model.json").is_file())

    def active_name(self) -> str | None:
        try:
            name = self._active_file().read_text(encoding="utf-8").strip()
        except OSError:
            name = ""
        names = self.names()
        if name and name in names:
            return name
        # Only one model installed: it is the active one, whatever ACTIVE says.
        return names[0] if len(names) == 1 else None

    def installed(self) -> list[ModelInfo]:
        active = self.active_name()
        out = []
        for name in self.names():
            folder = self.root / name
            spec = read_spec(folder)
            size = sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
            out.append(ModelInfo(name, spec.get("arch", "?"), spec.get("source", ""), int(spec.get("embed_dim", 0)),
                                 int(spec.get("image_size", 0)), name == active, size))
        return out

    def set_active(self, name: str) -> None:
        if name not in self.names():
            known = ", ".join(self.names()) or "none"
            raise UsageError(f"no model named {name!r} is installed (installed: {known})")
        self._write_atomic(self._active_file(), name + "\n")

    def load(self, name: str | None = None, **kwargs: Any) -> ClipModel:
        """The named (default: active) model; ModelError naming pull/import when there is none."""
        name = name or self.active_name()
        if name is None:
            if self.names():
                raise ModelError(
                    f"several models are installed ({', '.join(self.names())}) and none is active: "
                    "run `photosearch models use NAME`"
                )
            raise ModelError(missing_model_message(self.paths.root))
        folder = self.root / name
        if not (folder / "model.json").is_file():
            raise ModelError(f"model {name!r} is not installed; " + missing_model_message(self.paths.root))
        for f in MODEL_FILES:
            if not (folder / f).is_file():
                raise ModelError(f"model {name!r} is incomplete ({f} missing); import or pull it again")
        return ClipModel(folder, **kwargs)

    # -- installing -------------------------------------------------------------------------

    def import_checkpoint(
        self,
        arch: str,
        file: str | os.PathLike[str],
        *,
        name: str | None = None,
        force: bool = False,
        progress: Callable[[str], None] | None = None,
    ) -> dict[str, Any]:
        """Convert a local open_clip checkpoint and install it as the active model (works offline)."""
        path = Path(file).expanduser()
        if not path.exists():
            raise InputError(f"checkpoint not found: {file}")
        if not path.is_file():
            raise InputError(f"checkpoint is not a file: {file}")
        if not os.access(path, os.R_OK):
            raise InputError(f"checkpoint is not readable: {file}")
        if path.stat().st_size == 0:
            raise InputError(f"checkpoint is empty (0 bytes): {file}")
        default = Path(arch).stem if arch.endswith(".json") else arch
        name = self._check_name(name or default, force)
        return self._install(name, force, progress, arch=arch, checkpoint=str(path.resolve()),
                             source=f"import:{path.name}")

    def pull(self, spec: str | None = None, *, name: str | None = None, force: bool = False,
             progress: Callable[[str], None] | None = None) -> dict[str, Any]:
        """Download an open_clip model (``ARCH:TAG``, default the documented one), convert and activate it."""
        from photosearch.models.convert import hub_offline

        arch, _, tag = (spec or f"{DEFAULT_ARCH}:{DEFAULT_PRETRAINED}").replace("/", ":").partition(":")
        if not tag:
            raise UsageError(f"give the model as ARCH:PRETRAINED, e.g. {DEFAULT_ARCH}:{DEFAULT_PRETRAINED}")
        name = self._check_name(name or f"{arch}-{tag}", force)
        offline_hint = f"on an offline machine copy the checkpoint here and run `photosearch models import {arch} FILE`"
        if hub_offline():
            raise NetworkError(f"cannot download {arch}:{tag}: offline mode is set (HF_HUB_OFFLINE); {offline_hint}")
        if not _reachable(HUB_HOST, 443, timeout=3.0):
            raise NetworkError(f"cannot download {arch}:{tag}: {HUB_HOST} is unreachable; {offline_hint}")
        # Keep huggingface_hub from retrying for minutes on a flaky network.
        os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", "10")
        os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", "30")
        return self._install(name, force, progress, arch=arch, pretrained=tag, source=f"pull:{arch}:{tag}")

    def remove(self, name: str) -> None:
        folder = self.root / name
        if name not in self.names():
            raise UsageError(f"no model named {name!r} is installed")
        shutil.rmtree(folder)
        if self._active_file().exists() and self._active_file().read_text().strip() == name:
            self._active_file().unlink()

    def _check_name(self, name: str, force: bool) -> str:
        if not _NAME_RE.match(name):
            raise UsageError(f"invalid model name {name!r}: use letters, digits, '.', '_' and '-'")
        if name in self.names() and not force:
            raise UsageError(f"a model named {name!r} is already installed: pass --name NEW or --force to replace it")
        return name

    def _install(self, name: str, force: bool, progress: Callable[[str], None] | None, **convert_args: Any) -> dict[str, Any]:
        from photosearch.models.convert import convert

        try:
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=self.root))
        except OSError as exc:
            raise ModelError(f"cannot write to the model store {self.root}: {exc.strerror}") from None
        try:
            spec = convert(dest=tmp / name, progress=progress, **convert_args)
            final = self.root / name
            if final.exists():
                if not force:
                    raise UsageError(f"a model named {name!r} is already installed")
                old = self.root / f".old-{name}-{os.getpid()}"
                final.rename(old)
                (tmp / name).rename(final)
                shutil.rmtree(old, ignore_errors=True)
            else:
                (tmp / name).rename(final)
            spec["name"] = name
            self.set_active(name)
            return spec
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    @staticmethod
    def _write_atomic(path: Path, text: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)


def _reachable(host: str, port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


__all__ = ["ModelStore", "ModelInfo", "missing_model_message", "read_spec", "DEFAULT_ARCH", "DEFAULT_PRETRAINED"]
