"""The DuckDB catalog: every SQL statement photosearch runs lives here.

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
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from photosearch.errors import LibraryError

STATE_FILE = "state.json"


def write_json_atomic(path: Path, doc: Any) -> None:
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


PHOTO_COLUMNS = (
    "path", "content_hash", "size", "mtime_ns", "width", "height", "format",
    "taken_at", "camera_make", "camera_model", "lens", "gps_lat", "gps_lon",
    "orientation", "keywords", "rating", "title", "description",
)


def _arrow_types() -> dict[str, Any]:
    import pyarrow as pa

    return {"size": pa.int64(), "mtime_ns": pa.int64(), "width": pa.int64(), "height": pa.int64(),
            "taken_at": pa.timestamp("us"), "gps_lat": pa.float64(), "gps_lon": pa.float64(),
            "orientation": pa.int64(), "keywords": pa.list_(pa.string()), "rating": pa.int64()}


_ARROW_TYPES: dict[str, Any] = {}


def photo_arrow_type(column: str) -> Any:
    """The Arrow type of a PHOTO_COLUMNS column (strings unless listed; built on first use, so
    importing the catalog does not import pyarrow)."""
    import pyarrow as pa

    if not _ARROW_TYPES:
        _ARROW_TYPES.update(_arrow_types())
    return _ARROW_TYPES.get(column, pa.string())


@dataclass
class PhotoRecord:
    """One catalog row (without id) as produced by the indexer."""

    path: str
    content_hash: str
    size: int
    mtime_ns: int
    width: int | None = None
    height: int | None = None
    format: str | None = None
    taken_at: datetime | None = None
    camera_make: str | None = None
    camera_model: str | None = None
    lens: str | None = None
    gps_lat: float | None = None
    gps_lon: float | None = None
    orientation: int | None = None
    keywords: list[str] = field(default_factory=list)
    rating: int | None = None
    title: str | None = None
    description: str | None = None

    def values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, c) for c in PHOTO_COLUMNS)


@dataclass(frozen=True)
class KnownFile:
    """What the catalog knows about a path, for the incremental diff."""

    id: int
    path: str
    size: int
    mtime_ns: int
    content_hash: str


@dataclass(frozen=True)
class Filters:
    """Search filters shared by every query kind."""

    after: datetime | None = None     # taken_at >= after
    before: datetime | None = None    # taken_at < before
    camera: str | None = None         # case-insensitive substring of make or model
    folder: str | None = None         # absolute folder; photos at any depth below it
    person: str | None = None         # a named person (case-insensitive) appearing in the photo
    tags: tuple[str, ...] = ()        # canonical tag names the photo must carry (all of them)
    event: str | None = None          # an event: its id, key (start time) or part of its name

    def active(self) -> bool:
        return bool(self.tags) or any(v is not None for v in (self.after, self.before, self.camera, self.folder,
                                                              self.person, self.event))


def _migrations() -> list[tuple[int, str, str]]:
    folder = resources.files("photosearch.store.schema") / "migrations"
    found = []
    for entry in folder.iterdir():
        m = re.match(r"^(\d{4})_.*\.sql$", entry.name)
        if m:
            found.append((int(m.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


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


class Catalog:
    """A connection to one library's catalog. Use :meth:`open` as a context manager."""

    def __init__(self, con: Any, path: Path, read_only: bool) -> None:
        self.con = con
        self.path = path
        self.read_only = read_only
        self._dirty = False  # set by mutators; see transaction()

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
            catalog._check_schema()
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
            raise LibraryError(f"the library {self.path.parent} needs an upgrade: run `photosearch index` once")
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
        row = self.con.execute("SELECT value FROM settings WHERE key = ?", [key]).fetchone()
        return None if row is None else row[0]

    def set_setting(self, key: str, value: str | None) -> None:
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
        return [r[0] for r in self.con.execute("SELECT path FROM roots ORDER BY path").fetchall()]

    def add_root(self, path: str) -> None:
        if not self.con.execute("SELECT 1 FROM roots WHERE path = ?", [path]).fetchone():
            self.con.execute("INSERT INTO roots VALUES (?, now())", [path])

    # -- photos ---------------------------------------------------------------------------

    def known_files(self) -> dict[str, KnownFile]:
        """Every cataloged file by path."""
        rows = self.con.execute("SELECT id, path, size, mtime_ns, content_hash FROM photos").fetchall()
        return {r[1]: KnownFile(*r) for r in rows}

    def insert_photos(self, records: Sequence[PhotoRecord]) -> list[int]:
        """Insert rows and return their new ids (in order)."""
        if not records:
            return []
        self._dirty = True
        ids = [r[0] for r in self.con.execute(
            "SELECT nextval('photo_id_seq') FROM range(?)", [len(records)]
        ).fetchall()]
        import pyarrow as pa

        # One registered Arrow table, not executemany (~4 ms a row, measured while indexing).
        values = [rec.values() for rec in records]
        table = pa.table({"id": pa.array(ids, pa.int64()),
                          **{c: pa.array([v[i] for v in values], photo_arrow_type(c))
                             for i, c in enumerate(PHOTO_COLUMNS)}})
        cols = ", ".join(("id",) + PHOTO_COLUMNS)
        self.con.register("_new_photos", table)
        try:
            self.con.execute(f"INSERT INTO photos ({cols}, indexed_at) SELECT {cols}, now() FROM _new_photos")
        finally:
            self.con.unregister("_new_photos")
        return ids

    def move_photo(self, photo_id: int, path: str, size: int, mtime_ns: int) -> None:
        self._dirty = True
        self.con.execute(
            "UPDATE photos SET path = ?, size = ?, mtime_ns = ? WHERE id = ?", [path, size, mtime_ns, photo_id]
        )

    def update_photo(self, photo_id: int, **fields: Any) -> None:
        """Set some catalog columns of one photo."""
        unknown = set(fields) - set(PHOTO_COLUMNS)
        if unknown:
            raise ValueError(f"unknown photo columns: {sorted(unknown)}")
        if fields:
            self._dirty = True
            sets = ", ".join(f"{k} = ?" for k in fields)
            self.con.execute(f"UPDATE photos SET {sets} WHERE id = ?", [*fields.values(), photo_id])

    def touch_photo(self, photo_id: int, size: int, mtime_ns: int) -> None:
        self.con.execute("UPDATE photos SET size = ?, mtime_ns = ? WHERE id = ?", [size, mtime_ns, photo_id])

    def delete_photos(self, ids: Iterable[int]) -> None:
        """Delete rows with their vectors, hashes and decisions."""
        ids = [int(i) for i in ids]
        if not ids:
            return
        self._dirty = True
        self.con.execute("DELETE FROM embeddings WHERE photo_id IN (SELECT unnest(?::BIGINT[]))", [ids])
        self.con.execute("DELETE FROM image_hashes WHERE photo_id IN (SELECT unnest(?::BIGINT[]))", [ids])
        self.con.execute("DELETE FROM face_rejections WHERE face_id IN "
                         "(SELECT id FROM faces WHERE photo_id IN (SELECT unnest(?::BIGINT[])))", [ids])
        self.con.execute("DELETE FROM faces WHERE photo_id IN (SELECT unnest(?::BIGINT[]))", [ids])
        self.con.execute("DELETE FROM face_scans WHERE photo_id IN (SELECT unnest(?::BIGINT[]))", [ids])
        self.con.execute("DELETE FROM tag_scores WHERE photo_id IN (SELECT unnest(?::BIGINT[]))", [ids])
        self.con.execute("DELETE FROM tag_decisions WHERE photo_id IN (SELECT unnest(?::BIGINT[]))", [ids])
        self.con.execute("DELETE FROM photo_ratings WHERE photo_id IN (SELECT unnest(?::BIGINT[]))", [ids])
        self.con.execute("DELETE FROM takeout WHERE photo_id IN (SELECT unnest(?::BIGINT[]))", [ids])
        self.con.execute("DELETE FROM photo_people WHERE photo_id IN (SELECT unnest(?::BIGINT[]))", [ids])
        self.con.execute("DELETE FROM photo_events WHERE photo_id IN (SELECT unnest(?::BIGINT[]))", [ids])
        self.con.execute("DELETE FROM not_duplicates WHERE photo_a IN (SELECT unnest(?::BIGINT[])) "
                         "OR photo_b IN (SELECT unnest(?::BIGINT[]))", [ids, ids])
        self.con.execute("DELETE FROM photos WHERE id IN (SELECT unnest(?::BIGINT[]))", [ids])

    def photo_by_path(self, path: str) -> dict[str, Any] | None:
        rows = self._photo_dicts("WHERE path = ?", [path])
        return rows[0] if rows else None

    def photo_by_hash(self, content_hash: str) -> dict[str, Any] | None:
        rows = self._photo_dicts("WHERE content_hash = ? ORDER BY id LIMIT 1", [content_hash])
        return rows[0] if rows else None

    def photos_by_ids(self, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        if not ids:
            return {}
        marks = ", ".join(["?"] * len(ids))
        return {r["id"]: r for r in self._photo_dicts(f"WHERE id IN ({marks})", list(ids))}

    def _photo_dicts(self, where: str, params: list[Any]) -> list[dict[str, Any]]:
        cur = self.con.execute(f"SELECT id, {', '.join(PHOTO_COLUMNS)} FROM photos {where}", params)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]

    def count_photos(self) -> int:
        return int(self.con.execute("SELECT count(*) FROM photos").fetchone()[0])

    def filtered_ids(self, filters: Filters) -> np.ndarray:
        """Ids of photos passing ``filters`` (int64 array)."""
        clauses, params = [], []
        if filters.after is not None:
            clauses.append("taken_at >= ?")
            params.append(filters.after)
        if filters.before is not None:
            clauses.append("taken_at < ?")
            params.append(filters.before)
        if filters.camera:
            clauses.append("(camera_make ILIKE ? OR camera_model ILIKE ? OR concat_ws(' ', camera_make, camera_model) ILIKE ?)")
            like = f"%{filters.camera}%"
            params += [like, like, like]
        if filters.folder:
            folder = filters.folder.rstrip("/") + "/"
            clauses.append("starts_with(path, ?)")
            params.append(folder)
        if filters.person:
            clauses.append("id IN (SELECT f.photo_id FROM faces f JOIN people p ON p.id = f.person_id "
                           "WHERE lower(p.name) = lower(?) UNION SELECT photo_id FROM photo_people "
                           "WHERE lower(name) = lower(?))")
            params += [filters.person, filters.person]
        if filters.event:
            clauses.append("id IN (SELECT pe.photo_id FROM photo_events pe JOIN events e ON e.id = pe.event_id "
                           "WHERE e.key = ? OR CAST(e.id AS VARCHAR) = ? OR e.name ILIKE ?)")
            params += [filters.event, filters.event, f"%{filters.event}%"]
        for name in filters.tags:
            tag = self.canonical_tag(name)
            if tag is None:
                from photosearch.errors import UsageError

                raise UsageError(f"unknown tag {name!r} (see `photosearch tags`)")
            clauses.append(f"id IN ({TAGGED_SQL})")
            params += [tag, tag]
        clauses.append("quarantined_at IS NULL")
        where = "WHERE " + " AND ".join(clauses)
        res = self.con.execute(f"SELECT id FROM photos {where}", params).fetchnumpy()
        return np.asarray(res["id"], dtype=np.int64)

    # -- embeddings -----------------------------------------------------------------------

    def add_embeddings(self, model: str, ids: Sequence[int], vectors: np.ndarray) -> None:
        if not len(ids):
            return
        self._dirty = True
        vectors = np.ascontiguousarray(vectors, dtype="<f4")
        # Scanning registered numpy arrays is ~300x faster than executemany here.
        frame = {
            "photo_id": np.asarray(ids, dtype=np.int64),
            "vector": np.array([row.tobytes() for row in vectors], dtype=object),
        }
        self.con.register("_new_vectors", frame)
        try:
            self.con.execute("INSERT INTO embeddings SELECT photo_id, ?, vector FROM _new_vectors", [model])
        finally:
            self.con.unregister("_new_vectors")

    def copy_embeddings(self, src_id: int, dst_id: int) -> None:
        """Give ``dst_id`` every vector and hash ``src_id`` has (same bytes, so the same)."""
        self._dirty = True
        self.con.execute(
            "INSERT INTO embeddings SELECT ?, model, vector FROM embeddings WHERE photo_id = ?", [dst_id, src_id]
        )
        self.con.execute(
            "INSERT INTO image_hashes SELECT ?, phash, dhash, content_width, content_height FROM image_hashes "
            "WHERE photo_id = ?", [dst_id, src_id]
        )
        # A copy shows the same people: its faces keep their vectors and persons (new face ids).
        self.con.execute(
            "INSERT INTO faces SELECT nextval('face_id_seq'), ?, model, x, y, w, h, score, vector, person_id, "
            "assigned, source, region_name FROM faces WHERE photo_id = ? ORDER BY id", [dst_id, src_id])
        self.con.execute("INSERT INTO face_scans SELECT ?, model, faces, scanned_at FROM face_scans "
                         "WHERE photo_id = ?", [dst_id, src_id])
        self.con.execute("INSERT INTO tag_scores SELECT ?, tag, score, model, scorer FROM tag_scores "
                         "WHERE photo_id = ?", [dst_id, src_id])
        self.con.execute("INSERT INTO tag_decisions SELECT ?, tag, state, decided_at FROM tag_decisions "
                         "WHERE photo_id = ?", [dst_id, src_id])
        self.con.execute("INSERT INTO photo_people SELECT ?, name, source FROM photo_people WHERE photo_id = ?",
                         [dst_id, src_id])

    def ids_with_vectors(self, model: str, *, searchable: bool = False) -> np.ndarray:
        """Photo ids having a vector of ``model``; ``searchable`` leaves out quarantined photos."""
        if searchable:
            res = self.con.execute(
                "SELECT e.photo_id FROM embeddings e JOIN photos p ON p.id = e.photo_id "
                "WHERE e.model = ? AND p.quarantined_at IS NULL", [model]).fetchnumpy()
        else:
            res = self.con.execute("SELECT photo_id FROM embeddings WHERE model = ?", [model]).fetchnumpy()
        return np.asarray(res["photo_id"], dtype=np.int64)

    # -- perceptual hashes ----------------------------------------------------------------

    def add_hashes(self, rows: Sequence[tuple[int, Sequence[int], int, int | None, int | None]]) -> None:
        """(photo_id, 8 pHash variants, dHash, content width, content height) rows."""
        if not rows:
            return
        import pyarrow as pa

        # One registered Arrow table instead of executemany: ~50x faster (benchmarks/RESULTS.md, scale-out).
        table = pa.table({
            "photo_id": pa.array([int(r[0]) for r in rows], pa.int64()),
            "phash": pa.array([[int(v) for v in r[1]] for r in rows], pa.list_(pa.uint64())),
            "dhash": pa.array([int(r[2]) for r in rows], pa.uint64()),
            "content_width": pa.array([r[3] for r in rows], pa.int32()),
            "content_height": pa.array([r[4] for r in rows], pa.int32()),
        })
        self.con.register("_new_hashes", table)
        try:
            self.con.execute("INSERT INTO image_hashes SELECT photo_id, phash, dhash, content_width, content_height "
                             "FROM _new_hashes")
        finally:
            self.con.unregister("_new_hashes")

    def content_sizes(self, ids: Sequence[int]) -> dict[int, tuple[int, int]]:
        rows = self.con.execute(
            "SELECT photo_id, content_width, content_height FROM image_hashes "
            "WHERE photo_id IN (SELECT unnest(?::BIGINT[])) AND content_width IS NOT NULL", [list(ids)]).fetchall()
        return {r[0]: (r[1], r[2]) for r in rows}

    def exact_duplicate_ids(self) -> list[list[int]]:
        """Ids of searchable photos sharing their bytes with another, grouped by content hash."""
        rows = self.con.execute(
            "SELECT list(id ORDER BY id) FROM photos WHERE quarantined_at IS NULL "
            "GROUP BY content_hash HAVING count(*) > 1").fetchall()
        return [r[0] for r in rows]

    def not_duplicate_pairs(self) -> set[tuple[int, int]]:
        return {(a, b) for a, b in self.con.execute("SELECT photo_a, photo_b FROM not_duplicates").fetchall()}

    def add_not_duplicates(self, ids: Sequence[int]) -> int:
        """Remember that these photos are not duplicates of each other; returns pairs added."""
        known = self.not_duplicate_pairs()
        pairs = {(min(a, b), max(a, b)) for a in ids for b in ids if a != b} - known
        if pairs:
            self.con.executemany("INSERT INTO not_duplicates VALUES (?, ?, now())", sorted(pairs))
        return len(pairs)

    def set_quarantined(self, photo_id: int, path: str, when: datetime | None) -> None:
        """Record a quarantine move (``when`` set) or its undoing (``when`` None) with the new path."""
        self._dirty = True
        self.con.execute("UPDATE photos SET path = ?, quarantined_at = ? WHERE id = ?", [path, when, photo_id])

    def quarantined(self) -> list[dict[str, Any]]:
        cur = self.con.execute("SELECT id, path, quarantined_at FROM photos WHERE quarantined_at IS NOT NULL "
                               "ORDER BY quarantined_at, path")
        return [dict(zip(("id", "path", "quarantined_at"), r)) for r in cur.fetchall()]

    def ids_with_hashes(self) -> set[int]:
        return {r[0] for r in self.con.execute("SELECT photo_id FROM image_hashes").fetchall()}

    def all_hashes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ids, phash variants (n, 8) uint64, dhash (n,) uint64) of searchable photos."""
        rows = self.con.execute(
            "SELECT h.photo_id, h.phash, h.dhash FROM image_hashes h JOIN photos p ON p.id = h.photo_id "
            "WHERE p.quarantined_at IS NULL ORDER BY h.photo_id").fetchall()
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        ph = np.array([r[1] for r in rows], dtype=np.uint64).reshape(len(rows), 8)
        dh = np.fromiter((r[2] for r in rows), dtype=np.uint64, count=len(rows))
        return ids, ph, dh

    def vectors(self, model: str, ids: Sequence[int] | np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, vectors)`` for ``model``; all of them, or those among ``ids``."""
        if ids is None:
            cur = self.con.execute("SELECT photo_id, vector FROM embeddings WHERE model = ? ORDER BY photo_id", [model])
        else:
            cur = self.con.execute(
                "SELECT photo_id, vector FROM embeddings WHERE model = ? "
                "AND photo_id IN (SELECT unnest(?::BIGINT[])) ORDER BY photo_id",
                [model, np.asarray(ids, dtype=np.int64).tolist()],
            )
        res = cur.fetchnumpy()
        out_ids = np.asarray(res["photo_id"], dtype=np.int64)
        blobs = res["vector"]
        if len(blobs) == 0:
            return out_ids, np.zeros((0, 0), dtype=np.float32)
        vecs = np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(blobs), -1)
        return out_ids, vecs

    _SEARCHABLE = " AND photo_id IN (SELECT id FROM photos WHERE quarantined_at IS NULL)"

    def iter_vectors(self, model: str, chunk: int = 50_000, *,
                     searchable: bool = False) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """All vectors of ``model`` in id order, ``chunk`` at a time (bounded memory for big libraries)."""
        cur = self.con.cursor()
        extra = self._SEARCHABLE if searchable else ""
        cur.execute(f"SELECT photo_id, vector FROM embeddings WHERE model = ?{extra} ORDER BY photo_id", [model])
        while True:
            rows = cur.fetchmany(chunk)
            if not rows:
                break
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            vecs = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(len(rows), -1)
            yield ids, vecs
        cur.close()

    def sample_vectors(self, model: str, n: int, seed: int = 0, *, searchable: bool = False) -> np.ndarray:
        """A reproducible random sample of ``n`` vectors (IVF training)."""
        extra = self._SEARCHABLE if searchable else ""
        rows = self.con.execute(
            f"SELECT vector FROM (SELECT vector FROM embeddings WHERE model = ?{extra}) "
            f"USING SAMPLE reservoir({int(n)} ROWS) REPEATABLE ({int(seed)})",
            [model],
        ).fetchall()
        return np.frombuffer(b"".join(r[0] for r in rows), dtype="<f4").reshape(len(rows), -1).copy()

    def count_vectors(self, model: str, *, searchable: bool = False) -> int:
        extra = self._SEARCHABLE if searchable else ""
        return int(self.con.execute(f"SELECT count(*) FROM embeddings WHERE model = ?{extra}", [model]).fetchone()[0])

    def vector_models(self) -> dict[str, int]:
        rows = self.con.execute("SELECT model, count(*) FROM embeddings GROUP BY model").fetchall()
        return {r[0]: int(r[1]) for r in rows}

    # -- vector index state -----------------------------------------------------------------

    def index_state(self, model: str) -> dict[str, Any] | None:
        cur = self.con.execute("SELECT * FROM vector_index WHERE model = ?", [model])
        row = cur.fetchone()
        if row is None:
            return None
        return dict(zip([d[0] for d in cur.description], row))

    def set_index_state(self, model: str, file: str, rows_file: str, version: int, kind: str, count: int,
                        nprobe: int | None) -> None:
        with self.transaction():
            self.con.execute("DELETE FROM vector_index WHERE model = ?", [model])
            self.con.execute(
                "INSERT INTO vector_index (model, file, rows_file, version, kind, count, nprobe, built_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, now())", [model, file, rows_file, version, kind, count, nprobe]
            )
            self.write_state()

    def result_rows(self) -> Iterator[tuple[Any, ...]]:
        """(id, path, taken_at, camera_make, camera_model, width, height, format, keywords) of searchable
        photos in id order, for the rows file written beside a vector index."""
        cur = self.con.cursor()
        cur.execute("SELECT id, path, taken_at, camera_make, camera_model, width, height, format, keywords "
                    "FROM photos WHERE quarantined_at IS NULL ORDER BY id")
        while True:
            rows = cur.fetchmany(50_000)
            if not rows:
                break
            yield from rows
        cur.close()


    def photo_vectors(self, model: str) -> PhotoVectors:
        """The searchable photo embeddings of ``model``, as a vector index source."""
        return PhotoVectors(self, model)

    def face_vectors(self, model: str) -> FaceVectors:
        """The searchable face vectors of face model ``model``, as a vector index source."""
        return FaceVectors(self, model)

    # -- faces ------------------------------------------------------------------------------

    def count_faces(self) -> int:
        return int(self.con.execute("SELECT count(*) FROM faces").fetchone()[0])

    def face_scanned_ids(self, model: str) -> set[int]:
        """Photo ids the face model has looked at (with or without faces found)."""
        return {r[0] for r in self.con.execute("SELECT photo_id FROM face_scans WHERE model = ?", [model]).fetchall()}

    def add_faces(self, photo_id: int, model: str, faces: Sequence[FaceRow]) -> list[int]:
        """Record a face scan of one photo and its faces; returns the new face ids (in order)."""
        return self.add_face_scans(model, [(photo_id, faces)])

    def add_face_scans(self, model: str, scans: Sequence[tuple[int, Sequence[FaceRow]]]) -> list[int]:
        """Record face scans of several photos (a rescan replaces this model's faces and the faces
        read from the file's regions); returns the new face ids, photo by photo, in order.
        One statement per table for all photos: per-photo statements cost ~10 ms a photo."""
        if not scans:
            return []
        import pyarrow as pa

        self._dirty = True
        photo_ids = [int(p) for p, _ in scans]
        self.con.execute("DELETE FROM face_scans WHERE model = ? AND photo_id IN (SELECT unnest(?::BIGINT[]))",
                         [model, photo_ids])
        self.con.execute("DELETE FROM face_rejections WHERE face_id IN (SELECT id FROM faces WHERE photo_id IN "
                         "(SELECT unnest(?::BIGINT[])) AND (model = ? OR source = 'file'))", [photo_ids, model])
        self.con.execute("DELETE FROM faces WHERE photo_id IN (SELECT unnest(?::BIGINT[])) "
                         "AND (model = ? OR source = 'file')", [photo_ids, model])
        counts = pa.table({"photo_id": pa.array(photo_ids, pa.int64()),
                           "faces": pa.array([sum(1 for f in fs if f.vector is not None) for _, fs in scans],
                                             pa.int32())})
        self.con.register("_new_scans", counts)
        try:
            self.con.execute("INSERT INTO face_scans SELECT photo_id, ?, faces, now() FROM _new_scans", [model])
        finally:
            self.con.unregister("_new_scans")
        rows = [(pid, f) for pid, fs in scans for f in fs]
        if not rows:
            return []
        ids = [r[0] for r in self.con.execute("SELECT nextval('face_id_seq') FROM range(?)", [len(rows)]).fetchall()]
        table = pa.table({
            "id": pa.array(ids, pa.int64()),
            "photo_id": pa.array([int(p) for p, _ in rows], pa.int64()),
            "model": pa.array([f.model if f.vector is not None else None for _, f in rows], pa.string()),
            **{k: pa.array([float(f.box[i]) for _, f in rows], pa.float64()) for i, k in enumerate("xywh")},
            "score": pa.array([None if f.score is None else float(f.score) for _, f in rows], pa.float64()),
            "vector": pa.array([None if f.vector is None else np.ascontiguousarray(f.vector, dtype="<f4").tobytes()
                                for _, f in rows], pa.binary()),
            "person_id": pa.array([f.person_id for _, f in rows], pa.int64()),
            "assigned": pa.array([f.assigned for _, f in rows], pa.string()),
            "source": pa.array([f.source for _, f in rows], pa.string()),
            "region_name": pa.array([f.region_name for _, f in rows], pa.string()),
        })
        self.con.register("_new_faces", table)
        try:
            self.con.execute("INSERT INTO faces SELECT * FROM _new_faces")
        finally:
            self.con.unregister("_new_faces")
        return ids

    def faces_of_photos(self, photo_ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
        """Faces (with person names) of the given photos, largest first."""
        cur = self.con.execute(
            "SELECT f.id, f.photo_id, f.model, f.x, f.y, f.w, f.h, f.score, f.person_id, p.name, f.assigned, "
            "f.source, f.region_name FROM faces f LEFT JOIN people p ON p.id = f.person_id "
            "WHERE f.photo_id IN (SELECT unnest(?::BIGINT[])) ORDER BY f.photo_id, f.w * f.h DESC, f.id",
            [[int(i) for i in photo_ids]])
        out: dict[int, list[dict[str, Any]]] = {}
        for r in cur.fetchall():
            out.setdefault(r[1], []).append(_face_dict(r))
        return out

    def faces_by_ids(self, face_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        cur = self.con.execute(
            "SELECT f.id, f.photo_id, f.model, f.x, f.y, f.w, f.h, f.score, f.person_id, p.name, f.assigned, "
            "f.source, f.region_name FROM faces f LEFT JOIN people p ON p.id = f.person_id "
            "WHERE f.id IN (SELECT unnest(?::BIGINT[]))", [[int(i) for i in face_ids]])
        return {r[0]: _face_dict(r) for r in cur.fetchall()}

    def face_photo_ids(self, face_ids: np.ndarray) -> np.ndarray:
        """The photo id of each face id (same order; -1 for unknown ids)."""
        res = self.con.execute("SELECT id, photo_id FROM faces WHERE id IN (SELECT unnest(?::BIGINT[]))",
                               [np.asarray(face_ids, dtype=np.int64).tolist()]).fetchall()
        lookup = dict(res)
        return np.array([lookup.get(int(i), -1) for i in face_ids], dtype=np.int64)

    def face_ids_of_photos(self, model: str, photo_ids: np.ndarray) -> np.ndarray:
        res = self.con.execute(
            "SELECT id FROM faces WHERE model = ? AND vector IS NOT NULL "
            "AND photo_id IN (SELECT unnest(?::BIGINT[]))",
            [model, np.asarray(photo_ids, dtype=np.int64).tolist()]).fetchnumpy()
        return np.asarray(res["id"], dtype=np.int64)

    def face_table(self, model: str) -> dict[str, np.ndarray]:
        """Every searchable face with a vector of ``model``: id, photo_id, person_id (-1: none), vectors."""
        rows = self.con.execute(
            "SELECT f.id, f.photo_id, coalesce(f.person_id, -1), f.assigned, f.vector FROM faces f "
            "JOIN photos p ON p.id = f.photo_id WHERE f.model = ? AND f.vector IS NOT NULL "
            "AND p.quarantined_at IS NULL ORDER BY f.id", [model]).fetchall()
        n = len(rows)
        return {
            "id": np.fromiter((r[0] for r in rows), np.int64, n),
            "photo_id": np.fromiter((r[1] for r in rows), np.int64, n),
            "person_id": np.fromiter((r[2] for r in rows), np.int64, n),
            "assigned": np.array([r[3] or "" for r in rows], dtype=object),
            "vectors": (np.frombuffer(b"".join(r[4] for r in rows), dtype="<f4").reshape(n, -1)
                        if n else np.zeros((0, 0), np.float32)),
        }

    # -- people -----------------------------------------------------------------------------

    def people(self) -> list[dict[str, Any]]:
        """Every person and cluster with face and photo counts (quarantined photos not counted);
        named first, then by size."""
        cur = self.con.execute(
            "SELECT p.id, p.name, count(f.id) AS faces, count(DISTINCT f.photo_id) AS photos FROM people p "
            "LEFT JOIN faces f ON f.person_id = p.id "
            "AND f.photo_id IN (SELECT id FROM photos WHERE quarantined_at IS NULL) GROUP BY p.id, p.name "
            "ORDER BY p.name IS NULL, lower(p.name), faces DESC, p.id")
        return [dict(zip(("id", "name", "faces", "photos"), r)) for r in cur.fetchall()]

    def person(self, person_id: int) -> dict[str, Any] | None:
        row = self.con.execute("SELECT id, name FROM people WHERE id = ?", [int(person_id)]).fetchone()
        return None if row is None else {"id": row[0], "name": row[1]}

    def person_by_name(self, name: str) -> dict[str, Any] | None:
        row = self.con.execute("SELECT id, name FROM people WHERE lower(name) = lower(?) ORDER BY id LIMIT 1",
                               [name]).fetchone()
        return None if row is None else {"id": row[0], "name": row[1]}

    def create_person(self, name: str | None = None) -> int:
        self._dirty = True
        pid = self.con.execute("SELECT nextval('person_id_seq')").fetchone()[0]
        self.con.execute("INSERT INTO people VALUES (?, ?, now())", [pid, name])
        return int(pid)

    def create_people(self, n: int) -> list[int]:
        if n <= 0:
            return []
        self._dirty = True
        ids = [r[0] for r in self.con.execute("SELECT nextval('person_id_seq') FROM range(?)", [n]).fetchall()]
        self.con.executemany("INSERT INTO people VALUES (?, NULL, now())", [(i,) for i in ids])
        return ids

    def rename_person(self, person_id: int, name: str | None) -> None:
        self._dirty = True
        self.con.execute("UPDATE people SET name = ? WHERE id = ?", [name, int(person_id)])

    def assign_faces(self, face_ids: Sequence[int], person_id: int | None, assigned: str | None) -> None:
        if not len(face_ids):
            return
        self._dirty = True
        self.con.execute("UPDATE faces SET person_id = ?, assigned = ? WHERE id IN (SELECT unnest(?::BIGINT[]))",
                         [person_id, assigned, [int(i) for i in face_ids]])

    def assign_many(self, pairs: Sequence[tuple[int, int]], assigned: str) -> None:
        """(face id, person id) assignments in one statement."""
        if not pairs:
            return
        self._dirty = True
        frame = {"face_id": np.array([p[0] for p in pairs], np.int64), "person_id": np.array([p[1] for p in pairs], np.int64)}
        self.con.register("_assign", frame)
        try:
            self.con.execute("UPDATE faces SET person_id = a.person_id, assigned = ? FROM _assign a "
                             "WHERE faces.id = a.face_id", [assigned])
        finally:
            self.con.unregister("_assign")

    def mark_faces_processed(self, face_ids: Sequence[int]) -> None:
        """Clustering looked at these faces and found them no person."""
        if face_ids:
            self.con.execute("UPDATE faces SET assigned = 'none' WHERE id IN (SELECT unnest(?::BIGINT[])) "
                             "AND assigned IS NULL", [list(face_ids)])

    def reset_auto_assignments(self, model: str) -> None:
        self._dirty = True
        self.con.execute("UPDATE faces SET person_id = NULL, assigned = NULL WHERE model = ? "
                         "AND (assigned IS NULL OR assigned IN ('auto', 'none'))", [model])

    def merge_people(self, into: int, others: Sequence[int]) -> None:
        self._dirty = True
        others = [int(o) for o in others if int(o) != int(into)]
        self.con.execute("UPDATE faces SET person_id = ? WHERE person_id IN (SELECT unnest(?::BIGINT[]))",
                         [int(into), others])
        # A face rejected from a merged cluster stays rejected from the merged person.
        self.con.execute("INSERT OR IGNORE INTO face_rejections SELECT face_id, ?, rejected_at FROM face_rejections "
                         "WHERE person_id IN (SELECT unnest(?::BIGINT[]))", [int(into), others])
        self.con.execute("DELETE FROM face_rejections WHERE person_id IN (SELECT unnest(?::BIGINT[]))", [others])
        self.con.execute("DELETE FROM people WHERE id IN (SELECT unnest(?::BIGINT[]))", [others])

    def delete_empty_people(self) -> int:
        """Drop unnamed clusters left without faces; returns how many."""
        rows = self.con.execute("SELECT id FROM people WHERE name IS NULL AND id NOT IN "
                                "(SELECT person_id FROM faces WHERE person_id IS NOT NULL)").fetchall()
        if rows:
            self._dirty = True
            ids = [r[0] for r in rows]
            self.con.execute("DELETE FROM face_rejections WHERE person_id IN (SELECT unnest(?::BIGINT[]))", [ids])
            self.con.execute("DELETE FROM people WHERE id IN (SELECT unnest(?::BIGINT[]))", [ids])
        return len(rows)

    def reject_face(self, face_id: int, person_id: int) -> None:
        self._dirty = True
        self.con.execute("INSERT OR IGNORE INTO face_rejections VALUES (?, ?, now())", [int(face_id), int(person_id)])
        self.con.execute("UPDATE faces SET person_id = NULL, assigned = 'rejected' WHERE id = ? AND person_id = ?",
                         [int(face_id), int(person_id)])

    def rejections(self) -> set[tuple[int, int]]:
        return {(a, b) for a, b in self.con.execute("SELECT face_id, person_id FROM face_rejections").fetchall()}

    def person_faces(self, person_id: int, limit: int | None = None) -> list[dict[str, Any]]:
        """Faces of one person with their photo paths, best detection first."""
        sql = ("SELECT f.id, f.photo_id, f.model, f.x, f.y, f.w, f.h, f.score, f.person_id, pp.name, f.assigned, "
               "f.source, f.region_name, ph.path, ph.orientation FROM faces f JOIN photos ph ON ph.id = f.photo_id "
               "LEFT JOIN people pp ON pp.id = f.person_id WHERE f.person_id = ? "
               "ORDER BY f.score DESC NULLS LAST, f.id")
        if limit:
            sql += f" LIMIT {int(limit)}"
        out = []
        for r in self.con.execute(sql, [int(person_id)]).fetchall():
            d = _face_dict(r[:13])
            d["path"] = r[13]
            out.append(d)
        return out

    def named_faces_by_photo(self) -> dict[int, list[dict[str, Any]]]:
        """Faces of named people, per photo (for writing people into files)."""
        cur = self.con.execute(
            "SELECT f.id, f.photo_id, f.model, f.x, f.y, f.w, f.h, f.score, f.person_id, p.name, f.assigned, "
            "f.source, f.region_name FROM faces f JOIN people p ON p.id = f.person_id JOIN photos ph "
            "ON ph.id = f.photo_id WHERE p.name IS NOT NULL AND ph.quarantined_at IS NULL ORDER BY f.photo_id, f.id")
        out: dict[int, list[dict[str, Any]]] = {}
        for r in cur.fetchall():
            out.setdefault(r[1], []).append(_face_dict(r))
        return out


    # -- tags -------------------------------------------------------------------------------

    def tags(self) -> list[dict[str, Any]]:
        """Every tag with its settings and counts (tagged = accepted or auto at/above threshold)."""
        cur = self.con.execute(
            "SELECT t.name, t.grp, t.parent, t.threshold, t.aliases, t.prompts, t.source, "
            "(SELECT count(*) FROM tag_decisions d WHERE d.tag = t.name AND d.state = 'accepted'), "
            "(SELECT count(*) FROM tag_decisions d WHERE d.tag = t.name AND d.state = 'rejected'), "
            "(SELECT count(*) FROM tag_scores s LEFT JOIN tag_decisions d ON d.photo_id = s.photo_id AND d.tag = s.tag "
            " WHERE s.tag = t.name AND s.score >= t.threshold AND d.state IS NULL), "
            "(SELECT count(*) FROM tag_scores s WHERE s.tag = t.name), "
            "(SELECT any_value(s.scorer) FROM tag_scores s WHERE s.tag = t.name) "
            "FROM tags t ORDER BY t.grp, t.name")
        names = ("name", "group", "parent", "threshold", "aliases", "prompts", "source", "accepted", "rejected",
                 "auto", "scored", "scorer")
        return [dict(zip(names, r)) for r in cur.fetchall()]

    def upsert_tags(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert or update tags (name, group, parent, threshold, aliases, prompts, source)."""
        for r in rows:
            self.con.execute("DELETE FROM tags WHERE lower(name) = lower(?)", [r["name"]])
            self.con.execute("INSERT INTO tags VALUES (?, ?, ?, ?, ?, ?, ?, now())",
                             [r["name"], r.get("group"), r.get("parent"), float(r.get("threshold", 0.6)),
                              list(r.get("aliases") or []), list(r.get("prompts") or []), r.get("source", "taxonomy")])

    def drop_tags(self, names: Sequence[str]) -> None:
        """Forget tags (their scores, decisions and probes too)."""
        for table, col in (("tag_scores", "tag"), ("tag_decisions", "tag"), ("tag_probes", "tag"), ("tags", "name")):
            self.con.execute(f"DELETE FROM {table} WHERE {col} IN (SELECT unnest(?::VARCHAR[]))", [list(names)])

    def replace_tag_scores(self, tag: str, model: str, scorer: str, ids: np.ndarray, scores: np.ndarray,
                           first: bool) -> None:
        """Store one chunk of a tag's scores; ``first`` drops the tag's previous scores."""
        if first:
            self.con.execute("DELETE FROM tag_scores WHERE tag = ?", [tag])
        if len(ids):
            frame = {"photo_id": np.asarray(ids, dtype=np.int64), "score": np.asarray(scores, dtype=np.float64)}
            self.con.register("_scores", frame)
            try:
                self.con.execute("INSERT INTO tag_scores SELECT photo_id, ?, score, ?, ? FROM _scores",
                                 [tag, model, scorer])
            finally:
                self.con.unregister("_scores")

    def set_decisions(self, photo_ids: Sequence[int], tag: str, state: str | None) -> None:
        """Record accepted/rejected (``None``: back to automatic) for photos and one tag."""
        ids = [int(i) for i in photo_ids]
        self.con.execute("DELETE FROM tag_decisions WHERE tag = ? AND photo_id IN (SELECT unnest(?::BIGINT[]))",
                         [tag, ids])
        if state is not None and ids:
            self.con.executemany("INSERT INTO tag_decisions VALUES (?, ?, ?, now())", [(i, tag, state) for i in ids])

    def decisions(self, tag: str) -> dict[int, str]:
        return dict(self.con.execute("SELECT photo_id, state FROM tag_decisions WHERE tag = ?", [tag]).fetchall())

    def tags_of_photos(self, photo_ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
        """Per photo: its tags with score, state ('auto', 'accepted', 'rejected') and whether it counts."""
        cur = self.con.execute(
            "WITH p AS (SELECT unnest(?::BIGINT[]) AS id), "
            "x AS (SELECT s.photo_id, s.tag, s.score FROM tag_scores s WHERE s.photo_id IN (SELECT id FROM p) "
            "UNION ALL SELECT d.photo_id, d.tag, NULL FROM tag_decisions d WHERE d.photo_id IN (SELECT id FROM p) "
            "AND NOT EXISTS (SELECT 1 FROM tag_scores s WHERE s.photo_id = d.photo_id AND s.tag = d.tag)) "
            "SELECT x.photo_id, x.tag, x.score, coalesce(d.state, 'auto'), t.threshold, t.parent FROM x "
            "JOIN tags t ON t.name = x.tag LEFT JOIN tag_decisions d ON d.photo_id = x.photo_id AND d.tag = x.tag "
            "ORDER BY x.photo_id, x.score DESC NULLS FIRST, x.tag", [[int(i) for i in photo_ids]])
        out: dict[int, list[dict[str, Any]]] = {}
        for pid, tag, score, state, threshold, parent in cur.fetchall():
            on = state == "accepted" or (state == "auto" and score is not None and score >= threshold)
            out.setdefault(pid, []).append({"tag": tag, "score": score, "state": state, "on": on,
                                            "threshold": threshold, "parent": parent})
        return out

    def tagged_photo_ids(self) -> list[int]:
        """Photos carrying at least one tag (accepted, or auto at/above threshold)."""
        rows = self.con.execute(
            "SELECT photo_id FROM tag_decisions WHERE state = 'accepted' UNION "
            "SELECT s.photo_id FROM tag_scores s JOIN tags t ON t.name = s.tag LEFT JOIN tag_decisions d "
            "ON d.photo_id = s.photo_id AND d.tag = s.tag WHERE s.score >= t.threshold AND d.state IS NULL").fetchall()
        return sorted(r[0] for r in rows)

    def review_queue(self, below: float, above: float, tag: str | None, limit: int) -> list[dict[str, Any]]:
        """Undecided proposals with above <= score < below, grouped per photo, most likely first."""
        where = "s.score >= ? AND s.score < ? AND d.state IS NULL AND p.quarantined_at IS NULL"
        params: list[Any] = [above, below]
        if tag:
            where += " AND s.tag = ?"
            params.append(tag)
        cur = self.con.execute(
            "SELECT s.photo_id, p.path, list({'tag': s.tag, 'score': s.score} ORDER BY s.score DESC) AS tags, "
            "max(s.score) AS best FROM tag_scores s JOIN photos p ON p.id = s.photo_id "
            "LEFT JOIN tag_decisions d ON d.photo_id = s.photo_id AND d.tag = s.tag "
            f"WHERE {where} GROUP BY s.photo_id, p.path ORDER BY best DESC, s.photo_id LIMIT ?", [*params, int(limit)])
        return [{"photo_id": r[0], "path": r[1], "tags": [dict(t) for t in r[2]]} for r in cur.fetchall()]

    def tagged_ranked(self, tags: Sequence[str], limit: int) -> list[tuple[int, float]]:
        """Photos carrying all ``tags``, by their lowest score among them (accepted counts as 1)."""
        if not tags:
            return []
        clauses = " AND ".join([f"p.id IN ({TAGGED_SQL})"] * len(tags))
        params: list[Any] = []
        for t in tags:
            params += [t, t]
        cur = self.con.execute(
            f"SELECT p.id, min(CASE WHEN d.state = 'accepted' THEN 1.0 ELSE coalesce(s.score, 1.0) END) AS sc "
            f"FROM photos p LEFT JOIN tag_scores s ON s.photo_id = p.id AND s.tag IN (SELECT unnest(?::VARCHAR[])) "
            f"LEFT JOIN tag_decisions d ON d.photo_id = p.id AND d.tag = s.tag "
            f"WHERE p.quarantined_at IS NULL AND {clauses} GROUP BY p.id ORDER BY sc DESC, p.id LIMIT ?",
            [list(tags), *params, int(limit)])
        return [(r[0], float(r[1])) for r in cur.fetchall()]

    def set_ratings(self, photo_ids: Sequence[int], rating: int | None) -> None:
        """Set (or with None, clear) photosearch ratings; the catalog's rating column follows."""
        ids = [int(i) for i in photo_ids]
        self._dirty = True
        self.con.execute("DELETE FROM photo_ratings WHERE photo_id IN (SELECT unnest(?::BIGINT[]))", [ids])
        if rating is not None:
            self.con.executemany("INSERT INTO photo_ratings VALUES (?, ?, now())", [(i, rating) for i in ids])
            self.con.execute("UPDATE photos SET rating = ? WHERE id IN (SELECT unnest(?::BIGINT[]))", [rating, ids])

    def ratings(self) -> dict[int, int]:
        return dict(self.con.execute("SELECT r.photo_id, r.rating FROM photo_ratings r JOIN photos p "
                                     "ON p.id = r.photo_id WHERE p.quarantined_at IS NULL").fetchall())

    def canonical_tag(self, name: str) -> str | None:
        """The tag a name or alias means (case-insensitive), or None."""
        key = " ".join(name.split()).lower()
        rows = self.con.execute("SELECT name, aliases FROM tags").fetchall()
        for tag, _ in rows:
            if tag.lower() == key:
                return tag
        for tag, aliases in rows:
            if key in (a.lower() for a in aliases or []):
                return tag
        return None

    def save_probe(self, tag: str, model: str, weights: np.ndarray, bias: float, positives: int, negatives: int) -> None:
        self.con.execute("DELETE FROM tag_probes WHERE tag = ?", [tag])
        self.con.execute("INSERT INTO tag_probes VALUES (?, ?, ?, ?, ?, ?, now())",
                         [tag, model, np.ascontiguousarray(weights, dtype="<f4").tobytes(), float(bias),
                          positives, negatives])

    def drop_probe(self, tag: str) -> None:
        self.con.execute("DELETE FROM tag_probes WHERE tag = ?", [tag])

    def probes(self, model: str) -> dict[str, tuple[np.ndarray, float, int, int]]:
        rows = self.con.execute("SELECT tag, weights, bias, positives, negatives FROM tag_probes WHERE model = ?",
                                [model]).fetchall()
        return {r[0]: (np.frombuffer(r[1], dtype="<f4").copy(), float(r[2]), r[3], r[4]) for r in rows}

    def export_rows(self) -> Iterator[tuple[Any, ...]]:
        """(id, path, taken_at, camera_make, camera_model, keywords) of every photo, by path."""
        cur = self.con.cursor()
        cur.execute("SELECT id, path, taken_at, camera_make, camera_model, gps_lat, gps_lon, rating FROM photos "
                    "WHERE quarantined_at IS NULL ORDER BY path")
        while True:
            rows = cur.fetchmany(10_000)
            if not rows:
                break
            yield from rows
        cur.close()

    def people_of_photos(self, photo_ids: Sequence[int]) -> dict[int, list[str]]:
        rows = self.con.execute(
            "SELECT f.photo_id, list(DISTINCT p.name ORDER BY p.name) FROM faces f JOIN people p ON p.id = f.person_id "
            "WHERE p.name IS NOT NULL AND f.photo_id IN (SELECT unnest(?::BIGINT[])) GROUP BY f.photo_id",
            [[int(i) for i in photo_ids]]).fetchall()
        return {r[0]: list(r[1]) for r in rows}


    # -- takeout, photo-level people, events ------------------------------------------------

    def set_takeout(self, photo_id: int, info: Any) -> None:
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
        cur = self.con.execute("SELECT t.photo_id, t.json_path, t.taken_at, t.gps_lat, t.gps_lon, t.description, "
                               "t.people FROM takeout t JOIN photos p ON p.id = t.photo_id "
                               "WHERE p.quarantined_at IS NULL")
        names = ("photo_id", "json_path", "taken_at", "gps_lat", "gps_lon", "description", "people")
        return {r[0]: dict(zip(names, r)) for r in cur.fetchall()}

    def photo_people(self, photo_ids: Sequence[int]) -> dict[int, list[str]]:
        rows = self.con.execute("SELECT photo_id, list(name ORDER BY name) FROM photo_people "
                                "WHERE photo_id IN (SELECT unnest(?::BIGINT[])) GROUP BY photo_id",
                                [[int(i) for i in photo_ids]]).fetchall()
        return {r[0]: list(r[1]) for r in rows}

    def event_inputs(self) -> list[tuple[Any, ...]]:
        """(id, taken_at, gps_lat, gps_lon) of dated, searchable photos in time order."""
        return self.con.execute("SELECT id, taken_at, gps_lat, gps_lon FROM photos WHERE taken_at IS NOT NULL "
                                "AND quarantined_at IS NULL ORDER BY taken_at, id").fetchall()

    def replace_events(self, events: Sequence[dict[str, Any]]) -> None:
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
        cur = self.con.execute("SELECT id, key, name, start_at, end_at, place, lat, lon, tags, photos FROM events "
                               "ORDER BY start_at, id")
        names = ("id", "key", "name", "start_at", "end_at", "place", "lat", "lon", "tags", "photos")
        return [dict(zip(names, r)) for r in cur.fetchall()]

    def library_copy_of(self, content_hash: str, outside: str) -> str | None:
        """A searchable photo with these bytes that is not under the folder ``outside``."""
        row = self.con.execute("SELECT path FROM photos WHERE content_hash = ? AND quarantined_at IS NULL "
                               "AND NOT starts_with(path, ?) ORDER BY id LIMIT 1",
                               [content_hash, outside.rstrip("/") + "/"]).fetchone()
        return None if row is None else row[0]

    def photo_event_ids(self) -> dict[int, int]:
        return dict(self.con.execute("SELECT photo_id, event_id FROM photo_events").fetchall())

    def photo_event_names(self, photo_ids: Sequence[int]) -> dict[int, str]:
        rows = self.con.execute("SELECT pe.photo_id, e.name FROM photo_events pe JOIN events e ON e.id = pe.event_id "
                                "WHERE pe.photo_id IN (SELECT unnest(?::BIGINT[]))",
                                [[int(i) for i in photo_ids]]).fetchall()
        return dict(rows)

    def photos_under(self, folders: Sequence[str]) -> list[dict[str, Any]]:
        """Searchable photos at any depth under these folders (or these files), by path."""
        out: list[dict[str, Any]] = []
        for f in folders:
            out += self._photo_dicts("WHERE quarantined_at IS NULL AND (path = ? OR starts_with(path, ?)) ORDER BY path",
                                     [f, f.rstrip("/") + "/"])
        return out

    def all_photos(self) -> list[dict[str, Any]]:
        return self._photo_dicts("WHERE quarantined_at IS NULL ORDER BY path", [])


    # -- shards -------------------------------------------------------------------------------

    def paths_by_ids(self, ids: Sequence[int]) -> dict[int, str]:
        if not len(ids):
            return {}
        return dict(self.con.execute("SELECT id, path FROM photos WHERE id IN (SELECT unnest(?::BIGINT[]))",
                                     [[int(i) for i in ids]]).fetchall())

    def reserve_photo_ids(self, n: int) -> list[int]:
        return [r[0] for r in self.con.execute("SELECT nextval('photo_id_seq') FROM range(?)", [n]).fetchall()]

    def next_shard_number(self) -> int:
        row = self.con.execute("SELECT max(CAST(substr(name, 7) AS INTEGER)) FROM shards").fetchone()
        return 0 if row[0] is None else int(row[0]) + 1

    def add_shard(self, name: str, photos: int, paths: list[str]) -> None:
        self.con.execute("INSERT INTO shards VALUES (?, ?, ?, now(), NULL)", [name, photos, paths])

    def pending_shard_paths(self) -> set[str]:
        rows = self.con.execute("SELECT unnest(paths) FROM shards WHERE ingested_at IS NULL").fetchall()
        return {r[0] for r in rows}

    def uningested_shards(self) -> list[str]:
        return [r[0] for r in self.con.execute("SELECT name FROM shards WHERE ingested_at IS NULL ORDER BY name").fetchall()]

    def mark_shard_ingested(self, name: str) -> None:
        self.con.execute("UPDATE shards SET ingested_at = now() WHERE name = ?", [name])

    def plan_listing(self, listing: Any, roots: Sequence[str], model: str,
                     face_model: str | None) -> tuple[Any, list[int]]:
        """The coordinator's diff, in SQL (a 100M-file walk never becomes Python dicts).

        ``listing`` is an Arrow table (path, size, mtime_ns) of every file walked under ``roots``.
        Returns (the listing's rows that need embedding: new, changed, or unchanged but missing a
        vector of ``model``, hashes or a scan by ``face_model``; neither pending in a shard nor an
        unchanged file known to be unusable) and the ids of cataloged photos under ``roots`` whose
        path was not walked (gone: moved or removed, decided after ingest)."""
        self.con.register("_listing", listing)
        try:
            todo = self.con.sql(
                "SELECT l.path, l.size, l.mtime_ns FROM _listing l "
                "LEFT JOIN photos p ON p.path = l.path AND p.size = l.size AND p.mtime_ns = l.mtime_ns "
                "LEFT JOIN (SELECT unnest(paths) AS path FROM shards WHERE ingested_at IS NULL) s ON s.path = l.path "
                "WHERE s.path IS NULL "
                "AND NOT EXISTS (SELECT 1 FROM shard_skips k WHERE k.path = l.path AND k.size = l.size "
                "                AND k.mtime_ns = l.mtime_ns) "
                "AND (p.id IS NULL "
                "     OR NOT EXISTS (SELECT 1 FROM embeddings e WHERE e.photo_id = p.id AND e.model = ?) "
                "     OR NOT EXISTS (SELECT 1 FROM image_hashes h WHERE h.photo_id = p.id) "
                "     OR (CAST(? AS VARCHAR) IS NOT NULL AND NOT EXISTS "
                "         (SELECT 1 FROM face_scans f WHERE f.photo_id = p.id AND f.model = ?))) "
                "ORDER BY l.path", params=[model, face_model, face_model]).to_arrow_table()
            gone: list[int] = []
            for root in roots:
                prefix = root.rstrip(os.sep) + os.sep
                gone += [r[0] for r in self.con.execute(
                    "SELECT p.id FROM photos p WHERE (starts_with(p.path, ?) OR p.path = ?) "
                    "AND NOT EXISTS (SELECT 1 FROM _listing l WHERE l.path = p.path)", [prefix, root]).fetchall()]
        finally:
            self.con.unregister("_listing")
        return todo, sorted(set(gone))

    def ingest_shard(self, out: str, model: str,
                     exists: Callable[[str], bool] = os.path.exists) -> dict[str, Any]:
        """Add one embedded output shard (Parquet, read by DuckDB) to the catalog, as the pipeline
        indexer would: a path cataloged with the same bytes keeps its row (missing vectors,
        hashes and faces are filled in); a changed file replaces its row; bytes of a cataloged
        photo whose file is gone are a move (the row, its vectors, faces, people and decisions
        follow the file); everything else is a new photo under its reserved id.

        Returns {"added", "refreshed", "moved", "faces", "skipped": [{"path", "reason"}]}."""
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        self._dirty = True
        table = pq.read_table(out)
        skipped = table.filter(pc.invert(pc.is_null(table.column("skip"))))
        table = table.filter(pc.is_null(table.column("skip")))
        # The joins read the shard file itself; vectors and faces come from the Arrow table.
        literal = str(out).replace("'", "''")
        self.con.execute(f"CREATE OR REPLACE TEMP VIEW _shard AS SELECT * FROM read_parquet('{literal}') "
                         "WHERE skip IS NULL")
        try:
            # Same path, same bytes: the cataloged row stays (a refresh, or a touched file).
            same: dict[int, int] = {}
            for new_id, old_id, size, mtime in self.con.execute(
                    "SELECT s.id, p.id, s.size, s.mtime_ns FROM _shard s JOIN photos p ON p.path = s.path "
                    "AND p.content_hash = s.content_hash").fetchall():
                same[new_id] = old_id
                self.touch_photo(old_id, size, mtime)
            # Same path, other bytes: the file changed; its old row goes.
            self.delete_photos([r[0] for r in self.con.execute(
                "SELECT p.id FROM _shard s JOIN photos p ON p.path = s.path "
                "AND p.content_hash <> s.content_hash").fetchall()])
            # Bytes cataloged under another path that no longer exists: a move.
            moved: dict[int, int] = {}
            claimed: set[int] = set()
            for new_id, old_id, old_path, path, size, mtime in self.con.execute(
                    "SELECT s.id, p.id, p.path, s.path, s.size, s.mtime_ns FROM _shard s "
                    "JOIN photos p ON p.content_hash = s.content_hash AND p.path <> s.path "
                    "ORDER BY s.id, p.id").fetchall():
                if new_id in same or new_id in moved or old_id in claimed or exists(old_path):
                    continue
                self.move_photo(old_id, path, size, mtime)
                moved[new_id] = old_id
                claimed.add(old_id)
            keep = sorted(set(same) | set(moved))
            cols = ", ".join(PHOTO_COLUMNS)
            self.con.execute(
                f"INSERT INTO photos (id, {cols}, indexed_at) SELECT id, {cols}, now() FROM _shard "
                "WHERE NOT list_contains(?::BIGINT[], id)", [keep])
            target = {**{i: i for i in table.column("id").to_pylist()}, **same}  # new id -> catalog id
            for new_id in moved:
                target.pop(new_id)  # a moved photo keeps what it had
            ids = np.asarray(table.column("id").to_numpy(), np.int64)
            pick = np.array([i in target for i in ids.tolist()], bool)
            if pick.any():
                # Only the rows filled in place can have them already: ask about those ids alone
                # (loading every id of a 100M catalog per shard would make ingest quadratic).
                have_vec = self._having("embeddings", list(same.values()), model)
                have_hash = self._having("image_hashes", list(same.values()))
                vec = table.column("vector").combine_chunks()
                flat = np.asarray(vec.flatten().to_numpy(zero_copy_only=False), np.float32)
                vectors = flat.reshape(len(ids), vec.type.list_size)
                dest = np.array([target.get(i, -1) for i in ids.tolist()], np.int64)
                want_vec = pick & np.array([d not in have_vec for d in dest.tolist()], bool)
                self.add_embeddings(model, dest[want_vec], vectors[want_vec])
                want_hash = [k for k in np.flatnonzero(pick) if dest[k] not in have_hash]
                if want_hash:
                    h = table.select(["phash", "dhash", "content_width", "content_height"]).take(want_hash).to_pylist()
                    self.add_hashes([(int(dest[k]), r["phash"], r["dhash"], r["content_width"], r["content_height"])
                                     for k, r in zip(want_hash, h)])
            faces = self._ingest_faces(table, target)
            self._ingest_takeout(table, target, same)
        finally:
            self.con.execute("DROP VIEW IF EXISTS _shard")
        self.con.execute("DELETE FROM shard_skips WHERE path IN (SELECT path FROM read_parquet(?))", [out])
        self.con.execute("INSERT INTO shard_skips SELECT path, size, mtime_ns, skip FROM read_parquet(?) "
                         "WHERE skip IS NOT NULL", [out])
        return {"added": table.num_rows - len(same) - len(moved), "refreshed": len(same), "moved": len(moved),
                "faces": faces,
                "skipped": [{"path": p, "reason": r} for p, r in zip(skipped.column("path").to_pylist(),
                                                                     skipped.column("skip").to_pylist())]}

    def _having(self, table: str, ids: Sequence[int], model: str | None = None) -> set[int]:
        """Those of ``ids`` with a row in ``table`` (for ``model``, if given)."""
        if not ids:
            return set()
        extra = " AND model = ?" if model is not None else ""
        return {r[0] for r in self.con.execute(
            f"SELECT photo_id FROM {table} WHERE photo_id IN (SELECT unnest(?::BIGINT[])){extra}",
            [[int(i) for i in ids]] + ([model] if model is not None else [])).fetchall()}

    def _ingest_faces(self, table: Any, target: dict[int, int]) -> int:
        """Faces of a shard's photos (those not yet scanned by the shard's face model)."""
        if "faces" not in table.column_names:
            return 0
        found = 0
        scanned: dict[str, set[int]] = {}
        batches: dict[str, list[tuple[int, list[FaceRow]]]] = {}
        rows = table.select(["id", "faces", "face_model"]).to_pylist()
        for r in rows:
            dest = target.get(r["id"])
            model = r["face_model"]
            if dest is None or model is None or r["faces"] is None:
                continue
            if model not in scanned:
                scanned[model] = self._having("face_scans", list(target.values()), model)
            if dest in scanned[model]:
                continue  # already scanned: keep its faces, people and rejections
            faces = [FaceRow(box=(f["x"], f["y"], f["w"], f["h"]), score=f["score"],
                             vector=None if f["vector"] is None else np.asarray(f["vector"], np.float32),
                             model=model if f["source"] == "detected" else None, source=f["source"],
                             region_name=f["region_name"]) for f in r["faces"]]
            for face in faces:
                if face.region_name:  # named by a region in the file: that person (created if new)
                    person = self.person_by_name(face.region_name)
                    face.person_id = person["id"] if person else self.create_person(face.region_name)
                    face.assigned = "file"
            batches.setdefault(model, []).append((dest, faces))
            found += sum(1 for f in faces if f.vector is not None)
        for model, scans in batches.items():
            self.add_face_scans(model, scans)
        return found

    def _ingest_takeout(self, table: Any, target: dict[int, int], same: dict[int, int]) -> None:
        if "takeout" not in table.column_names:
            return
        import json

        from photosearch.media.takeout import TakeoutInfo

        for r in table.select(["id", "takeout"]).to_pylist():
            dest = target.get(r["id"])
            if r["takeout"] is None or dest is None or r["id"] in same:
                continue
            d = json.loads(r["takeout"])
            taken = datetime.fromisoformat(d["taken_at"]) if d.get("taken_at") else None
            self.set_takeout(dest, TakeoutInfo(json_path=d["json_path"], taken_at=taken, gps_lat=d.get("gps_lat"),
                                               gps_lon=d.get("gps_lon"), description=d.get("description"),
                                               people=list(d.get("people") or [])))

    def shard_skips(self) -> dict[str, tuple[int, int]]:
        return {r[0]: (r[1], r[2]) for r in self.con.execute("SELECT path, size, mtime_ns FROM shard_skips").fetchall()}

    def remember_skips(self, rows: list[tuple[str, int, int, str]]) -> None:
        """Files that could not be used, as (path, size, mtime_ns, reason): not retried while unchanged."""
        if rows:
            self.con.executemany("INSERT OR REPLACE INTO shard_skips VALUES (?, ?, ?, ?)", rows)

    def forget_skips(self, paths: list[str]) -> None:
        if paths:
            self.con.executemany("DELETE FROM shard_skips WHERE path = ?", [[p] for p in paths])

    def skipped_files(self) -> list[dict[str, Any]]:
        """Every remembered skip: path, size, mtime_ns, reason (by path)."""
        rows = self.con.execute("SELECT path, size, mtime_ns, reason FROM shard_skips ORDER BY path").fetchall()
        return [{"path": r[0], "size": r[1], "mtime_ns": r[2], "reason": r[3]} for r in rows]


#: Photo ids carrying a tag: accepted by the user, or scored at or above the tag's threshold and not
#: rejected. Parameters: the tag name twice.
TAGGED_SQL = (
    "SELECT d.photo_id FROM tag_decisions d WHERE d.tag = ? AND d.state = 'accepted' UNION "
    "SELECT s.photo_id FROM tag_scores s JOIN tags t ON t.name = s.tag "
    "LEFT JOIN tag_decisions d ON d.photo_id = s.photo_id AND d.tag = s.tag "
    "WHERE s.tag = ? AND s.score >= t.threshold AND d.state IS NULL"
)

_FACE_FIELDS = ("id", "photo_id", "model", "x", "y", "w", "h", "score", "person_id", "person", "assigned", "source",
                "region_name")


def _face_dict(row: Sequence[Any]) -> dict[str, Any]:
    return dict(zip(_FACE_FIELDS, row))


@dataclass
class FaceRow:
    """A face to store: detected (with a vector) or read from a region in the file (no vector)."""

    box: tuple[float, float, float, float]
    score: float | None
    vector: np.ndarray | None
    model: str | None
    source: str = "detected"
    person_id: int | None = None
    assigned: str | None = None
    region_name: str | None = None


class PhotoVectors:
    """A model's photo embeddings (searchable photos only) as a vector index source."""

    has_rows = True

    def __init__(self, catalog: Catalog, model: str) -> None:
        self.catalog, self.model, self.key = catalog, model, model

    def count(self) -> int:
        return self.catalog.count_vectors(self.model, searchable=True)

    def ids(self) -> np.ndarray:
        return self.catalog.ids_with_vectors(self.model, searchable=True)

    def sample(self, n: int, seed: int) -> np.ndarray:
        return self.catalog.sample_vectors(self.model, n, seed=seed, searchable=True)

    def iter(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        return self.catalog.iter_vectors(self.model, searchable=True)

    def vectors(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.catalog.vectors(self.model, ids)

    def blocks(self, size: int) -> dict[int, tuple[int, int]]:
        """{block number: (vectors, checksum of their ids)} for blocks of ``size`` consecutive ids
        (the on-disk index rebuilds a block when this changes)."""
        rows = self.catalog.con.execute(
            f"SELECT photo_id // ? AS b, count(*), sum(hash(photo_id)) FROM embeddings "
            f"WHERE model = ?{Catalog._SEARCHABLE} GROUP BY b", [size, self.model]).fetchall()
        return {int(b): (int(c), int(h)) for b, c, h in rows}

    def range(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) with lo <= id < hi."""
        rows = self.catalog.con.execute(
            f"SELECT photo_id, vector FROM embeddings WHERE model = ? AND photo_id >= ? "
            f"AND photo_id < ?{Catalog._SEARCHABLE} ORDER BY photo_id", [self.model, lo, hi]).fetchall()
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        vecs = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(len(rows), -1)
        return ids, vecs


class FaceVectors:
    """A face model's face vectors (faces in searchable photos only) as a vector index source."""

    has_rows = False
    _FROM = ("FROM faces f JOIN photos p ON p.id = f.photo_id WHERE f.model = ? AND f.vector IS NOT NULL "
             "AND p.quarantined_at IS NULL")

    def __init__(self, catalog: Catalog, model: str) -> None:
        self.catalog, self.model, self.key = catalog, model, f"faces:{model}"

    def count(self) -> int:
        return int(self.catalog.con.execute(f"SELECT count(*) {self._FROM}", [self.model]).fetchone()[0])

    def ids(self) -> np.ndarray:
        res = self.catalog.con.execute(f"SELECT f.id {self._FROM} ORDER BY f.id", [self.model]).fetchnumpy()
        return np.asarray(res["id"], dtype=np.int64)

    def sample(self, n: int, seed: int) -> np.ndarray:
        rows = self.catalog.con.execute(
            f"SELECT vector FROM (SELECT f.vector {self._FROM}) USING SAMPLE reservoir({int(n)} ROWS) "
            f"REPEATABLE ({int(seed)})", [self.model]).fetchall()
        return np.frombuffer(b"".join(r[0] for r in rows), dtype="<f4").reshape(len(rows), -1).copy()

    def iter(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        cur = self.catalog.con.cursor()
        cur.execute(f"SELECT f.id, f.vector {self._FROM} ORDER BY f.id", [self.model])
        while True:
            rows = cur.fetchmany(50_000)
            if not rows:
                break
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            yield ids, np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(len(rows), -1)
        cur.close()

    def vectors(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rows = self.catalog.con.execute(
            "SELECT id, vector FROM faces WHERE model = ? AND vector IS NOT NULL "
            "AND id IN (SELECT unnest(?::BIGINT[])) ORDER BY id",
            [self.model, np.asarray(ids, dtype=np.int64).tolist()]).fetchall()
        out_ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        if not rows:
            return out_ids, np.zeros((0, 0), np.float32)
        return out_ids, np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(len(rows), -1)
