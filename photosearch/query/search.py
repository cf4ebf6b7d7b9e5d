"""Text and example-photo search over a library.

A query never imports torch: the text tower runs on onnxruntime, the index is
FAISS, filters are one DuckDB query. The text model loads in a thread while
the catalog and the vector index load, since a cold query is mostly loading.
"""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from photosearch.store.catalog import Catalog, Filters
from photosearch.config import DEFAULT_EXACT_MAX, ENV_EXACT_MAX, LibraryPaths, env_int
from photosearch.errors import DecodeError, InputError, NotIndexedError, UsageError
from photosearch.models.store import ModelStore
from photosearch.store.rows import result_fields
from photosearch.store.vectors import exact_search, load_for_search, load_published


@dataclass
class SearchResult:
    """One ranked search hit with the photo's main details."""

    rank: int
    id: int
    path: str
    score: float
    taken_at: datetime | None
    camera: str | None
    width: int | None
    height: int | None
    format: str | None
    keywords: list[str]
    face: dict[str, Any] | None = None   # face search: the matched face (id, box, person)
    media: str = "photo"                 # or "video"
    t: float | None = None               # a video: the best-matching moment (seconds)
    duration: float | None = None        # a video: its length (seconds)
    text: list[dict[str, Any]] | None = None   # a `--words` search: the matching lines, words and boxes

    def as_dict(self) -> dict[str, Any]:
        """The result as a plain dict: score rounded, ``taken_at`` as ISO text, ``face`` only when
        set, ``t`` and ``duration`` only for videos."""
        d = dict(self.__dict__)
        d["score"] = round(float(self.score), 6)
        d["taken_at"] = self.taken_at.isoformat() if self.taken_at else None
        if d["face"] is None:
            del d["face"]
        if self.media != "video":
            del d["t"], d["duration"]
        if d["text"] is None:
            del d["text"]
        return d


_WHEN_RE = re.compile(r"^(\d{4})(?:-(\d{1,2})(?:-(\d{1,2}))?)?$")


def parse_when(text: str, *, option: str = "date") -> datetime:
    """``YYYY``, ``YYYY-MM``, ``YYYY-MM-DD`` or an ISO timestamp -> the start of that period."""
    text = text.strip()
    m = _WHEN_RE.match(text)
    try:
        if m:
            return datetime(int(m.group(1)), int(m.group(2) or 1), int(m.group(3) or 1))
        return datetime.fromisoformat(text)
    except ValueError:
        pass
    raise UsageError(f"invalid {option} {text!r}: use YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDTHH:MM")


def make_filters(after: str | datetime | None = None, before: str | datetime | None = None,
                 camera: str | None = None, folder: str | os.PathLike[str] | None = None,
                 person: str | None = None, tags: list[str] | tuple[str, ...] | None = None,
                 event: str | None = None, media: str | None = None, meta: str | None = None,
                 min_rating: int | None = None, album: str | None = None) -> Filters:
    """Validated Filters from user input (strings are parsed; the folder must exist)."""
    if media is not None and media not in ("photo", "video"):
        raise UsageError(f"--media must be photo or video, not {media!r}")
    a = parse_when(after, option="--after") if isinstance(after, str) else after
    b = parse_when(before, option="--before") if isinstance(before, str) else before
    if a and b and a >= b:
        raise UsageError("--after must be earlier than --before")
    f = None
    if folder is not None:
        p = Path(folder).expanduser()
        if not p.is_dir():
            raise InputError(f"--in: no such folder: {folder}")
        f = os.path.normpath(os.path.abspath(p))
    if person is not None and not person.strip():
        raise UsageError("--person needs a name")
    clean_tags = tuple(" ".join(t.split()) for t in tags or ())
    if any(not t for t in clean_tags):
        raise UsageError("--tag needs a tag name")
    if event is not None and not event.strip():
        raise UsageError("--event needs an event id, key or name (see `photosearch events`)")
    if meta is not None and not meta.strip():
        raise UsageError("--meta needs some text")
    if min_rating is not None and not 0 <= min_rating <= 5:
        raise UsageError(f"--rating must be 0 to 5 stars, not {min_rating}")
    return Filters(after=a, before=b, camera=camera or None, folder=f, person=person.strip() if person else None,
                   tags=clean_tags, event=event.strip() if event else None, media=media,
                   meta=" ".join(meta.split()) if meta else None, min_rating=min_rating,
                   album=" ".join(album.split()) if album and album.strip() else None)


class Searcher:
    """Answers queries against one library with its active (or a named) model."""

    def __init__(self, paths: LibraryPaths, *, model_name: str | None = None, exact_max: int | None = None,
                 model: Any = None) -> None:
        self.paths = paths
        self.store = ModelStore(paths)
        self._model = model
        self._int8: Any = None
        self.model_name = model_name or (model.name if model is not None else None)
        self.exact_max = exact_max if exact_max is not None else env_int(ENV_EXACT_MAX, DEFAULT_EXACT_MAX)

    def _load_model(self) -> Any:
        if self._model is None:
            # One thread: a query is one small batch, and a thread pool's start-up and barriers
            # cost more than they save (35 vs 70 ms per text query on busy cores, measured).
            self._model = self.store.load(self.model_name, low_memory_text=True, threads=1)
            self.model_name = self._model.name
        return self._model

    def _resolve_name(self) -> str:
        if self.model_name is None:
            if self._model is not None:
                self.model_name = self._model.name
            else:
                name = self.store.active_name()
                if name is None:
                    self._load_model()  # raises the right "no model" message
                self.model_name = name
        return self.model_name  # type: ignore[return-value]

    # -- queries --------------------------------------------------------------------------

    def search_text(self, text: str, filters: Filters | None = None, limit: int = 20,
                    min_score: float | None = None) -> list[SearchResult]:
        """Photos best matching ``text``, best first. In a library with text read in its photos,
        photos whose text holds the query's words come first, with the lines that matched."""
        results = self._search_clip(text, filters, limit, min_score)
        if not (self.paths.vectors / TEXT_MARKER).exists():
            return results
        from photosearch.query.words import search_words

        with self._open() as cat:
            found = search_words(cat, text, filters, limit)
            if not found:
                return results
            rows = cat.photos_by_ids([pid for pid, _, _ in found])
        clip = {r.id: r for r in results}
        written = _results([(clip[pid].score if pid in clip else 0.0, pid) for pid, _, _ in found],
                           lambda i: result_fields(rows[i]) if i in rows else None, limit, None, None)
        lines = {pid: ln for pid, _, ln in found}
        for r in written:
            r.text = lines.get(r.id, [])
            if r.id in clip:
                r.t = clip[r.id].t
        merged = written + [r for r in results if r.id not in lines]
        for rank, r in enumerate(merged[:limit], 1):
            r.rank = rank
        return merged[:limit]

    def _search_clip(self, text: str, filters: Filters | None, limit: int,
                     min_score: float | None) -> list[SearchResult]:
        if not text or not text.strip():
            raise UsageError("the query is empty")
        name = self._resolve_name()
        if limit <= 0:
            raise UsageError("--limit must be at least 1")
        with ThreadPoolExecutor(1) as pool:
            # Loading and running the text tower overlaps with loading the index.
            fut = pool.submit(lambda: self._load_model().encode_text([text])[0])
            if filters is None or not filters.active():
                published = load_published(self.paths.root, self.paths.vectors, name)
                has_frames = published is not None and _has_frames(self.paths.root, name)
                frames = load_published(self.paths.root, self.paths.vectors, f"frames:{name}") if has_frames else None
                if published is not None and (frames is not None or not has_frames):
                    # Fast path: memory-mapped indexes and rows files (the frames': each one's
                    # video and moment), no catalog at all.
                    index, rows = published
                    query = fut.result()
                    scores, found = index.search(query[None, :], limit)
                    pairs = list(zip(scores[0].tolist(), found[0].tolist()))
                    moments: dict[int, float] = {}
                    if frames is not None:
                        f_index, f_rows = frames
                        k = min(f_index.ntotal, max(4 * limit, limit + 50))
                        s, f = f_index.search(query[None, :], k)
                        hits = [(sc, r["video"], r["t"]) for sc, fid in zip(s[0].tolist(), f[0].tolist())
                                if fid >= 0 and (r := f_rows.get(fid)) is not None]
                        pairs, moments = _merge_moments(pairs, hits)
                    return _results(pairs, rows.get, limit, min_score, None, moments)
            with self._open() as cat:
                prepared = self._prepare(cat, name, filters)
                query = fut.result()
                return self._run(cat, name, prepared, query, limit, min_score, exclude=None)

    def search_image(self, photo: str | os.PathLike[str], filters: Filters | None = None, limit: int = 20,
                     min_score: float | None = None) -> list[SearchResult]:
        """Photos most like ``photo`` (in the library or not), best first; the photo itself is left out."""
        path = Path(photo).expanduser()
        if not path.exists():
            raise InputError(f"no such file: {photo}")
        if path.is_dir():
            raise InputError(f"{photo} is a folder, not a photo")
        name = self._resolve_name()
        abspath = os.path.normpath(os.path.abspath(path))
        from photosearch.media.video import is_video

        if is_video(abspath):
            return self._like_video(abspath, name, filters, limit, min_score)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read {photo}: {exc.strerror}") from None
        from photosearch.media.scan import content_hash

        digest = content_hash(data)
        with self._open() as cat:
            prepared = self._prepare(cat, name, filters)
            row = cat.photo_by_path(abspath)
            if row is None or row["content_hash"] != digest:
                row = cat.photo_by_hash(digest)
            query = None
            exclude = None
            if row is not None:
                _, vecs = cat.vectors(name, [row["id"]])
                if len(vecs):
                    query, exclude = vecs[0], row["id"]
            if query is None:
                query = self._encode_file(data, path, self._image_model(cat, name))
            results = self._run(cat, name, prepared, query, limit, min_score, exclude=exclude)
        return results

    def _like_video(self, path: str, name: str, filters: Filters | None, limit: int,
                    min_score: float | None) -> list[SearchResult]:
        """Photos and moments like a video: the mean of its frames' vectors (the library's, or
        sampled and encoded now for a video outside it); the video itself is left out."""
        with self._open() as cat:
            prepared = self._prepare(cat, name, filters)
            row = cat.photo_by_path(path)
            vecs = cat.frames_of(row["id"], name)[2] if row is not None else np.zeros((0, 0), np.float32)
            if not len(vecs):
                from photosearch.media.video import sample

                model = self._image_model(cat, name)
                try:
                    frames = sample(path, min_side=model.image_size).frames
                except DecodeError as exc:
                    raise InputError(f"cannot use {path} as an example: {exc.reason}") from None
                vecs = model.encode_pixels(np.stack([model.preprocess(img) for _, img in frames]))
            query = np.asarray(vecs, np.float32).mean(axis=0)
            query /= max(float(np.linalg.norm(query)), 1e-12)
            return self._run(cat, name, prepared, query, limit, min_score,
                             exclude=row["id"] if row is not None else None)

    def _image_model(self, cat: Catalog, name: str) -> Any:
        """The model whose image tower runs in the precision of the library's vectors (an example
        photo from outside the library is embedded as the library's photos were)."""
        model = self._load_model()
        if cat.vectors_precision(name) != "int8" or getattr(model, "precision", "int8") == "int8":
            return model
        if self._int8 is None:
            from photosearch.errors import ModelError

            try:
                self._int8 = self.store.load(self.model_name, threads=1, precision="int8")
            except ModelError:  # the tower was removed since: fp32's vectors are within 0.99 of it
                self._int8 = model
        return self._int8

    def _encode_file(self, data: bytes, path: Path, model: Any) -> np.ndarray:
        from photosearch.media.decode import decode

        try:
            decoded = decode(data, ext=path.suffix.lower(), min_side=model.image_size)
        except DecodeError as exc:
            raise InputError(f"cannot use {path} as an example photo: {exc.reason}") from None
        return model.encode_pixels(model.preprocess(decoded.image)[None])[0]

    def search_tags(self, filters: Filters, limit: int = 20) -> list[SearchResult]:
        """Photos carrying every tag in ``filters.tags`` (and passing the other filters), best score first."""
        if not filters.active():
            raise UsageError("give a query, or a filter (--tag, --person, --meta, --rating, --event...) to list photos")
        if not filters.tags:  # e.g. an event: its photos in time order
            with self._open() as cat:
                rows = cat.photos_by_ids(cat.filtered_ids(filters).tolist())
            ordered = sorted(rows.values(), key=lambda r: (r["taken_at"] is None, r["taken_at"] or 0, r["path"]))
            return _results([(1.0, r["id"]) for r in ordered], lambda i: result_fields(rows[i]), limit, None, None)
        with self._open() as cat:
            allowed = set(cat.filtered_ids(filters).tolist())
            tags = [cat.canonical_tag(t) for t in filters.tags]
            ranked = [(pid, sc) for pid, sc in cat.tagged_ranked(tags, max(limit * 4, limit + 100)) if pid in allowed]
            if len(ranked) < limit:
                ranked = [(pid, sc) for pid, sc in cat.tagged_ranked(tags, len(allowed) + 1) if pid in allowed]
            ranked = ranked[:limit]
            rows = cat.photos_by_ids([pid for pid, _ in ranked])
        return _results([(sc, pid) for pid, sc in ranked], lambda i: result_fields(rows[i]) if i in rows else None,
                        limit, None, None)

    def search_words(self, text: str, filters: Filters | None = None, limit: int = 20) -> list[SearchResult]:
        """Photos whose text (read by OCR) holds ``text`` (see query/words.py), best first, each
        with the lines that matched."""
        from photosearch.query.words import search_words

        with self._open() as cat:
            found = search_words(cat, text, filters, limit)
            rows = cat.photos_by_ids([pid for pid, _, _ in found])
        lines = {pid: ln for pid, _, ln in found}
        out = _results([(sc, pid) for pid, sc, _ in found], lambda i: result_fields(rows[i]) if i in rows else None,
                       limit, None, None)
        for r in out:
            r.text = lines.get(r.id, [])
        return out

    def search_face(self, photo: str | os.PathLike[str], face: int | None = None, filters: Filters | None = None,
                    limit: int = 20, min_score: float | None = None) -> list[SearchResult]:
        """Photos showing the person whose face is in ``photo`` (the largest face, or face number
        ``face`` counting from the left), best first; the example photo itself is left out."""
        from photosearch.models.faces import FaceModelStore

        if limit <= 0:
            raise UsageError("--limit must be at least 1")
        if face is not None and face < 1:
            raise UsageError("--face counts from 1 (the leftmost face)")
        path = Path(photo).expanduser()
        if not path.exists():
            raise InputError(f"no such file: {photo}")
        if path.is_dir():
            raise InputError(f"{photo} is a folder, not a photo")
        from photosearch.media.video import is_video

        if is_video(str(path)):  # a face is chosen in one picture: a video has many
            raise InputError(f"{photo} is a video: give a photo of the person (a frame saved from it will do)")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read {photo}: {exc.strerror}") from None
        store = FaceModelStore(self.paths)
        model_name = store.active_name()
        if model_name is None or not self.paths.catalog.exists():
            raise NotIndexedError("no faces are indexed yet: run `photosearch index PATH` (it finds faces too)")
        from photosearch.media.scan import content_hash

        digest = content_hash(data)
        abspath = os.path.normpath(os.path.abspath(path))
        with self._open() as cat:
            src = cat.face_vectors(model_name)
            if src.count() == 0:
                raise NotIndexedError(f"no face of model {model_name!r} is indexed yet: run `photosearch index`")
            row = cat.photo_by_path(abspath)
            if row is None or row["content_hash"] != digest:
                row = cat.photo_by_hash(digest)
            exclude = row["id"] if row is not None else None
            query = None
            if row is not None and row["id"] in cat.face_scanned_ids(model_name):
                stored = [f for f in cat.faces_of_photos([row["id"]]).get(row["id"], []) if f["model"] == model_name]
                chosen = _choose_face([(f["x"], f["y"], f["w"], f["h"]) for f in stored], face, photo)
                query = src.vectors(np.array([stored[chosen]["id"]]))[1][0]
            if query is None:
                query = self._embed_face(store, model_name, data, path, face)
            allowed = None
            if filters is not None and filters.active():
                allowed = cat.face_ids_of_photos(model_name, cat.filtered_ids(filters))
            index, _ = load_for_search(cat, self.paths.vectors, src, exact_max=self.exact_max, dim=len(query))
            return self._face_results(cat, index, query, allowed, exclude, limit, min_score)

    def _embed_face(self, store: Any, model_name: str, data: bytes, path: Path, face: int | None) -> np.ndarray:
        from photosearch.media.decode import decode

        engine = store.load(model_name, threads=1, auto_install=False)
        try:
            decoded = decode(data, ext=path.suffix.lower(), min_side=480)
        except DecodeError as exc:
            raise InputError(f"cannot use {path} as an example photo: {exc.reason}") from None
        found = [f for f in engine.analyze(decoded.image) if f.vector is not None]
        chosen = _choose_face([f.box for f in found], face, str(path))
        return found[chosen].vector

    def _face_results(self, cat: Catalog, index: Any, query: np.ndarray, allowed: np.ndarray | None,
                      exclude: int | None, limit: int, min_score: float | None) -> list[SearchResult]:
        if allowed is not None and len(allowed) == 0:
            return []
        k = limit * 4 + 10
        while True:
            s, f = index.search(query[None, :], k, allowed=allowed)
            scores, faces = s[0], f[0]
            photos = cat.face_photo_ids(faces)
            best: dict[int, tuple[float, int]] = {}
            for score, fid, pid in zip(scores.tolist(), faces.tolist(), photos.tolist()):
                if fid < 0 or pid < 0 or pid == exclude or pid in best:
                    continue
                if min_score is not None and score < min_score:
                    continue
                best[pid] = (score, fid)
            pool = index.ntotal if allowed is None else len(allowed)
            if len(best) >= limit or k >= pool:
                break
            k = min(pool, k * 4)
        ranked = sorted(best.items(), key=lambda kv: -kv[1][0])[:limit]
        rows = cat.photos_by_ids([pid for pid, _ in ranked])
        face_rows = cat.faces_by_ids([fid for _, (_, fid) in ranked])
        moments = {pid: face_rows[fid]["t"] for pid, (_, fid) in ranked
                   if fid in face_rows and face_rows[fid].get("t") is not None}
        out = _results([(sc, pid) for pid, (sc, _) in ranked], lambda i: result_fields(rows[i]) if i in rows else None,
                       limit, None, None, moments)
        for r in out:
            fr = face_rows[best[r.id][1]]
            r.face = _face_info(fr, r.width, r.height)
        return out

    # -- internals ------------------------------------------------------------------------

    def _open(self) -> Any:
        if not self.paths.catalog.exists():
            raise NotIndexedError(f"the library {self.paths.root} is empty: run `photosearch index PATH` first")
        return Catalog.open(self.paths.catalog, read_only=True)

    def _prepare(self, cat: Catalog, name: str, filters: Filters | None) -> dict[str, Any]:
        count = cat.count_vectors(name)
        if count == 0:
            if cat.count_photos():
                raise NotIndexedError(
                    f"no photo has a vector for model {name!r} yet: run `photosearch index` to embed them"
                )
            raise NotIndexedError(f"the library {self.paths.root} is empty: run `photosearch index PATH` first")
        allowed = cat.filtered_ids(filters) if filters is not None and filters.active() else None
        index = None
        if allowed is None or len(allowed) > self.exact_max:
            spec_dim = None
            if self._model is not None:
                spec_dim = self._model.embed_dim
            else:
                from photosearch.models.clip import read_spec

                spec_dim = int(read_spec(self.store.root / name)["embed_dim"])
            index, _ = load_for_search(cat, self.paths.vectors, name, exact_max=self.exact_max, dim=spec_dim)
        return {"allowed": allowed, "index": index}

    def _run(self, cat: Catalog, name: str, prepared: dict[str, Any], query: np.ndarray, limit: int,
             min_score: float | None, exclude: int | None) -> list[SearchResult]:
        if limit <= 0:
            raise UsageError("--limit must be at least 1")
        allowed, index = prepared["allowed"], prepared["index"]
        want = limit + (1 if exclude is not None else 0)
        if index is None:
            ids, vecs = cat.vectors(name, allowed)
            scores, found = exact_search(query, ids, vecs, want) if len(ids) else (np.zeros(0), np.zeros(0, np.int64))
        else:
            s, f = index.search(query[None, :], want, allowed=allowed)
            scores, found = s[0], f[0]
        pairs = list(zip(scores.tolist(), found.tolist()))
        pairs, moments = self._with_frames(cat, name, prepared, query, pairs, want)
        rows = cat.photos_by_ids([i for _, i in pairs if i >= 0][: want])
        return _results(pairs, lambda i: result_fields(rows[i]) if i in rows else None, limit, min_score, exclude,
                        moments)

    def _with_frames(self, cat: Catalog, name: str, prepared: dict[str, Any], query: np.ndarray,
                     pairs: list[tuple[float, int]], want: int) -> tuple[list[tuple[float, int]], dict[int, float]]:
        """Merge the best video moments into ranked (score, photo id) pairs: a video appears once,
        with the score of its best frame, and that frame's time in the returned moments."""
        src = cat.frame_vectors(name)
        state = cat.index_state(src.key)
        if (state["count"] == 0 and state["version"] == cat.data_version()) if state else src.count() == 0:
            return pairs, {}  # no video frames (the saved index says so without a count over them)
        allowed = prepared["allowed"]
        frame_allowed = cat.frame_ids_of(allowed) if allowed is not None else None
        if frame_allowed is not None and len(frame_allowed) == 0:
            return pairs, {}
        index, _ = load_for_search(cat, self.paths.vectors, src, exact_max=self.exact_max, dim=len(query))
        k = min(index.ntotal, max(4 * want, want + 50))
        s, f = index.search(query[None, :], k, allowed=frame_allowed)
        frames = cat.frames_by_ids([int(i) for i in f[0] if i >= 0])
        return _merge_moments(pairs, [(sc, *frames[fid]) for sc, fid in zip(s[0].tolist(), f[0].tolist())
                                      if fid in frames])


def _merge_moments(pairs: list[tuple[float, int]], hits: list[tuple[float, int, float]]
                   ) -> tuple[list[tuple[float, int]], dict[int, float]]:
    """Ranked (score, photo id) pairs with frame hits (score, video id, seconds) merged in: a
    video once, at its best score, and the moment of that frame."""
    best: dict[int, tuple[float, float | None]] = {pid: (score, None) for score, pid in pairs if pid >= 0}
    for score, vid, t in hits:
        if vid not in best or score > best[vid][0] or (score == best[vid][0] and best[vid][1] is None):
            best[vid] = (score, t)
    ranked = sorted(best.items(), key=lambda kv: (-kv[1][0], kv[0]))
    return [(sc, pid) for pid, (sc, _) in ranked], {pid: t for pid, (_, t) in ranked if t is not None}


def _has_frames(library_root: Path, model: str) -> bool:
    """Whether the library's saved frames index of ``model`` has any frame (then results merge
    video moments)."""
    from photosearch.store.catalog import read_state

    entry = ((read_state(library_root) or {}).get("indexes") or {}).get(f"frames:{model}")
    return bool(entry and entry.get("count"))


def _choose_face(boxes: list[tuple[float, float, float, float]], face: int | None, photo: Any) -> int:
    """Index of the chosen face: number ``face`` counting from the left, or the largest."""
    if not boxes:
        raise InputError(f"no face found in {photo}")
    if face is None:
        return max(range(len(boxes)), key=lambda i: boxes[i][2] * boxes[i][3])
    order = sorted(range(len(boxes)), key=lambda i: (boxes[i][0], boxes[i][1]))
    if face > len(order):
        raise UsageError(f"--face {face}: {photo} has {len(order)} face{'s' if len(order) != 1 else ''} "
                         "(numbered from the left)")
    return order[face - 1]


def _face_info(face: dict[str, Any], width: int | None, height: int | None) -> dict[str, Any]:
    box = {k: round(float(face[k]), 5) for k in ("x", "y", "w", "h")}
    info: dict[str, Any] = {"id": face["id"], "box": box, "person": face["person"]}
    if width and height:
        info["pixels"] = [round(face["x"] * width), round(face["y"] * height),
                          round(face["w"] * width), round(face["h"] * height)]
    return info


#: A file in the vectors folder saying the library has text read in its photos (written by
#: indexing's finish), so a text search without it never opens the catalog for words.
TEXT_MARKER = "HAS_TEXT"


def _results(pairs: Any, lookup: Any, limit: int, min_score: float | None, exclude: int | None,
             moments: dict[int, float] | None = None) -> list[SearchResult]:
    """Ranked results from (score, id) pairs, best first; ``lookup`` gives a photo's result fields,
    ``moments`` a video's best moment (else its first frame's)."""
    out: list[SearchResult] = []
    for score, pid in pairs:
        if pid < 0 or pid == exclude or (min_score is not None and score < min_score):
            continue
        fields = lookup(pid)
        if fields is None:
            continue
        taken = fields["taken_at"]
        media = fields.get("media") or "photo"
        out.append(SearchResult(
            rank=len(out) + 1, id=pid, path=fields["path"], score=float(score),
            taken_at=datetime.fromisoformat(taken) if isinstance(taken, str) else taken, camera=fields["camera"],
            width=fields["width"], height=fields["height"], format=fields["format"], keywords=fields["keywords"],
            media=media, duration=fields.get("duration"),
            t=(moments or {}).get(pid, 0.0) if media == "video" else None,
        ))
        if len(out) >= limit:
            break
    return out
