"""Writing a file so that readers and crashes only ever see the old or the new version.

Every file photosearch writes (catalog state, vector indexes, journals, thumbnails, model
files, exports) goes through :func:`replacing` or :func:`write_atomic`: the bytes go to a
temporary file beside the target, which is flushed to disk, renamed over the target, and the
folder itself is flushed so the rename survives a power cut.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


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
    with open(os_path(path), "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# -- file names that are not UTF-8 ---------------------------------------------------------
#
# POSIX file names are bytes. Python hands undecodable bytes over as lone surrogates
# (U+DC80..U+DCFF, PEP 383), which DuckDB, Arrow and JSON readers refuse. Photo paths are
# therefore kept as *catalog text*: each such byte becomes NUL + the Latin-1 character of the
# byte. NUL can never occur in a file name, so the form is unambiguous and reversible, and valid
# UTF-8 names (nearly all) are the same in both forms. Both helpers accept either form.

_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")
_NUL_BYTE = re.compile("\x00([\x80-\xff])")


def text_path(path: str | os.PathLike[str]) -> str:
    """A path as catalog text (storable and printable), from the OS form or the catalog form."""
    path = os.fspath(path)
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        return _ESCAPED_BYTE.sub(lambda m: "\x00" + chr(ord(m.group()) - 0xDC00), path)


def os_path(path: str | os.PathLike[str]) -> str:
    """A path as the OS takes it (undecodable bytes as PEP 383 surrogates), from either form."""
    path = os.fspath(path)
    if "\x00" not in path:
        return path
    return _NUL_BYTE.sub(lambda m: chr(0xDC00 + ord(m.group(1))), path)


def shown_path(path: str | os.PathLike[str]) -> str:
    """A path for people to read: bytes that are not UTF-8 shown escaped (``caf\\xe9.jpg``)."""
    return os.fsencode(os_path(path)).decode("utf-8", "backslashreplace")


def path_exists(path: str | os.PathLike[str]) -> bool:
    """``os.path.exists`` for a path in either form (a catalog-text path with a NUL mark would
    otherwise read as missing, and its photo as gone)."""
    return os.path.exists(os_path(path))


def shown_doc(doc: Any) -> Any:
    """A JSON-like document with every string that holds a name which is not UTF-8 (in either
    form) shown escaped, for output that people and other programs read."""
    if isinstance(doc, str):
        try:
            doc.encode("utf-8")
            if "\x00" not in doc:
                return doc
        except UnicodeEncodeError:
            pass
        return shown_path(doc)
    if isinstance(doc, dict):
        return {k: shown_doc(v) for k, v in doc.items()}
    if isinstance(doc, (list, tuple)):
        return [shown_doc(v) for v in doc]
    return doc
