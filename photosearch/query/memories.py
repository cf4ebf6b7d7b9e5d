"""Films worth making: on this day in past years, events with many good photos, a person's year.

Each suggestion has a stable id (``day-12-04``, ``event-<key>``, ``person-<id>-<year>``) that
``photosearch film --memory ID`` turns back into the same selection.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from photosearch.errors import UsageError
from photosearch.store.catalog import Catalog
from photosearch.store.records import Filters

#: Photos a suggestion needs at least.
MIN_PHOTOS = 6
#: Days either side of today that count as "this day" in past years.
DAY_WINDOW = 3


def suggestions(cat: Catalog, today: date, *, limit: int = 30) -> list[dict[str, Any]]:
    """Suggested films, best first: on this day, then events, then people's years (largest first)."""
    out: list[dict[str, Any]] = []
    day = _on_this_day(cat, today)
    if day:
        out.append(day)
    for e in sorted(cat.events(), key=lambda e: (-(e["photos"] or 0), e["id"])):
        if (e["photos"] or 0) < MIN_PHOTOS:
            continue
        start, end = e["start_at"], e["end_at"]
        out.append({"id": f"event-{e['key']}", "kind": "event", "title": e["name"],
                    "subtitle": ", ".join(s for s in (_dates(start, end), e.get("place")) if s),
                    "photos": e["photos"]})
    for pid, name, year, n in cat.person_years(MIN_PHOTOS):
        out.append({"id": f"person-{pid}-{year}", "kind": "person", "title": f"{name} in {year}",
                    "subtitle": f"{n} photos and videos", "photos": n})
    out = out[:limit]
    for m in out:  # a cover photo for each (the UI shows it): the first of its photos
        filters, _, extra = selection(cat, m["id"], today)
        ids = extra.get("ids") or cat.filtered_ids(filters).tolist()
        m["cover"] = int(min(ids)) if ids else None
    return out


def selection(cat: Catalog, memory: str, today: date) -> tuple[Filters, str, dict[str, Any]]:
    """The filters, title and description of suggestion ``memory`` (UsageError if unknown)."""
    kind, _, rest = memory.partition("-")
    if kind == "day" and len(rest) == 5 and rest[2] == "-" and rest.replace("-", "").isdigit():
        month, dom = int(rest[:2]), int(rest[3:])
        try:
            when = date(today.year, month, dom)
        except ValueError:
            raise UsageError(f"unknown memory {memory!r}: no such day") from None
        ids = cat.ids_on_day(month, dom, DAY_WINDOW, before_year=today.year)
        return Filters(), f"On this day: {when:%-d %B}", {"ids": ids}
    if kind == "event":
        for e in cat.events():
            if e["key"] == rest:
                return Filters(event=str(e["key"])), e["name"], {}
        raise UsageError(f"unknown memory {memory!r}: no such event (see `photosearch memories`)")
    if kind == "person":
        pid, _, year = rest.partition("-")
        person = cat.person(int(pid)) if pid.isdigit() else None
        if person is None or not person.get("name") or not year.isdigit():
            raise UsageError(f"unknown memory {memory!r}: no such named person (see `photosearch memories`)")
        y = int(year)
        return (Filters(person=person["name"], after=datetime(y, 1, 1), before=datetime(y + 1, 1, 1)),
                f"{person['name']} in {y}", {})
    raise UsageError(f"unknown memory {memory!r} (see `photosearch memories` for the ids)")


def _on_this_day(cat: Catalog, today: date) -> dict[str, Any] | None:
    ids = cat.ids_on_day(today.month, today.day, DAY_WINDOW, before_year=today.year)
    if len(ids) < MIN_PHOTOS:
        return None
    years = cat.years_of(ids)
    return {"id": f"day-{today:%m-%d}", "kind": "on this day", "title": f"On this day: {today:%-d %B}",
            "subtitle": ", ".join(str(y) for y in years), "photos": len(ids)}


def _dates(start: datetime | None, end: datetime | None) -> str | None:
    if start is None:
        return None
    if end is None or start.date() == end.date():
        return f"{start:%-d %B %Y}"
    if end - start < timedelta(days=365) and start.year == end.year:
        return f"{start:%-d %B} - {end:%-d %B %Y}"
    return f"{start:%B %Y} - {end:%B %Y}"


__all__ = ["suggestions", "selection", "MIN_PHOTOS"]
