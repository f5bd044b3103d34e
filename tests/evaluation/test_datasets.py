"""Each benchmark reader on a small hand-written file in that benchmark's own layout (the same columns, keys and
separators as the files the community distributes), and a clear error for a file in the wrong format."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from indexer.evaluation.datasets import load_benchmark


def test_msrvtt_clip4clip_csv(tmp_path: Path) -> None:
    (tmp_path / "video7020.mp4").write_bytes(b"")
    csv = tmp_path / "MSRVTT_JSFUSION_test.csv"
    csv.write_text(
        "key,vid_key,video_id,sentence\n"
        "ret0,msr7020,video7020,a woman creating a fondant baby and flower\n"
        "ret1,msr7021,video7021,a boy plays grand theft auto 5\n"
    )
    benchmark = load_benchmark("msrvtt-1ka", csv, tmp_path)
    assert [item.key for item in benchmark.items] == ["video7020", "video7021"]
    assert benchmark.items[0].path == tmp_path / "video7020.mp4"  # the extension found on disk
    assert benchmark.texts[1] == "a boy plays grand theft auto 5"
    assert benchmark.text_to_items == [[0], [1]]
    present, missing = benchmark.check_media()
    assert present == [0] and missing == [1]


def test_msrvtt_mplug_jsonl(tmp_path: Path) -> None:
    jsonl = tmp_path / "msrvtt_test.jsonl"
    jsonl.write_text(json.dumps({"video": "video9770.mp4", "caption": "a person is mixing ingredients"}) + "\n")
    benchmark = load_benchmark("msrvtt-1ka", jsonl, tmp_path)
    assert benchmark.items[0].key == "video9770.mp4" and benchmark.texts == ["a person is mixing ingredients"]


def test_didemo_moments_become_paragraphs(tmp_path: Path) -> None:
    moments = [
        {"video": "v1.mp4", "description": "a man walks in.", "times": [[0, 0]]},
        {"video": "v2.mp4", "description": "a dog runs.", "times": [[1, 2]]},
        {"video": "v1.mp4", "description": "he sits down.", "times": [[2, 3]]},
    ]
    path = tmp_path / "test_data.json"
    path.write_text(json.dumps(moments))
    benchmark = load_benchmark("didemo", path, tmp_path)
    assert benchmark.texts == ["a man walks in. he sits down.", "a dog runs."]
    assert benchmark.text_to_items == [[0], [1]]


def test_didemo_mplug2_jsonl_paragraph(tmp_path: Path) -> None:
    path = tmp_path / "didemo_test.jsonl"
    path.write_text(json.dumps({"video": "a.mp4", "caption": ["first part.", "second part."]}) + "\n")
    assert load_benchmark("didemo", path, tmp_path).texts == ["first part. second part."]


def test_lsmdc_tab_separated_clips_in_movie_folders(tmp_path: Path) -> None:
    movie = tmp_path / "1010_TITANIC"
    movie.mkdir()
    (movie / "1010_TITANIC_00.41.32.072-00.41.40.196.avi").write_bytes(b"")
    path = tmp_path / "LSMDC16_challenge_1000_publictect.csv"
    path.write_text(
        "1010_TITANIC_00.41.32.072-00.41.40.196\t00.41.32.072\t00.41.40.196\t00.41.32.072\t00.41.40.196\t"
        "SOMEONE leans over the railing.\n"
        "1012_Unbreakable_00.05.14.210-00.05.19.880\t00.05.14.210\t00.05.19.880\t00.05.14.210\t00.05.19.880\t"
        "He looks up.\n"
    )
    benchmark = load_benchmark("lsmdc", path, tmp_path)
    assert benchmark.items[0].path == movie / "1010_TITANIC_00.41.32.072-00.41.40.196.avi"
    assert benchmark.texts == ["SOMEONE leans over the railing.", "He looks up."]
    assert benchmark.check_media() == ([0], [1])


def test_lsmdc_wrong_columns(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("clip,sentence\nx,y\n")
    with pytest.raises(ValueError, match=r"bad\.csv:1: expected 6 tab-separated fields"):
        load_benchmark("lsmdc", path, tmp_path)


def test_msvd_pickle_and_test_list(tmp_path: Path) -> None:
    captions = {
        "-4wsuPCjDBc_5_15": [["a", "squirrel", "is", "eating"], ["a", "chipmunk", "eats"]],
        "-7KMZQEsJW4_205_208": [["a", "man", "is", "singing"]],
        "train_only": [["never", "read"]],
    }
    with (tmp_path / "raw-captions.pkl").open("wb") as handle:
        pickle.dump(captions, handle)
    (tmp_path / "test_list.txt").write_text("-4wsuPCjDBc_5_15\n-7KMZQEsJW4_205_208\n")
    benchmark = load_benchmark("msvd", tmp_path / "raw-captions.pkl", tmp_path)
    assert benchmark.texts == ["a squirrel is eating", "a chipmunk eats", "a man is singing"]
    assert benchmark.text_to_items == [[0], [0], [1]]
    assert benchmark.item_to_texts == [[0, 1], [2]]


def test_msvd_refuses_a_pickle_that_would_run_code(tmp_path: Path) -> None:
    class Payload:
        def __reduce__(self):
            return (print, ("pwned",))

    (tmp_path / "raw-captions.pkl").write_bytes(pickle.dumps({"v": Payload()}))
    (tmp_path / "test_list.txt").write_text("v\n")
    with pytest.raises(ValueError, match="not an annotation file of msvd"):
        load_benchmark("msvd", tmp_path / "raw-captions.pkl", tmp_path)


def test_activitynet_val1_paragraphs(tmp_path: Path) -> None:
    data = {
        "v_uqiMw7tQ1Cc": {
            "duration": 55.15,
            "timestamps": [[0.28, 55.15], [13.79, 54.32]],
            "sentences": ["A weight lifting tutorial is given.", "  The coach helps the guy in red."],
        }
    }
    path = tmp_path / "val_1.json"
    path.write_text(json.dumps(data))
    benchmark = load_benchmark("activitynet", path, tmp_path)
    assert benchmark.items[0].key == "v_uqiMw7tQ1Cc"
    assert benchmark.texts == ["A weight lifting tutorial is given. The coach helps the guy in red."]


def test_coco_albef_list(tmp_path: Path) -> None:
    rows = [{"image": "val2014/COCO_val2014_000000391895.jpg", "caption": ["a man rides a bike", "a cyclist"]}]
    path = tmp_path / "coco_test.json"
    path.write_text(json.dumps(rows))
    benchmark = load_benchmark("coco", path, tmp_path)
    assert benchmark.kind == "image" and benchmark.items[0].path == tmp_path / "val2014/COCO_val2014_000000391895.jpg"
    assert benchmark.text_to_items == [[0], [0]]


def test_karpathy_original_keeps_the_test_split(tmp_path: Path) -> None:
    data = {
        "images": [
            {"filename": "1000092795.jpg", "split": "test", "sentences": [{"raw": "Two young guys.", "tokens": []}]},
            {"filename": "10002456.jpg", "split": "train", "sentences": [{"raw": "Several men.", "tokens": []}]},
        ],
        "dataset": "flickr30k",
    }
    path = tmp_path / "dataset_flickr30k.json"
    path.write_text(json.dumps(data))
    benchmark = load_benchmark("flickr30k", path, tmp_path)
    assert [item.key for item in benchmark.items] == ["1000092795.jpg"] and benchmark.texts == ["Two young guys."]


def test_wrong_format_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "val_1.json"
    path.write_text(json.dumps([{"video": "x"}]))
    with pytest.raises(ValueError, match=r"val_1\.json: not an annotation file of activitynet"):
        load_benchmark("activitynet", path, tmp_path)
