"""Google Takeout JSON sidecars: the date, place, description and people Google kept beside a photo.

Takeout writes ``IMG_1234.JPG.json`` (newer exports: ``IMG_1234.JPG.supplemental-metadata.json``)
next to each photo, but truncates long JSON names (to 51 characters), numbers duplicates
as ``IMG_1234(1).JPG`` whose JSON is ``IMG_1234.JPG(1).json``, and keeps one JSON for
``IMG_1234-edited.JPG`` and its original. So a photo is matched by the JSON's ``title``
field (the original file name), not by the JSON's own name: each folder's JSON files are
read once and indexed by title.
"""

from __future__ import annotations

import json
import os
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from photosearch.files import os_path

#: Suffixes Google Photos adds to edited copies, per language.
EDITED_SUFFIXES = ("-edited", "-bearbeitet", "-modifié", "-editado", "-modificato", "-bewerkt", "-redigerad")
_DUP = re.compile(r"^(.*)\((\d+)\)$")
MAX_JSON_BYTES = 1 << 20


@dataclass
class TakeoutInfo:
    """What a Takeout sidecar says about one photo."""

    json_path: str
    taken_at: datetime | None = None
    gps_lat: float | None = None
    gps_lon: float | None = None
    description: str | None = None
    people: list[str] = field(default_factory=list)


def _parse(path: str) -> dict[str, Any] | None:
    try:
        if os.path.getsize(path) > MAX_JSON_BYTES:
            return None
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("title"), str):
        return None
    if not any(k in doc for k in ("photoTakenTime", "geoData", "creationTime", "people")):
        return None
    return doc


class TakeoutIndex:
    """Per-folder maps from Takeout titles to JSON files, built on first use (thread-safe)."""

    def __init__(self) -> None:
        self._folders: dict[str, dict[str, list[tuple[str, dict[str, Any]]]]] = {}
        self._lock = threading.Lock()

    def _folder(self, folder: str) -> dict[str, list[tuple[str, dict[str, Any]]]]:
        with self._lock:
            known = self._folders.get(folder)
        if known is not None:
            return known
        titles: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        try:
            names = [n for n in os.listdir(folder) if n.lower().endswith(".json")]
        except OSError:
            names = []
        for name in sorted(names):
            doc = _parse(os.path.join(folder, name))
            if doc is not None:
                titles.setdefault(doc["title"], []).append((name, doc))
        with self._lock:
            self._folders[folder] = titles
        return titles

    def lookup(self, photo_path: str) -> TakeoutInfo | None:
        """The Takeout sidecar of a photo, if its folder has one."""
        folder, name = os.path.split(os_path(photo_path))
        titles = self._folder(folder)
        if not titles:
            return None
        stem, ext = os.path.splitext(name)
        dup = None
        m = _DUP.match(stem)
        if m:
            stem, dup = m.group(1), m.group(2)
        for suffix in EDITED_SUFFIXES:
            if stem.lower().endswith(suffix):
                stem = stem[: -len(suffix)]
                break
        title = stem + ext
        candidates = titles.get(title)
        if candidates is None:
            lowered = {t.lower(): c for t, c in titles.items()}
            candidates = lowered.get(title.lower())
        if candidates is None and len(stem) >= 30:
            # Takeout also truncates long photo names: match a title that starts with this stem.
            hits = [c for t, c in titles.items() if os.path.splitext(t)[0].startswith(stem)
                    and os.path.splitext(t)[1].lower() == ext.lower()]
            candidates = hits[0] if len(hits) == 1 else None
        if not candidates:
            return None
        marker = f"({dup})" if dup else None
        chosen = None
        for json_name, doc in candidates:
            has_marker = bool(re.search(r"\(\d+\)", json_name))
            if (marker and marker in json_name) or (not marker and not has_marker):
                chosen = (json_name, doc)
                break
        if chosen is None:
            if marker:
                return None  # the numbered copy's own JSON is missing: do not borrow another's
            chosen = candidates[0]
        return _info(os.path.join(folder, chosen[0]), chosen[1])


def _info(path: str, doc: dict[str, Any]) -> TakeoutInfo:
    info = TakeoutInfo(json_path=path)
    for key in ("photoTakenTime", "creationTime"):
        ts = (doc.get(key) or {}).get("timestamp") if isinstance(doc.get(key), dict) else None
        try:
            if ts is not None:
                # Takeout times are UTC; the catalog keeps local-less wall times like EXIF does.
                info.taken_at = datetime.fromtimestamp(int(ts), tz=timezone.utc).replace(tzinfo=None)
                break
        except (TypeError, ValueError, OverflowError, OSError):
            continue
    for key in ("geoData", "geoDataExif"):
        geo = doc.get(key)
        if isinstance(geo, dict):
            try:
                lat, lon = float(geo.get("latitude", 0)), float(geo.get("longitude", 0))
            except (TypeError, ValueError):
                continue
            if (lat, lon) != (0.0, 0.0) and -90 <= lat <= 90 and -180 <= lon <= 180:
                info.gps_lat, info.gps_lon = lat, lon
                break
    desc = doc.get("description")
    if isinstance(desc, str) and desc.strip():
        info.description = desc.strip()
    people = doc.get("people")
    if isinstance(people, list):
        info.people = list(dict.fromkeys(
            p["name"].strip() for p in people if isinstance(p, dict) and isinstance(p.get("name"), str)
            and p["name"].strip()))
    return info


__all__ = ["TakeoutIndex", "TakeoutInfo"]
