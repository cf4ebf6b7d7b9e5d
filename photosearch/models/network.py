"""The two questions every download asks first: may we use the network, and does the host answer?

Kept apart from the download code so a check costs no urllib import, and so every fetch
(Immich folders, open_clip checkpoints, the face models) honours the same switches and fails
within seconds, with one line, on a machine without a network.
"""

from __future__ import annotations

import os
import socket
import threading
from typing import Any

#: Any of these set to 1/true/yes/on means: do not touch the network (the tests set them).
OFFLINE_VARIABLES = ("PHOTOSEARCH_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


def offline() -> bool:
    """True when the user (or a test) has said not to use the network."""
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on") for v in OFFLINE_VARIABLES)


def resolve(host: str, port: int, timeout: float) -> str | None:
    """None if ``host`` resolves within ``timeout`` seconds, else why not (getaddrinfo itself has no
    deadline: without a network it can hang, so it runs in a thread that is abandoned)."""
    result: dict[str, Any] = {}

    def work() -> None:
        try:
            result["ok"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            result["err"] = exc

    thread = threading.Thread(target=work, name="photosearch-resolve", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        return f"no answer within {timeout:.0f} s"
    if "err" in result:
        return str(result["err"].strerror or result["err"])
    return None


def reachable(host: str, port: int = 443, timeout: float = 3.0) -> bool:
    """Whether ``host:port`` accepts a connection, name resolution and connect each within ``timeout``."""
    if resolve(host, port, timeout) is not None:
        return False
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
