"""Google Takeout data, photo-level people and events.

A part of :class:`photosearch.store.catalog.Catalog` (which opens the connection and
keeps ``self.con`` and the ``_dirty`` flag of the running transaction).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from photosearch.files import text_path
from photosearch.store.records import SHOWN


class EventsStore:
    """Google Takeout data, photo-level people and events."""

    con: Any
    _dirty: bool

    # -- takeout, photo-level people, events ------------------------------------------------

    def set_takeout(self, photo_id: int, info: Any) -> None:
        """Replace a photo's Google Takeout metadata and the people it names."""
        self._dirty = True
        self.con.execute("DELETE FROM takeout WHERE photo_id = ?", [photo_id])
        self.con.execute("INSERT INTO takeout VALUES (?, ?, ?, ?, ?, ?, ?)",
                         [photo_id, info.json_path, info.taken_at, info.gps_lat, info.gps_lon, info.description,
                          list(info.people)])
        self.con.execute("DELETE FROM photo_people WHERE photo_id = ? AND source = 'takeout'", [photo_id])
        if info.people:
            self.con.executemany("INSERT OR IGNORE INTO photo_people VALUES (?, ?, 'takeout')",
                                 [(photo_id, n) for n in info.people])

    def takeout_rows(self) -> dict[int, dict[str, Any]]:
        """Takeout metadata of non-quarantined photos, by photo id."""
        cur = self.con.execute("SELECT t.photo_id, t.json_path, t.taken_at, t.gps_lat, t.gps_lon, t.description, "
                               "t.people FROM takeout t JOIN photos p ON p.id = t.photo_id "
                               "WHERE p.quarantined_at IS NULL")
        names = ("photo_id", "json_path", "taken_at", "gps_lat", "gps_lon", "description", "people")
        return {r[0]: dict(zip(names, r)) for r in cur.fetchall()}

    def photo_people(self, photo_ids: Sequence[int]) -> dict[int, list[str]]:
        """Names of the people recorded for each photo, sorted (photos without any are absent)."""
        rows = self.con.execute("SELECT photo_id, list(name ORDER BY name) FROM photo_people "
                                "WHERE photo_id IN (SELECT unnest(?::BIGINT[])) GROUP BY photo_id",
                                [[int(i) for i in photo_ids]]).fetchall()
        return {r[0]: list(r[1]) for r in rows}

    def event_inputs(self) -> list[tuple[Any, ...]]:
        """(id, taken_at, gps_lat, gps_lon) of dated, searchable photos in time order."""
        return self.con.execute("SELECT id, taken_at, gps_lat, gps_lon FROM photos WHERE taken_at IS NOT NULL "
                                "AND quarantined_at IS NULL ORDER BY taken_at, id").fetchall()

    def replace_events(self, events: Sequence[dict[str, Any]]) -> None:
        """Replace all events and their photo memberships with ``events``."""
        self._dirty = True
        self.con.execute("DELETE FROM photo_events")
        self.con.execute("DELETE FROM events")
        for e in events:
            self.con.execute("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                             [e["id"], e["key"], e["name"], e["start_at"], e["end_at"], e["place"], e["lat"],
                              e["lon"], e["tags"], len(e["photo_ids"])])
        rows = [(pid, e["id"]) for e in events for pid in e["photo_ids"]]
        if rows:
            frame = {"photo_id": np.array([r[0] for r in rows], np.int64),
                     "event_id": np.array([r[1] for r in rows], np.int32)}
            self.con.register("_pe", frame)
            try:
                self.con.execute("INSERT INTO photo_events SELECT photo_id, event_id FROM _pe")
            finally:
                self.con.unregister("_pe")

    def events(self) -> list[dict[str, Any]]:
        """All events as dicts, ordered by start time."""
        cur = self.con.execute("SELECT id, key, name, start_at, end_at, place, lat, lon, tags, photos FROM events "
                               "ORDER BY start_at, id")
        names = ("id", "key", "name", "start_at", "end_at", "place", "lat", "lon", "tags", "photos")
        return [dict(zip(names, r)) for r in cur.fetchall()]

    def library_copy_of(self, content_hash: str, outside: str, content_id: str | None = None) -> str | None:
        """A searchable photo with these bytes (or this image: ``content_id``) that is not under
        the folder ``outside``."""
        row = self.con.execute("SELECT path FROM photos WHERE (content_hash = ? OR content_id = ?) "
                               "AND quarantined_at IS NULL AND NOT starts_with(path, ?) "
                               "ORDER BY content_hash = ? DESC, id LIMIT 1",
                               [content_hash, content_id, text_path(outside).rstrip("/") + "/",
                                content_hash]).fetchone()
        return None if row is None else row[0]

    def ids_on_day(self, month: int, day: int, window: int, *, before_year: int) -> list[int]:
        """Searchable photos taken within ``window`` days of ``month``/``day`` in years before ``before_year``."""
        if (month, day) == (2, 29):
            day = 28  # every year has a 28 February
        rows = self.con.execute(
            "SELECT id FROM photos WHERE taken_at IS NOT NULL AND year(taken_at) < ? AND "
            f"{SHOWN.format(p='')} AND abs(datediff('day', make_date(year(taken_at), ?, ?), "
            "CAST(taken_at AS DATE))) <= ? ORDER BY id", [before_year, month, day, window]).fetchall()
        return [r[0] for r in rows]

    def years_of(self, ids: Sequence[int]) -> list[int]:
        """The distinct years the given photos were taken in, oldest first."""
        rows = self.con.execute("SELECT DISTINCT year(taken_at) AS y FROM photos WHERE taken_at IS NOT NULL "
                                "AND id IN (SELECT unnest(?::BIGINT[])) ORDER BY y", [[int(i) for i in ids]]).fetchall()
        return [int(r[0]) for r in rows]

    def person_years(self, min_photos: int) -> list[tuple[int, str, int, int]]:
        """(person id, name, year, photos) of named people with at least ``min_photos`` searchable
        photos in a year, most photos first."""
        return [tuple(r) for r in self.con.execute(  # type: ignore[misc]
            "SELECT p.id, p.name, year(ph.taken_at) AS y, count(DISTINCT ph.id) AS n FROM people p "
            "JOIN faces f ON f.person_id = p.id JOIN photos ph ON ph.id = f.photo_id "
            f"WHERE p.name IS NOT NULL AND ph.taken_at IS NOT NULL AND {SHOWN.format(p='ph.')} "
            "GROUP BY p.id, p.name, year(ph.taken_at) HAVING count(DISTINCT ph.id) >= ? ORDER BY n DESC, p.id, y",
            [min_photos]).fetchall()]

    def photo_event_ids(self) -> dict[int, int]:
        """Event id of every photo that belongs to an event, by photo id."""
        return dict(self.con.execute("SELECT photo_id, event_id FROM photo_events").fetchall())

    def photo_event_names(self, photo_ids: Sequence[int]) -> dict[int, str]:
        """Event name of each given photo (photos in no event are absent)."""
        rows = self.con.execute("SELECT pe.photo_id, e.name FROM photo_events pe JOIN events e ON e.id = pe.event_id "
                                "WHERE pe.photo_id IN (SELECT unnest(?::BIGINT[]))",
                                [[int(i) for i in photo_ids]]).fetchall()
        return dict(rows)

    def photos_under(self, folders: Sequence[str]) -> list[dict[str, Any]]:
        """Searchable photos at any depth under these folders (or these files), by path."""
        out: list[dict[str, Any]] = []
        for f in map(text_path, folders):
            out += self._photo_dicts("WHERE quarantined_at IS NULL AND (path = ? OR starts_with(path, ?)) ORDER BY path",
                                     [f, f.rstrip("/") + "/"])
        return out

    def all_photos(self) -> list[dict[str, Any]]:
        """All non-quarantined photos as dicts, ordered by path."""
        return self._photo_dicts("WHERE quarantined_at IS NULL ORDER BY path", [])

