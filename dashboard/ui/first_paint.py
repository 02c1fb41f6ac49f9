"""A new session's start page while the server still imports torch: drawn from the stored first
paint (:mod:`precal.dashboard.backend.first_paint`) by the same frame and page drawing as a full run.

When: the server's head start is still running (:func:`precal.dashboard.head_start.in_progress`),
this is the session's first run, on the start page, not opened from a shared link, and a first paint
is stored for exactly these inputs. Then the page is complete without torch (importing it alone takes
about 1.2 s on the 2-core reference machine); the session's next run (any click) runs in full, by
which time the head start has usually finished. Streamlit and the standard library only.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Optional

import streamlit as st

from precal.dashboard import head_start
from precal.dashboard.backend.first_paint import FirstPaint, load, save
from precal.dashboard.settings import parse_dashboard_args
from precal.dashboard.ui.frame import (compare_mode, files_box, pair_selector, reference_selector, show_notices,
                                       split_selector, upload_box)
from precal.dashboard.ui.start_page import draw_closing, draw_example, draw_head

if TYPE_CHECKING:  # the context holds the models: importing it here would import torch
    from precal.dashboard.backend.first_paint import StartContent
    from precal.dashboard.ui.context import Context


SHOWN = "_first_paint_shown"
"""Session key: this session's first run was drawn from the first paint, so every later one runs in full."""
DRAWING = "_first_paint_drawing"
"""Session key, during that run only: the first paint the start page draws."""


def stored_first_paint(on_start_page: bool) -> Optional[FirstPaint]:
    """The first paint to draw this run, or None (the run goes the full way)."""
    if not (on_start_page and head_start.in_progress()) or st.query_params.to_dict() or any(
            k in (SHOWN, "_ctx", "_url_read") or k.startswith("chosen_") for k in st.session_state):
        return None  # not a new session at its defaults (a run before this one may have left choices)
    try:
        args = parse_dashboard_args(sys.argv[1:])
    except ValueError:
        return None  # the full run says what is wrong with the command line
    paint = load(args)
    if paint is not None:
        head_start.first_paint_begins()
    return paint


def show_first_paint(paint: FirstPaint, page) -> None:
    """The sidebar and the start page (``page``, which draws its part from :func:`drawn_first_paint`)
    as the full run draws them at their defaults."""
    st.session_state[SHOWN] = True  # whatever happens below, the session's next run is a full one
    try:
        _draw(paint, page)
    except Exception:  # noqa: BLE001 (a stored first paint that Streamlit refuses costs only speed)
        failed = True
    else:
        failed = False
    finally:
        st.session_state.pop(DRAWING, None)
        head_start.first_paint_drawn()
    if failed:
        st.rerun()  # the full run, which draws the page from the models


def _draw(paint: FirstPaint, page) -> None:
    side = paint.sidebar
    sb = st.sidebar.container()
    upload_box(None)  # a session's first run has no upload yet
    compare_mode(sb)
    pair_selector(side.pair_keys, side.pair_labels, side.pair, sb)
    reference_selector(side.references, sb)
    if side.splits:
        split_selector(side.splits, side.split_labels, side.split, side.trained, sb)
    files_box(side.files, sb)
    show_notices(side.problems, side.notes)
    st.session_state[DRAWING] = paint
    page.run()  # in the page's own context: its widgets are the ones its full run draws


def drawn_first_paint() -> Optional[FirstPaint]:
    """The first paint this run is drawn from (the start page then draws its stored content), or None."""
    return st.session_state.get(DRAWING)


def remember_first_paint(ctx: "Context", content: "StartContent") -> None:
    """Store the start page just drawn as the first paint of these inputs, when the sidebar is at
    its defaults (what a new session sees). A cache: failing to write it costs only speed."""
    if ctx.shown is None:
        return
    try:
        save(FirstPaint(ctx.shown, content, str(ctx.data_path or "")), ctx.args)
    except OSError:
        pass
