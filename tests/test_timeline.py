"""The timeline (the web UI's home page, `photosearch timeline`): every shown photo newest first by
capture date (else file time), paged by cursor, and the months it spans; in Chromium, day and month
headings, tiles as wide as their photos' aspect ratios, the month scrubber, and a phone's width."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from conftest import SHARED, needs_shared, run_cli, write_photo

pytestmark = needs_shared


@pytest.fixture
def dated(library, tmp_path):
    """Real camera files of ../shared (their own capture dates), generated photos with dates of our
    choosing (two on one day), and one without a date (placed at its file time)."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("Canon.jpg", "Nikon.jpg", "GPS.jpg", "Apple.jpg"):
        if (SHARED / "metadata" / name).is_file():
            shutil.copy(SHARED / "metadata" / name, folder / name)
    when = {"d1.jpg": "2023:05:01 10:00:00", "d2.jpg": "2023:05:01 18:30:00", "d3.jpg": "2021:12:24 20:00:00",
            "d4.jpg": "2024:02:29 08:00:00"}
    for i, (name, at) in enumerate(when.items()):
        write_photo(folder / name, 300 + i, size=(160, 90) if i % 2 else (90, 160), exif={0x0132: at})
    undated = write_photo(folder / "undated.jpg", 400)
    os.utime(undated, (1_600_000_000, 1_600_000_000))  # 2020-09-13
    library.index([folder], faces=False)
    return library, folder


def test_pages_are_newest_first_and_cover_every_photo_once(dated):
    lib, folder = dated
    total = lib.status()["photos"]
    seen, cursor, pages = [], None, 0
    while True:
        doc = lib.timeline(cursor, limit=3)
        seen += doc["photos"]
        pages += 1
        cursor = doc["next"]
        if cursor is None:
            break
    assert len(seen) == total and len({p["id"] for p in seen}) == total and pages == -(-total // 3)
    keys = [(p["at"], p["id"]) for p in seen]
    assert keys == sorted(keys, reverse=True)
    by_name = {os.path.basename(p["path"]): p for p in seen}
    assert by_name["d4.jpg"]["at"].startswith("2024-02-29T08:00")
    assert by_name["d2.jpg"]["at"] > by_name["d1.jpg"]["at"]
    assert by_name["undated.jpg"]["taken_at"] is None and by_name["undated.jpg"]["at"].startswith("2020-09-13")
    assert by_name["d1.jpg"]["width"] == 90 and by_name["d1.jpg"]["height"] == 160   # as displayed: the aspect
    # The camera files keep their own dates.
    with_dates = [p for n, p in by_name.items() if not n.startswith(("d", "undated")) and p["taken_at"]]
    assert with_dates and all(p["at"] == p["taken_at"] for p in with_dates)


def test_months_count_and_jump(dated):
    lib, _ = dated
    months = lib.timeline_months()
    assert sum(m["photos"] for m in months) == lib.status()["photos"]
    assert [(m["year"], m["month"]) for m in months] == sorted(((m["year"], m["month"]) for m in months), reverse=True)
    may = next(m for m in months if (m["year"], m["month"]) == (2023, 5))
    assert may["photos"] == 2
    first = lib.timeline(may["cursor"], limit=2)["photos"]
    assert [os.path.basename(p["path"]) for p in first] == ["d2.jpg", "d1.jpg"]   # the month's newest first


def test_the_viewer_walks_the_timeline_and_names_the_place(dated):
    lib, _ = dated
    order = [p["id"] for p in lib.timeline(limit=100)["photos"]]
    for i, pid in enumerate(order):
        d = lib.photo_details(pid)
        assert d["newer"] == (order[i - 1] if i else None)
        assert d["older"] == (order[i + 1] if i + 1 < len(order) else None)
    gps = [p for p in lib.timeline(limit=100)["photos"] if p["path"].endswith("GPS.jpg")]
    if gps:
        d = lib.photo_details(gps[0]["id"])
        assert d["place"] and d["photo"]["gps_lat"] is not None
        from photosearch.query.events import place_name

        assert d["place"] == place_name(d["photo"]["gps_lat"], d["photo"]["gps_lon"])


def test_cli_and_bad_input(dated):
    lib, _ = dated
    r = run_cli("timeline", "--limit", "2", "--json", library=lib.paths.root)
    doc = json.loads(r.stdout)
    assert r.returncode == 0 and len(doc["photos"]) == 2 and doc["next"]
    r2 = run_cli("timeline", "--cursor", doc["next"], "--limit", "2", "--json", library=lib.paths.root)
    assert {p["id"] for p in json.loads(r2.stdout)["photos"]}.isdisjoint({p["id"] for p in doc["photos"]})
    r = run_cli("timeline", "--months", library=lib.paths.root)
    assert r.returncode == 0 and "2023-05       2  --cursor" in r.stdout
    r = run_cli("timeline", "--cursor", "yesterday", library=lib.paths.root)
    assert r.returncode == 2 and "not a timeline cursor" in r.stderr and "Traceback" not in r.stderr


def test_an_empty_library_has_an_empty_timeline(tmp_path):
    from photosearch.api import Library

    lib = Library(tmp_path / "empty")
    assert lib.timeline() == {"photos": [], "next": None} and lib.timeline_months() == []


def test_timeline_page_in_chromium_desktop_and_phone(dated, tmp_path):
    from photosearch.web.server import create_app
    from test_web import served_browser

    lib, _ = dated
    app = create_app(lib)
    shots = tmp_path / "shots"
    shots.mkdir()
    with served_browser(app) as (browser, base):
        for name, size in (("desktop", {"width": 1280, "height": 900}), ("phone", {"width": 390, "height": 844})):
            page = browser.new_page(viewport=size)
            page.goto(f"{base}/?token={app.state.token}")
            page.wait_for_function("document.getElementById('view').dataset.ready === 'timeline'")
            page.wait_for_selector(".jtile img")
            page.wait_for_function("[...document.querySelectorAll('.jtile img')].every(i => i.complete)")
            n = lib.status()["photos"]
            assert page.locator(".jtile").count() == n
            assert page.locator("h3.day").count() >= 5 and page.locator("h2.month").count() >= 4
            # Tiles keep their photos' shapes: a landscape tile is wider than a portrait one of its row height.
            widths = page.evaluate("Object.fromEntries([...document.querySelectorAll('.jtile')].map("
                                   "t => [t.title.split('/').pop(), t.getBoundingClientRect().width]))")
            assert widths["d2.jpg"] > 1.5 * widths["d1.jpg"]
            # Nothing wider than the screen.
            assert page.evaluate("document.documentElement.scrollWidth") <= size["width"]
            page.screenshot(path=str(shots / f"timeline-{name}.png"))
            # The scrubber jumps to a month: its photos first.
            page.locator("#scrubber a[href*='2023-06-01']").click()
            page.wait_for_function("document.querySelector('.jtile') && "
                                   "document.querySelector('.jtile').title.endsWith('d2.jpg')")
            page.locator(".jtile").first.click()
            page.wait_for_selector("#photo")
            # The viewer: the original file, previous / next by the arrow keys, click to zoom.
            first = page.evaluate("location.hash")
            assert "/file" in page.get_attribute("#photo", "src")
            ready = "document.getElementById('view').dataset.ready === 'photo'"
            page.wait_for_function(ready)
            page.keyboard.press("ArrowRight")
            page.wait_for_function(f"location.hash !== {first!r} && {ready}")
            assert page.evaluate("location.hash").startswith("#/photo/")
            page.keyboard.press("ArrowLeft")
            page.wait_for_function(f"location.hash === {first!r} && {ready}")
            page.click("#photo")
            page.wait_for_selector(".frame.zoomed")
            page.screenshot(path=str(shots / f"viewer-{name}.png"))
            _edit_and_undo(page, lib, int(first.split("/")[-1].split("?")[0]))
            page.close()
    assert {p.name for p in shots.iterdir() if p.stat().st_size > 1000} == {
        "timeline-desktop.png", "timeline-phone.png", "viewer-desktop.png", "viewer-phone.png"}


def _timeline_selecting(browser, base: str, app, viewport: dict, ids: list[int]):  # noqa: ANN202
    """A page on the timeline with "Select" on and the photos ``ids`` clicked."""
    page = browser.new_page(viewport=viewport)
    page.goto(f"{base}/?token={app.state.token}")
    page.wait_for_selector(".jtile img")
    page.click("#select-toggle")
    for i in ids:
        page.click(f".jtile[data-id='{i}']")
    return page


def _eventually(check, why: str, seconds: float = 20.0) -> None:
    """Wait for ``check()`` (a page's requests finish after the click that starts them)."""
    import time

    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, why
        time.sleep(0.1)


def _edit_and_undo(page, lib, pid: int) -> None:
    """Rate and tag on the photo page, each undone from the page, checked in the catalog."""
    from photosearch.store.catalog import Catalog

    def rating() -> int | None:
        return lib.photo_details(pid)["photo"]["rating"]

    def tag_state(tag: str) -> str | None:
        return next((t["state"] for t in lib.photo_details(pid)["tags"] if t["tag"] == tag), None)

    ready = "document.getElementById('view').dataset.ready === 'photo'"
    before = rating()
    page.click("#stars .star[data-n='4']")
    page.wait_for_selector("#undo-edit")
    assert rating() == 4 and page.locator("#stars .star.on").count() == 4
    page.click("#undo-edit")
    page.wait_for_function(f"document.querySelectorAll('#stars .star.on').length === {before or 0} && {ready}")
    assert rating() == before
    page.fill("#add-tag", "Beach")
    page.press("#add-tag", "Enter")
    page.wait_for_selector("#tags .chip[data-tag='Beach']")
    assert tag_state("Beach") == "accepted"
    page.wait_for_selector("#undo-edit")
    page.click("#undo-edit")
    page.wait_for_function(f"!document.querySelector(\"#tags .chip[data-tag='Beach']\") && {ready}")
    assert tag_state("Beach") in (None, "auto")
    with Catalog.open(lib.paths.catalog, read_only=True) as cat:
        assert "accepted" not in cat.decisions("Beach").values()


def test_editing_api_refuses_bad_input(dated):
    from fastapi.testclient import TestClient

    from photosearch.web.server import create_app

    lib, _ = dated
    app = create_app(lib)
    c = TestClient(app, base_url="http://127.0.0.1")
    c.get(f"/?token={app.state.token}", follow_redirects=False)
    c.headers["X-Photosearch-CSRF"] = app.state.csrf
    pid = lib.timeline(limit=1)["photos"][0]["id"]
    for body in ({"rating": "five"}, {"rating": True}, {"rating": 9}):
        r = c.post(f"/api/photos/{pid}/rating", json=body)
        assert r.status_code == 400 and "error" in r.json(), (body, r.text)
    r = c.post(f"/api/photos/{pid}/tags", json={"tag": "Beach", "state": "maybe"})
    assert r.status_code == 400 and "state" in r.json()["error"]
    r = c.post(f"/api/photos/{pid}/tags", json={"tag": " ", "state": "accepted"})
    assert r.status_code == 400
    assert c.post("/api/photos/999999/rating", json={"rating": 3}).status_code == 404
    r = c.post(f"/api/photos/{pid}/rating", json={"rating": 5})
    assert r.status_code == 200 and r.json() == {"rating": 5, "previous": None}
    r = c.post(f"/api/photos/{pid}/rating", json={"rating": None})
    assert r.json() == {"rating": None, "previous": 5} and lib.photo_details(pid)["photo"]["rating"] is None
    r = c.post(f"/api/photos/{pid}/tags", json={"tag": "beach", "state": "rejected"})
    assert r.status_code == 200 and r.json()["tag"] == "Beach" and r.json()["previous"] is None
    r = c.post(f"/api/photos/{pid}/tags", json={"tag": "Beach", "state": None})
    assert r.json()["previous"] == "rejected"


@pytest.mark.parametrize("viewport", [{"width": 1280, "height": 900}, {"width": 390, "height": 844}],
                         ids=["desktop", "phone"])
def test_albums_in_the_browser_and_their_api(dated, viewport):
    """Make an album on the Albums page, add a photo from its page, see it in the album, undo."""
    from fastapi.testclient import TestClient
    from photosearch.web.server import create_app
    from test_web import served_browser

    lib, _ = dated
    app = create_app(lib)
    pid = lib.timeline(limit=1)["photos"][0]["id"]
    c = TestClient(app, base_url="http://127.0.0.1")
    c.get(f"/?token={app.state.token}", follow_redirects=False)
    c.headers["X-Photosearch-CSRF"] = app.state.csrf
    assert c.post("/api/albums", json={"name": "Best", "query": "a dog"}).json()["query"] == "a dog"
    assert c.post("/api/albums/Best/add", json={"photo_ids": [pid]}).status_code == 400   # smart: refused
    for body, code in (({"photo_ids": []}, 400), ({"photo_ids": ["x"]}, 400), ({"photo_ids": [999999]}, 404)):
        assert c.post("/api/albums/Best/add", json=body).status_code == code
    assert c.get("/api/albums/Nope").status_code == 400
    with served_browser(app) as (browser, base):
        page = browser.new_page(viewport=viewport)
        page.goto(f"{base}/?token={app.state.token}#/albums")
        page.wait_for_selector("#new-album")
        page.fill("#album-name", "Trip 2023")
        page.click("#new-album button")
        page.wait_for_selector("text=This album is empty")
        page.goto(f"{base}/#/photo/{pid}")
        page.wait_for_selector("#album-pick option[value='Trip 2023']", state="attached")
        assert page.locator("#album-pick option[value='Best']").count() == 0   # smart albums are not offered
        page.select_option("#album-pick", "Trip 2023")
        page.wait_for_selector("#banner:has-text('Added to Trip 2023') #undo-edit")
        assert [a["photos"] for a in lib.albums() if a["name"] == "Trip 2023"] == [1]
        page.goto(f"{base}/#/album/Trip%202023")
        page.wait_for_selector(f".result[data-id='{pid}']")
        page.goto(f"{base}/#/photo/{pid}")
        page.wait_for_selector("#album-pick option[value='Trip 2023']", state="attached")
        page.select_option("#album-pick", "Trip 2023")
        page.wait_for_selector("#banner:has-text('Added to Trip 2023') #undo-edit")
        page.click("#undo-edit")
        _eventually(lambda: [a["photos"] for a in lib.albums() if a["name"] == "Trip 2023"] == [0],
                    "the undo did not take the photo out of the album")


@pytest.mark.parametrize("viewport", [{"width": 1280, "height": 900}, {"width": 390, "height": 844}],
                         ids=["desktop", "phone"])
def test_select_several_rate_tag_album_and_undo_each(dated, viewport):
    """Multi-select on the timeline: rate, tag and add to an album, each undone from the page."""
    from photosearch.web.server import create_app
    from test_web import served_browser

    lib, _ = dated
    lib.album_create("Picks")
    ids = [p["id"] for p in lib.timeline(limit=3)["photos"]]
    lib.rate([lib.photo_details(ids[0])["photo"]["path"]], 2)   # one already rated: undo must give its 2 back

    def state() -> tuple[list, list, int]:
        details = [lib.photo_details(i) for i in ids]
        tags = [next((t["state"] for t in d["tags"] if t["tag"] == "Picnic"), None) for d in details]
        return [d["photo"]["rating"] for d in details], tags, next(a["photos"] for a in lib.albums() if a["name"] == "Picks")

    before = state()
    app = create_app(lib)
    with served_browser(app) as (browser, base):
        page = _timeline_selecting(browser, base, app, viewport, ids)
        assert page.locator(".jtile.selected").count() == 3
        assert page.text_content("#selected-count") == "3 selected"
        assert page.evaluate("location.hash") in ("", "#/timeline")   # selecting does not open photos

        def undo_until(k: int, want: object) -> None:
            # The undo's requests (one per previous value) run after the click: wait for them.
            page.click("#undo-edit")
            _eventually(lambda: state()[k] == want, f"undo left {state()[k]!r}, not {want!r}")

        page.select_option("#bulk-rating", "5")
        page.wait_for_selector("#undo-edit")
        assert state()[0] == [5, 5, 5]
        undo_until(0, before[0])
        page.fill("#bulk-tag", "Picnic")
        page.press("#bulk-tag", "Enter")
        page.wait_for_selector("#undo-edit")
        assert state()[1] == ["accepted"] * 3
        undo_until(1, before[1])
        page.wait_for_selector("#bulk-album option[value='Picks']", state="attached")
        page.select_option("#bulk-album", "Picks")
        page.wait_for_selector("#undo-edit")
        assert state()[2] == 3
        undo_until(2, 0)
        page.click("#select-toggle")
        assert page.locator(".jtile.selected").count() == 0 and page.is_hidden("#select-bar")


def test_the_page_follows_the_systems_light_or_dark_mode(dated, tmp_path):
    from photosearch.web.server import create_app
    from test_web import served_browser

    lib, _ = dated
    app = create_app(lib)
    seen = {}
    with served_browser(app) as (browser, base):
        for scheme in ("dark", "light"):
            page = browser.new_page(viewport={"width": 1280, "height": 900}, color_scheme=scheme)
            page.goto(f"{base}/?token={app.state.token}")
            page.wait_for_selector(".jtile img")
            seen[scheme] = page.evaluate("[getComputedStyle(document.body).backgroundColor, "
                                         "getComputedStyle(document.body).color, "
                                         "getComputedStyle(document.querySelector('#q')).backgroundColor]")
            page.screenshot(path=str(tmp_path / f"timeline-{scheme}.png"))
            page.close()

    def luminance(css: str) -> float:
        r, g, b = (int(x) for x in css[css.index("(") + 1:css.index(")")].split(",")[:3])
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    dark_bg, dark_fg, dark_input = (luminance(c) for c in seen["dark"])
    light_bg, light_fg, light_input = (luminance(c) for c in seen["light"])
    assert dark_bg < 50 < 200 < light_bg            # the page itself follows the system
    assert dark_fg > 180 and light_fg < 60          # and its text stays readable on it
    assert dark_input < 80 and light_input > 200    # so do the controls


@pytest.mark.parametrize("viewport", [{"width": 1280, "height": 900}, {"width": 390, "height": 844}],
                         ids=["desktop", "phone"])
def test_select_and_quarantine_then_undo_and_album_removal_and_creation_undone(dated, viewport):
    """The selection bar's Quarantine moves the files out of the timeline (journaled) and its Undo
    brings them back byte for byte; on an album's page, Remove from album and its Undo; and making
    an album is undone by deleting it."""
    import hashlib

    from photosearch.web.server import create_app
    from test_web import served_browser

    lib, folder = dated
    ids = [p["id"] for p in lib.timeline(limit=2)["photos"]]
    paths = {i: lib.photo_details(i)["photo"]["path"] for i in ids}
    sums = {i: hashlib.sha256(open(p, "rb").read()).hexdigest() for i, p in paths.items()}
    total = lib.status()["photos"]
    lib.album_create("Keep")
    lib.album_add("Keep", list(paths.values()))
    app = create_app(lib)
    with served_browser(app) as (browser, base):
        page = _timeline_selecting(browser, base, app, viewport, ids)
        page.click("#bulk-quarantine")
        page.wait_for_selector("#undo-edit")
        assert "Quarantined 2 photos." in page.text_content("#banner")
        assert not any(os.path.exists(p) for p in paths.values())
        page.wait_for_function(f"document.querySelectorAll('.jtile').length === {total - 2}")
        assert not {p["id"] for p in lib.timeline(limit=50)["photos"]} & set(ids)
        page.click("#undo-edit")
        _eventually(lambda: all(os.path.exists(p) for p in paths.values()), "undo did not bring the files back")
        assert {i: hashlib.sha256(open(p, "rb").read()).hexdigest() for i, p in paths.items()} == sums
        _eventually(lambda: set(ids) <= {p["id"] for p in lib.timeline(limit=50)["photos"]}, "not back in the timeline")

        # An album's page: select one, take it out, undo.
        page.goto(f"{base}/#/album/Keep")
        page.wait_for_function("document.getElementById('view').dataset.ready === 'album'")
        page.click("#select-toggle")
        page.click(f".tile.result[data-id='{ids[0]}']")
        page.click("#bulk-album-remove")
        page.wait_for_selector("#undo-edit")
        assert next(a["photos"] for a in lib.albums() if a["name"] == "Keep") == 1
        page.click("#undo-edit")
        _eventually(lambda: next(a["photos"] for a in lib.albums() if a["name"] == "Keep") == 2, "not put back")

        # Making an album, undone.
        page.goto(f"{base}/#/albums")
        page.wait_for_selector("#new-album")
        page.fill("#album-name", "Oops")
        page.click("#new-album button")
        page.wait_for_selector("#undo-edit")
        assert "Oops" in [a["name"] for a in lib.albums()]
        page.click("#undo-edit")
        _eventually(lambda: "Oops" not in [a["name"] for a in lib.albums()], "the album was not deleted")
        page.wait_for_function("location.hash === '#/albums'")
