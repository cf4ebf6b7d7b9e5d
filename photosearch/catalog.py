"""The DuckDB catalog: every SQL statement photosearch runs lives here.

The schema comes from the numbered migrations in ``index/migrations`` (shipped
as ``photosearch.index_format``). One process writes at a time; DuckDB's file
lock is retried for a while so a search can slip in between an indexer's
batches, and vice versa.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator, Sequence
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
    import os

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(doc, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


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

    def active(self) -> bool:
        return any(v is not None for v in (self.after, self.before, self.camera, self.folder))


def _migrations() -> list[tuple[int, str, str]]:
    folder = resources.files("photosearch.index_format") / "migrations"
    found = []
    for entry in folder.iterdir():
        m = re.match(r"^(\d{4})_.*\.sql$", entry.name)
        if m:
            found.append((int(m.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


def schema_version_supported() -> int:
    """The newest catalog schema this photosearch knows."""
    return _migrations()[-1][0]


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
                if "permission" in str(exc).lower() or "read-only" in str(exc).lower():
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
        exists = self.con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_version'"
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
        cols = ", ".join(("id",) + PHOTO_COLUMNS + ("indexed_at",))
        marks = ", ".join(["?"] * len(PHOTO_COLUMNS))
        self.con.executemany(
            f"INSERT INTO photos ({cols}) VALUES (?, {marks}, now())",
            [(pid,) + rec.values() for pid, rec in zip(ids, records)],
        )
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
        if rows:
            self.con.executemany("INSERT INTO image_hashes VALUES (?, ?, ?, ?, ?)",
                                 [(int(pid), [int(v) for v in ph], int(dh), cw, chh) for pid, ph, dh, cw, chh in rows])

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

