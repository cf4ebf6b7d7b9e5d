"""Films: a shot list (:class:`FilmPlan`) and its rendering to an MP4 with PyAV.

A plan is plain data (JSON with ``--plan --json``, edited and rendered with ``--from-plan``):
cards (title, end), stills with a slow pan and zoom (a box of the output's shape moving from
``box_from`` to ``box_to``, in fractions of the upright photo), and video clips (``t_in`` to
``t_out`` of the source, cropped to the output's shape). Consecutive shots overlap by the
later one's ``fade`` (a crossfade).

Rendering streams: one output frame at a time, only the shots on screen are open (a still's
pixels, or a clip's decoder), H.264 (yuv420p, ``faststart``) and AAC through the encoders of
PyAV's wheel. The sound is the music (trimmed to the film, faded out) or else the clips' own,
lowered under the transitions; a film with neither has no audio stream. The file is written
beside the output under a temporary name and renamed when complete.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from photosearch.errors import DecodeError, InputError, UsageError

if TYPE_CHECKING:
    from PIL import Image

#: Output sizes by name (16:9); ``WxH`` is accepted too.
SIZES = {"720p": (1280, 720), "1080p": (1920, 1080), "4k": (3840, 2160)}
AUDIO_RATE = 48_000
#: Plan format version.
PLAN_VERSION = 1


@dataclass
class Shot:
    """One shot of a film. Times are seconds; boxes are [x, y, w, h] fractions of the upright source."""

    kind: str                         # "title", "photo", "clip" or "end"
    start: float                      # on the film's timeline
    duration: float
    fade: float = 0.0                 # crossfade from the previous shot (overlapping its end)
    photo_id: int | None = None
    path: str | None = None           # the source file (photo or video)
    taken_at: str | None = None
    box_from: list[float] | None = None
    box_to: list[float] | None = None
    t_in: float | None = None         # a clip: the source's seconds shown
    t_out: float | None = None
    sound: bool = False               # a clip: its sound is used
    text: list[str] = field(default_factory=list)  # a card's lines (the first is the largest)
    why: str | None = None            # why this shot was chosen

    @property
    def end(self) -> float:
        return self.start + self.duration


@dataclass
class FilmPlan:
    """A whole film: output format, sound and shots in order."""

    width: int
    height: int
    fps: int
    duration: float
    title: str
    shots: list[Shot]
    music: str | None = None
    selection: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The plan as JSON-ready data (what ``film --plan --json`` prints)."""
        d = asdict(self)
        d["version"] = PLAN_VERSION
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FilmPlan:
        """A plan from :meth:`as_dict`'s data (an edited plan file); UsageError names what is wrong."""
        if not isinstance(d, dict) or d.get("version") != PLAN_VERSION:
            raise UsageError(f"not a film plan of version {PLAN_VERSION} (make one with `photosearch film ... --plan --json`)")
        try:
            known = set(Shot.__dataclass_fields__)
            shots = [Shot(**{k: v for k, v in s.items() if k in known}) for s in d["shots"]]
            plan = cls(width=int(d["width"]), height=int(d["height"]), fps=int(d["fps"]),
                       duration=float(d["duration"]), title=str(d.get("title") or ""), shots=shots,
                       music=d.get("music"), selection=dict(d.get("selection") or {}))
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"the film plan is malformed: {exc}") from None
        check_plan(plan)
        return plan


def parse_size(size: str) -> tuple[int, int]:
    """``720p``, ``1080p``, ``4k`` or ``WxH`` (even numbers, 64 to 7680)."""
    key = size.strip().lower()
    if key in SIZES:
        return SIZES[key]
    w, _, h = key.partition("x")
    if w.isdigit() and h.isdigit() and 64 <= int(w) <= 7680 and 64 <= int(h) <= 7680:
        return int(w) // 2 * 2, int(h) // 2 * 2
    raise UsageError(f"--size must be 720p, 1080p, 4k or WxH (64 to 7680), not {size!r}")


def check_plan(plan: FilmPlan) -> None:
    """UsageError unless the plan can be rendered: sizes, rate, shot times and boxes, and at
    most two shots on screen at once."""
    if not (64 <= plan.width <= 7680 and 64 <= plan.height <= 7680):
        raise UsageError(f"film size {plan.width}x{plan.height} is outside 64 to 7680")
    if not 1 <= plan.fps <= 120:
        raise UsageError(f"--fps must be 1 to 120, not {plan.fps}")
    if not plan.shots:
        raise UsageError("the film has no shots")
    prev: Shot | None = None
    for i, s in enumerate(plan.shots):
        where = f"shot {i + 1} ({s.kind})"
        if s.kind not in ("title", "photo", "clip", "end"):
            raise UsageError(f"{where}: kind must be title, photo, clip or end")
        if not (s.duration > 0 and s.start >= 0 and 0 <= s.fade <= s.duration / 2):
            raise UsageError(f"{where}: needs a positive duration and a fade of at most half of it")
        if s.kind in ("photo", "clip") and not s.path:
            raise UsageError(f"{where}: has no source path")
        for box in (s.box_from, s.box_to):
            if box is not None and (len(box) != 4 or min(box[2:]) <= 0 or box[0] < -1e-6 or box[1] < -1e-6
                                    or box[0] + box[2] > 1 + 1e-6 or box[1] + box[3] > 1 + 1e-6):
                raise UsageError(f"{where}: a box must be [x, y, w, h] inside 0..1")
        if s.kind == "clip" and (s.t_in is None or s.t_out is None or s.t_out <= s.t_in):
            raise UsageError(f"{where}: a clip needs t_in < t_out")
        if prev is not None and (s.start < prev.start or abs(s.start - (prev.end - s.fade)) > 1e-3):
            raise UsageError(f"{where}: must start when the previous shot ends, less its fade")
        prev = s
    if abs(plan.shots[-1].end - plan.duration) > 1e-3:
        raise UsageError(f"the shots end at {plan.shots[-1].end:.3f} s, not at the film's duration {plan.duration:.3f} s")


def ease(u: float) -> float:
    """Smooth start and stop of a pan (cosine ease, 0..1 -> 0..1)."""
    u = min(1.0, max(0.0, u))
    return 0.5 - 0.5 * math.cos(math.pi * u)


def shot_box(shot: Shot, t: float) -> list[float]:
    """The box of the source shown at film time ``t`` (fractions of the upright source)."""
    a = shot.box_from or [0.0, 0.0, 1.0, 1.0]
    b = shot.box_to or a
    u = ease((t - shot.start) / shot.duration) if shot.duration > 0 else 0.0
    return [a[i] + (b[i] - a[i]) * u for i in range(4)]


def source_time(shot: Shot, t: float) -> float:
    """A clip's source second shown at film time ``t``."""
    return float(shot.t_in or 0.0) + max(0.0, t - shot.start)


# -- frame sources ----------------------------------------------------------------------------
# Each source gives the encoder's frames directly (yuv420p at the film's size): FFmpeg's scaler
# crops are integer-pixel, which at the near 1:1 scale of a pan is invisible, and it is 5 ms a
# 1080p frame against 37 ms for Pillow's resize and conversions (measured, bench_film.py).

class _Source:
    def frame(self, t: float) -> Any:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        pass


def _yuv(rgb: np.ndarray, size: tuple[int, int]) -> Any:
    """An RGB array (any size) as the encoder's frame at ``size``."""
    import av

    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
    return frame.reformat(width=size[0], height=size[1], format="yuv420p", interpolation="BILINEAR")


def _crop(rgb: np.ndarray, box: Sequence[float]) -> np.ndarray:
    """The pixels of a fractional box (whole pixels, at least 2 x 2)."""
    h, w = rgb.shape[:2]
    x0 = min(max(0, int(round(box[0] * w))), w - 2)
    y0 = min(max(0, int(round(box[1] * h))), h - 2)
    x1 = min(w, max(x0 + 2, int(round((box[0] + box[2]) * w))))
    y1 = min(h, max(y0 + 2, int(round((box[1] + box[3]) * h))))
    return np.ascontiguousarray(rgb[y0:y1, x0:x1])


class _Card(_Source):
    """A title or end card: light text on a dark ground (rendered once)."""

    def __init__(self, shot: Shot, size: tuple[int, int]) -> None:
        self.yuv = _yuv(np.asarray(card_image(shot.text, size)), size).to_ndarray()

    def frame(self, t: float) -> Any:
        return _fresh(self.yuv)


def card_image(text: Sequence[str], size: tuple[int, int]) -> Image.Image:
    """A card's picture: the first line large, the others smaller, centred."""
    from PIL import Image, ImageDraw, ImageFont

    w, h = size
    img = Image.new("RGB", size, (12, 14, 20))
    draw = ImageDraw.Draw(img)
    lines = [line for line in text if line] or [""]
    fonts: list[Any] = []
    for i, line in enumerate(lines):
        px = max(10, int(h * (0.085 if i == 0 else 0.045)))
        try:
            font: Any = ImageFont.load_default(size=px)
            tw = draw.textlength(line, font=font)
            if tw > w * 0.92:  # a line wider than the frame is shrunk to fit, not cut
                font = ImageFont.load_default(size=max(8, int(px * w * 0.92 / tw)))
        except (TypeError, OSError, AttributeError):  # a Pillow without FreeType: the bitmap font
            font = ImageFont.load_default()
        fonts.append(font)
    boxes = [draw.textbbox((0, 0), line, font=f) for line, f in zip(lines, fonts)]
    gap = int(h * 0.03)
    y = (h - (sum(b[3] - b[1] for b in boxes) + gap * (len(lines) - 1))) // 2
    for i, (line, f, b) in enumerate(zip(lines, fonts, boxes)):
        draw.text(((w - (b[2] - b[0])) // 2 - b[0], y - b[1]), line, font=f,
                  fill=(245, 245, 245) if i == 0 else (190, 196, 210))
        y += (b[3] - b[1]) + gap
    return img


class _Still(_Source):
    """A photo with its pan and zoom: decoded once (upright) at the size the tightest box needs."""

    def __init__(self, shot: Shot, size: tuple[int, int]) -> None:
        from photosearch.files import os_path
        from photosearch.media.decode import decode

        self.shot, self.size = shot, size
        path = os_path(shot.path or "")
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise InputError(f"{shot.path}: cannot read it ({exc.strerror}); gone since indexing? "
                             "Run `photosearch index` and plan again") from None
        boxes = [b for b in (shot.box_from, shot.box_to) if b] or [[0.0, 0.0, 1.0, 1.0]]
        # The source's pixels the tightest box needs, on its shorter side (DCT scaling decodes
        # at least that).
        need = max(max(size[0] / max(b[2], 1e-3), size[1] / max(b[3], 1e-3)) for b in boxes)
        try:
            decoded = decode(data, ext=os.path.splitext(path)[1].lower(), min_side=int(need * 0.75) + 1)
        except DecodeError as exc:
            raise InputError(f"{shot.path}: {exc.reason}") from None
        image = decoded.image.convert("RGB")
        w, h = image.width // 2 * 2, image.height // 2 * 2
        if (w, h) != image.size:
            image = image.crop((0, 0, w, h))
        # Held as the encoder's planes (Y full size, U and V halved): each frame is then a crop
        # and one scaler pass without colour conversion (3 against 6 ms a 1080p frame).
        import av

        flat = av.VideoFrame.from_image(image).reformat(format="yuv420p").to_ndarray().reshape(-1)
        q = w * h // 4
        self.y = flat[:4 * q].reshape(h, w)
        self.u = flat[4 * q:5 * q].reshape(h // 2, w // 2)
        self.v = flat[5 * q:6 * q].reshape(h // 2, w // 2)

    def frame(self, t: float) -> Any:
        import av

        h2, w2 = self.u.shape
        box = shot_box(self.shot, t)
        # Whole chroma pixels (two luma pixels) at least 2 x 2.
        x0 = min(max(0, int(round(box[0] * w2))), w2 - 2)
        y0 = min(max(0, int(round(box[1] * h2))), h2 - 2)
        x1 = min(w2, max(x0 + 2, int(round((box[0] + box[2]) * w2))))
        y1 = min(h2, max(y0 + 2, int(round((box[1] + box[3]) * h2))))
        planes = (self.y[2 * y0:2 * y1, 2 * x0:2 * x1], self.u[y0:y1, x0:x1], self.v[y0:y1, x0:x1])
        packed = np.concatenate([p.reshape(-1) for p in planes]).reshape(-1, 2 * (x1 - x0))
        frame = av.VideoFrame.from_ndarray(packed, format="yuv420p")
        return frame.reformat(width=self.size[0], height=self.size[1], interpolation="BILINEAR")


class _Clip(_Source):
    """A video clip: decoded forward from a seek to the key frame before ``t_in``; the frame
    shown at each output time is the last source frame at or before it."""

    def __init__(self, shot: Shot, size: tuple[int, int]) -> None:
        from photosearch.files import os_path
        from photosearch.media.video import open_video, probe

        self.shot, self.size = shot, size
        if not os.path.exists(os_path(shot.path or "")):
            raise InputError(f"{shot.path}: gone since indexing; run `photosearch index` and plan again")
        try:
            self.container = open_video(shot.path or "")
            self.info = probe(self.container)
        except DecodeError as exc:
            raise InputError(f"{shot.path}: {exc.reason}") from None
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "AUTO"
        t_in = float(shot.t_in or 0.0)
        if t_in > 0 and self.stream.time_base:
            try:
                self.container.seek(int(t_in / self.stream.time_base), stream=self.stream, backward=True)
            except Exception:  # an unseekable stream decodes from its start
                pass
        self.frames = self._decode()
        self.current: Any = None
        self.next: Any = next(self.frames, None)
        self.out: Any = None
        self.out_of: Any = None

    def _decode(self) -> Iterator[Any]:
        try:
            for packet in self.container.demux(self.stream):
                yield from packet.decode()
        except Exception:  # a damaged tail ends the clip: its last good frame stays on screen
            return

    def frame(self, t: float) -> Any:
        want = source_time(self.shot, t) + 1e-4
        while self.next is not None and (self.next.time is None or self.next.time <= want or self.current is None):
            self.current, self.next = self.next, next(self.frames, None)
        if self.current is None:
            raise InputError(f"{self.shot.path}: no frame could be decoded at {self.shot.t_in:.1f} s")
        if self.out_of is not self.current:
            self.out = _clip_frame(self.current, self.shot.box_from, self.size).to_ndarray()
            self.out_of = self.current
        return _fresh(self.out)

    def close(self) -> None:
        try:
            self.container.close()
        except Exception:
            pass


def _fresh(yuv: np.ndarray) -> Any:
    """A new frame of held pixels: the encoder keeps the frames it is given (look-ahead), so a
    picture shown again must not be the same frame object with a new time."""
    import av

    return av.VideoFrame.from_ndarray(yuv, format="yuv420p")


def _clip_frame(frame: Any, box: Sequence[float] | None, size: tuple[int, int]) -> Any:
    """A decoded video frame, turned upright, cut to ``box`` (fractions of the upright frame) and
    scaled to ``size``: one scaler pass when it needs neither turning nor cutting."""
    rotation = round(float(getattr(frame, "rotation", 0) or 0) / 90) * 90 % 360
    w, h = frame.width, frame.height
    uw, uh = (h, w) if rotation in (90, 270) else (w, h)
    box = list(box) if box else cover_box((uw, uh), size)
    if not rotation and box[0] < 1e-3 and box[1] < 1e-3 and box[2] > 1 - 1e-3 and box[3] > 1 - 1e-3:
        return frame.reformat(width=size[0], height=size[1], format="yuv420p", interpolation="BILINEAR")
    # Scale so the box is about the film's size, then turn and cut.
    k = min(4.0, max(size[0] / (box[2] * uw), size[1] / (box[3] * uh)))
    sw, sh = max(2, int(round(w * k))), max(2, int(round(h * k)))
    rgb = frame.reformat(width=sw, height=sh, format="rgb24", interpolation="BILINEAR").to_ndarray()
    if rotation:
        rgb = np.rot90(rgb, k=rotation // 90)   # the display turns the stored frame counter-clockwise
    return _yuv(_crop(rgb, box), size)


def cover_box(source: tuple[int, int], out: tuple[int, int]) -> list[float]:
    """The largest centred box of the output's shape inside a source (fractions)."""
    sw, sh = source
    target = out[0] / out[1]
    if sw / sh > target:
        w = target * sh / sw
        return [(1 - w) / 2, 0.0, w, 1.0]
    h = sw / target / sh
    return [0.0, (1 - h) / 2, 1.0, h]


def _open(shot: Shot, size: tuple[int, int]) -> _Source:
    if shot.kind == "photo":
        return _Still(shot, size)
    if shot.kind == "clip":
        return _Clip(shot, size)
    return _Card(shot, size)


# -- sound -----------------------------------------------------------------------------------

def _decode_audio(path: str, start: float, seconds: float) -> np.ndarray:
    """(2, n) float32 at :data:`AUDIO_RATE` of ``path`` from ``start``; empty when it has no sound."""
    import av

    from photosearch.files import os_path

    want = int(round(seconds * AUDIO_RATE))
    try:
        with av.open(os_path(path), metadata_errors="replace") as c:
            if not c.streams.audio:
                return np.zeros((2, 0), np.float32)
            stream = c.streams.audio[0]
            if start > 0 and stream.time_base:
                c.seek(int(start / stream.time_base), stream=stream, backward=True)
            resampler = av.AudioResampler(format="fltp", layout="stereo", rate=AUDIO_RATE)
            parts: list[np.ndarray] = []
            got = 0
            skip = None
            for packet in c.demux(stream):
                for frame in packet.decode():
                    if skip is None:  # samples before ``start`` (the seek lands on a packet before it)
                        skip = max(0, int(round(((start - (frame.time or 0.0)) if frame.time is not None else 0) * AUDIO_RATE)))
                    for out in resampler.resample(frame):
                        arr = out.to_ndarray().reshape(2, -1)
                        if skip:
                            cut = min(skip, arr.shape[1])
                            arr, skip = arr[:, cut:], skip - cut
                        parts.append(arr)
                        got += arr.shape[1]
                if got >= want:
                    break
    except (av.FFmpegError, OSError, ValueError, EOFError) as exc:
        raise InputError(f"{path}: not readable sound ({getattr(exc, 'strerror', None) or type(exc).__name__})") from None
    if not parts:
        return np.zeros((2, 0), np.float32)
    return np.concatenate(parts, axis=1)[:, :want].astype(np.float32)


def check_music(path: str) -> None:
    """InputError with one line unless ``path`` is a readable file with sound."""
    if not os.path.isfile(path):
        raise InputError(f"--music: no such file: {path}")
    try:
        sound = _decode_audio(path, 0.0, 0.5)
    except InputError as exc:
        raise InputError(f"--music: {exc.message}") from None
    if sound.shape[1] == 0:
        raise InputError(f"--music: {path} has no sound PyAV can decode")


def soundtrack(plan: FilmPlan) -> np.ndarray | None:
    """The film's sound, (2, n) float32 for its whole length, or None (no music and no clip sound).
    Held whole: a minute of stereo is 23 MB, unlike its frames."""
    n = int(round(plan.duration * AUDIO_RATE))
    if plan.music:
        music = _decode_audio(plan.music, 0.0, plan.duration)
        if music.shape[1] == 0:
            raise InputError(f"--music: {plan.music} has no sound PyAV can decode")
        track = np.zeros((2, n), np.float32)
        track[:, : music.shape[1]] = music[:, :n] * 0.9
        end = min(n, music.shape[1])
        fade = min(end, int(3.0 * AUDIO_RATE))         # fade out over the last 3 s of the music
        track[:, end - fade:end] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
        return track
    track = np.zeros((2, n), np.float32)
    used = False
    for s in plan.shots:
        if s.kind != "clip" or not s.sound:
            continue
        sound = _decode_audio(s.path or "", float(s.t_in or 0.0), s.duration)
        if sound.shape[1] == 0:
            continue
        used = True
        a = int(round(s.start * AUDIO_RATE))
        m = min(sound.shape[1], n - a)
        if m <= 0:
            continue
        # Full level mid-shot, low (25%) under the transitions at both ends.
        gain = np.ones(m, np.float32)
        ramp = min(m // 2, int(max(s.fade, 0.5) * AUDIO_RATE))
        if ramp > 0:
            gain[:ramp] = np.linspace(0.25, 1.0, ramp, dtype=np.float32)
            gain[m - ramp:] = np.linspace(1.0, 0.25, ramp, dtype=np.float32)
        track[:, a:a + m] += sound[:, :m] * gain * 0.8
    if not used:
        return None
    np.clip(track, -1.0, 1.0, out=track)
    return track


# -- rendering -------------------------------------------------------------------------------

def render(plan: FilmPlan, out: str | os.PathLike[str], *, force: bool = False,
           progress: Callable[[int, int], None] | None = None, preset: str = "superfast") -> dict[str, Any]:
    """Render ``plan`` to the MP4 ``out`` (written under a temporary name, then renamed); returns
    what was written. ``progress(done, total)`` is called per frame."""
    import av

    check_plan(plan)
    dest = Path(out).expanduser()
    if dest.suffix.lower() not in (".mp4", ".m4v", ".mov"):
        raise UsageError(f"--out must name an .mp4 file, not {dest.name!r}")
    if dest.is_dir():
        raise InputError(f"--out: {dest} is a folder")
    if dest.exists() and not force:
        raise InputError(f"--out: {dest} exists (add --force to replace it)")
    folder = dest.parent if str(dest.parent) else Path(".")
    if not folder.is_dir():
        raise InputError(f"--out: no such folder: {folder}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"--out: cannot write in {folder} (permission denied)")
    if plan.music:
        check_music(plan.music)
    size = (plan.width // 2 * 2, plan.height // 2 * 2)
    track = soundtrack(plan)
    total = int(round(plan.duration * plan.fps))
    tmp = folder / f".{dest.stem}.{os.getpid()}.part{dest.suffix}"
    try:
        with av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"}) as container:
            vs = container.add_stream("libx264", rate=plan.fps, options={"preset": preset, "crf": "20"})
            vs.width, vs.height, vs.pix_fmt = size[0], size[1], "yuv420p"
            vs.codec_context.thread_count = 0  # every core
            astream = None
            if track is not None:
                astream = container.add_stream("aac", rate=AUDIO_RATE)
                astream.layout = "stereo"
            audio_at = 0
            # Frames are made on a thread of their own, a few ahead of the encoder: FFmpeg's
            # scaler and x264 both run without the GIL, so the two cores share the work.
            with _Frames(plan, size, total) as frames:
                for n, frame in frames:
                    frame.pts = n
                    for packet in vs.encode(frame):
                        container.mux(packet)
                    if astream is not None and track is not None:
                        audio_at = _mux_audio(container, astream, track, audio_at,
                                              int(round((n + 1) / plan.fps * AUDIO_RATE)))
                    if progress is not None:
                        progress(n + 1, total)
            for packet in vs.encode():
                container.mux(packet)
            if astream is not None and track is not None:
                _mux_audio(container, astream, track, audio_at, track.shape[1])
                for packet in astream.encode():
                    container.mux(packet)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return {"path": str(dest), "width": size[0], "height": size[1], "fps": plan.fps, "frames": total,
            "duration": total / plan.fps, "audio": track is not None,
            "shots": sum(1 for s in plan.shots if s.kind in ("photo", "clip")), "bytes": dest.stat().st_size}


class _Frames:
    """The film's frames in order, (number, frame), made on a worker thread at most
    :attr:`AHEAD` ahead; only the shots on screen are open. An error there is raised here."""

    AHEAD = 6

    def __init__(self, plan: FilmPlan, size: tuple[int, int], total: int) -> None:
        import queue
        import threading

        self.plan, self.size, self.total = plan, size, total
        self.queue: queue.Queue[Any] = queue.Queue(self.AHEAD)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="film-frames", daemon=True)

    def __enter__(self) -> _Frames:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        while self.thread.is_alive():
            try:
                self.queue.get(timeout=0.05)   # unblock a worker waiting to put
            except Exception:
                pass
        self.thread.join()

    def __iter__(self) -> Iterator[tuple[int, Any]]:
        for _ in range(self.total):
            item = self.queue.get()
            if isinstance(item, BaseException):
                raise item
            yield item

    def _put(self, item: Any) -> bool:
        import queue

        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        plan, sources = self.plan, {}
        try:
            for n in range(self.total):
                t = n / plan.fps
                on = [i for i, s in enumerate(plan.shots) if s.start - 1e-9 <= t < s.end - 1e-9] or [len(plan.shots) - 1]
                for i in [i for i in sources if i not in on]:
                    sources.pop(i).close()   # a shot off screen lets go of its pixels or decoder
                for i in on:
                    if i not in sources:
                        sources[i] = _open(plan.shots[i], self.size)
                frame = sources[on[0]].frame(t)
                if len(on) > 1:
                    later = plan.shots[on[-1]]
                    alpha = (t - later.start) / later.fade if later.fade > 0 else 1.0
                    frame = _blend(frame, sources[on[-1]].frame(t), min(1.0, max(0.0, alpha)))
                if not self._put((n, frame)):
                    return
        except BaseException as exc:  # handed to the encoding thread, which raises it
            self._put(exc)
        finally:
            for src in sources.values():
                src.close()


def _blend(a: Any, b: Any, alpha: float) -> Any:
    """A crossfade step of two yuv420p frames (a linear mix in YUV is the same mix in RGB)."""
    import av

    w = int(round(alpha * 256))
    mixed = (a.to_ndarray().astype(np.uint16) * (256 - w) + b.to_ndarray().astype(np.uint16) * w + 128) >> 8
    return av.VideoFrame.from_ndarray(mixed.astype(np.uint8), format="yuv420p")


def _mux_audio(container: Any, stream: Any, track: np.ndarray, at: int, until: int) -> int:
    import av

    chunk = 1024
    until = min(until, track.shape[1])
    while at < until:
        part = np.ascontiguousarray(track[:, at:at + chunk])
        frame = av.AudioFrame.from_ndarray(part, format="fltp", layout="stereo")
        frame.sample_rate = AUDIO_RATE
        frame.pts = at
        for packet in stream.encode(frame):
            container.mux(packet)
        at += part.shape[1]
    return at


__all__ = ["Shot", "FilmPlan", "SIZES", "parse_size", "check_plan", "shot_box", "source_time", "cover_box",
           "check_music", "soundtrack", "render", "ease"]
