"""The catalog's row types and vector sources: what the store's mixins and their callers share."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np


if TYPE_CHECKING:
    from photosearch.store.catalog import Catalog

#: The photos a search, a face search or a duplicate search can show: not quarantined, and not
#: the movie half of a Live Photo (its still is the item). ``p`` is the table's alias with its dot.
SHOWN = "{p}quarantined_at IS NULL AND {p}live_of IS NULL"

PHOTO_COLUMNS = (
    "path", "content_hash", "size", "mtime_ns", "width", "height", "format",
    "taken_at", "camera_make", "camera_model", "lens", "gps_lat", "gps_lon",
    "orientation", "keywords", "rating", "title", "description", "content_id", "media", "duration", "live_id",
    "keyword_paths",
)


def _arrow_types() -> dict[str, Any]:
    import pyarrow as pa

    return {"size": pa.int64(), "mtime_ns": pa.int64(), "width": pa.int64(), "height": pa.int64(),
            "taken_at": pa.timestamp("us"), "gps_lat": pa.float64(), "gps_lon": pa.float64(),
            "orientation": pa.int64(), "keywords": pa.list_(pa.string()), "rating": pa.int64(),
            "keyword_paths": pa.list_(pa.string()),
            "duration": pa.float64()}


_ARROW_TYPES: dict[str, Any] = {}


def photo_arrow_type(column: str) -> Any:
    """The Arrow type of a PHOTO_COLUMNS column (strings unless listed; built on first use, so
    importing the catalog does not import pyarrow)."""
    import pyarrow as pa

    if not _ARROW_TYPES:
        _ARROW_TYPES.update(_arrow_types())
    return _ARROW_TYPES.get(column, pa.string())


def warm_arrow() -> None:
    """Import pyarrow, and what its first array imports (pandas, where installed: ~0.3 s of CPU
    that pyarrow spends once per process), ahead of the first commit."""
    import pyarrow as pa

    pa.array([0])


def row_chunks(con: Any, sql: str, params: Sequence[Any] = (), chunk: int = 50_000) -> Iterator[list[tuple[Any, ...]]]:
    """The rows of ``sql``, ``chunk`` at a time, on a cursor of their own (bounded memory for big
    libraries, and the connection stays free for other statements meanwhile)."""
    cur = con.cursor()
    try:
        cur.execute(sql, list(params))
        while rows := cur.fetchmany(chunk):
            yield rows
    finally:
        cur.close()


def ids_and_vectors(rows: list[tuple[Any, ...]]) -> tuple[np.ndarray, np.ndarray]:
    """(int64 ids, float32 vectors) of (id, little-endian float32 blob) rows."""
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    return ids, np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(len(rows), -1)


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
    content_id: str | None = None     # the image data's identity (media/identity.py); None: its bytes
    media: str = "photo"              # or "video"
    duration: float | None = None     # seconds (videos)
    live_id: str | None = None        # Apple's Live Photo identifier (same in the still and its movie)
    keyword_paths: list[str] = field(default_factory=list)   # hierarchical keywords, "Places/France/Paris"

    def values(self) -> tuple[Any, ...]:
        """The record's fields in ``PHOTO_COLUMNS`` order, for an insert."""
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
    media: str | None = None          # 'photo' or 'video'
    meta: str | None = None           # words all found in the title, description, keywords or file name
    min_rating: int | None = None     # rated at least this many stars
    album: str | None = None          # a manual album's name (any case)

    def active(self) -> bool:
        """Whether any filter is set."""
        return bool(self.tags) or any(v is not None for v in (self.after, self.before, self.camera, self.folder,
                                                              self.person, self.event, self.media, self.meta,
                                                              self.min_rating, self.album))


#: Photo ids carrying a tag: accepted by the user, or scored at or above the tag's threshold and not
#: rejected. Parameters: the tag name twice.
TAGGED_SQL = (
    "SELECT d.photo_id FROM tag_decisions d WHERE d.tag = ? AND d.state = 'accepted' UNION "
    "SELECT s.photo_id FROM tag_scores s JOIN tags t ON t.name = s.tag "
    "LEFT JOIN tag_decisions d ON d.photo_id = s.photo_id AND d.tag = s.tag "
    "WHERE s.tag = ? AND s.score >= t.threshold AND d.state IS NULL"
)

_FACE_FIELDS = ("id", "photo_id", "model", "x", "y", "w", "h", "score", "person_id", "person", "assigned", "source",
                "region_name", "t")


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
    t: float | None = None            # a face in a video: the moment (seconds)


class PhotoVectors:
    """A model's photo embeddings (searchable photos only) as a vector index source."""

    has_rows = True

    def __init__(self, catalog: Catalog, model: str) -> None:
        self.catalog, self.model, self.key = catalog, model, model

    def write_rows(self, path: Any) -> int:
        """The rows file beside the index: each photo's result fields (an unfiltered search
        answers from it without the catalog)."""
        from photosearch.store.rows import write

        return write(path, self.catalog.result_rows())

    def count(self) -> int:
        """Number of vectors of searchable photos."""
        return self.catalog.count_vectors(self.model, searchable=True)

    def ids(self) -> np.ndarray:
        """Ids of the searchable photos that have a vector."""
        return self.catalog.ids_with_vectors(self.model, searchable=True)

    def sample(self, n: int, seed: int) -> np.ndarray:
        """A reproducible random sample of ``n`` vectors of searchable photos."""
        return self.catalog.sample_vectors(self.model, n, seed=seed, searchable=True)

    def iter(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids, vectors) chunks of searchable photos, in id order."""
        return self.catalog.iter_vectors(self.model, searchable=True)

    def vectors(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) for those of ``ids`` that have a vector."""
        return self.catalog.vectors(self.model, ids)

    def blocks(self, size: int) -> dict[int, tuple[int, int]]:
        """{block number: (vectors, checksum of their ids)} for blocks of ``size`` consecutive ids
        (the on-disk index rebuilds a block when this changes)."""
        rows = self.catalog.con.execute(
            f"SELECT photo_id // ? AS b, count(*), sum(hash(photo_id)) FROM embeddings "
            f"WHERE model = ?{self.catalog._SEARCHABLE} GROUP BY b", [size, self.model]).fetchall()
        return {int(b): (int(c), int(h)) for b, c, h in rows}

    def range(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) with lo <= id < hi."""
        rows = self.catalog.con.execute(
            f"SELECT photo_id, vector FROM embeddings WHERE model = ? AND photo_id >= ? "
            f"AND photo_id < ?{self.catalog._SEARCHABLE} ORDER BY photo_id", [self.model, lo, hi]).fetchall()
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        vecs = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(len(rows), -1)
        return ids, vecs


class JoinedVectors:
    """Vectors kept beside their photo (faces, video frames), of searchable photos only, as a
    vector index source. Subclasses give ``_FROM`` (joins and filter, one ``?`` for the model),
    ``_ID`` and ``_VECTOR`` (the id and vector columns in it), ``KIND`` (the index key's prefix)."""

    has_rows = False
    KIND = ""
    _FROM = _ID = _VECTOR = _TABLE = _TABLE_ID = ""

    def __init__(self, catalog: Catalog, model: str) -> None:
        self.catalog, self.model, self.key = catalog, model, f"{self.KIND}:{model}"

    def count(self) -> int:
        """Number of vectors in searchable photos."""
        return int(self.catalog.con.execute(f"SELECT count(*) {self._FROM}", [self.model]).fetchone()[0])

    def ids(self) -> np.ndarray:
        """Ids of the vectors in searchable photos, sorted."""
        res = self.catalog.con.execute(f"SELECT {self._ID} AS id {self._FROM} ORDER BY id", [self.model]).fetchnumpy()
        return np.asarray(res["id"], dtype=np.int64)

    def sample(self, n: int, seed: int) -> np.ndarray:
        """A reproducible random sample of ``n`` vectors."""
        rows = self.catalog.con.execute(
            f"SELECT vector FROM (SELECT {self._VECTOR} AS vector {self._FROM}) USING SAMPLE reservoir({int(n)} ROWS) "
            f"REPEATABLE ({int(seed)})", [self.model]).fetchall()
        return np.frombuffer(b"".join(r[0] for r in rows), dtype="<f4").reshape(len(rows), -1).copy()

    def iter(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids, vectors) chunks of up to 50,000, in id order."""
        for rows in row_chunks(self.catalog.con, f"SELECT {self._ID}, {self._VECTOR} {self._FROM} ORDER BY {self._ID}",
                               [self.model]):
            yield ids_and_vectors(rows)

    def vectors(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) for those of ``ids`` that have a vector of this model, sorted by id."""
        rows = self.catalog.con.execute(
            f"SELECT {self._TABLE_ID}, vector FROM {self._TABLE} WHERE model = ? AND vector IS NOT NULL "
            f"AND {self._TABLE_ID} IN (SELECT unnest(?::BIGINT[])) ORDER BY {self._TABLE_ID}",
            [self.model, np.asarray(ids, dtype=np.int64).tolist()]).fetchall()
        if not rows:
            return np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
        return ids_and_vectors(rows)


class FaceVectors(JoinedVectors):
    """A face model's face vectors (faces in searchable photos only) as a vector index source."""

    KIND = "faces"
    _FROM = ("FROM faces f JOIN photos p ON p.id = f.photo_id WHERE f.model = ? AND f.vector IS NOT NULL "
             f"AND {SHOWN.format(p='p.')}")
    _ID, _VECTOR = "f.id", "f.vector"
    _TABLE, _TABLE_ID = "faces", "id"
