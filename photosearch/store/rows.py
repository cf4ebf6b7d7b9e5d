"""The rows file written beside each vector index: what a search shows per photo.

Holds, for every photo in the index, the fields of a search result (path, date,
camera, size, format, keywords), so an unfiltered search can answer from the
memory-mapped index and this file without opening the catalog (importing and
opening DuckDB is a large part of a cold query). Layout, little-endian:

    b"PSROWS1\\0"  n:int64  ids:int64[n] (ascending)  offsets:int64[n+1]  blob: JSON rows

Derived data, versioned and replaced together with its index; see FORMAT.md.
"""

from __future__ import annotations

import json
import mmap
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

MAGIC = b"PSROWS1\0"


def _camera(make: str | None, model: str | None) -> str | None:
    make, model = (make or "").strip(), (model or "").strip()
    if make and model.lower().startswith(make.split()[0].lower()):
        return model
    return " ".join(p for p in (make, model) if p) or None


def result_fields(row: dict[str, Any]) -> dict[str, Any]:
    """The per-photo fields of a search result, from a catalog row."""
    taken = row.get("taken_at")
    return {
        "path": row["path"],
        "taken_at": taken.isoformat() if hasattr(taken, "isoformat") else taken,
        "camera": _camera(row.get("camera_make"), row.get("camera_model")),
        "width": row.get("width"),
        "height": row.get("height"),
        "format": row.get("format"),
        "keywords": list(row.get("keywords") or []),
        "media": row.get("media") or "photo",
        "duration": row.get("duration"),
    }


def write(path: Path, rows: Iterable[tuple[Any, ...]]) -> int:
    """Write (id, path, taken_at, make, model, width, height, format, keywords, media, duration)
    rows, ids ascending."""
    return write_dicts(path, ((pid, result_fields({
        "path": p, "taken_at": taken, "camera_make": make, "camera_model": model, "width": w, "height": h,
        "format": fmt, "keywords": kw, "media": media, "duration": duration}))
        for pid, p, taken, make, model, w, h, fmt, kw, media, duration in rows))


def write_dicts(path: Path, rows: Iterable[tuple[int, dict[str, Any]]]) -> int:
    """Write (id, JSON-able dict) rows, ids ascending (photo result fields; a frame's video and moment)."""
    ids: list[int] = []
    offsets = [0]
    blob = bytearray()
    for pid, fields in rows:
        ids.append(int(pid))
        blob += json.dumps(fields, ensure_ascii=False).encode("utf-8")
        offsets.append(len(blob))
    from photosearch.files import replacing

    with replacing(path) as tmp, open(tmp, "wb") as f:
        f.write(MAGIC)
        f.write(np.int64(len(ids)).tobytes())
        f.write(np.asarray(ids, dtype="<i8").tobytes())
        f.write(np.asarray(offsets, dtype="<i8").tobytes())
        f.write(bytes(blob))
    return len(ids)


class Rows:
    """Read access to a rows file by photo id, memory-mapped (only touched pages are read)."""

    def __init__(self, path: Path) -> None:
        with open(path, "rb") as f:
            self._mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        if self._mm[:8] != MAGIC:
            raise ValueError(f"{path} is not a photosearch rows file")
        n = int(np.frombuffer(self._mm, dtype="<i8", count=1, offset=8)[0])
        self.ids = np.frombuffer(self._mm, dtype="<i8", count=n, offset=16)
        self.offsets = np.frombuffer(self._mm, dtype="<i8", count=n + 1, offset=16 + 8 * n)
        self._blob = 16 + 8 * n + 8 * (n + 1)

    def get(self, photo_id: int) -> dict[str, Any] | None:
        """The stored row of a photo id, or None if the file has none."""
        i = int(np.searchsorted(self.ids, photo_id))
        if i >= len(self.ids) or self.ids[i] != photo_id:
            return None
        start, end = int(self.offsets[i]), int(self.offsets[i + 1])
        return json.loads(self._mm[self._blob + start:self._blob + end])
