"""The landing page's demo: which pair shows the calibrator's effect most clearly, its headline
figures from stored results, and a prepared example for the lab (a test sample with one modality
swapped in from another sample, where the gate drops).

Everything here reads files written by training and ``precal robustness`` (``metrics.json``,
``robustness.csv``) or runs one batched pass: the landing page must be complete in a few seconds.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd
import torch

from precal.dashboard.backend.data import SplitBatches
from precal.dashboard.backend.first_paint import MetricTile
from precal.dashboard.backend.formatting import delta_style, fmt_pct, points_text
from precal.dashboard.backend.pairs import ModelPair, ModelView
from precal.dashboard.backend.robustness import find_robustness_table
from precal.dashboard.backend.running import predict_view
from precal.data.batch import Batch
from precal.inference import Predictions
from precal.metrics import softmax
from precal.errors import USER_ERRORS
from precal.models.model import CALIBRATED
from precal.robustness.corruptions import apply_corruption
from precal.robustness.table import gated_modalities, read_table

SWAP = "swap"
SWAP_SEVERITY = 5
"""Every sample of the split swapped (severity 5: 100% of samples), as the lab's swap of one sample."""


@dataclass(frozen=True)
class StoredEffect:
    """Headline figures of a pair from its stored sweep (test split unless the sweep says otherwise).

    ``kept_*``: accuracy under corruption as a share of clean accuracy, averaged over every
    corruption but the swap, every corrupted modality and severities 1-5. ``swap_auroc``: how well
    1 − alpha of a modality flags that it was swapped in from another sample (0.5 = chance), mean
    over severities, for the modality where it is highest (``swap_modality``), and the mean over
    modalities (``swap_auroc_mean``). ``singled_out``: how much more the swapped modality's mean
    alpha falls than its peers' (each as a share of its clean value), mean over swapped modalities
    and severities: about 0 with two modalities, where a disagreement has no culprit and both gates
    fall alike; positive where the gates damp the one that was swapped and leave its peers."""

    table: str
    clean_calibrated: float
    clean_uncalibrated: float
    kept_calibrated: float
    kept_uncalibrated: float
    swap_auroc: float
    swap_auroc_mean: float
    swap_modality: str
    n: int
    singled_out: float = 0.0

    @property
    def score(self) -> float:
        """How clearly the calibrator shows its effect: swap detection by the gates, plus how much
        more they damp the swapped modality than its peers (what "why was this modality
        suppressed" shows), plus the extra accuracy it keeps under corruption, minus any clean
        accuracy it loses. A pair where calibration is worse than its baseline is never the demo's
        first choice."""
        return (self.swap_auroc_mean + self.singled_out + (self.kept_calibrated - self.kept_uncalibrated)
                + min(0.0, self.clean_calibrated - self.clean_uncalibrated))


@functools.lru_cache(maxsize=64)
def _effect_from(path: str, mtime_ns: int, calibrated: str, uncalibrated: str) -> Optional[StoredEffect]:  # noqa: ARG001
    frame = read_table(Path(path))
    cal = frame[frame["checkpoint"].astype(str) == calibrated]
    unc = frame[frame["checkpoint"].astype(str) == uncalibrated]
    if cal.empty or unc.empty:
        return None

    def clean(g: pd.DataFrame) -> float:
        return float(g.loc[g["severity"] == 0, "value"].mean())

    def kept(g: pd.DataFrame) -> float:
        c = clean(g)
        rows = g[(g["severity"] > 0) & (g["corruption"] != SWAP)]
        return float(rows["value"].mean() / c) if c > 0 and len(rows) else math.nan

    swaps = cal[(cal["corruption"] == SWAP) & (cal["severity"] > 0)]
    if swaps.empty or "auroc_alpha" not in swaps:
        return None
    per_mod = swaps.groupby("modality", sort=False)["auroc_alpha"].mean()
    best = str(per_mod.idxmax())
    return StoredEffect(path, clean(cal), clean(unc), kept(cal), kept(unc), float(per_mod.max()),
                        float(per_mod.mean()), best, int(cal["n"].max()), singled_out(cal))


def singled_out(calibrated: pd.DataFrame) -> float:
    """Mean over swapped modalities and severities of (peers' alpha share - swapped modality's alpha
    share), each share its mean alpha under the swap over its clean mean alpha (see
    :class:`StoredEffect`); 0 when the sweep has no peers to compare with."""
    rows = calibrated[calibrated["corruption"] == SWAP]
    names = gated_modalities(rows)
    if len(names) < 2:
        return 0.0
    gaps = []
    for swapped, g in rows.groupby("modality", sort=False):
        clean = g[g["severity"] == 0]
        if clean.empty or str(swapped) not in names:
            continue
        share = {m: g.loc[g["severity"] > 0, f"alpha_{m}"] / float(clean[f"alpha_{m}"].iloc[0]) for m in names}
        peers = sum(share[m] for m in names if m != swapped) / (len(names) - 1)
        gaps.extend((peers - share[str(swapped)]).tolist())
    finite = [x for x in gaps if math.isfinite(x)]
    return float(np.mean(finite)) if finite else 0.0


def stored_effect(pair: ModelPair) -> Optional[StoredEffect]:
    """The pair's headline figures from its stored sweep, or None (no sweep, no baseline rows, or
    an unreadable table)."""
    if pair.calibrated is None or pair.uncalibrated is None:
        return None
    path = find_robustness_table(pair)
    if path is None:
        return None
    try:
        return _effect_from(str(path), path.stat().st_mtime_ns, pair.calibrated.name, pair.uncalibrated.name)
    except USER_ERRORS:
        return None


def why_shown(is_default: bool, has_effect: bool) -> str:
    """Why the start page shows this pair. The default pair was chosen by its stored results only
    when it has some (:func:`demo_pair_key`; then so do all pairs it was compared with); without
    any, it is simply the first pair, which the user did not choose either."""
    if is_default and has_effect:
        return ("chosen because its stored results show the calibrator's effect most clearly (swap detection by "
                "the gates, how much more they damp the swapped modality than the others, accuracy kept under "
                "corruption)")
    if is_default:
        return "opened first: no pair has a stored robustness sweep with both of its models to choose the demo by"
    return "chosen in the sidebar"


def demo_pair_key(pairs: Sequence[ModelPair]) -> Optional[str]:
    """The pair the app opens on: the highest :attr:`StoredEffect.score`; without stored results,
    the first pair with both a calibrated and an uncalibrated model; else the first pair."""
    scored = [(e.score, p.key) for p in pairs if (e := stored_effect(p)) is not None]
    if scored:
        return max(scored)[1]
    full = [p.key for p in pairs if p.calibrated is not None and p.uncalibrated is not None]
    return full[0] if full else (pairs[0].key if pairs else None)


CLEAR_MARGIN = 0.1
"""A prediction "holds" only when it is right with its probability at least this far above the
runner-up's: a right class at 0.054 over 26 near-uniform ones is a guess, not a held prediction."""
GATE_DROP = 0.05
"""A gate that falls by less than this under the swap is not said to drop (all gates of an
untrained calibrator stay at 1)."""
EXAMPLE_CANDIDATES = 32
"""The prepared example is looked for in chunks of about this many samples, each spread evenly over
the split (:func:`candidate_chunks`), up to the first chunk that holds a sample showing everything.
Why: the start page pays three model passes for it, and over every sample of a split that cost
grows with the data set (430 test samples of UTD-MHAD: 1.2 s of a 4 s first start on the 2-core
reference machine). Each sample's swap is keyed by its own id and draws its donor from the whole
split, so a candidate is swapped exactly as in the sweep and in the lab."""
MAX_EXAMPLE_CHUNKS = 8
"""The most chunks looked at (256 samples): without a sample that shows everything, the best of
those. Why: a model whose baseline stays right under the swap, or whose gates do not react, has no
such sample at all, and a search of the whole split would cost three model passes over it (and fill
the prediction cache with one entry per chunk) for a start page on a large data set."""


@dataclass(frozen=True)
class PreparedExample:
    """A sample to open the lab on: swapping ``modality`` in from another sample drops its gate.

    ``probability`` and ``margin``: the calibrated model's top class probability after the swap
    and how far it lies above the runner-up; ``held``: that top class is right by a clear margin."""

    index: int  # data-set position
    modality: str
    alpha_clean: float
    alpha_swapped: float
    calibrated_correct: bool
    uncalibrated_correct: Optional[bool]
    probability: float = math.nan
    margin: float = math.nan

    @property
    def gate_dropped(self) -> bool:
        return self.alpha_clean - self.alpha_swapped >= GATE_DROP

    @property
    def held(self) -> bool:
        return self.calibrated_correct and self.margin >= CLEAR_MARGIN

    @property
    def shows_everything(self) -> bool:
        """The whole story: the gate drops, the calibrated prediction holds, and the uncalibrated
        one (where there is one) goes wrong."""
        return self.gate_dropped and self.held and self.uncalibrated_correct is not True


def top_margin(logits: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(top class probability, its lead over the runner-up) per row of class logits; a single
    output (regression) has no classes to lead: probability 1, margin 1."""
    if logits.shape[1] < 2:
        ones = np.ones(len(logits))
        return ones, ones
    two = np.sort(softmax(logits), axis=1)[:, -2:]
    return two[:, 1], two[:, 1] - two[:, 0]


def example_scores(affected: np.ndarray, drop: np.ndarray, ok: np.ndarray, margin: np.ndarray,
                   baseline_ok: Optional[np.ndarray]) -> np.ndarray:
    """How well each row shows the calibrator's effect (-inf where it is not ``affected``), by
    preferences in order: its gate drops by at least :data:`GATE_DROP` (what the demo is about), the
    calibrated model is right before and after the swap by a clear margin (``margin``: its lead over
    the runner-up after the swap), right at all, a baseline the swap makes wrong; then the gate's
    ``drop`` plus the lead (together at most 3, below every preference before)."""
    held = ok & (margin >= CLEAR_MARGIN)
    score = np.where(affected, drop + margin + 40.0 * (drop >= GATE_DROP) + 20.0 * held + 10.0 * ok, -np.inf)
    if baseline_ok is not None:
        score = score + 5.0 * (held & ~baseline_ok)
    return score


def choose_example(affected: np.ndarray, drop: np.ndarray, ok: np.ndarray, margin: np.ndarray,
                   baseline_ok: Optional[np.ndarray]) -> Optional[int]:
    """The row with the best :func:`example_scores`: a weak model still gets the sample where its
    gate drops most. None when no row is affected."""
    return best_row(example_scores(affected, drop, ok, margin, baseline_ok))


def best_row(score: np.ndarray) -> Optional[int]:
    """The row of the highest finite score, None when there is none (no row affected)."""
    return int(np.argmax(score)) if np.isfinite(score).any() else None


Predict = Callable[[ModelView, Batch, str], Predictions]
"""(view, batch, variant) -> the view's predictions on the batch; ``variant`` names the input ("clean",
or :func:`swap_variant`) so that a caller can keep them in the prediction cache."""


def _predict_now(view: ModelView, batch: Batch, variant: str) -> Predictions:  # noqa: ARG001
    return predict_view(view, batch)


def swap_variant(modality: str, seed: int = 0) -> str:
    """The prediction cache's name for the split with ``modality`` swapped in every sample (the
    prepared example's input)."""
    return f"swap:{modality}:s{SWAP_SEVERITY}:seed{seed}"


def candidate_chunks(n: int, size: int = EXAMPLE_CANDIDATES) -> List[np.ndarray]:
    """The rows of a split of ``n`` samples in the order the example is looked for: chunks of about
    ``size`` rows, each spread evenly over the whole split (chunk c: rows c, c + k, c + 2k, ...)."""
    k = max(1, -(-n // size))
    return [np.arange(c, n, k) for c in range(k)]


def chunk_variant(variant: str, chunk: int, chunks: int) -> str:
    """The prediction cache's name for ``variant`` restricted to one chunk of
    :func:`candidate_chunks` (unchanged for a single chunk, the whole split: other pages share it)."""
    return variant if chunks == 1 else f"rows{chunk}mod{chunks}:{variant}"


def example_modality(pair: ModelPair, effect: Optional[StoredEffect]) -> str:
    """The modality the start page swaps: the one its headline figure is about (``effect``, the
    pair's :func:`stored_effect`: the stored sweep's best-detected swap), else the first."""
    return effect.swap_modality if effect is not None else pair.primary.schema.modality_names[0]


def prepared_example(views: Sequence[ModelView], splits: SplitBatches, modality: str, seed: int = 0,
                     predict: Predict = _predict_now, chunk_size: int = EXAMPLE_CANDIDATES,
                     max_chunks: int = MAX_EXAMPLE_CHUNKS) -> Optional[PreparedExample]:
    """The sample whose ``modality``, swapped in from a sample of another class of the split (the
    lab's swap, same seed, so the lab shows exactly this), shows the calibrator's effect best
    (:func:`example_scores`): its gate drops, the calibrated model stays right by a clear margin
    (:data:`CLEAR_MARGIN`) and the uncalibrated one goes wrong.

    Looked for chunk by chunk (:func:`candidate_chunks` of ``chunk_size`` rows), stopping at the
    first chunk that holds such a sample; else the best of the first ``max_chunks``
    (:data:`MAX_EXAMPLE_CHUNKS`). One batched pass per
    model and input over each chunk, through ``predict`` (the dashboard and ``precal precompute``
    pass the prediction disk cache, so a restarted server reads them); None only if no sample can
    be swapped."""
    cal = next((v for v in views if v.role == CALIBRATED), None) or next((v for v in views if v.calibration), None)
    if cal is None:
        return None
    unc = next((v for v in views if v is not cal), None)
    chunks = candidate_chunks(splits.size, chunk_size)
    best: Optional[Tuple[float, PreparedExample]] = None
    for c, rows in enumerate(chunks[:max_chunks]):
        found = _best_in(cal, unc, splits, rows, modality, seed,
                         lambda view, batch, variant: predict(view, batch, chunk_variant(variant, c, len(chunks))))
        if found is not None and (best is None or found[0] > best[0]):
            best = found
        if best is not None and best[1].shows_everything:
            break
    return None if best is None else best[1]


def _best_in(cal: ModelView, unc: Optional[ModelView], splits: SplitBatches, rows: np.ndarray, modality: str,
             seed: int, predict: Predict) -> Optional[Tuple[float, PreparedExample]]:
    """The best example among the split's ``rows`` and its score, or None when none can be swapped.
    Each row is swapped against the whole split (its donor depends on its own id and the split, not
    on which rows are looked at)."""
    picked = torch.as_tensor(rows)
    full = splits.batch_for(cal.checkpoint)
    batch = full.select(picked)
    spec = cal.checkpoint.schema.modality(modality)
    swapped = apply_corruption(batch, modality, spec.kind, SWAP, SWAP_SEVERITY, seed, pool=full)
    clean_p = predict(cal, batch, "clean")
    swap_p = predict(cal, swapped.batch, swap_variant(modality, seed))
    m = list(clean_p.modalities).index(modality)
    drop = clean_p.alpha[:, m] - swap_p.alpha[:, m]
    labels = clean_p.labels
    affected = swapped.affected.numpy() & clean_p.present[:, m]
    ok = (swap_p.predicted == labels) & (clean_p.predicted == labels)
    probability, margin = top_margin(swap_p.logits)
    unc_ok: Optional[np.ndarray] = None
    if unc is not None:
        ub = splits.batch_for(unc.checkpoint)
        uswapped = apply_corruption(ub.select(picked), modality, spec.kind, SWAP, SWAP_SEVERITY, seed, pool=ub)
        unc_ok = predict(unc, uswapped.batch, swap_variant(modality, seed)).predicted == labels
    score = example_scores(affected, drop, ok, margin, unc_ok)
    row = best_row(score)
    if row is None:
        return None
    return float(score[row]), PreparedExample(
        int(splits.indices[rows[row]]), modality, float(clean_p.alpha[row, m]), float(swap_p.alpha[row, m]),
        bool(ok[row]), None if unc_ok is None else bool(unc_ok[row]), float(probability[row]), float(margin[row]))


def example_sentence(ex: Optional[PreparedExample], modality: str, split: str) -> str:
    """What the start page promises about the prepared example: only what it shows. A gate that
    does not move is not said to drop, and a right guess near chance is not a held prediction."""
    lead = f"The lab opens on a {split} sample whose **{modality}** is swapped in from a sample of another class"
    if ex is None:
        return lead + "."
    gate = f"alpha {ex.alpha_clean:.2f} → {ex.alpha_swapped:.2f}"
    if not ex.gate_dropped:
        return (f"{lead}. This model's {modality} gate does not react to the swap ({gate}): no calibrator "
                "effect to watch on this model.")
    if ex.held:
        return (f"{lead}: watch its gate drop ({gate}) and the calibrated prediction hold "
                f"(right, probability {ex.probability:.2f}).")
    outcome = ("still right, but only just (probability {:.2f}, {:.2f} above the runner-up)".format(ex.probability, ex.margin)
               if ex.calibrated_correct else "wrong all the same")
    return f"{lead}: watch its gate drop ({gate}); the calibrated prediction is {outcome}."


def headline_tiles(effect: StoredEffect) -> Tuple[MetricTile, ...]:
    """The start page's three headline figures: clean accuracy and accuracy kept under corruption of
    the calibrated model against the uncalibrated one, and how well its gates detect a swap."""
    clean_delta = effect.clean_calibrated - effect.clean_uncalibrated
    kept_delta = effect.kept_calibrated - effect.kept_uncalibrated
    return (
        MetricTile("clean test accuracy · calibrated", fmt_pct(effect.clean_calibrated),
                   f"{points_text(clean_delta)} vs uncalibrated ({fmt_pct(effect.clean_uncalibrated)})",
                   *delta_style(clean_delta), ""),
        MetricTile("accuracy kept under corruption · calibrated", fmt_pct(effect.kept_calibrated),
                   f"{points_text(kept_delta)} vs uncalibrated ({fmt_pct(effect.kept_uncalibrated)})",
                   *delta_style(kept_delta),
                   "Accuracy on corrupted inputs as a share of clean accuracy, averaged over every stored corruption "
                   "(noise, masking, dropped frames, removal, …), every modality and severities 1–5."),
        MetricTile(f"swap of {effect.swap_modality} detected by its gate", f"AUROC {effect.swap_auroc:.2f}",
                   f"mean over modalities {effect.swap_auroc_mean:.2f}; 0.50 = chance", "off", "off",
                   "When a modality is replaced by the same modality of a sample of another class, how well its "
                   "gate (1 − alpha) tells swapped from clean samples. The uncalibrated model has no gates: "
                   "chance."),
    )


def headline_source(effect: StoredEffect) -> str:
    """Where the headline figures come from, for the caption under them."""
    return f"From the stored sweep `{effect.table.rsplit('/', 2)[-2]}/robustness.csv` ({effect.n} test samples)."
