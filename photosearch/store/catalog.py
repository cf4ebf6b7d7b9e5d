"""The DuckDB catalog: every SQL statement photosearch runs lives in this package (photosearch.store).

The schema comes from the numbered migrations in ``store/schema/migrations`` (shipped
as ``photosearch.store.schema``). One process writes at a time; DuckDB's file
lock is retried for a while so a search can slip in between an indexer's
batches, and vice versa.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from photosearch.errors import LibraryError
from photosearch.files import text_path
from photosearch.store.albums_store import AlbumsStore
from photosearch.store.edits_store import EditsStore
from photosearch.store.events_store import EventsStore
from photosearch.store.faces_store import FacesStore
from photosearch.store.frames_store import FramesStore
from photosearch.store.photos_store import PhotosStore
from photosearch.store.records import (  # re-exported (__all__): callers import them from here
    PHOTO_COLUMNS, TAGGED_SQL, FaceRow, FaceVectors, Filters, KnownFile, PhotoRecord, PhotoVectors, photo_arrow_type,
)
from photosearch.store.shards_store import ShardsStore
from photosearch.store.tags_store import TagsStore
from photosearch.store.text_store import TextStore

STATE_FILE = "state.json"


def write_json_atomic(path: Path, doc: Any) -> None:
    """Write ``doc`` as JSON to ``path`` atomically."""
    import json

    from photosearch.files import write_atomic

    write_atomic(path, json.dumps(doc))


def read_state(library_root: Path) -> dict[str, Any] | None:
    """The published state (see Catalog.write_state), or None if missing or unreadable."""
    import json

    try:
        return json.loads((library_root / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None

def _migrations() -> list[tuple[int, str, str]]:
    folder = resources.files("photosearch.store.schema") / "migrations"
    found = []
    for entry in folder.iterdir():
        m = re.match(r"^(\d{4})_.*\.sql$", entry.name)
        if m:
            found.append((int(m.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


class _Outdated(LibraryError):
    """A read-only open found a catalog of an older format (migrated by a writer first)."""


def schema_version_supported() -> int:
    """The newest catalog schema this photosearch knows."""
    return _migrations()[-1][0]


# DuckDB refuses, within one process, a read-only and a read-write connection to the same file
# at once. Threads of one process (the web server) therefore take turns by mode: any number of
# connections of one mode, and the other mode waits until they are closed.
_mode_cond = threading.Condition()
_modes: dict[str, list[Any]] = {}   # catalog path -> [read_only, open connections]


def _acquire_mode(key: str, read_only: bool, wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    with _mode_cond:
        while True:
            cur = _modes.get(key)
            if cur is None:
                _modes[key] = [read_only, 1]
                return
            if cur[0] == read_only:
                cur[1] += 1
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LibraryError("the library is busy in this process (a read and a write at once); try again")
            _mode_cond.wait(remaining)


def _release_mode(key: str) -> None:
    with _mode_cond:
        cur = _modes.get(key)
        if cur is not None:
            cur[1] -= 1
            if cur[1] <= 0:
                del _modes[key]
                _mode_cond.notify_all()


def _is_lock_error(exc: Exception) -> bool:
    text = str(exc).lower()
    return "lock" in text and ("conflicting" in text or "could not set" in text)


class Catalog(PhotosStore, FacesStore, FramesStore, TagsStore, EventsStore, ShardsStore, TextStore, AlbumsStore,
              EditsStore):
    """A connection to one library's catalog. Use :meth:`open` as a context manager.

    Opening, the schema, settings and roots are here; the SQL of each concern is in a mixin of its
    own module (photos_store, faces_store, tags_store, events_store, shards_store, albums_store,
    edits_store)."""

    def __init__(self, con: Any, path: Path, read_only: bool) -> None:
        self.con = con
        self.path = path
        self.read_only = read_only
        self._dirty = False  # set by mutators; see transaction()

    @contextmanager
    def for_thread(self) -> Iterator[Catalog]:
        """This catalog on a cursor of its own, for reads on another thread (a DuckDB connection
        is not used from two threads at once)."""
        cursor = self.con.cursor()
        try:
            yield type(self)(cursor, self.path, self.read_only)
        finally:
            cursor.close()

    # -- opening and schema -------------------------------------------------------------

    @classmethod
    @contextmanager
    def open(cls, path: Path, *, read_only: bool = False, wait_s: float = 30.0) -> Iterator[Catalog]:
        """Open (and for writers, create and migrate) the catalog at ``path``.

        Retries while another process holds DuckDB's lock, up to ``wait_s``.
        """
        if read_only and not path.exists():
            raise LibraryError(f"no library at {path.parent} (run `photosearch index PATH` first)")
        if not read_only:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise LibraryError(f"cannot create library folder {path.parent}: {exc.strerror}") from None
        import duckdb  # here, not at import time: an unfiltered search never needs it

        key = os.path.abspath(path)
        _acquire_mode(key, read_only, wait_s)
        try:
            with cls._connect(duckdb, path, read_only, wait_s) as catalog:
                yield catalog
        finally:
            _release_mode(key)

    @classmethod
    @contextmanager
    def _connect(cls, duckdb: Any, path: Path, read_only: bool, wait_s: float) -> Iterator[Catalog]:
        deadline = time.monotonic() + wait_s
        delay = 0.02
        while True:
            try:
                con = duckdb.connect(str(path), read_only=read_only)
                break
            except duckdb.Error as exc:
                if _is_lock_error(exc) and time.monotonic() < deadline:
                    time.sleep(delay)
                    delay = min(delay * 2, 0.5)
                    continue
                if _is_lock_error(exc):
                    raise LibraryError(
                        f"the library {path.parent} is busy (another photosearch process is writing it); try again"
                    ) from None
                if any(w in str(exc).lower() for w in ("permission", "read-only", "not permitted")):
                    raise LibraryError(f"cannot open the library {path.parent}: it is not writable") from None
                raise LibraryError(f"cannot open the catalog {path}: {exc}") from None
        # DuckDB draws progress bars on a terminal for long queries; photosearch reports its own.
        con.execute("SET enable_progress_bar = false")
        catalog = cls(con, path, read_only)
        try:
            try:
                catalog._check_schema()
            except _Outdated:
                # A reader of a library written by an older photosearch migrates it first, if it can
                # (not when unwritable, or open elsewhere in this process or by a writer).
                con.close()
                try:
                    upgrade = duckdb.connect(str(path))
                except duckdb.Error:
                    raise LibraryError(f"the library {path.parent} needs an upgrade: run `photosearch index` "
                                       "once") from None
                try:
                    cls(upgrade, path, False)._check_schema()
                finally:
                    upgrade.close()
                con = duckdb.connect(str(path), read_only=True)
                con.execute("SET enable_progress_bar = false")
                catalog = cls(con, path, read_only)
            yield catalog
        finally:
            con.close()

    def _schema_version(self) -> int:
        # duckdb_tables() rather than information_schema: ~1 ms instead of ~38 ms per open.
        exists = self.con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'schema_version'"
        ).fetchone()[0]
        if not exists:
            return 0
        row = self.con.execute("SELECT max(version) FROM schema_version").fetchone()
        return int(row[0] or 0)

    def _check_schema(self) -> None:
        current = self._schema_version()
        newest = schema_version_supported()
        if current > newest:
            raise LibraryError(
                f"this library uses catalog format {current}, newer than this photosearch supports ({newest}); "
                "upgrade photosearch"
            )
        if current == newest:
            return
        if self.read_only:
            raise _Outdated(f"the library {self.path.parent} needs an upgrade: run `photosearch index` once")
        for number, name, sql in _migrations():
            if number <= current:
                continue
            self.con.execute("BEGIN TRANSACTION")
            try:
                if number == 1:
                    self.con.execute("CREATE TABLE schema_version (version INTEGER, name VARCHAR, applied_at TIMESTAMP)")
                self.con.execute(sql)
                self.con.execute("INSERT INTO schema_version VALUES (?, ?, now())", [number, name])
                self.con.execute("COMMIT")
            except Exception:
                self.con.execute("ROLLBACK")
                raise

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """A write transaction; if it changed photos or vectors, the data version is bumped in it."""
        self.con.execute("BEGIN TRANSACTION")
        self._dirty = False
        try:
            yield
            if self._dirty:
                self.mark_changed()
        except BaseException:
            self.con.execute("ROLLBACK")
            self._dirty = False
            raise
        else:
            self.con.execute("COMMIT")

    # -- settings -------------------------------------------------------------------------

    def get_setting(self, key: str) -> str | None:
        """A stored setting's value, or None if unset."""
        row = self.con.execute("SELECT value FROM settings WHERE key = ?", [key]).fetchone()
        return None if row is None else row[0]

    def set_setting(self, key: str, value: str | None) -> None:
        """Store a setting's value; None deletes it."""
        self.con.execute("DELETE FROM settings WHERE key = ?", [key])
        if value is not None:
            self.con.execute("INSERT INTO settings VALUES (?, ?)", [key, value])

    def data_version(self) -> int:
        """A counter bumped by every transaction that changes photos or vectors."""
        return int(self.get_setting("data_version") or 0)

    def mark_changed(self) -> int:
        """Bump the data version and rewrite the state file (called before COMMIT, see transaction())."""
        version = self.data_version() + 1
        self.set_setting("data_version", str(version))
        self._dirty = False
        self.write_state()
        return version

    def write_state(self) -> None:
        """Publish the data version and current vector indexes in ``state.json`` beside the catalog.

        Written before the transaction commits, so the file's version is never behind the
        catalog's; a search whose index matches it can answer without opening the catalog.
        """
        indexes = {}
        cur = self.con.execute("SELECT model, file, rows_file, version, kind, count, nprobe FROM vector_index")
        for model, file, rows_file, version, kind, count, nprobe in cur.fetchall():
            indexes[model] = {"file": file, "rows": rows_file, "version": version, "kind": kind, "count": count,
                              "nprobe": nprobe}
        state = {"data_version": self.data_version(), "indexes": indexes}
        write_json_atomic(self.path.parent / STATE_FILE, state)

    # -- roots ----------------------------------------------------------------------------

    def roots(self) -> list[str]:
        """The indexed root folders, sorted."""
        return [r[0] for r in self.con.execute("SELECT path FROM roots ORDER BY path").fetchall()]

    def add_root(self, path: str) -> None:
        path = text_path(path)
        """Record an indexed root folder (no-op if already known)."""
        if not self.con.execute("SELECT 1 FROM roots WHERE path = ?", [path]).fetchone():
            self.con.execute("INSERT INTO roots VALUES (?, now())", [path])


__all__ = ["Catalog", "Filters", "KnownFile", "PhotoRecord", "FaceRow", "PhotoVectors", "FaceVectors", "PHOTO_COLUMNS",
           "TAGGED_SQL", "photo_arrow_type", "read_state", "write_json_atomic", "STATE_FILE", "schema_version_supported"]
