"""Albums: manual ones (a list of photos) and smart ones (a saved search).

A part of :class:`photosearch.store.catalog.Catalog` (which opens the connection and
keeps ``self.con`` and the ``_dirty`` flag of the running transaction).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from photosearch.store.records import SHOWN

#: Photo ids in an album (by name, any case). Parameter: the album's name.
ALBUM_SQL = ("SELECT ap.photo_id FROM album_photos ap JOIN albums a ON a.id = ap.album_id "
             "WHERE lower(a.name) = lower(?)")


class AlbumsStore:
    """Albums and their photos."""

    con: Any
    _dirty: bool

    def albums(self) -> list[dict[str, Any]]:
        """Every album: id, name, query, filters (JSON text), created_at, photos (manual albums)."""
        rows = self.con.execute(
            "SELECT a.id, a.name, a.query, a.filters, a.created_at, "
            f"(SELECT count(*) FROM album_photos ap JOIN photos p ON p.id = ap.photo_id "
            f" WHERE ap.album_id = a.id AND {SHOWN.format(p='p.')}) "
            "FROM albums a ORDER BY lower(a.name)").fetchall()
        return [dict(zip(("id", "name", "query", "filters", "created_at", "photos"), r)) for r in rows]

    def album(self, name: str) -> dict[str, Any] | None:
        """One album by name (any case), or None."""
        return next((a for a in self.albums() if a["name"].lower() == name.strip().lower()), None)

    def create_album(self, name: str, query: str | None = None, filters: str | None = None) -> int:
        """A new album; returns its id."""
        (album_id,) = self.con.execute("INSERT INTO albums (name, query, filters, created_at) "
                                       "VALUES (?, ?, ?, now()) RETURNING id", [name, query, filters]).fetchone()
        return int(album_id)

    def delete_album(self, album_id: int) -> None:
        """Forget an album (its photos stay in the library)."""
        self.con.execute("DELETE FROM album_photos WHERE album_id = ?", [album_id])
        self.con.execute("DELETE FROM albums WHERE id = ?", [album_id])

    def add_to_album(self, album_id: int, photo_ids: Sequence[int], source: str | None = None) -> int:
        """Add photos (those already in it stay as they are); returns how many were added."""
        before = self._album_count(album_id)
        self.con.execute("INSERT INTO album_photos SELECT ?, id, ?, now() FROM photos WHERE id IN "
                         "(SELECT unnest(?::BIGINT[])) AND id NOT IN (SELECT photo_id FROM album_photos "
                         "WHERE album_id = ?)", [album_id, source, [int(i) for i in photo_ids], album_id])
        return self._album_count(album_id) - before

    def remove_from_album(self, album_id: int, photo_ids: Sequence[int]) -> int:
        """Take photos out of an album; returns how many were in it."""
        before = self._album_count(album_id)
        self.con.execute("DELETE FROM album_photos WHERE album_id = ? AND photo_id IN (SELECT unnest(?::BIGINT[]))",
                         [album_id, [int(i) for i in photo_ids]])
        return before - self._album_count(album_id)

    def album_photo_ids(self, album_id: int) -> list[int]:
        """The searchable photos of a manual album, in the order they were added."""
        rows = self.con.execute(
            "SELECT ap.photo_id FROM album_photos ap JOIN photos p ON p.id = ap.photo_id "
            f"WHERE ap.album_id = ? AND {SHOWN.format(p='p.')} ORDER BY ap.added_at, ap.photo_id",
            [album_id]).fetchall()
        return [r[0] for r in rows]

    def albums_of_photos(self, photo_ids: Sequence[int]) -> dict[int, list[str]]:
        """The manual albums each of these photos is in (photos in none are absent)."""
        rows = self.con.execute(
            "SELECT ap.photo_id, list(a.name ORDER BY a.name) FROM album_photos ap JOIN albums a "
            "ON a.id = ap.album_id WHERE ap.photo_id IN (SELECT unnest(?::BIGINT[])) GROUP BY ap.photo_id",
            [[int(i) for i in photo_ids]]).fetchall()
        return {r[0]: list(r[1]) for r in rows}

    def album_member_ids(self) -> list[int]:
        """Photos in at least one manual album."""
        return [r[0] for r in self.con.execute("SELECT DISTINCT photo_id FROM album_photos").fetchall()]

    def refresh_file_albums(self, memberships: Sequence[tuple[int, str]]) -> None:
        """Make the ``Albums/NAME`` keywords read from the files the albums' ``file`` entries:
        albums are created where missing, earlier ``file`` entries replaced; the user's stay."""
        self.con.execute("DELETE FROM album_photos WHERE source = 'file'")
        names = {a["name"].lower(): a["id"] for a in self.albums()}
        for pid, name in memberships:
            key = name.lower()
            if key not in names:
                names[key] = self.create_album(name)
            self.con.execute("INSERT INTO album_photos SELECT ?, ?, 'file', now() WHERE NOT EXISTS (SELECT 1 FROM "
                             "album_photos WHERE album_id = ? AND photo_id = ?) AND EXISTS (SELECT 1 FROM photos "
                             "WHERE id = ?)", [names[key], pid, names[key], pid, pid])

    def _album_count(self, album_id: int) -> int:
        return int(self.con.execute("SELECT count(*) FROM album_photos WHERE album_id = ?", [album_id]).fetchone()[0])
