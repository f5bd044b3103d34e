"""Training on real generated videos with the tiny config: the loss falls, and a resumed run continues exactly."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from indexer.synthetic.attributes import attribute_word_groups, direction_phrase_pairs
from indexer.synthetic.generate import generate
from indexer.synthetic.vocab import write_synthetic_vocab
from indexer.training_data import CaptionedMedia, read_annotations
from mplug2 import create_model
from mplug2.tokenizer import Tokenizer
from mplug2.train.caption_negatives import AttributeSwapper
from mplug2.train.trainer import TWIN_ID_OFFSET, TrainConfig, Trainer
from mplug2.train.twins import PhraseSwapper, add_time_reversed_twins

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("train-data")
    generate(out, seed=5, train_videos=24, train_images=8, test_videos=0, test_images=0, workers=2)
    write_synthetic_vocab(out / "vocab.txt")
    return out


def make_trainer(
    data: Path,
    out: Path,
    phrases: PhraseSwapper | None = None,
    attributes: AttributeSwapper | None = None,
    **settings,
) -> Trainer:
    torch.manual_seed(0)
    model = create_model("mplug2-tiny")
    items = read_annotations([data / "annotations" / "train_videos.jsonl", data / "annotations" / "train_images.jsonl"])
    dataset = CaptionedMedia(items, data, model.config, data / "cache", progress=False)
    config = TrainConfig(batch_size=8, lr=2e-3, warmup_steps=5, epochs=50, **settings)
    return Trainer(model, Tokenizer(data / "vocab.txt"), dataset, config, out, phrases, attributes)


def test_samples_cover_videos_and_images_in_batches_of_one_kind(data: Path, tmp_path: Path) -> None:
    trainer = make_trainer(data, tmp_path, max_steps=1)
    dataset = trainer.dataset
    assert len(dataset) == 3 * (24 + 8), "three captions per training item"
    for batch in dataset.batches(0, 8, 0):
        assert len({dataset.kinds[i] for i in batch}) == 1
    sample = dataset.load(0, np.random.default_rng(0))
    assert sample.frames.shape == (4, 32, 32, 3) and sample.frames.dtype.name == "uint8"


def test_the_contrastive_loss_falls(data: Path, tmp_path: Path) -> None:
    result = make_trainer(data, tmp_path, max_steps=120).train(resume=False, progress=False)
    first = sum(row["itc"] for row in result.losses[:10]) / 10
    last = sum(row["itc"] for row in result.losses[-10:]) / 10
    assert last < 0.75 * first, (first, last)


def test_recipe_batches_gain_time_reversed_twins(data: Path, tmp_path: Path) -> None:
    # The bundled-model recipe's motion stage: half the ITM negatives at random, time-reversed twins in video batches.
    trainer = make_trainer(
        data,
        tmp_path,
        PhraseSwapper(direction_phrase_pairs()),
        max_steps=6,
        itm_random_negatives=0.5,
        reversed_twins=1.0,
    )
    losses = trainer.train(resume=False, progress=False).losses
    assert max(row["samples"] for row in losses) > 8, "video batches gain their twins"
    assert all(np.isfinite(row["loss"]) for row in losses)


def test_caption_negatives_join_itc_and_itm(data: Path, tmp_path: Path) -> None:
    trainer = make_trainer(
        data, tmp_path, attributes=AttributeSwapper(attribute_word_groups()), max_steps=1, caption_negatives=1.0
    )
    samples = [trainer.dataset.load(i, np.random.default_rng(0)) for i in trainer.dataset.batches(0, 8, 0)[0]]
    generator = torch.Generator().manual_seed(0)
    swapped, owners = trainer._caption_negatives(samples, generator)
    assert swapped is not None and len(owners) == len(samples), "every synthetic caption names a shape"
    calls = []
    handle = trainer.model.fusion_encoder.register_forward_hook(lambda m, args, out: calls.append(len(args[0])))
    loss, _ = trainer.batch_loss(samples, generator)
    handle.remove()
    assert calls == [4 * len(samples)], "ITM pairs: matched, two hard negatives each, and the caption negatives"
    assert torch.isfinite(loss)
    with pytest.raises(ValueError, match="attribute words"):
        make_trainer(data, tmp_path, caption_negatives=0.5)


def test_partial_captions_train_beside_caption_negatives_and_twins(data: Path, tmp_path: Path) -> None:
    settings = {"caption_negatives": 1.0, "partial_captions": 0.5, "reversed_twins": 1.0, "max_steps": 3}
    phrases, words = PhraseSwapper(direction_phrase_pairs()), AttributeSwapper(attribute_word_groups())
    trainer = make_trainer(data, tmp_path, phrases, words, **settings)
    assert trainer.partial_captions is not None
    loaded = [trainer.dataset.load(i, np.random.default_rng(0)) for i in trainer.dataset.batches(0, 8, 0)[0]]
    samples = trainer.partial_captions.apply(loaded, 0.5, np.random.default_rng(3))
    cut = [row for row, sample in enumerate(samples) if sample.full_caption is not None]
    assert 0 < len(cut) < len(samples)
    swapped, owners = trainer._caption_negatives(samples, torch.Generator().manual_seed(0))
    assert swapped is not None and owners is not None and set(cut) <= set(owners.tolist())
    keys = trainer._itc_caption_negatives(samples, swapped, owners)
    assert len(keys) == len(owners) - len(cut), "a cut caption's negative is no ITC key of every visual"
    loss, _ = trainer.batch_loss(samples, torch.Generator().manual_seed(0))
    assert torch.isfinite(loss)
    losses = trainer.train(resume=False, progress=False).losses
    assert len(losses) == 3 and all(np.isfinite(row["loss"]) for row in losses)
    with pytest.raises(ValueError, match="queue"):
        make_trainer(data, tmp_path, phrases, words, partial_captions=0.5, queue_size=16)
    with pytest.raises(ValueError, match="attribute words"):
        make_trainer(data, tmp_path, partial_captions=0.5)


def test_twins_need_their_phrases(data: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="direction phrases"):
        make_trainer(data, tmp_path, reversed_twins=0.5)


def test_resume_continues_exactly(data: Path, tmp_path: Path) -> None:
    straight = make_trainer(data, tmp_path / "a", max_steps=8, queue_size=16).train(resume=False, progress=False)
    make_trainer(data, tmp_path / "b", max_steps=4, queue_size=16).train(resume=False, progress=False)
    resumed = make_trainer(data, tmp_path / "b", max_steps=8, queue_size=16).train(resume=True, progress=False)
    assert [row["step"] for row in resumed.losses] == [5, 6, 7, 8]
    for expected, got in zip(straight.losses[4:], resumed.losses, strict=True):
        assert got["loss"] == pytest.approx(expected["loss"], rel=1e-5, abs=1e-6)


def test_resume_inside_an_epoch_of_mined_batches_keeps_them(data: Path, tmp_path: Path) -> None:
    # 96 samples in batches of 8: epoch 2 (steps 13-24) is the first with batches mined from the model. Mining again
    # on resume would use later weights and give other batches, so the checkpoint carries the epoch's batches.
    interrupted = make_trainer(data, tmp_path, max_steps=14, hard_batches=0.5)
    interrupted.train(resume=False, progress=False)
    assert interrupted.mined is not None and interrupted.mined[0] == 1
    resumed = make_trainer(data, tmp_path, max_steps=16, hard_batches=0.5)
    losses = resumed.train(resume=True, progress=False).losses
    assert resumed.mined == interrupted.mined
    assert [row["step"] for row in losses] == [15, 16]
    assert resumed.position == (1, 16 - 12)


@pytest.mark.slow
def test_a_killed_training_run_resumes_from_its_checkpoint(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "indexer",
        "train",
        "--model",
        "mplug2-tiny",
        "--vocab",
        str(data / "vocab.txt"),
        "--media",
        str(data),
        "--annotations",
        str(data / "annotations" / "train_videos.jsonl"),
        "--out",
        str(out),
        "--batch-size",
        "8",
        "--max-steps",
        "60",
        "--checkpoint-every",
        "5",
    ]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = out / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert checkpoint.exists(), "a checkpoint was written before the kill"
    saved = torch.load(checkpoint, weights_only=True)["step"]
    assert 0 < saved < 60
    finished = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert "trained 60 steps" in finished.stdout
    assert (out / "model" / "model.safetensors").is_file()
    log_steps = [json.loads(line)["step"] for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert log_steps[0] == saved + 1, "the rerun picked up where the checkpoint left off"


@pytest.mark.parametrize(
    "negatives",
    [
        {},
        {"random_negatives": 0.5},
        {"mined_negatives": 0.5, "mine_top_k": 4, "caption_negatives": 1.0, "rank_weight": 1.0, "rank_candidates": 4},
    ],
    ids=["hard negatives", "the recipe's half random", "mined, caption negatives, reversed twins, ranked"],
)
def test_itm_stage_trains_the_fusion_alone_and_its_loss_falls(data: Path, tmp_path: Path, negatives: dict) -> None:
    from mplug2.train.config import ITMStageConfig
    from mplug2.train.itm_stage import encode_set, fusion_parameters, train_itm_stage

    trainer = make_trainer(data, tmp_path, max_steps=60)
    trainer.train(resume=False, progress=False)  # a little ITC first: the hard negatives need meaningful sims
    model, dataset = trainer.model, trainer.dataset
    frozen = {name: p.detach().clone() for name, p in model.named_parameters()}
    trainable = {id(p) for p in fusion_parameters(model)}
    extras = "mined_negatives" in negatives
    attributes = AttributeSwapper(attribute_word_groups()) if extras else None
    directions = PhraseSwapper(direction_phrase_pairs()) if extras else None
    encoded = encode_set(model, trainer.tokenizer, dataset, len(dataset), attributes=attributes, directions=directions)
    assert encoded.text.tokens.shape[0] == len(dataset) and set(encoded.visual_tokens) == {"video", "image"}
    if extras:
        assert encoded.extras.has_swapped.any() and (encoded.extras.twin_row >= 0).any()
    config = ITMStageConfig(max_steps=150, batch_size=8, lr=2e-3, **negatives)
    losses = train_itm_stage(model, encoded, dataset, config)
    if "rank_weight" in negatives:
        # Its own item first among its ITC neighbours: on this tiny, barely trained set the binary loss, half of
        # whose negatives are now a swapped word or a reversed video, has no room to fall as well.
        first, last = np.mean([row["rank"] for row in losses[:15]]), np.mean([row["rank"] for row in losses[-15:]])
        assert last < first - 0.2, (first, last)
    else:
        first, last = np.mean([row["itm"] for row in losses[:15]]), np.mean([row["itm"] for row in losses[-15:]])
        assert last < first - 0.025, (first, last)  # from the class prior (0.637) down: it learns to match
    assert any(not torch.equal(p, frozen[n]) for n, p in model.named_parameters() if id(p) in trainable)
    assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if id(p) not in trainable)


def test_mined_negatives_are_the_nearest_other_items_by_itc(data: Path, tmp_path: Path) -> None:
    from mplug2.train.itm_stage import encode_set, mine_neighbours

    trainer = make_trainer(data, tmp_path, max_steps=1)
    encoded = encode_set(trainer.model, trainer.tokenizer, trainer.dataset, len(trainer.dataset))
    nearest_items, nearest_texts = mine_neighbours(encoded, top_k=3)
    for sample, kind in enumerate(encoded.kinds):
        members = [i for i, k in enumerate(encoded.kinds) if k == kind]
        match_of_row = {int(encoded.visual_row[i]): int(encoded.match_ids[i]) for i in members}
        own = int(encoded.match_ids[sample])
        others = [row for row, match in match_of_row.items() if match != own]
        by_itc = sorted(others, key=lambda row: -float(encoded.text_feat[sample] @ encoded.visual_feat[kind][row]))
        assert nearest_items[sample].tolist() == by_itc[:3]
        texts = nearest_texts[sample].tolist()
        assert all(encoded.kinds[t] == kind and int(encoded.match_ids[t]) != own for t in texts)
        visual = encoded.visual_feat[kind][encoded.visual_row[sample]]
        best_other = max(float(encoded.text_feat[t] @ visual) for t in members if int(encoded.match_ids[t]) != own)
        assert float(encoded.text_feat[texts[0]] @ visual) == pytest.approx(best_other, abs=1e-6)


def test_items_of_one_description_are_never_each_others_negatives(data: Path, tmp_path: Path) -> None:
    """Annotations giving identical attributes answer each other's captions: one match id, so mining never offers
    one as the other's negative, and no hard batch holds both."""
    from mplug2.train.itm_stage import encode_set, mine_neighbours

    rows = [json.loads(line) for line in (data / "annotations" / "train_videos.jsonl").read_text().splitlines()]
    rows[1]["attributes"] = rows[0]["attributes"]
    del rows[2]["attributes"]  # no description: an item alone
    annotations = tmp_path / "videos.jsonl"
    annotations.write_text("".join(json.dumps(row) + "\n" for row in rows))
    model = create_model("mplug2-tiny")
    dataset = CaptionedMedia(read_annotations([annotations]), data, model.config, data / "cache", progress=False)
    samples = [dataset.load(index, np.random.default_rng(0)) for index in range(len(dataset))]
    assert [s.match for s in samples if s.item_id in (0, 1)] == [0] * 6
    assert {s.match for s in samples if s.item_id not in (0, 1)} == {s.item_id for s in samples if s.item_id > 1}
    encoded = encode_set(model, Tokenizer(data / "vocab.txt"), dataset, len(dataset))
    nearest_items, nearest_texts = mine_neighbours(encoded, top_k=len(rows) - 2)
    twin_row = int(encoded.visual_row[[s.item_id for s in samples].index(1)])
    for sample in (s for s, loaded in enumerate(samples) if loaded.item_id == 0):
        assert twin_row not in nearest_items[sample].tolist()
        assert not {samples[t].item_id for t in nearest_texts[sample].tolist()} & {0, 1}
    config = TrainConfig(batch_size=4, hard_batches=1.0)
    _, match_ids = Trainer(model, Tokenizer(data / "vocab.txt"), dataset, config, tmp_path)._visual_features()
    assert match_ids == [s.match for s in samples]  # what hard batches keep apart, one of each per batch
    for batch in dataset.batches(
        1, 4, 0, 1.0, np.stack([encoded.text_feat[i].numpy() for i in range(len(samples))]), match_ids
    ):
        assert len({match_ids[i] for i in batch}) == len(batch)


def test_separation_pulls_apart_what_itc_cannot_start_on(data: Path, tmp_path: Path) -> None:
    """Caption negatives and reversed twins give a separation term; its gradient reaches both encoders."""
    trainer = make_trainer(
        data,
        tmp_path,
        PhraseSwapper(direction_phrase_pairs()),
        attributes=AttributeSwapper(attribute_word_groups()),
        max_steps=1,
        reversed_twins=1.0,
        caption_negatives=1.0,
        separation_margin=0.2,
    )
    rng = np.random.default_rng(0)
    videos = [i for i in range(len(trainer.dataset)) if trainer.dataset.load(i, rng).kind == "video"][:8]
    samples = add_time_reversed_twins(
        [trainer.dataset.load(i, rng) for i in videos], trainer.direction_phrases, 1.0, rng, TWIN_ID_OFFSET
    )
    assert len(samples) > len(videos), "some captions name a direction"
    loss, parts = trainer.batch_loss(samples, torch.Generator().manual_seed(0))
    assert parts["separation"] > 0, "untrained encoders map near-identical inputs close together"
    loss.backward()
    assert trainer.model.text_encoder.embeddings.word_embeddings.weight.grad.abs().sum() > 0
    assert trainer.model.visual_encoder.visual.conv1.weight.grad.abs().sum() > 0


def learning_rates(trainer: Trainer) -> dict[str, float]:
    """Each trained parameter's name → the learning rate of its optimizer group."""
    names = {id(parameter): name for name, parameter in trainer.model.named_parameters()}
    return {names[id(p)]: group["lr"] for group in trainer.optimizer.param_groups for p in group["params"]}


def test_temporal_adapters_learn_at_their_own_rate(data: Path, tmp_path: Path) -> None:
    """--temporal-lr-scale: every lmhra weight, and nothing else, steps at the scaled rate (the schedule scales all)."""
    trainer = make_trainer(data, tmp_path, max_steps=1, temporal_lr_scale=10.0)
    rates = learning_rates(trainer)
    assert len(rates) == len(list(trainer.model.parameters())), "every parameter is in exactly one group"
    # (decay or not) x (temporal or not), in this order: what checkpoints of earlier versions hold, so they resume
    assert [(group["weight_decay"] > 0, group["lr"] > rates["temp"]) for group in trainer.optimizer.param_groups] == [
        (False, False),
        (False, True),
        (True, False),
        (True, True),
    ]
    temporal = {name for name in rates if ".lmhra" in name}
    assert temporal and all(rates[name] == pytest.approx(10 * rates["temp"]) for name in temporal)
    assert all(rate == pytest.approx(rates["temp"]) for name, rate in rates.items() if name not in temporal)


def test_a_text_tower_at_rate_zero_stays_still_while_the_visual_tower_learns(data: Path, tmp_path: Path) -> None:
    """--text-lr-scale 0: the text encoder (universal layers included) and text_proj get no gradient and do not move;
    the visual tower, its projection and the fusion encoder train. Another scale sets the text tower's rate."""
    trainer = make_trainer(data, tmp_path, max_steps=2, text_lr_scale=0.0)
    before = {name: p.detach().clone() for name, p in trainer.model.named_parameters()}
    trainer.train()
    after = dict(trainer.model.named_parameters())
    text = [name for name in before if name.startswith(("text_encoder.", "text_proj."))]
    assert text and all(torch.equal(before[name], after[name]) for name in text)
    for moving in (
        "visual_encoder.visual.conv1.weight",
        "vision_proj.weight",
        "fusion_encoder.encoder.layer.1.attention.self.query.weight",
    ):
        assert not torch.equal(before[moving], after[moving]), moving
    scaled = make_trainer(data, tmp_path / "scaled", max_steps=1, text_lr_scale=0.5)
    rates = learning_rates(scaled)
    assert all(rates[name] == pytest.approx(0.5 * rates["temp"]) for name in text)
    assert rates["vision_proj.weight"] == pytest.approx(rates["temp"])


def test_training_at_another_input_size_saves_a_model_of_that_size(data: Path, tmp_path: Path) -> None:
    command = [sys.executable, "-m", "indexer", "train", "--model", "mplug2-tiny", "--vocab", str(data / "vocab.txt")]
    command += ["--media", str(data), "--annotations", str(data / "annotations" / "train_videos.jsonl")]
    command += ["--out", str(tmp_path / "run"), "--batch-size", "8", "--max-steps", "2", "--image-size", "48"]
    finished = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr[-2000:]
    config = json.loads((tmp_path / "run" / "model" / "config.json").read_text())
    assert config["vision"]["image_size"] == 48
    refused = subprocess.run([*command[:-1], "44"], cwd=REPO, capture_output=True, text=True)
    assert refused.returncode != 0 and "multiple of the ViT's patch size 8" in refused.stderr


def test_partial_captions_from_the_command_line(data: Path, tmp_path: Path) -> None:
    words = tmp_path / "words.json"
    words.write_text(json.dumps(attribute_word_groups()))
    command = [sys.executable, "-m", "indexer", "train", "--model", "mplug2-tiny", "--vocab", str(data / "vocab.txt")]
    command += ["--media", str(data), "--annotations", str(data / "annotations" / "train_videos.jsonl")]
    command += [
        "--out",
        str(tmp_path / "run"),
        "--batch-size",
        "8",
        "--max-steps",
        "2",
        "--attribute-words",
        str(words),
    ]
    command += ["--partial-captions", "0.5", "--partial-attributes"]
    finished = subprocess.run([*command, "shape+size"], cwd=REPO, capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr[-2000:]
    training = json.loads((tmp_path / "run" / "model" / "config.json").read_text())["provenance"]["training"]
    assert (training["partial_captions"], training["partial_attributes"]) == (0.5, ["shape", "size"])
    refused = subprocess.run([*command, "colour"], cwd=REPO, capture_output=True, text=True)
    assert refused.returncode == 2 and "keep attribute groups of the attribute words" in refused.stderr
    assert "Traceback" not in refused.stderr
