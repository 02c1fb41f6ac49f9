"""The start page drawn from its content in words (:class:`~precal.dashboard.backend.first_paint.StartContent`).

One drawing for both ways the page is made: from the loaded models (``views/start.py``) and, while
the server still imports torch, from the stored first paint (:mod:`precal.dashboard.ui.first_paint`).
Streamlit and the standard library only.
"""

from __future__ import annotations

from typing import Sequence

import streamlit as st

from precal.dashboard.backend.first_paint import StartContent

INTRO = (
    "A multimodal model encodes each modality (here: {modalities}) and fuses the encodings to predict. The "
    "**calibrator** sits between encoders and fusion. For every sample it compares each modality with what the "
    "*other* modalities imply about it, and turns the agreement (**support**) and disagreement (**conflict**) into "
    "a gate **alpha** that scales that modality's features before fusion: below 1 damps a modality that disagrees "
    "with the rest, above 1 amplifies one that agrees, relative to a typical training sample. More support never "
    "lowers a gate and more conflict never raises it. The uncalibrated model is the same network trained the same "
    "way without the calibrator.")
NO_SWEEP = ("This pair has no stored robustness sweep with both models (write one with `precal robustness … --out`), "
            "so there are no headline figures; the pages below work all the same.")
LAB_BUTTON_KEY = "start_lab"
CLOSING_KEY = "start_closing"


def draw_intro(modalities: Sequence[str]) -> None:
    """Title and what the calibrator does."""
    st.title("Pre-fusion calibration in one minute")
    st.markdown(INTRO.format(modalities=", ".join(f"**{m}**" for m in modalities)))


def draw_head(content: StartContent) -> None:
    """Which pair is shown and its headline figures."""
    st.markdown(f"**Showing:** {content.showing}.")
    if content.tiles:
        for column, tile in zip(st.columns(len(content.tiles)), content.tiles):
            column.metric(tile.label, tile.value, tile.delta, delta_color=tile.delta_color,
                          delta_arrow=tile.delta_arrow, help=tile.help or None)
        st.caption(content.source)
    else:
        st.info(NO_SWEEP)
    st.subheader("See it on one sample")


def draw_example(content: StartContent) -> bool:
    """The prepared example in one sentence and the button into the lab; True when it was clicked."""
    if content.example:
        st.markdown(content.example)
    if content.problem:
        st.error(content.problem, icon=":material/error:")
        return False
    if content.needs_calibrated:
        st.caption("Needs a calibrated checkpoint.")
        return False
    return st.button(content.button, type="primary", key=LAB_BUTTON_KEY)


def draw_closing() -> None:
    """Where to go next. Drawn last, in a container keyed :data:`CLOSING_KEY`: once it is in the
    browser, the page is complete (what ``benchmarks/dashboard.py`` waits for)."""
    st.container(key=CLOSING_KEY).markdown("Then: **Sample explorer** says why each gate moved; **Robustness** shows accuracy against "
                "corruption severity for both models; **Embeddings** shows where calibration moves the samples.")
