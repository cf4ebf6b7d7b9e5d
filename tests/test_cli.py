"""The CLI end to end, in subprocesses, as a user (or another program) runs it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import SHARED, needs_shared, run_cli, write_photo


@pytest.fixture
def lib_with_photos(library, tmp_path):
    folder = tmp_path / "photos"
    for i in range(5):
        write_photo(folder / f"p{i}.jpg", seed=i, exif={0x0132: f"202{i}:01:01 10:00:00", 0x010F: "Canon",
                                                        0x0110: "Canon EOS R5"})
    return library.paths.root, folder


def _one_line_error(result, code: int) -> str:
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_index_search_like_status_json(lib_with_photos):
    lib, folder = lib_with_photos
    r = run_cli("index", str(folder), "--json", library=lib)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["indexed"] == 5 and summary["skipped"] == [] and summary["unchanged"] == 0
    assert {"indexed", "unchanged", "moved", "removed", "skipped"} <= set(summary)

    r = run_cli("a photo of a mountain lake", "--json", "--limit", "3", library=lib)  # no subcommand word
    assert r.returncode == 0, r.stderr
    results = json.loads(r.stdout)["results"]
    assert len(results) == 3 and all(Path(x["path"]).parent == folder for x in results)
    assert results[0]["score"] >= results[1]["score"] >= results[2]["score"]
    assert results[0]["camera"] == "Canon EOS R5"

    r = run_cli("search", "lake", "--json", "--after", "2022", "--camera", "canon", library=lib)
    dates = [x["taken_at"] for x in json.loads(r.stdout)["results"]]
    assert sorted(dates) == ["2022-01-01T10:00:00", "2023-01-01T10:00:00", "2024-01-01T10:00:00"]

    r = run_cli("like", str(folder / "p0.jpg"), "--json", library=lib)
    paths = [x["path"] for x in json.loads(r.stdout)["results"]]
    assert len(paths) == 4 and str(folder / "p0.jpg") not in paths

    r = run_cli("status", "--json", library=lib)
    status = json.loads(r.stdout)
    assert status["photos"] == 5 and status["active_model"] == "fakeclip" and status["roots"] == [str(folder)]

    # Human output: a table with the paths, and a summary line for index.
    r = run_cli("lake", "--library", str(lib))
    assert r.returncode == 0 and str(folder / "p0.jpg") in r.stdout
    r = run_cli("index", library=lib)
    assert r.returncode == 0 and "unchanged 5" in r.stdout


def test_every_command_has_help():
    for args in (["--help"], ["search", "--help"], ["like", "--help"], ["index", "--help"], ["status", "--help"],
                 ["models", "--help"], ["models", "pull", "--help"], ["models", "import", "--help"],
                 ["models", "use", "--help"], ["models", "list", "--help"], ["models", "remove", "--help"]):
        r = run_cli(*args)
        assert r.returncode == 0 and "Usage:" in r.stdout, args
    assert "--library" in run_cli("index", "--help").stdout


def test_bad_input_gives_one_line_errors(lib_with_photos, tmp_path):
    lib, folder = lib_with_photos
    run_cli("index", str(folder), "--json", library=lib)
    assert "No such option" in _one_line_error(run_cli("lake", "--bogus", library=lib), 2)
    assert "--limit" in _one_line_error(run_cli("lake", "--limit", "0", library=lib), 2)
    assert "--after" in _one_line_error(run_cli("lake", "--after", "last week", library=lib), 2)
    assert "no such file" in _one_line_error(run_cli("like", str(tmp_path / "none.jpg"), library=lib), 3)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    assert "cannot use" in _one_line_error(run_cli("like", str(bad), library=lib), 3)
    assert "no such file or folder" in _one_line_error(run_cli("index", str(tmp_path / "nope"), library=lib), 3)
    assert "--in" in _one_line_error(run_cli("lake", "--in", str(tmp_path / "nope"), library=lib), 3)
    empty = tmp_path / "empty-lib"
    shutil.copytree(lib / "models", empty / "models")
    assert "photosearch index" in _one_line_error(run_cli("lake", library=empty), 6)
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    assert "cannot" in _one_line_error(run_cli("models", "import", "ViT-B-32", str(bad), library=blocker / "lib"), 4)


@needs_shared
def test_cli_indexes_the_shared_corpus(library, tmp_path):
    folder = tmp_path / "data"
    for sub in ("photos", "broken", "metadata"):
        shutil.copytree(SHARED / sub, folder / sub)
    r = run_cli("index", str(folder), "--json", library=library.paths.root)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["indexed"] >= 38 + 25 and len(summary["skipped"]) >= 10
    assert all(s["reason"] for s in summary["skipped"])
    assert "Traceback" not in r.stderr and "unknown file" not in r.stderr  # LibRaw's noise is filtered
    r = run_cli("cat", "--json", "--in", str(folder / "photos"), library=library.paths.root)
    assert len(json.loads(r.stdout)["results"]) == 20


_PROGRAM = """
import atexit, sys, threading, time

class Held:
    def __del__(self):
        print("torn down", file=sys.stderr, flush=True)

held = Held()
atexit.register(lambda: print("exit handler ran", file=sys.stderr, flush=True))
if sys.argv[1] == "thread":
    marker = sys.argv[2]

    def work():
        time.sleep(0.5)
        with open(marker, "w") as f:
            f.write("done")
    threading.Thread(target=work).start()  # not a daemon
sys.argv = ["photosearch", "status", "--json"]
from photosearch.cli import main
main()
"""


@pytest.mark.parametrize("case", ["alone", "thread"])
def test_the_program_skips_teardown_but_not_its_output_exit_handlers_or_threads(lib_with_photos, tmp_path, case):
    """Run as the program, the CLI ends the process without the interpreter's teardown (0.05-0.1 s
    of every command): its JSON and exit code arrive whole and the exit handlers run; with a thread
    still running that is not a daemon, it exits as usual, once the thread is done."""
    lib, folder = lib_with_photos
    assert run_cli("index", str(folder), "--json", library=lib).returncode == 0
    marker = tmp_path / "thread-done"
    env = {**os.environ, "PHOTOSEARCH_LIBRARY": str(lib)}
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(_PROGRAM), case, str(marker)], capture_output=True,
                       text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["photos"] == 5
    assert "exit handler ran" in r.stderr
    if case == "thread":
        assert marker.read_text() == "done"
        assert "torn down" in r.stderr      # the usual exit: objects freed
    else:
        assert "torn down" not in r.stderr  # no teardown
