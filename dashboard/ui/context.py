"""What every page needs (the chosen pair, its views, the data and the split batches), and the
page-level helpers around it: errors as one line, the sample selector.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import numpy as np
import streamlit as st

from precal.dashboard.backend.data import SplitBatches
from precal.dashboard.backend.first_paint import SidebarShown
from precal.dashboard.backend.pairs import Comparison, LoadProblem, ModelPair, ModelView, switched_off
from precal.dashboard.settings import DashboardArgs
from precal.dashboard.ui.background import pause_background_work
from precal.dashboard.ui.loading import cached_split_batches, data_mtime, split_predictions
from precal.data.storage import MultimodalData
from precal.errors import USER_ERRORS, error_line
from precal.inference import Predictions


@contextlib.contextmanager
def guard(what: str = "") -> Iterator[None]:
    """Show a user-caused error (bad path, file, choice) as one ``st.error`` line, not a traceback."""
    try:
        yield
    except USER_ERRORS as exc:
        prefix = f"{what}: " if what else ""
        st.error(f"{prefix}{error_line(exc)}", icon=":material/error:")


@dataclass
class Context:
    """What every page needs: the chosen pair, its views, the data and the split batches."""

    args: DashboardArgs
    pairs: List[ModelPair]
    problems: List[LoadProblem]
    pair: Optional[ModelPair] = None
    views: List[ModelView] = field(default_factory=list)
    reference: Optional[str] = None
    data_path: Optional[Path] = None
    data: Optional[MultimodalData] = None
    data_error: Optional[str] = None
    split: Optional[str] = None
    splits: Optional[SplitBatches] = None
    default_pair: str = ""
    """The pair the sidebar opens on (:func:`precal.dashboard.backend.demo.demo_pair_key`; "" when
    comparing two models)."""
    shown: Optional[SidebarShown] = None
    """The sidebar as drawn, when every choice in it is at its default (what a new session sees):
    the start page stores it with its own content as the first paint."""
    _predictions: Dict[str, Predictions] = field(default_factory=dict, repr=False)
    """This run's predictions by view: ``st.cache_data`` hands out a fresh copy on every call (at
    100k samples, 0.6 s of unpickling each), and a page asks for the same view several times."""

    @property
    def schema(self):
        return self.pair.primary.schema

    def view(self, role: str) -> Optional[ModelView]:
        return next((v for v in self.views if v.role == role), None)

    def predictions(self, view: ModelView) -> Predictions:
        """Cached predictions of a view over the split (one copy per run of the page)."""
        if view.key not in self._predictions:
            self._predictions[view.key] = self.variant_predictions(view, self.splits.batch_for(view.checkpoint),
                                                                   "clean")
        return self._predictions[view.key]

    def variant_predictions(self, view: ModelView, batch, variant: str) -> Predictions:
        """A view's predictions on ``batch``, the split's samples as named by ``variant`` ("clean", or
        a corrupted copy such as the start page's swap), in memory and in the prediction disk cache."""
        fp = self.pair.fingerprint(view.checkpoint)
        return split_predictions(view.key, fp, str(self.data_path), data_mtime(self.data_path), self.split, variant,
                                 view, batch)

    def predictions_elsewhere(self, view: ModelView) -> Predictions:
        """Cached predictions over the split of a model outside the shown pair (another seed of a
        configuration), with the split preprocessed as that model was trained."""
        alone = ModelPair(f"alone:{view.checkpoint.path}", view.checkpoint if view.checkpoint.config.calibration
                          else None, None if view.checkpoint.config.calibration else view.checkpoint)
        batches = cached_split_batches(alone.cache_key, str(self.data_path), self.split, alone, self.data)
        fp = alone.fingerprint(view.checkpoint)
        return split_predictions(view.key, fp, str(self.data_path), data_mtime(self.data_path), self.split, "clean",
                                 view, batches.batch_for(view.checkpoint))

    def gated(self) -> Optional[ModelView]:
        """The first shown model whose gates act (the calibrated one of a pair, or model A or B of a
        comparison): the gate panels, explanations and the before/after projection read it."""
        return next((v for v in self.views if v.calibration), None)

    def ungated(self) -> List[ModelView]:
        """The shown models whose gates are fixed at 1."""
        return [v for v in self.views if not v.calibration]

    @property
    def comparing(self) -> bool:
        """Model A against model B (any two checkpoints) rather than a calibrated pair."""
        return isinstance(self.pair, Comparison)

    def switched_off(self) -> Optional[ModelView]:
        """The gated model's checkpoint with its calibrator switched off (the 'pre' features)."""
        gated = self.gated()
        return None if gated is None else switched_off(gated.checkpoint)

    def require_data(self) -> None:
        """Stop the page with the data error (already readable) if the data did not load."""
        if self.data is None or self.splits is None:
            st.error(self.data_error or "no data loaded for this model", icon=":material/error:")
            st.stop()

    def sample_ids(self) -> List[str]:
        return [str(s) for s in self.data.sample_ids[self.splits.indices]]

    def current_index(self) -> int:
        """Data-set position of the selected sample (the first of the split if none is selected
        or the selected one is not in this split)."""
        sid = st.session_state.get("sample_id")
        ids = self.data.sample_ids[self.splits.indices]
        if sid is not None:
            hits = np.nonzero(ids == sid)[0]
            if len(hits):
                return int(self.splits.indices[hits[0]])
        first = int(self.splits.indices[0])
        st.session_state["sample_id"] = str(self.data.sample_ids[first])
        return first


def context() -> Context:
    """The context built by app.py for this run; stops the page with a message if nothing loaded."""
    pause_background_work()
    ctx: Optional[Context] = st.session_state.get("_ctx")
    if ctx is None or ctx.pair is None:
        st.error("No checkpoint could be loaded. Start with `precal dashboard --checkpoint DIR` "
                 "(a folder with config.json + model.safetensors) or upload a zipped checkpoint in the sidebar.",
                 icon=":material/error:")
        st.stop()
    return ctx


def problem_lines(ctx: Context) -> List[str]:
    """The checkpoints that did not load, one line each (drawn above every page)."""
    return [f"checkpoint {p.path}: {p.message}" for p in ctx.problems]


def select_sample(ctx: Context, key: str) -> int:
    """A selectbox over the split's sample ids bound to the session's current sample."""
    ids = ctx.sample_ids()
    index = ctx.current_index()
    current = str(ctx.data.sample_ids[index])
    labels = {sid: f"{sid} — {ctx.data.label_name(int(i))}" for sid, i in zip(ids, ctx.splits.indices)}
    widget_key = f"{key}_sample"
    if st.session_state.get(widget_key) != current:
        st.session_state[widget_key] = current

    def changed() -> None:
        st.session_state["sample_id"] = st.session_state[widget_key]

    st.selectbox("Sample", ids, key=widget_key, format_func=lambda s: labels.get(s, s), on_change=changed)
    return ctx.current_index()
