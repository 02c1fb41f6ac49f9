"""precal: pre-fusion calibration for multimodal models.

The calibrator compares each modality with the others at the summary level, turns support and
conflict cues into instance- and dimension-wise gates, and applies them to the original features
before fusion.

The public names are imported on first use (PEP 562), so ``import precal`` — and with it the
``precal`` command line, e.g. ``precal dashboard`` or ``precal --help`` — starts without paying
for torch's import (about two seconds here).
"""

from __future__ import annotations

import sys
from importlib.abc import MetaPathFinder
from importlib.util import spec_from_file_location
from pathlib import Path
from typing import Any

__version__ = "0.1.0"

__all__ = ["CalibrationReport", "ModalityFeatureSpec", "PreFusionCalibrator", "__version__"]


def __getattr__(name: str) -> Any:
    if name in ("CalibrationReport", "ModalityFeatureSpec", "PreFusionCalibrator"):
        from precal import calibration

        return getattr(calibration, name)
    raise AttributeError(f"module 'precal' has no attribute {name!r}")


class _CheckoutApp(MetaPathFinder):
    """``precal.dashboard`` in a source checkout: the app's folder ``dashboard/`` stands beside
    ``precal/`` (an installation puts it inside, as ``pyproject.toml`` maps it; so does an editable
    one, through its own finder). Consulted only when nothing else finds the app."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "precal.dashboard":
            return None
        return spec_from_file_location(name, self.folder / "__init__.py", submodule_search_locations=[str(self.folder)])


_app = Path(__file__).resolve().parent.parent / "dashboard"
if not (Path(__file__).resolve().parent / "dashboard").is_dir() and (_app / "__init__.py").is_file():
    sys.meta_path.append(_CheckoutApp(_app))
