"""People in the web UI: merge suggestions (clusters whose mean faces are close, never two people of
one photo) answered yes or no, and merging ticked clusters; on the real faces of ../shared."""

from __future__ import annotations

import csv
import shutil

import pytest

from conftest import SHARED, needs_shared

pytestmark = needs_shared


@pytest.fixture
def split_people(library, tmp_path):
    """../shared's labelled faces indexed, then clustered too strictly (0.85): a person split in two clusters, faces seen once left alone."""
    folder = tmp_path / "faces"
    shutil.copytree(SHARED / "faces", folder)
    library.index([folder], faces=True)
    library.recluster(0.85)
    with open(SHARED / "faces" / "identities.csv", newline="", encoding="utf-8") as f:
        who = {r["file"]: r["person"] for r in csv.DictReader(f)}
    return library, who


def _identity(lib, who, person_id: int) -> set[str]:
    _, faces = lib.person_faces(person_id)
    return {who.get(f["path"].rsplit("/", 1)[-1], "?") for f in faces}


def test_suggestions_pair_pieces_of_one_person_and_remember_a_no(split_people):
    lib, who = split_people
    people = lib.people()
    found = lib.merge_suggestions(limit=50)
    assert found, "a person split in pieces must give suggestions"
    sims = [s["similarity"] for s in found]
    assert sims == sorted(sims, reverse=True)
    for s in found:
        a, b = _identity(lib, who, s["a"]["id"]), _identity(lib, who, s["b"]["id"])
        assert a == b and len(a) == 1, (s, a, b)   # the same labelled person, never two
    first = found[0]
    lib.dismiss_suggestion(first["b"]["id"], first["a"]["id"])   # either order
    again = lib.merge_suggestions(limit=50)
    assert {(s["a"]["id"], s["b"]["id"]) for s in again} == {(s["a"]["id"], s["b"]["id"]) for s in found[1:]}
    assert len(lib.people()) == len(people)   # a "no" merges nothing


def test_people_page_merges_a_suggestion_and_ticked_clusters(split_people):
    from photosearch.web.server import create_app
    from test_web import served_browser

    lib, who = split_people
    before = len(lib.people())
    app = create_app(lib)
    with served_browser(app) as (browser, base):
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{base}/?token={app.state.token}#/people")
        ready = "document.getElementById('view').dataset.ready === 'people'"
        page.wait_for_function(ready)   # every tile drawn (they come one by one)
        with page.expect_response("**/api/people/merge") as merged:
            page.click(".suggestion .same")
        assert merged.value.ok
        page.wait_for_function(f"{ready} && document.querySelectorAll('.tile.person').length === {before - 1}")
        assert len(lib.people()) == before - 1
        # Split again: "Not the same" takes the suggestion away and merges nothing.
        lib.recluster(0.85)
        page.reload()
        page.wait_for_function(ready)
        with page.expect_response("**/api/people/not-same") as answered:
            page.click(".suggestion .not-same")
        assert answered.value.ok
        page.wait_for_function(f"{ready} && !document.querySelector('.suggestion')")
        assert len(lib.people()) == before and lib.merge_suggestions() == []
        # Ticking the two clusters and "Merge selected" makes them one.
        a, b = (p["id"] for p in lib.people()[:2])
        page.check(f".tile.person[data-id='{a}'] input.pick")
        page.check(f".tile.person[data-id='{b}'] input.pick")
        with page.expect_response("**/api/people/merge") as merged:
            page.click("#merge-selected")
        assert merged.value.ok
        page.wait_for_function(f"{ready} && document.querySelectorAll('.tile.person').length === {before - 1}")
        assert len(lib.people()) == before - 1


def test_a_face_seen_once_is_named_on_its_photo_page(split_people):
    """Biden appears once in ../shared: no cluster holds his face; naming it on the photo page makes
    him a person, and naming another face with the same name joins it to him."""
    from photosearch.errors import UsageError
    from photosearch.web.server import create_app
    from test_web import served_browser

    lib, who = split_people
    once = [p for p in lib.timeline(limit=100)["photos"] if who.get(p["path"].rsplit("/", 1)[-1]) == "Joe Biden"]
    assert once
    pid = once[0]["id"]
    face = lib.photo_details(pid)["faces"][0]
    assert face["person_id"] is None
    app = create_app(lib)
    with served_browser(app) as (browser, base):
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{base}/?token={app.state.token}#/photo/{pid}")
        page.fill(f".name-face[data-face='{face['id']}'] input", "Joe Biden")
        page.click(f".name-face[data-face='{face['id']}'] button")
        page.wait_for_selector("text=This person (Joe Biden)")
    biden = next(p for p in lib.people() if p["name"] == "Joe Biden")
    assert biden["faces"] == 1 and lib.photo_details(pid)["faces"][0]["person_id"] == biden["id"]
    # Bad input: one line each, nothing changed.
    from photosearch.errors import InputError

    with pytest.raises(InputError, match="no face 999999"):
        lib.name_face(999999, "Nobody")
    with pytest.raises(UsageError, match="the name is empty"):
        lib.name_face(face["id"], "   ")
    assert [p["name"] for p in lib.people()].count("Joe Biden") == 1


def _people_state(lib) -> tuple:
    """Everything a people edit may change: people, each face's person, rejections, the "no" answers."""
    from photosearch.store.catalog import Catalog

    with Catalog.open(lib.paths.catalog, read_only=True) as cat:
        q = lambda sql: sorted(cat.con.execute(sql).fetchall(), key=repr)  # noqa: E731
        return (q("SELECT id, name, created_at FROM people"), q("SELECT id, person_id, assigned FROM faces"),
                q("SELECT * FROM face_rejections"), cat.get_setting("people:not-same"))


def test_every_people_edit_is_undone_exactly(split_people):
    """Naming, naming one face, merging, rejecting a face and "not the same" are journaled actions:
    `undo` puts every person, face assignment, rejection and answer back as it was."""
    from photosearch.errors import UsageError

    lib, who = split_people
    clusters = [p for p in lib.people() if not p["name"]]
    suggestion = lib.merge_suggestions(limit=1)[0]
    _, faces = lib.person_faces(clusters[0]["id"])
    once = next(p for p in lib.timeline(limit=100)["photos"] if who.get(p["path"].rsplit("/", 1)[-1]) == "Joe Biden")
    lonely = lib.photo_details(once["id"])["faces"][0]["id"]
    edits = [
        ("name", lambda: lib.name_person(clusters[0]["id"], "Someone")),
        ("merge", lambda: lib.merge_people([suggestion["a"]["id"], suggestion["b"]["id"]])),
        ("reject", lambda: lib.reject_face(faces[0]["id"])),
        ("name one face", lambda: lib.name_face(lonely, "Joe Biden")),
        ("not the same", lambda: lib.dismiss_suggestion(suggestion["a"]["id"], suggestion["b"]["id"])),
    ]
    for what, edit in edits:
        before = _people_state(lib)
        done = edit()
        assert done["journal"], what
        assert _people_state(lib) != before, what
        report = lib.undo(action=done["journal"])
        assert report.rows > 0 and not report.problems and not report.untouched, what
        assert _people_state(lib) == before, what
    # A name that is taken merges the two; undo splits them again, names and all.
    lib.name_person(clusters[0]["id"], "Someone")
    before = _people_state(lib)
    done = lib.name_person(clusters[1]["id"], "someone")
    assert done["merged"] == [clusters[1]["id"]]
    later = lib.reject_face(faces[0]["id"])
    with pytest.raises(UsageError, match="must be undone first"):
        lib.undo(action=done["journal"])                 # only the newest action, in order
    lib.undo(action=later["journal"])
    lib.undo(action=done["journal"])
    assert _people_state(lib) == before
    # A row changed since the edit (here by hand in the catalog) is left as it is, and said.
    from photosearch.store.catalog import Catalog

    done = lib.name_person(clusters[1]["id"], "Third")
    with Catalog.open(lib.paths.catalog) as cat, cat.transaction():
        cat.rename_person(clusters[1]["id"], "Fourth")
    report = lib.undo()
    assert report.action == "people-name" and not report.problems and report.rows > 0   # its faces went back
    assert report.untouched == [f"people {clusters[1]['id']} (changed since; left as it is)"]
    assert next(p for p in lib.people() if p["id"] == clusters[1]["id"])["name"] == "Fourth"
