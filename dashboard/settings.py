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
CACHE_DIR = (ROOT / ".cache" / "precal" if IN_CHECKOUT
             else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "precal")
"""On-disk caches (projections, predictions): gitignored in a checkout, the user's cache folder otherwise."""
ENV_CHECKPOINTS = "PRECAL_CHECKPOINTS"
ENV_DATA = "PRECAL_DATA"
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
"""The largest checkpoint archive the app accepts (Streamlit's upload limit is set from it)."""
UMAP_WARM_UP_DELAY_S = 15.0
"""How long after the first page the dashboard starts compiling UMAP (see ``ui.background``)."""


@dataclass(frozen=True)
class DashboardArgs:
    """What to open: explicit checkpoint folders (empty: every loadable folder in ``checkpoints/``)
    and an optional data folder (a data set, or a folder of data sets such as ``sample_data/``)."""

    checkpoints: Tuple[str, ...] = ()
    data: Optional[str] = None


def parse_dashboard_args(argv: Sequence[str], environ: Mapping[str, str] = os.environ) -> DashboardArgs:
    """Arguments after ``--`` on the ``streamlit run`` line win; else ``PRECAL_CHECKPOINTS``
    (``os.pathsep``-separated) and ``PRECAL_DATA`` (what the launcher also sets, and what tests use)."""
    checkpoints: List[str] = []
    data: Optional[str] = None
    it = iter(argv)
    for arg in it:
        if arg in ("--checkpoint", "--data"):
            value = next(it, None)
            if value is None:
                raise ValueError(f"{arg} needs a value")
            if arg == "--checkpoint":
                checkpoints.append(value)
            else:
                data = value
        elif arg.startswith("--checkpoint="):
            checkpoints.append(arg.split("=", 1)[1])
        elif arg.startswith("--data="):
            data = arg.split("=", 1)[1]
    if not checkpoints:
        checkpoints = [p for p in environ.get(ENV_CHECKPOINTS, "").split(os.pathsep) if p.strip()]
    if data is None:
        data = environ.get(ENV_DATA) or None
    return DashboardArgs(tuple(checkpoints), data)
