"""Journals of file changes, so that every action that moves or rewrites files can be undone.

One JSON-lines file per action in ``<library>/journal/``. Each change is written
(and fsynced) as an *intent* before it happens and marked *done* after, so after
a crash the journal says exactly what may have happened; undo checks the file
system rather than trusting the marks. ``photosearch undo`` reverses the most
recent action that is not undone yet, newest change first.

Change kinds:

- ``move``: a file moved from ``src`` to ``dst`` (sha256 recorded);
- ``replace``: a file rewritten in place, its original bytes kept at ``backup`` (under
  ``<library>/journal/backups/`` for metadata writes) until undone or purged; the done record
  holds the new bytes' sha256, so undo never overwrites a file someone changed since;
- ``create``: a new file photosearch made (e.g. an XMP sidecar; its sha256 in the done record);
- ``copy``: a file copied from ``src`` to a new ``dst`` (sha256 recorded; undo removes the copy);
- ``catalog``: a hand edit of the catalog alone (naming, merging, rejecting faces; "not the same
  person"; "not duplicates"), as the rows it changed before and after (store/edits_store.py);
  undo puts back every row that is still as the edit left it.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from photosearch.config import LibraryPaths
from photosearch.errors import LibraryError, PhotosearchError, UsageError
from photosearch.files import fsync_dir as _fsync_dir
from photosearch.files import replacing
from photosearch.media.scan import file_sha256


class UndoError(PhotosearchError):
    """Raised when an action cannot be undone (exit code 8)."""

    exit_code = 8


def move_file(src: Path, dst: Path) -> None:
    """Move without ever overwriting; across file systems copy, verify, then remove the source."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        raise FileExistsError(errno.EEXIST, "destination exists", str(dst))
    try:
        os.rename(src, dst)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        tmp = dst.with_name(f".{dst.name}.photosearch-tmp")
        shutil.copy2(src, tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        if file_sha256(tmp) != file_sha256(src):
            tmp.unlink()
            raise OSError(errno.EIO, "copy verification failed", str(src)) from None
        os.rename(tmp, dst)
        os.unlink(src)
    _fsync_dir(dst.parent)


@dataclass
class Change:
    """One journaled change: its number, kind (move, replace, create, copy), data, and whether it was marked done."""

    n: int
    kind: str
    data: dict[str, Any]
    done: bool = False


@dataclass
class Action:
    """One journaled action, as read back from its file."""

    path: Path
    name: str
    created: str
    meta: dict[str, Any]
    changes: list[Change] = field(default_factory=list)
    undone: bool = False
    finished: bool = False


def journaled_move(j: JournalWriter, src: Path, dst: Path, sidecars: list[tuple[str, str]], *,
                   photo_id: int | None = None) -> None:
    """Move a photo and its sidecars, each change journaled (intent, then done) around it."""
    n = j.intent("move", src=str(src), dst=str(dst), sha256=file_sha256(src), photo_id=photo_id)
    move_file(src, dst)
    j.done(n)
    for s_src, s_dst in sidecars:
        if Path(s_src).exists():
            sn = j.intent("move", src=s_src, dst=s_dst, sha256=file_sha256(Path(s_src)))
            move_file(Path(s_src), Path(s_dst))
            j.done(sn)


def journaled_write(j: JournalWriter, photo: Path, update: Any, *, target: Path | None = None,
                    photo_id: int | None = None, catalog: dict[str, Any] | None = None,
                    **options: Any) -> Any:
    """Write ``update`` into a photo's metadata through the safe writer (media/xmp.py), each file
    it may touch journaled first: a file to be rewritten is copied to the journal's backups (a
    ``replace``), a file to be made is a ``create``. ``target`` is where a dry run said the write
    goes (found again if None); ``catalog`` holds the row's fields undo puts back with the
    original bytes. ``options`` go to the writer (sidecar_only, sidecar_name, keep_mtime...)."""
    from photosearch.media.xmp import preview, sidecar_path, write

    if target is None:
        target = Path(preview(photo, update, **{k: v for k, v in options.items() if k != "keep_mtime"})[0])
    in_file = target == photo
    planned: list[tuple[int, Path, str]] = []
    if target.exists():
        backup = j.backups / f"{j.n + 1}-{target.name}"
        backup.parent.mkdir(parents=True, exist_ok=True)
        _keep(target, backup)
        extra = {"photo_id": photo_id, "catalog": catalog} if catalog is not None else {}
        planned.append((j.intent("replace", path=str(target), backup=str(backup), sha256_before=file_sha256(target),
                                 **extra), target, "sha256_after"))
    else:
        planned.append((j.intent("create", path=str(target)), target, "sha256"))
    if in_file:  # a file exiv2 cannot rewrite gets a sidecar instead
        side = sidecar_path(photo, options.get("sidecar_name", "ext"))
        if not side.exists():
            planned.append((j.intent("create", path=str(side)), side, "sha256"))
    result = write(photo, update, **options)
    for n, path, key in planned:
        if path.exists() and (key == "sha256_after" or str(path) == result.path):
            written = result.sha256 if str(path) == result.path and result.sha256 else file_sha256(path)
            j.done(n, **{key: written})
    return result


def _keep(path: Path, backup: Path) -> None:
    """The file's current bytes at ``backup``: a hard link where the journal is on the same file
    system (the writer never changes a file's bytes in place, it renames a new file over it, so
    the old inode keeps the original), else a copy."""
    try:
        os.link(path, backup)
    except OSError:
        shutil.copy2(path, backup)
        with open(backup, "rb+") as f:
            os.fsync(f.fileno())


class JournalWriter:
    """Appends one action's changes; use as a context manager."""

    def __init__(self, path: Path, name: str, meta: dict[str, Any]) -> None:
        self.path = path
        self.backups = path.parent / "backups" / path.stem   # original bytes of rewritten files
        self.n = 0
        self._f = open(path, "a", encoding="utf-8")
        self._write({"type": "begin", "action": name, "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "meta": meta})

    def _write(self, record: dict[str, Any]) -> None:
        text = json.dumps(record, ensure_ascii=False)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # a file name that is not UTF-8: JSON's \udcxx escapes keep its bytes
            text = json.dumps(record)
        self._f.write(text + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())

    def intent(self, kind: str, **data: Any) -> int:
        """Record (and fsync) an intended change before making it; returns its change number."""
        self.n += 1
        self._write({"type": "change", "n": self.n, "kind": kind, **data})
        return self.n

    def done(self, n: int, **data: Any) -> None:
        """Mark change ``n`` as done, with what is known only afterwards (``data``, e.g. sha256_after)."""
        self._write({"type": "done", "n": n, **data})

    def close(self, finished: bool = True) -> None:
        """Close the journal file, first writing the end record when ``finished``."""
        if not self._f.closed:
            if finished:
                self._write({"type": "end"})
            self._f.close()

    def __enter__(self) -> JournalWriter:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        self.close(finished=exc_type is None)


@contextmanager
def journaled_edit(paths: LibraryPaths, catalog: Any, name: str, tables: list[str],
                   meta: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
    """Run a hand edit of the catalog (the body of the ``with``) in one transaction and journal
    the rows it changed as one undoable action. The yielded dict gets ``journal``: the action's id
    (its journal file's name), or None when nothing changed."""
    info: dict[str, Any] = {"journal": None}
    writer: JournalWriter | None = None
    with catalog.transaction():
        catalog.begin_edit(tables)
        yield info
        diff = catalog.edit_diff(tables)
        if diff:  # the intent is on disk before the change commits
            writer = Journal(paths.root).begin(name, meta or {})
            n = writer.intent("catalog", tables=diff)
    if writer is not None:
        writer.done(n)
        writer.close()
        info["journal"] = writer.path.stem


class Journal:
    """The journal folder of a library."""

    def __init__(self, library_root: Path) -> None:
        self.dir = library_root / "journal"

    def begin(self, name: str, meta: dict[str, Any]) -> JournalWriter:
        """Start a new journal file, numbered after the existing ones, and return its writer."""
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LibraryError(f"cannot write the journal folder {self.dir}: {exc.strerror}") from None
        existing = [int(p.name.split("-", 1)[0]) for p in self.dir.glob("*.jsonl") if p.name.split("-", 1)[0].isdigit()]
        number = max(existing, default=0) + 1
        return JournalWriter(self.dir / f"{number:06d}-{name}.jsonl", name, meta)

    def actions(self) -> Iterator[Action]:
        """Every action, newest first."""
        if not self.dir.is_dir():
            return
        for path in sorted(self.dir.glob("*.jsonl"), reverse=True):
            yield self.read(path)

    @staticmethod
    def read(path: Path) -> Action:
        """Parse one journal file into an Action, stopping at a torn last line."""
        action = Action(path=path, name="", created="", meta={})
        by_n: dict[int, Change] = {}
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    rec = json.loads(line)
                except ValueError:
                    break  # a torn last line from a crash: everything before it is valid
                t = rec.get("type")
                if t == "begin":
                    action.name, action.created, action.meta = rec["action"], rec["created"], rec.get("meta", {})
                elif t == "change":
                    data = {k: v for k, v in rec.items() if k not in ("type", "n", "kind")}
                    by_n[rec["n"]] = Change(rec["n"], rec["kind"], data)
                    action.changes.append(by_n[rec["n"]])
                elif t == "done" and rec.get("n") in by_n:
                    by_n[rec["n"]].done = True
                    by_n[rec["n"]].data.update({k: v for k, v in rec.items() if k not in ("type", "n")})
                elif t == "end":
                    action.finished = True
                elif t == "undone":
                    action.undone = True
        return action

    def last_undoable(self) -> Action | None:
        """The action ``undo`` would reverse: the newest one not undone yet that has changes, or None."""
        for action in self.actions():
            if not action.undone and action.changes:
                return action
        return None

    @staticmethod
    def mark_undone(action: Action) -> None:
        """Append (and fsync) an ``undone`` record to the action's journal file."""
        with open(action.path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"type": "undone", "at": time.strftime("%Y-%m-%dT%H:%M:%S")}) + "\n")
            f.flush()
            os.fsync(f.fileno())


@dataclass
class UndoReport:
    """What an undo did: files restored, files removed, changes that never happened, and problems."""

    action: str
    restored: list[str] = field(default_factory=list)     # files back at their original paths
    removed: list[str] = field(default_factory=list)      # files photosearch had created
    untouched: list[str] = field(default_factory=list)    # changes that never happened, rows changed since
    problems: list[str] = field(default_factory=list)
    edit: bool = False                                    # a hand edit of the catalog (no files)
    rows: int = 0                                         # its rows put back

    def as_dict(self) -> dict[str, Any]:
        """The report's fields as a plain dict."""
        return dict(self.__dict__)


def undo_changes(action: Action) -> UndoReport:
    """Reverse an action's file changes, newest first, checking the file system at each step."""
    report = UndoReport(action=action.name)
    for change in reversed(action.changes):
        d = change.data
        try:
            if change.kind == "move":
                src, dst = Path(d["src"]), Path(d["dst"])
                if dst.exists() and not src.exists():
                    if d.get("sha256") and file_sha256(dst) != d["sha256"]:
                        report.problems.append(f"{dst} changed since it was moved; left where it is")
                        continue
                    move_file(dst, src)
                    report.restored.append(str(src))
                elif src.exists():
                    tmp = dst.with_name(f".{dst.name}.photosearch-tmp")
                    tmp.unlink(missing_ok=True)  # an interrupted cross-device copy
                    report.untouched.append(str(src))
                else:
                    report.problems.append(f"{src} is missing and {dst} too")
            elif change.kind == "replace":
                path, backup = Path(d["path"]), Path(d["backup"])
                now = file_sha256(path) if path.exists() else None
                if now is not None and now == d.get("sha256_before"):
                    report.untouched.append(str(path))  # the rewrite never landed
                    backup.unlink(missing_ok=True)
                    continue
                if not backup.exists():
                    report.problems.append(f"{path}: its original was purged from the journal; left as it is")
                    continue
                if now is not None and d.get("sha256_after") and now != d["sha256_after"]:
                    report.problems.append(f"{path} changed since photosearch wrote it; left as it is "
                                           f"(the original is kept at {backup})")
                    continue
                with replacing(path, suffix=".photosearch-tmp") as tmp:
                    shutil.copy2(backup, tmp)
                report.restored.append(str(path))
                backup.unlink()
            elif change.kind == "copy":
                dst = Path(d["dst"])
                if not dst.exists():
                    report.untouched.append(str(dst))
                elif d.get("sha256") and file_sha256(dst) != d["sha256"]:
                    report.problems.append(f"{dst} changed since it was copied; left where it is")
                else:
                    dst.unlink()
                    report.removed.append(str(dst))
            elif change.kind == "create":
                path = Path(d["path"])
                if not change.done:   # never made (or not by us): not ours to remove
                    report.untouched.append(str(path))
                elif path.exists():
                    if d.get("sha256") and file_sha256(path) != d["sha256"]:
                        report.problems.append(f"{path} changed since photosearch made it; left where it is")
                        continue
                    path.unlink()
                    report.removed.append(str(path))
        except OSError as exc:
            report.problems.append(f"{d.get('src') or d.get('path')}: {exc.strerror or exc}")
    return report


def undo_last(paths: LibraryPaths, action_id: str | None = None) -> UndoReport:
    """Undo the most recent journaled action of any kind (quarantine, organize, sync, a hand edit):
    files first, then the catalog rows the action changed. ``action_id`` (a journal file's name)
    undoes that action only if it is the most recent one."""
    from photosearch.store.catalog import Catalog

    journal = Journal(paths.root)
    action = journal.last_undoable()
    if action is None:
        raise UsageError("nothing to undo")
    if action_id is not None and action.path.stem != action_id:
        raise UsageError(f"a later action ({action.name}, {action.created}) must be undone first")
    report = undo_changes(action)
    if paths.catalog.exists():
        with Catalog.open(paths.catalog) as cat, cat.transaction():
            for change in action.changes:
                d = change.data
                if change.kind == "catalog" and change.done:
                    rows, changed = cat.revert_edit(d["tables"])
                    report.edit = True
                    report.rows += rows
                    report.untouched += [f"{what} (changed since; left as it is)" for what in changed]
                elif change.kind == "move" and d.get("photo_id") is not None and Path(d["src"]).exists():
                    cat.set_quarantined(d["photo_id"], d["src"], None)
                elif change.kind == "copy" and d.get("photo_id") is not None and not Path(d["dst"]).exists():
                    cat.delete_photos([d["photo_id"]])
                elif change.kind == "replace" and d.get("photo_id") is not None and "catalog" in d \
                        and str(d["path"]) in report.restored:
                    cat.update_photo(d["photo_id"], **d["catalog"])
    if not report.problems:
        Journal.mark_undone(action)
        backups = action.path.parent / "backups" / action.path.stem
        if backups.is_dir() and not any(backups.iterdir()):
            backups.rmdir()
    return report


def backup_usage(paths: LibraryPaths) -> tuple[int, int]:
    """(files, bytes) of the originals the journal keeps so that metadata writes can be undone."""
    root = paths.root / "journal" / "backups"
    files = [p for p in root.rglob("*") if p.is_file()] if root.is_dir() else []
    return len(files), sum(p.stat().st_size for p in files)


def purge_backups(paths: LibraryPaths, *, older_than_days: int, apply: bool = False,
                  now: float | None = None) -> tuple[int, int]:
    """Forget the originals kept for actions older than the limit (their metadata writes can no
    longer be undone); returns (files, bytes) that are (with ``apply``) or would be freed."""
    root = paths.root / "journal" / "backups"
    cutoff = (now if now is not None else time.time()) - older_than_days * 86400
    files = n_bytes = 0
    if not root.is_dir():
        return 0, 0
    for folder in sorted(root.iterdir()):
        journal_file = paths.root / "journal" / f"{folder.name}.jsonl"
        made = journal_file.stat().st_mtime if journal_file.exists() else folder.stat().st_mtime
        if made > cutoff:
            continue
        for p in folder.rglob("*"):
            if p.is_file():
                files += 1
                n_bytes += p.stat().st_size
        if apply:
            shutil.rmtree(folder)
    return files, n_bytes
