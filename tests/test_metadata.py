"""Metadata round trips with other apps (issue 17): files prepared with exiftool the way digiKam,
Lightroom, Immich, Windows and Apple Photos write them (tests/appfiles.py) are read by photosearch
(keywords, hierarchy, rating, title) and searchable; after `sync --apply` exiftool shows each app's
own fields intact and photosearch's added in every field other apps read; `undo` puts every file
back byte for byte. Also: RAW files never rewritten, existing sidecars kept as the target, IPTC
in UTF-8 with a current digest, Bags, files with damaged EXIF."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from appfiles import APPS, fields_intact, read
from conftest import SHARED, needs_shared, run_cli, write_photo

requires_exiftool = pytest.mark.skipif(shutil.which("exiftool") is None,
                                       reason="exiftool (Debian libimage-exiftool-perl) is not installed")
pytestmark = [requires_exiftool]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tree(folder: Path) -> dict[str, str]:
    return {p.name: _sha(p) for p in sorted(folder.iterdir()) if p.is_file()}


def _list(value: object) -> list:
    return [] if value is None else np.atleast_1d(value).tolist()


def _json(r: subprocess.CompletedProcess[str]) -> dict:
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def _names(r: subprocess.CompletedProcess[str]) -> set[str]:
    return {Path(x["path"]).name for x in _json(r)["results"]}


@needs_shared
@pytest.mark.parametrize("app", sorted(APPS))
def test_other_apps_metadata_is_read_searchable_kept_and_undone(app, library, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    photo = photos / "IMG_0001.jpg"
    shutil.copy(SHARED / "photos" / "caer_puppy.jpg", photo)
    write_photo(photos / "other.jpg", seed=3, size=(160, 120))   # a photo with no keywords at all
    made = APPS[app](photo)
    root = library.paths.root
    library.index([photos], faces=False)

    # Read: keywords from every field, the hierarchy, the rating (Windows percents mapped), the title.
    row = library.photos_by_ids([1, 2, 3])
    (mine,) = [r for r in row.values() if r["path"] == str(photo)]
    assert made.keywords <= set(mine["keywords"]), (mine["keywords"], made.keywords)
    assert made.hierarchy <= set(mine["keyword_paths"]), (mine["keyword_paths"], made.hierarchy)
    assert (mine["rating"] or 0) == made.rating
    if made.title:
        assert mine["title"] == made.title

    # Searchable: each keyword (not a person's name) is a tag; --meta finds title, description,
    # keywords, file name; --rating filters; no query needed.
    for kw in sorted(made.keywords - made.people):
        assert _names(run_cli("--tag", kw, "--json", library=root)) == {photo.name}, kw
    for text in filter(None, [made.title, made.description, *sorted(made.keywords), "img_0001"]):
        assert _names(run_cli("--meta", text.upper(), "--json", library=root)) == {photo.name}, text
    if made.rating:
        assert _names(run_cli("--rating", str(made.rating), "--json", library=root)) == {photo.name}
        assert _names(run_cli("--rating", "0", "--json", library=root)) == {photo.name, "other.jpg"}
    export = run_cli("export", "--csv", library=root)
    assert export.returncode == 0, export.stderr
    (line,) = [r for r in csv.DictReader(export.stdout.splitlines()) if Path(r["path"]).name == photo.name]
    assert made.keywords - made.people <= set(line["tags"].split(";")), line

    # Something of photosearch's own to write: a tag, and a rating set here (the app's own, if it
    # rated the photo: a new rating would rightly change the app's rating fields).
    stars = made.rating or 5
    run_cli("tag", "add", "Keeper Pick", str(photo), library=root)
    run_cli("rate", str(stars), str(photo), library=root)
    before = _tree(photos)
    target = made.metadata_file
    r = run_cli("sync", "--accepted-only", "--apply", "--json", library=root)
    doc = _json(r)
    (item,) = [f for f in doc["files"] if Path(f["path"]).name == photo.name]
    assert item["status"] == "written" and Path(item["target"]) == target, item
    after = read(target)
    assert fields_intact(made, after) == []                      # the app's own fields, intact
    tags = {p.split("/")[-1] for p in _list(after.get("XMP-digiKam:TagsList"))}
    subject = set(_list(after.get("XMP-dc:Subject")))
    for kw in made.keywords | {"Keeper Pick"}:                        # the union, in every keyword field
        assert kw in subject and kw in tags, (kw, subject, tags)
        assert any(p.split("|")[-1] == kw for p in _list(after.get("XMP-lr:HierarchicalSubject"))), kw
        assert any(p.split("/")[-1] == kw for p in _list(after.get("XMP-microsoft:LastKeywordXMP"))), kw
    assert after["XMP-xmp:Rating"] == stars and after["XMP-microsoft:RatingPercent"] == {3: 50, 4: 75, 5: 99}[stars]
    if target == photo:                                           # in-file JPEG: IPTC too, in UTF-8
        assert {*made.keywords, "Keeper Pick"} <= set(_list(after.get("IPTC:Keywords")))
    else:
        assert _sha(photo) == before[photo.name]                  # a sidecar app: the photo untouched
    assert doc["undo_backups"]["files"] >= 1

    # Undo: every file byte for byte, nothing left over.
    undo = _json(run_cli("undo", "--json", library=root))
    assert undo["problems"] == [] and undo["action"] == "sync"
    assert _tree(photos) == before
    assert not list((root / "journal" / "backups").glob("*/*"))


@needs_shared
def test_raw_files_are_never_rewritten_and_sidecars_take_either_name(library, tmp_path):
    from photosearch.media.xmp import file_format

    photos = tmp_path / "photos"
    photos.mkdir()
    raws = ["Nikon.nef", "CanonRaw.cr2", "PhaseOne.iiq", "DNG.dng", "Panasonic.rw2", "FujiFilm.raf", "Minolta.mrw"]
    for name in raws:
        shutil.copy(SHARED / "metadata" / name, photos / name)
    # Pillow calls most of these "TIFF"; their real format says RAW (or DNG).
    assert {n: file_format(photos / n) for n in raws} == {n: "DNG" if n.endswith(".dng") else "RAW" for n in raws}
    library.index([photos], faces=False)
    root = library.paths.root
    run_cli("tag", "add", "Keeper Pick", *[str(photos / n) for n in raws], library=root)
    before = _tree(photos)
    r = run_cli("sync", "--accepted-only", "--apply", "--sidecar-name", "base", "--json", library=root)
    files = {Path(f["path"]).name: f for f in _json(r)["files"]}
    assert files, r.stdout
    for name, f in files.items():
        assert f["status"] == "written" and f["sidecar"], f
        assert _sha(photos / name) == before[name]                           # the RAW itself: untouched
        assert Path(f["target"]) == photos / (Path(name).stem + ".xmp")      # Lightroom's name.xmp
        assert "Keeper Pick" in _list(read(Path(f["target"])).get("XMP-dc:Subject"))
    # Undo removes the sidecars it made; then the other naming style.
    assert _json(run_cli("undo", "--json", library=root))["problems"] == []
    assert _tree(photos) == before
    r = run_cli("sync", "--accepted-only", "--apply", "--json", library=root)
    for name, f in {Path(f["path"]).name: f for f in _json(r)["files"]}.items():
        assert Path(f["target"]) == photos / (name + ".xmp")                  # digiKam's name.ext.xmp


@needs_shared
def test_an_existing_sidecar_stays_the_target_and_a_fresh_index_agrees(library, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    jpg = photos / "a.jpg"
    shutil.copy(SHARED / "photos" / "caer_guitar.jpg", jpg)
    subprocess.run(["exiftool", "-q", "-o", str(photos / "a.xmp"), "-XMP-xmp:Rating=1", "-XMP-dc:Subject=Music",
                    str(jpg)], check=True)
    library.index([photos], faces=False)
    root = library.paths.root
    run_cli("rate", "4", str(jpg), library=root)
    before = _sha(jpg)
    f = _json(run_cli("sync", "--apply", "--json", library=root))["files"][0]
    assert f["sidecar"] and Path(f["target"]) == photos / "a.xmp" and _sha(jpg) == before
    assert read(photos / "a.xmp")["XMP-xmp:Rating"] == 4
    # A fresh library reads the photo and its sidecar as one: rating 4 (not the sidecar's old 1).
    from photosearch.api import Library

    fresh = Library(tmp_path / "fresh")
    shutil.copytree(root / "models", fresh.paths.root / "models")
    fresh.index([photos], faces=False)
    (row,) = fresh.photos_by_ids([1]).values()
    assert row["rating"] == 4 and "Music" in row["keywords"]


@needs_shared
def test_iptc_is_utf8_with_a_current_digest_and_keyword_lists_are_bags(tmp_path):
    from photosearch.media.xmp import MetadataUpdate, write

    plain = tmp_path / "plain.jpg"                     # no IPTC before
    shutil.copy(SHARED / "photos" / "caer_snow.jpg", plain)
    iptc = tmp_path / "iptc.jpg"                       # IPTC and a Photoshop IPTCDigest before
    shutil.copy(SHARED / "metadata" / "IPTC.jpg", iptc)
    old_iptc = set(_list(read(iptc).get("IPTC:Keywords")))
    assert old_iptc and read(iptc).get("Photoshop:IPTCDigest")
    for p in (plain, iptc):
        write(p, MetadataUpdate(keywords=["Café", "Zoë"], persons=["Zoë"], hierarchical=["People|Zoë"],
                                tags_list=["People/Zoë"]))
        meta = read(p)
        assert {"Café", "Zoë"} <= set(_list(meta["IPTC:Keywords"])), meta["IPTC:Keywords"]
        assert meta["IPTC:CodedCharacterSet"] == "\x1b%G"
        assert "ExifTool:Warning" not in meta or "IPTCDigest" not in meta["ExifTool:Warning"]
        raw = subprocess.run(["exiftool", "-b", "-XMP", str(p)], capture_output=True, check=True).stdout.decode()
        for prop in ("dc:subject", "lr:hierarchicalSubject", "PersonInImage", "MicrosoftPhoto:LastKeywordXMP"):
            start = raw.index(prop)
            assert raw[start:start + 80].split("<rdf:", 1)[1].startswith("Bag"), prop
    digest = read(iptc)
    assert digest["Photoshop:IPTCDigest"] == digest["File:CurrentIPTCDigest"]
    # Keywords that were only in IPTC are now in XMP too.
    assert old_iptc <= set(_list(read(iptc)["XMP-dc:Subject"]))


@needs_shared
def test_files_with_damaged_exif_are_written_or_given_a_sidecar_with_the_reason(tmp_path):
    from photosearch.media.xmp import MetadataUpdate, write

    rows = list(csv.DictReader(open(SHARED / "broken" / "expected.csv", encoding="utf-8")))
    jpegs = [r["file"] for r in rows if r["kind"] == "ok" and r["file"].lower().endswith((".jpg", ".mpo"))]
    assert len(jpegs) >= 8
    for name in jpegs:
        p = tmp_path / name
        shutil.copy(SHARED / "broken" / name, p)
        with Image.open(p) as im:
            pixels = im.convert("RGB").tobytes()
        result = write(p, MetadataUpdate(keywords=["Café"], rating=3))
        assert result.changed, name
        if result.sidecar:
            assert result.note and "\n" not in result.note, (name, result.note)
        meta = read(Path(result.path))
        assert "Café" in _list(meta.get("XMP-dc:Subject")) and meta["XMP-xmp:Rating"] == 3, name
        with Image.open(p) as im:
            assert im.convert("RGB").tobytes() == pixels, name


def test_windows_rating_percents_and_xp_keywords_are_read(library, tmp_path):
    photos = tmp_path / "photos"
    cases = {"p25.jpg": ("-XMP-microsoft:RatingPercent=25", 2), "p75.jpg": ("-IFD0:RatingPercent=75", 4),
             "p1.jpg": ("-XMP-microsoft:RatingPercent=1", 1), "p99.jpg": ("-XMP-microsoft:RatingPercent=99", 5),
             "stars.jpg": ("-XMP-xmp:Rating=3", 3)}
    for i, (name, (arg, _)) in enumerate(cases.items()):
        p = write_photo(photos / name, seed=i, size=(120, 90))
        subprocess.run(["exiftool", "-q", "-overwrite_original", arg, "-IFD0:XPKeywords=Zoë;Beach party", str(p)],
                       check=True)
    library.index([photos], faces=False)
    rows = {Path(r["path"]).name: r for r in library.photos_by_ids(list(range(1, 10))).values()}
    assert {n: rows[n]["rating"] for n in cases} == {n: stars for n, (_, stars) in cases.items()}
    assert all({"Zoë", "Beach party"} <= set(r["keywords"]) for r in rows.values())
    assert _names(run_cli("--tag", "beach party", "--json", library=library.paths.root)) == set(cases)


def test_sync_and_search_options_fail_with_one_line(library, tmp_path):
    write_photo(tmp_path / "p" / "a.jpg", seed=1)
    library.index([tmp_path / "p"], faces=False)
    root = library.paths.root
    for args, words in [(("sync", "--sidecar-name", "nope"), "--sidecar-name"), (("--rating", "9"), "--rating"),
                        (("--meta", "  "), "--meta"), (("undo", "--apply"), "--purge"),
                        (("undo", "--purge", "-1"), "--older-than")]:
        r = run_cli(*args, library=root)
        assert r.returncode != 0 and words in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_undo_keeps_a_file_someone_changed_since_and_purge_frees_the_originals(library, tmp_path):
    photos = tmp_path / "photos"
    a = write_photo(photos / "a.jpg", seed=1, size=(160, 120))
    b = write_photo(photos / "b.jpg", seed=2, size=(160, 120))
    library.index([photos], faces=False)
    root = library.paths.root
    run_cli("rate", "3", str(a), str(b), library=root)
    originals = _tree(photos)
    assert _json(run_cli("sync", "--apply", "--json", library=root))["undo_backups"]["files"] == 2
    # Another app edits b after photosearch wrote it: undo must not throw that edit away.
    subprocess.run(["exiftool", "-q", "-overwrite_original", "-XMP-dc:Title=edited elsewhere", str(b)], check=True)
    edited = _sha(b)
    r = run_cli("undo", "--json", library=root)
    assert r.returncode == 8
    doc = json.loads(r.stdout)
    assert str(a) in doc["restored"] and _sha(a) == originals["a.jpg"]
    assert any("changed since" in p for p in doc["problems"]) and _sha(b) == edited
    # The original of b is still kept; purge says what it frees, and frees it only with --apply.
    dry = _json(run_cli("undo", "--purge", "0", "--json", library=root))
    assert dry["files"] == 1 and dry["bytes"] > 0 and not dry["applied"]
    assert _json(run_cli("undo", "--purge", "0", "--apply", "--json", library=root))["files"] == 1
    assert not list((root / "journal" / "backups").rglob("*.jpg"))


@needs_shared
def test_undo_reverses_a_move_then_a_write(library, tmp_path):
    """organize moves a photo, sync rewrites it at its new place; two undos put it back where it
    was, byte for byte."""
    src = tmp_path / "inbox"
    src.mkdir()
    shutil.copy(SHARED / "metadata" / "Canon.jpg", src / "Canon.jpg")
    original = _sha(src / "Canon.jpg")
    library.index([src], faces=False)
    root = library.paths.root
    dest = tmp_path / "sorted"
    r = run_cli("organize", str(src), "--into", str(dest), "--apply", "--json", library=root)
    assert r.returncode == 0, r.stderr
    (moved,) = [p for p in dest.rglob("Canon.jpg")]
    run_cli("rate", "5", str(moved), library=root)
    assert _json(run_cli("sync", "--apply", "--json", library=root))["files"][0]["status"] == "written"
    assert _sha(moved) != original
    assert _json(run_cli("undo", "--json", library=root))["action"] == "sync"
    assert _sha(moved) == original
    _json(run_cli("undo", "--json", library=root))
    assert _sha(src / "Canon.jpg") == original and not moved.exists()


def test_file_keywords_follow_the_file_and_the_users_decision_wins(library, tmp_path):
    photos = tmp_path / "photos"
    a = write_photo(photos / "a.jpg", seed=1, size=(160, 120))
    b = write_photo(photos / "b.jpg", seed=2, size=(160, 120))
    for p in (a, b):
        subprocess.run(["exiftool", "-q", "-overwrite_original", "-XMP-dc:Subject=Lighthouse",
                        "-XMP-lr:HierarchicalSubject=Places|Coast|Lighthouse", str(p)], check=True)
    library.index([photos], faces=False)
    root = library.paths.root
    assert _names(run_cli("--tag", "lighthouse", "--json", library=root)) == {"a.jpg", "b.jpg"}
    assert _names(run_cli("--tag", "Coast", "--json", library=root)) == {"a.jpg", "b.jpg"}   # a parent too
    tags = {t["name"]: t for t in _json(run_cli("tags", "--json", library=root))["tags"]}
    assert tags["Lighthouse"]["source"] == "file" and tags["Lighthouse"]["parent"] == "Coast"
    assert tags["Coast"]["parent"] == "Places"
    # The user says b is not a lighthouse: that holds through re-indexing.
    run_cli("tag", "remove", "Lighthouse", str(b), library=root)
    library.index([photos], faces=False)
    assert _names(run_cli("--tag", "Lighthouse", "--json", library=root)) == {"a.jpg"}
    # Another app takes the keywords out of a: its file tags go at the next index run.
    subprocess.run(["exiftool", "-q", "-overwrite_original", "-XMP-dc:Subject=", "-XMP-lr:HierarchicalSubject=",
                    str(a)], check=True)
    library.index([photos], faces=False)
    assert _names(run_cli("--tag", "Lighthouse", "--json", library=root)) == set()
    assert _names(run_cli("--tag", "Coast", "--json", library=root)) == {"b.jpg"}


@needs_shared
def test_dng_in_file_on_request_never_risks_the_raw_data(library, tmp_path):
    """--dng-in-file writes into a DNG only when its raw data reads back the same; this sample's
    raw data is cut short (rawpy reads it differently each time), so it gets a sidecar and says why."""
    photos = tmp_path / "photos"
    photos.mkdir()
    dng = photos / "DNG.dng"
    shutil.copy(SHARED / "metadata" / "DNG.dng", dng)
    library.index([photos], faces=False)
    root = library.paths.root
    run_cli("rate", "2", str(dng), library=root)
    before = _sha(dng)
    (f,) = _json(run_cli("sync", "--dng-in-file", "--apply", "--json", library=root))["files"]
    assert f["status"] == "written" and f["sidecar"] and "raw image data is incomplete" in f["note"], f
    assert _sha(dng) == before and read(Path(f["target"]))["XMP-xmp:Rating"] == 2
    assert _json(run_cli("undo", "--json", library=root))["problems"] == []
    assert sorted(p.name for p in photos.iterdir()) == ["DNG.dng"]


def _dng(path: Path, *, tiles_short: int = 0) -> bytes:
    """A small DNG made by hand (IFD0: a 16x16 16-bit CFA raw image in four 8x8 tiles, and a
    DNGVersion), with ``tiles_short`` tiles left out; returns the raw data written."""
    import struct

    rng = np.random.default_rng(7)
    raw_data = b"".join(rng.integers(0, 4096, (8, 8), dtype="<u2").tobytes() for _ in range(4 - tiles_short))
    n = 4 - tiles_short
    entries = [(254, 4, 1, 0), (256, 3, 1, 16), (257, 3, 1, 16), (258, 3, 1, 16), (259, 3, 1, 1),
               (262, 3, 1, 32803), (277, 3, 1, 1), (284, 3, 1, 1), (322, 3, 1, 8), (323, 3, 1, 8),
               (324, 4, n, None), (325, 4, n, None), (33421, 3, 2, (2, 2)), (33422, 1, 4, (0, 1, 1, 2)),
               (50706, 1, 4, (1, 4, 0, 0))]
    lists_at = 8 + 2 + 12 * len(entries) + 4           # the tile offsets, then the tile sizes
    offsets = [lists_at + 8 * n + 128 * k for k in range(n)]
    ifd = struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        if tag in (324, 325):
            values = offsets if tag == 324 else [128] * n
            raw = struct.pack("<I", lists_at + (0 if tag == 324 else 4 * n)) if n > 1 else struct.pack("<I", values[0])
        elif kind == 1:
            raw = bytes(value).ljust(4, b"\0")
        elif kind == 3:
            values = value if isinstance(value, tuple) else (value,)
            raw = struct.pack(f"<{len(values)}H", *values).ljust(4, b"\0")
        else:
            raw = struct.pack("<I", value)
        ifd += struct.pack("<HHI", tag, kind, count) + raw
    lists = struct.pack(f"<{n}I", *offsets) + struct.pack(f"<{n}I", *[128] * n)
    path.write_bytes(b"II*\0" + struct.pack("<I", 8) + ifd + b"\0" * 4 + lists + raw_data)
    return raw_data


def test_dng_in_file_is_written_when_its_raw_data_reads_back_the_same(tmp_path):
    """A whole DNG takes the metadata in-file on request: its raw data (every tile, and the tags
    that say how to read them) is byte for byte the same after the write; one with tiles missing
    gets a sidecar, and says why, every time (no decoder's guess at what is missing)."""
    from photosearch.media.identity import raw_data_id
    from photosearch.media.xmp import MetadataUpdate, file_format, write

    dng = tmp_path / "whole.dng"
    raw_data = _dng(dng)
    assert file_format(dng) == "DNG"
    before = raw_data_id(dng.read_bytes())
    assert before is not None
    result = write(dng, MetadataUpdate(keywords=["Harbour"], rating=3), dng_in_file=True)
    assert not result.sidecar and result.path == str(dng) and not (tmp_path / "whole.dng.xmp").exists()
    assert raw_data_id(dng.read_bytes()) == before and raw_data in dng.read_bytes()
    fields = read(dng)
    assert fields["XMP-xmp:Rating"] == 3 and "Harbour" in _list(fields["XMP-dc:Subject"])

    for name in ("short.dng", "short2.dng"):
        short = tmp_path / name
        _dng(short, tiles_short=1)
        assert raw_data_id(short.read_bytes()) is None
        sha = _sha(short)
        result = write(short, MetadataUpdate(keywords=["Harbour"]), dng_in_file=True)
        assert result.sidecar and "raw image data is incomplete" in result.note and _sha(short) == sha
        assert "Harbour" in _list(read(Path(result.path))["XMP-dc:Subject"])
    # Without the request, a DNG always gets a sidecar.
    plain = tmp_path / "plain.dng"
    _dng(plain)
    sha = _sha(plain)
    assert write(plain, MetadataUpdate(keywords=["Harbour"])).sidecar and _sha(plain) == sha


@needs_shared
def test_a_write_that_would_change_an_unrelated_tag_never_lands(tmp_path):
    """The writer checks every value it did not mean to change: EXIF (where data sits aside) and
    every other XMP value. exiv2 drops a JPEG's stray PhotometricInterpretation and mangles an
    XMP ExifVersion ("0220" becomes "0.2."): such a photo gets a sidecar, and such a sidecar is
    left as it is, each with the reason."""
    from photosearch.media.xmp import MetadataUpdate, WriteError, write

    jpg = tmp_path / "broken_exif_dpi.jpg"
    shutil.copy(SHARED / "broken" / "broken_exif_dpi.jpg", jpg)
    before = _sha(jpg)
    result = write(jpg, MetadataUpdate(keywords=["Café"]))
    assert result.sidecar and "PhotometricInterpretation" in result.note and _sha(jpg) == before
    assert "Café" in _list(read(Path(result.path))["XMP-dc:Subject"])

    photo = tmp_path / "p.jpg"
    shutil.copy(SHARED / "photos" / "caer_puppy.jpg", photo)
    side = tmp_path / "p.jpg.xmp"
    shutil.copy(SHARED / "metadata" / "XMP.xmp", side)
    side_before = _sha(side)
    with pytest.raises(WriteError, match="ExifVersion"):
        write(photo, MetadataUpdate(keywords=["Café"]))
    assert _sha(side) == side_before and sorted(p.name for p in tmp_path.iterdir()) == [
        "broken_exif_dpi.jpg", "broken_exif_dpi.jpg.xmp", "p.jpg", "p.jpg.xmp"]


def test_an_index_run_that_changes_nothing_does_not_reread_file_keywords(library, tmp_path, monkeypatch):
    from photosearch.ingest import finish

    calls = []
    real = finish.refresh_file_tags
    monkeypatch.setattr(finish, "refresh_file_tags", lambda cat: (calls.append(1), real(cat))[1])
    p = write_photo(tmp_path / "photos" / "a.jpg", seed=1, size=(160, 120))
    subprocess.run(["exiftool", "-q", "-overwrite_original", "-XMP-dc:Subject=Harbour", str(p)], check=True)
    library.index([tmp_path / "photos"], faces=False)
    assert calls == [1]
    library.index([tmp_path / "photos"], faces=False)            # nothing changed
    assert calls == [1]
    subprocess.run(["exiftool", "-q", "-overwrite_original", "-XMP-dc:Subject+=Boats", str(p)], check=True)
    library.index([tmp_path / "photos"], faces=False)            # another app added a keyword
    assert calls == [1, 1]
    assert _names(run_cli("--tag", "boats", "--json", library=library.paths.root)) == {"a.jpg"}


def test_sync_applies_a_selection_and_names_each_failure(library, tmp_path):
    photos = tmp_path / "photos"
    a = write_photo(photos / "a.jpg", seed=1, size=(160, 120))
    b = write_photo(photos / "b.jpg", seed=2, size=(160, 120))
    library.index([photos], faces=False)
    root = library.paths.root
    run_cli("rate", "4", str(a), str(b), library=root)
    before_b = _sha(b)
    doc = _json(run_cli("sync", str(a), "--apply", "--json", library=root))
    assert [(Path(f["path"]).name, f["status"]) for f in doc["files"]] == [("a.jpg", "written")]
    assert _sha(b) == before_b
    r = run_cli("sync", str(b), str(tmp_path / "gone.jpg"), "--apply", "--json", library=root)
    assert r.returncode == 7
    got = {Path(f["path"]).name: f for f in json.loads(r.stdout)["files"]}
    assert got["b.jpg"]["status"] == "written" and got["gone.jpg"]["status"] == "failed"
    assert got["gone.jpg"]["error"] and "\n" not in got["gone.jpg"]["error"]
