"""Hostile files (issue 15): a corpus made here of the files that took `index` down elsewhere. The
run must finish in bounded time and memory, skip each with a one-line reason, and index the rest."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

from conftest import run_cli, write_photo


def _png(path: Path, width: int, height: int, mode: int = 0, rows: bytes | None = None) -> Path:
    """A PNG of ``width`` x ``height`` (colour type ``mode``: 0 grey, 2 RGB), all black unless
    ``rows`` is given, compressed in pieces (a 250 MP one is a few hundred KB)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    channels = 3 if mode == 2 else 1
    comp = zlib.compressobj(9)
    line = b"\0" + b"\0" * (width * channels)
    body = b"".join(comp.compress(line) for _ in range(height)) if rows is None else comp.compress(rows)
    body += comp.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, mode, 0, 0, 0))
                     + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path


def _run_measured(args: list[str], library: Path, timeout: float) -> tuple[subprocess.CompletedProcess[str], int]:
    """The CLI in a fresh process; returns its result and its peak RSS in MB.

    The peak is the process's own (VmHWM of /proc/self/status): getrusage's ru_maxrss keeps
    across exec the peak of the process that started it (Linux carries the old memory's high-water
    mark into the new program's), so a test worker grown large by earlier tests made the CLI
    look 2.5 GB large."""
    # Read at exit (the program ends the process itself: exit handlers are what still runs).
    code = ("import atexit, resource, runpy, sys\n"
            "def peak():\n"
            "    try:\n"
            "        kb = next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM:'))\n"
            "    except (OSError, StopIteration):\n"
            "        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            "    print('PEAK_RSS_KB', kb, file=sys.stderr, flush=True)\n"
            "atexit.register(peak)\n"
            f"sys.argv = ['photosearch', *{args!r}]\n"
            "runpy.run_module('photosearch', run_name='__main__')\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PHOTOSEARCH_LIBRARY": str(library)}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, env=env)
    peak = [int(line.split()[1]) for line in r.stderr.splitlines() if line.startswith("PEAK_RSS_KB")]
    return r, (peak[0] // 1024 if peak else -1)


def test_hostile_files_are_skipped_with_reasons_in_bounded_time_and_memory(library, tmp_path):
    d = tmp_path / "hostile"
    d.mkdir()
    good = [write_photo(d / f"good{i}.jpg", seed=900 + i) for i in range(3)]
    os.mkfifo(d / "fifo.jpg")                                          # would block a plain open() forever
    (d / "zero.jpg").symlink_to("/dev/zero")                            # endless bytes
    (d / "loop-a.jpg").symlink_to(d / "loop-b.jpg")                     # a symlink loop
    (d / "loop-b.jpg").symlink_to(d / "loop-a.jpg")
    (d / "empty.jpg").write_bytes(b"")
    whole = (d / "good0.jpg").read_bytes()
    (d / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    _png(d / "strip.png", 1, 60000)                                     # 1x60000: a resize to 224 px wide = 9 GB
    _png(d / "bomb.png", 40000, 40000, rows=b"\0")                      # declares 1.6 GP
    _png(d / "huge.png", 16000, 15625)                                  # 250 MP, within the pixel limit
    with open(d / "sparse.jpg", "wb") as f:                            # 20 GB of nothing, on no disk
        f.truncate(20_000_000_000)
    latin1 = write_photo(Path(os.fsdecode(os.path.join(os.fsencode(d), b"caf\xe9-latin1.jpg"))), seed=990)  # not UTF-8

    r, peak_mb = _run_measured(["index", str(d), "--json"], library.paths.root, timeout=240)
    assert r.returncode == 0, r.stderr[-2000:]       # skipped files are reported; the others indexed
    doc = json.loads(r.stdout)
    reasons = {Path(s["path"]).name: s["reason"] for s in doc["skipped"]}
    assert "FIFO" in reasons["fifo.jpg"]
    assert "device" in reasons["zero.jpg"]
    assert "symbolic links" in reasons["loop-a.jpg"] and "symbolic links" in reasons["loop-b.jpg"]
    assert "empty" in reasons["empty.jpg"]
    assert "truncated" in reasons["truncated.jpg"] or "corrupt" in reasons["truncated.jpg"]
    assert "aspect ratio" in reasons["strip.png"]
    assert "decompression bomb" in reasons["bomb.png"]
    assert "too large" in reasons["sparse.jpg"] and "20,000 MB" in reasons["sparse.jpg"]
    assert "huge.png" not in reasons                   # big but legal: indexed from a reduced decode
    assert "caf\\xe9-latin1.jpg" not in reasons and latin1.exists()   # kept and indexed (tests/test_names.py)
    assert doc["photos"] == len(good) + 2
    assert all("\n" not in s["reason"] for s in doc["skipped"])
    assert "Traceback" not in r.stderr
    assert 0 < peak_mb < 1500, peak_mb
    # A second run does not trip on them either (remembered, or skipped again with the same reasons).
    again, _ = _run_measured(["index", str(d), "--json"], library.paths.root, timeout=240)
    assert again.returncode in (0, 3), again.stderr[-2000:]
    assert json.loads(again.stdout)["photos"] == 0


def test_image_identity_never_fails_on_hostile_headers():
    """The identity is read from headers before anything else: a malformed or hostile one must
    give None (the bytes are the identity then), quickly, whatever it claims."""
    import time

    from photosearch.media.identity import content_id

    huge_count = (b"II*\0" + struct.pack("<I", 8) + struct.pack("<H", 2)
                  + struct.pack("<HHI4s", 273, 4, 4_000_000_000, b"\x10\0\0\0")
                  + struct.pack("<HHI4s", 279, 4, 1, b"\x01\0\0\0") + b"\0\0\0\0")
    cases = [huge_count, b"II*\0\xff\xff\xff\xff", b"MM\0*\0\0\0\x08\xff\xff", b"\xff\xd8\xff\xe1\xff\xff",
             b"\xff\xd8\xff" + b"\xff" * 100, b"\x89PNG\r\n\x1a\n\0\0\0\xffIHDR", b"RIFF\0\0\0\0WEBPVP8 \xff\xff\xff\xff"]
    started = time.monotonic()
    for data in cases:
        assert content_id(data) is None, data[:16]
    assert time.monotonic() - started < 1.0


class _Stall:
    """An analyzer that hangs on one file, as a decoder can on a pathological one."""

    def __new__(cls, *args: object, **kwargs: object):  # built as an Analyzer subclass lazily
        from photosearch.ingest.analyzers import Analyzer

        class Stall(Analyzer):
            name = "stall"

            def __init__(self) -> None:
                import threading

                self.release = threading.Event()
                self.calls: list[str] = []

            def analyze(self, photo):
                self.calls.append(os.path.basename(photo.item.path))
                if photo.item.path.endswith("slow.jpg"):
                    self.release.wait(60)
                return None

            def store(self, cat, rows):
                return 0

        return Stall()


def test_a_file_over_its_time_budget_is_skipped_remembered_and_does_not_hold_the_run(library, tmp_path,
                                                                                    monkeypatch):
    import time

    from photosearch.ingest.runners import RunOptions, run_index

    d = tmp_path / "photos"
    d.mkdir()
    names = ["a.jpg", "slow.jpg", "b.jpg", "c.jpg"]
    for i, n in enumerate(names):
        write_photo(d / n, seed=950 + i)
    monkeypatch.setenv("PHOTOSEARCH_FILE_SECONDS", "1.5")
    stall = _Stall()
    model = library.models.load()
    t0 = time.monotonic()
    try:
        report = run_index(library.paths, model, model.name, [str(d)],
                           options=RunOptions(extra_analyzers=(stall,), workers=2))
    finally:
        stall.release.set()
    took = time.monotonic() - t0
    assert took < 30, took                              # the stalled file held nothing up for long
    (skip,) = report.skipped
    assert Path(skip.path).name == "slow.jpg" and "took longer than 1.5 s" in skip.reason
    assert report.photos == 3
    # The next run does not try it again (it would stall again): remembered until the file changes.
    stall2 = _Stall()
    stall2.release.set()
    again = run_index(library.paths, model, model.name, [str(d)], options=RunOptions(extra_analyzers=(stall2,)))
    assert "slow.jpg" not in stall2.calls and again.photos == 0
    write_photo(d / "slow.jpg", seed=999)                                # changed: tried again
    third = run_index(library.paths, model, model.name, [str(d)], options=RunOptions(extra_analyzers=(stall2,)))
    assert third.skipped == [] and "slow.jpg" in stall2.calls


def _tiff_samples_per_pixel(path: Path, value: int) -> Path:
    """``path`` (a little-endian TIFF Pillow wrote) with its SamplesPerPixel tag set to ``value``."""
    data = bytearray(path.read_bytes())
    ifd = struct.unpack_from("<I", data, 4)[0]
    for i in range(struct.unpack_from("<H", data, ifd)[0]):
        at = ifd + 2 + 12 * i
        if struct.unpack_from("<H", data, at)[0] == 277:
            struct.pack_into("<H", data, at + 8, value)
    path.write_bytes(bytes(data))
    return path


def test_codec_libraries_print_nothing_of_their_own(library, tmp_path):
    """A folder of damaged TIFFs leaves stderr to photosearch: the libtiff inside Pillow prints
    each bad code word itself, and Pillow logs some errors before raising them; the reasons
    come through the skipped list instead."""
    from PIL import Image, ImageDraw

    d = tmp_path / "tiffs"
    d.mkdir()
    page = Image.new("1", (800, 600), 1)
    draw = ImageDraw.Draw(page)
    for x in range(0, 800, 13):
        draw.line([(x, 0), (800 - x, 600)], fill=0, width=2)
    page.save(d / "fax.tif", compression="group4")
    data = bytearray((d / "fax.tif").read_bytes())
    for i in range(40, len(data) // 2, 7):                  # the G4 strip garbled
        data[i] ^= 0x5A
    (d / "fax.tif").write_bytes(bytes(data))
    Image.new("RGB", (64, 48), (200, 30, 30)).save(d / "wide.tif")
    _tiff_samples_per_pixel(d / "wide.tif", 65535)           # Pillow logs, then raises
    write_photo(d / "good.jpg", seed=5)
    r = run_cli("index", str(d), "--no-faces", "--json", library=library.paths.root)
    assert r.returncode == 0, r.stderr[-2000:]
    doc = json.loads(r.stdout)
    assert "wide.tif" in {Path(s["path"]).name for s in doc["skipped"]}
    assert doc["photos"] >= 1
    foreign = [line for line in r.stderr.splitlines() if line.strip() and not line.startswith("indexing")]
    assert not foreign, foreign


def test_remembered_failures_are_tried_again_when_asked_and_after_an_upgrade(library, tmp_path):
    """A file that failed is not retried while unchanged, unless `index --retry-skipped` asks
    (for the given folders only); and migration 0018 forgets every remembered failure once, so
    kinds this version reads that an earlier one skipped (a PSD, say) are tried."""
    from photosearch.store.catalog import Catalog

    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        d.mkdir()
        write_photo(d / "good.jpg", seed=7 if d == a else 8)
        (d / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    root = library.paths.root
    first = json.loads(run_cli("index", str(a), str(b), "--no-faces", "--json", library=root).stdout)
    assert len(first["skipped"]) == 2
    again = json.loads(run_cli("index", str(a), str(b), "--no-faces", "--json", library=root).stdout)
    assert again["skipped"] == [] and again["skipped_before"] == 2
    r = run_cli("index", str(a), "--no-faces", "--retry-skipped", library=root)
    assert r.returncode == 0 and "trying again 1 file(s)" in r.stderr, r.stderr
    assert "broken.jpg" in r.stdout                                   # tried, and skipped again
    left = json.loads(run_cli("index", "--show-skipped", "--json", library=root).stdout)["skipped"]
    assert sorted(Path(s["path"]).parent.name for s in left) == ["a", "b"]   # remembered again, b never forgotten
    # The upgrade: a catalog of schema 17 with remembered failures is migrated, and they go.
    with Catalog.open(library.paths.catalog) as cat:
        assert len(cat.skipped_files()) == 2
        cat.con.execute("DELETE FROM schema_version WHERE version >= 18")
    with Catalog.open(library.paths.catalog) as cat:
        assert cat.skipped_files() == []
