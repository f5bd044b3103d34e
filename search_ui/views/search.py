"""The search page: a query (or an example image), filters, and a grid of results that play where they match."""

from __future__ import annotations

import io
from datetime import datetime, time
from pathlib import Path

import numpy as np
import streamlit as st

from indexer.search.engine import (
    DEFAULT_RERANK_K,
    ArchiveError,
    NotServable,
    RerankChoice,
    SearchFilters,
    SearchResponse,
    SearchResult,
)
from indexer.settings import bundled_model_note, is_bundled_model
from search_ui.state import AppConfig, SharedEngine, shared_engine

COLUMNS = 4


def _clock(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}:{secs:02d}" if minutes < 60 else f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"


def _controls(roots: list[str], choice: RerankChoice) -> tuple[int, int, bool, SearchFilters]:
    with st.sidebar:
        st.subheader("Results")
        k = st.slider("Results to show", 4, 64, 16, step=4, key="top_k")
        # Defaults from the model's own validation: re-ranking off where it does not help this model.
        rerank = st.toggle(
            "Re-rank with the fusion encoder (ITM)", value=choice.rerank_k > 0, key="rerank", help=choice.summary()
        )
        depth = choice.rerank_k or DEFAULT_RERANK_K
        rerank_k = st.slider("Candidates to re-rank", 8, 128, depth, step=8, key="rerank_k", disabled=not rerank)
        one_per_file = st.toggle("One result per file", value=False, key="one_per_file")
        st.subheader("Filters")
        folder = st.selectbox("Folder", ["All folders", *roots], key="folder")
        kinds = st.pills(
            "Kind",
            ["video", "image"],
            selection_mode="multi",
            default=["video", "image"],
            key="kinds",
            help="None ticked counts as both.",
        )
        durations = st.slider("File length (s)", 0, 600, (0, 600), step=5, key="durations", help="600 = no limit")
        use_dates = st.toggle("Only files modified between…", key="use_dates")
        dates = st.date_input("Modified", value=(), key="dates", disabled=not use_dates)
    after = before = None
    if use_dates and isinstance(dates, tuple) and len(dates) == 2:
        after, before = datetime.combine(dates[0], time.min), datetime.combine(dates[1], time.max)
    filters = SearchFilters(
        path_prefix=None if folder == "All folders" else folder,
        kinds=tuple(kinds) if kinds and len(kinds) < 2 else None,
        min_duration=float(durations[0]) if durations[0] > 0 else None,
        max_duration=float(durations[1]) if durations[1] < 600 else None,
        modified_after=after,
        modified_before=before,
    )
    return k, (rerank_k if rerank else 0), one_per_file, filters


def _read_upload(upload) -> np.ndarray:
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(upload.getvalue())) as image:
            return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    except (UnidentifiedImageError, OSError) as error:
        raise ValueError(f"{upload.name} is not an image this app can read ({error}); try a JPEG or PNG") from None


def _player(engine: SharedEngine, clip_id: object, preview_dir: Path) -> None:
    """The clip from its start (stopping at its end), or the image, above the results."""
    try:
        clip = engine.open_clip(clip_id)
    except NotServable as refusal:
        st.warning(f"Cannot open that result: {refusal}")
        return
    record, path = clip.record, clip.path
    with st.container(border=True, key="player"):
        media_column, details = st.columns([3, 2])
        with media_column:
            if record.kind == "image":
                st.image(str(path), width="stretch")
            else:
                try:
                    video = engine.playable(clip, preview_dir)
                except NotServable as refusal:
                    st.warning(str(refusal))
                else:
                    st.video(str(video.path), start_time=video.start, end_time=video.end, autoplay=True, muted=True)
        with details:
            st.markdown(f"#### {path.name}")
            st.caption(f"`{path.parent}`")
            if record.kind == "video":
                st.markdown(
                    f"Clip **{_clock(record.start)}–{_clock(record.end)}** of a {_clock(record.media_duration)} video"
                )
            st.caption(f"{record.width}×{record.height}")
            if st.button("Close", key="close_player", icon=":material/close:"):
                st.session_state.pop("open_clip", None)
                st.query_params.pop("clip", None)
                st.rerun()


def _relevance(result: SearchResult, best: float, worst: float) -> tuple[float, str]:
    """Where this result stands between the list's weakest and best scores (scores are not comparable across
    models or queries, so the cue is relative to this list, and says so)."""
    fraction = 1.0 if best == worst else (result.score - worst) / (best - worst)
    label = "best match" if result.rank == 1 else ("close to the best" if fraction >= 0.75 else "weaker match")
    return fraction, label


def _card(engine: SharedEngine, result: SearchResult, best: float, worst: float) -> None:
    # "stretch": as tall as the row's tallest card, so a row's cards share one height whatever their thumbnails'
    # shapes, and none hides its button (a fixed height in pixels scrolled a square thumbnail's button out of sight).
    with st.container(border=True, key=f"result-{result.rank}", height="stretch"):
        thumbnail = engine.thumbnail(result.clip_id)
        if thumbnail:
            st.image(thumbnail, width="stretch")
        name = Path(result.path).name
        shown = name if len(name) <= 32 else name[:20] + "…" + name[-11:]
        st.markdown(f"**{result.rank}. {shown}**", help=result.path)
        if result.kind == "video":
            st.caption(f":material/movie: clip {_clock(result.start)}–{_clock(result.end)}")
        else:
            st.caption(":material/image: image")
        fraction, label = _relevance(result, best, worst)
        st.progress(max(0.02, fraction), text=label)
        with st.expander("Scores"):
            itm = f"{result.itm_score:.2f}" if result.itm_score is not None else "– (not re-ranked)"
            st.caption(f"final {result.score:.3f} · ITM {itm} · ITC cosine {result.itc_score:.3f}")
        label = "Play clip" if result.kind == "video" else "Show image"
        if st.button(label, key=f"open-{result.clip_id}", icon=":material/play_arrow:", width="stretch"):
            st.session_state["open_clip"] = result.clip_id
            st.query_params["clip"] = str(result.clip_id)
            st.rerun()


def _grid(engine: SharedEngine, response: SearchResponse) -> None:
    timing = response.timings.get("total", 0.0) * 1000
    st.caption(
        f"{len(response.results)} results for **{response.query}** · {response.candidates} candidates, "
        f"{response.reranked} re-ranked · {timing:.0f} ms"
    )
    scores = [result.score for result in response.results]
    for row_start in range(0, len(response.results), COLUMNS):
        for column, result in zip(st.columns(COLUMNS), response.results[row_start : row_start + COLUMNS], strict=False):
            with column:
                _card(engine, result, max(scores), min(scores))


def render(config: AppConfig) -> None:
    st.title("Search your archive")
    try:
        engine = shared_engine(config.settings)
    except ArchiveError as error:
        st.info(f"{error}\n\nOpen **Library** in the sidebar to index a folder; search works as soon as it starts.")
        return
    except (FileNotFoundError, ValueError) as error:
        st.error(f"The model could not be loaded: {error}")
        return
    if is_bundled_model(engine.model_name):
        st.info(bundled_model_note()[0].upper() + bundled_model_note()[1:] + ".", icon=":material/info:")
    k, rerank_k, one_per_file, filters = _controls(engine.roots(), engine.rerank_choice)
    with st.form("query", border=False):
        text_column, button_column = st.columns([8, 1], vertical_alignment="bottom")
        query = text_column.text_input(
            "What are you looking for?", key="query", placeholder="a red circle moves to the left"
        )
        button_column.form_submit_button("Search", type="primary", width="stretch")
    with st.expander("Search by an example image"):
        upload = st.file_uploader("Image", type=["jpg", "jpeg", "png", "webp", "bmp"], key="example_image")
    opened = st.session_state.get("open_clip") or st.query_params.get("clip")
    if opened is not None:
        _player(engine, opened, config.settings.index_dir / "previews")
    target: str | np.ndarray | None = query.strip() or None
    try:
        if upload is not None:
            target = _read_upload(upload)
            st.image(target, caption="example image", width=160)
        if target is None:
            st.caption("Type what happens in the clip you want: objects, colours, motion, setting.")
            return
        response = engine.search(target, k=k, rerank_k=rerank_k, filters=filters, one_per_file=one_per_file)
    except (ArchiveError, ValueError, OSError) as error:
        st.error(str(error))
        return
    if not response.results:
        st.info("No results. Loosen the filters in the sidebar, or index more folders on the **Library** page.")
        return
    _grid(engine, response)
