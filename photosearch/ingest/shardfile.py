"""Shards on disk: the unit of work a sharded run hands to its workers, as Parquet files
(see photosearch/store/schema/FORMAT.md, "Shards").

- manifest ``shards/manifest/shard-NNNNNN.parquet``: one :class:`WorkItem` per row;
- output ``shards/out/shard-NNNNNN.parquet``: one :class:`Result` per manifest row, the columns
  every analyzer declares (:meth:`Analyzer.columns`) beside the file's own.

Both are written under a temporary name and renamed: a shard is complete or absent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from photosearch.config import LibraryPaths
from photosearch.ingest.analyze import Result
from photosearch.ingest.analyzers import Analyzer
from photosearch.ingest.plan import WorkItem


def shard_dirs(paths: LibraryPaths) -> tuple[Path, Path]:
    """The library's manifest and output shard folders, in that order."""
    root = paths.root / "shards"
    return root / "manifest", root / "out"


def write_table(table: Any, dest: Path) -> None:
    """Write an Arrow table as Parquet, atomically."""
    import pyarrow.parquet as pq

    from photosearch.files import replacing

    dest.parent.mkdir(parents=True, exist_ok=True)
    with replacing(dest) as tmp:
        pq.write_table(table, tmp)


def write_manifest(items: list[WorkItem], dest: Path) -> None:
    """A manifest shard of work items (their ``id`` reserved)."""
    import pyarrow as pa

    write_table(pa.table({
        "id": pa.array([i.id for i in items], pa.int64()),
        "path": pa.array([i.path for i in items], pa.string()),
        "size": pa.array([i.size for i in items], pa.int64()),
        "mtime_ns": pa.array([i.mtime_ns for i in items], pa.int64()),
        "known_id": pa.array([i.known_id for i in items], pa.int64()),
        "known_hash": pa.array([i.known_hash for i in items], pa.string()),
        "known_content_id": pa.array([i.known_content_id for i in items], pa.string()),
        "full": pa.array([i.full for i in items], pa.bool_()),
        "lacks": pa.array([sorted(i.lacks) for i in items], pa.list_(pa.string())),
        "known": pa.array([sorted(i.known) for i in items], pa.list_(pa.string())),
    }), dest)


def read_manifest(path: str | Path) -> list[WorkItem]:
    """The work items of a manifest shard (one written before the plan columns existed reads
    as new files: every analyzer runs)."""
    import pyarrow.parquet as pq

    return [WorkItem(path=r["path"], size=r["size"], mtime_ns=r["mtime_ns"], id=r["id"],
                     known_id=r.get("known_id"), known_hash=r.get("known_hash"),
                     known_content_id=r.get("known_content_id"),
                     full=r.get("full", True) is not False, lacks=frozenset(r.get("lacks") or ()),
                     known=frozenset(r.get("known") or ()))
            for r in pq.read_table(path).to_pylist()]


def write_output(results: list[Result], analyzers: list[Analyzer], dest: Path) -> None:
    """An output shard: one row per result, in manifest order."""
    import pyarrow as pa

    cols: dict[str, Any] = {
        "id": pa.array([r.item.id for r in results], pa.int64()),
        "path": pa.array([r.item.path for r in results], pa.string()),
        "size": pa.array([r.item.size for r in results], pa.int64()),
        "mtime_ns": pa.array([r.item.mtime_ns for r in results], pa.int64()),
        "content_hash": pa.array([r.hash or None for r in results], pa.string()),
        "skip": pa.array([r.skip for r in results], pa.string()),
        "analyzed": pa.array([r.analyzed for r in results], pa.bool_()),
        "content_id": pa.array([r.content_id for r in results], pa.string()),
        "same_image": pa.array([r.same_image for r in results], pa.bool_()),
    }
    for a in analyzers:
        cols.update(a.columns([r.outputs.get(a.name) for r in results]))
    write_table(pa.table(cols), dest)


def read_output(path: str | Path, items: list[WorkItem] | None, analyzers: list[Analyzer]) -> list[Result]:
    """The results of an output shard, with the manifest's work items where given."""
    import pyarrow.parquet as pq

    out = []
    for n, row in enumerate(pq.read_table(path).to_pylist()):
        item = items[n] if items is not None and n < len(items) and items[n].path == row["path"] else \
            WorkItem(path=row["path"], size=row["size"], mtime_ns=row["mtime_ns"], id=row["id"])
        res = Result(item, hash=row.get("content_hash") or "", skip=row.get("skip"),
                     analyzed=row.get("analyzed", row.get("skip") is None) is not False,
                     content_id=row.get("content_id"), same_image=bool(row.get("same_image")))
        # A skipped file keeps what the analyzers that need no pixels made (kept without a picture).
        for a in analyzers if res.skip is None else [a for a in analyzers if not a.needs_pixels]:
            value = a.from_row(row)
            if value is not None:
                res.outputs[a.name] = value
        out.append(res)
    return out


__all__ = ["shard_dirs", "write_manifest", "read_manifest", "write_output", "read_output", "write_table"]
