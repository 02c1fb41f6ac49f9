"""Self-contained HTML reports of what a page shows (the lab's corrupted sample, the explorer's
sample): inputs, both models' predictions, gates, cues and the explanation, in one file that opens
offline. Images are inline SVG (:mod:`svg`) and PNG data URLs; there is no script and no link to
fetch. The pages give the report what they computed; nothing here runs a model.
"""

from __future__ import annotations

import datetime as _dt
import html
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from precal.dashboard.backend import svg
from precal.dashboard.backend.images import frame_png
from precal.dashboard.backend.inputs import frame_range, frame_strip, input_view_kind, time_axis
from precal.dashboard.backend.samples import ABSENT, SampleOutputs
from precal.data.schema import DatasetSchema

STYLE = """
body { font-family: Helvetica, Arial, sans-serif; margin: 24px auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.2rem; margin-top: 1.6rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.5rem 0; font-size: 0.85rem; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
.facts td { text-align: left; } .card { display: inline-block; vertical-align: top; margin: 0 24px 12px 0; }
.big { font-size: 1.4rem; font-weight: 600; } .ok { color: #1a7f37; } .bad { color: #c62828; }
.muted { color: #666; font-size: 0.85rem; } svg { max-width: 100%; height: auto; }
"""


@dataclass
class Report:
    """An HTML document built section by section: headings, facts, tables, figures and text."""

    title: str
    parts: List[str] = field(default_factory=list)

    def heading(self, text: str) -> None:
        self.parts.append(f"<h2>{html.escape(text)}</h2>")

    def text(self, text: str, muted: bool = False) -> None:
        self.parts.append(f"<p{' class=muted' if muted else ''}>{html.escape(text)}</p>")

    def facts(self, rows: Sequence[Tuple[str, str]]) -> None:
        body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
        self.parts.append(f"<table class=facts>{body}</table>")

    def table(self, frame: pd.DataFrame, digits: int = 3) -> None:
        def cell(v) -> str:
            if isinstance(v, (float, np.floating)):
                return "n/a" if not np.isfinite(v) else f"{v:.{digits}f}"
            return html.escape(str(v))

        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
        rows = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>"
                       for row in frame.itertuples(index=False))
        self.parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")

    def figure(self, svg_text: str) -> None:
        self.parts.append(f"<div>{svg_text}</div>")

    def raw(self, fragment: str) -> None:
        """Already-escaped HTML (the prediction cards)."""
        self.parts.append(fragment)

    def html(self) -> str:
        stamp = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
        return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
                f"<title>{html.escape(self.title)}</title><style>{STYLE}</style></head><body>"
                f"<h1>{html.escape(self.title)}</h1><p class=muted>precal dashboard report, {stamp}. "
                "Self-contained: opens without a network.</p>" + "".join(self.parts) + "</body></html>")


def input_svg(schema: DatasetSchema, modality: str, values: np.ndarray, reference: Optional[np.ndarray],
              original_steps: Optional[int], title: str, unit: str = "") -> str:
    """One modality's input as an SVG figure: the clean input and ``values`` (what the model sees),
    in the same form as the lab's drawing: frames as image strips, MFCCs as heatmaps, series as
    lines (up to three channels), a vector over its feature index. An empty ``values`` (removed)
    draws the clean input only."""
    spec = schema.modality(modality)
    kind = input_view_kind(spec, schema.extra)
    removed = len(values) == 0
    # beside a clean reference (the lab) the drawn input is what the model sees; alone (the
    # explorer) it is the recording itself
    seen = "model sees" if reference is not None else "as recorded"
    shown = reference if removed and reference is not None else values
    if kind == "frames":
        strip = frame_strip(spec, shown, reference, title)
        lo, hi = frame_range(spec, reference if reference is not None else shown)
        t, _ = time_axis(len(shown), spec, original_steps)
        rows = []
        if strip.reference is not None:
            rows.append(("clean", [(f"t={t[k]:.2f}s", frame_png(f, lo, hi, strip.colours))
                                   for k, f in zip(strip.picks, strip.reference)]))
        if not removed:
            rows.append((seen, [(f"t={t[k]:.2f}s", frame_png(f, lo, hi, strip.colours))
                                for k, f in zip(strip.picks, strip.frames)]))
        return svg.image_strip(rows, strip.title + (" (removed: clean only)" if removed else ""))
    flat = shown.reshape(len(shown), -1).astype(float)
    ref = reference.reshape(len(reference), -1).astype(float) if reference is not None else None
    if kind == "heatmap":
        return _heatmap_svg(schema, modality, flat, ref, removed, seen, original_steps, title, unit)
    if kind == "vector" or flat.shape[0] == 1:
        x = np.arange(flat.shape[1])
        series = {"clean": ref[0] if ref is not None else np.full(len(x), np.nan)}
        if not removed:
            series[seen] = flat[0]
        return svg.line_chart(x, series, title, "feature index", unit or "value")
    t, t_label = time_axis(len(flat), spec, original_steps)
    names = schema.feature_names(modality)
    series: Dict[str, np.ndarray] = {}
    for j in range(min(3, flat.shape[1])):
        name = names[j] if j < len(names) else f"channel {j}"
        if ref is not None:
            series[f"clean · {name}"] = np.interp(t, np.linspace(t[0], t[-1], len(ref)) if len(ref) > 1 else t, ref[:, j]) \
                if len(ref) != len(t) else ref[:, j]
        if not removed:
            series[f"{seen} · {name}"] = flat[:, j]
    return svg.line_chart(t, series, f"{title} (first {min(3, flat.shape[1])} of {flat.shape[1]} channels)",
                          t_label, unit or "value")


def _heatmap_svg(schema: DatasetSchema, modality: str, flat: np.ndarray, ref: Optional[np.ndarray], removed: bool,
                 seen: str, original_steps: Optional[int], title: str, unit: str) -> str:
    """A feature stream (MFCC) as feature × time heatmaps, first coefficient at the bottom as in the
    lab, with coefficient names on the vertical axis, time in seconds and a colour bar in the
    values' unit: without them the picture says nothing about what changed by how much."""
    spec = schema.modality(modality)
    base = ref if ref is not None else flat
    lo, hi = float(np.nanmin(base)), float(np.nanmax(base))
    rows = []
    if ref is not None:
        rows.append(("clean", frame_png(ref.T[::-1], lo, hi)))
    if not removed:
        rows.append((seen, frame_png(flat.T[::-1], lo, hi)))
    names = list(schema.feature_names(modality)) or [str(k) for k in range(flat.shape[1])]
    count = len(names)
    picks = sorted({int(round(k)) for k in np.linspace(0, count - 1, min(count, 7))})
    row_ticks = [((k + 0.5) / count, names[k]) for k in picks]
    t, t_label = time_axis(len(flat), spec, original_steps)
    span = (t[-1] - t[0]) if len(t) > 1 else 0.0
    x_ticks = [(f, f"{t[0] + f * span:.2f}" if span else f"{round(f * max(len(t) - 1, 0))}") for f in (0, 0.25, 0.5, 0.75, 1)]
    label = "MFCC / energy coefficient" if "MFCC" in spec.description else "feature"
    named = unit if unit and unit != "value" else spec.unit
    colour = named or ("coefficient value" if "MFCC" in spec.description else "value")
    bar = frame_png(np.linspace(hi, lo, 64)[:, None].repeat(4, axis=1), lo, hi)
    return svg.heatmap(rows, f"{title}: features over time (first coefficient at the bottom)", row_ticks, x_ticks,
                       t_label, label, (bar, lo, hi, colour))


def prediction_cards(outputs: Sequence[Tuple[str, SampleOutputs, Optional[SampleOutputs]]], true_class: str) -> str:
    """Each model's prediction, with its clean prediction when the input was corrupted."""
    cards = []
    for label, shown, clean in outputs:
        ok = shown.predicted_name == true_class
        extra = ""
        if clean is not None:
            extra = ("<div class=muted>same as on the clean input</div>" if clean.predicted == shown.predicted
                     else f"<div class=muted>changed (clean input: {html.escape(clean.predicted_name)})</div>")
        cards.append(f"<div class=card><div class=muted>{html.escape(label)}</div>"
                     f"<div class=big>{html.escape(shown.predicted_name)}</div>"
                     f"<span class={'ok' if ok else 'bad'}>{'correct' if ok else 'wrong'}</span> · probability "
                     f"{shown.confidence:.3f}{extra}</div>")
    return "".join(cards)


def probability_svg(outputs: Sequence[Tuple[str, SampleOutputs]], true_class: str, k: int = 5,
                    title: str = "class probabilities (✓ = true class)") -> str:
    """Top-k class probabilities of every model (the union of their top classes), as bars."""
    classes: List[str] = []
    for _, o in outputs:
        classes += [c for c in o.top(k)["class"] if c not in classes]
    series = {}
    for label, o in outputs:
        names = o.class_names
        series[label] = [float(o.probabilities[names.index(c)]) if c in names else None for c in classes]
    cats = [f"{c} ✓" if c == true_class else c for c in classes]
    return svg.bar_chart(cats, series, title, "probability (0–1)", domain=(0.0, 1.0))


NO_GATES_NOTE = "no gates: alpha fixed at 1, cues unused"
"""Said beside a model without a calibrator (or with it switched off): its alpha is 1 whatever its
cues, and a trained baseline's cues come from a calibrator left at initialisation."""


def cue_table(rows: Sequence[Tuple[str, SampleOutputs, Optional[SampleOutputs]]]) -> pd.DataFrame:
    """alpha, support and conflict per model and modality; with a clean counterpart, both and the
    change. An absent modality has no gate and no cues: "n/a (absent)", never a number."""
    out = []
    for label, shown, clean in rows:
        for i, m in enumerate(shown.modalities):
            row: Dict[str, object] = {"model": label, "modality": m}
            for q in ("alpha", "support", "conflict"):
                now = float(getattr(shown, q)[i]) if shown.present[i] else float("nan")
                if clean is not None:
                    before = float(getattr(clean, q)[i]) if clean.present[i] else float("nan")
                    row[f"{q} clean"] = before
                    row[f"{q} now"] = now
                    row[f"Δ {q}"] = now - before
                else:
                    row[q] = now
            row["note"] = ABSENT if not (shown.present[i] and (clean is None or clean.present[i])) else \
                "" if shown.calibration else NO_GATES_NOTE
            out.append(row)
    return pd.DataFrame(out)


def explanation_lines(outputs: SampleOutputs, first: Sequence[str] = ()) -> List[str]:
    """:mod:`precal.explain`'s sentence for every modality's gate, the ``first`` ones first."""
    order = list(first) + [m for m in outputs.modalities if m not in first]
    return [outputs.explain(m).with_caveat for m in order if m in outputs.modalities]


def link_facts(link: str) -> List[Tuple[str, str]]:
    """The report's way back to the view. A report is opened from a file, where a relative
    ``/lab?…`` leads nowhere: an absolute address (the page knew the server's) is given as is;
    otherwise only the view's parameters, to append to the dashboard's address."""
    if not link:
        return []
    if link.startswith(("http://", "https://")):
        return [("link to this view", link)]
    path, _, query = link.partition("?")
    return [("view parameters", query or path),
            ("to reopen", f"append to the dashboard's address: …{path}?{query}" if query else path)]


def sample_report(title: str, facts: Sequence[Tuple[str, str]], true_class: str,
                  models: Sequence[Tuple[str, SampleOutputs, Optional[SampleOutputs]]],
                  inputs: Sequence[str], gated: Optional[SampleOutputs], changed: Sequence[str] = (),
                  link: str = "") -> str:
    """The report of one sample as a page shows it: facts (models, data, split, sample, controls),
    predictions, probabilities, inputs, gates and cues, and why each gate is where it is. ``models``:
    (label, outputs shown, clean outputs or None); ``inputs``: SVG figures; ``gated``: the outputs
    whose gates are explained."""
    rep = Report(title)
    rep.facts(list(facts) + link_facts(link))
    rep.heading("Predictions")
    rep.raw(prediction_cards(models, true_class))
    compared = any(clean is not None for _, _, clean in models)
    rep.figure(probability_svg([(label, shown) for label, shown, _ in models], true_class,
                               title="class probabilities on the corrupted input (✓ = true class)" if compared
                               else "class probabilities (✓ = true class)"))
    if compared:
        rep.figure(probability_svg([(label, clean) for label, _, clean in models if clean is not None], true_class,
                                   title="class probabilities on the clean input (✓ = true class)"))
    rep.heading("Inputs")
    for figure in inputs:
        rep.figure(figure)
    rep.heading("Gates and cues")
    rep.table(cue_table(models))
    rep.text("alpha scales a modality's features before fusion (1 = unchanged); support: agreement with what the "
             "other modalities predict about it (cosine); conflict: distance from it. A model without a calibrator "
             "(or with it switched off) has alpha fixed at 1.", muted=True)
    if any(not shown.calibration for _, shown, _ in models):
        rep.text("Rows marked \"" + NO_GATES_NOTE + "\": that model fuses its inputs as they are. Its support and "
                 "conflict are what a calibrator would read, not what the model uses: with the calibrator switched "
                 "off they are the calibrated model's readings, ignored; for a model trained without one they come "
                 "from a calibrator left at initialisation and mean nothing.", muted=True)
    if gated is not None:
        rep.heading("Why each gate is where it is (relative to a typical sample)")
        rep.raw("<ul>" + "".join(f"<li>{html.escape(s)}</li>" for s in explanation_lines(gated, changed)) + "</ul>")
    return rep.html()


def table_report(title: str, facts: Sequence[Tuple[str, str]], tables: Sequence[Tuple[str, pd.DataFrame]],
                 figures: Sequence[str] = ()) -> str:
    """A report of tables and figures (a slice table, a sweep, a calibration summary)."""
    rep = Report(title)
    rep.facts(facts)
    for heading, frame in tables:
        rep.heading(heading)
        rep.table(frame)
    for figure in figures:
        rep.figure(figure)
    return rep.html()


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """A table as CSV (UTF-8, no index): what every download button of a table gives."""
    return frame.to_csv(index=False).encode("utf-8")
