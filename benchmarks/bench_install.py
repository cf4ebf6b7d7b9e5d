"""Install time and virtual-environment size: `pip install .` against `pip install '.[convert]'`.

Each variant gets a new virtual environment in a temporary folder and the README's install
command; both run in this one invocation, one after the other, with pip's cache as it is (run
it twice to compare warm caches). Also checks that the plain install has no torch and that its
`photosearch --help` works.

    python3 benchmarks/bench_install.py            # prints a Markdown table for RESULTS.md
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _size(folder: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(folder):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return total


def measure(extra: str) -> dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix="ps-install-"))
    try:
        venv = work / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        py = venv / "bin" / "python"
        target = f".{extra}" if extra else "."
        t0 = time.monotonic()
        subprocess.run([str(py), "-m", "pip", "install", "-q", target], cwd=ROOT, check=True)
        seconds = time.monotonic() - t0
        has_torch = subprocess.run([str(py), "-c", "import torch"], capture_output=True).returncode == 0
        helps = subprocess.run([str(venv / "bin" / "photosearch"), "--help"], capture_output=True).returncode == 0
        return {"install": f"pip install '{target}'", "seconds": round(seconds, 1),
                "venv_mb": round(_size(venv) / 1e6), "torch": has_torch, "help_ok": helps}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    rows = [measure(""), measure("[convert]")]
    print("| install command | seconds | venv size (MB) | torch | `photosearch --help` |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| `{r['install']}` | {r['seconds']} | {r['venv_mb']} | {'yes' if r['torch'] else 'no'} | "
              f"{'ok' if r['help_ok'] else 'FAILED'} |")


if __name__ == "__main__":
    main()
