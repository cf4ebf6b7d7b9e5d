"""Writing a file so that readers and crashes only ever see the old or the new version.

Every file photosearch writes (catalog state, vector indexes, journals, thumbnails, model
files, exports) goes through :func:`replacing` or :func:`write_atomic`: the bytes go to a
temporary file beside the target, which is flushed to disk, renamed over the target, and the
folder itself is flushed so the rename survives a power cut.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def fsync_dir(folder: str | os.PathLike[str]) -> None:
    """Flush a folder's entries (a rename or a new file in it) to disk; a no-op where unsupported."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_file(path: str | os.PathLike[str]) -> None:
    """Flush a file's bytes to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temporary_path(path: str | os.PathLike[str], suffix: str = ".tmp") -> Path:
    """A new, unused name beside ``path`` (hidden, unique per call: threads writing one target
    never share a temporary file)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{suffix}")


@contextmanager
def replacing(path: str | os.PathLike[str], *, suffix: str = ".tmp", durable: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write; on success it replaces ``path``.

    The caller (or the library it hands the path to) writes the whole file there. Then it is
    fsynced, renamed over ``path`` and the folder fsynced (``durable=False`` skips the flushes,
    for caches that can be rebuilt). On an error the temporary file is removed and ``path`` is
    untouched. The suffix lets libraries that go by extension (Pillow, faiss) see the right one.
    """
    target = Path(path)
    tmp = temporary_path(target, suffix)
    try:
        yield tmp
        if durable:
            fsync_file(tmp)
        os.replace(tmp, target)
        if durable:
            fsync_dir(target.parent)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise


def unwritable_reason(folder: str | os.PathLike[str]) -> str | None:
    """Create ``folder`` (and its parents) if needed; None if files can be written in it, else why not."""
    path = Path(folder)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"cannot create {path}: {exc.strerror}"
    if not os.access(path, os.W_OK):
        return f"{path} is not writable"
    return None


def write_atomic(path: str | os.PathLike[str], data: bytes | str, *, durable: bool = True) -> None:
    """Replace ``path`` with ``data`` (text is written as UTF-8), atomically."""
    with replacing(path, durable=durable) as tmp:
        tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)


def file_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 of a file, read in 1 MiB chunks (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
