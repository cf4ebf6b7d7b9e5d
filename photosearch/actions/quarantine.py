"""Resolving duplicate groups reversibly: quarantine, metadata merge, purge (undo: journal.py).

``dupes --move-to DIR`` is a dry run until ``--apply``. Applying it, per group:

1. merges the non-keepers' keywords, best rating and a description into the
   keeper through the safe XMP writer, after keeping the keeper's original
   bytes in the journal's backups (journaled as a ``replace``);
2. moves every non-keeper (and its XMP sidecar) to ``DIR``, keeping its path
   relative to the indexed folder it came from, never overwriting anything;
3. marks the moved photos quarantined in the catalog (they leave search
   results and duplicate groups; their vectors stay).

Every change is journaled first, so ``photosearch undo`` restores exactly what
the action changed, byte for byte, even after a crash half-way. Nothing is
ever deleted except by ``dupes purge --apply``, and only files quarantined at
least seven days before.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from photosearch.actions.journal import Journal, journaled_move, journaled_write
from photosearch.config import LibraryPaths
from photosearch.errors import InputError, UsageError
from photosearch.files import os_path, unwritable_reason
from photosearch.media.scan import file_sha256, find_sidecar
from photosearch.media.xmp import MetadataUpdate, WriteError
from photosearch.query.dupes import Group
from photosearch.store.catalog import Catalog

MIN_PURGE_DAYS = 7


@dataclass
class PlannedMove:
    """One planned quarantine move of a non-keeper (and its sidecars), naming the keeper it duplicates."""

    photo_id: int
    src: str
    dst: str
    keeper: str
    sidecars: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class PlannedMerge:
    """What the keeper gets from its group (None / empty: leave as is): keywords and people it
    lacks, a better rating, a description, and the capture date and place when it has none."""

    photo_id: int
    path: str
    keywords: list[str]
    rating: int | None
    description: str | None
    people: list[str] = field(default_factory=list)
    taken_at: str | None = None                  # ISO
    gps: list[float] | None = None               # [lat, lon]

    def update(self) -> MetadataUpdate:
        """The merge as a metadata update for the safe writer."""
        from datetime import datetime

        return MetadataUpdate(
            keywords=self.keywords, rating=self.rating, description=self.description, persons=self.people,
            hierarchical=[f"People|{n}" for n in self.people], tags_list=[f"People/{n}" for n in self.people],
            taken_at=datetime.fromisoformat(self.taken_at) if self.taken_at else None,
            gps=(self.gps[0], self.gps[1]) if self.gps else None)

    def describe(self) -> list[str]:
        """Each thing merged, in words."""
        return [b for b in (f"keywords {', '.join(self.keywords)}" if self.keywords else "",
                            f"people {', '.join(self.people)}" if self.people else "",
                            f"rating {self.rating}" if self.rating is not None else "",
                            "description" if self.description else "",
                            f"date {self.taken_at}" if self.taken_at else "",
                            f"place {self.gps[0]:.5f},{self.gps[1]:.5f}" if self.gps else "") if b]


@dataclass
class Plan:
    """A dry-run quarantine plan for a destination folder: moves and metadata merges."""

    dest: str
    moves: list[PlannedMove] = field(default_factory=list)
    merges: list[PlannedMerge] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The plan as a plain dict, moves and merges included."""
        return {"dest": self.dest, "moves": [m.__dict__ for m in self.moves],
                "merges": [m.__dict__ for m in self.merges]}


@dataclass
class ApplyReport:
    """What applying a quarantine plan did: counts moved and merged, failures, and the journal file."""

    moved: int = 0
    merged: int = 0
    failures: list[dict[str, str]] = field(default_factory=list)
    journal: str = ""
    action: str = ""        # the journaled action's id, for `undo(action=...)`

    def as_dict(self) -> dict[str, Any]:
        """The report's fields as a plain dict."""
        return dict(self.__dict__)


def _relative(path: str, roots: list[str]) -> str:
    best = max((r for r in roots if path.startswith(r.rstrip(os.sep) + os.sep)), key=len, default=None)
    if best is None:
        return path.lstrip(os.sep)
    return os.path.relpath(path, best)


def make_plan(catalog: Catalog, groups: list[Group], dest: str | os.PathLike[str]) -> Plan:
    """What --move-to would do: no file is touched."""
    dest_path = Path(dest).expanduser()
    if dest_path.exists() and not dest_path.is_dir():
        raise InputError(f"--move-to: {dest} exists and is not a folder")
    plan = Plan(dest=os.path.normpath(os.path.abspath(dest_path)))
    roots = catalog.roots()
    taken: set[str] = set()
    for group in groups:
        rows = catalog.photos_by_ids([m.id for m in group.members])
        keeper = rows[group.keeper.id]
        keeper["path"] = os_path(keeper["path"])  # plans and journals hold names as the OS gives them
        keywords = list(keeper["keywords"] or [])
        rating = keeper["rating"]
        description = keeper["description"]
        taken_at, gps = keeper["taken_at"], (keeper["gps_lat"], keeper["gps_lon"])
        people = catalog.people_of_photos([m.id for m in group.members])
        names = list(people.get(keeper["id"], []))
        live = catalog.live_movies_of([m.id for m in group.members[1:]])
        for m in group.members[1:]:
            r = rows[m.id]
            r["path"] = os_path(r["path"])
            if not _plan_move(plan, r, keeper["path"], roots, taken, live):
                continue  # already quarantined there
            keywords += [k for k in (r["keywords"] or []) if k not in keywords]
            if r["rating"] is not None and (rating is None or r["rating"] > rating):
                rating = r["rating"]
            description = description or r["description"]
            taken_at = taken_at or r["taken_at"]     # the first copy's that has one (keeper first)
            if gps[0] is None and r["gps_lat"] is not None:
                gps = (r["gps_lat"], r["gps_lon"])
            names += [n for n in people.get(m.id, []) if n not in names]
        merge = PlannedMerge(
            keeper["id"], keeper["path"], keywords=[k for k in keywords if k not in (keeper["keywords"] or [])],
            rating=rating if rating != keeper["rating"] else None,
            description=description if description and not keeper["description"] else None,
            people=[n for n in names if n not in people.get(keeper["id"], [])],
            taken_at=taken_at.isoformat() if taken_at and not keeper["taken_at"] else None,
            gps=[gps[0], gps[1]] if gps[0] is not None and keeper["gps_lat"] is None else None)
        if not merge.update().empty() and any(mv.keeper == keeper["path"] for mv in plan.moves):
            plan.merges.append(merge)
    return plan


def _plan_move(plan: Plan, row: dict[str, Any], keeper: str, roots: list[str], taken: set[str],
               live: dict[int, dict[str, Any]]) -> bool:
    """Add the move of one photo (its sidecar and Live Photo movie along) into ``plan.dest``,
    keeping its path below its indexed folder, never onto a file or another planned move. False
    when the photo is already there."""
    if os.path.normpath(row["path"]).startswith(plan.dest + os.sep):
        return False
    wanted = Path(plan.dest) / _relative(row["path"], roots)
    dst, n = wanted, 1
    while str(dst) in taken or dst.exists():
        dst, n = wanted.with_name(f"{wanted.stem} ({n}){wanted.suffix}"), n + 1
    taken.add(str(dst))
    move = PlannedMove(row["id"], row["path"], str(dst), keeper)
    side = find_sidecar(row["path"])
    if side:
        # Keep the sidecar's naming style: photo.jpg.xmp or photo.xmp.
        full_style = Path(side).name.lower() == Path(row["path"]).name.lower() + ".xmp"
        side_name = (dst.name if full_style else dst.stem) + Path(side).suffix
        move.sidecars.append((side, str(dst.with_name(side_name))))
    plan.moves.append(move)
    if row["id"] in live:  # a Live Photo's movie goes with its still, under the same name
        movie = os_path(live[row["id"]]["path"])
        mdst = dst.with_suffix(Path(movie).suffix)
        taken.add(str(mdst))
        plan.moves.append(PlannedMove(live[row["id"]]["id"], movie, str(mdst), keeper))
    return True


def plan_quarantine(catalog: Catalog, photo_ids: list[int], dest: str | os.PathLike[str]) -> Plan:
    """Moving chosen photos (not duplicates: no keeper, nothing merged) into ``dest``; no file is
    touched. InputError for an id that is not in the library or a photo already quarantined."""
    dest_path = Path(dest).expanduser()
    if dest_path.exists() and not dest_path.is_dir():
        raise InputError(f"{dest} exists and is not a folder")
    plan = Plan(dest=os.path.normpath(os.path.abspath(dest_path)))
    rows = catalog.photos_by_ids(photo_ids)
    away = {q["id"] for q in catalog.quarantined()}
    for pid in photo_ids:
        if pid not in rows:
            raise InputError(f"no photo {pid} in the library")
        if pid in away:
            raise InputError(f"{rows[pid]['path']} is already quarantined")
    roots, taken = catalog.roots(), set()
    live = catalog.live_movies_of(list(rows))
    for pid in dict.fromkeys(photo_ids):
        row = rows[pid]
        row["path"] = os_path(row["path"])
        _plan_move(plan, row, "", roots, taken, live)
    return plan


def apply_plan(paths: LibraryPaths, catalog: Catalog, plan: Plan, name: str = "dupes-quarantine") -> ApplyReport:
    """Carry out a plan, journaling every change first (as action ``name``). Per-file failures are
    reported, not raised."""
    report = ApplyReport()
    dest = Path(plan.dest)
    why = unwritable_reason(dest)
    if why is not None:
        raise InputError(f"--move-to: {why}")
    journal = Journal(paths.root)
    with journal.begin(name, {"dest": plan.dest}) as j:
        report.journal, report.action = str(j.path), j.path.stem
        for merge in plan.merges:
            _merge_into_keeper(catalog, j, merge, report)
        now = datetime.now()
        for move in plan.moves:
            src, dst = Path(move.src), Path(move.dst)
            try:
                journaled_move(j, src, dst, move.sidecars, photo_id=move.photo_id)
                with catalog.transaction():
                    catalog.set_quarantined(move.photo_id, move.dst, now)
                report.moved += 1
            except OSError as exc:
                report.failures.append({"path": move.src, "reason": f"not moved: {exc.strerror or exc}"})
    return report


def _merge_into_keeper(catalog: Catalog, j: Any, merge: PlannedMerge, report: ApplyReport) -> None:
    keeper = Path(merge.path)
    update = merge.update()
    try:
        row = catalog.photos_by_ids([merge.photo_id])[merge.photo_id]
        before = {k: row[k] for k in ("content_hash", "size", "mtime_ns", "rating", "description", "gps_lat",
                                      "gps_lon")} \
            | {"keywords": list(row["keywords"] or []),
               "taken_at": row["taken_at"].isoformat() if row["taken_at"] else None}
        journaled_write(j, keeper, update, photo_id=merge.photo_id, catalog=before)
        st = keeper.stat()
        with catalog.transaction():
            catalog.update_photo(merge.photo_id, content_hash=file_sha256(keeper), size=st.st_size,
                                 mtime_ns=st.st_mtime_ns,
                                 keywords=list(dict.fromkeys([*(row["keywords"] or []), *merge.keywords])),
                                 rating=merge.rating if merge.rating is not None else row["rating"],
                                 description=row["description"] or merge.description,
                                 taken_at=row["taken_at"] or update.taken_at,
                                 gps_lat=row["gps_lat"] if row["gps_lat"] is not None else (merge.gps or [None])[0],
                                 gps_lon=row["gps_lon"] if row["gps_lat"] is not None else (merge.gps or [None, None])[1])
        report.merged += 1
    except (WriteError, OSError) as exc:
        report.failures.append({"path": merge.path, "reason": f"metadata not merged: {exc}"})


def keep_both(catalog: Catalog, photos: list[str]) -> int:
    """Remember that these photos are not duplicates of each other (in the caller's transaction);
    returns the pairs added."""
    if len(photos) < 2:
        raise UsageError("give at least two photos")
    ids = []
    for p in photos:
        row = catalog.photo_by_path(os.path.normpath(os.path.abspath(p)))
        if row is None:
            raise InputError(f"not in the library: {p}")
        ids.append(row["id"])
    return catalog.add_not_duplicates(ids)


@dataclass
class PurgeItem:
    """One quarantined file considered by ``purge`` and whether it was deleted."""

    path: str
    quarantined_at: str
    deleted: bool = False


def purge(catalog: Catalog, *, older_than_days: int = MIN_PURGE_DAYS, apply: bool = False,
          now: datetime | None = None) -> list[PurgeItem]:
    """Quarantined photos older than the limit; deleted (with their sidecars) only with ``apply``."""
    if older_than_days < MIN_PURGE_DAYS:
        raise UsageError(f"--older-than must be at least {MIN_PURGE_DAYS} days")
    cutoff = (now or datetime.now()) - timedelta(days=older_than_days)
    items = []
    removed_ids = []
    for row in catalog.quarantined():
        if row["quarantined_at"] > cutoff:
            continue
        item = PurgeItem(row["path"], row["quarantined_at"].isoformat())
        if apply:
            path = Path(os_path(row["path"]))
            side = find_sidecar(str(path))
            try:
                if path.exists():
                    path.unlink()
                if side:
                    Path(side).unlink()
                item.deleted = True
                removed_ids.append(row["id"])
            except OSError:
                item.deleted = False
        items.append(item)
    if removed_ids:
        with catalog.transaction():
            catalog.delete_photos(removed_ids)
    return items
