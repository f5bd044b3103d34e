"""What the scripts share: run one `mplug2-search` command as a user would, echoing it first."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def mplug2_search(*args: str) -> None:
    print("+ mplug2-search", " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "indexer", *args], check=True, cwd=REPO)
