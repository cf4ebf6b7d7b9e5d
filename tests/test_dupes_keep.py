"""Resolving duplicates (issue 16): the right keeper (real resolution, then the original over a
re-encode by JPEG quality, then camera metadata, then the oldest; the rule order from the
config), nothing lost when resolving (keywords, people, rating, description, date and place
merged into the keeper, undone byte for byte), the same image with other metadata as an exact
duplicate, and one copy per event."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image, ImageOps

from conftest import SHARED, needs_shared, run_cli

requires_exiftool = pytest.mark.skipif(shutil.which("exiftool") is None,
                                       reason="exiftool (Debian libimage-exiftool-perl) is not installed")


def _tree(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _exif(path: Path, *args: str) -> None:
    subprocess.run(["exiftool", "-q", "-overwrite_original", *args, str(path)], check=True)


def _read(path: Path) -> dict:
    return json.loads(subprocess.run(["exiftool", "-j", "-n", "-G1", str(path)], capture_output=True, text=True,
                                     check=True).stdout)[0]


def _groups(root: Path, *args: str) -> list[dict]:
    r = run_cli("dupes", "--method", "hash", "--json", *args, library=root)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["groups"]


@needs_shared
def test_the_original_beats_a_reencode_whose_borders_trim_a_pixel_off(library, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    im = Image.open(SHARED / "photos" / "caer_sunrise.jpg").convert("RGB")
    im.save(photos / "original.jpg", quality=95)
    # A quality-60 re-encode inside a thin border: trimming leaves a picture a pixel or two
    # larger or smaller than the original's, which must not decide.
    ImageOps.expand(im, border=1, fill=(0, 0, 0)).save(photos / "reencode.jpg", quality=60)
    im.resize((im.width // 2, im.height // 2)).save(photos / "half.jpg", quality=98)
    library.index([photos], faces=False)
    (g,) = _groups(library.paths.root)
    why = {Path(m["path"]).name: m["why"] for m in g["members"]}
    assert Path(g["keeper"]).name == "original.jpg", why
    assert "the original" in why["original.jpg"] and "JPEG quality 95 vs JPEG quality 60" in why["original.jpg"], why
    assert "re-encoded" in why["reencode.jpg"] and "quality 60" in why["reencode.jpg"]
    assert "lower resolution" in why["half.jpg"]

    # The rule order is the user's: oldest first picks the re-encode when it is the older file.
    _exif(photos / "reencode.jpg", "-DateTimeOriginal=2001:01:01 10:00:00")
    _exif(photos / "original.jpg", "-DateTimeOriginal=2020:01:01 10:00:00")
    library.index([photos], faces=False)
    (library.paths.root / "config.toml").write_text('[dupes]\nkeeper = ["oldest", "resolution"]\n')
    (g,) = _groups(library.paths.root)
    assert Path(g["keeper"]).name == "reencode.jpg" and "oldest" in g["members"][0]["why"]
    (library.paths.root / "config.toml").write_text('[dupes]\nkeeper = ["newest"]\n')
    r = run_cli("dupes", "--method", "hash", library=library.paths.root)
    assert r.returncode == 2 and "unknown rule 'newest'" in r.stderr and len(r.stderr.strip().splitlines()) == 1


@requires_exiftool
@needs_shared
def test_resolving_merges_date_place_keywords_and_rating_into_the_keeper_and_undo_restores(library, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    im = Image.open(SHARED / "photos" / "caer_tent.jpg").convert("RGB")
    im.save(photos / "big.jpg", quality=95)                          # the keeper: no date, no place
    im.resize((im.width // 2, im.height // 2)).save(photos / "small.jpg", quality=90)
    _exif(photos / "small.jpg", "-DateTimeOriginal=2019:07:14 16:20:00", "-GPSLatitude=48.8584",
          "-GPSLatitudeRef=N", "-GPSLongitude=2.2945", "-GPSLongitudeRef=E", "-XMP-dc:Subject=Camping",
          "-XMP-xmp:Rating=4", "-XMP-dc:Description=Our tent by the lake")
    library.index([photos], faces=False)
    root = library.paths.root
    before = _tree(photos)
    quarantine = tmp_path / "quarantine"

    r = run_cli("dupes", "--method", "hash", "--move-to", str(quarantine), library=root)      # the dry run
    assert r.returncode == 0, r.stderr
    assert "would merge into" in r.stdout and "date 2019-07-14T16:20:00" in r.stdout and "place 48.85840" in r.stdout
    assert "keywords Camping" in r.stdout and "rating 4" in r.stdout and _tree(photos) == before

    r = run_cli("dupes", "--method", "hash", "--move-to", str(quarantine), "--apply", "--json", library=root)
    assert r.returncode == 0, r.stderr
    assert not (photos / "small.jpg").exists()
    meta = _read(photos / "big.jpg")
    assert str(meta["XMP-exif:DateTimeOriginal"]).startswith("2019:07:14 16:20")
    assert abs(meta["XMP-exif:GPSLatitude"] - 48.8584) < 1e-4 and abs(meta["XMP-exif:GPSLongitude"] - 2.2945) < 1e-4
    assert "Camping" in str(meta["XMP-dc:Subject"]) and meta["XMP-xmp:Rating"] == 4
    # The catalog knows too: the keeper is found by date and place.
    (row,) = [r for r in library.photos_by_ids([1, 2]).values() if r["path"].endswith("big.jpg")]
    assert row["taken_at"].year == 2019 and abs(row["gps_lat"] - 48.8584) < 1e-3

    r = run_cli("undo", "--json", library=root)
    assert r.returncode == 0 and json.loads(r.stdout)["problems"] == []
    assert _tree(photos) == before
    (row,) = [r for r in library.photos_by_ids([1, 2]).values() if r["path"].endswith("big.jpg")]
    assert row["taken_at"] is None and row["gps_lat"] is None


@requires_exiftool
@needs_shared
def test_the_same_image_with_other_metadata_is_an_exact_duplicate(library, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(SHARED / "photos" / "caer_guitar.jpg", photos / "guitar.jpg")
    shutil.copy(SHARED / "photos" / "caer_guitar.jpg", photos / "guitar-synced.jpg")
    _exif(photos / "guitar-synced.jpg", "-XMP-dc:Subject=Music", "-XMP-xmp:Rating=5")   # what `sync` would do
    library.index([photos], faces=False)
    (g,) = _groups(library.paths.root, "--exact")
    assert g["kind"] == "exact" and {Path(m["path"]).name for m in g["members"]} == {"guitar.jpg", "guitar-synced.jpg"}
    # The copy with the metadata is kept; the other is the same image, other metadata.
    assert Path(g["keeper"]).name == "guitar-synced.jpg"
    assert "the same image as the keeper" in g["members"][1]["why"]


@needs_shared
def test_per_event_keeps_one_copy_per_event(library, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    im = Image.open(SHARED / "photos" / "caer_snow.jpg").convert("RGB")
    dates = {"ski-1.jpg": "2020:02:01 10:00:00", "ski-2.jpg": "2020:02:01 10:05:00",
             "again-1.jpg": "2023:12:24 18:00:00", "again-2.jpg": "2023:12:24 18:02:00"}
    for i, (name, when) in enumerate(dates.items()):
        exif = Image.Exif()
        exif[0x8769] = {36867: when}
        im.resize((im.width - 8 * i, im.height - 6 * i)).save(photos / name, quality=92, exif=exif)
    library.index([photos], faces=False)
    (g,) = _groups(library.paths.root)
    assert len(g["members"]) == 4
    groups = _groups(library.paths.root, "--per-event")
    assert sorted(sorted(Path(m["path"]).name for m in g["members"]) for g in groups) == [
        ["again-1.jpg", "again-2.jpg"], ["ski-1.jpg", "ski-2.jpg"]]


@requires_exiftool
@needs_shared
def test_watch_catches_resized_copies_batch_twins_and_synced_reimports_and_undo_restores(library, tmp_path):
    from conftest import write_photo

    lib_photos = tmp_path / "photos"
    lib_photos.mkdir()
    for name in ("caer_tent.jpg", "caer_guitar.jpg", "caer_puppy.jpg"):
        shutil.copy(SHARED / "photos" / name, lib_photos / name)
    small_lib = lib_photos / "small-sunrise.jpg"
    im = Image.open(SHARED / "photos" / "caer_sunrise.jpg").convert("RGB")
    im.resize((im.width // 2, im.height // 2)).save(small_lib, quality=85)
    library.index([lib_photos], faces=False)
    root = library.paths.root
    run_cli("rate", "4", str(lib_photos / "caer_guitar.jpg"), library=root)
    assert run_cli("sync", "--apply", library=root).returncode == 0     # its bytes change; the image does not

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    shutil.copy(SHARED / "photos" / "caer_guitar.jpg", inbox / "guitar-again.jpg")          # re-import of a synced photo
    tent = Image.open(SHARED / "photos" / "caer_tent.jpg").convert("RGB")
    tent.resize((tent.width * 3 // 4, tent.height * 3 // 4)).save(inbox / "tent-resized.jpg", quality=85)
    im.save(inbox / "sunrise-full.jpg", quality=95)             # better than the library's half-size copy
    write_photo(inbox / "new.jpg", seed=9, size=(320, 240))
    shutil.copy(inbox / "new.jpg", inbox / "new-twin.jpg")                                   # twins in one batch
    before = _tree(inbox)
    quarantine = tmp_path / "quarantine"
    r = run_cli("watch", str(inbox), "--once", "--settle", "0.5", "--no-faces", "--quarantine", str(quarantine),
                "--json", library=root)
    assert r.returncode == 0, r.stderr
    (batch,) = json.loads(r.stdout)["batches"]
    found = {Path(d["path"]).name: d for d in batch["duplicates"]}
    assert found["guitar-again.jpg"]["kind"] == "exact" and "other metadata" in found["guitar-again.jpg"]["why"]
    assert found["tent-resized.jpg"]["kind"] == "near" and found["tent-resized.jpg"]["quarantine"]
    assert found["sunrise-full.jpg"]["kind"] == "near" and not found["sunrise-full.jpg"]["quarantine"]
    assert "kept" in found["sunrise-full.jpg"]["why"]                                        # reported, not moved
    twin = found.get("new-twin.jpg") or found["new.jpg"]
    assert twin["kind"] == "batch" and twin["quarantine"]
    assert sorted(Path(p).name for p in batch["quarantined"]) == sorted(
        ["guitar-again.jpg", "tent-resized.jpg", Path(twin["path"]).name])
    assert (inbox / "sunrise-full.jpg").exists() and len([p for p in quarantine.rglob("*.jpg")]) == 3
    # Every move is journaled: undo brings the batch's duplicates back, byte for byte.
    assert json.loads(run_cli("undo", "--json", library=root).stdout)["problems"] == []
    assert _tree(inbox) == before


@needs_shared
def test_resolving_bad_groups_gives_one_line_each_and_moves_nothing_half_way(library, tmp_path):
    """A copy gone since indexing, a quarantine folder that cannot be written, and one on another
    file system (tmpfs): one line per problem, the rest done whole, undo still exact."""
    from conftest import unwritable

    photos = tmp_path / "photos"
    photos.mkdir()
    im = Image.open(SHARED / "photos" / "caer_fighter_fish.jpg").convert("RGB")
    im.save(photos / "fish.jpg", quality=95)
    for i, f in enumerate((0.8, 0.6, 0.5)):
        im.resize((int(im.width * f), int(im.height * f))).save(photos / f"fish-{i}.jpg", quality=85)
    library.index([photos], faces=False)
    root = library.paths.root
    (photos / "fish-1.jpg").unlink()                               # gone since indexing
    before = _tree(photos)

    locked = tmp_path / "locked"
    locked.mkdir()
    with unwritable(locked):
        r = run_cli("dupes", "--method", "hash", "--move-to", str(locked), "--apply", library=root)
        assert r.returncode != 0 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert _tree(photos) == before                             # nothing moved

    other_fs = Path("/dev/shm") / f"photosearch-test-{tmp_path.name}"
    shutil.rmtree(other_fs, ignore_errors=True)
    try:
        r = run_cli("dupes", "--method", "hash", "--move-to", str(other_fs), "--apply", "--json", library=root)
        assert r.returncode == 7, r.stderr                         # done, with one failure listed
        report = json.loads(r.stdout)["report"]
        (failure,) = report["failures"]
        assert failure["path"].endswith("fish-1.jpg") and "\n" not in failure["reason"]
        assert report["moved"] == 2
        moved = {p.name: p for p in other_fs.rglob("*.jpg")}
        assert set(moved) == {"fish-0.jpg", "fish-2.jpg"}          # copied across, verified, source removed
        assert not (photos / "fish-0.jpg").exists() and not (photos / "fish-2.jpg").exists()
        assert not list(other_fs.rglob("*.photosearch-tmp")) and not list(photos.rglob("*.photosearch-tmp"))
        assert json.loads(run_cli("undo", "--json", library=root).stdout)["problems"] == []
        assert _tree(photos) == before
    finally:
        shutil.rmtree(other_fs, ignore_errors=True)


@needs_shared
def test_a_choice_per_photo_moves_only_the_chosen_copies(library, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    im = Image.open(SHARED / "photos" / "caer_camera.jpg").convert("RGB")
    im.save(photos / "cam.jpg", quality=95)
    for i, f in enumerate((0.8, 0.6)):
        im.resize((int(im.width * f), int(im.height * f))).save(photos / f"cam-{i}.jpg", quality=85)
    library.index([photos], faces=False)
    root = library.paths.root
    q = tmp_path / "q"
    r = run_cli("dupes", "--method", "hash", "--move-to", str(q), "--only", str(photos / "cam-1.jpg"), "--apply",
                "--json", library=root)
    assert r.returncode == 0, r.stderr
    assert [Path(m["src"]).name for m in json.loads(r.stdout)["plan"]["moves"]] == ["cam-1.jpg"]
    assert (photos / "cam-0.jpg").exists() and not (photos / "cam-1.jpg").exists()
    for args, words in ((("--only", str(photos / "cam.jpg")), "keeper"), (("--only", str(photos / "cam-0.jpg")), None)):
        r = run_cli("dupes", "--method", "hash", "--move-to", str(q), *args, library=root)
        if words:
            assert r.returncode == 2 and words in r.stderr and len(r.stderr.strip().splitlines()) == 1
        else:
            assert r.returncode == 0 and "would move" in r.stdout and "cam-0.jpg" in r.stdout
    r = run_cli("dupes", "--only", str(photos / "cam-0.jpg"), library=root)
    assert r.returncode == 2 and "--move-to" in r.stderr
