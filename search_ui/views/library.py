"""The library page: what is indexed, what failed and why, the last run's timings, and indexing a folder."""

from __future__ import annotations

from datetime import datetime

import streamlit as st

from search_ui import jobs
from search_ui.state import AppConfig, shared_library

STAGES = ("read", "probe", "segment", "decode", "decode_wait", "encode", "write", "total")


@st.fragment(run_every=1.0)
def _job_panel(config: AppConfig) -> None:
    """Live progress of the background index run (re-drawn every second while one exists)."""
    job = jobs.current_job(config.settings)
    if job is None:
        return
    # This fragment alone re-runs every second; when the job it watched ends, the whole page must (the counts,
    # failures and last run below were drawn before the job finished).
    watched = st.session_state.get("watched_job")
    st.session_state["watched_job"] = job.pid if job.running else None
    if watched == job.pid and not job.running:
        st.rerun(scope="app")
    progress = job.progress
    counts = f"{progress.get('indexed', 0)} indexed, {progress.get('failed', 0)} failed"
    if job.running:
        done, total = progress.get("done", 0), progress.get("total") or "?"
        st.progress(job.fraction, text=f"Indexing {job.folder}: {done}/{total} files ({counts})")
    elif progress.get("status") == "done":
        st.success(f"Indexed {job.folder}: {counts}, {progress.get('unchanged', 0)} unchanged.")
    elif progress.get("status") == "error":
        st.error(f"Indexing {job.folder} failed: {progress.get('error')}")
    else:
        st.warning(f"Indexing {job.folder} stopped before the end ({counts}); start it again to finish.")
        if job.log_tail:
            st.code(job.log_tail[-800:], language=None)


def _start_form(config: AppConfig) -> None:
    refused = config.indexing_refused
    if refused is not None:
        st.info(refused, icon=":material/lock:")
        return
    with st.form("index_folder", border=True):
        st.markdown("**Index a folder**: new and changed files are added, unchanged ones skipped.")
        if config.media_roots:
            st.caption("Only inside: " + ", ".join(f"`{root}`" for root in config.media_roots))
        placeholder = str(config.media_roots[0]) if config.media_roots else "/home/me/Videos"
        folder = st.text_input("Folder on this machine", key="index_folder_path", placeholder=placeholder)
        if st.form_submit_button("Start indexing", type="primary"):
            try:
                jobs.start_job(config.settings, folder, config.media_roots)
            except ValueError as error:
                st.error(str(error))
            else:
                st.toast("Indexing started; it goes on if you leave this page.")


def _offline_panel(config: AppConfig, offline: list[tuple[str, int]], roots: list[str]) -> None:
    """Files whose folder is gone: where they are, and forgetting them on purpose (`index --prune-missing`)."""
    st.subheader("Offline files")
    st.warning(
        f"{sum(count for _, count in offline)} files are offline: their folder is gone (an unmounted disk or share?). "
        "They are kept with their encoded clips but left out of search, and come back, with nothing re-encoded, "
        "when the folder is back and the library is indexed again."
    )
    st.dataframe([{"folder": folder, "files": count} for folder, count in offline], hide_index=True, width="stretch")
    holding = [root for root in roots if any(f == root or f.startswith(root.rstrip("/") + "/") for f, _ in offline)]
    if holding and config.indexing_refused is None and st.button(f"Forget the offline files under {holding[0]}"):
        try:
            jobs.start_job(config.settings, holding[0], config.media_roots, prune_missing=True)
        except ValueError as error:
            st.error(str(error))
        else:
            st.toast("Forgetting the offline files: an index run with --prune-missing started.")


def render(config: AppConfig) -> None:
    st.title("Library")
    _start_form(config)
    _job_panel(config)
    stats = shared_library(config.settings).stats()
    first, second, third, fourth = st.columns(4)
    first.metric("Files indexed", stats.catalog.count("indexed"))
    second.metric("Searchable clips", stats.catalog.clips_ready)
    third.metric("Files that failed", stats.catalog.count("failed"))
    fourth.metric("Files offline", stats.catalog.count("offline"))
    if not stats.roots:
        st.info("Nothing indexed yet. Give a folder above, or run `mplug2-search index FOLDER`.")
        return
    st.caption("Indexed folders: " + ", ".join(f"`{root}`" for root in stats.roots))
    if stats.offline:
        _offline_panel(config, stats.offline, stats.roots)
    if stats.failed:
        st.subheader("Files that could not be indexed")
        st.dataframe(
            [{"file": m.path, "problem": m.error_code, "details": m.error} for m in stats.failed],
            hide_index=True,
            width="stretch",
        )
    run = stats.last_run
    if run is not None:
        st.subheader(f"Last index run (#{run.id}, {run.status})")
        finished = run.finished_at.strftime("%Y-%m-%d %H:%M") if isinstance(run.finished_at, datetime) else "running"
        st.caption(f"started {run.started_at:%Y-%m-%d %H:%M}, finished {finished}, model `{run.model}`")
        st.dataframe(
            [{"stage": stage, "seconds": round(run.timings[stage], 2)} for stage in STAGES if stage in run.timings],
            hide_index=True,
        )
        st.json(run.counts, expanded=False)
    with st.expander("Files by kind and status"):
        st.dataframe(
            [{"kind": c.kind, "status": c.status, "files": c.files} for c in stats.catalog.files], hide_index=True
        )
