"""Checkpoints loaded before the first page asks for them.

The first page of a fresh server used to load every checkpoint it was given (and pay torch's lazy
imports, about a second, on the first one) after the browser had connected. ``server.py`` starts
:func:`preload_checkpoints` in a background thread as the server starts, with the paths the app
will open; the app's cached loader then takes them with :func:`take_preloaded` (waiting for a
preload still in progress rather than loading the same folder a second time). A checkpoint that
fails here is simply not preloaded: the app loads it again and shows its error.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

from precal.checkpoint import CONFIG_FILE, WEIGHTS_FILE, Checkpoint, load_checkpoint
from precal.dashboard import head_start

_LOADED: Dict[Tuple[str, Tuple[int, ...]], Checkpoint] = {}
_DONE = threading.Event()
_DONE.set()  # nothing in progress until a preload starts
_GUARD = threading.Lock()
WAIT_S = 20.0
"""The longest a page waits for a preload in progress before loading by itself."""


def _stamp(path: Path) -> Tuple[int, ...]:
    """Identifies the files' versions: a checkpoint rewritten since its preload is loaded afresh."""
    out = []
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        try:
            st = (path / name).stat()
            out += [st.st_mtime_ns, st.st_size]
        except OSError:
            out += [0, 0]
    return tuple(out)


def preload_checkpoints(paths: Sequence[str]) -> None:
    """Load each checkpoint folder (a folder of checkpoints stands for its checkpoints) into the
    preload store. Meant for a background thread; never raises."""
    from precal.dashboard.backend.pairs import expand_checkpoint_paths

    _DONE.clear()
    try:
        for p in expand_checkpoint_paths(paths):
            head_start.hold()  # a first paint on its way to the browser goes first
            path = Path(p).expanduser().resolve()
            try:
                ckpt = load_checkpoint(path)
            except Exception:  # noqa: BLE001 (the app reports it when it loads the folder itself)
                continue
            with _GUARD:
                _LOADED[(str(path), _stamp(path))] = ckpt
    finally:
        _DONE.set()


def take_preloaded(path: str) -> Optional[Checkpoint]:
    """The preloaded checkpoint of this folder (removed from the store: the app's cache owns it
    from now on), or None."""
    _DONE.wait(WAIT_S)
    resolved = Path(path).expanduser().resolve()
    with _GUARD:
        return _LOADED.pop((str(resolved), _stamp(resolved)), None)


def start_preload(environ=os.environ) -> Optional[threading.Thread]:
    """Preload what the app will open (``PRECAL_CHECKPOINTS``, else ``checkpoints/``) in a thread."""
    from precal.dashboard.backend.pairs import default_checkpoint_dirs
    from precal.dashboard.settings import ENV_CHECKPOINTS

    paths = [p for p in environ.get(ENV_CHECKPOINTS, "").split(os.pathsep) if p.strip()]
    paths = paths or [str(p) for p in default_checkpoint_dirs()]
    if not paths:
        return None
    _DONE.clear()  # a page arriving before the thread starts waits too
    thread = threading.Thread(target=preload_checkpoints, args=(paths,), name="precal-checkpoints", daemon=True)
    thread.start()
    return thread
