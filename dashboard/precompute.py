"""``precal precompute``: fill the dashboard's disk caches before anyone opens a page.

Why: on a large data set (or before a demo on a small machine) the first visit of a page pays for
the split's predictions, each 2-D map (t-SNE and UMAP take a minute each) and a robustness sweep.
This runs the same backend functions the pages call, with the same keys
(:func:`~precal.dashboard.backend.running.cached_predict` with
:func:`~precal.dashboard.backend.running.prediction_parts`,
:func:`~precal.dashboard.backend.embeddings.split_projection`,
:func:`~precal.dashboard.backend.robustness.page_sweep`), into the same folders
(:func:`precal.dashboard.settings.cache_folder`), so the pages then read instead of computing. It is
no second engine: nothing here computes a number itself.

It sits in the app's package, like the launcher, because it is the app's business: which caches a
page reads and under which key. The library's command line only calls :func:`run`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence

from tqdm.auto import tqdm

from precal.checkpoint import Checkpoint, CheckpointError
from precal.dashboard import settings
from precal.dashboard.backend import first_paint, own_models
from precal.dashboard.backend.data import SplitBatches, data_mtime, split_batches
from precal.dashboard.backend.demo import example_modality, prepared_example, stored_effect
from precal.dashboard.backend.embeddings import (FUSED, feature_spaces, pre_post_features, projection_key,
                                                 split_projection)
from precal.dashboard.backend.pairs import ModelPair, ModelView, load_checkpoints, pair_checkpoints, switched_off
from precal.dashboard.backend.robustness import (DEFAULT_SEVERITIES, default_corruptions, find_robustness_table,
                                                 page_sweep)
from precal.dashboard.backend.running import cached_predict, prediction_parts
from precal.data.storage import MultimodalData, load_dataset
from precal.evaluation import resolve_data_dir
from precal.inference import Predictions
from precal.own_checkpoint import open_own_model
from precal.projection import METHODS
from precal.robustness.corruptions import CORRUPTIONS, check_severity
from precal.robustness.engine import sweep_plan

FUSED_NAME = "fused"
"""How ``--features`` names the fused representation (the page calls it :data:`FUSED`)."""


def names(values: Optional[Sequence[str]]) -> Optional[List[str]]:
    """Option values given as ``a,b`` or ``a b`` (or both): one list, in order, without repeats."""
    if values is None:
        return None
    return list(dict.fromkeys(v for item in values for v in re.split(r"[,\s]+", item) if v))


def check_methods(methods: Sequence[str]) -> List[str]:
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ValueError(f"--methods: unknown method {unknown[0]!r}; choose from {', '.join(METHODS)}" if unknown
                         else f"--methods: name at least one of {', '.join(METHODS)}")
    return list(methods)


def check_corruptions(corruptions: Optional[Sequence[str]]) -> Optional[List[str]]:
    unknown = [c for c in corruptions or () if c not in CORRUPTIONS]
    if unknown:
        raise ValueError(f"--corruptions: unknown corruption {unknown[0]!r}; choose from {', '.join(CORRUPTIONS)}")
    return None if corruptions is None else list(corruptions)


FIRST_PAINT_TIMEOUT_S = 600
"""The longest the start page may take to run once for its first paint (it reads what was just filled)."""


def check_severities(severities: Sequence[int]) -> List[int]:
    """The sweep's severity levels, sorted, with the clean level 0 added."""
    try:
        return sorted({check_severity(s) for s in severities} | {0})
    except ValueError as exc:
        raise ValueError(f"--severities: {exc}") from None


@dataclass
class PairWork:
    """What is computed for one pair: its data, split and the caches the pages read for it."""

    pair: ModelPair
    data_path: Path
    data: MultimodalData
    split: str
    spaces: List[str]
    corruptions: List[str]
    stored_sweep: Optional[Path]
    views: List[ModelView] = field(default_factory=list)

    @property
    def gated(self) -> Optional[ModelView]:
        return next((v for v in self.views if v.calibration), None)


def predicted_views(views: Sequence[ModelView]) -> List[ModelView]:
    """The views whose predictions the pages read: the pair's columns, and the gated checkpoint with
    its calibrator switched off (the embeddings' "before", also the lab's map)."""
    out = {v.key: v for v in views}
    gated = next((v for v in views if v.calibration), None)
    if gated is not None:
        off = switched_off(gated.checkpoint)
        out.setdefault(off.key, off)
    return list(out.values())


def open_models(paths: Sequence[str], data: Optional[str], model: Optional[str],
                weights: Optional[str]) -> List[Checkpoint]:
    """The checkpoints named (an own model's with ``model``), or ``model`` alone on ``data``; the
    first that does not load is an error (one line), not a skipped entry as in the dashboard."""
    if not paths:
        if not model:
            raise ValueError("name a CHECKPOINT, or your own model with --model FILE.py:NAME --data DIR")
        if not data:
            raise ValueError("--model without a CHECKPOINT needs --data DIR (a data set folder)")
        return [open_own_model(model, data, weights)]
    loaded, problems = load_checkpoints(paths, load=lambda p: own_models.load_named_checkpoint(p, model))
    if problems:
        message = problems[0].message
        raise CheckpointError(message if problems[0].path in message else f"{problems[0].path}: {message}")
    return loaded


def plan_pair(pair: ModelPair, data: Optional[str], split: Optional[str], features: Optional[Sequence[str]],
              corruptions: Optional[Sequence[str]], datasets: Dict[Path, MultimodalData]) -> PairWork:
    """Resolve a pair's data and split as the dashboard's sidebar does, and check the options
    against them, before anything is computed."""
    path = resolve_data_dir(pair.primary, data, search=[settings.ROOT / "sample_data"], trust_recorded=True)
    key = path.resolve()
    if key not in datasets:
        datasets[key] = load_dataset(path)
    loaded = datasets[key]
    splits = list(loaded.splits)
    chosen = split or ("test" if "test" in splits else splits[0])
    if chosen not in splits:
        raise ValueError(f"--split: {path} has no split {chosen!r}; it has {', '.join(splits)}")
    schema = pair.primary.schema
    spaces = feature_spaces(schema.modality_names)
    if features is not None:
        wanted = [FUSED if f == FUSED_NAME else f for f in features]
        unknown = [f for f in wanted if f not in spaces]
        if unknown:
            raise ValueError(f"--features: {pair.name} has no feature space {unknown[0]!r}; choose from "
                             f"{', '.join([FUSED_NAME] + list(schema.modality_names))}")
        spaces = [s for s in spaces if s in wanted]
    chosen_corruptions = default_corruptions(schema) if corruptions is None else list(corruptions)
    return PairWork(pair, path, loaded, chosen, spaces, chosen_corruptions, find_robustness_table(pair),
                    views=pair.views())


def sweep_levels(work: PairWork, severities: Sequence[int]) -> int:
    """How many corrupted levels the page's sweep runs (the progress bar's share of it)."""
    plan = sweep_plan(work.pair.primary.schema, work.pair.primary.schema.modality_names, work.corruptions)
    return len(work.views) * len(plan) * len({int(s) for s in severities} - {0})


def run(paths: Sequence[str], data: Optional[str] = None, split: Optional[str] = None,
        methods: Sequence[str] = METHODS, features: Optional[Sequence[str]] = None,
        corruptions: Optional[Sequence[str]] = None, severities: Sequence[int] = DEFAULT_SEVERITIES,
        sweep: bool = True, model: Optional[str] = None, weights: Optional[str] = None,
        cache_dir: Optional[Path] = None, progress: bool = True,
        say: Optional[Callable[[str], None]] = None) -> List[str]:
    """Fill the dashboard's caches for the pairs the dashboard forms from ``paths`` (opened with
    the same ``--checkpoint`` folders): predictions of every view of the split, the maps of each
    feature space by each method, and (unless a stored ``robustness.csv`` is next to the checkpoint,
    which the page shows instead) the page's computed sweep; then the start page's first paint (not
for your own model: its code runs only in a page). Returns one summary line per pair, and one for
the first paint.

    ``cache_dir`` replaces the dashboard's cache folder (tests); the options are checked, and every
    pair's data and split resolved, before anything is computed. ``say`` gets the summary lines
    (default: printed above the progress bar)."""
    say = say or tqdm.write
    methods = check_methods(list(methods))
    corruptions = check_corruptions(corruptions)
    severities = check_severities(severities)
    pairs = pair_checkpoints(open_models(paths, data, model, weights))
    datasets: Dict[Path, MultimodalData] = {}
    works = [plan_pair(p, data, split, features, corruptions, datasets) for p in pairs]
    base = Path(cache_dir) if cache_dir is not None else settings.CACHE_DIR
    folders = {kind: base / kind for kind in settings.CACHE_KINDS}

    def steps(w: PairWork) -> int:
        maps = len(w.spaces) * len(methods) + 1 if w.gated is not None else 0  # + the start page's example
        swept = sweep_levels(w, severities) if sweep and w.stored_sweep is None and w.corruptions else 0
        return len(predicted_views(w.views)) + maps + swept

    bar = tqdm(total=sum(steps(w) for w in works), desc="precompute", unit="step", disable=not progress)
    lines = []
    try:
        for w in works:
            lines.append(_fill(w, methods, severities, sweep, folders, bar))
            say(lines[-1])
    finally:
        bar.close()
    if model is None and weights is None:
        lines.append(store_first_paint(paths, data, base))
        say(lines[-1])
    say(f"cache: {base} (the dashboard of this installation reads it)")
    return lines


@contextlib.contextmanager
def _as_the_server_runs(paths: Sequence[str], data: Optional[str], base: Path) -> Iterator[None]:
    """The app's inputs as ``precal dashboard --checkpoint … --data …`` gives them (its environment
    variables, no command-line arguments of this process) and ``base`` as its cache folder."""
    env = {settings.ENV_CHECKPOINTS: os.pathsep.join(str(p) for p in paths), settings.ENV_DATA: data,
           settings.ENV_MODEL: None, settings.ENV_WEIGHTS: None, "PRECAL_DASHBOARD_WARMUP": "0",
           "PRECAL_DASHBOARD_THREADS": "0"}
    saved_env = {k: os.environ.get(k) for k in env}
    saved = sys.argv, settings.CACHE_DIR
    # Streamlit warns that it runs without a server ("bare mode"): true, and nothing to act on
    quiet = logging.getLogger("streamlit.runtime.scriptrunner_utils.script_run_context")
    level = quiet.level
    try:
        _set_environment(env)
        sys.argv, settings.CACHE_DIR = [sys.argv[0]], base
        quiet.setLevel(logging.ERROR)
        yield
    finally:
        sys.argv, settings.CACHE_DIR = saved
        _set_environment(saved_env)
        quiet.setLevel(level)


def _set_environment(values: Dict[str, Optional[str]]) -> None:
    """Set each variable, or remove it where the value is None."""
    for k, v in values.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def store_first_paint(paths: Sequence[str], data: Optional[str], base: Path) -> str:
    """The start page's first paint (what a new session sees while the server still imports torch,
    :mod:`precal.dashboard.backend.first_paint`), so that even the server's first start shows it.
    The app's start page stores it itself when it runs at its defaults: it is run here once,
    headless (Streamlit's ``AppTest``), with exactly the code a server runs."""
    from streamlit.testing.v1 import AppTest

    from precal.dashboard.launcher import APP_PATH

    with _as_the_server_runs(paths, data, base):
        at = AppTest.from_file(str(APP_PATH), default_timeout=FIRST_PAINT_TIMEOUT_S).run()
        stored = first_paint.load(settings.DashboardArgs(tuple(str(p) for p in paths), data, None, None))
    if at.exception or stored is None:
        problem = at.exception[0].message if at.exception else "the start page did not run at its defaults"
        return f"no first paint stored ({problem.splitlines()[0][:200] if problem else 'an error'})"
    return "the start page's first paint (what a new session sees while the server starts)"


def _fill(w: PairWork, methods: Sequence[str], severities: Sequence[int], sweep: bool, folders: Dict[str, Path],
          bar: tqdm) -> str:
    start = time.perf_counter()
    label = f"{w.pair.name} · {w.split}"
    bar.set_description(f"{label}: split")
    splits: SplitBatches = split_batches(w.pair, w.data, w.split)
    mtime = data_mtime(w.data_path)  # one stamp for every key of this pair's caches
    parts = prediction_parts(w.data_path, mtime, w.split)
    preds: Dict[str, Predictions] = {}
    for view in predicted_views(w.views):
        bar.set_description(f"{label}: predictions {view.checkpoint.name} cal={'on' if view.calibration else 'off'}")
        preds[view.key] = cached_predict(view, splits.batch_for(view.checkpoint), parts, folders["predictions"])
        bar.update(1)
    done = [f"{len(preds)} predictions"]
    gated = w.gated
    if gated is not None:
        post = preds[gated.key]
        pre_preds = next(preds[v.key] for v in predicted_views(w.views)
                         if v.checkpoint is gated.checkpoint and not v.calibration)
        for space in w.spaces:
            pre, post_x = pre_post_features(space, post, pre_preds)
            key = projection_key(w.pair.fingerprint(gated.checkpoint), w.split, space)
            for method in methods:
                bar.set_description(f"{label}: {method} of {space}")
                split_projection(folders["projections"], key, pre, post_x, method)
                bar.update(1)
        done.append(f"{len(w.spaces) * len(methods)} maps ({', '.join(methods)})")
        bar.set_description(f"{label}: the start page's example")

        def predict(view: ModelView, batch, variant: str) -> Predictions:
            parts = prediction_parts(w.data_path, mtime, w.split, variant)
            return cached_predict(view, batch, parts, folders["predictions"])

        prepared_example(w.views, splits, example_modality(w.pair, stored_effect(w.pair)), predict=predict)
        bar.update(1)
        done.append("the start page's example")
    else:
        done.append("no maps (no model whose gates act)")
    if not sweep:
        done.append("no sweep (--no-sweep)")
    elif w.stored_sweep is not None:
        done.append(f"no sweep: the page shows the stored {w.stored_sweep.parent.name}/{w.stored_sweep.name}")
    elif not w.corruptions:
        done.append("no sweep (no corruption applies)")
    else:
        bar.set_description(f"{label}: robustness sweep")
        total = sweep_levels(w, severities)
        shown = 0

        def tick(fraction: float, _text: str) -> None:
            nonlocal shown
            now = min(total, round(fraction * total))
            bar.update(now - shown)
            shown = now

        schema = w.pair.primary.schema
        page_sweep(w.views, splits, schema, w.data_path, schema.modality_names, w.corruptions, severities,
                   folders["sweeps"], progress=tick)
        bar.update(total - shown)
        done.append(f"a sweep ({', '.join(w.corruptions)} at severities {', '.join(map(str, severities))})")
    return (f"{w.pair.name}: {w.split} split of {w.data_path} ({splits.size} samples): "
            + ", ".join(done) + f" in {time.perf_counter() - start:.1f} s")
