"""The local web UI and its JSON API (FastAPI), over the same Library calls as the CLI.

- Binds 127.0.0.1 by default. Every request needs the per-start token: given once in the
  URL (``?token=...``), then kept in an HttpOnly, SameSite=Strict cookie.
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

from photosearch.api import Library, make_filters
from photosearch.errors import PhotosearchError

MAX_BODY = 64 * 1024
COOKIE = "photosearch_token"


def create_app(library: Library, token: str | None = None) -> Any:
    """The ASGI app; ``app.state.token`` is the token the URL must carry once."""
    from fastapi import Body, FastAPI, HTTPException, Query, Request
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse

    token = token or secrets.token_urlsafe(24)
    app = FastAPI(title="photosearch", version="1", docs_url=None, redoc_url=None,
                  description="The JSON API behind photosearch's web UI; shapes match the CLI's --json.")
    app.state.token = token
    static = Path(str(resources.files("photosearch.web") / "static"))

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Any:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            return JSONResponse({"error": "request too large"}, status_code=413)
        given = request.query_params.get("token")
        cookie = request.cookies.get(COOKIE)
        if given is not None and hmac.compare_digest(given, token):
            if request.method == "GET" and request.url.path == "/":
                # Drop the token from the address bar (and history) once the cookie is set.
                response = RedirectResponse("/", status_code=303)
            else:
                response = await call_next(request)
            response.set_cookie(COOKIE, token, httponly=True, samesite="strict")
            return response
        if cookie is None or not hmac.compare_digest(cookie, token):
            return JSONResponse({"error": "missing or wrong token: open the URL photosearch serve printed"},
                                status_code=401)
        return await call_next(request)

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

    def photo_row(photo_id: int) -> dict[str, Any]:
        row = library.photos_by_ids([photo_id]).get(photo_id)
        if row is None:
            raise HTTPException(404, "no such photo")
        remember({photo_id: row})
        return row

    # -- pages and assets ---------------------------------------------------------------------

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> Any:
        return HTMLResponse((static / "index.html").read_text(encoding="utf-8"))

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
               event: str | None = None) -> Any:
        f = filters(after, before, camera, folder, person, tag, event)
        if q.strip():
            results = searcher.search_text(q, f, limit + offset)
        else:
            results = searcher.search_tags(f, limit + offset) if f.active() else []
        page = results[offset:]
        missing = [r.id for r in page if r.id not in known]
        if missing:
            remember(library.photos_by_ids(missing))
        return {"query": q, "results": [r.as_dict() for r in page]}

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

    @app.get("/api/photos/{photo_id}", summary="A photo's metadata, faces and tags")
    def photo(photo_id: int) -> Any:
        photo_row(photo_id)  # 404 if unknown
        details = library.photo_details(photo_id)
        if details is None:
            raise HTTPException(404, "no such photo")
        row = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in details["photo"].items()}
        return {"photo": row, "faces": details["faces"], "tags": details["tags"], "people": details["people"]}

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
        if not os.path.isfile(row["path"]):
            raise HTTPException(404, "the file is gone (run photosearch index)")
        return FileResponse(row["path"])

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

    @app.get("/api/people/{person}", summary="Same shape as `photosearch people show --json`")
    def person(person: str, limit: int = Query(200, ge=1, le=5000)) -> Any:
        p, faces = library.person_faces(person, limit)
        return {"person": p, "faces": faces}

    @app.post("/api/people/{person}/name", summary="Name a cluster (merging into a person of that name)")
    def name(person: str, body: dict = Body(...)) -> Any:
        return library.name_person(person, str(body.get("name", "")))

    @app.post("/api/people/merge", summary="Merge people: {\"people\": [id, ...]}")
    def merge(body: dict = Body(...)) -> Any:
        return library.merge_people([str(p) for p in body.get("people", [])])

    @app.post("/api/faces/{face_id}/reject", summary="Take a face out of its person for good")
    def reject(face_id: int) -> Any:
        return library.reject_face(face_id)

    # -- duplicates -----------------------------------------------------------------------------

    @app.get("/api/dupes", summary="Same shape as `photosearch dupes --json`")
    def dupes(method: str = Query("both", pattern="^(hash|clip|both)$"), exact: bool = False) -> Any:
        groups, used = library.dupes(method=method, exact_only=exact)
        return {"method": used, "groups": [g.as_dict() for g in groups]}

    @app.post("/api/dupes/quarantine", summary="Quarantine one group's non-keepers: {\"keeper\": PATH, \"dest\": DIR}")
    def quarantine(body: dict = Body(...)) -> Any:
        dest = body.get("dest") or str(library.paths.root / "quarantine")
        groups, plan, report = library.dupes_move(dest, apply=True, keeper=str(body.get("keeper", "")),
                                                  method=str(body.get("method", "both")))
        return {"plan": plan.as_dict(), "report": report.as_dict() if report else None}

    @app.post("/api/dupes/keep-both", summary="Remember that photos are not duplicates: {\"photos\": [PATH, ...]}")
    def keep_both(body: dict = Body(...)) -> Any:
        return {"pairs_added": library.dupes_keep_both([str(p) for p in body.get("photos", [])])}

    @app.post("/api/undo", summary="Undo the last file-changing action")
    def undo() -> Any:
        return library.undo().as_dict()

    # -- review and sync ------------------------------------------------------------------------

    @app.get("/api/review", summary="Same shape as `photosearch review --json`")
    def review(below: float = Query(0.6, ge=0, le=1), above: float = Query(0.3, ge=0, le=1), tag: str | None = None,
               limit: int = Query(50, ge=1, le=1000)) -> Any:
        return {"below": below, "above": above, "items": library.review_queue(below=below, above=above, tag=tag,
                                                                              limit=limit)}

    @app.post("/api/review/decide", summary="{\"photo_id\": N, \"tag\": T, \"accept\": true|false}")
    def decide(body: dict = Body(...)) -> Any:
        library.decide(int(body["photo_id"]), str(body["tag"]), bool(body["accept"]))
        return {"ok": True}

    @app.get("/api/sync", summary="The pending metadata diff (a dry run of `photosearch sync`)")
    def sync_plan() -> Any:
        return {"applied": False, "files": [i.as_dict() for i in library.sync()]}

    @app.post("/api/sync/apply", summary="Write the pending metadata (safe writer, per-file results)")
    def sync_apply() -> Any:
        return {"applied": True, "files": [i.as_dict() for i in library.sync(apply=True)]}

    return app


def serve(library: Library, *, host: str = "127.0.0.1", port: int = 0, on_ready: Any = None) -> None:
    """Run the UI until interrupted; ``on_ready(url)`` gets the URL with the token."""
    import socket

    import uvicorn

    app = create_app(library)
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
