"""precal dashboard: entry point (``streamlit run app.py -- --checkpoint DIR --data DIR``).

Started by ``precal dashboard``. Reads its arguments after ``--`` (or ``PRECAL_CHECKPOINTS`` /
``PRECAL_DATA``); with none it opens every checkpoint folder in ``checkpoints/`` that loads, with
data from the folder each checkpoint records (else ``sample_data/``). This file is the frame around
every page: sidebar (model pair, split, upload) and navigation; each page is a thin file in
``views/`` and everything they show is computed in :mod:`precal.dashboard.backend`.
"""

from __future__ import annotations

import streamlit as st


st.set_page_config(page_title="precal dashboard", page_icon=":material/tune:", layout="wide")

from precal.dashboard.ui.background import configure_torch, schedule_warmups
from precal.dashboard.ui.context import PAGES, show_problems
from precal.dashboard.ui.model_notes import show_load_notes
from precal.dashboard.ui.sidebar import build_context
from precal.dashboard.ui.url_state import write as write_url

configure_torch()

pages = [
    st.Page(PAGES["start"], title="Start: the demo", icon=":material/play_circle:", default=True),
    st.Page(PAGES["overview"], title="Overview", icon=":material/dashboard:"),
    st.Page(PAGES["explorer"], title="Sample explorer", icon=":material/search:"),
    st.Page(PAGES["lab"], title="Corruption lab", icon=":material/science:"),
    st.Page(PAGES["embeddings"], title="Embeddings", icon=":material/scatter_plot:"),
    st.Page(PAGES["slices"], title="Slices: per group", icon=":material/table_rows:"),
    st.Page(PAGES["calibration"], title="Probability calibration", icon=":material/straighten:"),
    st.Page(PAGES["robustness"], title="Robustness", icon=":material/trending_down:"),
    st.Page(PAGES["training"], title="Training dynamics", icon=":material/show_chart:"),
]
page = st.navigation(pages)
st.sidebar.title("precal")
ctx = build_context()
show_problems(ctx)
show_load_notes(ctx)
try:
    page.run()
finally:
    write_url(page.url_path or "start")  # the address bar shows this view: a link to share
    # UMAP's numba compile (a minute or more of CPU) starts some seconds after a page has been served,
    # so it never delays the first page; by the time someone opens the embeddings page it is usually
    # done (that page starts it at once otherwise).
    schedule_warmups()
