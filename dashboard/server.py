"""Streamlit's command line, plus a head start on the dashboard's heavy imports.

``precal dashboard`` runs ``python server.py run app.py ...`` (both beside this file) instead of
``python -m streamlit run ...``. Streamlit only runs the app script when the first browser session
connects, so the first page would pay for importing torch, plotly and precal (several seconds)
after the server is already up. Here a background thread imports them while Streamlit's own server
starts and the browser connects; the app's imports then find the modules loaded (Python's import
lock makes a page that arrives early wait for the import in progress, never import twice).

The head start waits until the server answers its health check. Imports hold Python's global
interpreter lock most of the time, so importing torch while Streamlit starts made the server answer
0.7-0.9 s later (1.8 s instead of 0.9-1.1 s on the 2-core reference machine), and the browser could
not even begin to load the page. Started once the server answers, the imports run while the browser
loads and starts Streamlit's frontend (about a second, on the browser's own core); over seven starts
the first page was then complete after a median 3.3-4.2 s instead of 4.1-4.9 s
(``benchmarks/dashboard.py --starts 7``, results/benchmarks/dashboard.txt).

A session that arrives while the head start is still running does not wait for it on the start page:
the page is drawn from its stored first paint (:mod:`precal.dashboard.ui.first_paint`, no torch
needed), and the head start holds back between its imports until that page has reached the browser
(:func:`precal.dashboard.head_start.hold`): an import keeps the interpreter lock for long stretches,
and the server could not send the page meanwhile. Median first complete page: 2.7-2.8 s instead of
3.3-3.7 s, in runs taken in turn (same file).

This file imports nothing of ``precal`` at its top on purpose: that would import torch on the main
thread, which would delay the server instead of overlapping with it.
"""

from __future__ import annotations

import gc
import sys
import threading
import time
from typing import List, Tuple

SERVER_WAIT_S = 10.0
"""How long the head start waits for the server to listen before it imports anyway."""

UNIX_PREFIX = "unix://"


def server_address(argv: List[str]) -> Tuple[str, int]:
    """Where the server will listen, from ``--server.address`` / ``--server.port`` (either
    ``--flag value`` or ``--flag=value``; the app's own arguments after ``--`` are not Streamlit's):
    (host, port), a wildcard address reached on the loopback, or (socket path, 0) for Streamlit's
    ``unix://PATH`` address."""
    options = {"--server.address": "127.0.0.1", "--server.port": "8501"}
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        name, eq, value = arg.partition("=")
        if name in options:
            options[name] = value if eq else (argv[i + 1] if i + 1 < len(argv) else options[name])
    host = options["--server.address"].strip()
    if host.startswith(UNIX_PREFIX):
        return host, 0
    host = host.strip("[]")
    host = "127.0.0.1" if host in ("", "0.0.0.0", "::", "localhost") else host
    try:
        port = int(options["--server.port"])
    except ValueError:
        port = 8501
    return host, port


HEALTH_GRACE_S = 1.0
"""How long the head start keeps asking for the health check once the port accepts connections.
A server behind TLS or a base URL path never answers the plain check; the head start then goes
ahead this long after the server began to listen."""


def wait_for_server(host: str, port: int, timeout: float = SERVER_WAIT_S) -> bool:
    """Wait until the server is ready (True) or ``timeout`` passes (False).

    Ready is its health check answering: the port alone accepts connections a little before
    Streamlit has finished starting, and imports begun then slow that finish (measured: the server
    answered 0.1-0.2 s later). The check goes straight to the server, never through a proxy from the
    environment. A server that listens but never answers the plain check (TLS, a base URL path) is
    taken as ready ``HEALTH_GRACE_S`` after it began to listen; a unix socket, once it accepts."""
    import socket  # here, not at the top: the main thread starts the server first
    import urllib.request

    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}/_stcore/health"
    deadline = time.monotonic() + timeout
    listening_since = None
    while time.monotonic() < deadline:
        try:
            if host.startswith(UNIX_PREFIX):
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as unix:
                    unix.settimeout(0.5)
                    unix.connect(host[len(UNIX_PREFIX):])
                return True
            socket.create_connection((host, port), timeout=0.5).close()
            listening_since = listening_since or time.monotonic()
            with direct.open(url, timeout=0.5):
                return True
        except Exception:  # noqa: BLE001 (not ready, not reachable, or not plain HTTP: ask again)
            if listening_since is not None and time.monotonic() - listening_since >= HEALTH_GRACE_S:
                return True
            time.sleep(0.02)
    return False


def _preload(address: Tuple[str, int]) -> None:
    from precal.dashboard import head_start  # standard library only

    head_start.STARTED.set()
    try:
        wait_for_server(*address)
        # The imports create some 300 000 objects that live as long as the server, and the cyclic
        # collector would walk them again and again on the way: about 11% of the imports' CPU time
        # (results/benchmarks/import_gc.txt). The switch is process-wide, so a first page running
        # meanwhile runs without it too; collection resumes when the head start ends, and cycles
        # left over by then are frozen with the modules (a one-time, bounded amount).
        gc.disable()
        import torch  # noqa: F401

        torch.set_num_threads(int(__import__("os").environ.get("PRECAL_DASHBOARD_THREADS", "1") or 1) or
                              torch.get_num_threads())
        head_start.hold()
        from precal.dashboard.backend.preload import start_preload

        checkpoints = start_preload()  # the checkpoints the first page opens, meanwhile
        head_start.hold()
        import plotly.graph_objects  # noqa: F401

        head_start.hold()
        import precal.dashboard.backend.demo  # noqa: F401 (the start page's backend)
        head_start.hold()
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
    finally:
        gc.enable()
        head_start.DONE.set()


def main() -> None:
    threading.Thread(target=_preload, args=(server_address(sys.argv[1:]),), name="precal-preload",
                     daemon=True).start()
    from streamlit.web import cli

    sys.argv = ["streamlit", *sys.argv[1:]]
    sys.exit(cli.main())


if __name__ == "__main__":
    main()
