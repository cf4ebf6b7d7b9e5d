"""Tags: taxonomy files, scoring against a brute-force oracle, few-shot probes, manual tags, search
by tag, review, keyword sync (checked with exiftool, other metadata preserved) and CSV export."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from conftest import SHARED, needs_shared, run_cli, write_photo

requires_exiftool = pytest.mark.skipif(shutil.which("exiftool") is None,
                                       reason="exiftool (Debian libimage-exiftool-perl) is not installed")


def _photos(folder: Path, n: int = 12) -> list[Path]:
    return [write_photo(folder / f"p{i:02d}.jpg", seed=100 + i, size=(160, 120)) for i in range(n)]


@pytest.fixture
def tagged(library, tmp_path):
    photos = _photos(tmp_path / "photos")
    library.index([tmp_path / "photos"], faces=False)
    run = library.tag()
    return library, photos, run


# -- taxonomy --------------------------------------------------------------------------------------


def test_default_taxonomy_and_an_edited_copy(library, tmp_path):
    from photosearch.query.tags import load_taxonomy

    default = load_taxonomy(None)
    names = {t.name for t in default.tags}
    assert 10 <= len(names) <= 25
    assert {"Family", "Friends", "Travel", "Nature", "Events", "Pets", "Food", "Hobbies", "Selfies", "Blurry",
            "Screenshot", "Document"} <= names
    assert all(t.prompts and 0 < t.threshold < 1 for t in default.tags)
    by = default.by_name()
    assert by["beach"].parent == "Travel" and "bday" in by["birthday"].aliases

    r = run_cli("tags", "init", "--json", library=library.paths.root)
    path = Path(json.loads(r.stdout)["taxonomy"])
    assert path == library.paths.root / "taxonomy.toml" and path.read_text() == \
        (Path(__file__).parents[1] / "photosearch" / "data" / "taxonomy.toml").read_text()
    r = run_cli("tags", "init", library=library.paths.root)
    assert r.returncode == 2 and "--force" in r.stderr
    path.write_text(path.read_text() + '\n[tags.Lighthouse]\ngroup = "places"\nparent = "Travel"\n'
                    'prompts = ["a lighthouse on the coast"]\naliases = ["beacon"]\nthreshold = 0.7\n')
    doc = json.loads(run_cli("tags", "--json", library=library.paths.root).stdout)
    light = next(t for t in doc["tags"] if t["name"] == "Lighthouse")
    assert light["threshold"] == 0.7 and light["parent"] == "Travel" and light["aliases"] == ["beacon"]

    for bad, message in (("[tags.X\n", "invalid TOML"),
                         ('[tags.X]\nparent = "Nope"\n', "not a tag"),
                         ('[tags.X]\naliases = ["y"]\n[tags.Y]\n', "names both"),
                         ('[tags.X]\nthreshold = 2\n', "between 0 and 1")):
        f = tmp_path / "bad.toml"
        f.write_text(bad)
        r = run_cli("tags", "--taxonomy", str(f), library=library.paths.root)
        assert r.returncode == 2 and message in r.stderr and r.stderr.count("\n") == 1, (bad, r.stderr)


# -- scoring -----------------------------------------------------------------------------------------


def test_scores_match_a_brute_force_oracle_and_thresholds(tagged):
    from photosearch.store.catalog import Catalog
    from photosearch.query.tags import LOGIT_SCALE, NEUTRAL_PROMPTS

    lib, photos, run = tagged
    assert run.photos == len(photos) and run.tags >= 10 and not run.probes
    clip = lib.models.load()
    with Catalog.open(lib.paths.catalog, read_only=True) as cat:
        tags = {t["name"]: t for t in cat.tags()}
        ids, vecs = cat.vectors(clip.name)
        scores = {(p, t): s for p, t, s in cat.con.execute("SELECT photo_id, tag, score FROM tag_scores").fetchall()}
        tagged_ids = {t: set(cat.filtered_ids(_filters(t)).tolist()) for t in tags}
    neutral = clip.encode_text(list(NEUTRAL_PROMPTS)).mean(axis=0)
    neutral /= np.linalg.norm(neutral)
    for name, t in tags.items():
        d = clip.encode_text(list(t["prompts"])).mean(axis=0)
        d /= np.linalg.norm(d)
        expect = 1 / (1 + np.exp(-LOGIT_SCALE * (vecs @ d - vecs @ neutral)))
        got = np.array([scores[(int(i), name)] for i in ids])
        np.testing.assert_allclose(got, expect, atol=1e-4)
        assert tagged_ids[name] == {int(i) for i, s in zip(ids, expect) if s >= t["threshold"]}


def _filters(*tags):
    from photosearch.api import make_filters

    return make_filters(tags=list(tags))


@pytest.mark.convert  # a CLIP architecture's features (random weights): a pixel projection is too weak a feature
def test_probe_learns_a_user_tag_from_a_few_examples(converted_library, tmp_path):
    """Variants (crops, flips, recompressions) of one scene are the class; three accepted and three
    rejected photos train a probe that ranks the held-out variants above everything else."""
    library = converted_library
    src = tmp_path / "src"
    base = [write_photo(src / f"s{i}.png", seed=300 + i, size=(320, 240), fmt="PNG") for i in range(6)]
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i, b in enumerate(base):
        im = Image.open(b).convert("RGB")
        for v in range(5):
            x0, y0 = rng.integers(0, 40, 2)
            var = im.crop((x0, y0, x0 + 260, y0 + 190))
            if v % 2:
                var = ImageOps.mirror(var)
            var.save(photos / f"scene{i}_v{v}.jpg", quality=int(60 + 8 * v))
    library.index([photos], faces=False)
    pos = [photos / f"scene0_v{v}.jpg" for v in range(3)]
    neg = [photos / f"scene{i}_v0.jpg" for i in (1, 2, 3)]
    r = run_cli("tag", "add", "the old barn", *map(str, pos), library=library.paths.root)
    assert r.returncode == 0, r.stderr
    assert run_cli("tag", "remove", "The Old Barn", *map(str, neg), library=library.paths.root).returncode == 0
    run = library.tag()
    assert "the old barn" in run.probes
    tags = {t["name"]: t for t in library.tags()}
    assert tags["the old barn"]["group"] == "user" and tags["the old barn"]["scorer"] == "probe"
    from photosearch.store.catalog import Catalog

    with Catalog.open(library.paths.catalog, read_only=True) as cat:
        scores = {Path(p).name: s for p, s in cat.con.execute(
            "SELECT p.path, s.score FROM tag_scores s JOIN photos p ON p.id = s.photo_id "
            "WHERE s.tag = 'the old barn'").fetchall()}
    decided = {p.name for p in pos + neg}
    held_in = [s for n, s in scores.items() if n.startswith("scene0_") and n not in decided]
    held_out = [s for n, s in scores.items() if not n.startswith("scene0_") and n not in decided]
    assert len(held_in) == 2 and len(held_out) == 22
    assert min(held_in) > max(held_out)  # the probe separates the class it was shown


# -- manual tags, search by tag ------------------------------------------------------------------------


def test_manual_tags_aliases_and_search_by_tag(tagged, tmp_path):
    lib, photos, _ = tagged
    root = lib.paths.root
    r = run_cli("tag", "add", "bday", str(photos[0]), str(photos[1]), "--json", library=root)
    assert json.loads(r.stdout) == {"tag": "Birthday", "state": "accepted", "photos": 2, "failed": []}
    run_cli("tag", "remove", "birthday party", str(photos[1]), library=root)
    r = run_cli("--tag", "BDAY", "--json", library=root)  # no query: the tagged photos
    got = [Path(x["path"]).name for x in json.loads(r.stdout)["results"]]
    assert photos[0].name in got and photos[1].name not in got
    r = run_cli("anything", "--tag", "bday", "--json", library=root)  # with a text query
    assert photos[0].name in [Path(x["path"]).name for x in json.loads(r.stdout)["results"]]
    r = run_cli("--tag", "bday", "--tag", "no-such-tag", library=root)
    assert r.returncode == 2 and "unknown tag 'no-such-tag'" in r.stderr
    r = run_cli("tag", "add", "Birthday", str(tmp_path / "missing.jpg"), library=root)
    assert r.returncode == 3 and "no such file" in r.stderr
    outside = write_photo(tmp_path / "elsewhere" / "x.jpg", seed=9)
    r = run_cli("tag", "add", "Birthday", str(outside), library=root)
    assert r.returncode == 3 and "not in the library" in r.stderr
    r = run_cli("tag", "reset", "bday", str(photos[1]), "--json", library=root)
    assert json.loads(r.stdout)["state"] == "auto"
    # Decisions survive a rescore, and a rejected tag never comes back.
    run_cli("tag", "remove", "Dark", *map(str, photos), library=root)
    lib.tag()
    assert lib.search_tags(filters=_filters("Dark")) == []
    assert photos[0].name in [Path(x.path).name for x in lib.search_tags(filters=_filters("Birthday"))]


def test_review_json_and_interactive_decisions(tagged):
    lib, photos, _ = tagged
    root = lib.paths.root
    r = run_cli("review", "--below", "1", "--above", "0", "--limit", "3", "--json", library=root)
    doc = json.loads(r.stdout)
    assert len(doc["items"]) == 3
    item = doc["items"][0]
    assert set(item) == {"photo_id", "path", "tags"} and item["tags"][0]["score"] >= item["tags"][-1]["score"]
    first_tags = [t["tag"] for t in item["tags"]]
    # y for the first proposal, n for the second, then quit.
    proc = subprocess.run([os.sys.executable, "-m", "photosearch", "review", "--below", "1", "--above", "0",
                           "--limit", "3"], input="y\nn\nq\n", capture_output=True, text=True,
                          env={**os.environ, "PHOTOSEARCH_LIBRARY": str(root)}, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "accepted 1, rejected 1" in proc.stdout
    from photosearch.store.catalog import Catalog

    with Catalog.open(lib.paths.catalog, read_only=True) as cat:
        assert cat.decisions(first_tags[0]).get(item["photo_id"]) == "accepted"
        assert cat.decisions(first_tags[1]).get(item["photo_id"]) == "rejected"
    r = run_cli("review", "--below", "0.2", "--above", "0.5", library=root)
    assert r.returncode == 2


# -- sync and export --------------------------------------------------------------------------------------


def _exif_all(path: Path) -> dict:
    out = subprocess.run(["exiftool", "-j", "-G1", "-a", "-n", "-struct", str(path)], capture_output=True,
                         text=True, check=True).stdout
    return json.loads(out)[0]


@requires_exiftool
@needs_shared
def test_sync_writes_keywords_and_rating_safely_keeping_everything_else(library, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("GPS.jpg", "Canon.jpg", "IPTC.jpg", "XMP.jpg"):
        shutil.copy(SHARED / "metadata" / name, photos / name)
    big = write_photo(photos / "big.jpg", seed=5, size=(320, 240))
    raw = photos / "pug.heic"  # HEIC: written to a sidecar, never in-file
    shutil.copy(SHARED / "broken" / "pug.heic", raw)
    library.index([photos], faces=False)
    root = library.paths.root
    jpgs = sorted(photos.glob("*.jpg"))
    run_cli("tag", "add", "bday", *map(str, jpgs), library=root)  # Birthday, child of Events
    run_cli("tag", "add", "Beach", str(raw), library=root)
    run_cli("rate", "4", str(big), library=root)
    before = {p.name: p.read_bytes() for p in photos.iterdir()}
    meta_before = {p.name: _exif_all(p) for p in jpgs}

    r = run_cli("sync", "--no-people", "--accepted-only", "--json", library=root)  # dry run
    doc = json.loads(r.stdout)
    assert not doc["applied"] and {Path(f["path"]).name for f in doc["files"]} == {p.name for p in jpgs} | {raw.name}
    assert {p.name: p.read_bytes() for p in photos.iterdir()} == before

    r = run_cli("sync", "--no-people", "--accepted-only", "--apply", "--json", library=root)
    assert r.returncode == 0, r.stderr
    files = {Path(f["path"]).name: f for f in json.loads(r.stdout)["files"]}
    assert all(f["status"] == "written" for f in files.values())
    assert files[raw.name]["sidecar"] and raw.read_bytes() == before[raw.name]
    side = _exif_all(Path(files[raw.name]["target"]))
    assert "Travel|Beach" in np.atleast_1d(side["XMP-lr:HierarchicalSubject"]).tolist()

    for p in jpgs:
        after = _exif_all(p)
        assert {"Events", "Birthday"} <= set(np.atleast_1d(after["XMP-dc:Subject"]).tolist())
        assert "Events|Birthday" in np.atleast_1d(after["XMP-lr:HierarchicalSubject"]).tolist()
        assert "Events/Birthday" in np.atleast_1d(after["XMP-digiKam:TagsList"]).tolist()
        assert "Birthday" in np.atleast_1d(after["IPTC:Keywords"]).tolist()
        old = meta_before[p.name]
        # Keywords other tools wrote are kept.
        for key in ("XMP-dc:Subject", "IPTC:Keywords"):
            assert set(np.atleast_1d(old.get(key, [])).tolist()) <= set(np.atleast_1d(after[key]).tolist())
        # Every other tag survives unchanged (EXIF, GPS, maker notes, ICC, ...).
        skip = ("System:", "File:", "XMP-", "IPTC:", "Composite:", "ExifTool:", "Photoshop:", "APP14:")
        for key, value in old.items():
            if key.startswith(skip) or key == "SourceFile":
                continue
            assert after.get(key) == value, (p.name, key)
        with Image.open(p) as a:
            assert a.tobytes() == Image.open(io.BytesIO(before[p.name])).tobytes()
    assert _exif_all(big)["XMP-xmp:Rating"] == 4
    assert library.index([photos], faces=False).indexed == 0  # rewritten files are not re-embedded
    r = run_cli("sync", "--no-people", "--accepted-only", library=root)
    assert "nothing to write" in r.stdout


@requires_exiftool
def test_sidecar_only_and_per_file_failures(library, tmp_path):
    photos = tmp_path / "photos"
    a = write_photo(photos / "a.jpg", seed=1, size=(160, 120))
    b = write_photo(photos / "b.jpg", seed=2, size=(160, 120))
    library.index([photos], faces=False)
    root = library.paths.root
    run_cli("tag", "add", "Food", str(a), str(b), library=root)
    before = a.read_bytes()
    r = run_cli("sync", "--sidecar-only", "--accepted-only", "--apply", "--json", library=root)
    assert r.returncode == 0
    assert a.read_bytes() == before and (photos / "a.jpg.xmp").is_file()
    assert "Food" in np.atleast_1d(_exif_all(photos / "a.jpg.xmp")["XMP-dc:Subject"]).tolist()

    # A file that is gone fails alone; the others are written; exit 7.
    c = write_photo(photos / "c.jpg", seed=3, size=(160, 120))
    library.index([photos], faces=False)
    run_cli("tag", "add", "Pets", str(b), str(c), library=root)
    c.unlink()
    r = run_cli("sync", "--accepted-only", "--apply", "--json", library=root)
    assert r.returncode == 7
    files = {Path(f["path"]).name: f for f in json.loads(r.stdout)["files"]}
    assert files["c.jpg"]["status"] == "failed" and "no such file" in files["c.jpg"]["error"]
    assert files["b.jpg"]["status"] == "written"


def test_a_failed_verification_leaves_the_original_untouched(tmp_path, monkeypatch):
    from photosearch.media import xmp

    p = write_photo(tmp_path / "x.jpg", seed=4, size=(160, 120))
    before = p.read_bytes()
    calls = iter(["a", "b", "c", "d"])   # "the image data changed", and so did the decoded pixels
    monkeypatch.setattr(xmp, "_image_digest", lambda path, fmt, data=None: next(calls))
    monkeypatch.setattr(xmp, "_pixels_digest", lambda path: next(calls))
    with pytest.raises(xmp.WriteError, match="image data changed"):
        xmp.write(p, xmp.MetadataUpdate(keywords=["Food"]))
    assert p.read_bytes() == before
    assert sorted(x.name for x in tmp_path.iterdir()) == ["x.jpg"]  # no temporary copy left behind


def test_export_csv(tagged, tmp_path):
    lib, photos, _ = tagged
    run_cli("tag", "add", "Food", str(photos[2]), library=lib.paths.root)
    run_cli("rate", "5", str(photos[2]), library=lib.paths.root)
    out = tmp_path / "export.csv"
    r = run_cli("export", "--csv", "--out", str(out), library=lib.paths.root)
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(out.open(newline="", encoding="utf-8")))
    assert len(rows) == len(photos)
    row = next(x for x in rows if x["path"] == str(photos[2]))
    assert "Food" in row["tags"].split(";") and row["rating"] == "5"
    assert "Food=" in row["tag_scores"]
    stdout = run_cli("export", "--csv", library=lib.paths.root).stdout
    assert stdout.splitlines()[0].startswith("path,taken_at,camera,tags,tag_scores,people")
    assert run_cli("export", library=lib.paths.root).returncode == 2
