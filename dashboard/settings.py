"""Where the dashboard looks and what it was asked to open: the project folder, the cache folder,
the environment variables the launcher sets, and the app's own arguments.

Standard library only: the launcher imports this before anything heavy.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import List, Mapping, Optional, Sequence, Tuple

_CHECKOUT = Path(__file__).resolve().parent.parent
IN_CHECKOUT = (_CHECKOUT / "pyproject.toml").is_file()
"""Whether the app runs from a source checkout (else from an installed package, which has no
``checkpoints/`` or ``sample_data/`` of its own)."""
ROOT = _CHECKOUT if IN_CHECKOUT else Path.cwd()
"""Where ``checkpoints/`` (opened when no checkpoint is named) and ``sample_data/`` are looked for:
the checkout, else the working directory."""
ENV_CACHE = "PRECAL_CACHE_DIR"
CACHE_DIR = (Path(os.environ[ENV_CACHE]).expanduser() if os.environ.get(ENV_CACHE)
             else ROOT / ".cache" / "precal" if IN_CHECKOUT
             else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "precal")
"""On-disk caches (projections, predictions, sweeps, first paints): ``PRECAL_CACHE_DIR`` if set, else
gitignored in a checkout, else the user's cache folder."""
CACHE_KINDS = ("predictions", "projections", "sweeps", "first_paint")
"""The folders of :data:`CACHE_DIR`: a split's predictions, its 2-D maps, computed robustness sweeps, the
start page as a new session first sees it (:mod:`precal.dashboard.backend.first_paint`)."""


def cache_folder(kind: str) -> Path:
    """``CACHE_DIR/kind``, read when called (tests point ``CACHE_DIR`` elsewhere): the pages and
    ``precal precompute`` name the same folders through this."""
    if kind not in CACHE_KINDS:
        raise ValueError(f"unknown cache {kind!r}; one of {', '.join(CACHE_KINDS)}")
    return CACHE_DIR / kind


ENV_CHECKPOINTS = "PRECAL_CHECKPOINTS"
ENV_DATA = "PRECAL_DATA"
ENV_MODEL = "PRECAL_MODEL"
"""Your own model's factory (``FILE.py:NAME``), what ``precal dashboard --model`` names."""
ENV_WEIGHTS = "PRECAL_WEIGHTS"
"""Its weights (a safetensors file) when it is opened without a checkpoint (``--weights``)."""
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
"""The largest checkpoint archive the app accepts (Streamlit's upload limit is set from it)."""
UMAP_WARM_UP_DELAY_S = 15.0
"""How long after the first page the dashboard starts compiling UMAP (see ``ui.background``)."""


@dataclass(frozen=True)
class DashboardArgs:
    """What to open: explicit checkpoint folders (empty: every loadable folder in ``checkpoints/``)
    and an optional data folder (a data set, or a folder of data sets such as ``sample_data/``).

    ``model`` is the factory of your own model (``--model``): the named checkpoints of an own
    model load with it, and without checkpoints the model itself is opened on ``data`` (with
    ``weights``, else as the factory builds it) instead of the shipped checkpoints."""

    checkpoints: Tuple[str, ...] = ()
    data: Optional[str] = None
    model: Optional[str] = None
    weights: Optional[str] = None


def parse_dashboard_args(argv: Sequence[str], environ: Mapping[str, str] = os.environ) -> DashboardArgs:
    """Arguments after ``--`` on the ``streamlit run`` line win; else ``PRECAL_CHECKPOINTS``
    (``os.pathsep``-separated) and ``PRECAL_DATA`` (what the launcher also sets, and what tests use)."""
    checkpoints: List[str] = []
    single: dict = {}
    it = iter(argv)
    for arg in it:
        option, sep, value = arg.partition("=")
        if option not in ("--checkpoint", "--data", "--model", "--weights"):
            continue
        if not sep:
            value = next(it, None)
            if value is None:
                raise ValueError(f"{arg} needs a value")
        if option == "--checkpoint":
            checkpoints.append(value)
        else:
            single[option[2:]] = value
    if not checkpoints:
        checkpoints = [p for p in environ.get(ENV_CHECKPOINTS, "").split(os.pathsep) if p.strip()]
    if not any(k in single for k in ("model", "weights")):  # the command line names the model, or the environment
        single.update(model=environ.get(ENV_MODEL) or None, weights=environ.get(ENV_WEIGHTS) or None)
    data = single.get("data") or environ.get(ENV_DATA) or None
    return DashboardArgs(tuple(checkpoints), data, single.get("model"), single.get("weights"))
