"""Events: photos grouped by when and where they were taken, named by dates, place and tags.

Photos with a date are walked in time order; a new event starts when the gap to the
previous photo exceeds ``gap_hours`` (default 4 h), or when both have GPS and are more
than ``max_km`` apart (default 50 km: a trip to another town is another event even on the
same afternoon). Photos without a date belong to no event.

Names: "2023-07-14 Paris, Beach" (one day) or "2023-07-14 - 2023-07-16 Paris, Beach":
the dates, the place (from the event's median GPS position, offline through the
``reverse_geocode`` package's GeoNames cities: a city of 100,000+ people within 15 km, else
the nearest town within 30 km, else the coordinates), and up to two dominant tags (carried
by at least 30% of its photos).
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import datetime
from typing import Any

DEFAULT_GAP_HOURS = 4.0
DEFAULT_MAX_KM = 50.0
#: Farther than this from any city with 1000+ people, an event is named by its coordinates.
PLACE_MAX_KM = 30.0
#: A city of at least BIG_CITY people within BIG_CITY_KM is preferred to a nearer small town.
BIG_CITY = 100_000
BIG_CITY_KM = 15.0
DOMINANT_TAG_SHARE = 0.3


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in kilometres between two latitude/longitude points."""
    r = 6371.0088
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * r * math.asin(min(1.0, math.sqrt(a)))


def place_name(lat: float, lon: float) -> str:
    """The nearest city (offline GeoNames data), or the coordinates when none is near."""
    import reverse_geocode

    # A big city close by names a place better than the suburb that happens to be nearest.
    for min_population, max_km in ((BIG_CITY, BIG_CITY_KM), (0, PLACE_MAX_KM)):
        hit = reverse_geocode.get((lat, lon), min_population=min_population)
        if hit and haversine_km(lat, lon, hit["latitude"], hit["longitude"]) <= max_km:
            return f"{hit['city']}, {hit['country']}" if hit.get("country") else hit["city"]
    return f"{abs(lat):.3f}°{'N' if lat >= 0 else 'S'} {abs(lon):.3f}°{'E' if lon >= 0 else 'W'}"


def group(rows: list[tuple[Any, ...]], *, gap_hours: float = DEFAULT_GAP_HOURS,
          max_km: float = DEFAULT_MAX_KM) -> list[list[tuple[Any, ...]]]:
    """Split (id, taken_at, lat, lon) rows, in time order, into events."""
    events: list[list[tuple[Any, ...]]] = []
    last_gps: tuple[float, float] | None = None
    for row in rows:
        _, taken, lat, lon = row
        new = not events
        if events:
            prev = events[-1][-1]
            if (taken - prev[1]).total_seconds() > gap_hours * 3600:
                new = True
            elif lat is not None and last_gps is not None and haversine_km(lat, lon, *last_gps) > max_km:
                new = True
        if new:
            events.append([])
            last_gps = None
        events[-1].append(row)
        if lat is not None:
            last_gps = (lat, lon)
    return events


def _median(values: list[float]) -> float:
    v = sorted(values)
    return v[len(v) // 2]


def build(cat: Any, *, gap_hours: float = DEFAULT_GAP_HOURS, max_km: float = DEFAULT_MAX_KM) -> list[dict[str, Any]]:
    """Recompute every event from the catalog and store them; returns them in time order."""
    from photosearch.errors import UsageError

    if gap_hours <= 0 or max_km <= 0:
        raise UsageError("--gap and --distance must be positive")
    groups = group(cat.event_inputs(), gap_hours=gap_hours, max_km=max_km)
    all_ids = [r[0] for g in groups for r in g]
    tags = cat.tags_of_photos(all_ids) if all_ids else {}
    out = []
    for n, g in enumerate(groups, start=1):
        start: datetime = g[0][1]
        end: datetime = g[-1][1]
        gps = [(r[2], r[3]) for r in g if r[2] is not None]
        lat = _median([p[0] for p in gps]) if gps else None
        lon = _median([p[1] for p in gps]) if gps else None
        place = place_name(lat, lon) if lat is not None else None
        counts = Counter(t["tag"] for r in g for t in tags.get(r[0], []) if t["on"])
        dominant = [t for t, c in counts.most_common(2) if c >= DOMINANT_TAG_SHARE * len(g)]
        dates = start.strftime("%Y-%m-%d") if start.date() == end.date() else \
            f"{start.strftime('%Y-%m-%d')} - {end.strftime('%Y-%m-%d')}"
        name = " ".join(x for x in (dates, ", ".join(x for x in (place, *dominant) if x)) if x)
        out.append({"id": n, "key": start.strftime("%Y%m%d-%H%M%S"), "name": name, "start_at": start, "end_at": end,
                    "place": place, "lat": lat, "lon": lon, "tags": dominant, "photo_ids": [r[0] for r in g]})
    cat.replace_events(out)
    return out


__all__ = ["build", "group", "place_name", "haversine_km", "DEFAULT_GAP_HOURS", "DEFAULT_MAX_KM"]
