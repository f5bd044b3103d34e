"""Each page of the app through Streamlit's AppTest, over a real archive indexed with a tiny random model: the empty
state, a search with scores, playing a result, refusing paths outside the indexed folders, the library with its
failures and timings, background indexing started from the page, and saved evaluation reports."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from indexer.settings import Settings
from search_ui import jobs
from tests.indexer.test_pipeline import run_index

APP = str(Path(__file__).resolve().parents[2] / "search_ui" / "app.py")


@pytest.fixture
def app_env(monkeypatch: pytest.MonkeyPatch, settings: Settings, tiny_model_dir: Path, tmp_path: Path) -> Path:
    monkeypatch.setenv("MPLUG2_SEARCH_DB", settings.db_url)
    monkeypatch.setenv("MPLUG2_SEARCH_INDEX_DIR", str(settings.index_dir))
    monkeypatch.setenv("MPLUG2_SEARCH_MODEL", str(tiny_model_dir))
    reports = tmp_path / "reports"
    monkeypatch.setenv("MPLUG2_SEARCH_REPORTS", str(reports))
    return reports


@pytest.fixture
def indexed(app_env: Path, archive_dir: Path, settings: Settings, tiny_model_dir: Path) -> Path:
    run_index(archive_dir, settings, tiny_model_dir)
    return archive_dir


def open_app(page: str = "Search", **query: str) -> AppTest:
    app = AppTest.from_file(APP, default_timeout=120)
    app.query_params.update(query)
    app.run()
    if page != "Search":
        app.sidebar.radio(key="page").set_value(page).run()
    assert not app.exception, app.exception
    return app


def search(app: AppTest, text: str) -> AppTest:
    app.text_input(key="query").input(text)
    app.form_submit_button[0].click()
    app.run()
    assert not app.exception, app.exception
    return app


def texts(elements) -> str:
    return "\n".join(str(element.value) for element in elements)


def test_empty_archive_explains_what_to_do(app_env: Path) -> None:
    app = open_app()
    assert "nothing has been indexed" in texts(app.info) and "Library" in texts(app.info)
    library = open_app("Library")
    assert "Nothing indexed yet" in texts(library.info)
    evaluation = open_app("Evaluation")
    assert "No evaluation reports" in texts(evaluation.info)


def test_search_shows_results_with_scores_and_plays_a_clip(indexed: Path) -> None:
    app = search(open_app(), "a small red circle moves to the left")
    captions = texts(app.caption)
    assert "16 results for" in captions and "re-ranked" in captions
    assert captions.count("ITM") >= 16 and "ITC" in captions  # the raw scores, inside each card's "Scores"
    assert [expander.label for expander in app.expander].count("Scores") == 16
    cues = [bar.proto.text for bar in app.get("progress")]
    assert cues[0] == "best match" and len(cues) == 16
    assert ":material/movie: clip 0:" in captions  # the clip's time range
    assert not app.get("video")
    play = next(button for button in app.button if button.label == "Play clip")
    play.click().run()
    assert not app.exception
    clip_id = app.query_params["clip"]
    assert clip_id and len(app.get("video")) == 1  # the player, from the clip's start
    assert "Clip **0:" in texts(app.markdown)


def test_filters_and_one_result_per_file(indexed: Path) -> None:
    app = open_app()
    app.sidebar.toggle(key="one_per_file").set_value(True)
    app = search(app, "a shape")
    names = [element.value for element in app.markdown if str(element.value).startswith("**")]
    assert len(names) == len(set(names))
    app.sidebar.pills(key="kinds").set_value(["image"]).run()
    kinds = [str(caption.value) for caption in app.caption if str(caption.value).startswith(":material/")]
    assert kinds and all(kind == ":material/image: image" for kind in kinds)
    assert "4 results for" in texts(app.caption)  # the archive holds 4 images


def test_search_by_example_image(indexed: Path, tmp_path: Path) -> None:
    app = open_app()
    picture = tmp_path / "query.png"
    Image.fromarray(np.full((48, 64, 3), (200, 30, 30), np.uint8)).save(picture)
    app.file_uploader(key="example_image").upload("query.png", picture.read_bytes(), "image/png").run()
    assert not app.exception
    assert "results for" in texts(app.caption)
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a picture")
    app = open_app()
    app.file_uploader(key="example_image").upload("broken.png", bad.read_bytes(), "image/png").run()
    assert "broken.png is not an image" in texts(app.error) and not app.exception


@pytest.mark.parametrize("raw", ["../../../../etc/passwd", "/etc/passwd", "-1", "1 OR 1=1", "99999999", "9" * 40])
def test_clip_parameter_cannot_reach_other_files(indexed: Path, raw: str) -> None:
    app = open_app(clip=raw)
    assert "Cannot open that result" in texts(app.warning)
    assert not app.get("video") and not app.exception


def test_a_file_moved_outside_the_roots_is_not_served(indexed: Path, settings: Settings) -> None:
    database = settings.db_url.removeprefix("sqlite:///")
    with sqlite3.connect(database) as connection:
        clip_id, media_id = connection.execute("SELECT id, media_id FROM clips WHERE status = 'ready'").fetchone()
        connection.execute("UPDATE media SET path = '/etc/passwd' WHERE id = ?", (media_id,))
    app = open_app(clip=str(clip_id))
    assert "outside the indexed folders" in texts(app.warning)
    assert not app.get("video") and not app.get("image")


def test_library_shows_failures_and_the_last_run(indexed: Path) -> None:
    app = open_app("Library")
    metrics = {metric.label: metric.value for metric in app.metric}
    assert int(metrics["Files indexed"]) >= 17 and int(metrics["Files that failed"]) == 4
    failures = app.dataframe[0].value
    assert {"zero-bytes.mp4", "notes.mp4"} <= {Path(path).name for path in failures["file"]}
    assert set(failures["problem"]) <= {"empty", "not_media", "corrupt"}
    timings = app.dataframe[1].value
    assert "total" in set(timings["stage"])


def test_indexing_from_the_page_runs_in_the_background(app_env: Path, archive_dir: Path, settings: Settings) -> None:
    app = open_app("Library")
    app.text_input(key="index_folder_path").input(str(archive_dir / "no-such-folder"))
    app.form_submit_button[0].click().run()
    assert "not a folder on this machine" in texts(app.error)
    app.text_input(key="index_folder_path").input(str(archive_dir / "clips"))
    app.form_submit_button[0].click().run()
    assert not app.error and not app.exception
    deadline = time.monotonic() + 300
    while (job := jobs.current_job(settings)).running:  # the job lives in files: any new page finds it
        assert time.monotonic() < deadline, job.log_tail
        time.sleep(0.5)
    assert job.progress["status"] == "done", job.log_tail
    deadline = time.monotonic() + 10
    while psutil.pid_exists(job.pid):  # reaped by the app, not left a zombie
        assert time.monotonic() < deadline, psutil.Process(job.pid).status()
        time.sleep(0.1)
    reloaded = open_app("Library")  # a fresh session, as after a page reload
    assert "Indexed" in texts(reloaded.success) and str(archive_dir / "clips") in texts(reloaded.success)
    assert int({m.label: m.value for m in reloaded.metric}["Files indexed"]) == 16
    search_page = search(open_app(), "a circle")
    assert "results for" in texts(search_page.caption)


def test_evaluation_page_lists_reports(app_env: Path, tmp_path: Path) -> None:
    folder = app_env / "synthetic-run"
    folder.mkdir(parents=True)
    metrics = {f"{d}_{m}": v for d in ("t2v", "v2t") for m, v in (("R@1", 0.5), ("R@5", 0.8), ("R@10", 0.9))}
    metrics.update({"t2v_MdR": 2.0, "t2v_MnR": 3.1, "v2t_MdR": 1.0, "v2t_MnR": 2.5, "RSUM": 4.4})
    report = {
        "benchmark": "jsonl",
        "created": "2026-11-22T10:00:00+00:00",
        "model": "/models/mplug2-synth",
        "counts": {"items_evaluated": 10},
        "headline": {"R@1": 0.5},
        "metrics": {"itc": metrics},
        "settings": {},
    }
    (folder / "report.json").write_text(json.dumps(report))
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(folder / "recall_at_k.png")
    (app_env / "half-written").mkdir()
    (app_env / "half-written" / "report.json").write_text("{")  # skipped, not a crash
    app = open_app("Evaluation")
    assert list(app.dataframe[0].value["report"]) == ["synthetic-run"]
    rows = app.dataframe[1].value
    assert list(rows["R@1"]) == [0.5, 0.5] and list(rows["direction"]) == ["text→visual", "visual→text"]
    assert app.get("image")


def test_evaluation_page_headlines_the_scorer_search_uses(app_env: Path) -> None:
    def metrics(r1: float) -> dict:
        values = {f"{d}_{m}": r1 for d in ("t2v", "v2t") for m in ("R@1", "R@5", "R@10", "MdR", "MnR")}
        return {**values, "RSUM": 6 * r1}

    graded = {name: 0.5 for name in ("nDCG@10", "share@1", "share@5", "full_match_first")}
    report = {
        "benchmark": "jsonl",
        "created": "2026-12-05T10:00:00+00:00",
        "model": "/models/mplug2-synth",
        "counts": {"items_evaluated": 40},
        "headline": {"R@1": 0.9, "share@1": 0.93},
        "headline_scorer": "model_choice",
        "scorer_labels": {"itc": "ITC", "official": "ITM re-rank, official recipe", "model_choice": "search's default"},
        "metrics": {"itc": metrics(0.9), "official": metrics(0.8), "model_choice": metrics(0.9)},
        "graded": {
            "queries": 200,
            "queries_with_a_full_match": 100,
            "by_scorer": {"itc": graded, "official": {**graded, "share@1": 0.4}, "model_choice": graded},
        },
    }
    (app_env / "demo").mkdir(parents=True)
    (app_env / "demo" / "report.json").write_text(json.dumps(report))
    app = open_app("Evaluation")
    summary = app.dataframe[0].value
    assert list(summary["scored by"]) == ["search's default"] and list(summary["t2v R@1"]) == [0.9]
    assert list(summary["share@1"]) == [0.93]
    rows = app.dataframe[1].value
    assert rows["scorer"][0] == "search's default ← search uses this"  # first, the others beside it
    assert set(rows["scorer"]) == {"search's default ← search uses this", "ITC", "ITM re-rank, official recipe"}
    graded_rows = app.dataframe[2].value
    assert list(graded_rows["share@1"]) == [0.5, 0.5, 0.4]
    assert "Composed queries" in "".join(m.value for m in app.markdown)
