"""One writer per library: an advisory lock every command that changes the library holds.

``<library>/writer.lock`` is locked with ``flock`` for as long as a command writes (index,
sync, organize, dupes moves, undo, tag and people edits, the web UI's write requests); it also
says who holds it (command, pid, since) for the message a second writer gets. The kernel drops
a flock when its process dies, so a lock left by a killed command is simply free: nothing to
clean up. Readers (search, like, face, the web UI's pages) never take it.

Within one process the lock is re-entrant (a ``watch`` batch indexes, tags and moves under
its own lock); threads of one process (the web server's) take turns through a mutex.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from photosearch.errors import LibraryError

LOCK_FILE = "writer.lock"
ENV_WAIT = "PHOTOSEARCH_LOCK_WAIT"   # seconds a second writer waits before giving up (default 3)
DEFAULT_WAIT_S = 3.0


class LibraryBusy(LibraryError):
    """Another process is writing this library."""


class _Held:
    def __init__(self) -> None:
        self.mutex = threading.RLock()
        self.count = 0
        self.fd: int | None = None


_held: dict[str, _Held] = {}
_held_guard = threading.Lock()


def _wait_s() -> float:
    try:
        return max(0.0, float(os.environ.get(ENV_WAIT, DEFAULT_WAIT_S)))
    except ValueError:
        return DEFAULT_WAIT_S


def holder(root: Path) -> dict[str, object] | None:
    """Who holds (or last held) the library's writer lock: {"command", "pid", "since"}, or None."""
    try:
        data = json.loads((root / LOCK_FILE).read_text(encoding="utf-8") or "null")
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None


@contextmanager
def writing(root: Path, command: str, *, wait_s: float | None = None) -> Iterator[None]:
    """Hold the library's writer lock for the ``with`` block. A second writer waits up to
    ``wait_s`` (PHOTOSEARCH_LOCK_WAIT, default 3 s) and then gets :class:`LibraryBusy` naming
    the holder."""
    import fcntl

    key = os.path.realpath(root)
    with _held_guard:
        held = _held.setdefault(key, _Held())
    wait = _wait_s() if wait_s is None else wait_s
    deadline = time.monotonic() + wait
    if not held.mutex.acquire(timeout=max(wait, 0.001)):
        raise LibraryBusy(f"this library is being changed by another request of this process ({command} waits); "
                          "try again in a moment")
    try:
        if held.count == 0:
            try:
                root.mkdir(parents=True, exist_ok=True)
                fd = os.open(root / LOCK_FILE, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
            except OSError as exc:
                raise LibraryError(f"cannot write the library folder {root}: {exc.strerror or exc}") from None
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError:
                    if time.monotonic() >= deadline:
                        os.close(fd)
                        raise LibraryBusy(_busy_message(root, command)) from None
                    time.sleep(0.05)
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps({"command": command, "pid": os.getpid(),
                                      "since": datetime.now().isoformat(timespec="seconds")}).encode(), 0)
            held.fd = fd
        held.count += 1
        try:
            yield
        finally:
            held.count -= 1
            if held.count == 0 and held.fd is not None:
                fd, held.fd = held.fd, None
                try:
                    os.ftruncate(fd, 0)
                finally:
                    fcntl.flock(fd, fcntl.LOCK_UN)
                    os.close(fd)
    finally:
        held.mutex.release()


def _busy_message(root: Path, command: str) -> str:
    h = holder(root) or {}
    who = f"`photosearch {h['command']}` (pid {h['pid']}, since {h.get('since', '?')})" if h.get("command") else \
        "another photosearch command"
    return (f"the library {root} is being changed by {who}; {command} did not start. Wait for it to finish "
            f"(or stop it) and run the command again")


__all__ = ["writing", "holder", "LibraryBusy", "LOCK_FILE"]
