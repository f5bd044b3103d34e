"""Fixtures for the model tests: a tiny vocabulary, the tiny model, and the parity fixture folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from mplug2.tokenizer import write_vocab

REPO = Path(__file__).resolve().parents[2]
WORDS = [
    "a",
    "the",
    "red",
    "green",
    "blue",
    "circle",
    "square",
    "moves",
    "left",
    "right",
    "up",
    "down",
    "grows",
    "shrinks",
    "on",
    "grey",
    "background",
    "video",
]


def parity_fixture_dir() -> Path:
    return Path(os.environ.get("MPLUG2_PARITY_FIXTURE", REPO.parent / "shared" / "reference" / "mplug2-parity-a"))


@pytest.fixture(scope="session")
def vocab_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_vocab([*WORDS, "##s", "##ing"], tmp_path_factory.mktemp("vocab") / "vocab.txt")


@pytest.fixture
def tiny_model():
    from mplug2 import create_model

    torch.manual_seed(0)
    return create_model("mplug2-tiny")
