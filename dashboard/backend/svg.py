"""Charts as standalone SVG text, drawn without a browser.

Exports need images that open anywhere: the HTML report inlines them, and the download buttons
give them as ``.svg`` files. Plotly's own image export needs kaleido (a headless browser) and the
Vega-Lite charts' export menu is switched off inside Streamlit, so the few chart types the exports
use are drawn here directly: grouped horizontal bars, lines over an axis, a reliability diagram and
an image strip. Plain SVG 1.1, no scripts, no external fonts or links.
"""

from __future__ import annotations

import html
import math
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf")
FONT = "font-family='Helvetica, Arial, sans-serif'"


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _svg(width: int, height: int, body: List[str], title: str) -> str:
    return (f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
            f"viewBox='0 0 {width} {height}' {FONT} font-size='11'>"
            f"<rect width='100%' height='100%' fill='white'/>"
            f"<text x='8' y='16' font-size='13' font-weight='bold'>{_esc(title)}</text>" + "".join(body) + "</svg>")


def _finite(v) -> bool:
    return v is not None and isinstance(v, (int, float)) and math.isfinite(float(v))


def _ticks(lo: float, hi: float, count: int = 5) -> List[float]:
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    step = (hi - lo) / count
    magnitude = 10 ** math.floor(math.log10(step))
    step = min((m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= step), default=step)
    first = math.ceil(lo / step) * step
    return [round(first + k * step, 10) for k in range(int((hi - first) / step + 1e-9) + 1)]


def bar_chart(categories: Sequence[str], series: Mapping[str, Sequence[Optional[float]]], title: str,
              x_label: str = "", domain: Optional[Tuple[float, float]] = None, reference: Optional[float] = None,
              notes: Optional[Mapping[Tuple[str, str], str]] = None, width: int = 560) -> str:
    """Horizontal bars: one row per category, one bar per series in it (e.g. clean and corrupted),
    the value written beside each bar. A missing value draws no bar but its note (e.g. "n/a
    (absent)") or "n/a". ``reference`` draws a dashed line (alpha = 1)."""
    names = list(series)
    bar_h, gap = 12, 8
    row_h = bar_h * len(names) + gap
    left, top = 150, 36 + _legend_height(len(names))
    plot_w = width - left - 70
    height = top + row_h * len(categories) + 46
    values = [float(v) for s in series.values() for v in s if _finite(v)]
    lo, hi = domain if domain is not None else (min([0.0] + values), max([1e-9] + values))
    if reference is not None and domain is None:
        lo, hi = min(lo, reference), max(hi, reference)
    span = (hi - lo) or 1.0

    def x(v: float) -> float:
        return left + plot_w * (min(max(v, lo), hi) - lo) / span

    body = []
    for t in _ticks(lo, hi):
        body.append(f"<line x1='{x(t):.1f}' x2='{x(t):.1f}' y1='{top - 4}' y2='{height - 40}' stroke='#eee'/>"
                    f"<text x='{x(t):.1f}' y='{height - 28}' text-anchor='middle' fill='#555'>{t:g}</text>")
    for i, cat in enumerate(categories):
        y0 = top + i * row_h
        body.append(f"<text x='{left - 6}' y='{y0 + row_h / 2:.1f}' text-anchor='end' dominant-baseline='middle'>"
                    f"{_esc(cat)}</text>")
        for k, name in enumerate(names):
            v = series[name][i] if i < len(series[name]) else None
            y = y0 + k * bar_h
            colour = PALETTE[k % len(PALETTE)]
            if _finite(v):
                x0, x1 = sorted((x(max(lo, min(0.0, hi)) if lo < 0 < hi else lo), x(float(v))))
                body.append(f"<rect x='{x0:.1f}' y='{y:.1f}' width='{max(x1 - x0, 1):.1f}' height='{bar_h - 2}' "
                            f"fill='{colour}'><title>{_esc(name)}: {float(v):.3f}</title></rect>"
                            f"<text x='{x1 + 4:.1f}' y='{y + bar_h / 2:.1f}' dominant-baseline='middle' "
                            f"font-size='10'>{float(v):.3f}</text>")
            else:
                note = (notes or {}).get((cat, name), "n/a")
                body.append(f"<text x='{left + 4}' y='{y + bar_h / 2:.1f}' dominant-baseline='middle' font-size='10' "
                            f"fill='#888'>{_esc(note)}</text>")
    if reference is not None:
        body.append(f"<line x1='{x(reference):.1f}' x2='{x(reference):.1f}' y1='{top - 4}' y2='{height - 40}' "
                    "stroke='black' stroke-dasharray='4 3'/>")
    body.append(f"<text x='{left + plot_w / 2:.1f}' y='{height - 12}' text-anchor='middle'>{_esc(x_label)}</text>")
    body += _legend(names, 8, 32)
    return _svg(width, height, body, title)


LEGEND_ROW = 14
"""Height of one legend entry. Entries stand one under the other below the title, each with its
full name: model labels ("calibrated (avletters_conv_calon)") are long, and side by side at a
fixed spacing they were cut mid-word."""


def _legend(names: Sequence[str], x: float, y: float, dashes: Optional[Mapping[str, str]] = None) -> List[str]:
    out = []
    for k, name in enumerate(names):
        colour = PALETTE[k % len(PALETTE)]
        yy = y + LEGEND_ROW * k
        out.append(f"<rect x='{x}' y='{yy - 8}' width='10' height='10' fill='{colour}'/>"
                   f"<text x='{x + 14}' y='{yy + 1}' font-size='10'>{_esc(str(name)[:90])}</text>")
    return out


def _legend_height(count: int) -> int:
    return LEGEND_ROW * count + 6


def line_chart(x: Sequence[float], series: Mapping[str, Sequence[float]], title: str, x_label: str, y_label: str,
               width: int = 560, height: int = 260, x_ticks: Optional[Sequence[Tuple[float, str]]] = None,
               legend: bool = True) -> str:
    """Lines over a shared x axis (NaN breaks a line), with axes, ticks and a legend."""
    left, right, top, bottom = 60, 20, 40, 44
    shows_legend = legend and len(series) <= 8
    if shows_legend:  # the plot keeps its height; the legend adds to the figure's
        top += _legend_height(len(series))
        height += _legend_height(len(series))
    pw, ph = width - left - right, height - top - bottom
    xs = [float(v) for v in x]
    ys = [float(v) for s in series.values() for v in s if _finite(v)]
    x_lo, x_hi = (min(xs), max(xs)) if xs else (0.0, 1.0)
    y_lo, y_hi = (min(ys), max(ys)) if ys else (0.0, 1.0)
    if y_hi == y_lo:
        y_lo, y_hi = y_lo - 0.5, y_hi + 0.5
    pad = 0.05 * (y_hi - y_lo)
    y_lo, y_hi = y_lo - pad, y_hi + pad

    def px(v: float) -> float:
        return left + pw * (v - x_lo) / ((x_hi - x_lo) or 1.0)

    def py(v: float) -> float:
        return top + ph * (1 - (v - y_lo) / (y_hi - y_lo))

    body = [f"<rect x='{left}' y='{top}' width='{pw}' height='{ph}' fill='none' stroke='#ccc'/>"]
    for t in _ticks(y_lo, y_hi):
        body.append(f"<line x1='{left}' x2='{left + pw}' y1='{py(t):.1f}' y2='{py(t):.1f}' stroke='#eee'/>"
                    f"<text x='{left - 4}' y='{py(t):.1f}' text-anchor='end' dominant-baseline='middle' "
                    f"fill='#555'>{t:g}</text>")
    for t, label in (x_ticks or [(v, f"{v:g}") for v in _ticks(x_lo, x_hi)]):
        body.append(f"<text x='{px(t):.1f}' y='{top + ph + 14}' text-anchor='middle' fill='#555'>{_esc(label)}</text>")
    for k, (name, values) in enumerate(series.items()):
        colour = PALETTE[k % len(PALETTE)]
        parts: List[str] = []
        pen = "M"
        for xv, yv in zip(xs, values):
            if not _finite(yv):
                pen = "M"
                continue
            parts.append(f"{pen}{px(xv):.1f},{py(float(yv)):.1f}")
            pen = "L"
        if parts:
            body.append(f"<path d='{' '.join(parts)}' fill='none' stroke='{colour}' stroke-width='1.5'>"
                        f"<title>{_esc(name)}</title></path>")
        if len(xs) <= 12:
            body += [f"<circle cx='{px(xv):.1f}' cy='{py(float(yv)):.1f}' r='2.5' fill='{colour}'/>"
                     for xv, yv in zip(xs, values) if _finite(yv)]
    body.append(f"<text x='{left + pw / 2:.1f}' y='{height - 8}' text-anchor='middle'>{_esc(x_label)}</text>")
    body.append(f"<text transform='translate(14,{top + ph / 2:.1f}) rotate(-90)' text-anchor='middle'>"
                f"{_esc(y_label)}</text>")
    if shows_legend:
        body += _legend(list(series), 8, 34)
    return _svg(width, height, body, title)


def reliability_diagram(models: Mapping[str, Sequence[Dict[str, float]]], title: str, width: int = 420) -> str:
    """Accuracy against confidence per bin (:func:`precal.metrics.reliability_bins`), one line per
    model, the diagonal of perfect calibration dashed, the points sized by their bin's count."""
    height = width
    left, top, right, bottom = 56, 40, 20, 48
    pw, ph = width - left - right, height - top - bottom

    def px(v: float) -> float:
        return left + pw * v

    def py(v: float) -> float:
        return top + ph * (1 - v)

    body = [f"<rect x='{left}' y='{top}' width='{pw}' height='{ph}' fill='none' stroke='#ccc'/>",
            f"<line x1='{px(0)}' y1='{py(0)}' x2='{px(1)}' y2='{py(1)}' stroke='#888' stroke-dasharray='4 3'/>"]
    for t in (0, 0.2, 0.4, 0.6, 0.8, 1.0):
        body.append(f"<text x='{px(t):.1f}' y='{top + ph + 14}' text-anchor='middle' fill='#555'>{t:g}</text>"
                    f"<text x='{left - 4}' y='{py(t):.1f}' text-anchor='end' dominant-baseline='middle' "
                    f"fill='#555'>{t:g}</text>")
    total = max(1, max((sum(b["count"] for b in bins) for bins in models.values()), default=1))
    for k, (name, bins) in enumerate(models.items()):
        colour = PALETTE[k % len(PALETTE)]
        pts = [(px(b["confidence"]), py(b["accuracy"]), b) for b in bins]
        if pts:
            body.append(f"<path d='M{' L'.join(f'{a:.1f},{c:.1f}' for a, c, _ in pts)}' fill='none' "
                        f"stroke='{colour}' stroke-width='1.5'/>")
        for a, c, b in pts:
            r = 2 + 8 * math.sqrt(b["count"] / total)
            body.append(f"<circle cx='{a:.1f}' cy='{c:.1f}' r='{r:.1f}' fill='{colour}' fill-opacity='0.6'>"
                        f"<title>{_esc(name)}: confidence {b['confidence']:.2f}, accuracy {b['accuracy']:.2f}, "
                        f"{int(b['count'])} samples</title></circle>")
    body.append(f"<text x='{left + pw / 2:.1f}' y='{height - 10}' text-anchor='middle'>confidence (top-class "
                "probability)</text>")
    body.append(f"<text transform='translate(14,{top + ph / 2:.1f}) rotate(-90)' text-anchor='middle'>accuracy</text>")
    for k, name in enumerate(models):
        body.append(f"<rect x='{left + 8}' y='{top + 8 + 16 * k}' width='10' height='10' "
                    f"fill='{PALETTE[k % len(PALETTE)]}'/><text x='{left + 22}' y='{top + 17 + 16 * k}' "
                    f"font-size='10'>{_esc(str(name)[:48])}</text>")
    return _svg(width, height, body, title)


def image_strip(rows: Sequence[Tuple[str, Sequence[Tuple[str, str]]]], title: str, cell: Tuple[int, int] = (72, 96)
                ) -> str:
    """Rows of images (PNG data URLs) under their captions, each row named on the left: e.g. the
    clean and the corrupted frames of a video input."""
    h, w = cell
    left, top = 90, 36
    n = max((len(images) for _, images in rows), default=0)
    width = left + n * (w + 6) + 10
    height = top + len(rows) * (h + 24) + 10
    body = []
    for r, (name, images) in enumerate(rows):
        y = top + r * (h + 24)
        body.append(f"<text x='{left - 6}' y='{y + h / 2:.1f}' text-anchor='end'>{_esc(name)}</text>")
        for k, (caption, url) in enumerate(images):
            xx = left + k * (w + 6)
            body.append(f"<image x='{xx}' y='{y}' width='{w}' height='{h}' href='{url}' "
                        f"preserveAspectRatio='none'/>"
                        f"<text x='{xx + w / 2}' y='{y + h + 12}' text-anchor='middle' font-size='9'>{_esc(caption)}</text>")
    return _svg(width, height, body, title)


def heatmap(rows: Sequence[Tuple[str, str]], title: str, row_ticks: Sequence[Tuple[float, str]],
            x_ticks: Sequence[Tuple[float, str]], x_label: str, y_label: str,
            colour_bar: Tuple[str, float, float, str], cell: Tuple[int, int] = (110, 420)) -> str:
    """Feature-by-time images (PNG data URLs), one per named row (clean, corrupted), with what a
    reader needs to read them: labelled feature ticks (``row_ticks``: fraction from the bottom,
    label), time ticks (fraction from the left), axis titles, and a colour bar (``colour_bar``: a
    vertical PNG from high to low, its low and high values and its title, e.g. the unit)."""
    h, w = cell
    left, top, gap = 150, 36, 34
    bar_x = left + w + 24
    width = bar_x + 120
    height = top + len(rows) * (h + gap) + 20
    body = []
    for r, (name, url) in enumerate(rows):
        y = top + r * (h + gap)
        body.append(f"<text x='12' y='{y + h / 2:.1f}' font-weight='bold'>{_esc(name)}</text>"
                    f"<image x='{left}' y='{y}' width='{w}' height='{h}' href='{url}' preserveAspectRatio='none'/>"
                    f"<rect x='{left}' y='{y}' width='{w}' height='{h}' fill='none' stroke='#999'/>")
        for frac, label in row_ticks:
            yy = y + h * (1 - frac)
            body.append(f"<line x1='{left - 3}' x2='{left}' y1='{yy:.1f}' y2='{yy:.1f}' stroke='#555'/>"
                        f"<text x='{left - 5}' y='{yy:.1f}' text-anchor='end' dominant-baseline='middle' "
                        f"font-size='10' fill='#333'>{_esc(label)}</text>")
        for frac, label in x_ticks:
            xx = left + w * frac
            body.append(f"<line x1='{xx:.1f}' x2='{xx:.1f}' y1='{y + h}' y2='{y + h + 3}' stroke='#555'/>"
                        f"<text x='{xx:.1f}' y='{y + h + 14}' text-anchor='middle' font-size='10' "
                        f"fill='#333'>{_esc(label)}</text>")
        body.append(f"<text transform='translate({left - 44},{y + h / 2:.1f}) rotate(-90)' text-anchor='middle' "
                    f"font-size='10' fill='#555'>{_esc(y_label)}</text>")
    body.append(f"<text x='{left + w / 2:.1f}' y='{height - 6}' text-anchor='middle'>{_esc(x_label)}</text>")
    url, lo, hi, bar_title = colour_bar
    bar_h = min(160, len(rows) * (h + gap) - gap)
    body.append(f"<text x='{bar_x}' y='{top - 6}' font-size='10'>{_esc(bar_title)}</text>"
                f"<image x='{bar_x}' y='{top}' width='14' height='{bar_h}' href='{url}' preserveAspectRatio='none'/>"
                f"<rect x='{bar_x}' y='{top}' width='14' height='{bar_h}' fill='none' stroke='#999'/>"
                f"<text x='{bar_x + 18}' y='{top + 8}' font-size='10'>{hi:.3g}</text>"
                f"<text x='{bar_x + 18}' y='{top + bar_h}' font-size='10'>{lo:.3g}</text>")
    return _svg(width, height, body, title)
