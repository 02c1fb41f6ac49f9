"""Encoders, fusion backbones and the model that joins them around the calibrator.

The model's names are imported on first use, so that the torch-free settings
(:mod:`precal.models.config`) can be read without importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["BACKBONES", "ModelConfig", "ModelOutput", "MultimodalModel"]
_HOME = {"BACKBONES": "precal.models.config", "ModelConfig": "precal.models.config",
         "ModelOutput": "precal.models.model", "MultimodalModel": "precal.models.model"}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'precal.models' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOME[name]), name)
