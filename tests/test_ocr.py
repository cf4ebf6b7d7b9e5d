"""Text in photos (issue 19): PP-OCRv6 from the rapidocr wheel, read at index time, searched with
`--words`. Real text images of ../shared/data/ocr with their ground truth (truth.csv)."""

from __future__ import annotations

import csv
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from conftest import SHARED, needs_shared, run_cli, write_photo
from photosearch.store.catalog import Catalog

OCR = SHARED / "ocr"


def _json(r) -> dict:
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout)


def _truth() -> list[dict]:
    return list(csv.DictReader(open(OCR / "truth.csv", encoding="utf-8")))


def _typo(word: str) -> str:
    """One swap of two middle letters (one edit)."""
    i = len(word) // 2
    return word[:i - 1] + word[i] + word[i - 1] + word[i + 1:]


def _words_top5(root: Path, query: str, **filters: str) -> list[str]:
    args = ["search", "--words", query, "-n", "5", "--json"]
    for k, v in filters.items():
        args += [f"--{k}", v]
    return [Path(r["path"]).name for r in _json(run_cli(*args, library=root))["results"]]


@needs_shared
def test_words_written_in_real_photos_are_found_also_with_a_typo_and_never_in_text_free_photos(ocr_library, tmp_path):
    d = tmp_path / "ocr"
    shutil.copytree(OCR, d, ignore=shutil.ignore_patterns("*.csv", "gt"))
    root = ocr_library.paths.root
    doc = _json(run_cli("index", str(d), "--no-faces", "--ocr", "--json", library=root))
    assert not doc["skipped"], doc["skipped"]
    assert doc["text_lines"] >= 50
    status = _json(run_cli("status", "--json", library=root))
    assert status["ocr_model"] == "ppocr-v6" and status["text_read"] == 22 and 14 <= status["with_text"] <= 17
    rows = _truth()
    negatives = {r["file"] for r in rows if not r["words"]}
    assert len(negatives) >= 5
    found = tried = typo_found = typo_tried = 0
    for r in rows:
        for word in [w for w in r["words"].split(";") if w]:
            top = _words_top5(root, word)
            tried += 1
            found += r["file"] in top
            assert not negatives & set(top), (word, top)               # text-free photos never match
            if len(word) >= 5 and word.isalpha():
                typo_tried += 1
                typo_found += r["file"] in _words_top5(root, _typo(word))
    # Measured: 49 of 58 words read by PP-OCRv6 small at a 960 px detection size.
    assert found / tried >= 0.75, (found, tried)
    assert typo_found / typo_tried >= 0.6, (typo_found, typo_tried)
    # Case, accents and parts of words: "GENEVE" finds "Genève", "segment" finds "segmentation".
    assert "pillow_caption_6_33_22.png" in _words_top5(root, "GENEVE")
    assert "skimage_page.png" in _words_top5(root, "segment")
    # --json carries the matching lines with their words' boxes inside the photo.
    hit = _json(run_cli("search", "--words", "madrid", "--json", library=root))["results"][0]
    assert Path(hit["path"]).name == "ultralytics_bus.jpg"
    line = hit["text"][0]
    assert "madrid" in line["text"].lower() and len(line["quad"]) == 8
    word, box = next((w, b) for w, b in line["words"] if "madrid" in w.lower())
    assert 0 <= box[0] < 1 and 0 <= box[1] < 1 and 0 < box[2] <= 1 and 0 < box[3] <= 1
    # A phrase in quotes is matched whole; filters combine.
    assert _words_top5(root, '"gray scale"') == ["pillow_old-style-jpeg-compression.jpg"]
    assert _words_top5(root, '"scale gray"') == []
    assert _words_top5(root, "madrid", **{"in": str(d)}) == ["ultralytics_bus.jpg"]
    assert _words_top5(root, "madrid", camera="nosuchcamera") == []


#: Where a box [x, y, w, h] of the upright photo lies in its turned copy (fractions of the frame).
_TURNED_BOX = {
    "left": lambda x, y, w, h: [y, 1 - x - w, h, w],             # Image.Transpose.ROTATE_90
    "right": lambda x, y, w, h: [1 - y - h, x, h, w],            # Image.Transpose.ROTATE_270
    "over": lambda x, y, w, h: [1 - x - w, 1 - y - h, w, h],     # Image.Transpose.ROTATE_180
}


def _iou(a: list[float], b: list[float]) -> float:
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return ix * iy / (a[2] * a[3] + b[2] * b[3] - ix * iy)


@needs_shared
def test_text_turned_any_way_is_read_and_its_words_boxes_turn_with_it(ocr_library, tmp_path):
    """A photo turned by a quarter either way or upside down (no EXIF orientation to undo it) is
    read as the upright one, and each word's box is where the word is in the turned photo."""
    d = tmp_path / "turned"
    d.mkdir()
    cases = {"pillow_multiline_text.png": "awesome", "ultralytics_bus.jpg": "emisiones",
             "pyzbar_code128.png": "temporaria", "skimage_page.png": "segmentation"}
    turns = {"left": Image.Transpose.ROTATE_90, "right": Image.Transpose.ROTATE_270,
             "over": Image.Transpose.ROTATE_180}
    for name in cases:
        img = Image.open(OCR / name).convert("RGB")
        img.save(d / f"up_{Path(name).stem}.png")
        for turn, how in turns.items():
            img.transpose(how).save(d / f"{turn}_{Path(name).stem}.png")
    root = ocr_library.paths.root
    _json(run_cli("index", str(d), "--no-faces", "--json", library=root))   # no camera: read by default
    for name, word in cases.items():
        hits = _json(run_cli("search", "--words", word, "-n", "8", "--json", library=root))["results"]
        boxes = {}
        for hit in hits:
            turn = Path(hit["path"]).name.split("_")[0]
            boxes[turn] = next(b for line in hit["text"] for w, b in line["words"] if word in w.lower())
        assert set(boxes) == {"up", *turns}, (word, [h["path"] for h in hits])
        for turn in turns:
            expected = _TURNED_BOX[turn](*boxes["up"])
            assert _iou(boxes[turn], expected) >= 0.5, (word, turn, boxes[turn], expected)


def _text_image(path: Path, lines: list[str], size=(640, 360)) -> Path:
    img = Image.new("RGB", size, (250, 250, 245))
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=32)
    for i, line in enumerate(lines):
        draw.text((24, 24 + 48 * i), line, fill=(20, 20, 20), font=font)
    img.save(path)
    return path


@needs_shared
def test_camera_shots_are_read_only_when_asked_and_nothing_is_read_twice(ocr_library, tmp_path):
    d = tmp_path / "mixed"
    d.mkdir()
    _text_image(d / "screenshot.png", ["wifi password", "blue harbour 42"])
    camera = d / "camera.jpg"
    shutil.copy(SHARED / "metadata" / "Apple.jpg", camera)                  # a real iPhone photo
    root = ocr_library.paths.root
    _json(run_cli("index", str(d), "--no-faces", "--json", library=root))
    with Catalog.open(ocr_library.paths.catalog, read_only=True) as cat:
        scans = dict(cat.con.execute("SELECT p.path, s.scanned_at FROM ocr_scans s JOIN photos p ON p.id = s.photo_id").fetchall())
    assert set(scans) == {str(d / "screenshot.png")}                        # by default: not the camera shot
    assert _words_top5(root, "password") == ["screenshot.png"]
    _json(run_cli("index", str(d), "--no-faces", "--json", library=root))   # unchanged: nothing read again
    with Catalog.open(ocr_library.paths.catalog, read_only=True) as cat:
        again = dict(cat.con.execute("SELECT p.path, s.scanned_at FROM ocr_scans s JOIN photos p ON p.id = s.photo_id").fetchall())
    assert again == scans
    _json(run_cli("ocr", str(d), "--json", library=root))                   # asked: the camera shot too
    with Catalog.open(ocr_library.paths.catalog, read_only=True) as cat:
        now = dict(cat.con.execute("SELECT p.path, s.scanned_at FROM ocr_scans s JOIN photos p ON p.id = s.photo_id").fetchall())
    assert set(now) == {str(d / "screenshot.png"), str(camera)} and now[str(d / "screenshot.png")] == scans[str(d / "screenshot.png")]
    # A copy keeps the text; a moved file too.
    shutil.copy(d / "screenshot.png", d / "copy.png")
    (d / "screenshot.png").rename(d / "moved.png")
    _json(run_cli("index", str(d), "--no-faces", "--json", library=root))
    assert sorted(_words_top5(root, "harbour")) == ["copy.png", "moved.png"]


def test_bad_input_is_bounded_and_one_line(ocr_library, tmp_path):
    d = tmp_path / "bad"
    d.mkdir()
    Image.new("RGB", (6, 6), (255, 255, 255)).save(d / "tiny.png")            # too small to hold text
    # A page with thousands of words: the lines read are capped, so time stays bounded.
    page = Image.new("RGB", (2400, 3200), "white")
    draw = ImageDraw.Draw(page)
    font = ImageFont.load_default(size=40)
    rng = np.random.default_rng(3)
    for y in range(10, 3150, 56):            # 57 rows of 10 words: 570 boxes
        for x in range(10, 2300, 230):
            draw.text((x, y), "".join(rng.choice(list("abcdefghij"), 8)), fill="black", font=font)
    page.save(d / "newspaper.png")
    write_photo(d / "blank.jpg", seed=5)
    root = ocr_library.paths.root
    started = time.monotonic()
    doc = _json(run_cli("index", str(d), "--no-faces", "--json", library=root))
    assert not doc["skipped"] and time.monotonic() - started < 120
    with Catalog.open(ocr_library.paths.catalog, read_only=True) as cat:
        lines = dict(cat.con.execute("SELECT p.path, s.lines FROM ocr_scans s JOIN photos p ON p.id = s.photo_id").fetchall())
    from photosearch.models.ocr import MAX_LINES

    assert lines[str(d / "tiny.png")] == 0 and 0 < lines[str(d / "newspaper.png")] <= MAX_LINES
    for args, code, words in ((["search", "--words", "  "], 2, "--words needs a word"),
                              (["search", "cats", "--words", "dog"], 2, "either a description or --words"),
                              (["search", "--words", "x", "-n", "0"], 2, "--limit")):
        r = run_cli(*args, library=root)
        assert r.returncode == code and words in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_without_ocr_models_offline_index_goes_on_and_ocr_says_why(library, tmp_path, monkeypatch):
    monkeypatch.delenv("PHOTOSEARCH_OCR_MODELS", raising=False)
    d = tmp_path / "p"
    d.mkdir()
    _text_image(d / "note.png", ["milk eggs bread"])
    root = library.paths.root
    doc = _json(run_cli("index", str(d), "--no-faces", "--json", library=root))       # offline, no models
    assert doc["indexed"] == 1 and not doc["skipped"] and "models pull ocr" in doc["text_note"]
    r = run_cli("ocr", str(d), library=root)
    assert r.returncode == 4 and "models pull ocr --from" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = run_cli("models", "pull", "ocr", "--from", str(tmp_path / "nothing.whl"), library=root)
    assert r.returncode == 3 and "no such file" in r.stderr


def test_pulled_models_are_hash_checked(library, ocr_wheel, tmp_path):
    import zipfile

    bad = tmp_path / "models"
    bad.mkdir()
    with zipfile.ZipFile(ocr_wheel) as z:
        for name in ("PP-OCRv6_det_small.onnx", "PP-OCRv6_rec_small.onnx", "ch_ppocr_mobile_v2.0_cls_mobile.onnx"):
            (bad / name).write_bytes(z.read("rapidocr/models/" + name))
    with open(bad / "PP-OCRv6_det_small.onnx", "r+b") as f:
        f.seek(1000)
        f.write(b"\x00\x01\x02")
    r = run_cli("models", "pull", "ocr", "--from", str(bad), library=library.paths.root)
    assert r.returncode == 4 and "SHA-256" in r.stderr
    doc = _json(run_cli("models", "pull", "ocr", "--from", str(ocr_wheel), "--json", library=library.paths.root))
    assert doc["installed"]["source"].startswith("wheel:")


@needs_shared
def test_a_plain_search_puts_photos_with_the_words_first_and_the_page_shows_them(ocr_library, tmp_path):
    from test_web import served_browser

    d = tmp_path / "mix"
    d.mkdir()
    for name in ("ultralytics_bus.jpg", "skimage_page.png", "pillow_multiline_text.png", "skimage_camera.png"):
        shutil.copy(OCR / name, d / name)
    for i in range(4):
        write_photo(d / f"other_{i}.jpg", seed=30 + i, size=(320, 240))
    root = ocr_library.paths.root
    _json(run_cli("index", str(d), "--no-faces", "--ocr", "--json", library=root))
    doc = _json(run_cli("madrid", "--json", library=root))                # the plain CLIP search
    first = doc["results"][0]
    assert Path(first["path"]).name == "ultralytics_bus.jpg" and "MADRID" in " ".join(l["text"] for l in first["text"])
    assert len(doc["results"]) == 8 and all("text" not in r for r in doc["results"][1:])   # the rest: CLIP's order
    # The web page: the tile shows the line; the photo page fills the word's box and lists the text.
    from photosearch.web.server import create_app

    app = create_app(ocr_library)
    with served_browser(app) as (browser, base):
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{base}/?token={app.state.token}")
        page.goto(f"{base}/#/search?words=emisiones")
        page.wait_for_selector(".result .tile-text")
        assert page.locator(".result").count() == 1
        page.locator(".result a").first.click()
        page.wait_for_selector("svg.text-boxes rect.text-hit")
        page.wait_for_function("document.getElementById('photo').complete && document.getElementById('photo').naturalWidth > 0")
        assert "emisiones" in page.locator("#photo-text").text_content()
        box = page.locator("svg.text-boxes rect.text-hit").first.bounding_box()
        photo = page.locator("#photo").bounding_box()
        assert box["width"] > 5 and photo["x"] <= box["x"] <= photo["x"] + photo["width"]
        page.screenshot(path=str(tmp_path / "text.png"))


@pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool (Debian libimage-exiftool-perl) not installed")
def test_sync_writes_photo_text_only_when_asked(ocr_library, tmp_path):
    import subprocess

    d = tmp_path / "notes"
    d.mkdir()
    note = _text_image(d / "note.png", ["door code 4711", "ask for Zoë"])
    shot = d / "shot.jpg"
    Image.open(note).convert("RGB").save(shot, quality=95)
    root = ocr_library.paths.root
    _json(run_cli("index", str(d), "--no-faces", "--json", library=root))
    before = {p: p.read_bytes() for p in (note, shot)}
    plain = _json(run_cli("sync", "--apply", "--json", library=root))       # without --ocr: text stays private
    assert not any("photosearch:Text" in " ".join(f["changes"]) for f in plain["files"])
    assert {p: p.read_bytes() for p in (note, shot)} == before
    dry = _json(run_cli("sync", "--ocr", "--json", library=root))
    assert {Path(f["path"]).name for f in dry["files"]} == {"note.png", "shot.jpg"}
    assert all(any("photosearch:Text: door code 4711" in c for c in f["changes"]) for f in dry["files"])
    _json(run_cli("sync", "--ocr", "--apply", "--json", library=root))
    out = json.loads(subprocess.run(["exiftool", "-j", "-XMP-photosearch:all", str(shot)],
                                    capture_output=True, text=True).stdout)[0]
    assert out["Text"].splitlines()[0] == "door code 4711" and "Zo" in out["Text"]
    # Written again: nothing to change.
    assert _json(run_cli("sync", "--ocr", "--json", library=root))["files"] == []


@needs_shared
def test_a_script_recognizer_is_added_hash_checked_used_and_photos_are_read_again(ocr_library, ocr_wheel, tmp_path,
                                                                                monkeypatch):
    """`models pull ocr LANG`. No script model can be downloaded here, so the catalogue's Thai entry
    is pointed at a stand-in: PP-OCRv6's own recognizer under another name, with its real SHA-256,
    served from 127.0.0.1 as the mirror. What is tested is the mechanics: the download, the hash
    check, the model's new name (so photos are read again), and a line read by every recognizer."""
    import hashlib
    import http.server
    import threading
    import zipfile

    from photosearch.errors import ModelError, NetworkError, UsageError
    from photosearch.models import ocr as ocr_mod

    served = tmp_path / "mirror"
    served.mkdir()
    with zipfile.ZipFile(ocr_wheel) as z:
        data = z.read("rapidocr/models/PP-OCRv6_rec_small.onnx")
    (served / "stand-in_rec.onnx").write_bytes(data)
    monkeypatch.setitem(ocr_mod.LANGUAGE_MODELS, "th", ("stand-in_rec.onnx", hashlib.sha256(data).hexdigest()))
    root = ocr_library.paths.root
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(OCR / "pillow_multiline_text.png", photos / "text.png")
    ocr_library.index([photos], faces=False, ocr="all")
    before = {r["text"] for r in ocr_library.photo_details(1)["text"]}
    assert before

    # Offline: one clear line, nothing sent. Unknown and already-read languages.
    with pytest.raises(NetworkError, match="--from FILE"):
        ocr_library.pull_ocr_models(language="th")
    with pytest.raises(UsageError, match="no OCR model reads 'xx'"):
        ocr_library.pull_ocr_models(language="xx")
    assert "reads fr already" in ocr_library.pull_ocr_models(language="fr")["note"]
    # A file that is not the pinned one is refused.
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(data[:-10] + b"0123456789")
    with pytest.raises(ModelError, match="SHA-256"):
        ocr_library.pull_ocr_models(bad, language="thai")

    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(served))  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.delenv("PHOTOSEARCH_OFFLINE")
        monkeypatch.delenv("HF_HUB_OFFLINE")
        monkeypatch.setenv("PHOTOSEARCH_OCR_MIRROR", f"http://127.0.0.1:{server.server_address[1]}/")
        spec = ocr_library.pull_ocr_models(language="thai")
    finally:
        server.shutdown()
    assert spec["script"] == "th" and spec["model"] == "ppocr-v6-int8+th" and spec["source"].startswith("http://127.0.0.1")
    assert (root / "models" / "ocr" / "ppocr-v6" / "languages" / "stand-in_rec.onnx").read_bytes() == data
    # The reader is another one now: `ocr` reads the photo again, with the same lines (the stand-in
    # reads what the default reads; the surer reading of each line is kept).
    doc = _json(run_cli("ocr", "--json", library=root))
    assert doc["text_lines"] >= len(before)
    with Catalog.open(root / "catalog.duckdb", read_only=True) as cat:
        models = {m for (m,) in cat.con.execute("SELECT model FROM ocr_scans").fetchall()}
    assert "ppocr-v6-int8+th" in models
    assert {r["text"] for r in ocr_library.photo_details(1)["text"]} == before
    # The CLI: one line for each bad input.
    for args, code in ((("models", "pull", "ocr", "klingon"), 2), (("models", "pull", "faces", "ko"), 2)):
        r = run_cli(*args, library=root)
        assert r.returncode == code and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_a_script_recognizer_is_never_fetched_offline(ocr_library):
    """`models pull ocr LANG` with the base models installed: either offline switch ends it at
    once, in one line naming the offline way (`--from FILE`); nothing is downloaded or installed."""
    root = ocr_library.paths.root
    for switch in ("PHOTOSEARCH_OFFLINE", "HF_HUB_OFFLINE"):
        started = time.monotonic()
        r = run_cli("models", "pull", "ocr", "th", library=root,
                    env={"PHOTOSEARCH_OFFLINE": "", "HF_HUB_OFFLINE": "", switch: "1",
                         "PHOTOSEARCH_OCR_MIRROR": "http://192.0.2.1/"})   # (TEST-NET: never reached)
        assert time.monotonic() - started < 15
        assert r.returncode == 4 and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert "offline mode is set" in r.stderr and "--from FILE" in r.stderr
    assert not list(root.rglob("th_PP-OCRv5_rec_mobile.onnx*"))


def test_a_script_recognizer_from_a_host_that_does_not_answer_fails_in_seconds(ocr_library):
    """Online, but the host takes no connection (a closed port on 127.0.0.1: nothing leaves this
    machine): `models pull ocr LANG` stops within seconds, in one line naming the offline way."""
    import socket

    root = ocr_library.paths.root
    with socket.socket() as s:  # a port nothing listens on once it is closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.monotonic()
    r = run_cli("models", "pull", "ocr", "th", library=root,
                env={"PHOTOSEARCH_OFFLINE": "", "HF_HUB_OFFLINE": "",
                     "PHOTOSEARCH_OCR_MIRROR": f"http://127.0.0.1:{port}/"})
    assert time.monotonic() - started < 15
    assert r.returncode == 4 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "cannot reach 127.0.0.1" in r.stderr and "--from FILE" in r.stderr
    assert not list(root.rglob("th_PP-OCRv5_rec_mobile.onnx*"))


@needs_shared
def test_the_int8_recognizer_is_made_at_install_checked_and_reads_real_text_as_fp32_does(ocr_library):
    """`models pull ocr` makes the int8 recognizer and records its check; the reader uses it (its
    name says so, so a library read in fp32 is read again), and on the real text images of
    ../shared it finds the truth words fp32 finds, give or take one."""
    from photosearch.media.decode import decode
    from photosearch.models.ocr import REC_INT8_FILE, OcrModelStore, PPOCR
    from photosearch.models.ocr_int8 import MAX_CHAR_DIFF

    store = OcrModelStore(ocr_library.paths)
    folder = store.root / "ppocr-v6"
    spec = json.loads((folder / "ocr.json").read_text())
    check = spec["recognizer_int8"]
    assert check["passed"] and check["char_diff"] <= MAX_CHAR_DIFF and check["lines"] >= 32
    assert (folder / REC_INT8_FILE).is_file() and store.recognizer_precision() == "int8"
    reader = store.load()
    assert reader.precision == "int8" and reader.name == "ppocr-v6-int8"
    assert ocr_library.status()["ocr_precision"] == "int8"
    fp32 = PPOCR(folder)
    found = {"int8": 0, "fp32": 0}
    words = 0
    for r in _truth():
        truth = [w.lower() for w in r["words"].split(";") if w]
        if not truth:
            continue
        image = decode((OCR / r["file"]).read_bytes(), ext=Path(r["file"]).suffix.lower()).image
        words += len(truth)
        for name, engine in (("int8", reader), ("fp32", fp32)):
            text = " ".join(ln.text for ln in engine.read(image)).lower()
            found[name] += sum(w in text for w in truth)
    assert words >= 40 and found["fp32"] >= 0.75 * words
    assert found["int8"] >= found["fp32"] - 1, found


@needs_shared
def test_the_int8_recognizers_gelus_and_head_are_fused_and_it_reads_bit_for_bit_as_unfused(ocr_library):
    """models/ocr_int8.py makes each GELU of the quantized recognizer one node (onnxruntime does
    not fuse them between QDQ nodes) and its CTC head one Gemm: the installed file has no Erf
    left, and on real lines of ../shared it gives the unfused recognizer's probabilities exactly.
    A library installed before the fusions (its ocr.json without their records) has its file
    fused at the next load, once."""
    import collections

    import onnx

    import photosearch.models.ocr_int8 as oi
    from photosearch.config import LibraryPaths
    from photosearch.media.decode import decode
    from photosearch.models.ocr import REC_FILE, REC_INT8_FILE, OcrModelStore, PPOCR, _warp_quad, rec_input

    folder = OcrModelStore(ocr_library.paths).root / "ppocr-v6"
    spec = json.loads((folder / "ocr.json").read_text())
    ops = collections.Counter(n.op_type for n in onnx.load(str(folder / REC_INT8_FILE)).graph.node)
    assert spec["recognizer_int8"]["fused_gelus"] == ops["Gelu"] > 0 and ops["Erf"] == 0, ops
    # The CTC head too: one Gemm (with the bias) before the Softmax, no float MatMul + Add there.
    graph = onnx.load(str(folder / REC_INT8_FILE)).graph
    made = {o: n for n in graph.node for o in n.output}
    softmax = made[graph.output[0].name]
    assert spec["recognizer_int8"]["fused_head"] is True and softmax.op_type == "Softmax"
    assert made[made[softmax.input[0]].input[0]].op_type == "Gemm"

    # The library as an earlier version left it: the int8 recognizer unfused, no record of fusing.
    old = LibraryPaths(ocr_library.paths.root.parent / "older")
    shutil.copytree(folder, old.models / "ocr" / "ppocr-v6")
    old_folder = old.models / "ocr" / "ppocr-v6"
    oi.quantize_recognizer(folder / REC_FILE, old_folder / REC_INT8_FILE, rec_input, fuse=False)
    assert collections.Counter(n.op_type for n in onnx.load(str(old_folder / REC_INT8_FILE)).graph.node)["Erf"] > 0
    del spec["recognizer_int8"]["fused_gelus"], spec["recognizer_int8"]["fused_head"]
    (old_folder / "ocr.json").write_text(json.dumps(spec))
    unfused = PPOCR(old_folder, int8=True)

    crops = []
    for name in ("ultralytics_bus.jpg", "pillow_multiline_text.png", "skimage_page.png", "pillow_tv16.jpg"):
        rgb = np.asarray(decode((OCR / name).read_bytes(), ext=Path(name).suffix).image.convert("RGB"))
        crops += [_warp_quad(rgb, q) for q in unfused.detect(rgb)]
    assert len(crops) >= 15
    session = unfused._rec.get()
    before = session.run(None, {session.get_inputs()[0].name: rec_input(crops[:8])})[0]
    before_read = unfused.read_crops(crops)

    reader = OcrModelStore(old).load()          # fuses the file in place
    record = json.loads((old_folder / "ocr.json").read_text())["recognizer_int8"]
    assert record["fused_gelus"] == ops["Gelu"] and record["fused_head"] is True
    assert collections.Counter(n.op_type for n in onnx.load(str(old_folder / REC_INT8_FILE)).graph.node)["Erf"] == 0
    session = reader._rec.get()
    after = session.run(None, {session.get_inputs()[0].name: rec_input(crops[:8])})[0]
    # Equal bit for bit on the machines measured; a tolerance far below any reading's change
    # keeps the test to what matters where kernels round in another order.
    assert np.allclose(before, after, rtol=0, atol=1e-6)
    after_read = reader.read_crops(crops)
    assert [t for t, _ in after_read] == [t for t, _ in before_read] and any(t for t, _ in before_read)
    assert np.allclose([p for _, p in after_read], [p for _, p in before_read], rtol=0, atol=1e-6)


@needs_shared
def test_the_detector_runs_without_its_denormal_weights_and_finds_the_same_lines(ocr_library):
    """PP-OCRv6's detector holds weights below float32's smallest normal number, slow on some
    CPUs (models/onnx_fixes.py). The install writes a copy with them set to 0 beside the pinned
    file, which stays as fetched; the engine runs the copy, and on real photos of ../shared its
    probability maps are the original's bit for bit. A library installed before the copy gets it
    at the next load, once."""
    import hashlib

    import onnx
    from onnx import numpy_helper

    from photosearch.config import LibraryPaths
    from photosearch.media.decode import decode
    from photosearch.models.ocr import DET_FILE, DET_FLUSHED_FILE, FILES_SHA256, OcrModelStore, PPOCR

    def denormals(path: Path) -> int:
        tiny = np.finfo(np.float32).tiny
        return sum(int(((a != 0) & (np.abs(a) < tiny)).sum())
                   for a in map(numpy_helper.to_array, onnx.load(str(path)).graph.initializer) if a.dtype == np.float32)

    folder = OcrModelStore(ocr_library.paths).root / "ppocr-v6"
    spec = json.loads((folder / "ocr.json").read_text())
    assert hashlib.sha256((folder / DET_FILE).read_bytes()).hexdigest() == FILES_SHA256[DET_FILE]
    flushed = denormals(folder / DET_FILE)
    assert flushed > 1000 and spec["detector_flushed"] == {"file": DET_FLUSHED_FILE, "weights_flushed": flushed}
    assert denormals(folder / DET_FLUSHED_FILE) == 0
    engine = OcrModelStore(ocr_library.paths).load()
    assert Path(engine._det.path).name == DET_FLUSHED_FILE

    # The library as an earlier version left it: the pinned detector only, no record.
    old = LibraryPaths(ocr_library.paths.root.parent / "older-det")
    old_folder = old.models / "ocr" / "ppocr-v6"
    shutil.copytree(folder, old_folder)
    (old_folder / DET_FLUSHED_FILE).unlink()
    del spec["detector_flushed"]
    (old_folder / "ocr.json").write_text(json.dumps(spec))
    original = PPOCR(old_folder)
    assert Path(original._det.path).name == DET_FILE
    upgraded = OcrModelStore(old).load()
    assert Path(upgraded._det.path).name == DET_FLUSHED_FILE
    assert json.loads((old_folder / "ocr.json").read_text())["detector_flushed"]["weights_flushed"] == flushed

    lines, peak = 0, 0.0
    for name in ("ultralytics_bus.jpg", "skimage_page.png", "pillow_tv16.jpg"):
        image = decode((OCR / name).read_bytes(), ext=Path(name).suffix).image.convert("RGB")
        x = ((np.asarray(image.resize((640, 480))).astype(np.float32) / 255.0 - 0.5) / 0.5).transpose(2, 0, 1)[None]
        maps = [e._det.get().run(None, {e._det.get().get_inputs()[0].name: x})[0] for e in (original, upgraded)]
        assert np.allclose(*maps, rtol=0, atol=1e-6)      # bit for bit where measured
        peak = max(peak, float(maps[0].max()))
        rgb = np.asarray(image)
        quads = [e.detect(rgb) for e in (original, upgraded)]
        assert len(quads[0]) == len(quads[1]) and all(np.allclose(a, b, atol=1.0) for a, b in zip(*quads))
        lines += len(quads[0])
    assert peak > 0.9 and lines >= 12   # 18 lines measured


def test_an_int8_recognizer_that_reads_differently_is_dropped_and_fp32_stays(library, ocr_wheel, monkeypatch):
    """A recognizer quantized per tensor (coarser than the product's per-channel weights) reads
    generated lines differently from fp32: the check drops it, `ocr.json` says why, and the reader
    is fp32. A quantizer that fails outright leaves fp32 too, with its reason."""
    import onnxruntime.quantization as q

    import photosearch.models.ocr_int8 as oi
    from photosearch.models.ocr import REC_INT8_FILE, OcrModelStore

    real = q.quantize_static

    def per_tensor(*args, **kwargs):
        return real(*args, **{**kwargs, "per_channel": False})

    said: list[str] = []
    monkeypatch.setattr(oi, "_made", {})
    monkeypatch.setattr(q, "quantize_static", per_tensor)
    library.pull_ocr_models(ocr_wheel, progress=said.append)
    store = OcrModelStore(library.paths)
    check = json.loads((store.root / "ppocr-v6" / "ocr.json").read_text())["recognizer_int8"]
    assert not check["passed"] and check["char_diff"] > oi.MAX_CHAR_DIFF
    assert "reads" in check["reason"] and any(m.startswith("OCR recognizer kept in fp32: ") for m in said)
    assert not (store.root / "ppocr-v6" / REC_INT8_FILE).exists()
    assert store.recognizer_precision() == "fp32" and store.load().name == "ppocr-v6"
    assert library.status()["ocr_precision"] == "fp32"

    def broken(*args, **kwargs):
        raise RuntimeError("unsupported op\nmore detail")

    monkeypatch.setattr(oi, "_made", {})
    monkeypatch.setattr(q, "quantize_static", broken)
    library.pull_ocr_models(ocr_wheel, force=True)
    check = json.loads((store.root / "ppocr-v6" / "ocr.json").read_text())["recognizer_int8"]
    assert check == {"passed": False, "reason": "cannot make the int8 recognizer: unsupported op"}
    assert store.load().precision == "fp32"


@needs_shared
def test_words_skips_the_exact_pass_for_a_word_no_text_holds_and_finds_the_same(tmp_path, monkeypatch):
    """query/words.py: a term that no word ever read contains (a typo, mostly) is looked for near
    only, with no scan of every document for it. The results equal the search without that short
    cut, for every truth word of ../shared/data/ocr as it is, with a typo, in part, in a phrase,
    and for Cyrillic, Greek and punctuated words; typos are forgiven in any script."""
    from photosearch.models.ocr import normalize_text
    from photosearch.query import words

    texts = [r["note"] for r in _truth()] + [r["words"].replace(";", " ") for r in _truth()]
    texts += ["Привет мир, станция Москва", "Invoice B-204 total 12.50 EUR", "wifi password: Xk7#p2",
              "Σταθμός Αθήνα"]
    with Catalog.open(tmp_path / "catalog.duckdb") as cat:
        cat.con.execute("INSERT INTO photos (id, path, content_hash, size, mtime_ns, indexed_at) "
                        "SELECT i, '/p/' || i || '.png', md5(i::VARCHAR), 1, 1, now() FROM range(1, ? + 1) t(i)",
                        [len(texts)])
        cat.add_text("ppocr-v6", [(i + 1, [{"text": t, "norm": normalize_text(t), "score": 0.9,
                                            "quad": [0, 0, 1, 0, 1, 1, 0, 1], "words": []}])
                                  for i, t in enumerate(texts)])
        truth = sorted({w for r in _truth() for w in r["words"].split(";") if w})
        queries = [*truth, *(_typo(w) for w in truth if len(w) >= 5), *(w[:4] for w in truth if len(w) >= 6),
                   "станция", "станцыя", "москва", "σταθμοσ", "σταθνος", "αθηνα", "b-204", "12.50", "xk7#p2", "pasword", "invioce total",
                   '"total 12.50"', "eur invioce", "zzzzqqq"]
        got = {q: words.search_words(cat, q, None, 5) for q in queries}
        short_cut = sum(bool(cat.unread_words([t for t in words.parse(q)[0] if words.typo_distance(t)]))
                        for q in queries)
        monkeypatch.setattr(type(cat), "unread_words", lambda self, terms: set())
        for q in queries:
            assert words.search_words(cat, q, None, 5) == got[q], q
    assert short_cut >= 20, short_cut                            # the typos took the short cut
    assert got["станция"] and got["москва"] and got["b-204"] and got["12.50"]   # found exactly
    assert got["pasword"] and got["invioce total"] and got["станцыя"] and got["σταθνος"]   # found near


def test_a_catalog_from_before_migration_0017_gets_words_of_every_script(tmp_path):
    """Before 0017 the vocabulary kept ASCII runs only (a Cyrillic word was cut at every
    letter): the migration rebuilds the words from the documents, and typos are forgiven then."""
    from photosearch.models.ocr import normalize_text
    from photosearch.query import words

    path = tmp_path / "catalog.duckdb"
    with Catalog.open(path) as cat:
        cat.con.execute("INSERT INTO photos (id, path, content_hash, size, mtime_ns, indexed_at) "
                        "VALUES (1, '/p/1.png', 'a', 1, 1, now()), (2, '/p/2.png', 'b', 1, 1, now())")
        cat.add_text("ppocr-v6", [(pid, [{"text": t, "norm": normalize_text(t), "score": 0.9,
                                          "quad": [0, 0, 1, 0, 1, 1, 0, 1], "words": []}])
                                  for pid, t in ((1, "Станция Москва"), (2, "Gare de Lyon, voie 7"))])
        # As a catalog of 0013-0016 left them.
        cat.con.execute("DELETE FROM text_words")
        cat.con.execute("INSERT INTO text_words SELECT DISTINCT w, photo_id FROM (SELECT photo_id, unnest("
                        "regexp_split_to_array(doc, '[^[:alnum:]]+')) AS w FROM photo_docs) WHERE length(w) >= 2")
        cat.con.execute("DELETE FROM text_vocab")
        cat.con.execute("INSERT INTO text_vocab SELECT DISTINCT word FROM text_words")
        cat.con.execute("DELETE FROM schema_version WHERE version >= 17")
        assert words.search_words(cat, "станцыя", None, 5) == []
    with Catalog.open(path) as cat:
        assert [pid for pid, _, _ in words.search_words(cat, "станцыя", None, 5)] == [1]
        found = words.search_words(cat, "lyno", None, 5)
        assert [pid for pid, _, _ in found] == [2]
        assert [ln["text"] for ln in found[0][2]] == ["Gare de Lyon, voie 7"]   # the line, its comma too
        assert "москва" in {r[0] for r in cat.con.execute("SELECT word FROM text_vocab").fetchall()}
