"""Frames as small PNG images (data URLs): the lab's frame drawings and the exported report share
them, so a report shows the frames exactly as the page does.
"""

from __future__ import annotations

import base64
import io
from typing import Sequence

import numpy as np
from PIL import Image

VIRIDIS = ("#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89", "#35b779", "#6ece58", "#b5de2b",
           "#fde725")
"""Viridis at ten stops: the browser's legend uses Vega's viridis, the same map."""


def _lut(stops: Sequence[str]) -> np.ndarray:
    rgb = np.array([[int(h[i:i + 2], 16) for i in (1, 3, 5)] for h in stops], dtype=np.float64)
    grid = np.linspace(0.0, 1.0, len(stops))
    fine = np.linspace(0.0, 1.0, 256)
    return np.stack([np.interp(fine, grid, rgb[:, c]) for c in range(3)], axis=1).astype(np.uint8)


LUTS = {"viridis": _lut(VIRIDIS), "gray": _lut(("#000000", "#ffffff"))}


def frame_png(frame: np.ndarray, lo: float, hi: float, colours: str = "viridis") -> str:
    """One (H, W) frame as a PNG data URL, colour-mapped on [lo, hi]; NaN pixels are white."""
    span = (hi - lo) or 1.0
    level = np.clip((np.nan_to_num(frame, nan=lo) - lo) / span, 0.0, 1.0)
    rgb = LUTS[colours][np.round(level * 255).astype(np.uint8)]
    rgb[~np.isfinite(frame)] = 255
    buf = io.BytesIO()
    Image.fromarray(rgb, mode="RGB").save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
