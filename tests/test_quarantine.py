"""`photosearch quarantine PHOTO...`: chosen photos moved out of the way (not only duplicates), a dry
run first, journaled, and brought back byte for byte by `undo`; on real photos from ../shared."""

from __future__ import annotations

import hashlib
import json
import shutil

from conftest import SHARED, needs_shared, run_cli, unwritable

pytestmark = needs_shared


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_quarantine_is_a_dry_run_then_journaled_and_undone(library, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for p in sorted((SHARED / "photos").glob("*.jpg"))[:4]:
        shutil.copy(p, photos / p.name)
    (photos / sorted(photos.iterdir())[0].name).with_suffix(".xmp").write_text("<x:xmpmeta xmlns:x='adobe:ns:meta/'/>")
    library.index([photos], faces=False)
    root = library.paths.root
    a, b = sorted(photos.glob("*.jpg"))[:2]
    sums = {p.name: _sha(p) for p in photos.iterdir()}
    shown = lambda: {r["path"].rsplit("/", 1)[-1] for r in library.timeline(limit=50)["photos"]}  # noqa: E731
    assert {a.name, b.name} <= shown()

    dry = run_cli("quarantine", str(a), str(b), library=root)
    assert dry.returncode == 0, dry.stderr
    assert "dry run: 2 photos would move" in dry.stdout and "(with " in dry.stdout   # a's sidecar goes along
    assert a.exists() and b.exists() and not (root / "quarantine").exists()

    done = json.loads(run_cli("quarantine", str(a), str(b), "--apply", "--json", library=root).stdout)
    assert done["applied"] and done["report"]["moved"] == 2 and done["report"]["action"]
    assert not a.exists() and not b.exists() and not a.with_suffix(".xmp").exists()
    kept = {p.name: _sha(p) for p in (root / "quarantine").rglob("*") if p.is_file()}
    assert kept == {n: s for n, s in sums.items() if n in (a.name, b.name, a.with_suffix(".xmp").name)}
    assert not {a.name, b.name} & shown()                                   # out of the timeline

    again = run_cli("quarantine", done["plan"]["moves"][0]["dst"], library=root)
    assert again.returncode != 0 and "already quarantined" in again.stderr and "Traceback" not in again.stderr

    undo = run_cli("undo", library=root)
    assert undo.returncode == 0, undo.stderr
    assert {p.name: _sha(p) for p in photos.iterdir()} == sums and {a.name, b.name} <= shown()


def test_quarantine_bad_input_is_one_line(library, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    src = sorted((SHARED / "photos").glob("*.jpg"))[0]
    shutil.copy(src, photos / src.name)
    library.index([photos], faces=False)
    root = library.paths.root
    cases = {
        "no such file": run_cli("quarantine", str(tmp_path / "nope.jpg"), library=root),
        "not in the library": run_cli("quarantine", str(src), library=root),
        "exists and is not a folder": run_cli("quarantine", str(photos / src.name), "--move-to", str(photos / src.name),
                                              "--apply", library=root),
    }
    for words, r in cases.items():
        assert r.returncode != 0 and words in r.stderr and len(r.stderr.strip().splitlines()) == 1, (words, r.stderr)
    locked = tmp_path / "locked"
    locked.mkdir()
    with unwritable(locked):
        r = run_cli("quarantine", str(photos / src.name), "--move-to", str(locked), "--apply", library=root)
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert (photos / src.name).exists()
