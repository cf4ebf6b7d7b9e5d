"""Duplicates: detection on real transformed photos, reversible quarantine, undo, purge."""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageEnhance, ImageOps

from conftest import SHARED, run_cli, write_natural_photo, write_photo
from photosearch.store.catalog import Catalog
from photosearch.query.dupes import hash_pairs
from photosearch.errors import UsageError
from photosearch.actions import journal as journal_mod
from photosearch.actions.quarantine import purge


def _transforms(im: Image.Image) -> dict[str, Image.Image]:
    w, h = im.size
    text = im.copy()
    ImageDraw.Draw(text).text((10, 10), "2024 holiday", fill=(255, 255, 0))
    return {
        "rot90": im.rotate(90, expand=True),
        "mirror": ImageOps.mirror(im),
        "half": im.resize((w // 2, h // 2)),
        "bright": ImageEnhance.Brightness(im).enhance(1.3),
        "padded": ImageOps.expand(im, border=(w // 8, h // 5), fill=(255, 255, 255)),
        "text": text,
    }


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tree(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): _sha(p) for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def transformed(library, tmp_path):
    """Originals from ../shared/data/photos (or generated), transformed copies, and distractors."""
    folder = tmp_path / "photos"
    folder.mkdir()
    if SHARED.is_dir():
        originals = [SHARED / "photos" / n for n in ("skimage_chelsea.jpg", "skimage_coffee.jpg", "caer_tent.jpg")]
        distractors = [p for p in sorted((SHARED / "photos").glob("*.jpg"))
                       if p not in originals and "motorcycle" not in p.name][:12]
    else:
        originals = [write_natural_photo(tmp_path / "src" / f"o{i}.jpg", 500 + i) for i in range(3)]
        distractors = [write_natural_photo(tmp_path / "src" / f"d{i}.jpg", 900 + i) for i in range(8)]
    expected: dict[str, set[str]] = {}
    for src in originals:
        im = Image.open(src).convert("RGB")
        shutil.copy(src, folder / src.name)
        group = {src.name}
        for name, t in _transforms(im).items():
            out = folder / f"{src.stem}-{name}.jpg"
            t.save(out, quality=85)
            group.add(out.name)
        im.save(folder / f"{src.stem}-q30.jpg", quality=30)
        im.save(folder / f"{src.stem}-conv.png")
        group |= {f"{src.stem}-q30.jpg", f"{src.stem}-conv.png"}
        expected[src.name] = group
    for d in distractors:
        shutil.copy(d, folder / d.name)
    library.index([folder])
    return library, folder, expected, {d.name for d in distractors}


def test_hash_groups_on_transformed_photos(transformed):
    library, folder, expected, distractors = transformed
    groups, method = library.dupes(method="hash")
    assert method == "hash"
    found = [{Path(m.path).name for m in g.members} for g in groups]
    for original, members in expected.items():
        assert members in found, (original, found)
    for g in found:
        assert not (g & distractors), g  # a distractor is never grouped
    # The keeper is the full-size original (highest resolution, larger file than its re-encodes).
    for g in groups:
        names = {Path(m.path).name for m in g.members}
        original = next(o for o, ms in expected.items() if ms == names)
        assert Path(g.keeper.path).name in (original, original.rsplit(".", 1)[0] + "-conv.png",
                                            original.rsplit(".", 1)[0] + "-bright.jpg",
                                            original.rsplit(".", 1)[0] + "-text.jpg",
                                            original.rsplit(".", 1)[0] + "-mirror.jpg")
        assert g.members[0] is g.keeper and g.keeper.why.startswith("keeper")
        assert all(m.why for m in g.members)


def test_exact_duplicates_and_keep_both(library, tmp_path):
    folder = tmp_path / "p"
    a = write_photo(folder / "a.jpg", 1, size=(200, 150))
    shutil.copy(a, folder / "copy-of-a.jpg")
    write_photo(folder / "b.jpg", 2, size=(200, 150))
    library.index([folder])
    groups, _ = library.dupes(exact_only=True)
    assert len(groups) == 1 and groups[0].kind == "exact"
    assert {Path(m.path).name for m in groups[0].members} == {"a.jpg", "copy-of-a.jpg"}
    assert library.dupes_keep_both([folder / "a.jpg", folder / "copy-of-a.jpg"])["pairs_added"] == 1
    # Exact copies stay exact; keep-both applies to near-duplicate links.
    Image.open(a).resize((100, 75)).save(folder / "small-a.jpg")
    library.index()
    groups, _ = library.dupes(method="hash")
    names = [{Path(m.path).name for m in g.members} for g in groups]
    assert {"a.jpg", "copy-of-a.jpg", "small-a.jpg"} in names
    library.dupes_keep_both([folder / "a.jpg", folder / "small-a.jpg"])
    done = library.dupes_keep_both([folder / "copy-of-a.jpg", folder / "small-a.jpg"])
    assert done["pairs_added"] == 1 and done["journal"]
    groups, _ = library.dupes(method="hash")
    assert [{Path(m.path).name for m in g.members} for g in groups] == [{"a.jpg", "copy-of-a.jpg"}]
    # The decision is a journaled action: undo forgets exactly the pair it added.
    report = library.undo(action=done["journal"])
    assert report.rows == 1 and not report.problems
    groups, _ = library.dupes(method="hash")
    assert {"a.jpg", "copy-of-a.jpg", "small-a.jpg"} in [{Path(m.path).name for m in g.members} for g in groups]
    assert library.dupes_keep_both([folder / "a.jpg", folder / "small-a.jpg"])["journal"] is None  # nothing new
    with pytest.raises(UsageError):
        library.dupes_keep_both([folder / "a.jpg"])


def test_move_then_undo_is_byte_identical(transformed, tmp_path):
    library, folder, expected, _ = transformed
    # Give a non-keeper keywords and a sidecar, so the merge and sidecar moves are exercised.
    stem = Path(next(iter(expected))).stem
    side = folder / f"{stem}-half.jpg.xmp"
    from photosearch.media.xmp import MetadataUpdate, write

    write(folder / f"{stem}-half.jpg", MetadataUpdate(keywords=["beach"], rating=4), keep_mtime=False)
    write(folder / f"{stem}-half.jpg", MetadataUpdate(keywords=["sidecar"]), sidecar_only=True)
    assert side.exists()
    library.index()
    before = _tree(folder)
    quarantine = tmp_path / "quarantine"

    groups, plan, report = library.dupes_move(quarantine, method="hash")  # dry run
    assert report is None and not quarantine.exists() and _tree(folder) == before
    assert len(plan.moves) == sum(len(g.members) - 1 for g in groups)

    groups, plan, report = library.dupes_move(quarantine, apply=True, method="hash")
    assert report.moved == len(plan.moves) and not report.failures
    moved_names = {Path(m.src).name for m in plan.moves}
    assert not any((folder / n).exists() for n in moved_names)
    assert all(Path(m.dst).exists() for m in plan.moves)
    assert (quarantine / f"{stem}-half.jpg.xmp").exists()  # the sidecar travelled with its photo
    keeper = next(m.path for m in plan.merges)
    from photosearch.media.decode import read_metadata

    assert "beach" in read_metadata(Path(keeper).read_bytes()).keywords  # merged into the keeper
    # Quarantined photos leave search results and duplicate groups.
    paths = {r.path for r in library.search_text("cat", limit=100)}
    assert not paths & {m.src for m in plan.moves} and not paths & {m.dst for m in plan.moves}
    assert library.dupes(method="hash")[0] == []

    report = library.undo()
    assert not report.problems
    assert _tree(folder) == before  # every file back, byte for byte (the keeper too)
    assert not [p for p in quarantine.rglob("*") if p.is_file()]
    assert len(library.search_text("cat", limit=100)) == len(before) - 1  # all photos searchable again
    with pytest.raises(UsageError, match="nothing to undo"):
        library.undo()


def test_crash_mid_move_loses_nothing(transformed, tmp_path, monkeypatch):
    library, folder, _, _ = transformed
    before = _tree(folder)
    real_move = journal_mod.move_file
    calls = {"n": 0}

    def dying_move(src, dst):
        calls["n"] += 1
        if calls["n"] == 4:
            raise SystemExit("simulated crash")  # the process dies between two moves
        real_move(src, dst)

    monkeypatch.setattr("photosearch.actions.journal.move_file", dying_move)
    with pytest.raises(SystemExit):
        library.dupes_move(tmp_path / "q", apply=True, method="hash")
    # Every file's bytes are somewhere: at the old place, in quarantine, or (a keeper whose
    # metadata was merged) in the backup folder. Nothing is lost.
    kept = {_sha(p) for p in (tmp_path / "q").rglob("*") if p.is_file()} | set(_tree(folder).values())
    assert set(before.values()) <= kept
    assert calls["n"] == 4 and any(p.is_file() for p in (tmp_path / "q").iterdir())
    monkeypatch.setattr("photosearch.actions.journal.move_file", real_move)
    # The journal is replayable: undo puts everything back.
    report = library.undo()
    assert not report.problems and _tree(folder) == before


def test_purge_only_after_seven_days(transformed, tmp_path):
    library, folder, _, _ = transformed
    _, plan, _ = library.dupes_move(tmp_path / "q", apply=True, method="hash")
    assert plan.moves
    items = library.dupes_purge(apply=True)
    assert items == [] and all(Path(m.dst).exists() for m in plan.moves)  # too young: refused
    with pytest.raises(UsageError):
        library.dupes_purge(older_than_days=3)
    with Catalog.open(library.paths.catalog) as cat:
        listed = purge(cat, now=datetime.now() + timedelta(days=8))
        assert len(listed) == len(plan.moves) and not any(i.deleted for i in listed)  # dry run
        assert all(Path(m.dst).exists() for m in plan.moves)
        done = purge(cat, apply=True, now=datetime.now() + timedelta(days=8))
    assert all(i.deleted for i in done) and not any(Path(m.dst).exists() for m in plan.moves)
    assert all(Path(m.keeper).exists() for m in plan.moves)


def test_hash_pairs_equal_brute_force():
    rng = np.random.default_rng(0)
    n = 3000
    base = rng.integers(0, 2**63, size=n, dtype=np.uint64) * np.uint64(2) + rng.integers(0, 2, n, dtype=np.uint64)
    ph = np.repeat(base[:, None], 8, axis=1)
    for i in range(0, 300, 3):  # plant near pairs at distances 0..9
        flips = rng.choice(64, size=i % 10, replace=False)
        v = int(base[i])
        for f in flips:
            v ^= 1 << int(f)
        ph[i + 1] = v
    ids = np.arange(n, dtype=np.int64) + 1
    for dmax in (3, 7, 11):
        got = hash_pairs(ids, ph, dmax)
        x = ph[:, 0]
        want = {}
        for i in range(n):
            d = np.array([bin(int(v)).count("1") for v in (x ^ x[i])])
            for j in np.flatnonzero(d <= dmax):
                if j > i:
                    want[(int(ids[i]), int(ids[j]))] = int(d[j])
        assert got == want, dmax


def test_cli_dupes_json_and_errors(transformed, tmp_path):
    library, folder, expected, _ = transformed
    lib = library.paths.root
    r = run_cli("dupes", "--method", "hash", "--json", library=lib)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert len(doc["groups"]) == len(expected)
    for g in doc["groups"]:
        assert g["keeper"] in [m["path"] for m in g["members"]] and all(m["why"] for m in g["members"])
    r = run_cli("dupes", "--move-to", str(tmp_path / "q"), "--method", "hash", "--json", library=lib)
    assert json.loads(r.stdout)["applied"] is False and not (tmp_path / "q").exists()
    r = run_cli("dupes", "--move-to", str(tmp_path / "q"), "--method", "hash", "--apply", library=lib)
    assert r.returncode == 0 and "photosearch undo" in r.stdout
    r = run_cli("undo", "--json", library=lib)
    assert r.returncode == 0 and json.loads(r.stdout)["restored"]
    r = run_cli("dupes", "--strict", "--loose", library=lib)
    assert r.returncode == 2 and r.stderr.startswith("error:")
    r = run_cli("dupes", "--method", "nope", library=lib)
    assert r.returncode == 2 and "--method" in r.stderr
    r = run_cli("dupes", "--apply", library=lib)
    assert r.returncode == 2 and "--move-to" in r.stderr
    r = run_cli("dupes", "purge", "--older-than", "2", library=lib)
    assert r.returncode == 2
    assert run_cli("dupes", "--help").returncode == 0 and run_cli("undo", "--help").returncode == 0
