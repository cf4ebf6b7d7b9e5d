"""The local web UI and its JSON API (FastAPI), over the same Library calls as the CLI.

- Binds 127.0.0.1 by default. Every request needs the library's token (kept in the library,
  so bookmarks keep working; ``serve --new-token`` replaces it): given once in the URL
  (``?token=...``) or on the small login page a browser gets without it, then kept in an
  HttpOnly, SameSite=Strict cookie.
- The cookie alone changes nothing: a page on another port of 127.0.0.1 is "same-site" and
  its requests carry the cookie. Every state-changing request must also carry the per-start
  CSRF secret in the ``X-Photosearch-CSRF`` header (the UI's page has it; another origin can
  neither read it nor send a custom header without a CORS preflight this server never
  grants), and an ``Origin``, when sent, must be this server's.
- Requests whose ``Host`` is not the bound address or localhost get 421 (no DNS rebinding).
- Every asset is served from this package: no CDN, no fonts or scripts from elsewhere.
  (FastAPI's /docs pages load Swagger from a CDN, so they are off; the OpenAPI schema is at
  /openapi.json.)
- Photos are addressed by catalog id, never by a path from the request, and request bodies
  are capped, so file and thumbnail URLs cannot reach outside the library's photos.
- Changes go through the Library (journals, safe writers), exactly as from the CLI.
"""

from __future__ import annotations

import hmac
import os
import secrets
from importlib import resources
from pathlib import Path
from typing import Any

from photosearch.api import Library, make_filters, os_path, shown_doc
from photosearch.errors import PhotosearchError

MAX_BODY = 64 * 1024
COOKIE = "photosearch_token"
CSRF_HEADER = "X-Photosearch-CSRF"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


class _BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes gets 413, chunked ones included
    (Content-Length alone does not bound a chunked body). The body is read here, at most
    ``limit`` + 1 bytes, and handed on whole."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, receive, send)  # disconnected: let the app see it
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.limit:
                import json

                data = json.dumps({"error": "request too large"}).encode()
                await send({"type": "http.response.start", "status": 413,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"content-length", str(len(data)).encode())]})
                await send({"type": "http.response.body", "body": data})
                return
        sent = False

        async def replay() -> Any:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _field(body: dict[str, Any], key: str, kind: type, default: Any = ...) -> Any:
    """``body[key]`` as ``kind``; a missing or ill-typed field is a 400 with a message."""
    from fastapi import HTTPException

    if key not in body:
        if default is not ...:
            return default
        raise HTTPException(400, f"the request body needs {key!r}")
    value = body[key]
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if kind is list:
        ok = ok and all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in value)
    if not ok:
        raise HTTPException(400, f"{key!r} must be {kind.__name__ if kind is not list else 'a list'}")
    return value


def _host_name(host_header: str) -> str:
    """The host of a Host header, without the port ('[::1]:8080' -> '::1')."""
    if host_header.startswith("["):
        return host_header[1:].split("]", 1)[0]
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


def create_app(library: Library, token: str | None = None, *, host: str = "127.0.0.1") -> Any:
    """The ASGI app; ``app.state.token`` is the token the URL must carry once, ``app.state.csrf``
    the secret every state-changing request carries in ``X-Photosearch-CSRF`` (the page has it).
    ``host`` is the address served (with localhost, the only ``Host`` accepted)."""
    from fastapi import Body, FastAPI, HTTPException, Query, Request
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse

    class ShownJSON(JSONResponse):
        """JSON whose file names that are not UTF-8 are shown escaped, as the CLI shows them."""

        def render(self, content: Any) -> bytes:
            body = super().render(content)
            return super().render(shown_doc(content)) if b"\\u0000" in body else body

    token = token or secrets.token_urlsafe(24)
    csrf = secrets.token_urlsafe(24)
    hosts = set(LOCAL_HOSTS) | ({host} if host not in ("0.0.0.0", "::") else set())
    app = FastAPI(title="photosearch", version="1", docs_url=None, redoc_url=None, default_response_class=ShownJSON,
                  description="The JSON API behind photosearch's web UI; shapes match the CLI's --json.")
    app.state.token = token
    app.state.csrf = csrf
    static = Path(str(resources.files("photosearch.web") / "static"))

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Any:
        if host not in ("0.0.0.0", "::") and _host_name(request.headers.get("host", "")) not in hosts:
            return JSONResponse({"error": "this server answers only to its own address (Host refused)"},
                                status_code=421)
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            return JSONResponse({"error": "request too large"}, status_code=413)
        given = request.query_params.get("token")
        cookie = request.cookies.get(COOKIE)
        by_url = given is not None and hmac.compare_digest(given, token)
        if not by_url and (cookie is None or not hmac.compare_digest(cookie, token)):
            if request.method == "GET" and not request.url.path.startswith(("/api/", "/openapi", "/static/")):
                return HTMLResponse(_LOGIN_PAGE.replace("{wrong}", "That token is not this library's. " if given
                                                        else ""), status_code=401)
            return JSONResponse({"error": "missing or wrong token: open the URL photosearch serve printed"},
                                status_code=401)
        if request.method not in SAFE_METHODS:
            origin = request.headers.get("origin")
            if origin is not None and origin.split("://", 1)[-1].rstrip("/") != request.headers.get("host", ""):
                return JSONResponse({"error": "cross-origin request refused"}, status_code=403)
            sent = request.headers.get(CSRF_HEADER, "")
            if not hmac.compare_digest(sent, csrf):
                return JSONResponse({"error": f"missing or wrong {CSRF_HEADER} header: changes come from "
                                              "photosearch's own page"}, status_code=403)
        if by_url:
            if request.method == "GET" and request.url.path == "/":
                # Drop the token from the address bar (and history) once the cookie is set.
                response = RedirectResponse("/", status_code=303)
            else:
                response = await call_next(request)
            # Kept across browser restarts: the token lives as long as the library's (--new-token).
            response.set_cookie(COOKIE, token, httponly=True, samesite="strict", max_age=400 * 86400)
            return response
        return await call_next(request)

    from starlette.exceptions import HTTPException as StarletteHTTPException

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> Any:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(PhotosearchError)
    async def user_error(_request: Request, exc: PhotosearchError) -> Any:
        status = {2: 400, 3: 404, 4: 503, 5: 503, 6: 409, 7: 500, 8: 500}.get(exc.exit_code, 400)
        return JSONResponse({"error": exc.message}, status_code=status)

    # One searcher for the server's life: its text model loads once, not per request.
    searcher = library.searcher()
    # photo id -> (path, content hash), so thumbnails of a page just searched need no catalog.
    known: dict[int, tuple[str, str]] = {}

    def remember(rows: dict[int, dict[str, Any]]) -> None:
        if len(known) > 200_000:
            known.clear()
        for pid, r in rows.items():
            known[pid] = (r["path"], r["content_hash"])

    def rows_of(body: dict[str, Any]) -> dict[int, dict[str, Any]]:
        """The catalog rows of a request's ``photo_ids`` (400 unless a list of ids, 404 for an unknown one)."""
        ids = _field(body, "photo_ids", list)
        if not ids or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids) or len(ids) > 10_000:
            raise HTTPException(400, "'photo_ids' must be a list of 1 to 10,000 photo ids")
        rows = library.photos_by_ids(sorted({int(i) for i in ids}))
        if len(rows) != len(set(ids)):
            raise HTTPException(404, "no such photo")
        return rows

    def paths_of(body: dict[str, Any]) -> list[str]:
        return [os_path(r["path"]) for r in rows_of(body).values()]

    def photo_row(photo_id: int) -> dict[str, Any]:
        row = library.photos_by_ids([photo_id]).get(photo_id)
        if row is None:
            raise HTTPException(404, "no such photo")
        remember({photo_id: row})
        return row

    # -- pages and assets ---------------------------------------------------------------------

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> Any:
        page = (static / "index.html").read_text(encoding="utf-8")
        return HTMLResponse(page.replace("__CSRF__", csrf), headers={"Cache-Control": "no-store"})

    @app.get("/static/{name}", include_in_schema=False)
    def asset(name: str) -> Any:
        allowed = {p.name: p for p in static.iterdir() if p.is_file()}
        if name not in allowed:
            raise HTTPException(404, "not found")
        return FileResponse(allowed[name])

    # -- search ---------------------------------------------------------------------------------

    def filters(after: str | None, before: str | None, camera: str | None, folder: str | None, person: str | None,
                tag: list[str] | None, event: str | None) -> Any:
        return make_filters(after or None, before or None, camera or None, folder or None, person or None,
                            [t for t in tag or [] if t], event or None)

    @app.get("/api/search", summary="Text search (or a filter-only listing); same shape as `photosearch --json`")
    def search(q: str = "", limit: int = Query(40, ge=1, le=500), offset: int = Query(0, ge=0, le=100_000),
               after: str | None = None, before: str | None = None, camera: str | None = None,
               folder: str | None = None, person: str | None = None, tag: list[str] | None = Query(None),
               event: str | None = None, words: str = "") -> Any:
        f = filters(after, before, camera, folder, person, tag, event)
        if words.strip():
            results = searcher.search_words(words, f, limit + offset)
        elif q.strip():
            results = searcher.search_text(q, f, limit + offset)
        else:
            results = searcher.search_tags(f, limit + offset) if f.active() else []
        page = results[offset:]
        missing = [r.id for r in page if r.id not in known]
        if missing:
            remember(library.photos_by_ids(missing))
        return {"query": q, "results": [r.as_dict() for r in page]}

    @app.get("/api/timeline", summary="Photos newest first, a page at a time; same shape as `photosearch timeline --json`")
    def timeline(cursor: str = "", limit: int = Query(200, ge=1, le=1000)) -> Any:
        doc = library.timeline(cursor or None, limit=limit)
        missing = [p["id"] for p in doc["photos"] if p["id"] not in known]
        if missing:  # their thumbnails come next: no catalog query per thumbnail
            remember(library.photos_by_ids(missing))
        return doc

    @app.get("/api/timeline/months", summary="The months the timeline spans, with counts and cursors")
    def timeline_months() -> Any:
        return {"months": library.timeline_months()}

    @app.get("/api/photos/{photo_id}/like", summary="Photos that look like this one")
    def like(photo_id: int, limit: int = Query(40, ge=1, le=500)) -> Any:
        row = photo_row(photo_id)
        return {"query": row["path"], "results": [r.as_dict() for r in library.search_image(row["path"], limit=limit)]}

    @app.get("/api/photos/{photo_id}/person", summary="Photos of the person in face N of this photo")
    def this_person(photo_id: int, face: int | None = Query(None, ge=1, le=1000),
                    limit: int = Query(40, ge=1, le=500)) -> Any:
        row = photo_row(photo_id)
        results = library.search_face(row["path"], face=face, limit=limit)
        return {"query": row["path"], "results": [r.as_dict() for r in results]}

    # -- photos ---------------------------------------------------------------------------------

    @app.get("/api/photos/{photo_id}", summary="A photo's metadata, faces, tags and text read in it")
    def photo(photo_id: int) -> Any:
        photo_row(photo_id)  # 404 if unknown
        details = library.photo_details(photo_id)
        if details is None:
            raise HTTPException(404, "no such photo")
        row = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in details["photo"].items()}
        return {"photo": row, "faces": details["faces"], "tags": details["tags"], "people": details["people"],
                "text": details["text"], "place": details.get("place"), "newer": details["newer"],
                "older": details["older"]}

    @app.get("/api/photos/{photo_id}/thumb", summary="A cached WebP thumbnail (EXIF-rotated)")
    def thumb(photo_id: int, size: int = Query(320, ge=32, le=1024)) -> Any:
        from photosearch.errors import DecodeError

        if photo_id in known:
            path, digest = known[photo_id]
        else:
            row = photo_row(photo_id)
            path, digest = row["path"], row["content_hash"]
        try:
            path = library.photo_thumb(path, digest, size)
        except (OSError, DecodeError):
            try:  # the remembered path may be stale (the photo moved): ask the catalog once
                row = photo_row(photo_id)
                path = library.photo_thumb(row["path"], row["content_hash"], size)
            except (OSError, DecodeError):
                raise HTTPException(404, "cannot make a thumbnail of this photo") from None
        return FileResponse(path, media_type="image/webp", headers={"Cache-Control": "private, max-age=86400"})

    @app.get("/api/photos/{photo_id}/file", summary="The original file")
    def original(photo_id: int) -> Any:
        row = photo_row(photo_id)
        path = os_path(row["path"])
        if not os.path.isfile(path):
            raise HTTPException(404, "the file is gone (run photosearch index)")
        return FileResponse(path)

    @app.get("/api/faces/{face_id}/thumb", summary="A face crop")
    def face_thumb(face_id: int) -> Any:
        from photosearch.errors import DecodeError

        face, row = library.face_and_photo(face_id)
        if face is None or row is None:
            raise HTTPException(404, "no such face")
        try:
            return FileResponse(library.face_thumb(row["path"], row["content_hash"], face),
                                media_type="image/webp")
        except (OSError, DecodeError):
            raise HTTPException(404, "cannot read this photo") from None

    # -- people ---------------------------------------------------------------------------------

    @app.get("/api/people", summary="Same shape as `photosearch people --json`")
    def people() -> Any:
        return {"people": library.people()}

    @app.get("/api/people/suggestions", summary="Pairs that may be one person: {\"suggestions\": [{a, b, similarity}]}")
    def suggestions(limit: int = Query(20, ge=1, le=200)) -> Any:
        return {"suggestions": library.merge_suggestions(limit=limit)}

    @app.post("/api/people/not-same", summary="Answer a suggestion with no: {\"people\": [a, b]}")
    def not_same(body: dict = Body(...)) -> Any:
        pair = _field(body, "people", list)
        if len(pair) != 2 or not all(isinstance(p, int) and not isinstance(p, bool) for p in pair):
            raise HTTPException(400, "'people' must be two person ids")
        return {"ok": True} | library.dismiss_suggestion(pair[0], pair[1])

    @app.get("/api/people/{person}", summary="Same shape as `photosearch people show --json`")
    def person(person: str, limit: int = Query(200, ge=1, le=5000)) -> Any:
        p, faces = library.person_faces(person, limit)
        return {"person": p, "faces": faces}

    @app.post("/api/people/{person}/name", summary="Name a cluster (merging into a person of that name)")
    def name(person: str, body: dict = Body(...)) -> Any:
        return library.name_person(person, _field(body, "name", str))

    @app.post("/api/people/merge", summary="Merge people: {\"people\": [id, ...]}")
    def merge(body: dict = Body(...)) -> Any:
        return library.merge_people([str(p) for p in _field(body, "people", list)])

    @app.post("/api/faces/{face_id}/name", summary="Name one face (one seen only once too): {\"name\": N}")
    def name_one_face(face_id: int, body: dict = Body(...)) -> Any:
        return library.name_face(face_id, _field(body, "name", str))

    @app.post("/api/faces/{face_id}/reject", summary="Take a face out of its person for good")
    def reject(face_id: int) -> Any:
        return library.reject_face(face_id)

    # -- duplicates -----------------------------------------------------------------------------

    @app.get("/api/dupes", summary="Same shape as `photosearch dupes --json`")
    def dupes(method: str = Query("both", pattern="^(hash|clip|both)$"), exact: bool = False) -> Any:
        groups, used = library.dupes(method=method, exact_only=exact)
        return {"method": used, "groups": [g.as_dict() for g in groups]}

    @app.post("/api/dupes/quarantine", summary="Quarantine one group's non-keepers ({\"keeper\": PATH}) or chosen copies ({\"photo_ids\": [...]}); \"dest\": DIR")
    def quarantine(body: dict = Body(...)) -> Any:
        dest = _field(body, "dest", str, None) or str(library.paths.root / "quarantine")
        chosen = body.get("photo_ids")
        if chosen is not None and (not isinstance(chosen, list) or not all(isinstance(i, int) for i in chosen)):
            raise HTTPException(422, "photo_ids must be a list of photo ids")
        # One group (its keeper) or chosen copies: never every group of the library from one click.
        keeper = _field(body, "keeper", str) if chosen is None else _field(body, "keeper", str, None)
        groups, plan, report = library.dupes_move(dest, apply=True, keeper=keeper,
                                                  method=_field(body, "method", str, "both"), only=chosen)
        return {"plan": plan.as_dict(), "report": report.as_dict() if report else None}

    @app.post("/api/dupes/keep-both", summary="Remember that photos are not duplicates: {\"photos\": [PATH, ...]}")
    def keep_both(body: dict = Body(...)) -> Any:
        return library.dupes_keep_both([str(p) for p in _field(body, "photos", list)])

    @app.post("/api/undo", summary="Undo the last journaled action (files moved or rewritten, a hand edit of "
              "people or duplicates); {\"action\": ID} (an action's \"journal\") only if it is the last")
    def undo(body: dict | None = Body(None)) -> Any:
        return library.undo(action=_field(body or {}, "action", str, None)).as_dict()

    # -- review and sync ------------------------------------------------------------------------

    @app.get("/api/review", summary="Same shape as `photosearch review --json`")
    def review(below: float = Query(0.6, ge=0, le=1), above: float = Query(0.3, ge=0, le=1), tag: str | None = None,
               limit: int = Query(50, ge=1, le=1000)) -> Any:
        return {"below": below, "above": above, "items": library.review_queue(below=below, above=above, tag=tag,
                                                                              limit=limit)}

    def rating_of(body: dict[str, Any]) -> int | None:
        rating = body.get("rating")
        if rating is not None and (isinstance(rating, bool) or not isinstance(rating, int)):
            raise HTTPException(400, "'rating' must be 0 to 5, or null to clear it")
        return rating

    def tag_of(body: dict[str, Any]) -> tuple[str, str | None]:
        state = body.get("state")
        if state not in ("accepted", "rejected", None):
            raise HTTPException(400, "'state' must be \"accepted\", \"rejected\" or null")
        tag = _field(body, "tag", str).strip()
        if not tag:
            raise HTTPException(400, "'tag' must not be empty")
        return tag, state

    def rate(rows: dict[int, dict[str, Any]], rating: int | None) -> dict[str, Any]:
        done = library.rate([os_path(r["path"]) for r in rows.values()], rating)
        return done | {"previous": {str(pid): v for pid, v in done["previous"].items()}}

    def tag(rows: dict[int, dict[str, Any]], name: str, state: str | None) -> dict[str, Any]:
        done = library.tag_photos(name, [os_path(r["path"]) for r in rows.values()], state=state)
        return done | {"previous": {str(pid): v for pid, v in done["previous"].items()}}

    @app.post("/api/photos/{photo_id}/rating", summary="Set a photo's rating: {\"rating\": 0-5 or null}; "
              "returns the previous one (the page's undo sets it back)")
    def set_rating(photo_id: int, body: dict = Body(...)) -> Any:
        rating = rating_of(body)
        done = rate({photo_id: photo_row(photo_id)}, rating)
        if done["failed"]:
            raise HTTPException(409, done["failed"][0]["reason"])
        return {"rating": rating, "previous": done["previous"][str(photo_id)]}

    @app.post("/api/photos/{photo_id}/tags", summary="Set a tag by hand: {\"tag\": T, \"state\": "
              "\"accepted\", \"rejected\" or null (automatic)}; returns the previous state")
    def set_tag(photo_id: int, body: dict = Body(...)) -> Any:
        name, state = tag_of(body)
        done = tag({photo_id: photo_row(photo_id)}, name, state)
        if done["failed"]:
            raise HTTPException(409, done["failed"][0]["reason"])
        return {"tag": done["tag"], "state": done["state"], "previous": done["previous"][str(photo_id)]}

    @app.post("/api/photos/rating", summary="Rate several photos: {\"photo_ids\": [...], \"rating\": 0-5 or null}; "
              "returns each photo's previous rating (the page's undo sets them back)")
    def set_ratings(body: dict = Body(...)) -> Any:
        rating = rating_of(body)
        return rate(rows_of(body), rating)

    @app.post("/api/photos/tags", summary="Set a tag on several photos: {\"photo_ids\": [...], \"tag\", \"state\"}; "
              "returns each photo's previous state")
    def set_tags(body: dict = Body(...)) -> Any:
        name, state = tag_of(body)
        return tag(rows_of(body), name, state)

    # -- albums -------------------------------------------------------------------------------

    @app.get("/api/albums", summary="Same shape as `photosearch album list --json`")
    def albums() -> Any:
        return {"albums": library.albums()}

    @app.get("/api/albums/{name}", summary="An album and its photos (a smart album's search, run now)")
    def album(name: str, limit: int = Query(500, ge=1, le=5000)) -> Any:
        found, results = library.album_show(name, limit=limit)
        missing = [r.id for r in results if r.id not in known]
        if missing:
            remember(library.photos_by_ids(missing))
        return {"album": found, "results": [r.as_dict() for r in results]}

    @app.post("/api/albums", summary="Create an album: {\"name\", \"query\"?, \"filters\"?} (smart with a query or filters)")
    def album_create(body: dict = Body(...)) -> Any:
        filters = body.get("filters") or {}
        if not isinstance(filters, dict):
            raise HTTPException(400, "'filters' must be an object")
        return library.album_create(_field(body, "name", str), query=_field(body, "query", str, None),
                                    filters=filters)

    @app.post("/api/albums/{name}/add", summary="Add photos to a manual album: {\"photo_ids\": [...]}")
    def album_add(name: str, body: dict = Body(...)) -> Any:
        return library.album_add(name, paths_of(body))

    @app.post("/api/albums/{name}/remove", summary="Take photos out of a manual album: {\"photo_ids\": [...]}")
    def album_remove(name: str, body: dict = Body(...)) -> Any:
        return library.album_remove(name, paths_of(body))

    @app.post("/api/albums/{name}/delete", summary="Forget an album (its photos stay): the undo of creating one")
    def album_delete(name: str) -> Any:
        return library.album_delete(name)

    @app.post("/api/photos/quarantine", summary="Move chosen photos to the library's quarantine folder: "
              "{\"photo_ids\": [...]}; journaled (undo with {\"action\": report.action})")
    def quarantine_photos(body: dict = Body(...)) -> Any:
        plan, report = library.quarantine(list(rows_of(body)), apply=True)
        return {"plan": plan.as_dict(), "report": report.as_dict() if report else None}

    @app.post("/api/review/decide", summary="{\"photo_id\": N, \"tag\": T, \"accept\": true|false}")
    def decide(body: dict = Body(...)) -> Any:
        library.decide(_field(body, "photo_id", int), _field(body, "tag", str), _field(body, "accept", bool))
        return {"ok": True}

    @app.get("/api/sync", summary="The pending metadata diff (a dry run of `photosearch sync`)")
    def sync_plan() -> Any:
        return {"applied": False, "files": [i.as_dict() for i in library.sync()]}

    @app.post("/api/sync/apply", summary="Write the pending metadata (safe writer, per-file results); "
                                         "{\"photo_ids\": [...]} writes only those files")
    def sync_apply(body: dict | None = Body(None)) -> Any:
        chosen = (body or {}).get("photo_ids")
        if chosen is not None and (not isinstance(chosen, list) or not all(isinstance(i, int) for i in chosen)):
            raise HTTPException(422, "photo_ids must be a list of photo ids")
        items = library.sync(apply=True, only_ids=chosen)
        return {"applied": True, "files": [i.as_dict() for i in items]}

    # -- memories and films ---------------------------------------------------------------------

    films = _FilmJobs(library)

    @app.get("/api/memories", summary="Same shape as `photosearch memories --json`")
    def memories() -> Any:
        return {"memories": library.memories()}

    @app.post("/api/films", summary="Render a film of a memory: {\"memory\": ID, \"duration\": S, \"size\": \"720p\"}")
    def make_film(body: dict = Body(...)) -> Any:
        duration = body.get("duration", 30.0)
        if isinstance(duration, bool) or not isinstance(duration, (int, float)):
            raise HTTPException(400, "'duration' must be a number of seconds")
        return films.start(_field(body, "memory", str), float(duration), _field(body, "size", str, "720p"))

    @app.get("/api/films/{job}", summary="A film's progress: state, frames done and total, the film when done")
    def film_state(job: str) -> Any:
        return films.state(job)

    @app.get("/api/films/{job}/file", summary="The finished film (MP4; range requests)")
    def film_file(job: str) -> Any:
        state = films.state(job)
        if state["state"] != "done":
            raise HTTPException(409, "the film is not finished yet")
        return FileResponse(state["film"]["path"], media_type="video/mp4")

    app.add_middleware(_BodyLimit, limit=MAX_BODY)
    return app


class _FilmJobs:
    """Films rendering on a thread of their own (one at a time), into ``<library>/films/``."""

    def __init__(self, library: Library) -> None:
        import threading

        self.library = library
        self.jobs: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()

    def start(self, memory: str, duration: float, size: str) -> dict[str, Any]:
        import re
        import threading
        import time

        from fastapi import HTTPException

        with self.lock:
            if any(j["state"] == "rendering" for j in self.jobs.values()):
                raise HTTPException(409, "a film is rendering already: wait for it")
            plan = self.library.plan_film(memory=memory, duration=duration, size=size)  # errors answer at once
            job = f"{re.sub(r'[^A-Za-z0-9-]+', '-', memory)[:60]}-{int(time.time())}"
            state: dict[str, Any] = {"job": job, "state": "rendering", "done": 0, "total": 0, "title": plan.title}
            self.jobs[job] = state
        folder = self.library.paths.root / "films"
        folder.mkdir(parents=True, exist_ok=True)

        def progress(done: int, total: int) -> None:
            state["done"], state["total"] = done, total

        def run() -> None:
            try:
                state["film"] = self.library.render_film(plan, folder / f"{job}.mp4", force=True, progress=progress)
                state["state"] = "done"
            except PhotosearchError as exc:
                state["state"], state["error"] = "failed", exc.message
            except Exception as exc:  # reported on the page, never a dead thread without a word
                state["state"], state["error"] = "failed", f"{type(exc).__name__}: {exc}"

        threading.Thread(target=run, name=f"film-{job}", daemon=True).start()
        return {k: v for k, v in state.items() if k != "film"}

    def state(self, job: str) -> dict[str, Any]:
        from fastapi import HTTPException

        state = self.jobs.get(job)
        if state is None:
            raise HTTPException(404, "no such film")
        return dict(state)


#: What a browser without the token gets: where to find it, and a field to paste it (no script,
#: nothing from elsewhere).
_LOGIN_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>photosearch: sign in</title>
<style>body{font:16px system-ui,sans-serif;background:#111;color:#eee;display:grid;place-items:center;
min-height:100vh;margin:0}main{max-width:26rem;padding:1.5rem}input{width:100%;padding:.6rem;margin:.6rem 0;
font:inherit;background:#222;color:#eee;border:1px solid #555;border-radius:6px}button{padding:.6rem 1.2rem;
font:inherit;border-radius:6px;border:0;background:#4a8cff;color:#fff}code{color:#9cf}
@media (prefers-color-scheme: light){body{background:#f6f6f6;color:#111}input{background:#fff;color:#111}}</style>
</head><body><main><h1>photosearch</h1><p>{wrong}Open the address <code>photosearch serve</code> printed,
or paste its token (after <code>?token=</code>) here. <code>photosearch serve --new-token</code> makes a new
one.</p><form method="get" action="/"><label for="token">Token</label><input id="token" name="token"
autocomplete="current-password" required><button type="submit">Open the library</button></form></main>
</body></html>"""


def serve(library: Library, *, host: str = "127.0.0.1", port: int = 0, on_ready: Any = None,
          new_token: bool = False) -> None:
    """Run the UI until interrupted; ``on_ready(url)`` gets the URL with the token (the
    library's own, or a new one with ``new_token``)."""
    import socket

    import uvicorn

    app = create_app(library, library.web_token(new=new_token), host=host)
    # IPPROTO_TCP explicitly: asyncio turns Nagle's algorithm off only on sockets created so, and
    # with it on every response waited ~40 ms for a delayed ACK (benchmarks/RESULTS.md).
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        from photosearch.errors import UsageError

        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    real_port = sock.getsockname()[1]
    shown = "127.0.0.1" if host in ("127.0.0.1", "0.0.0.0") else host
    if on_ready:
        on_ready(f"http://{shown}:{real_port}/?token={app.state.token}")
    config = uvicorn.Config(app, log_level="warning", access_log=False, limit_concurrency=64)
    uvicorn.Server(config).run(sockets=[sock])


__all__ = ["create_app", "serve"]
