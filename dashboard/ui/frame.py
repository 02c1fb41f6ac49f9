"""The frame around every page, drawn from plain values: the sidebar's widgets and the notices above
the page.

Why a module of its own: a session's first run may draw the frame from its stored first paint
(:mod:`precal.dashboard.ui.first_paint`) before torch is imported, and its next run draws it from
the loaded models (:mod:`precal.dashboard.ui.sidebar`). Both go through these functions, so the
widgets are the same (same keys, labels and options: Streamlit keeps their state from one run to
the next). Streamlit and the standard library only.

The choices are kept in plain session keys (``chosen_*``) besides their widgets' keys: Streamlit
drops a widget's state when a run ends without drawing it (a page switched mid-run, e.g. by a click
on the embeddings map), and the pair must survive that, or a sample id would be looked up in
another data set.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import streamlit as st

from precal.dashboard.backend.references import REFERENCE_SWITCHED_OFF, REFERENCE_TRAINED
from precal.dashboard.settings import MAX_UPLOAD_BYTES

COMPARE_MODES = {"pair": "a calibrated model and its baseline", "compare": "any two checkpoints (A vs B)"}


def persistent_choice(widget_key: str, options: Sequence[str], default: str) -> None:
    """Put the remembered choice (``chosen_<key>``) into the widget's state before it is drawn."""
    chosen = st.session_state.get(f"chosen_{widget_key}")
    value = chosen if chosen in options else default
    if st.session_state.get(widget_key) != value:
        st.session_state[widget_key] = value
    st.session_state[f"chosen_{widget_key}"] = value


def remember(widget_key: str) -> None:
    st.session_state[f"chosen_{widget_key}"] = st.session_state.get(widget_key)


def upload_box(receive: Optional[Callable[[Any], Optional[str]]]) -> Optional[str]:
    """The upload box. ``receive`` takes an uploaded file (and says in the box what became of it);
    returns what it returns (the folder of a checkpoint uploaded in this run), else None."""
    with st.sidebar.expander("Upload a checkpoint (.zip)"):
        st.caption(f"A zipped checkpoint folder (config.json + model.safetensors), up to "
                   f"{MAX_UPLOAD_BYTES // (1024 * 1024)} MB. Nothing in it is executed.")
        upload = st.file_uploader("checkpoint zip", type=["zip"], key="upload", label_visibility="collapsed")
        return receive(upload) if upload is not None and receive is not None else None


def compare_mode(sb) -> str:
    persistent_choice("compare_mode", list(COMPARE_MODES), "pair")
    return sb.radio("Compare", list(COMPARE_MODES), key="compare_mode", format_func=COMPARE_MODES.get,
                    on_change=remember, args=("compare_mode",), horizontal=False,
                    help="A pair: a calibrated checkpoint beside its uncalibrated twin. Any two: model A and "
                         "model B chosen freely (another seed, another recipe, your own model).")


def pair_selector(keys: Sequence[str], labels: Sequence[str], default: str, sb) -> str:
    """The pair selector, and the chosen pair's label in full below it (the selector cuts long labels)."""
    by_key = dict(zip(keys, labels))
    persistent_choice("pair_key", list(keys), default)
    key = sb.selectbox("Model pair", list(keys), format_func=lambda k: by_key[k], key="pair_key",
                       on_change=remember, args=("pair_key",),
                       help="A calibrated checkpoint and the uncalibrated one trained on the same data set with "
                            "the same recipe and seed (read from their configs). Checkpoints without such a "
                            "partner stand alone.")
    sb.caption(by_key[key])
    return key


def reference_selector(options: Sequence[str], sb) -> Optional[str]:
    """What the uncalibrated column shows; a choice only when there is more than one option."""
    if len(options) <= 1:
        return options[0] if options else None
    persistent_choice("reference", list(options), options[0])
    return sb.radio("Uncalibrated column shows", list(options), key="reference", on_change=remember,
                    args=("reference",),
                    help=f"{REFERENCE_TRAINED}: the separately trained uncalibrated model of this pair. "
                         f"{REFERENCE_SWITCHED_OFF}: the calibrated model with its gates fixed at 1 (same "
                         "weights). Another uncalibrated checkpoint: pair them by choice.")


def split_selector(splits: Sequence[str], labels: Sequence[str], default: str, trained: Sequence[str], sb) -> str:
    by_split = dict(zip(splits, labels))
    persistent_choice("split", list(splits), default)
    split = sb.selectbox("Split", list(splits), key="split", on_change=remember, args=("split",),
                         format_func=lambda s: by_split[s])
    if split in trained:
        sb.caption("The loaded models trained on this split: its accuracy measures fit, not generalisation.")
    return split


def files_box(lines: Sequence[str], sb) -> None:
    """Paths and weight hashes, out of the way (they matter when two runs look alike)."""
    with sb.expander("Files"):
        for line in lines:
            st.caption(line)


def show_notices(problems: Sequence[str], notes: Sequence[str]) -> None:
    """Above the page: checkpoints that did not load (errors), remarks about an own model (warnings)."""
    for line in problems:
        st.error(line, icon=":material/error:")
    for line in notes:
        st.warning(line, icon=":material/warning:")
