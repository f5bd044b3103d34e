"""A text search from the shell imports only what a query needs: not open_clip (which drags in torchvision and
torch._dynamo, seconds on 2 cores), not the app, not the plotting, imaging or decoding libraries."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.indexer.test_pipeline import REPO, run_index

# PIL and psutil come with the frame decoders and the decode pool, which only an archive without stored tokens
# needs at search time.
FORBIDDEN = (
    "open_clip",
    "torchvision",
    "timm",
    "torch._dynamo",
    "decord",
    "matplotlib",
    "streamlit",
    "ray",
    "PIL",
    "psutil",
)
PROBE = """
import json, sys
from indexer.cli import cli
cli(sys.argv[1:], standalone_mode=False)
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


def test_a_text_search_imports_no_heavy_module(archive_dir: Path, settings, tiny_model_dir: Path) -> None:
    run_index(archive_dir, settings, tiny_model_dir)
    archive = ["--db", settings.db_url, "--index-dir", str(settings.index_dir)]
    result = subprocess.run(
        [sys.executable, "-c", PROBE, "search", "a red circle", "-k", "3", *archive],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "results for" in result.stdout
    modules = json.loads(result.stderr.strip().splitlines()[-1])
    loaded = sorted({m for m in modules for f in FORBIDDEN if m == f or m.startswith(f + ".")})
    assert not loaded, loaded


def test_the_command_line_answers_help_without_torch() -> None:
    """`mplug2-search --help` and every command's option defaults load without torch or FAISS (seconds here)."""
    probe = "import json, sys; import indexer.cli; print(json.dumps(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    modules = json.loads(result.stdout)
    assert not [m for m in modules if m.split(".")[0] in ("torch", "faiss", "sqlalchemy")]
