"""The library's model store: installed models, the active one, pull, import and export.

Each model is a folder ``models/<name>/`` (see photosearch/store/schema/FORMAT.md) in one of two layouts:
photosearch's own (converted from open_clip by convert.py, which needs torch) or
Immich's ready ONNX layout (pulled from the hub or imported from a folder, no torch).
The active model's name is in ``models/ACTIVE``. Installing writes into a temporary
folder and renames it into place, so a failed or interrupted install leaves nothing
half-written behind; downloads wait in ``models/.downloads/<NAME>/`` so that an
interrupted pull resumes.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from photosearch.config import LibraryPaths
from photosearch.errors import LibraryError, InputError, ModelError, NetworkError, UsageError
from photosearch.models.clip import IMMICH_FILES, IMMICH_LAYOUT, ClipModel, model_files, read_spec
from photosearch.models.quantize import add_int8, has_int8, library_photos

#: What `models pull` installs by default: Immich's ready ONNX export of OpenAI's ViT-B/32.
DEFAULT_MODEL = "ViT-B-32__openai"
#: The open_clip model `models pull ARCH:PRETRAINED` documents (converted through torch).
DEFAULT_ARCH = "ViT-B-32-256"
DEFAULT_PRETRAINED = "datacomp_s34b_b86k"
HUB_HOST = "huggingface.co"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
DOWNLOADS = ".downloads"


def missing_model_message(library: Path) -> str:
    """The one line shown when a command needs a CLIP model and the library has none."""
    return (
        f"no CLIP model installed in {library}: run `photosearch models pull` (downloads the ready ONNX model "
        f"{DEFAULT_MODEL}; needs internet) or, offline, `photosearch models import DIR` with an Immich model folder "
        f"(or `photosearch models import ARCH FILE` to convert an open_clip checkpoint)"
    )


@dataclass
class ModelInfo:
    """An installed CLIP model as listed by ``ModelStore``; ``size_bytes`` is the folder's total size."""

    name: str
    arch: str
    source: str
    embed_dim: int
    image_size: int
    active: bool
    size_bytes: int
    #: The image tower's int8 version: "int8" (it passed its check against fp32), "fp32 only"
    #: (with ``int8_note`` saying why) or "fp32" (none made yet: `photosearch models quantize`).
    int8: str = "fp32"
    int8_note: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The info's fields as a plain dict."""
        return dict(self.__dict__)


class ModelStore:
    """Installed models of one library."""

    def __init__(self, paths: LibraryPaths) -> None:
        self.paths = paths
        self.root = paths.models

    def _active_file(self) -> Path:
        return self.root / "ACTIVE"

    def names(self) -> list[str]:
        """Names of the installed models, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir()
                      if p.is_dir() and not p.name.startswith(".") and (p / "model.json").is_file())

    def active_name(self) -> str | None:
        """The active model: the one named in ACTIVE if installed, else the only one installed, else None."""
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
        """Every installed model (either layout), the active one marked."""
        active = self.active_name()
        out = []
        for name in self.names():
            folder = self.root / name
            spec = read_spec(folder)
            # rglob: Immich-layout models keep their files in visual/ and textual/.
            size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
            info = ModelInfo(name, spec.get("arch", "?"), spec.get("source", ""), int(spec.get("embed_dim", 0)),
                             int(spec.get("image_size", 0)), name == active, size)
            check = spec.get("int8")
            if has_int8(folder, spec):
                info.int8 = "int8"
                info.int8_note = (f"checked on {check.get('images')} images: mean cosine {check.get('mean_cosine')}, "
                                  f"minimum {check.get('min_cosine')}")
            elif check:
                info.int8, info.int8_note = "fp32 only", str(check.get("reason", ""))
            out.append(info)
        return out

    def quantize(self, name: str | None = None, *, force: bool = False,
                 progress: Callable[[str], None] | None = None) -> dict[str, Any]:
        """Make (or with ``force`` remake) the int8 image tower of an installed model and check it
        against fp32 on the library's photos and generated images; returns the check's record."""
        name = name or self.active_name()
        if name is None or name not in self.names():
            self.load(name)  # raises the right "no model" line
        folder = self.root / str(name)
        spec = read_spec(folder)
        if spec.get("kind") == "fake":
            raise UsageError(f"model {name!r} is a test stand-in: it has no ONNX files to quantize")
        if spec.get("int8") and not force and (has_int8(folder, spec) or spec["int8"].get("reason")):
            return dict(spec["int8"]) | {"unchanged": True}
        add_int8(folder, spec, photos=library_photos(self.paths.root), say=progress)
        try:
            self._write_atomic(folder / "model.json", json.dumps(spec, indent=2))
        except OSError as exc:
            raise LibraryError(f"cannot write to the model store {self.root}: {exc.strerror}") from None
        return dict(spec["int8"])

    def set_active(self, name: str) -> None:
        """Make an installed model the active one; UsageError if it is not installed."""
        if name not in self.names():
            known = ", ".join(self.names()) or "none"
            raise UsageError(f"no model named {name!r} is installed (installed: {known})")
        try:
            self._write_atomic(self._active_file(), name + "\n")
        except OSError as exc:
            raise LibraryError(f"cannot write to the model store {self.root}: {exc.strerror}") from None

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
        spec = read_spec(folder)
        for f in model_files(spec):
            if not (folder / f).is_file():
                raise ModelError(f"model {name!r} is incomplete ({f} missing); import or pull it again")
        return open_model(folder, spec, **kwargs)

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
        """Download a model and make it active.

        A plain NAME (default ``ViT-B-32__openai``) is Immich's ready ONNX folder
        ``immich-app/NAME`` on the hub (``$HF_ENDPOINT``), downloaded without torch;
        ``ARCH:PRETRAINED`` is an open_clip model converted through torch (the convert extra).
        """
        from photosearch.models.hub import OWNER  # here, not at import: urllib costs a query ~15 ms

        if spec and (":" in spec or ("/" in spec and not spec.startswith(f"{OWNER}/"))):
            return self.pull_open_clip(spec, name=name, force=force, progress=progress)
        return self.pull_immich(spec or DEFAULT_MODEL, name=name, force=force, progress=progress)

    def pull_open_clip(self, spec: str, *, name: str | None = None, force: bool = False,
                       progress: Callable[[str], None] | None = None) -> dict[str, Any]:
        """Download an open_clip model (``ARCH:TAG``), convert it to ONNX, verify and activate it (needs torch)."""
        from photosearch.models.network import offline, reachable

        arch, _, tag = spec.replace("/", ":").partition(":")
        if not tag:
            raise UsageError(f"give the model as ARCH:PRETRAINED, e.g. {DEFAULT_ARCH}:{DEFAULT_PRETRAINED}")
        name = self._check_name(name or f"{arch}-{tag}", force)
        offline_hint = f"on an offline machine copy the checkpoint here and run `photosearch models import {arch} FILE`"
        if offline():
            raise NetworkError(f"cannot download {arch}:{tag}: offline mode is set (HF_HUB_OFFLINE); {offline_hint}")
        if not reachable(HUB_HOST, 443, timeout=3.0):
            raise NetworkError(f"cannot download {arch}:{tag}: {HUB_HOST} is unreachable; {offline_hint}")
        # Keep huggingface_hub from retrying for minutes on a flaky network.
        os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", "10")
        os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", "30")
        return self._install(name, force, progress, arch=arch, pretrained=tag, source=f"pull:{arch}:{tag}")

    def pull_immich(self, model: str = DEFAULT_MODEL, *, name: str | None = None, force: bool = False,
                    progress: Callable[[str], None] | None = None) -> dict[str, Any]:
        """Download Immich's ONNX folder ``immich-app/<model>`` (resumable, hash-checked), install and activate it."""
        from photosearch.models import immich
        from photosearch.models.hub import OWNER, HubClient

        repo_name = model.removeprefix(f"{OWNER}/")
        if not _NAME_RE.match(repo_name):
            raise UsageError(f"invalid model name {model!r}: give an Immich model name such as {DEFAULT_MODEL}")
        name = self._check_name(name or repo_name, force)
        say = progress or (lambda _msg: None)
        client = HubClient(f"{OWNER}/{repo_name}", progress=say)
        files = [f for f in client.list_files() if immich.wanted(f.path)]
        listed = {f.path for f in files}
        missing = [f for f in IMMICH_FILES if f not in listed]
        if missing:
            raise ModelError(f"{OWNER}/{repo_name} is not an Immich CLIP model folder ({', '.join(missing)} missing)")
        downloads = self.root / DOWNLOADS / repo_name
        try:
            downloads.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ModelError(f"cannot write to the model store {self.root}: {exc.strerror}") from None
        say(f"downloading {len(files)} files ({sum(f.size for f in files) / 1e6:.1f} MB) of {OWNER}/{repo_name} "
            f"from {client.base}")
        for f in files:
            client.download(f, downloads)
        spec = self._install_immich(downloads, [f.path for f in files], name, force, move=True,
                                    arch=repo_name.partition("__")[0], source=f"pull:{OWNER}/{repo_name}", say=say)
        shutil.rmtree(downloads, ignore_errors=True)
        with contextlib.suppress(OSError):
            (self.root / DOWNLOADS).rmdir()  # only when no other pull is waiting there
        return spec

    def import_folder(self, folder: str | os.PathLike[str], *, name: str | None = None, force: bool = False,
                      progress: Callable[[str], None] | None = None) -> dict[str, Any]:
        """Install an Immich-layout model folder (works offline) after a trial run; make it active."""
        from photosearch.models import immich

        path = Path(folder).expanduser()
        immich.check_folder(path)
        default = path.resolve().name
        if name is None and not _NAME_RE.match(default):
            raise UsageError(f"the folder name {default!r} is not a valid model name: pass --name NAME")
        name = self._check_name(name or default, force)
        return self._install_immich(path, immich.installable_files(path), name, force, move=False,
                                    arch=default.partition("__")[0], source=f"import:{default}",
                                    say=progress or (lambda _msg: None))

    def export(self, name: str, dest: str | os.PathLike[str]) -> dict[str, Any]:
        """Write installed model ``name`` (either layout) as an Immich-layout folder at ``dest`` (new or empty)."""
        from photosearch.models import immich

        if name not in self.names():
            known = ", ".join(self.names()) or "none"
            raise UsageError(f"no model named {name!r} is installed (installed: {known})")
        folder = self.root / name
        spec = read_spec(folder)
        if spec.get("kind") == "fake":
            raise UsageError(f"{name!r} is a test stand-in (models/fakes.py), not a model that can be exported")
        for f in model_files(spec):
            if not (folder / f).is_file():
                raise ModelError(f"model {name!r} is incomplete ({f} missing); import or pull it again")
        target = immich.prepare_destination(Path(dest))
        try:
            tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
            tmp.chmod(0o755)  # mkdtemp makes it private; the export is meant to be copied and shared
        except OSError as exc:
            raise InputError(f"destination is not writable: {target} ({exc.strerror})") from None
        try:
            immich.write_folder(folder, spec, tmp)
            if target.exists():
                target.rmdir()  # checked empty above
            tmp.rename(target)
        except OSError as exc:
            raise InputError(f"cannot write the model to {target}: {exc.strerror or exc}") from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        files = sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file())
        return {"name": name, "path": str(target), "layout": spec.get("layout", "photosearch"), "files": files,
                "size_bytes": sum((target / f).stat().st_size for f in files)}

    def remove(self, name: str) -> None:
        """Delete an installed model's folder, clearing ACTIVE if it named it; UsageError if not installed."""
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

    def _tmp_folder(self, name: str) -> Path:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            return Path(tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=self.root))
        except OSError as exc:
            raise ModelError(f"cannot write to the model store {self.root}: {exc.strerror}") from None

    def _place(self, built: Path, name: str, force: bool) -> None:
        """Rename a finished model folder into place (replacing one of the same name with ``force``)."""
        final = self.root / name
        if final.exists():
            if not force:
                raise UsageError(f"a model named {name!r} is already installed")
            old = self.root / f".old-{name}-{os.getpid()}"
            final.rename(old)
            built.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            built.rename(final)

    def _install(self, name: str, force: bool, progress: Callable[[str], None] | None, **convert_args: Any) -> dict[str, Any]:
        from photosearch.models.convert import convert

        tmp = self._tmp_folder(name)
        try:
            spec = convert(dest=tmp / name, progress=progress, **convert_args)
            add_int8(tmp / name, spec, photos=library_photos(self.paths.root), say=progress)
            self._write_atomic(tmp / name / "model.json", json.dumps(spec, indent=2))
            self._place(tmp / name, name, force)
            spec["name"] = name
            self.set_active(name)
            return spec
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _install_immich(self, src: Path, files: list[str], name: str, force: bool, *, move: bool, arch: str,
                        source: str, say: Callable[[str], None]) -> dict[str, Any]:
        """Copy (or move) an Immich folder's ``files`` into a temporary folder, check it by a trial
        run, write model.json and rename it into place as the active model."""
        from photosearch.models import immich

        tmp = self._tmp_folder(name)
        try:
            built = tmp / name
            for rel in files:
                target = built / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    if move:
                        os.replace(src / rel, target)
                    else:
                        shutil.copyfile(src / rel, target)
                except OSError as exc:
                    raise ModelError(f"cannot copy {rel} into the model store {self.root}: {exc.strerror}") from None
            spec = immich.folder_spec(built, name=name, arch=arch, source=source)
            say("checking the model (one image, one text)")
            immich.trial_encode(built, spec)
            add_int8(built, spec, photos=library_photos(self.paths.root), say=say)
            (built / "model.json").write_text(json.dumps(spec, indent=2), encoding="utf-8")
            self._place(built, name, force)
            self.set_active(name)
            return spec
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    @staticmethod
    def _write_atomic(path: Path, text: str) -> None:
        from photosearch.files import write_atomic

        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, text)


def open_model(folder: Path, spec: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    """The CLIP model installed in ``folder``: ONNX (either layout), or a test stand-in
    (``"kind": "fake"``, models/fakes.py). ``kwargs`` go to :class:`ClipModel`."""
    spec = spec if spec is not None else read_spec(Path(folder))
    if spec.get("kind") == "fake":
        from photosearch.models.fakes import FakeClip

        return FakeClip.from_folder(Path(folder), spec)
    return ClipModel(Path(folder), spec, **kwargs)


__all__ = ["ModelStore", "ModelInfo", "missing_model_message", "read_spec", "DEFAULT_MODEL", "DEFAULT_ARCH",
           "DEFAULT_PRETRAINED", "IMMICH_LAYOUT"]
