"""benchmarks/gpu.py runs anywhere: on a machine without CUDA it says so for every section and exits 0; `--smoke`
runs every section on the CPU at toy sizes, so the script is known to work before a GPU is lent to run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SECTIONS = ("model", "decode", "faiss", "index")


def run_benchmark(out: Path, *args: str) -> dict:
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", PYTHONPATH=str(REPO))
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu.py"), "--out", str(out), *args], check=True, env=env)
    return json.loads((out / "gpu.json").read_text())


def test_without_a_gpu_every_section_is_skipped_with_the_reason(tmp_path: Path) -> None:
    report = run_benchmark(tmp_path)
    assert report["device"].startswith("CPU")
    for section in SECTIONS:
        assert "no CUDA device" in report[section]["skipped"]


@pytest.mark.slow
def test_smoke_runs_every_section_on_the_cpu(tmp_path: Path) -> None:
    pytest.importorskip("torchcodec.decoders")
    report = run_benchmark(tmp_path, "--smoke", "--repeats", "1")
    assert report["model"]["clips_per_s"] > 0 and report["model"]["gflop_per_clip"] > 0
    assert set(report["decode"]["decoders"]) == {"decord (CPU, 1 thread)", "torchcodec (CPU, 1 thread)"}
    assert report["faiss"]["indexes"]["CPU IndexFlatIP"]["one_query_ms"] > 0
    runs = report["index"]["runs"]
    assert runs["torchcodec"]["clips"] == runs["auto"]["clips"] > 0
    assert runs["torchcodec"]["decoders_used"] == {"torchcodec": runs["torchcodec"]["files"]}
