"""Benchmark of the embeddings page at 1k, 10k and 100k samples: fit, load and redraw.

Usage::

    python benchmarks/embeddings.py                      # N = 1k, 10k, 100k; PCA, t-SNE, UMAP
    python benchmarks/embeddings.py --sizes 1000 10000   # quicker
    python benchmarks/embeddings.py --methods pca umap

Each figure is what the page costs, through the page's own code:

- ``fit``: the map on a cache miss, :func:`precal.dashboard.backend.embeddings.split_projection`
  (t-SNE and UMAP above 5,000 samples fitted on a seeded subsample of 5,000, the rest placed out of
  sample; the disk write included). ``precal precompute`` pays this ahead of time. UMAP's one-off
  numba compile is excluded (the dashboard does it in the background at start);
- ``load``: the map from the disk cache with the in-memory caches cleared (hashing the features for
  the key and reading the ``.npz``): what a page pays after a restart or after ``precal precompute``;
- ``redraw``: a rerun of the page on a loaded map (a colour, a selection, a zoom reset): hover texts,
  the Plotly figure (WebGL from 3,000 samples, as the page) and its JSON, which is what Streamlit
  sends to the browser (``plotly.io.to_json``, after the same figure check ``st.plotly_chart`` does).
  The browser's own drawing is not in it;
- ``scores``: kNN purity and silhouette (once per map; the page caches them).

Synthetic data as in ``benchmarks/projection.py``: 64-dimensional features in 10 clusters, "post" the
gated "pre". Targets (from the issue: the page stays interactive at 100k): fit <= 120 s, load <= 1 s,
redraw <= 1 s, at every N; ``ratio`` is measured / target (<= 1 meets it).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.projection import synthetic  # noqa: E402
from precal.dashboard.backend.embeddings import (LINES_UP_TO, METHOD_TITLES, WEBGL_FROM, neighbourhood_table,  # noqa: E402
                                                 split_projection)
from precal.dashboard.charts import figures as charts  # noqa: E402
from precal.dashboard.worker import warm_up_umap  # noqa: E402
from precal.projection import clear_memory_cache  # noqa: E402
from precal.projection.method import MAX_FIT_SAMPLES  # noqa: E402

METHODS = ("pca", "tsne", "umap")
TARGETS_S = {"fit": 120.0, "load": 1.0, "redraw": 1.0}
CLASS_NAMES = [f"class {k}" for k in range(10)]


def timed(fn: Callable[[], object]) -> Tuple[object, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def redraw(proj, labels: np.ndarray) -> Tuple[int, float]:
    """What a rerun of the page does with a loaded map; returns the JSON's size and the time."""
    import plotly.io as pio
    import plotly.tools

    def run() -> int:
        n = proj.n
        ids = np.asarray([f"s{k:06d}" for k in range(n)], dtype=object)
        classes = np.asarray(CLASS_NAMES, dtype=object)[labels]
        hover = [f"{s} · {c}" for s, c in zip(ids, classes)]
        fig = charts.embedding_figure(proj.pre_xy, proj.post_xy, classes, "true class", ids, hover,
                                      f"{METHOD_TITLES[proj.method]} ({n} samples)", METHOD_TITLES[proj.method],
                                      arrows=n <= LINES_UP_TO, webgl=n >= WEBGL_FROM)
        fig = plotly.tools.return_figure_from_figure_or_data(fig, validate_figure=True)
        return len(pio.to_json(fig, validate=False))

    sizes, seconds = [], []
    for _ in range(3):
        size, s = timed(run)
        sizes.append(size)
        seconds.append(s)
    return sizes[0], min(seconds)


def bench(n: int, method: str, pre: np.ndarray, post: np.ndarray, labels: np.ndarray, cache: Path) -> Dict[str, object]:
    clear_memory_cache()
    key = {"bench": "embeddings", "n": n}
    proj, fit_s = timed(lambda: split_projection(cache, key, pre, post, method))
    loads = []
    for _ in range(3):
        clear_memory_cache()
        loaded, s = timed(lambda: split_projection(cache, key, pre, post, method))
        loads.append(s)
    assert loaded.n == n and loaded.fit_samples == proj.fit_samples
    size, redraw_s = redraw(loaded, labels)
    return {"fit": fit_s, "load": min(loads), "redraw": redraw_s, "json_mb": size / 1e6,
            "fitted": proj.fit_samples or n}


def fmt_row(cells: List[str], widths: List[int]) -> str:
    return "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))


HEADER = ["N", "method", "fitted", "fit s", "ratio", "load ms", "ratio", "redraw ms", "ratio", "JSON MB"]
WIDTHS = [7, 6, 7, 8, 6, 9, 6, 10, 6, 8]


def row(n: int, method: str, r: Dict[str, object]) -> List[str]:
    return [str(n), method, str(r["fitted"]), f"{r['fit']:.2f}", f"{r['fit'] / TARGETS_S['fit']:.2f}",
            f"{r['load'] * 1e3:.1f}", f"{r['load'] / TARGETS_S['load']:.2f}", f"{r['redraw'] * 1e3:.0f}",
            f"{r['redraw'] / TARGETS_S['redraw']:.2f}", f"{r['json_mb']:.1f}"]


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    args = parser.parse_args(argv)

    if "umap" in args.methods:
        _, jit_s = timed(lambda: warm_up_umap().join())
        print(f"UMAP warm-up (numba compile, excluded from fit times): {jit_s:.1f} s", flush=True)
    print(f"t-SNE/UMAP fitted on at most {MAX_FIT_SAMPLES:,} samples; WebGL from {WEBGL_FROM:,}, "
          f"lines up to {LINES_UP_TO:,} samples; dim {args.dim}", flush=True)
    rows: List[List[str]] = []
    worst: Dict[str, float] = {k: 0.0 for k in TARGETS_S}
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            pre, post, labels = synthetic(n, args.dim)
            _, scores_s = timed(lambda: neighbourhood_table(pre, post, labels, k=10))
            print(f"N {n}: neighbourhood scores (once per map) {scores_s:.2f} s", flush=True)
            for method in args.methods:
                r = bench(n, method, pre, post, labels, Path(tmp))
                for k in worst:
                    worst[k] = max(worst[k], float(r[k]) / TARGETS_S[k])
                rows.append(row(n, method, r))
                print(fmt_row(rows[-1], WIDTHS), flush=True)
    print()
    print("targets: " + ", ".join(f"{k} <= {v:g} s" for k, v in TARGETS_S.items()) + "; ratio = measured / target")
    print(fmt_row(HEADER, WIDTHS))
    print(fmt_row(["-" * w for w in WIDTHS], WIDTHS))
    for r in rows:
        print(fmt_row(r, WIDTHS))
    print(", ".join(f"worst {k} ratio {v:.2f} ({'met' if v <= 1 else 'NOT met'})" for k, v in worst.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
