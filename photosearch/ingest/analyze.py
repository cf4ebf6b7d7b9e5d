"""Stage 2, analyze: one file in, everything the index stores about it out.

    read -> content hash -> (bytes the catalog knows: stop; commit reuses them)
         -> decode once (JPEGs DCT-scaled) -> every wanted analyzer on those pixels

:class:`PhotoAnalyzer` is what every runner analyzes with: the in-process runner streams its
results into the commit stage, a shard worker (in this process or on Ray) writes them to an
output shard. It never opens the catalog. :meth:`PhotoAnalyzer.stream` runs the per-photo work
on a thread pool a bounded distance ahead (Pillow, hashlib and onnxruntime release the GIL) and
the batched analyzers (CLIP) on batches, several batches at once when given ``encoders`` (the
pipeline on the CPU: two, each model call on half the cores, so that on few cores no thread of
a model call waits for another while the decode threads share them). A file that takes longer
than its time budget (PHOTOSEARCH_FILE_SECONDS) is skipped, and its thread abandoned to finish
on its own.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

from photosearch.errors import DecodeError
from photosearch.files import os_path
from photosearch.ingest.analyzers import Analyzer, Photo
from photosearch.ingest.analyzers.base import file_ext
from photosearch.ingest.plan import WorkItem
from photosearch.media.video import is_video

#: The shorter side the CLIP, hash and thumbnail inputs keep at least when a decode made larger
#: for another analyzer (faces) is reduced for them: what a CLIP-only decode gives a 224-256 px model.
REDUCED_MIN_SIDE = 256


@dataclass
class Result:
    """What analyzing one work item gave. ``skip`` says why the file could not be used;
    ``analyzed`` False means its bytes were not decoded (known to the catalog: a copy, a move,
    or a touched file); ``outputs`` maps analyzer names to their outputs."""

    item: WorkItem
    hash: str = ""
    skip: str | None = None
    analyzed: bool = False
    outputs: dict[str, Any] = field(default_factory=dict)
    content_id: str | None = None   # the image data's identity (media/identity.py)
    same_image: bool = False        # new bytes, same image as the row at this path: its metadata was edited


def read_file(path: str, sink: Callable[[bytes], Any] | None = None) -> tuple[bytes | None, str | None]:
    """The file's bytes, or why they cannot be read. Only a regular file is read (opened without
    blocking, checked with fstat: what the walk saw may have been swapped for a FIFO or a link to a
    device since), and never more than the size limit of its kind. With ``sink``, the bytes go
    there a chunk at a time and are not kept (a video is hashed, not held): b"" on success."""
    import stat

    try:
        fd = os.open(os_path(path), os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return None, "file vanished during indexing"
    except IsADirectoryError:
        return None, "is a folder"
    except OSError as exc:
        return None, f"cannot read: {exc.strerror or exc}"
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            return None, "is a folder"
        if not stat.S_ISREG(st.st_mode):
            return None, "not a photo file: not a regular file"
        limit = max_file_bytes(path)
        if st.st_size > limit:
            return None, (f"too large: {st.st_size / 1e6:,.0f} MB, over the {limit / 1e6:,.0f} MB limit for this "
                          f"kind of file (PHOTOSEARCH_MAX_FILE_MB raises it)")
        chunks, got = [], 0
        # Reads of the size fstat gave (plus one byte: a file still growing reads on), not of a
        # fixed 16 MB: Python allocates the whole request for each read (~1 ms a photo, measured).
        want = st.st_size + 1
        while True:
            chunk = os.read(fd, min(1 << 24, limit + 1 - got, max(1 << 16, want - got)))
            if not chunk:
                break
            if sink is None:
                chunks.append(chunk)
            else:
                sink(chunk)
            got += len(chunk)
            if got > limit:
                return None, f"too large: grew over the {limit / 1e6:,.0f} MB limit while being read"
        return b"".join(chunks), None
    except OSError as exc:
        return None, f"cannot read: {exc.strerror or exc}"
    finally:
        os.close(fd)


def max_file_bytes(path: str) -> int:
    """The largest file of this kind that is read (PHOTOSEARCH_MAX_FILE_MB overrides every kind)."""
    from photosearch.config import DEFAULT_MAX_FILE_MB, ENV_MAX_FILE_MB, env_int
    from photosearch.media.decode import RAW_EXTENSIONS

    override = env_int(ENV_MAX_FILE_MB, 0)
    if override > 0:
        return override * 1_000_000
    ext = file_ext(path)
    kind = ("raw" if ext in RAW_EXTENSIONS else "tiff" if ext in (".tif", ".tiff") else
            "video" if is_video(path) else "other")
    return DEFAULT_MAX_FILE_MB[kind] * 1_000_000


def file_budget_seconds() -> float:
    """The time budget of one file, in seconds (PHOTOSEARCH_FILE_SECONDS)."""
    from photosearch.config import DEFAULT_FILE_SECONDS, ENV_FILE_SECONDS

    try:
        value = float(os.environ.get(ENV_FILE_SECONDS) or DEFAULT_FILE_SECONDS)
    except ValueError:
        value = DEFAULT_FILE_SECONDS
    return value if value > 0 else DEFAULT_FILE_SECONDS


def _run_beside(fn: Callable[[Photo], Any], photo: Photo) -> Callable[[], Any]:
    """Start ``fn(photo)`` on a thread of its own; the returned call waits for its result (or
    raises its error)."""
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["out"] = fn(photo)
        except BaseException as exc:  # noqa: BLE001 - re-raised on the analyzing thread
            box["err"] = exc

    thread = threading.Thread(target=work, name="analyze-beside", daemon=True)
    thread.start()

    def result() -> Any:
        thread.join()
        if "err" in box:
            raise box["err"]
        return box.get("out")

    return result


#: The slowest read a video's time budget allows for (its size over this, in seconds), and a
#: quarter of its length for sampling (4x slower than the speed goal) is added too.
READ_BYTES_PER_S = 100e6

_worker = threading.local()


def extend_budget(seconds: float) -> None:
    """Give the file being analyzed on this thread ``seconds`` more than the per-file budget (a
    long video); a no-op outside a pool."""
    extend = getattr(_worker, "extend", None)
    if extend is not None:
        extend(max(0.0, seconds))


class _Pool:
    """Daemon worker threads. A file over its time budget cannot be stopped (it is inside a
    decoder), so its thread is left to finish alone, and a fresh one takes its place: neither
    the run nor the process exit waits for it. At most ``workers`` threads are replaced, so a
    folder of pathological files cannot pile up threads (and their pixels) without bound."""

    def __init__(self, workers: int, fn: Callable[[WorkItem], Result]) -> None:
        self._jobs: queue.SimpleQueue[tuple[Future[Result], WorkItem] | None] = queue.SimpleQueue()
        self._fn = fn
        self._threads = 0
        self._spare = workers
        self._started: dict[int, float] = {}
        self._extra: dict[int, float] = {}
        for _ in range(workers):
            self._add()

    def _add(self) -> None:
        self._threads += 1
        threading.Thread(target=self._work, name=f"analyze-{self._threads}", daemon=True).start()

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            fut, item = job
            if not fut.set_running_or_notify_cancel():
                continue
            key = id(fut)
            self._started[key] = time.monotonic()
            _worker.extend = lambda s, key=key: self._extra.__setitem__(key, s)
            try:
                fut.set_result(self._fn(item))
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting side
                fut.set_exception(exc)
            finally:
                _worker.extend = None
                self._started.pop(key, None)
                self._extra.pop(key, None)

    def submit(self, item: WorkItem) -> Future[Result]:
        fut: Future[Result] = Future()
        self._jobs.put((fut, item))
        return fut

    def overdue(self, fut: Future[Result], budget: float) -> bool:
        """Whether ``fut`` has run longer than ``budget`` (plus what its file asked for)."""
        started = self._started.get(id(fut))
        return started is not None and time.monotonic() - started > budget + self._extra.get(id(fut), 0.0)

    def abandon(self) -> None:
        """A thread is stuck in an overrun file: start another in its place, while spares last."""
        if self._spare > 0:
            self._spare -= 1
            self._add()

    def shutdown(self) -> None:
        for _ in range(self._threads):
            self._jobs.put(None)


def _video_photo(item: WorkItem, res: Result, info: Any, poster: Any, small: Any,
                 frames: list[tuple[float, Any]]) -> Photo:
    """A video as the analyzers see it, from its probe (``info``) and its sampled frames (the
    first is the poster; none for a video kept without pixels)."""
    from photosearch.media.decode import Decoded, Metadata

    md = Metadata(taken_at=info.taken_at, camera_make=info.camera_make, camera_model=info.camera_model,
                  gps_lat=info.gps_lat, gps_lon=info.gps_lon, live_id=info.content_identifier)
    return Photo(item=item, data=b"", content_hash=res.hash, content_id=None,
                 decoded=Decoded(poster, info.width, info.height, (info.codec or info.container).upper(), None),
                 small=small, outputs=res.outputs, _metadata=md, video=info, frames=frames)


class PhotoAnalyzer:
    """Runs the analyzers over work items. ``small_side``: the shorter side of the pixels the
    analyzers other than faces get (the CLIP model's input size). ``encoders``: how many batches
    the batched analyzers may finish at once, each on a thread of its own (1: one at a time, on
    the thread reading :meth:`stream`); more pays when each model call runs on one thread."""

    def __init__(self, analyzers: list[Analyzer], *, small_side: int, workers: int = 1, batch_size: int = 16,
                 file_seconds: float | None = None, encoders: int = 1) -> None:
        self.analyzers = analyzers
        self.small_side = small_side
        self.workers = max(1, workers)
        self.batch_size = max(1, batch_size)
        self.encoders = max(1, encoders)
        self.file_seconds = file_seconds if file_seconds is not None else file_budget_seconds()

    def analyze(self, item: WorkItem) -> Result:
        """Read, hash, and (unless the bytes are known) decode once and run every wanted analyzer.
        Batched analyzers' outputs are their inputs until :meth:`finish_batch`. A video is hashed
        as it is read (never held), then probed and sampled once (:meth:`_video`)."""
        from photosearch.media.identity import content_id
        from photosearch.media.scan import content_hash

        video = is_video(item.path)
        if video:  # reading a video takes time by its size (100 MB/s at least)
            extend_budget(item.size / READ_BYTES_PER_S)
            data, res = self._read_hashing(item)
        else:
            data, skip = read_file(item.path)
            res = Result(item, skip=skip) if data is None else \
                Result(item, hash=content_hash(data), content_id=content_id(data))
        if res.skip is not None or (item.full and (res.hash == item.known_hash or res.hash in item.known)):
            return res
        wanted = [a for a in self.analyzers if a.wanted(item)]
        if item.full and res.content_id is not None and res.content_id == item.known_content_id:
            # Another app rewrote the file's metadata, not its image: vectors, hashes and faces
            # stay; only what comes from the metadata (and the thumbnail, keyed by bytes) is redone.
            res.same_image = True
            wanted = [a for a in wanted if a.check is None]
        if not wanted:
            return res
        min_side = max([self.small_side] + [a.min_side for a in wanted])
        probed: list[Any] = []      # a video's probe, kept if its frames then fail to decode
        try:
            photo = self._video(item, res, min_side, probed) if video else self._photo(item, res, data, min_side)
            aside = [(a, _run_beside(a.analyze, photo)) for a in wanted if a.beside]
            for a in wanted:
                if not a.beside and (out := a.analyze(photo)) is not None:
                    res.outputs[a.name] = out
            for a, running in aside:
                if (out := running()) is not None:
                    res.outputs[a.name] = out
        except DecodeError as exc:
            return self._without_pixels(item, res, data, probed[0] if probed else None, exc.reason, wanted)
        except MemoryError:
            return Result(item, hash=res.hash, skip="too large to decode in memory", content_id=res.content_id)
        except Exception as exc:  # noqa: BLE001 - one hostile file must never end the run or lose the batch
            first = (str(exc).splitlines() or [""])[0][:200]
            return Result(item, hash=res.hash, skip=f"could not be analyzed: {type(exc).__name__}: {first}")
        res.analyzed = True
        return res

    def _read_hashing(self, item: WorkItem) -> tuple[bytes | None, Result]:
        """A video's content hash, its bytes read and hashed a chunk at a time (never held)."""
        import hashlib

        h = hashlib.sha256()
        got = [0]

        def sink(chunk: bytes) -> None:
            h.update(chunk)
            got[0] += len(chunk)

        data, skip = read_file(item.path, sink=sink)
        if data is None:
            return None, Result(item, skip=skip)
        if got[0] == 0:
            return None, Result(item, hash=h.hexdigest(), skip="empty file (0 bytes)")
        return None, Result(item, hash=h.hexdigest())

    def _small(self, image: Any, min_side: int) -> Any:
        """The pixels for CLIP, hashes and the thumbnail: a decode made larger for faces is
        box-reduced first (as JPEG DCT scaling would have done; ~12 ms less CPU a photo at
        1000x750, measured)."""
        k = min(image.size) // max(self.small_side, REDUCED_MIN_SIDE)
        return image.reduce(k) if min_side > max(self.small_side, REDUCED_MIN_SIDE) and k >= 2 else image

    def _photo(self, item: WorkItem, res: Result, data: bytes | None, min_side: int) -> Photo:
        from photosearch.media.decode import decode

        decoded = decode(data or b"", ext=file_ext(item.path), min_side=min_side)
        return Photo(item=item, data=data or b"", content_hash=res.hash, content_id=res.content_id,
                     decoded=decoded, small=self._small(decoded.image, min_side), outputs=res.outputs)

    def _video(self, item: WorkItem, res: Result, min_side: int, probed: list[Any]) -> Photo:
        """A video as the analyzers see it: its first sampled frame as the pixels (so its row
        gets a vector, hashes, a poster and a record like a photo, with the container's date and
        place), and every sampled moment in ``Photo.frames`` (frames: CLIP per moment; faces).
        What the container says of itself goes into ``probed`` before any frame is decoded."""
        from photosearch.media.video import sample

        def heard(head: Any) -> None:
            probed.append(head)
            extend_budget(item.size / READ_BYTES_PER_S + (head.duration or 0.0) / 4)

        # The analyzers' sizes are for 4:3 photos (faces: a 640 px long side): frames are held
        # at the CLIP size, or larger to give that long side, whatever their shape.
        min_long = round(min_side * 4 / 3) if min_side > self.small_side else 0
        sampled = sample(item.path, min_side=self.small_side, min_long=min_long, on_probe=heard)
        poster = sampled.frames[0][1]
        return _video_photo(item, res, sampled.info, poster, self._small(poster, min_side), sampled.frames)

    def _without_pixels(self, item: WorkItem, res: Result, data: bytes | None, probed: Any, reason: str,
                        wanted: list[Analyzer]) -> Result:
        """The result of a file whose pixels did not decode: skipped with ``reason``; but a
        camera file that still says what it is (a video whose container was read, its frames
        cut short or lost; a RAW file whose image is unreadable but whose EXIF names the camera
        or the date) keeps that in the catalog (the analyzers that need no pixels run: its
        record), so that dates, cameras, events and `organize` still find it. It is never
        retried while unchanged, like any skipped file."""
        from photosearch.media.decode import RAW_EXTENSIONS, Decoded

        skipped = Result(item, hash=res.hash, skip=reason, content_id=res.content_id)
        keep = [a for a in wanted if not a.needs_pixels]
        if not any(a.name == "record" for a in keep):
            return skipped
        if probed is not None:
            photo = _video_photo(item, res, probed, None, None, [])
        elif data and file_ext(item.path) in RAW_EXTENSIONS:
            photo = Photo(item=item, data=data, content_hash=res.hash, content_id=res.content_id,
                          decoded=Decoded(None, None, None, file_ext(item.path).lstrip(".").upper(), None),
                          small=None)
            md = photo.metadata
            if not (md.camera_make or md.camera_model or md.taken_at):
                return skipped
        else:
            return skipped
        photo.outputs = {}   # only what the analyzers that need no pixels make now
        try:
            for a in keep:
                if (out := a.analyze(photo)) is not None:
                    photo.outputs[a.name] = out
        except Exception:  # noqa: BLE001 - what could be kept is a bonus: the skip stands alone
            return skipped
        if "record" in photo.outputs:
            skipped.skip = f"{reason}; kept with what it says of itself (date, camera), without a picture"
            skipped.outputs = photo.outputs
        return skipped

    def finish_batch(self, batch: list[Result]) -> None:
        """Turn the batched analyzers' inputs into outputs, for a batch of results."""
        for a in self.analyzers:
            if not a.batched:
                continue
            having = [r for r in batch if a.name in r.outputs]
            if having:
                for r, out in zip(having, a.finish_batch([r.outputs[a.name] for r in having])):
                    r.outputs[a.name] = out

    def stream(self, items: Iterable[WorkItem]) -> Iterator[Result]:
        """A result for every item, as soon as it is complete (batched ones a batch at a time).

        ``analyze`` runs on ``workers`` threads a bounded distance ahead, so decoded pixels never
        pile up; full batches go to ``encoders`` threads, at most that many at once (when all are
        busy, this waits for the oldest, and the look-ahead stops with it). Stopping early (an
        error, Ctrl-C) cancels the look-ahead and the batches not started. A file still running
        after ``file_seconds`` comes out skipped. Batched results come out after the others."""
        batched = [a.name for a in self.analyzers if a.batched]
        batch: list[Result] = []
        lookahead = max(2 * self.batch_size, 4 * self.workers)
        pending: deque[tuple[WorkItem, Future[Result]]] = deque()
        pool = _Pool(self.workers, self.analyze)
        encoders = ThreadPoolExecutor(self.encoders, thread_name_prefix="encode") if self.encoders > 1 else None
        encoding: deque[tuple[list[Result], Future[None]]] = deque()   # in the order they were handed over

        def finished(most: int) -> Iterator[Result]:
            """The batches done at the head of ``encoding``, waiting while more than ``most`` are in flight."""
            while encoding and (len(encoding) > most or encoding[0][1].done()):
                results, fut = encoding.popleft()
                fut.result()  # an error of the model call is raised here, in order
                yield from results

        def flush(parts: int = 1) -> Iterator[Result]:
            full = batch[:]
            batch.clear()
            if encoders is None:
                self.finish_batch(full)
                yield from full
                return
            step = -(-len(full) // parts)
            for at in range(0, len(full), step):
                encoding.append((full[at:at + step], encoders.submit(self.finish_batch, full[at:at + step])))
            yield from finished(self.encoders)

        def result(item: WorkItem, fut: Future[Result]) -> Result:
            while True:
                try:
                    return fut.result(timeout=min(1.0, self.file_seconds))
                except FutureTimeout:
                    if pool.overdue(fut, self.file_seconds):
                        pool.abandon()
                        return Result(item, skip=f"took longer than {self.file_seconds:g} s to analyze "
                                                 "(PHOTOSEARCH_FILE_SECONDS raises the limit)")

        def take() -> Iterator[Result]:
            res = result(*pending.popleft())
            if any(name in res.outputs for name in batched):
                batch.append(res)
                if len(batch) >= self.batch_size:
                    yield from flush()
            else:
                yield res
            yield from finished(self.encoders)

        try:
            try:
                for item in items:
                    pending.append((item, pool.submit(item)))
                    if len(pending) >= lookahead:
                        yield from take()
                while pending:
                    yield from take()
            finally:
                for _, fut in pending:
                    fut.cancel()
                pool.shutdown()
            if batch:  # the last one, split so that every encoder has a part while nothing else runs
                yield from flush(parts=self.encoders)
            yield from finished(0)
        finally:
            if encoders is not None:
                # A batch being encoded finishes on its own; those not started are dropped.
                encoders.shutdown(wait=False, cancel_futures=True)


__all__ = ["PhotoAnalyzer", "Result", "read_file", "file_budget_seconds", "REDUCED_MIN_SIDE"]
