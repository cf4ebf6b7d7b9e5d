"""Videos: what a file holds (probe) and the frames worth looking at (sample), with PyAV.

PyAV bundles FFmpeg's libraries in its wheel: MP4/MOV/M4V/3GP (H.264, HEVC), MKV/WebM (VP8,
VP9, AV1), AVI and MTS/M2TS decode without a system ffmpeg.

Sampling looks at about one frame every ``every`` seconds, plus scene cuts, capped per video.
Where key frames are dense enough (phones write one every second or two, and encoders put one
at every scene cut) it decodes only the key frames it takes, and no other frame at all. Where
they are sparse it decodes the stream and converts only the frames it keeps. Each kept frame is
scaled by FFmpeg straight to the size the analyzers need (``min_side`` on its shorter side,
``min_long`` on its longer), turned upright by the display rotation, and the file's pixels are
never held whole: memory is the kept frames.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from photosearch.errors import DecodeError
from photosearch.files import os_path

if TYPE_CHECKING:
    from PIL import Image

#: Extensions read as videos: phones and cameras (MP4, MOV, 3GP, AVCHD's MTS), camcorders (DV,
#: MPEG-2 in MOD/TOD, HDV's M2T), professional cameras (MXF), recorders and the web.
VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".m4v", ".3gp", ".3gpp", ".3g2", ".mkv", ".webm", ".avi", ".mts",
                              ".m2ts", ".m2t", ".mpg", ".mpeg", ".mpe", ".wmv", ".asf", ".flv", ".vob", ".dv",
                              ".mxf", ".mod", ".tod", ".ogv", ".wtv"})
#: Seconds between sampled frames, and the most frames kept from one video (a longer video is
#: sampled more sparsely, so a 3-hour recording costs what a 10-minute one does).
SAMPLE_EVERY = 2.0
MAX_FRAMES = 300
#: Frames decoded from one video at most (a stream that never ends, or a broken duration).
MAX_DECODED = 200_000
#: Mean grey-level change (0-255) of a 16x16 thumbnail between two key frames that marks a scene
#: cut: a key frame that close after the last kept one is kept too (encoders put key frames at cuts).
SCENE_CUT = 25.0
#: Frames larger than this (8K and beyond) are still read: FFmpeg scales them down one at a time.
MAX_SIDE = 16384
#: Above this many pixels a frame (beyond 4K) is decoded one at a time (see ``_sample``).
HUGE_PIXELS = 3840 * 2160 * 11 // 10


@dataclass
class VideoInfo:
    """What a video file says about itself."""

    duration: float | None        # seconds
    fps: float | None
    codec: str | None
    width: int                    # as displayed (rotation applied)
    height: int
    rotation: int                 # degrees the display turns the stored frames counter-clockwise
    container: str
    taken_at: datetime | None = None
    gps_lat: float | None = None
    gps_lon: float | None = None
    camera_make: str | None = None
    camera_model: str | None = None
    content_identifier: str | None = None   # Apple's, pairing a Live Photo's still and movie


@dataclass
class Sampled:
    """A probed video and its sampled frames: (seconds, upright RGB image), in time order."""

    info: VideoInfo
    frames: list[tuple[float, Image.Image]] = field(default_factory=list)


def _av() -> Any:
    import av

    av.logging.set_level(av.logging.PANIC)  # broken files say why through exceptions, not stderr
    return av


def open_video(path: str) -> Any:
    """The PyAV container of ``path``; DecodeError with one line if it cannot be opened."""
    av = _av()
    try:
        return av.open(os_path(path), metadata_errors="replace")
    except av.FFmpegError as exc:
        raise DecodeError(f"not a readable video: {_why(exc)}") from None
    except (OSError, ValueError, EOFError) as exc:
        raise DecodeError(f"not a readable video: {exc}") from None


def _why(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return text.split(":")[0].strip() or type(exc).__name__


def probe(container: Any) -> VideoInfo:
    """Duration, rate, codec, stored size, date, place and camera of an open video (the display
    rotation is known from the first decoded frame: :func:`sample` sets it, and the displayed size)."""
    streams = container.streams.video
    if not streams:
        raise DecodeError("no video stream (an audio-only file?)")
    s = streams[0]
    tags = {str(k).lower(): str(v) for k, v in {**(s.metadata or {}), **(container.metadata or {})}.items()}
    duration = None
    if s.duration is not None and s.time_base is not None:
        duration = float(s.duration * s.time_base)
    elif container.duration:
        duration = container.duration / 1_000_000
    rate = s.average_rate or s.guessed_rate
    width, height = int(s.codec_context.width or 0), int(s.codec_context.height or 0)
    if width <= 0 or height <= 0:
        raise DecodeError("the video stream has no frame size")
    info = VideoInfo(duration=duration if duration and duration > 0 else None,
                     fps=float(rate) if rate else None, codec=s.codec_context.name,
                     width=width, height=height, rotation=0, container=container.format.name)
    info.taken_at = _date(tags.get("com.apple.quicktime.creationdate") or tags.get("creation_time")
                          or tags.get("date"))
    where = tags.get("com.apple.quicktime.location.iso6709") or tags.get("location") or tags.get("location-eng")
    if where:
        info.gps_lat, info.gps_lon = _iso6709(where)
    info.camera_make = _clean(tags.get("com.apple.quicktime.make") or tags.get("make"))
    info.camera_model = _clean(tags.get("com.apple.quicktime.model") or tags.get("model"))
    info.content_identifier = _clean(tags.get("com.apple.quicktime.content.identifier"))
    return info


def _clean(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip().strip("\x00").strip()
    return value or None


_EPOCH_ZERO = {datetime(1970, 1, 1), datetime(1904, 1, 1)}


def _date(value: str | None) -> datetime | None:
    """A container date as a naive wall time: local where the text has an offset (Apple's
    creationdate), else UTC (MP4's creation_time, which is all it says)."""
    if not value:
        return None
    text = value.strip().replace("Z", "+00:00")
    for candidate in (text, text.replace(" ", "T", 1)):
        try:
            when = datetime.fromisoformat(candidate)
            break
        except ValueError:
            continue
    else:
        m = re.match(r"^(\d{4})(?:[-:](\d\d)[-:](\d\d))?", text)
        if not m or not m.group(2):
            return None
        when = datetime(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    # Apple's creationdate carries the local offset: its wall time is the local time, as in EXIF.
    # MP4's creation_time is UTC (Z), which is all it says.
    when = when.replace(tzinfo=None)
    if when.replace(hour=0, minute=0, second=0, microsecond=0) in _EPOCH_ZERO or when.year < 1970:
        return None  # "no date" as muxers write it
    return when


_ISO6709 = re.compile(r"^\s*([+-]\d+(?:\.\d+)?)([+-]\d+(?:\.\d+)?)")


def _iso6709(value: str) -> tuple[float | None, float | None]:
    """Latitude and longitude from ISO 6709 text (``+48.8577+002.2950+035.000/``)."""
    m = _ISO6709.match(value)
    if not m:
        return None, None
    lat, lon = float(m.group(1)), float(m.group(2))
    if not (-90 <= lat <= 90 and -180 <= lon <= 180) or (lat == 0 and lon == 0):
        return None, None
    return lat, lon


def sample(path: str, *, min_side: int, min_long: int = 0, every: float = SAMPLE_EVERY,
           max_frames: int = MAX_FRAMES, on_probe: Callable[[VideoInfo], Any] | None = None) -> Sampled:
    """Probe ``path`` and take its frames worth looking at (see the module docstring), each
    scaled to at least ``min_side`` on its shorter side and ``min_long`` on its longer (never
    enlarged). ``on_probe`` hears what the file is before any frame is decoded. DecodeError
    (one line) when it is not a video, has no video stream, or no frame decodes."""
    av = _av()
    size = (min_side, min_long)
    with open_video(path) as container:
        info = probe(container)
        if on_probe is not None:
            on_probe(info)
        if info.duration is not None:
            every = max(every, info.duration / max_frames)
        out = Sampled(info)
        try:
            keys = _sample(container, info, size, every, max_frames, keyframes_only=True)
            if keys and _dense(keys, info.duration, every):
                out.frames = keys
                return _displayed(out)
        except (av.FFmpegError, ValueError, EOFError, MemoryError):
            keys = []
    with open_video(path) as container:
        try:
            out.frames = _sample(container, info, size, every, max_frames, keyframes_only=False)
        except (av.FFmpegError, ValueError, EOFError) as exc:
            if not keys:
                raise DecodeError(f"corrupt video: {_why(exc)}") from None
            out.frames = keys
        except MemoryError:
            raise DecodeError("video frames too large to decode in memory") from None
    if not out.frames:
        out.frames = keys
    if not out.frames:
        raise DecodeError("no video frame could be decoded (truncated or corrupt)")
    return _displayed(out)


def frame_at(path: str, t: float, *, min_side: int) -> Image.Image:
    """The upright frame shown at ``t`` seconds (the last one before it), its shorter side about
    ``min_side``: a seek to the key frame before ``t``, then a decode up to it."""
    av = _av()
    with open_video(path) as container:
        info = probe(container)
        stream = container.streams.video[0]
        try:
            if t > 0 and stream.time_base:
                container.seek(int(t / stream.time_base), stream=stream, backward=True, any_frame=False)
            best = None
            try:
                for n, frame in enumerate(_frames(container, stream)):
                    if best is None or frame.time is None or frame.time <= t + 1e-3:
                        best = frame
                    if (frame.time is not None and frame.time > t) or n > MAX_DECODED:
                        break
            finally:
                _settle(stream.codec_context)
        except (av.FFmpegError, ValueError, EOFError) as exc:
            raise DecodeError(f"corrupt video: {_why(exc)}") from None
        if best is None:
            raise DecodeError("no video frame could be decoded (truncated or corrupt)")
        return _upright(best, info, (min_side, 0))


def _displayed(out: Sampled) -> Sampled:
    """The info's size as displayed (the frames are upright already)."""
    if out.info.rotation in (90, 270):
        out.info.width, out.info.height = out.info.height, out.info.width
    return out


def _dense(frames: list[tuple[float, Any]], duration: float | None, every: float) -> bool:
    """Whether key frames alone sample the video well: no gap over 2 sampling steps."""
    times = [t for t, _ in frames] + ([duration] if duration else [])
    return all(b - a <= 2 * every for a, b in zip(times, times[1:])) and (duration is not None or len(times) > 1)


def _sample(container: Any, info: VideoInfo, size: tuple[int, int], every: float, max_frames: int, *,
            keyframes_only: bool) -> list[tuple[float, Image.Image]]:
    stream = container.streams.video[0]
    ctx = stream.codec_context
    if (ctx.width or 0) * (ctx.height or 0) > HUGE_PIXELS:
        # Frame threading holds a frame per thread in flight (50 MB each at 8K): beyond 4K,
        # slices of one frame at a time keep memory to the frames the codec itself needs.
        ctx.thread_type = "SLICE"
    else:
        ctx.thread_type = "AUTO"
    if keyframes_only:
        ctx.skip_frame = "NONKEY"
    frames: list[tuple[float, Image.Image]] = []
    last: np.ndarray | None = None
    next_t = 0.0
    decoded = 0
    start = float(stream.start_time * stream.time_base) if stream.start_time is not None and stream.time_base else 0.0
    tb = float(stream.time_base) if stream.time_base else None
    gaps: list[float] = []
    prev_key: list[float] = []

    def wanted(packet: Any) -> bool:
        """Only the key frames the sampling takes are decoded: those due on the sampling grid,
        and those off the stream's key frame rhythm (an encoder's scene cut)."""
        if not keyframes_only or packet.pts is None or tb is None or packet.size == 0:
            return True
        if not packet.is_keyframe:
            return False
        t = packet.pts * tb - start
        off_rhythm = bool(prev_key) and len(gaps) >= 2 and t - prev_key[0] < 0.8 * float(np.median(gaps[-16:]))
        if prev_key:
            gaps.append(t - prev_key[0])
        prev_key[:] = [t]
        return t + 1e-6 >= next_t or off_rhythm or len(gaps) < 3

    try:
        for frame in _frames(container, stream, wanted):
            decoded += 1
            if decoded > MAX_DECODED:
                break
            if frame.time is None:
                continue
            t = max(0.0, float(frame.time) - start)
            if info.duration is not None and t > info.duration * 1.5 + 10:
                break  # timestamps far past the declared end: a broken or endless stream
            sig = _signature(frame) if keyframes_only else None
            due = t + 1e-6 >= next_t
            # A cut between two samples is kept while the cap leaves room for the samples still to come.
            room = max_frames - len(frames) - (int(max(0.0, info.duration - t) / every) + 1 if info.duration else 0)
            if not due and not (room > 0 and sig is not None and last is not None
                                and float(np.abs(sig - last).mean()) > SCENE_CUT):
                continue
            frames.append((round(t, 3), _upright(frame, info, size)))
            last = sig
            if due:  # a scene cut between two samples leaves the sampling grid as it is
                next_t = t + every
            if len(frames) >= max_frames:
                break
    finally:
        _settle(ctx)
    return frames


def _settle(ctx: Any) -> None:
    """Drop what the decoder still holds. Closing a frame-threaded decoder left mid-stream (a
    cap or a cut-off ended the loop) can deadlock in FFmpeg; flushed first, it cannot."""
    try:
        ctx.flush_buffers()
    except Exception:  # noqa: BLE001 - nothing more to settle
        pass


def _signature(frame: Any) -> np.ndarray:
    """A 16x16 grey thumbnail of a frame (FFmpeg scales it): what a scene cut changes."""
    return frame.reformat(width=16, height=16, format="gray").to_ndarray().astype(np.float32)


def _frames(container: Any, stream: Any, wanted: Any = None) -> Iterator[Any]:
    for packet in container.demux(stream):
        if wanted is None or wanted(packet):
            yield from packet.decode()


def _upright(frame: Any, info: VideoInfo, size: tuple[int, int]) -> Image.Image:
    """The frame as an upright RGB image whose shorter side is at least ``size[0]`` and longer
    side at least ``size[1]`` (FFmpeg scales; never enlarged)."""
    w, h = frame.width, frame.height
    if w <= 0 or h <= 0 or max(w, h) > MAX_SIDE:
        raise DecodeError(f"video frame of {w}x{h} pixels is outside what is read")
    k = min(1.0, max(max(size[0], 1) / min(w, h), size[1] / max(w, h)))
    img = frame.reformat(width=max(2, int(round(w * k / 2)) * 2), height=max(2, int(round(h * k / 2)) * 2),
                         format="rgb24").to_image()
    # The display matrix turns the stored frame counter-clockwise (a phone held upright: -90).
    rotation = round(float(getattr(frame, "rotation", 0) or 0) / 90) * 90 % 360
    info.rotation = rotation
    if rotation:
        from PIL import Image

        img = img.transpose({90: Image.Transpose.ROTATE_90, 180: Image.Transpose.ROTATE_180,
                             270: Image.Transpose.ROTATE_270}[rotation])
    return img


def is_video(path: str) -> bool:
    """Whether ``path`` is read as a video (by its extension)."""
    return os.path.splitext(path)[1].lower() in VIDEO_EXTENSIONS


__all__ = ["VIDEO_EXTENSIONS", "VideoInfo", "Sampled", "probe", "sample", "open_video", "frame_at", "is_video"]
