"""Every page of the web UI in Chromium at a desktop's width and a phone's (390x844): it draws
without an error, nothing is wider than the screen, the menu fits, and a screenshot is saved; on a
phone the viewer swipes. Then the actions not covered elsewhere, each undone from the page: the
sync page's selection, per-file failures and undo; a review answer; naming and rejecting on a
person's page; merging people by dragging. On real photos and faces from ../shared."""

from __future__ import annotations

import csv
import hashlib
import shutil
import time

import pytest
from PIL import Image

from conftest import SHARED, needs_shared, unwritable

pytestmark = needs_shared

SIZES = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}


@pytest.fixture
def full(library, tmp_path):
    """Labelled photos, a resized copy of one (a duplicate group), the faces of ../shared (clustered
    strictly so people come in pieces), a manual album, and a rating waiting to be synced."""
    photos = tmp_path / "photos"
    shutil.copytree(SHARED / "photos", photos)
    first = sorted(photos.glob("*.jpg"))[0]
    im = Image.open(first)
    im.resize((im.width // 2, im.height // 2)).save(photos / "smaller-copy.jpg", quality=85)
    shutil.copytree(SHARED / "faces", tmp_path / "faces")
    library.index([photos, tmp_path / "faces"], faces=True)
    library.recluster(0.85)
    library.album_create("Trip")
    library.album_add("Trip", [first])
    library.rate([first], 4)
    with open(SHARED / "faces" / "identities.csv", newline="", encoding="utf-8") as f:
        who = {r["file"]: r["person"] for r in csv.DictReader(f)}
    return library, tmp_path, who


def _eventually(check, why: str, seconds: float = 20.0) -> None:
    end = time.monotonic() + seconds
    while not check():
        if time.monotonic() > end:
            raise AssertionError(why)
        time.sleep(0.1)


def _ready(page, name: str) -> None:
    page.wait_for_function(f"['{name}', 'error'].includes(document.getElementById('view').dataset.ready)")
    assert page.evaluate("document.getElementById('view').dataset.ready") == name, page.text_content("#banner")


def test_every_page_at_desktop_and_phone_width(full, tmp_path):
    from photosearch.web.server import create_app
    from test_web import served_browser

    lib, _, _ = full
    app = create_app(lib)
    face_photo = next(p for p in lib.timeline(limit=500)["photos"] if lib.photo_details(p["id"])["faces"])["id"]
    person = lib.people()[0]["id"]
    pages = {"timeline": "#/timeline", "search": "#/search?q=a%20cat", "photo": f"#/photo/{face_photo}",
             "like": f"#/like/{face_photo}", "personof": f"#/personof/{face_photo}/1", "people": "#/people",
             "person": f"#/person/{person}", "dupes": "#/dupes?method=hash", "review": "#/review", "sync": "#/sync",
             "memories": "#/memories", "albums": "#/albums", "album": "#/album/Trip"}
    shots = tmp_path / "screenshots"
    shots.mkdir()
    with served_browser(app) as (browser, base):
        for size_name, size in SIZES.items():
            context = browser.new_context(viewport=size, has_touch=size_name == "phone",
                                          is_mobile=size_name == "phone")
            page = context.new_page()
            page.goto(f"{base}/?token={app.state.token}")
            _ready(page, "timeline")
            for name, hash_ in pages.items():
                page.goto(f"{base}/{hash_}")
                page.evaluate("document.getElementById('view').dataset.ready = ''")
                page.evaluate("route()")
                _ready(page, name)
                page.wait_for_load_state("networkidle")
                width = page.evaluate("document.documentElement.scrollWidth")
                assert width <= size["width"], f"{name} is {width} px wide at {size_name}"
                # The menu fits: every header control inside the screen (the nav scrolls sideways).
                right = page.evaluate("Math.max(...[...document.querySelectorAll('header > *')]"
                                      ".map(e => e.getBoundingClientRect().right))")
                assert right <= size["width"], f"the header runs off the screen on {name} at {size_name}"
                assert page.evaluate("document.getElementById('banner').hidden"), (name, page.text_content("#banner"))
                if name in ("search", "album"):   # tiles keep their photos' shapes; no raw scores on them
                    page.wait_for_function("[...document.querySelectorAll('#results img')].every(i => i.complete)")
                    ratios = page.evaluate("[...document.querySelectorAll('#results .tile img')].map("
                                           "i => (i.clientWidth / i.clientHeight) / (i.naturalWidth / i.naturalHeight))")
                    assert ratios and all(0.8 <= r <= 1.35 for r in ratios), ratios
                    assert not page.locator("#results .meta", has_text="0.").count()
                page.screenshot(path=str(shots / f"{name}-{size_name}.png"), full_page=True)
            # The viewer on this width: a photo wide enough to see, its details below or beside it.
            page.goto(f"{base}/#/photo/{face_photo}")
            _ready(page, "photo")
            page.wait_for_function("document.getElementById('photo').complete")
            box = page.locator("#photo").bounding_box()
            assert box["width"] >= min(300, size["width"] - 40), box
            table = page.locator("table.kv").bounding_box()
            if size_name == "phone":   # one column: the details start below the photo and its face labels
                assert table["y"] >= box["y"] + box["height"]
                before = page.evaluate("location.hash")
                page.evaluate("""() => {
                    const f = document.querySelector('.frame');
                    const t = x => new Touch({identifier: 1, target: f, clientX: x, clientY: 200});
                    f.dispatchEvent(new TouchEvent('touchstart', {touches: [t(320)], changedTouches: [t(320)], bubbles: true}));
                    f.dispatchEvent(new TouchEvent('touchend', {touches: [], changedTouches: [t(80)], bubbles: true}));
                }""")
                page.wait_for_function(f"location.hash !== {before!r}")   # a swipe left: the next, older photo
                _ready(page, "photo")
            context.close()
        # Without the token: a small login page, not bare JSON.
        context = browser.new_context(viewport=SIZES["phone"])
        page = context.new_page()
        response = page.goto(f"{base}/")
        assert response.status == 401 and page.locator("form input[type=password], form input[name=token]").count() == 1
        assert page.evaluate("document.documentElement.scrollWidth") <= SIZES["phone"]["width"]
        page.screenshot(path=str(shots / "login-phone.png"))
        context.close()
    saved = {p.name for p in shots.iterdir() if p.stat().st_size > 1000}
    assert saved == {f"{n}-{s}.png" for n in pages for s in SIZES} | {"login-phone.png"}


def _sha(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.mark.parametrize("size", SIZES)
def test_sync_page_writes_the_ticked_files_shows_failures_and_undoes(full, tmp_path, size):
    """Three files wait: one unticked stays as it is, one in a folder that cannot be written fails
    with its reason on its card, the third is written; Undo puts it back byte for byte."""
    from photosearch.web.server import create_app
    from test_web import served_browser

    lib, root, _ = full
    locked = root / "locked"
    locked.mkdir()
    src = sorted((SHARED / "photos").glob("*.jpg"))[1]
    shutil.copy(src, locked / src.name)
    lib.index([locked], faces=False)
    skip, write = sorted((root / "photos").glob("caer_*.jpg"))[1:3]
    lib.rate([skip, write, locked / src.name], 3)
    ids = {p: lib.photo_ids_of([str(p)])[0][0] for p in (skip, write, locked / src.name)}
    pending = {i.photo_id: i.path for i in lib.sync()}          # these three and the fixture's rated photo
    assert set(ids.values()) < set(pending)
    sums = {p: _sha(p) for p in pending.values()}
    app = create_app(lib)
    with served_browser(app) as (browser, base), unwritable(locked):
        page = browser.new_page(viewport=SIZES[size])
        page.goto(f"{base}/?token={app.state.token}#/sync")
        _ready(page, "sync")
        page.uncheck(f".sync-pick[data-id='{ids[skip]}']")
        assert "of" in page.text_content("#sync-count")
        with page.expect_response("**/api/sync/apply") as applied:
            page.click("#apply-sync")
        assert applied.value.ok and sorted(applied.value.request.post_data_json["photo_ids"]) == \
            sorted(set(pending) - {ids[skip]})
        failed = page.locator(f".sync-file.failed[data-id='{ids[locked / src.name]}'] .error")
        failed.wait_for()
        assert failed.text_content().startswith("Not written: ") and len(failed.text_content()) > 15
        assert page.locator(".sync-file.failed").count() == 1
        assert _sha(skip) == sums[str(skip)] and _sha(write) != sums[str(write)]
        assert page.locator(f".sync-file[data-id='{ids[skip]}']").count() == 1   # still pending
        page.wait_for_selector("#banner:has-text('1 failed') #undo-edit")
        wrote = {f["action"] for f in applied.value.json()["files"] if f["status"] == "written"}
        assert len(wrote) == 1 and None not in wrote   # the files written name their one journaled action
        with page.expect_request("**/api/undo") as undo_asked:
            page.click("#undo-edit")
        assert undo_asked.value.post_data_json == {"action": wrote.pop()}   # that action, not just the last
        _eventually(lambda: _sha(write) == sums[str(write)], "undo did not restore the written file")
    assert {p: _sha(p) for p in pending.values()} == sums


@pytest.mark.parametrize("size", SIZES)
def test_review_person_and_photo_page_actions_are_undone_from_the_page(full, size):
    from photosearch.web.server import create_app
    from test_web import served_browser

    lib, _, who = full
    lib.tag()
    app = create_app(lib)

    def tag_state(pid: int, tag: str) -> str | None:
        return next((t["state"] for t in lib.photo_details(pid)["tags"] if t["tag"] == tag), None)

    with served_browser(app) as (browser, base):
        page = browser.new_page(viewport=SIZES[size])
        # Review: an answer, then Undo: the tag is a proposal again, and it is asked again.
        page.goto(f"{base}/?token={app.state.token}#/review?below=1&above=0")
        page.wait_for_selector("#proposal")
        first = page.text_content("#proposal")
        item = lib.review_queue(below=1, above=0, limit=1)[0]
        tag = item["tags"][0]["tag"]
        page.keyboard.press("n")
        _eventually(lambda: tag_state(item["photo_id"], tag) == "rejected", "the answer was not recorded")
        page.click("#undo-edit")
        _eventually(lambda: tag_state(item["photo_id"], tag) == "auto", "undo did not set the tag back")
        page.wait_for_function(f"document.getElementById('proposal').textContent === {first!r}")

        # A person's page: naming, then Undo; rejecting a face, then Undo.
        pid = next(p["id"] for p in lib.people() if p["faces"] >= 2)
        names = lambda: {p["id"]: p["name"] for p in lib.people()}  # noqa: E731
        before, faces_before = names(), [f["id"] for f in lib.person_faces(pid)[1]]
        page.goto(f"{base}/#/person/{pid}")
        _ready(page, "person")
        page.fill("#person-name", "Someone")
        page.click("#save-name")
        page.wait_for_selector("#banner:has-text('Named Someone') #undo-edit")
        assert names()[pid] == "Someone"
        page.click("#undo-edit")
        _eventually(lambda: names() == before, "undo did not take the name back")
        page.wait_for_function(f"document.querySelectorAll('.tile.face').length === {len(faces_before)} && "
                               "document.getElementById('person-name').value === ''")   # drawn again
        page.locator(".tile.face .reject").first.click()
        page.wait_for_selector("#banner:has-text('taken out') #undo-edit")
        assert len(lib.person_faces(pid)[1]) == len(faces_before) - 1
        page.click("#undo-edit")
        _eventually(lambda: [f["id"] for f in lib.person_faces(pid)[1]] == faces_before, "the face did not come back")
        page.wait_for_function(f"document.querySelectorAll('.tile.face').length === {len(faces_before)}")

        # A face rejected on its photo page, then Undo: theirs again.
        face = lib.person_faces(pid)[1][0]
        page.goto(f"{base}/#/photo/{face['photo_id']}")
        _ready(page, "photo")
        page.click(f".reject-face[data-face='{face['id']}']")
        page.wait_for_selector("#banner:has-text('Face taken out') #undo-edit")
        assert face["id"] not in [f["id"] for f in lib.person_faces(pid)[1]]
        page.click("#undo-edit")
        _eventually(lambda: [f["id"] for f in lib.person_faces(pid)[1]] == faces_before, "the face is not theirs again")
        page.wait_for_selector(f".reject-face[data-face='{face['id']}']")

        # A face seen once, named on its photo page, then Undo: nobody again.
        once = next(p["id"] for p in lib.timeline(limit=500)["photos"]
                    if who.get(p["path"].rsplit("/", 1)[-1]) == "Joe Biden")
        face = lib.photo_details(once)["faces"][0]["id"]
        page.goto(f"{base}/#/photo/{once}")
        _ready(page, "photo")
        # The undo above re-draws the page it is on when its request returns: on a busy machine
        # that may land after this page was drawn, and would wipe what is typed in it.
        page.wait_for_load_state("networkidle")
        page.fill(f".name-face[data-face='{face}'] input", "Joe Biden")
        with page.expect_response(f"**/api/faces/{face}/name") as named:
            page.click(f".name-face[data-face='{face}'] button")
        assert named.value.ok, named.value.text()
        page.wait_for_selector("#banner:has-text('Named Joe Biden') #undo-edit")
        assert "Joe Biden" in names().values()
        page.click("#undo-edit")
        _eventually(lambda: "Joe Biden" not in names().values(), "undo did not forget the name")
        assert lib.photo_details(once)["faces"][0]["person_id"] is None


@pytest.mark.parametrize("size", SIZES)
def test_people_merge_by_dragging_one_onto_another_then_undo(full, size):
    from photosearch.web.server import create_app
    from test_web import served_browser

    lib, _, who = full
    suggestion = lib.merge_suggestions(limit=1)[0]     # two pieces of one labelled person
    a, b = suggestion["a"]["id"], suggestion["b"]["id"]
    before = len(lib.people())
    app = create_app(lib)
    with served_browser(app) as (browser, base):
        page = browser.new_page(viewport=SIZES[size])
        page.goto(f"{base}/?token={app.state.token}#/people")
        _ready(page, "people")
        with page.expect_response("**/api/people/merge") as merged:
            page.drag_and_drop(f".tile.person[data-id='{b}']", f".tile.person[data-id='{a}']")
        assert merged.value.ok and sorted(merged.value.request.post_data_json["people"]) == sorted([a, b])
        page.wait_for_function(f"document.querySelectorAll('.tile.person').length === {before - 1}")
        assert len(lib.people()) == before - 1
        page.wait_for_selector("#banner #undo-edit")
        page.click("#undo-edit")
        _eventually(lambda: {p["id"] for p in lib.people()} >= {a, b}, "undo did not split them again")
        page.wait_for_function(f"document.querySelectorAll('.tile.person').length === {before}")
        # "Not the same" on the suggestion, then Undo: it is suggested again.
        pair = f".suggestion[data-pair='{a}-{b}']"
        page.wait_for_selector(pair)
        page.click(f"{pair} .not-same")
        page.wait_for_selector("#banner:has-text('Not suggested again') #undo-edit")
        assert not any({s["a"]["id"], s["b"]["id"]} == {a, b} for s in lib.merge_suggestions(limit=50))
        page.click("#undo-edit")
        page.wait_for_selector(pair)
        assert any({s["a"]["id"], s["b"]["id"]} == {a, b} for s in lib.merge_suggestions(limit=50))


def test_a_file_kept_without_a_picture_gets_a_no_picture_tile(library, tmp_path):
    """A camera clip whose frames were cut away is in the timeline (it has a date) with a plain
    "no picture" tile, not a broken image; the photos beside it show theirs."""
    from photosearch.web.server import create_app
    from test_web import served_browser

    d = tmp_path / "mixed"
    d.mkdir()
    for p in sorted((SHARED / "photos").glob("*.jpg"))[:3]:
        shutil.copy(p, d / p.name)
    shutil.copy(SHARED / "videos" / "exiftool_QuickTime.mov", d / "clip.mov")
    report = library.index([d], faces=False)
    assert report.without_pixels == 1
    clip = next(p["id"] for p in library.timeline(limit=50)["photos"] if p["path"].endswith("clip.mov"))
    app = create_app(library)
    with served_browser(app) as (browser, base):
        page = browser.new_page()
        page.goto(f"{base}/?token={app.state.token}")
        _ready(page, "timeline")
        page.wait_for_load_state("networkidle")
        page.wait_for_function("[...document.querySelectorAll('img[src*=\"/thumb\"]')].every(i => i.complete)")
        tiles = page.evaluate("[...document.querySelectorAll('img[src*=\"/thumb\"]')].map("
                              "i => [i.getAttribute('src'), i.classList.contains('nopic'), i.naturalWidth])")
        mine = [t for t in tiles if f"/photos/{clip}/thumb" in t[0]]
        others = [t for t in tiles if f"/photos/{clip}/thumb" not in t[0]]
        assert mine and all(nopic and width == 0 for _, nopic, width in mine), tiles
        assert len(others) == 3 and not any(nopic for _, nopic, _ in others) and all(w > 0 for *_, w in others)
