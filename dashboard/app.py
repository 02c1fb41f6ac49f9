"""precal dashboard: entry point (``streamlit run app.py -- --checkpoint DIR --data DIR``).

Started by ``precal dashboard``. Reads its arguments after ``--`` (or ``PRECAL_CHECKPOINTS`` /
``PRECAL_DATA``); with none it opens every checkpoint folder in ``checkpoints/`` that loads, with
data from the folder each checkpoint records (else ``sample_data/``). This file is the frame around
every page: sidebar (model pair, split, upload) and navigation; each page is a thin file in
``views/`` and everything they show is computed in :mod:`precal.dashboard.backend`.

A new session that arrives while the server is still importing torch sees the start page drawn from
its stored first paint (:mod:`precal.dashboard.ui.first_paint`): nothing heavy is imported above
that point.
"""

from __future__ import annotations

import streamlit as st


st.set_page_config(page_title="precal dashboard", page_icon=":material/tune:", layout="wide")

from precal.dashboard.ui.first_paint import show_first_paint, stored_first_paint
from precal.dashboard.ui.pages import PAGES

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
first_paint = stored_first_paint(on_start_page=page is pages[0])
if first_paint is not None:
    show_first_paint(first_paint, page)
else:
    from precal.dashboard.ui.background import configure_torch, schedule_warmups
    from precal.dashboard.ui.context import problem_lines
    from precal.dashboard.ui.frame import show_notices
    from precal.dashboard.ui.model_notes import load_note_lines
    from precal.dashboard.ui.sidebar import build_context
    from precal.dashboard.ui.url_state import write as write_url

    configure_torch()
    ctx = build_context()
    show_notices(problem_lines(ctx), load_note_lines(ctx))
    try:
        page.run()
    finally:
        write_url(page.url_path or "start")  # the address bar shows this view: a link to share
        # UMAP's numba compile (a minute or more of CPU) starts some seconds after a page has been
        # served, so it never delays the first page; by the time someone opens the embeddings page it
        # is usually done (that page starts it at once otherwise).
        schedule_warmups()
