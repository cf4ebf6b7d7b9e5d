"""Albums: names, a smart album's saved filters, and albums as keywords in the files.

An album written into the files (``sync``) is the keyword path ``Albums/NAME`` (digiKam's
TagsList and Windows' LastKeywordXMP ``Albums/NAME``, Lightroom's ``Albums|NAME``, and NAME in
``dc:subject``), so it survives leaving photosearch; indexing reads such a keyword back into
the album (created if missing).
"""

from __future__ import annotations

import json
from typing import Any

from photosearch.errors import UsageError
from photosearch.store.records import Filters

#: The keyword root albums are written under.
ALBUMS_ROOT = "Albums"
#: The search options a smart album may save, as the CLI names them.
FILTER_KEYS = ("tag", "person", "after", "before", "camera", "folder", "event", "media", "meta", "rating")


def check_album_name(name: str) -> str:
    """The name, tidied; UsageError for one that cannot be a keyword (``|``, ``/``, line breaks)."""
    clean = " ".join(name.split())
    if not clean or len(clean) > 100 or any(ch in clean for ch in "|/\n\r\t"):
        raise UsageError(f"invalid album name {name!r} (no '|', '/' or line breaks; at most 100 characters)")
    return clean


def filters_of(saved: dict[str, Any] | str) -> Filters:
    """The Filters of a smart album's saved options (a dict, or its JSON text)."""
    from photosearch.query.search import make_filters

    if isinstance(saved, str):
        saved = json.loads(saved)
    unknown = set(saved) - set(FILTER_KEYS)
    if unknown:
        raise UsageError(f"unknown album filter(s): {', '.join(sorted(unknown))} (use {', '.join(FILTER_KEYS)})")
    tags = saved.get("tag")
    return make_filters(saved.get("after"), saved.get("before"), saved.get("camera"), saved.get("folder"),
                        saved.get("person"), [tags] if isinstance(tags, str) else tags, saved.get("event"),
                        saved.get("media"), saved.get("meta"), saved.get("rating"))


__all__ = ["ALBUMS_ROOT", "FILTER_KEYS", "check_album_name", "filters_of"]
