"""The timeline: every shown photo and video, newest first, a page at a time, and the months it spans.

A page is asked for by a cursor, the (date, id) of the last item of the page before, so that paging
deep into a large library costs what the first page does, and photos indexed meanwhile never shift a
page. A photo without a capture date is placed at its file's modification time.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from photosearch.errors import UsageError
from photosearch.files import shown_path
from photosearch.store.catalog import Catalog

MAX_PAGE = 1000


def _cursor(at: datetime, pid: int) -> str:
    return f"{at.isoformat()}~{pid}"


def parse_cursor(cursor: str | None) -> tuple[datetime, int] | None:
    """(when, id) from a cursor; UsageError (one line) for one that is not ours."""
    if not cursor:
        return None
    try:
        when, _, pid = cursor.rpartition("~")
        return datetime.fromisoformat(when), int(pid)
    except ValueError:
        raise UsageError(f"not a timeline cursor: {cursor[:60]!r}") from None


def page(cat: Catalog, cursor: str | None = None, limit: int = 200) -> dict[str, Any]:
    """{"photos": [...], "next": cursor of the page after, or None at the oldest photo}."""
    if not 1 <= limit <= MAX_PAGE:
        raise UsageError(f"limit must be 1 to {MAX_PAGE}")
    rows = cat.timeline_page(parse_cursor(cursor), limit + 1)  # one more: is there a page after?
    more = len(rows) > limit
    rows = rows[:limit]
    photos = [{"id": r["id"], "path": shown_path(r["path"]), "width": r["width"], "height": r["height"],
               "media": r["media"] or "photo", "duration": r["duration"],
               "taken_at": r["taken_at"].isoformat() if r["taken_at"] else None, "at": r["sort_at"].isoformat()}
              for r in rows]
    nxt = _cursor(rows[-1]["sort_at"], rows[-1]["id"]) if more else None
    return {"photos": photos, "next": nxt}


def months(cat: Catalog) -> list[dict[str, Any]]:
    """[{"year", "month", "photos", "cursor"}], newest first; ``cursor`` asks for the month's first page."""
    out = []
    for y, m, n in cat.timeline_months():
        following = datetime(y + (m == 12), m % 12 + 1, 1)
        out.append({"year": y, "month": m, "photos": n, "cursor": _cursor(following, 0)})
    return out


__all__ = ["page", "months", "parse_cursor", "MAX_PAGE"]
