"""The real-model path without the internet: a checkpoint in the official format, its BERT config and its vocab
served by a real HTTP server on 127.0.0.1, fetched and converted in one command, then indexed and searched.
Also: what a failed download says, checksums, the shipped vocabulary, and architectures without a vocab file."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from indexer.cli import cli
from indexer.synthetic.vocab import write_synthetic_vocab
from mplug2.config import MPLUG2Config
from mplug2.pretrained import BERT_VOCAB, BERT_VOCAB_SHA256, KNOWN_CHECKPOINTS, PretrainedCfg
from tests.mplug2.conftest import parity_fixture_dir


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:  # the test output stays readable
        pass


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """(folder, base URL): a real HTTP server on loopback serving `folder`."""
    folder = tmp_path / "served"
    folder.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def parity() -> tuple[Path, dict]:
    folder = parity_fixture_dir()
    if not (folder / "meta.json").is_file():
        pytest.skip("no parity fixture")
    return folder, json.loads((folder / "meta.json").read_text())


@pytest.fixture(autouse=True)
def models_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MPLUG2_MODELS_DIR", str(tmp_path / "models"))
    return tmp_path / "models"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _bert_json(meta: dict) -> dict:
    return dict(meta["bert"], num_hidden_layers=meta["fusion_layers_built"])


def test_shipped_vocab_is_bert_base_uncased() -> None:
    assert hashlib.sha256(BERT_VOCAB.read_bytes()).hexdigest() == BERT_VOCAB_SHA256
    lines = BERT_VOCAB.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 30522 and lines[101] == "[CLS]" and lines[1996] == "the"


def test_fetch_url_convert_index_search(
    served: tuple[Path, str], parity: tuple[Path, dict], archive_dir: Path, tmp_path: Path
) -> None:
    folder, base = served
    fixture, meta = parity
    shutil.copy(fixture / "checkpoint.pth", folder / "checkpoint.pth")
    (folder / "bert.json").write_text(json.dumps(_bert_json(meta)))
    (folder / "vision.json").write_text(json.dumps(meta["vision"]))
    write_synthetic_vocab(folder / "vocab.txt")  # fits the fixture's 200-word embedding
    out = tmp_path / "models" / "parity"
    runner = CliRunner()
    fetched = runner.invoke(
        cli,
        [
            "fetch-checkpoint",
            f"{base}/checkpoint.pth",
            "--bert-config",
            f"{base}/bert.json",
            "--vision",
            f"{base}/vision.json",
            "--vocab",
            f"{base}/vocab.txt",
            "--num-frames",
            "4",
            "--embed-dim",
            str(meta["embed_dim"]),
            "--out",
            str(out),
        ],
    )
    assert fetched.exit_code == 0, fetched.output
    assert f"model folder: {out}" in fetched.output and "ignored 78 (text decoder)" in fetched.output
    archive = ["--db", f"sqlite:///{tmp_path / 'catalog.sqlite'}", "--index-dir", str(tmp_path / "index")]
    indexed = runner.invoke(cli, ["index", str(archive_dir), "--model", str(out), "--json", *archive])
    assert indexed.exit_code == 0, indexed.output
    assert json.loads(indexed.output.strip().splitlines()[-1])["indexed"] == 17
    found = runner.invoke(cli, ["search", "a red circle", "--json", "-k", "3", *archive])
    assert found.exit_code == 0, found.output
    results = json.loads(found.output)["results"]
    assert len(results) == 3 and all(Path(r["path"]).is_relative_to(archive_dir) for r in results)


def _register(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, meta: dict, url: str, **recorded: object) -> str:
    """A known checkpoint shaped like the parity fixture (the real table's entries are gigabytes)."""
    architecture = tmp_path / "parity-arch.json"
    MPLUG2Config.from_official(
        "parity", _bert_json(meta), meta["vision"], embed_dim=meta["embed_dim"], num_frames=4
    ).save_json(architecture)
    vocab = write_synthetic_vocab(tmp_path / "parity-vocab.txt")
    cfg = PretrainedCfg(
        name="parity-a",
        architecture=str(architecture),
        format="official",
        file="checkpoint.pth",
        url=url,
        preprocess={"num_frames": 2},
        vocab=str(vocab),
        notes="the parity fixture",
        **recorded,
    )
    monkeypatch.setitem(KNOWN_CHECKPOINTS, cfg.name, cfg)
    return cfg.name


def test_known_checkpoint_fetch_verifies_and_is_found_by_name(
    served: tuple[Path, str], parity: tuple[Path, dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mplug2 import create_model

    folder, base = served
    fixture, meta = parity
    shutil.copy(fixture / "checkpoint.pth", folder / "checkpoint.pth")
    data = (folder / "checkpoint.pth").read_bytes()
    name = _register(monkeypatch, tmp_path, meta, f"{base}/checkpoint.pth", sha256="0" * 64)
    wrong = CliRunner().invoke(cli, ["fetch-checkpoint", name])
    assert wrong.exit_code == 2 and "sha256" in wrong.output and "Traceback" not in wrong.output

    name = _register(
        monkeypatch, tmp_path, meta, f"{base}/checkpoint.pth", sha256=hashlib.sha256(data).hexdigest(), size=len(data)
    )
    before = create_model(name, with_fusion=False)  # not fetched: the recorded architecture and preprocessing
    assert before.config.preprocess.num_frames == 2 and before.config.vision.width == meta["vision"]["width"]
    fetched = CliRunner().invoke(cli, ["fetch-checkpoint", name])
    assert fetched.exit_code == 0, fetched.output
    assert f"--model {name}" in fetched.output
    models = CliRunner().invoke(cli, ["models"]).output
    assert "ready in" in models and "--pretrained" not in models
    model = create_model(name)
    assert model.config.name == name and model.config.preprocess.num_frames == 2


def test_no_network_says_what_it_tried_and_the_manual_path(
    parity: tuple[Path, dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fixture, meta = parity
    url = f"http://127.0.0.1:{_closed_port()}/mPLUG2_Pretrain.pth"
    name = _register(monkeypatch, tmp_path, meta, url)
    result = CliRunner().invoke(cli, ["fetch-checkpoint", name])
    assert result.exit_code == 2, result.output
    assert f"tried {url}" in result.output and "cannot reach the server" in result.output
    assert f"fetch-checkpoint {name} --from-file" in result.output and "Traceback" not in result.output
    manual = CliRunner().invoke(cli, ["fetch-checkpoint", name, "--from-file", str(fixture / "checkpoint.pth")])
    assert manual.exit_code == 0, manual.output


def test_official_names_need_no_files_to_describe() -> None:
    from mplug2.factory import known_config, vocab_for

    config = known_config(KNOWN_CHECKPOINTS["mplug2-large-pretrain"])
    assert config.preprocess.num_frames == 16 and config.vision.width == 1024
    assert vocab_for("mplug2-large-pretrain") == BERT_VOCAB


def test_an_architecture_name_works_as_a_model(tmp_path: Path) -> None:
    from mplug2.bundle import load_model_bundle

    bundle = load_model_bundle("mplug2-tiny", device="cpu")  # random weights, no vocab file: BERT's top words
    assert bundle.tokenizer.vocab_size == bundle.config.text.vocab_size
    assert bundle.encode_texts(["the cat"]).feat.shape == (1, bundle.config.embed_dim)
