"""The evaluation page: reports saved by `mplug2-search eval`, as tables and plots, headlined by the scorer search
uses (the model's recorded choice) with the others beside it."""

from __future__ import annotations

import json
from pathlib import Path

import streamlit as st

from search_ui.state import AppConfig

COLUMNS = ("R@1", "R@5", "R@10", "MdR", "MnR")
GRADED_COLUMNS = ("nDCG@10", "share@1", "share@5", "full_match_first", "share@1_without_a_full_match")


def find_reports(folder: Path) -> list[tuple[Path, dict]]:
    """(folder, report) for every readable report.json under `folder`, newest first; unreadable ones are skipped."""
    found = []
    for path in sorted(folder.glob("*/report.json")):
        try:
            found.append((path.parent, json.loads(path.read_text())))
        except (OSError, ValueError):
            continue
    return sorted(found, key=lambda item: item[1].get("created", ""), reverse=True)


def headline_scorer(report: dict) -> str:
    """The scorer the report headlines: what search uses (reports from before it was recorded headline "official")."""
    return report.get("headline_scorer", "official")


def scorer_label(report: dict, scorer: str) -> str:
    label = report.get("scorer_labels", {}).get(scorer, scorer)
    return f"{label} ← search uses this" if scorer == headline_scorer(report) else label


def _ordered(report: dict, by_scorer: dict) -> list[str]:
    """The headline scorer first, the others beside it in the report's order."""
    first = headline_scorer(report)
    return sorted(by_scorer, key=lambda scorer: scorer != first)


def metric_rows(report: dict) -> list[dict]:
    rows = []
    metrics_by_scorer = report.get("metrics", {})
    for scorer in _ordered(report, metrics_by_scorer):
        metrics = metrics_by_scorer[scorer]
        for direction in ("t2v", "v2t"):
            if f"{direction}_R@1" in metrics:
                row = {
                    "scorer": scorer_label(report, scorer),
                    "direction": "text→visual" if direction == "t2v" else "visual→text",
                }
                row.update({name: metrics.get(f"{direction}_{name}") for name in COLUMNS})
                rows.append(row)
    return rows


def graded_rows(report: dict) -> list[dict]:
    """The composed queries' graded figures, one row per scorer (none for reports without attributes)."""
    by_scorer = (report.get("graded") or {}).get("by_scorer", {})
    return [
        {"scorer": scorer_label(report, scorer), **{name: by_scorer[scorer].get(name) for name in GRADED_COLUMNS}}
        for scorer in _ordered(report, by_scorer)
    ]


def render(config: AppConfig) -> None:
    st.title("Evaluation")
    reports = find_reports(config.reports_dir)
    if not reports:
        st.info(
            f"No evaluation reports in `{config.reports_dir}` yet. Run for example\n\n"
            f"`mplug2-search eval --benchmark jsonl --annotations FILE --media DIR --out {config.reports_dir}/NAME`"
        )
        return
    summary = [
        {
            "report": folder.name,
            "benchmark": report.get("benchmark"),
            "model": Path(str(report.get("model", ""))).name,
            "items": report.get("counts", {}).get("items_evaluated"),
            "scored by": report.get("scorer_labels", {}).get(headline_scorer(report), headline_scorer(report)),
            **{
                (key if key in GRADED_COLUMNS else f"t2v {key}"): value
                for key, value in report.get("headline", {}).items()
            },
        }
        for folder, report in reports
    ]
    st.dataframe(summary, hide_index=True, width="stretch")
    names = [folder.name for folder, _ in reports]
    chosen = st.selectbox("Report", names, key="report")
    folder, report = reports[names.index(chosen)]
    st.subheader(f"{report.get('benchmark')} · {chosen}")
    st.caption(f"created {report.get('created', '?')} · settings {json.dumps(report.get('settings', {}))}")
    st.dataframe(metric_rows(report), hide_index=True, width="stretch")
    graded = report.get("graded") or {}
    if graded:
        st.markdown(
            f"**Composed queries** ({graded.get('queries')}, {graded.get('queries_with_a_full_match')} fully held by "
            "some item): nDCG@10 with the attribute overlap as gain; the share of the best achievable attributes "
            "held by the first result and by the first five."
        )
        st.dataframe(graded_rows(report), hide_index=True, width="stretch")
    plots = sorted(folder.glob("*.png"))
    for column, plot in zip(st.columns(max(1, min(2, len(plots)))), plots, strict=False):
        column.image(str(plot), caption=plot.stem.replace("_", " "), width="stretch")
    for plot in plots[2:]:
        st.image(str(plot), caption=plot.stem.replace("_", " "), width="stretch")
