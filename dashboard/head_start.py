"""Whether the server's head start (``server.py``: torch, precal and the checkpoints imported in the
background) is still running.

While it runs, a new session's start page is drawn from its stored first paint
(:mod:`precal.dashboard.ui.first_paint`) instead of waiting for torch: importing torch alone takes
about 1.2 s on the 2-core reference machine, longer than the browser needs to load the page.
Standard library only: the app reads this before it imports anything heavy.
"""

from __future__ import annotations

import threading
import time
from typing import List

STARTED = threading.Event()
"""Set by ``server.py`` when its head start begins (never, when the app runs without it)."""
DONE = threading.Event()
"""Set when the head start has ended (its imports and checkpoint preload done, or failed)."""


def in_progress() -> bool:
    """The heavy imports are under way in the background: a page that needs them would wait."""
    return STARTED.is_set() and not DONE.is_set()


DRAW_S = 0.4
"""How long the head start holds back after a first paint has been drawn: the server sends it and
the browser draws it meanwhile (about 0.3 s on the reference machine)."""
MAX_HOLD_S = 2.0
"""The longest the head start holds back for one first paint (a run that never ends must not keep
the models from loading)."""
MAX_TOTAL_HOLD_S = 3.0
"""The longest it holds back in all, from the first first paint on (sessions that keep arriving
must not keep the models from loading either)."""
_hold_until = [0.0]
_holds_began: List[float] = []


def first_paint_begins() -> None:
    """A session's first run is being drawn from its first paint: hold back until it is drawn."""
    now = time.monotonic()
    if not _holds_began:
        _holds_began.append(now)
    _hold_until[0] = min(now + MAX_HOLD_S, _holds_began[0] + MAX_TOTAL_HOLD_S)


def first_paint_drawn() -> None:
    """The first paint is drawn: hold back a little longer, while the browser draws it. (Another
    session's first paint still being drawn is then held for only as long: a few hundredths of a
    second of drawing either way.)"""
    _hold_until[0] = min(_hold_until[0], time.monotonic() + DRAW_S)


def hold() -> None:
    """Called by the head start between its imports. An import holds the interpreter lock for long
    stretches (the C part of a module's initialisation does not let go of it at all), and while one
    runs the server answers the browser late: a first paint drawn in 0.02 s reached the screen 0.6-0.9
    s later. Until a first paint being drawn has reached the browser, the next import waits."""
    while time.monotonic() < _hold_until[0]:
        time.sleep(0.01)
