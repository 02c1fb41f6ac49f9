"""The one-line notes about your own model (``precal dashboard --model``): what a page shows in place
of something the model does not give, and remarks made while loading it. Computed in
:mod:`precal.dashboard.backend.own_models`; nothing is shown for precal's own models."""

from __future__ import annotations

from typing import List

import streamlit as st

from precal.dashboard.backend.own_models import checkpoint_notes, page_notes
from precal.dashboard.ui.context import Context


def load_note_lines(ctx: Context) -> List[str]:
    """Remarks made while loading the pair's checkpoints (a factory file changed since training),
    drawn above every page."""
    return list(checkpoint_notes(ctx.pair.checkpoints)) if ctx.pair is not None else []


def show_page_notes(ctx: Context, page: str) -> None:
    """What ``page`` does differently for the pair's own model, one line each."""
    if ctx.pair is None:
        return
    batch = ctx.splits.batch_for(ctx.pair.primary) if ctx.splits is not None else None
    for note in page_notes(page, ctx.pair.primary, batch):
        st.info(note, icon=":material/info:")
