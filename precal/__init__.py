"""precal: pre-fusion calibration for multimodal models.

The calibrator compares each modality with the others at the summary level, turns support and
conflict cues into instance- and dimension-wise gates, and applies them to the original features
before fusion.

The public names are imported on first use (PEP 562), so ``import precal`` — and with it the
``precal`` command line, e.g. ``precal dashboard`` or ``precal --help`` — starts without paying
for torch's import (about two seconds here).
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["CalibrationReport", "ModalityFeatureSpec", "PreFusionCalibrator", "__version__"]


def __getattr__(name: str) -> Any:
    if name in ("CalibrationReport", "ModalityFeatureSpec", "PreFusionCalibrator"):
        from precal import calibration

        return getattr(calibration, name)
    raise AttributeError(f"module 'precal' has no attribute {name!r}")
