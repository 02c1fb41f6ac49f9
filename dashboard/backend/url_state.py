"""A view's state as URL query parameters, and back: what makes a view shareable by its address.

The page itself is the URL's path (``/lab``); everything else that decides what a page shows is a
query parameter: the models (``pair`` and ``ref``, or ``a`` and ``b`` for any two checkpoints), the
split, the sample, every lab control, the projection's method and colouring, the slice. Values are
plain strings (names, ids, numbers), so a link survives a restart and another browser as long as
the same checkpoints and data are loaded. Nothing here touches Streamlit: the app reads and writes
``st.query_params`` through :mod:`precal.dashboard.ui.url_state`, which maps these parameters to its
widgets' keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from precal.robustness.corruptions import CORRUPTIONS

SIDEBAR_PARAMS = ("cmp", "pair", "ref", "a", "b", "split", "sample")
"""Parameters every page carries: which models, which split, which sample."""

INPUT_MODES = ("keep", "remove", "swap")
DONOR_RANDOM = "random"
DONOR_CONFLICT = "conflict"


def corruption_words(name: str, severity: int) -> str:
    """A corruption at a severity as the reader knows it: the catalogue's title and the level in its
    unit ("Gaussian noise, −5 dB SNR"), not the internal id ("gaussian_noise s5"). A name outside the
    catalogue (a link from another version) keeps its id."""
    c = CORRUPTIONS.get(name)
    if c is None:
        return f"{name} s{severity}"
    if c.unit == "on/off":
        return c.title
    level = c.level_label(int(severity)).split(": ", 1)[-1]
    return f"{c.title}, {level.replace('-', '−')}"


@dataclass(frozen=True)
class ModalityControls:
    """The lab's controls of one modality: corruption and severity, the input's fate (kept,
    removed or swapped) and, for a swap, the donor (``random``: drawn with the seed; ``conflict``:
    the most conflicting donor; else a sample id)."""

    corruption: Optional[str] = None
    severity: int = 3
    mode: str = "keep"
    donor: str = DONOR_RANDOM

    @property
    def active(self) -> bool:
        return self.mode != "keep" or (self.corruption is not None and self.severity > 0)

    def words(self) -> str:
        parts = []
        if self.mode == "swap":
            parts.append("swapped" + ("" if self.donor == DONOR_RANDOM else
                                      " (most conflicting donor)" if self.donor == DONOR_CONFLICT
                                      else f" with {self.donor}"))
        if self.corruption and self.severity > 0:
            parts.append(corruption_words(self.corruption, self.severity))
        if self.mode == "remove":
            parts.append("removed")
        return ", ".join(parts) or "as is"


@dataclass(frozen=True)
class LabState:
    """Everything the lab's controls say: the sample, the seed, each modality's controls and the
    modality whose input is drawn. One value: the URL, the history and the report all hold it."""

    sample: Optional[str] = None
    seed: int = 0
    controls: Tuple[Tuple[str, ModalityControls], ...] = ()
    draw: Optional[str] = None

    def control(self, modality: str) -> ModalityControls:
        return dict(self.controls).get(modality, ModalityControls())

    def with_control(self, modality: str, controls: ModalityControls) -> "LabState":
        d = dict(self.controls)
        d[modality] = controls
        return replace(self, controls=tuple(d.items()))

    def words(self) -> str:
        """The state in one line, for the history list: sample and every active control."""
        active = [f"{m}: {c.words()}" for m, c in self.controls if c.active]
        return f"{self.sample} · " + ("; ".join(active) if active else "clean") + (f" · seed {self.seed}" if self.seed else "")


def lab_params(state: LabState) -> Dict[str, str]:
    """The lab's query parameters (the sample travels with the sidebar's). Only what differs from
    the defaults is written, so a link stays short: ``c.<m>=gaussian_noise:3``, ``in.<m>=swap``,
    ``d.<m>=<donor>``, ``seed``, ``draw``."""
    out: Dict[str, str] = {}
    if state.seed:
        out["seed"] = str(int(state.seed))
    if state.draw:
        out["draw"] = state.draw
    for m, c in state.controls:
        if c.corruption:
            out[f"c.{m}"] = f"{c.corruption}:{int(c.severity)}"
        if c.mode != "keep":
            out[f"in.{m}"] = c.mode
        if c.mode == "swap" and c.donor != DONOR_RANDOM:
            out[f"d.{m}"] = c.donor
    return out


def parse_lab_params(params: Mapping[str, str], modalities: Sequence[str],
                     corruptions: Callable[[str], Sequence[str]], sample: Optional[str] = None) -> LabState:
    """The lab state a link describes, checked against what this data set offers: an unknown
    modality, corruption, input mode or a severity outside 0-5 is left at its default (a link from
    another data set or an older version opens the lab, not an error). ``corruptions(m)`` lists the
    corruptions the lab offers for modality ``m``."""
    controls: List[Tuple[str, ModalityControls]] = []
    for m in modalities:
        corr, sev = None, 3
        raw = params.get(f"c.{m}")
        if raw:
            name, _, level = str(raw).partition(":")
            if name in corruptions(m):
                corr = name
                sev = _int(level, 3, 0, 5)
        mode = str(params.get(f"in.{m}", "keep"))
        mode = mode if mode in INPUT_MODES else "keep"
        donor = str(params.get(f"d.{m}", DONOR_RANDOM)) or DONOR_RANDOM
        controls.append((m, ModalityControls(corr, sev, mode, donor)))
    draw = params.get("draw")
    return LabState(sample=sample, seed=_int(params.get("seed"), 0, 0, 10_000), controls=tuple(controls),
                    draw=draw if draw in modalities else None)


def _int(value, default: int, low: int, high: int) -> int:
    try:
        v = int(str(value))
    except (TypeError, ValueError):
        return default
    return v if low <= v <= high else default


@dataclass(frozen=True)
class PageParams:
    """A page's own parameters: URL name -> session key, and the values each may take (None: any
    string). Pages register theirs in :data:`PAGE_PARAMS`."""

    keys: Dict[str, str] = field(default_factory=dict)


PAGE_PARAMS: Dict[str, PageParams] = {
    "embeddings": PageParams({"space": "emb_space", "method": "emb_method", "colour": "emb_colour",
                              "lines": "emb_arrows", "cmod": "emb_cmod", "amod": "emb_alpha_mod",
                              "group": "emb_group", "find": "emb_find"}),
    "explorer": PageParams({"why": "ex_why"}),
    "slices": PageParams({"by": "sl_group", "slice": "sl_value"}),
    "calibration": PageParams({"cm": "pc_mod", "cc": "pc_corr", "cs": "pc_sev"}),
}
"""The widgets whose values a page puts in its URL, besides the sidebar's and the lab's."""


def encode_value(value) -> Optional[str]:
    """A widget value as a URL string (booleans as 1/0); None for values a URL cannot hold."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (int, float, str)):
        return str(value)
    return None


def decode_value(raw: str, like):
    """A URL string back to the type of ``like`` (the widget's current or default value)."""
    if isinstance(like, bool):
        return raw in ("1", "true", "True")
    if isinstance(like, int):
        return _int(raw, like, -10**9, 10**9)
    return raw
