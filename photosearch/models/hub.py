"""Download Immich's ready ONNX model folders from the Hugging Face hub (or a mirror), with urllib.

``GET {endpoint}/api/models/immich-app/{NAME}/tree/main?recursive=true`` lists the files
with their sizes and hashes; each needed file comes from
``{endpoint}/immich-app/{NAME}/resolve/main/{path}``. The endpoint is ``$HF_ENDPOINT``
(default https://huggingface.co), so a mirror or a local test server can stand in.

Transfers go to ``.part`` files in a download folder and resume with an HTTP Range
request when run again; every file is checked against the listing (SHA-256 of LFS files,
the git blob SHA-1 of small ones) before it is used. Offline, or with an endpoint that
does not answer, a pull fails within a few seconds with one NetworkError line: name
resolution and the listing have short timeouts, and nothing is retried automatically.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from photosearch import __version__
from photosearch.errors import ModelError, NetworkError, UsageError
from photosearch.models.network import offline, resolve

DEFAULT_ENDPOINT = "https://huggingface.co"
OWNER = "immich-app"
#: Seconds. Name resolution, then the listing's connect and each of its reads: a pull that
#: cannot reach the endpoint fails in about RESOLVE_TIMEOUT + LIST_TIMEOUT at most.
RESOLVE_TIMEOUT = 2.0
LIST_TIMEOUT = 2.5
#: Connect and each read of a file transfer (the listing answered, so the endpoint is up).
DOWNLOAD_TIMEOUT = 20.0
_CHUNK = 1 << 20
_OFFLINE_HINT = ("on an offline machine copy an Immich model folder here and run "
                 "`photosearch models import DIR`, or set HF_ENDPOINT to a reachable mirror")


def endpoint() -> str:
    """The hub's base URL: ``$HF_ENDPOINT`` or https://huggingface.co."""
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).strip().rstrip("/")


@dataclass(frozen=True)
class RemoteFile:
    """One file of a hub repository, as the tree listing describes it."""

    path: str
    size: int
    sha256: str | None  # LFS files: the SHA-256 of the content
    git_oid: str | None  # other files: the git blob SHA-1

    @property
    def check(self) -> str:
        """The hash that names this file's content (for part-file names)."""
        return (self.sha256 or self.git_oid or "nohash")[:16]


class _NotFound(Exception):
    pass


def _resolve(host: str, port: int, timeout: float) -> None:
    """NetworkError unless ``host`` resolves within ``timeout`` seconds."""
    why = resolve(host, port, timeout)
    if why is not None:
        raise NetworkError(f"cannot resolve {host} ({why}); {_OFFLINE_HINT}")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        exc = exc.reason if isinstance(exc.reason, BaseException) else exc
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return "no answer in time"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc).strip().splitlines()
    return (text[0][:120] if text else "") or type(exc).__name__


class HubClient:
    """Lists and downloads one hub repository's files (``immich-app/NAME``)."""

    def __init__(self, repo: str, *, base: str | None = None,
                 progress: Callable[[str], None] | None = None) -> None:
        self.repo = repo
        self.base = base or endpoint()
        self.say = progress or (lambda _msg: None)
        parsed = urllib.parse.urlsplit(self.base)
        self.valid = parsed.scheme in ("http", "https") and bool(parsed.hostname)
        self.host = parsed.hostname or ""
        try:
            self.port = parsed.port or (443 if parsed.scheme == "https" else 80)
        except ValueError:  # a port that is not a number
            self.valid, self.port = False, 0

    def _open(self, url: str, timeout: float, headers: dict[str, str] | None = None) -> Any:
        # Every request of the client comes through here: offline mode is checked where it
        # cannot be bypassed, not only by the listing that usually comes first.
        if offline():
            raise NetworkError(f"cannot download {self.repo}: offline mode is set (PHOTOSEARCH_OFFLINE or "
                               f"HF_HUB_OFFLINE); {_OFFLINE_HINT}")
        request = urllib.request.Request(url, headers={"User-Agent": f"photosearch/{__version__}", **(headers or {})})
        try:
            return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 - http(s) checked in list_files
        except urllib.error.HTTPError as exc:
            exc.close()
            # The hub answers 401 (not 404) for a repository that does not exist, unless logged in.
            if exc.code in (401, 404):
                raise _NotFound() from None
            raise NetworkError(f"{self.host} answered HTTP {exc.code} ({exc.reason}) for {url}") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            raise NetworkError(f"cannot download {self.repo}: cannot reach {self.host}:{self.port} ({_reason(exc)}); "
                               f"{_OFFLINE_HINT}") from None

    def list_files(self) -> list[RemoteFile]:
        """The repository's files (recursive) with sizes and hashes; NetworkError/UsageError on failure."""
        if offline():
            raise NetworkError(f"cannot download {self.repo}: offline mode is set (PHOTOSEARCH_OFFLINE or "
                               f"HF_HUB_OFFLINE); {_OFFLINE_HINT}")
        if not self.valid:
            raise UsageError(f"HF_ENDPOINT is not an http(s) URL: {self.base!r}")
        _resolve(self.host, self.port, RESOLVE_TIMEOUT)
        url: str | None = f"{self.base}/api/models/{self.repo}/tree/main?recursive=true"
        files: list[RemoteFile] = []
        pages = 0
        while url and pages < 50:
            pages += 1
            try:
                resp = self._open(url, LIST_TIMEOUT)
            except _NotFound:
                raise UsageError(f"unknown model {self.repo.split('/', 1)[1]!r}: {self.base} has no repository "
                                 f"{self.repo} (see https://huggingface.co/immich-app for the names)") from None
            try:
                with resp:
                    entries = json.loads(resp.read())
                    link = resp.headers.get("Link", "")
            except (OSError, http.client.HTTPException) as exc:
                raise NetworkError(f"cannot read the file list of {self.repo} from {self.host} ({_reason(exc)}); "
                                   f"{_OFFLINE_HINT}") from None
            except ValueError:
                raise NetworkError(f"{self.host} sent a file list for {self.repo} that is not JSON") from None
            if not isinstance(entries, list):
                raise NetworkError(f"{self.host} sent an unexpected file list for {self.repo}")
            for e in entries:
                if not isinstance(e, dict) or e.get("type") != "file" or not isinstance(e.get("path"), str):
                    continue
                lfs = e.get("lfs") if isinstance(e.get("lfs"), dict) else None
                size = int((lfs or e).get("size", 0))
                files.append(RemoteFile(e["path"], size, str(lfs["oid"]) if lfs else None,
                                        None if lfs else str(e.get("oid", "")) or None))
            # Long listings come in pages, the next one named by a Link header.
            m = re.search(r'<([^>]+)>;\s*rel="next"', link)
            url = urllib.parse.urljoin(self.base + "/", m.group(1)) if m else None
        return files

    def download(self, file: RemoteFile, folder: Path) -> Path:
        """Fetch one file into ``folder`` (as ``folder/<path>``), resuming a ``.part`` left by an
        earlier try, and check its hash; returns the final path."""
        final = folder / file.path
        if final.is_file():
            if _matches(final, file):
                return final
            final.unlink()
        part = final.with_name(f"{final.name}.{file.check}.part")
        part.parent.mkdir(parents=True, exist_ok=True)
        have = part.stat().st_size if part.exists() else 0
        if have > file.size:
            part.unlink()
            have = 0
        if have < file.size or not part.exists():
            self._fetch(file, part, have)
        if not _matches(part, file):
            part.unlink()
            kind = "SHA-256" if file.sha256 else "git SHA-1"
            raise ModelError(f"downloaded {file.path} of {self.repo} does not match its {kind} from the file list; "
                             "deleted it: run the command again")
        os.replace(part, final)
        return final

    def _fetch(self, file: RemoteFile, part: Path, have: int) -> None:
        quoted = urllib.parse.quote(file.path)
        url = f"{self.base}/{self.repo}/resolve/main/{quoted}"
        headers = {"Range": f"bytes={have}-"} if have else {}
        try:
            resp = self._open(url, DOWNLOAD_TIMEOUT, headers)
        except _NotFound:
            raise NetworkError(f"{self.host} listed {file.path} of {self.repo} but does not serve it "
                               "(HTTP 404)") from None
        with resp:
            mode = "wb"
            if have and resp.status == 206:
                m = re.match(r"bytes (\d+)-", resp.headers.get("Content-Range", ""))
                if m and int(m.group(1)) == have:
                    mode = "ab"
                else:
                    part.unlink(missing_ok=True)  # the next try starts from zero
                    raise NetworkError(f"{self.host} answered a resumed download of {file.path} with the wrong range; "
                                       "run the command again")
            if mode == "wb":
                have = 0  # a 200 reply: the server ignored the range, so start from zero
            if have:
                self.say(f"resuming {file.path} at {_mb(have)} of {_mb(file.size)}")
            last = time.monotonic()
            with open(part, mode) as out:
                while True:
                    try:
                        chunk = resp.read(_CHUNK)
                    except (OSError, http.client.HTTPException) as exc:
                        raise NetworkError(
                            f"download of {file.path} broke off at {_mb(have)} of {_mb(file.size)} ({_reason(exc)}); "
                            "run the same command again to resume") from None
                    if not chunk:
                        break
                    out.write(chunk)
                    have += len(chunk)
                    if time.monotonic() - last >= 1.0:
                        last = time.monotonic()
                        self.say(f"downloading {file.path}: {_mb(have)} of {_mb(file.size)}")
        if have != file.size:
            # http.client returns a short body without an error when the connection drops.
            raise NetworkError(f"download of {file.path} broke off at {_mb(have)} of {_mb(file.size)}; "
                               "run the same command again to resume")
        self.say(f"downloaded {file.path} ({_mb(file.size)})")


def _matches(path: Path, file: RemoteFile) -> bool:
    """Whether ``path`` has the size and hash the listing gives for ``file``."""
    if path.stat().st_size != file.size:
        return False
    if file.sha256:
        h = hashlib.sha256()
        expected = file.sha256
    elif file.git_oid:
        # git's blob id: SHA-1 over a "blob <size>\0" header and the content.
        h = hashlib.sha1(b"blob %d\0" % file.size, usedforsecurity=False)
        expected = file.git_oid
    else:
        return True
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest() == expected.lower()


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n} bytes"


__all__ = ["HubClient", "RemoteFile", "endpoint", "offline", "DEFAULT_ENDPOINT", "OWNER"]
