"""Streamlit's command line, plus a head start on the dashboard's heavy imports.

``precal dashboard`` runs ``python server.py run app.py ...`` (both beside this file) instead of
``python -m streamlit run ...``. Streamlit only runs the app script when the first browser session
connects, so the first page would pay for importing torch, plotly and precal (several seconds)
after the server is already up. Here a background thread imports them while Streamlit's own server
starts and the browser connects; the app's imports then find the modules loaded (Python's import
lock makes a page that arrives early wait for the import in progress, never import twice).

This file imports nothing of ``precal`` at its top on purpose: that would import torch on the main
thread, which would delay the server instead of overlapping with it.
"""

from __future__ import annotations

import gc
import sys
import threading


def _preload() -> None:
    try:
        import torch  # noqa: F401

        torch.set_num_threads(int(__import__("os").environ.get("PRECAL_DASHBOARD_THREADS", "1") or 1) or
                              torch.get_num_threads())
        from precal.dashboard.backend.preload import start_preload

        checkpoints = start_preload()  # the checkpoints the first page opens, meanwhile
        import plotly.graph_objects  # noqa: F401

        import precal.dashboard.backend.demo  # noqa: F401 (the start page's backend)
        import precal.dashboard.backend.lab  # noqa: F401 (the heaviest page's backend and what it imports)

        if checkpoints is not None:
            checkpoints.join()

        # The modules just imported live as long as the server: moving their objects out of the
        # collector's generations keeps Python's automatic full collections short (they would
        # otherwise walk some 300 000 import-time objects, over 100 ms, in the middle of a rerun;
        # benchmarks/dashboard.py --gc).
        gc.freeze()
    except Exception:  # noqa: BLE001 (a failed head start is harmless: the app imports them itself)
        pass


def main() -> None:
    threading.Thread(target=_preload, name="precal-preload", daemon=True).start()
    from streamlit.web import cli

    sys.argv = ["streamlit", *sys.argv[1:]]
    sys.exit(cli.main())


if __name__ == "__main__":
    main()
