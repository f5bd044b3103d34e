"""mplug2-search's Streamlit app: `mplug2-search ui` runs this script. Each page is one module in search_ui/views;
every action is one call into indexer."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

# `streamlit run search_ui/app.py` puts search_ui/ on the path, not the project: make `import search_ui` work too.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import streamlit as st
from PIL import Image, ImageDraw

from search_ui.state import app_config
from search_ui.views import evaluation, library, search

PAGES = {"Search": search, "Library": library, "Evaluation": evaluation}


@functools.cache
def _icon() -> Image.Image:
    """The favicon, drawn here: Streamlit turns `:material/...:` and emoji icons into addresses on external font
    and emoji hosts, and the app must work offline."""
    icon = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    draw = ImageDraw.Draw(icon)
    draw.rounded_rectangle((2, 2, 62, 62), radius=14, fill=(37, 99, 235, 255))
    draw.polygon([(24, 18), (24, 46), (47, 32)], fill=(255, 255, 255, 255))
    return icon


def main() -> None:
    st.set_page_config(page_title="mplug2-search", page_icon=_icon(), layout="wide")
    config = app_config()
    with st.sidebar:
        st.markdown("### mplug2-search")
        wanted = st.query_params.get("page", "Search")
        page = st.radio("Page", list(PAGES), index=list(PAGES).index(wanted) if wanted in PAGES else 0, key="page")
    try:
        PAGES[page].render(config)
    except Exception as error:  # the page shows a message, never a stack trace; the log keeps the details
        import logging

        logging.getLogger("search_ui").exception("page %s failed", page)
        st.error(f"Something went wrong: {error}. The server log has the details.")


main()
