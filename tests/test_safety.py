"""Hardening (issue 15): one writer per library, and catalogs repaired from concurrent runs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import SHARED, needs_shared, run_cli, write_photo
from photosearch.store.catalog import Catalog
from photosearch.store.writer_lock import holder


def _photos(folder: Path, n: int, seed: int = 0) -> list[Path]:
    return [write_photo(folder / f"p{i:03d}.jpg", seed=seed + i) for i in range(n)]


def _cli_process(*args: str, library: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    full = {**os.environ, "HF_HUB_OFFLINE": "1", "PHOTOSEARCH_LIBRARY": str(library), **env}
    return subprocess.Popen([sys.executable, "-m", "photosearch", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=full)


def _wait_for_holder(root: Path, proc: subprocess.Popen[str], timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        h = holder(root)
        if h and h.get("pid") == proc.pid:
            return h
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError("the first run never took the writer lock")


def test_two_index_runs_at_once_never_duplicate_and_the_second_names_the_first(library, tmp_path):
    first = _photos(tmp_path / "first", 3)
    second = _photos(tmp_path / "second", 5, seed=50)
    root = library.paths.root
    assert run_cli("index", str(tmp_path / "first"), "--no-faces", library=root).returncode == 0
    pause = tmp_path / "pause"
    pause.touch()
    a = _cli_process("index", str(tmp_path / "second"), "--no-faces", "--json", library=root,
                     env={"PHOTOSEARCH_TEST_PAUSE_FILE": str(pause)})
    try:
        h = _wait_for_holder(root, a)
        assert h["command"] == "index"
        # A second writer gives up after its wait, naming the first; nothing of it ran.
        b = run_cli("index", str(tmp_path / "second"), "--no-faces", "--json", library=root,
                    env={"PHOTOSEARCH_LOCK_WAIT": "0.5"})
        assert b.returncode == 5, b.stderr
        assert f"pid {a.pid}" in b.stderr and "photosearch index" in b.stderr
        assert json.loads(b.stdout)["exit_code"] == 5
        assert len(b.stderr.strip().splitlines()) == 1
        # Other writers too; readers never wait for the lock.
        r = run_cli("rate", "4", str(first[0]), library=root, env={"PHOTOSEARCH_LOCK_WAIT": "0.2"})
        assert r.returncode == 5 and f"pid {a.pid}" in r.stderr
        s = run_cli("a photo", "--json", "--limit", "2", library=root)
        assert s.returncode == 0 and len(json.loads(s.stdout)["results"]) == 2
        # One that may wait runs once the first is done.
        c = _cli_process("index", str(tmp_path / "second"), "--no-faces", "--json", library=root,
                         env={"PHOTOSEARCH_LOCK_WAIT": "300"})
        time.sleep(1.0)
        assert c.poll() is None  # waiting
    finally:
        pause.unlink()
    out_a, err_a = a.communicate(timeout=300)
    out_c, err_c = c.communicate(timeout=300)
    assert a.returncode == 0, err_a
    assert c.returncode == 0, err_c
    assert json.loads(out_a)["photos"] == 5
    assert json.loads(out_c)["unchanged"] == 5 and json.loads(out_c)["photos"] == 0
    with Catalog.open(library.paths.catalog, read_only=True) as cat:
        paths = [r[0] for r in cat.con.execute("SELECT path FROM photos").fetchall()]
    assert sorted(paths) == sorted(map(str, first + second))
    assert holder(root) is None  # released (the file says nobody holds it)


def test_a_killed_writer_leaves_no_lock_behind(library, tmp_path):
    _photos(tmp_path / "photos", 3)
    pause = tmp_path / "pause"
    pause.touch()
    a = _cli_process("index", str(tmp_path / "photos"), "--no-faces", library=library.paths.root,
                     env={"PHOTOSEARCH_TEST_PAUSE_FILE": str(pause)})
    _wait_for_holder(library.paths.root, a)
    a.kill()
    a.wait()
    r = run_cli("index", str(tmp_path / "photos"), "--no-faces", "--json", library=library.paths.root,
                env={"PHOTOSEARCH_LOCK_WAIT": "0"})
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["photos"] == 3


def test_a_catalog_with_duplicated_rows_is_repaired_on_open(library, tmp_path):
    files = _photos(tmp_path / "photos", 3)
    library.index([tmp_path / "photos"], faces=False)
    # What two concurrent runs of an older photosearch left: every row twice (its data too).
    with Catalog.open(library.paths.catalog) as cat:
        cat.con.execute("DROP INDEX photos_path")
        cat.con.execute("ALTER TABLE photos DROP COLUMN content_id")
        for sql in ("DROP TABLE frame_embeddings", "DROP TABLE video_frames", "DROP SEQUENCE frame_id_seq",
                    "ALTER TABLE photos DROP COLUMN media", "ALTER TABLE photos DROP COLUMN duration",
                    "ALTER TABLE photos DROP COLUMN live_of", "ALTER TABLE photos DROP COLUMN live_id",  # 0011
                    *(f"ALTER TABLE image_hashes DROP COLUMN {c}" for c in ("sharpness", "brightness", "highlight",
                                                                             "blown")),  # 0012
                    *(f"DROP TABLE {t}" for t in ("ocr_scans", "photo_text", "photo_docs", "text_words",
                                                  "text_vocab")),  # 0013
                    "ALTER TABLE photos DROP COLUMN keyword_paths", "ALTER TABLE tag_decisions DROP COLUMN source",  # 0014
                    "DROP TABLE album_photos", "DROP TABLE albums", "DROP SEQUENCE album_id_seq",  # 0015
                    "DROP TABLE image_windows",  # 0016
                    "DROP INDEX faces_photo", "ALTER TABLE faces DROP COLUMN t",
                    "CREATE INDEX faces_photo ON faces (photo_id)"):   # and 0010 (videos)
            cat.con.execute(sql)
        cat.con.execute("DELETE FROM schema_version WHERE version >= 7")
        cat.con.execute("INSERT INTO photos SELECT id + 1000, * EXCLUDE (id) FROM photos")
        cat.con.execute("INSERT INTO embeddings SELECT photo_id + 1000, model, vector FROM embeddings")
        assert cat.count_photos() == 6
    # A reader (a search) migrates it: duplicates go, the first row of each path stays.
    r = run_cli("a photo", "--json", "--limit", "10", library=library.paths.root)
    assert r.returncode == 0, r.stderr
    got = [x["path"] for x in json.loads(r.stdout)["results"]]
    assert sorted(got) == sorted(map(str, files))
    with Catalog.open(library.paths.catalog, read_only=True) as cat:
        assert cat.con.execute("SELECT max(id) FROM photos").fetchone()[0] < 1000
        assert cat.con.execute("SELECT count(*) FROM embeddings WHERE photo_id > 1000").fetchone()[0] == 0
    # And the catalog refuses a second row for a path from now on.
    import duckdb
    import pytest

    with Catalog.open(library.paths.catalog) as cat, pytest.raises(duckdb.ConstraintException):
        cat.con.execute("INSERT INTO photos SELECT id + 2000, * EXCLUDE (id) FROM photos")


def test_partial_failures_exit_with_the_documented_code_and_json_lists_them(library, tmp_path):
    """`dupes --move-to --apply --json` exited 0 when moves failed (issue 15); batch commands too."""
    import shutil

    from conftest import unwritable

    photos = tmp_path / "photos"
    original = write_photo(photos / "a.jpg", seed=1)
    shutil.copy(original, photos / "a-copy.jpg")
    root = library.paths.root
    assert run_cli("index", str(photos), "--no-faces", library=root).returncode == 0
    with unwritable(photos):   # the copies cannot leave this folder
        r = run_cli("dupes", "--exact", "--move-to", str(tmp_path / "q"), "--apply", "--json", library=root)
        assert r.returncode == 7, (r.returncode, r.stderr)
        doc = json.loads(r.stdout)
        assert doc["report"]["failures"] and doc["report"]["moved"] == 0
        r = run_cli("dupes", "--exact", "--move-to", str(tmp_path / "q"), "--apply", library=root)
        assert r.returncode == 7 and "error:" in r.stderr
        r = run_cli("organize", "--into", str(tmp_path / "sorted"), "--apply", "--json", library=root)
        assert r.returncode == 7, (r.returncode, r.stderr)
        assert len(json.loads(r.stdout)["report"]["failures"]) == 2
    assert sorted(p.name for p in photos.iterdir()) == ["a-copy.jpg", "a.jpg"]
    # An undo that cannot restore everything (a moved photo was changed since) exits 8, --json too.
    r = run_cli("organize", "--into", str(tmp_path / "sorted"), "--apply", "--json", library=root)
    assert r.returncode == 0, r.stderr
    moves = json.loads(r.stdout)["plan"]["moves"]
    moved, sources = [Path(m["dst"]) for m in moves], [Path(m["src"]) for m in moves]
    moved[0].write_bytes(moved[0].read_bytes() + b"changed")
    r = run_cli("undo", "--json", library=root)
    assert r.returncode == 8, (r.returncode, r.stderr)
    assert json.loads(r.stdout)["problems"]
    # A batch over photos where one is not in the library: the rest is done, exit 3, JSON says which.
    assert sources[1].exists() and moved[0].exists()   # restored / left where it is, changed
    r = run_cli("rate", "4", str(sources[1]), str(tmp_path / "missing.jpg"), "--json", library=root)
    assert r.returncode == 3, r.stderr
    doc = json.loads(r.stdout)
    assert [f["path"] for f in doc["failed"]] == [str(tmp_path / "missing.jpg")]


def test_an_outside_metadata_edit_keeps_the_photo_and_its_curation(library, tmp_path):
    """Another app rewrites keywords into the files (mtime kept): same ids, vectors, ratings, tag
    decisions and keep-both pairs; the new metadata is read. A rotation is a new image."""
    import pyexiv2
    from PIL import Image

    photos = tmp_path / "photos"
    jpg = write_photo(photos / "a.jpg", seed=3)
    png = photos / "b.png"
    Image.open(write_photo(tmp_path / "src.jpg", seed=4)).save(png)
    turned = write_photo(photos / "c.jpg", seed=5)
    wandered = write_photo(photos / "d.jpg", seed=6)
    webp = photos / "e.webp"
    Image.open(write_photo(tmp_path / "src2.jpg", seed=7)).save(webp, "WEBP", quality=90)
    tif = photos / "f.tif"
    Image.open(write_photo(tmp_path / "src3.jpg", seed=8)).save(tif, compression="tiff_lzw")
    library.index([photos], faces=False)
    library.rate([jpg], 5)
    library.dupes_keep_both([jpg, png])
    with Catalog.open(library.paths.catalog) as cat:
        ids = {p: cat.photo_by_path(str(p))["id"] for p in (jpg, png, turned, wandered, webp, tif)}
        vids, vecs = cat.vectors("fakeclip", sorted(ids.values()))
        before = {int(i): v for i, v in zip(vids, vecs)}
        with cat.transaction():
            cat.con.execute("INSERT INTO tag_decisions (photo_id, tag, state, decided_at) VALUES (?, 'Beach', 'accepted', now())", [ids[jpg]])

    for path in (jpg, png, wandered, webp, tif):
        st = path.stat()
        with pyexiv2.Image(str(path)) as im:
            im.modify_xmp({"Xmp.dc.subject": ["from another app"], "Xmp.dc.description": {"lang=\"x-default\"": "edited"}})
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))   # some apps keep the mtime
    with pyexiv2.Image(str(turned)) as im:
        im.modify_exif({"Exif.Image.Orientation": "6"})       # turned: another picture now
    (photos / "sorted").mkdir()
    moved_to = photos / "sorted" / "d-renamed.jpg"
    wandered.rename(moved_to)                                 # edited, then moved by the other app

    r = library.index([photos], faces=False)
    assert (r.photos, r.refreshed, r.moved, r.removed) == (1, 4, 1, 0), r.as_dict()   # the turned one replaced
    with Catalog.open(library.paths.catalog, read_only=True) as cat:
        assert cat.photo_by_path(str(moved_to))["id"] == ids[wandered]
        assert "from another app" in cat.photo_by_path(str(moved_to))["keywords"]
        assert cat.photo_by_path(str(wandered)) is None
        for p in (jpg, png, webp, tif):
            row = cat.photo_by_path(str(p))
            assert row["id"] == ids[p]
            assert "from another app" in row["keywords"]
            assert row["content_hash"] != "" and row["size"] == p.stat().st_size
        assert cat.photo_by_path(str(turned))["id"] != ids[turned]
        vids, vecs = cat.vectors("fakeclip", [ids[jpg], ids[png]])
        assert len(vids) == 2 and all(np.array_equal(v, before[int(i)]) for i, v in zip(vids, vecs))
        assert cat.ratings() == {ids[jpg]: 5}
        assert cat.decisions("Beach") == {ids[jpg]: "accepted"}
        assert (min(ids[jpg], ids[png]), max(ids[jpg], ids[png])) in cat.not_duplicate_pairs()
    # The search shows the edited file under its old id.
    hits = {h.path: h.id for h in library.search_text("a photo", limit=10)}
    assert hits[str(jpg)] == ids[jpg] and hits[str(png)] == ids[png]


@needs_shared
def test_outside_edits_of_real_camera_files_keep_their_rows(library, tmp_path):
    """The same on real files from many cameras and writers (../shared/data/metadata): after
    another app writes a keyword into each, every one whose format has an image identity keeps
    its id and shows the keyword; the others are re-added, never duplicated."""
    import shutil

    import pyexiv2

    photos = tmp_path / "cameras"
    photos.mkdir()
    for p in sorted((SHARED / "metadata").iterdir()):
        if p.suffix.lower() in (".jpg", ".png", ".webp", ".tif"):
            shutil.copy(p, photos / p.name)
    library.index([photos], faces=False)
    with Catalog.open(library.paths.catalog, read_only=True) as cat:
        before = {r[0]: (r[1], r[2]) for r in cat.con.execute("SELECT path, id, content_id FROM photos").fetchall()}
    edited = []
    for path in before:
        st = os.stat(path)
        try:
            with pyexiv2.Image(path) as im:
                im.modify_xmp({"Xmp.dc.subject": ["edited elsewhere"]})
        except Exception:  # noqa: BLE001 - a file exiv2 will not write is simply not part of the check
            continue
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        edited.append(path)
    assert len(edited) >= 30, len(edited)
    library.index([photos], faces=False)
    with Catalog.open(library.paths.catalog, read_only=True) as cat:
        after = {r[0]: (r[1], r[2]) for r in cat.con.execute("SELECT path, id, keywords FROM photos").fetchall()}
    assert after.keys() == before.keys()                       # one row per file, none lost or doubled
    with_identity = [p for p in edited if before[p][1] is not None]
    assert len(with_identity) >= 25, len(with_identity)
    for p in with_identity:
        assert after[p][0] == before[p][0], p
        assert "edited elsewhere" in after[p][1], p


@needs_shared
@pytest.mark.skipif(shutil.which("exiftool") is None, reason="needs exiftool (libimage-exiftool-perl)")
def test_outside_edits_of_real_heic_and_raw_files_keep_their_rows(library, tmp_path):
    """HEIC (image items) and RAW files in TIFF containers keep their id when exiftool, as
    another app, writes XMP, EXIF and GPS into them; a re-encoded HEIC is a new photo."""
    import subprocess

    photos = tmp_path / "cameras"
    photos.mkdir()
    for p in sorted(SHARED.glob("*/*")):
        if p.suffix.lower() in (".heic", ".nef", ".cr2", ".dng", ".iiq") and p.stat().st_size > 1000:
            shutil.copy(p, photos / f"{p.parent.name}-{p.name}")
    library.index([photos], faces=False)
    with Catalog.open(library.paths.catalog, read_only=True) as cat:
        before = dict(cat.con.execute("SELECT path, id FROM photos WHERE content_id IS NOT NULL").fetchall())
        rows = cat.con.execute("SELECT count(*) FROM photos").fetchone()[0]
    assert sum(p.endswith(".heic") for p in before) >= 4 and sum(not p.endswith(".heic") for p in before) >= 1
    bytes_before = {p: Path(p).read_bytes() for p in before}
    r = subprocess.run(["exiftool", "-q", "-q", "-P", "-overwrite_original", "-XMP-dc:Subject+=edited elsewhere",
                        "-XMP:Rating=4", "-GPSLatitude=48.1", "-GPSLatitudeRef=N", *before], capture_output=True)
    edited = [p for p in before if Path(p).read_bytes() != bytes_before[p]]
    assert sum(p.endswith(".heic") for p in edited) >= 4, (edited, r.stderr)
    library.index([photos], faces=False)
    with Catalog.open(library.paths.catalog, read_only=True) as cat:
        after = dict(cat.con.execute("SELECT path, id FROM photos").fetchall())
    assert len(after) == rows                                  # none lost or doubled
    for p in edited:
        assert after[p] == before[p], p
    from pillow_heif import register_heif_opener

    register_heif_opener()
    heic = next(p for p in edited if p.endswith(".heic"))
    with Image.open(heic) as im:
        im.convert("RGB").save(heic, format="HEIF", quality=50)  # new pixels: a new photo at this path
    library.index([photos], faces=False)
    with Catalog.open(library.paths.catalog, read_only=True) as cat:
        assert cat.photo_by_path(heic)["id"] != before[heic]
