"""The evaluation page: reports saved by `mplug2-search eval`, as tables and plots."""

from __future__ import annotations

import json
from pathlib import Path

import streamlit as st

from search_ui.state import AppConfig

COLUMNS = ("R@1", "R@5", "R@10", "MdR", "MnR")


def find_reports(folder: Path) -> list[tuple[Path, dict]]:
    """(folder, report) for every readable report.json under `folder`, newest first; unreadable ones are skipped."""
    found = []
    for path in sorted(folder.glob("*/report.json")):
        try:
            found.append((path.parent, json.loads(path.read_text())))
        except (OSError, ValueError):
            continue
    return sorted(found, key=lambda item: item[1].get("created", ""), reverse=True)


def metric_rows(report: dict) -> list[dict]:
    rows = []
    for scorer, metrics in report.get("metrics", {}).items():
        for direction in ("t2v", "v2t"):
            if f"{direction}_R@1" in metrics:
                row = {"scorer": scorer, "direction": "text→visual" if direction == "t2v" else "visual→text"}
                row.update({name: metrics.get(f"{direction}_{name}") for name in COLUMNS})
                rows.append(row)
    return rows


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
            **{f"t2v {key}": value for key, value in report.get("headline", {}).items()},
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
    plots = sorted(folder.glob("*.png"))
    for column, plot in zip(st.columns(max(1, min(2, len(plots)))), plots, strict=False):
        column.image(str(plot), caption=plot.stem.replace("_", " "), width="stretch")
    for plot in plots[2:]:
        st.image(str(plot), caption=plot.stem.replace("_", " "), width="stretch")
