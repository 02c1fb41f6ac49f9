"""Work the server does besides answering pages: torch's thread count, and UMAP's compile in the
projection worker, started late and paused while someone uses a page.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import streamlit as st

from precal.dashboard import worker
from precal.dashboard.settings import UMAP_WARM_UP_DELAY_S


@st.cache_resource(show_spinner=False)
def configure_torch() -> int:
    """Run the models single-threaded by default (``PRECAL_DASHBOARD_THREADS`` overrides).

    The dashboard's forward passes are small (one or two samples in the lab); with several
    intra-op threads on a busy 2-core machine each tiny op waits for its threads and a 20 ms
    update takes over a second. One thread is also fairer when several sessions run at once.
    """
    import torch

    threads = int(os.environ.get("PRECAL_DASHBOARD_THREADS", "1") or 1)
    if threads > 0:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def schedule_warmups(delay: float = UMAP_WARM_UP_DELAY_S) -> None:
    """Start the UMAP warm-up some seconds after the first page rather than at once.

    The compile runs in the projection worker process (:func:`projection`), so it holds no GIL of
    the server; it still takes a CPU core for a minute or more, which on a 2-core machine the browser
    needs while it draws the first page. Once per process (a cached resource); the embeddings page
    starts it at once if it is not running yet.
    """
    if os.environ.get("PRECAL_DASHBOARD_WARMUP", "1") == "0":
        return
    _warm_up_timer(delay)


@st.cache_resource(show_spinner=False)
def _warm_up_timer(delay: float) -> threading.Timer:
    timer = threading.Timer(delay, worker.shared_worker().warm_up)
    timer.daemon = True
    timer.start()
    return timer


def start_warmups() -> Any:
    """Compile UMAP in the projection worker process now (once per server process), so that the
    first UMAP map does not wait for it; the thread returned waits for the compile."""
    if os.environ.get("PRECAL_DASHBOARD_WARMUP", "1") == "0":
        return None
    return worker.shared_worker().warm_up()


def pause_background_work() -> None:
    """Someone is using a page: a running UMAP warm-up compile waits until two seconds after the
    last run (:meth:`precal.dashboard.worker.ProjectionWorker.pause_warm_up`), so it does not slow what
    the user is waiting for. Every page calls this through :func:`context`, the lab on every change."""
    worker.shared_worker().pause_warm_up()
