"""Watching an import folder: new files are indexed, tagged, exact duplicates of library photos
quarantined, and (as configured) organized and written into.

A file is processed once it is *settled*: its size and modification time have not changed for
``settle_seconds`` and it can be opened, so a slow copy (a phone over USB, a network share) is
never picked up half-written. Files appear through watchdog's file-system events; a periodic
rescan catches anything events missed. Each batch goes through the same library calls as the
CLI (index, tag, dupes quarantine, organize, sync), each journaled and committed as it goes, so
stopping (SIGINT/SIGTERM) between or during batches loses nothing: the next run continues.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from photosearch.files import text_path
from photosearch.media.decode import SUPPORTED_EXTENSIONS

DEFAULT_SETTLE_SECONDS = 3.0
RESCAN_SECONDS = 30.0


@dataclass
class WatchOptions:
    """What ``watch`` does with each settled batch of new files besides indexing them."""

    settle_seconds: float = DEFAULT_SETTLE_SECONDS
    tag: bool = True
    quarantine: str | None = None          # where duplicates go (exact, within the batch, strict near; None: left alone)
    organize_into: str | None = None       # organize processed photos into this folder
    pattern: str | None = None
    rules: list[Any] = field(default_factory=list)
    sync: bool = False
    faces: bool = True


@dataclass
class BatchReport:
    """What processing one batch of settled files did."""

    files: list[str] = field(default_factory=list)
    indexed: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)
    quarantined: list[str] = field(default_factory=list)
    duplicates: list[dict[str, Any]] = field(default_factory=list)   # each found: of what, how, why, quarantined?
    organized: int = 0
    synced: int = 0
    failures: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The report's fields as a plain dict."""
        return dict(self.__dict__)


class Settler:
    """Tracks candidate files until their size and mtime have been still for ``seconds``."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.clock = clock
        self._seen: dict[str, tuple[int, int, float]] = {}  # path -> (size, mtime_ns, since)
        self.done: set[tuple[str, int, int]] = set()

    def observe(self, path: str) -> None:
        """Note a file's current size and mtime, restarting its timer if they changed; forgets files that vanished."""
        try:
            st = os.stat(path)
        except OSError:
            self._seen.pop(path, None)
            return
        key = (st.st_size, st.st_mtime_ns)
        prev = self._seen.get(path)
        if prev is None or prev[:2] != key:
            self._seen[path] = (*key, self.clock())

    def settled(self) -> list[str]:
        """Non-empty, readable files unchanged for ``seconds`` and not yet done, sorted."""
        now = self.clock()
        ready = []
        for path, (size, mtime, since) in list(self._seen.items()):
            self.observe(path)
            cur = self._seen.get(path)
            if cur is None or cur[:2] != (size, mtime):
                continue
            if (path, size, mtime) in self.done:
                del self._seen[path]
                continue
            if size > 0 and now - since >= self.seconds and _readable(path):
                ready.append(path)
        return sorted(ready)

    def mark_done(self, paths: list[str]) -> None:
        """Stop tracking these files, remembering their size and mtime so they are not offered again."""
        for p in paths:
            cur = self._seen.pop(p, None)
            if cur is not None:
                self.done.add((p, cur[0], cur[1]))

    def pending(self) -> int:
        """Number of files still being tracked."""
        return len(self._seen)


def _readable(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            f.read(1)
        return True
    except OSError:
        return False


def candidates(folder: Path) -> list[str]:
    """Paths of supported image files under ``folder``, skipping hidden files and folders."""
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in SUPPORTED_EXTENSIONS:
                out.append(os.path.join(dirpath, name))
    return out


class Watcher:
    """Processes an import folder for one library (see the module docstring)."""

    def __init__(self, library: Any, import_dir: str | os.PathLike[str], options: WatchOptions,
                 on_batch: Callable[[BatchReport], None] | None = None,
                 on_status: Callable[[str], None] | None = None) -> None:
        from photosearch.errors import InputError

        self.lib = library
        self.dir = Path(os.path.abspath(Path(import_dir).expanduser()))
        if not self.dir.is_dir():
            raise InputError(f"no such folder: {import_dir}")
        self.options = options
        self.on_batch = on_batch or (lambda _b: None)
        self.say = on_status or (lambda _m: None)
        self.settler = Settler(options.settle_seconds)
        self.stop = threading.Event()
        self._dirty = threading.Event()

    # -- one batch ----------------------------------------------------------------------------

    def process(self, files: list[str]) -> BatchReport:
        """Index, tag, quarantine duplicates (detected as `dupes` does), organize and sync these settled files."""
        from photosearch.store.catalog import Catalog

        report = BatchReport(files=list(files))
        summary = self.lib.index(files, faces=self.options.faces, remember_roots=False)
        report.indexed = summary.indexed + summary.reused + summary.moved
        report.skipped = [{"path": s.path, "reason": s.reason} for s in summary.skipped]
        with Catalog.open(self.lib.paths.catalog, read_only=True) as cat:
            rows = [r for r in (cat.photo_by_path(f) for f in files) if r is not None]
        found = self.lib.import_duplicates([r["id"] for r in rows], str(self.dir))
        report.duplicates = [d.as_dict() for d in found]
        duplicates = [d for d in found if d.quarantine]
        if duplicates and self.options.quarantine:
            result = self.lib.quarantine_photos([d.path for d in duplicates], self.options.quarantine,
                                                relative_to=str(self.dir), keepers={d.path: d.of for d in duplicates})
            report.quarantined = [m["src"] for m in result["moved"]]
            report.failures += result["failures"]
        gone = {text_path(p) for p in report.quarantined}
        kept = [r for r in rows if r["path"] not in gone]
        if self.options.tag and kept:
            try:
                self.lib.tag()
            except Exception as exc:  # tagging needs a text model; the rest still goes on
                report.failures.append({"path": str(self.dir), "reason": f"not tagged: {exc}"})
        if self.options.organize_into and kept:
            plan, result = self.lib.organize([r["path"] for r in kept], self.options.organize_into,
                                             pattern=self.options.pattern, rules=self.options.rules, apply=True)
            report.organized = (result.moved if result else 0)
            report.failures += result.failures if result else []
        if self.options.sync and kept:
            with Catalog.open(self.lib.paths.catalog, read_only=True) as cat:
                ids = [r["id"] for r in kept if cat.photos_by_ids([r["id"]])]
            items = self.lib.sync(apply=True, only_ids=ids)
            report.synced = sum(1 for i in items if i.status == "written")
            report.failures += [{"path": i.path, "reason": i.error or ""} for i in items if i.status == "failed"]
        self.settler.mark_done(files)
        self.on_batch(report)
        return report

    # -- running ------------------------------------------------------------------------------

    def _scan(self) -> None:
        for path in candidates(self.dir):
            self.settler.observe(path)

    def run_once(self, max_wait: float = 600.0) -> list[BatchReport]:
        """Process every file in the folder once it has settled, then return (for cron/timers).
        Files still changing after ``max_wait`` seconds are left for the next run."""
        self._scan()
        deadline = time.monotonic() + max_wait
        reports = []
        while not self.stop.is_set():
            ready = self.settler.settled()
            if ready:
                reports.append(self.process(ready))
            if self.settler.pending() == 0 or time.monotonic() >= deadline:
                break
            self.stop.wait(min(0.25, self.options.settle_seconds / 4))
            self._scan()
        return reports

    def run_forever(self) -> None:
        """Watch until :attr:`stop` is set (the CLI sets it on SIGINT/SIGTERM)."""
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer

        watcher = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: Any) -> None:
                watcher._dirty.set()

        observer = Observer()
        observer.schedule(Handler(), str(self.dir), recursive=True)
        observer.start()
        self.say(f"watching {self.dir} (Ctrl-C to stop)")
        last_scan = 0.0
        try:
            while not self.stop.is_set():
                now = time.monotonic()
                if self._dirty.is_set() or now - last_scan >= RESCAN_SECONDS:
                    self._dirty.clear()
                    self._scan()
                    last_scan = now
                ready = self.settler.settled()
                if ready:
                    self.process(ready)
                self.stop.wait(min(0.5, self.options.settle_seconds / 4))
        finally:
            observer.stop()
            observer.join(timeout=5)


__all__ = ["Watcher", "WatchOptions", "BatchReport", "Settler", "DEFAULT_SETTLE_SECONDS"]
