"""precal dashboard: entry point (``streamlit run dashboard/app.py -- --checkpoint DIR --data DIR``).

Started by ``precal dashboard``. Reads its arguments after ``--`` (or ``PRECAL_CHECKPOINTS`` /
``PRECAL_DATA``); with none it opens every checkpoint folder in ``checkpoints/`` that loads, with
data from the folder each checkpoint records (else ``sample_data/``). This file is the frame around
every page: sidebar (model pair, split, upload) and navigation; each page is a thin file in
``views/`` and all model math lives in :mod:`precal.dashboard_backend`.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import streamlit as st  # noqa: E402

st.set_page_config(page_title="precal dashboard", page_icon=":material/tune:", layout="wide")

import dash_state as ds  # noqa: E402

ds.configure_torch()

pages = [
    st.Page(ds.PAGES["overview"], title="Overview", icon=":material/dashboard:", default=True),
    st.Page(ds.PAGES["explorer"], title="Sample explorer", icon=":material/search:"),
    st.Page(ds.PAGES["lab"], title="Corruption lab", icon=":material/science:"),
    st.Page(ds.PAGES["embeddings"], title="Embeddings", icon=":material/scatter_plot:"),
    st.Page(ds.PAGES["robustness"], title="Robustness", icon=":material/trending_down:"),
    st.Page(ds.PAGES["training"], title="Training dynamics", icon=":material/show_chart:"),
]
page = st.navigation(pages)
st.sidebar.title("precal")
ctx = ds.build_context()
ds.show_problems(ctx)
try:
    page.run()
finally:
    # UMAP's numba compile (a minute or more of CPU) starts some seconds after a page has been served,
    # so it never delays the first page; by the time someone opens the embeddings page it is usually
    # done (that page starts it at once otherwise).
    ds.schedule_warmups()
