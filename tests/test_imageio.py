"""Decoding and metadata on real files: orientation, broken files, camera metadata."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import SHARED, needs_shared, run_cli, write_photo
from photosearch.errors import DecodeError
from photosearch.media.decode import decode, parse_date, read_metadata


@needs_shared
@pytest.mark.parametrize("n", range(2, 9))
def test_orientation_applied(n):
    ref = np.asarray(decode((SHARED / "broken" / "hopper.jpg").read_bytes(), ext=".jpg").image, dtype=np.float32)
    d = decode((SHARED / "broken" / f"hopper_orientation_{n}.jpg").read_bytes(), ext=".jpg")
    assert d.orientation == n
    got = np.asarray(d.image, dtype=np.float32)
    assert got.shape == ref.shape
    assert np.abs(got - ref).mean() / 255 < 5 / 255


def _expected() -> list[dict[str, str]]:
    with open(SHARED / "broken" / "expected.csv", newline="") as f:
        return list(csv.DictReader(f))


@needs_shared
def test_broken_corpus_decodes_or_gives_a_reason():
    for row in _expected():
        data = (SHARED / "broken" / row["file"]).read_bytes()
        ext = Path(row["file"]).suffix.lower()
        if row["kind"] in ("ok", "orientation"):
            d = decode(data, ext=ext, min_side=64)
            assert d.image.mode == "RGB" and min(d.image.size) >= 1, row["file"]
        elif row["kind"] in ("corrupt", "bomb", "not-image") or (row["kind"] == "truncated" and ext != ".heic"):
            with pytest.raises(DecodeError) as info:
                decode(data, ext=ext, min_side=64)
            reason = info.value.reason
            assert reason and "\n" not in reason, row["file"]
            if row["kind"] == "bomb":
                assert "bomb" in reason
        # Metadata reading never raises, whatever the file.
        read_metadata(data)


@needs_shared
def test_mislabelled_png_is_sniffed():
    d = decode((SHARED / "broken" / "png_as_jpg.jpg").read_bytes(), ext=".jpg")
    assert d.format == "PNG"


@needs_shared
def test_exif_orientation_6_swaps_dimensions():
    d = decode((SHARED / "broken" / "empty_gps_ifd.jpg").read_bytes(), ext=".jpg")
    raw = Image.open(SHARED / "broken" / "empty_gps_ifd.jpg")
    assert d.orientation == 6 and (d.width, d.height) == (raw.height, raw.width)


def test_draft_decodes_jpeg_at_reduced_size(tmp_path):
    path = write_photo(tmp_path / "big.jpg", 3, size=(2400, 1600))
    d = decode(path.read_bytes(), ext=".jpg", min_side=224)
    assert (d.width, d.height) == (2400, 1600)
    assert min(d.image.size) >= 224 and d.image.size[0] <= 2400 // 4


def test_pixel_limit(tmp_path, monkeypatch):
    monkeypatch.setenv("PHOTOSEARCH_MAX_PIXELS", "10000")
    path = write_photo(tmp_path / "p.png", 1, size=(200, 200), fmt="PNG")
    with pytest.raises(DecodeError, match="bomb"):
        decode(path.read_bytes(), ext=".png")


def test_empty_and_text_files():
    with pytest.raises(DecodeError, match="empty"):
        decode(b"", ext=".jpg")
    with pytest.raises(DecodeError, match="not an image"):
        decode(b"hello world, not a photo at all", ext=".jpg")


def _metadata_rows() -> list[dict[str, str]]:
    with open(SHARED / "metadata" / "metadata.csv", newline="") as f:
        return list(csv.DictReader(f))


@needs_shared
def test_camera_metadata_matches_exiftool_reference():
    """make/model/GPS presence as ExifTool reported them (metadata.csv), for the JPEGs."""
    checked = 0
    for row in _metadata_rows():
        if row["format"] != "JPEG" or not row["make"]:
            continue
        md = read_metadata((SHARED / "metadata" / row["file"]).read_bytes())
        assert (md.camera_make or "").strip() == row["make"].strip(), row["file"]
        assert (md.gps_lat is not None) == (row["has_gps"] == "1"), row["file"]
        checked += 1
    assert checked >= 25


@needs_shared
def test_keywords_dates_gps_and_mwg_precedence():
    gps = read_metadata((SHARED / "metadata" / "GPS.jpg").read_bytes())
    assert gps.gps_lat == pytest.approx(54.98967, abs=1e-3) and gps.gps_lon == pytest.approx(-1.91417, abs=1e-3)
    apple = read_metadata((SHARED / "metadata" / "Apple.jpg").read_bytes())
    assert apple.taken_at.isoformat() == "2016-09-28T18:18:05"
    assert apple.lens and "iPhone 7" in apple.lens
    # XMP's photoshop:DateCreated is a day; IPTC's TimeCreated of that day gives the time (MWG).
    mechanic = read_metadata((SHARED / "metadata" / "PhotoMechanic.jpg").read_bytes())
    assert mechanic.taken_at.isoformat() == "2006-10-29T06:27:51"
    # MWG: when XMP and IPTC disagree, XMP wins (the file's keywords say which is right).
    mwg = read_metadata((SHARED / "metadata" / "MWG.jpg").read_bytes())
    assert mwg.keywords and all(k.startswith("RIGHT") for k in mwg.keywords)
    iptc = read_metadata((SHARED / "metadata" / "IPTC.jpg").read_bytes())
    assert iptc.keywords == ["ExifTool", "Test", "IPTC"]
    heic = read_metadata((SHARED / "broken" / "pug.heic").read_bytes())
    assert heic.camera_make == "Apple" and heic.gps_lat is not None
    assert heic.taken_at.isoformat() == "2023-02-21T14:33:08"


@needs_shared
def test_xmp_sidecar_merged(tmp_path):
    photo = tmp_path / "a.jpg"
    photo.write_bytes((SHARED / "metadata" / "Canon.jpg").read_bytes())
    sidecar = (SHARED / "metadata" / "XMP4.xmp").read_bytes()
    md = read_metadata(photo.read_bytes(), sidecar)
    assert md.keywords == ["one", "two"] and md.camera_make == "Canon"


def test_parse_date():
    assert parse_date("2021:07:04 10:11:12").isoformat() == "2021-07-04T10:11:12"
    assert parse_date("2021-07-04T10:11") .isoformat() == "2021-07-04T10:11:00"
    assert parse_date("0000:00:00 00:00:00") is None
    assert parse_date("garbage") is None


def test_transparent_png_composited_on_white(tmp_path):
    im = Image.new("RGBA", (50, 50), (0, 0, 0, 0))
    buf = io.BytesIO()
    im.save(buf, "PNG")
    d = decode(buf.getvalue(), ext=".png")
    assert np.asarray(d.image).min() == 255


@needs_shared
def test_raw_files_whose_image_is_unreadable_keep_their_camera_and_date(library, tmp_path):
    """ExifTool's RAW samples lost their image data; those whose EXIF still names the camera are
    kept in the catalog with it (make and model as metadata.csv has them), without a picture."""
    import json

    rows = {r["file"]: r for r in _metadata_rows()}
    d = tmp_path / "raw"
    d.mkdir()
    raws = [f for f in rows if Path(f).suffix.lower() in (".cr2", ".crw", ".nef", ".mrw", ".iiq", ".x3f", ".raw",
                                                          ".cr3", ".dng", ".raf", ".rw2")]
    for f in raws:
        (d / f).write_bytes((SHARED / "metadata" / f).read_bytes())
    root = library.paths.root
    doc = json.loads(run_cli("index", str(d), "--no-faces", "--json", library=root).stdout)
    kept = {Path(s["path"]).name for s in doc["skipped"] if "without a picture" in s["reason"]}
    assert len(kept) >= 4 and doc["without_pixels"] == len(kept), doc["skipped"]
    out = tmp_path / "export.csv"
    run_cli("export", "--csv", "--out", str(out), library=root)
    catalog = {Path(r["path"]).name: r for r in csv.DictReader(open(out, encoding="utf-8"))}
    for f in kept:
        assert rows[f]["make"].strip().split()[0].lower() in catalog[f]["camera"].lower(), (f, catalog[f])
        assert catalog[f]["taken_at"], f
    # Every RAW sample is in the catalog (decoded, or kept) or skipped with its reason.
    skipped = {Path(s["path"]).name for s in doc["skipped"]}
    assert set(raws) == set(catalog) | skipped



@needs_shared
def test_heic_is_reduced_from_libheifs_buffer_with_pillows_pixels():
    """A HEIC decoded for a smaller size is box-reduced straight from libheif's buffer (no copy
    into a Pillow image of the full size): the same pixels as Pillow's own path, to a tenth of
    a level, the same size give or take the last partial block, the same orientation."""
    import pillow_heif

    from photosearch.media import decode as dec

    pillow_heif.register_heif_opener()
    for name in ("pug.heic", "xiaomi.heic"):
        data = (SHARED / "broken" / name).read_bytes()
        for min_side in (480, 256):
            d = decode(data, ext=".heic", min_side=min_side)
            with Image.open(io.BytesIO(data)) as ref:
                k = min(ref.size) // min_side
                want = np.asarray(ref.convert("RGB").reduce(k), np.float32)
            got = np.asarray(d.image, np.float32)
            assert 0 <= want.shape[0] - got.shape[0] <= 1 and 0 <= want.shape[1] - got.shape[1] <= 1
            assert np.abs(want[:got.shape[0], :got.shape[1]] - got).mean() < 0.2, (name, min_side)
            assert d.orientation == 1 and (d.width, d.height) == ref.size
            assert dec._heif_reduced(data, k) is not None        # the direct path was the one taken
