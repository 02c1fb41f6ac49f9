"""Training: the run's settings (``config``), the loop with validation-based selection and a
per-epoch dynamics log (``loop``), their range checks (``checks``), augmentation (``augment``) and
weight averaging (``weight_average``).

The names are imported on first use: the command line reads the settings (torch-free) to build its
options for every command, and only ``precal train`` needs the loop and torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["TrainConfig", "TrainResult", "train"]
_HOME = {"TrainConfig": "precal.training.config", "TrainResult": "precal.training.loop",
         "train": "precal.training.loop"}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'precal.training' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOME[name]), name)
