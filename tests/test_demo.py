"""The README's first command, minus the browser: `mplug2-search demo --no-ui` builds the demo archive, indexes it
with the bundled model (broken files fail with reasons), and runs searches that find the files they describe."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_demo_builds_indexes_and_finds(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "indexer", "demo", "--dir", str(tmp_path / "demo"), "--no-ui"]
    first = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stderr
    indexed = re.search(r"(\d+) files indexed \((\d+) clips\), 0 unchanged, 3 failed", first.stdout)
    assert indexed and int(indexed.group(1)) == 40 + 24 + 3, first.stdout
    searches = [line for line in first.stdout.splitlines() if "(expected " in line]
    assert len(searches) == 4
    # Measured: 2 of the 4 find their file first (the model confuses shapes; see data/models/mplug2-synth).
    assert sum(line.lstrip().startswith("ok ") for line in searches) >= 2, first.stdout

    again = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr
    # Nothing changed: the broken files are known (`index --retry-failed` would try them again).
    assert "0 files indexed (0 clips), 70 unchanged, 0 failed\n" in again.stdout
