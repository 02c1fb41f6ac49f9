"""Start the Streamlit dashboard (``precal dashboard``) on localhost.

The app is ``app.py`` beside this file: ``dashboard/`` of the checkout, installed with the package
as ``precal.dashboard``, so a plain ``pip install`` runs it too. Arguments reach the app twice, on purpose: after ``--`` on the
``streamlit run`` line (what the app reads first) and as ``PRECAL_CHECKPOINTS`` / ``PRECAL_DATA``
environment variables (what ``streamlit.testing`` and other embedders can set).

This module is deliberately light (standard library only, no torch): the server process must start
Streamlit at once, and the app imports the heavy modules itself when the first page runs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import webbrowser
from pathlib import Path
from typing import List, Optional, Sequence

import precal
from precal.dashboard.settings import ENV_CHECKPOINTS, ENV_DATA, ENV_MODEL, ENV_WEIGHTS, MAX_UPLOAD_BYTES

APP_PATH = Path(__file__).resolve().parent / "app.py"


def absolute_factory(model: str) -> str:
    """``FILE.py:NAME`` with the file's absolute path (the server may run elsewhere); a module name
    stays as it is."""
    module, sep, name = model.rpartition(":")
    if sep and module.endswith(".py"):
        return f"{Path(module).expanduser().resolve()}:{name}"
    return model


def build_command(checkpoints: Sequence[str], data: Optional[str], port: int, address: str,
                  app: Path = APP_PATH, model: Optional[str] = None, weights: Optional[str] = None) -> List[str]:
    """The ``streamlit run`` command line, through ``server.py`` beside the app (Streamlit's own CLI
    plus a background import of torch and precal while the server starts)."""
    cmd = [sys.executable, str(app.parent / "server.py"), "run", str(app),
           "--server.address", address, "--server.port", str(port),
           # Always headless: a non-headless first start asks for an e-mail on stdin and blocks.
           # The browser is opened by :func:`launch` instead when wanted.
           "--server.headless", "true",
           "--browser.gatherUsageStats", "false",
           "--server.fileWatcherType", "none",
           "--server.maxUploadSize", str(max(1, MAX_UPLOAD_BYTES // (1024 * 1024))),
           "--client.toolbarMode", "minimal",
           # Streamlit runs a full gc.collect() after every script run, by default. With the
           # dashboard's modules loaded that pass takes 126-136 ms on the 2-core reference machine
           # (benchmarks/dashboard.py --gc) and holds the GIL while the finished lab is being sent.
           # Python's own generational collector still runs; dashboard/server.py freezes the
           # import-time heap.
           "--runner.postScriptGC", "false",
           "--"]
    for c in checkpoints:
        cmd += ["--checkpoint", str(Path(c).expanduser().resolve())]
    if data:
        cmd += ["--data", str(Path(data).expanduser().resolve())]
    if model:
        cmd += ["--model", absolute_factory(model)]
    if weights:
        cmd += ["--weights", str(Path(weights).expanduser().resolve())]
    return cmd


def build_env(checkpoints: Sequence[str], data: Optional[str], base: Optional[dict] = None,
              model: Optional[str] = None, weights: Optional[str] = None) -> dict:
    """The server's environment: the arguments (see the module's docstring), and the folder holding
    this ``precal`` first on ``PYTHONPATH``, so that the server runs the same ``precal`` as its
    caller (not another one installed, nor a working directory's own)."""
    env = dict(os.environ if base is None else base)
    home = str(Path(precal.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([home, *[p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]])
    env[ENV_CHECKPOINTS] = os.pathsep.join(str(Path(c).expanduser().resolve()) for c in checkpoints)
    if data:
        env[ENV_DATA] = str(Path(data).expanduser().resolve())
    else:
        env.pop(ENV_DATA, None)
    for key, value in ((ENV_MODEL, model and absolute_factory(model)),
                       (ENV_WEIGHTS, weights and str(Path(weights).expanduser().resolve()))):
        if value:
            env[key] = value
        else:
            env.pop(key, None)
    return env


def _open_when_ready(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "_stcore/health", timeout=1.0):
                webbrowser.open(url)
                return
        except OSError:
            time.sleep(0.3)


def launch(checkpoints: Sequence[str], data: Optional[str], port: int = 8501, address: str = "127.0.0.1",
           headless: bool = False, model: Optional[str] = None, weights: Optional[str] = None) -> int:
    """Run the dashboard until interrupted; returns Streamlit's exit status.

    Raises ValueError (printed as one line by the CLI) for an invalid port or a missing app file.
    Bad checkpoint or data paths are *not* refused here: the app shows them as errors in the page
    and keeps working with whatever does load.
    """
    if not 0 < int(port) < 65536:
        raise ValueError(f"--port must be between 1 and 65535, got {port}")
    if not APP_PATH.is_file():
        raise FileNotFoundError(f"dashboard app not found at {APP_PATH} (a broken installation: reinstall precal)")
    cmd = build_command(checkpoints, data, port, address, model=model, weights=weights)
    env = build_env(checkpoints, data, model=model, weights=weights)
    host = "localhost" if address in ("127.0.0.1", "0.0.0.0", "::1", "::") else address
    url = f"http://{host}:{port}/"
    print(f"precal dashboard: serving on {url} (Ctrl+C to stop)", flush=True)
    if not headless:
        threading.Thread(target=_open_when_ready, args=(url,), daemon=True).start()
    proc = subprocess.Popen(cmd, env=env)
    previous = None
    if threading.current_thread() is threading.main_thread():
        # Terminating `precal dashboard` must stop the server too, not orphan it.
        def _stop(signum, frame):  # noqa: ARG001
            raise KeyboardInterrupt

        previous = signal.signal(signal.SIGTERM, _stop)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        try:
            return proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)

