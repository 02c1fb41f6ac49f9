"""Bounds on everything precal reads from a file or a command line, checked before anything is built.

Why this module exists: a few hostile or careless bytes (``"fusion_layers": 1000000000``,
``"step_shape": [1e12]``, a 200k-deep nested JSON, a 1.7 MB zip that declares 1.7 GB of arrays) must
cost a one-line error, not a hang, a MemoryError or a traceback. Every value from outside passes
one of the checks below, whose messages name the field, so the user knows what to fix.

The budgets are far above what the shipped data sets and models use (a checkpoint's config.json is
~10 kB, the largest model ~0.3 M parameters, the largest sample data set ~80 MB of arrays), and far
below what would exhaust a laptop.
"""

from __future__ import annotations

import json
import math
import numbers
import operator
from pathlib import Path
from typing import Any, Optional, Type

MAX_JSON_BYTES = 8 * 1024 * 1024
"""Largest config.json / dataset.json / metrics.json / history.json precal reads."""
MAX_PARAMETERS = 200_000_000
"""Largest model a config may describe (about 0.8 GB of float32 weights, ~3 GB to train)."""
MAX_WIDTH = 8192
"""Largest dim, shared_dim or head_hidden of a model."""
MAX_FUSION_LAYERS = 64
MAX_MODALITIES = 64
MAX_CLASSES = 100_000
MAX_STEP_VALUES = 1 << 22
"""Values in one time step of a modality (a 2048 x 2048 frame)."""
MAX_STEP_DIMS = 4
MAX_LENGTH = 1 << 16
"""Most steps a preprocessing length may ask for."""
MAX_SAMPLE_VALUES = 1 << 25
"""Most values one preprocessed sample of one modality may hold (length x values per step: 128 MB)."""
MAX_DATA_BYTES = 4 * 1024 ** 3
"""Most bytes the arrays of a data set may declare (what loading it would allocate)."""
MAX_COMPRESSION_RATIO = 100
"""Arrays declaring more than this many times the npz file's size (once past
:data:`RATIO_FLOOR_BYTES`) are refused: real sensor data compresses 1-6x, a zip bomb 1000x."""
RATIO_FLOOR_BYTES = 64 * 1024 * 1024
MAX_NPZ_MEMBERS = 1024
MAX_SAMPLES = 10_000_000
MAX_THREADS = 1024


def check_int(value: Any, field: str, lo: Optional[int] = None, hi: Optional[int] = None) -> int:
    """An integer (not a bool, not a float) within [lo, hi]; the error names ``field``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{field} must be an integer, got {_show(value)}")
    value = operator.index(value)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ValueError(f"{field} must be {_range(lo, hi)}, got {value}")
    return value


def check_number(value: Any, field: str, lo: Optional[float] = None, hi: Optional[float] = None,
                 hi_open: bool = False, lo_open: bool = False) -> float:
    """A finite real number within the bounds (open where asked); the error names ``field``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{field} must be a number, got {_show(value)}")
    value = float(value)
    low_bad = lo is not None and (value <= lo if lo_open else value < lo)
    high_bad = hi is not None and (value >= hi if hi_open else value > hi)
    if not math.isfinite(value) or low_bad or high_bad:
        if lo is not None and hi is not None and not lo_open and not hi_open:
            raise ValueError(f"{field} must be between {lo:g} and {hi:g}, got {value:g}")
        lo_text = "" if lo is None else f"{'>' if lo_open else '>='} {lo:g}"
        hi_text = "" if hi is None else f"{'<' if hi_open else '<='} {hi:g}"
        bounds = " and ".join(t for t in (lo_text, hi_text) if t) or "finite"
        raise ValueError(f"{field} must be {bounds}, got {value:g}")
    return value


def check_probability(value: Any, field: str) -> float:
    """A per-sample probability: a number in [0, 1]."""
    return check_number(value, field, 0.0, 1.0)


def check_bool(value: Any, field: str) -> bool:
    """A JSON boolean: ``"no"``, ``0`` or ``"false"`` are refused rather than read as true or false."""
    if not isinstance(value, bool):
        raise ValueError(f"{field} must be true or false (a JSON boolean), got {_show(value)}")
    return value


def check_str(value: Any, field: str, max_len: int = 10_000) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{field} must be a string, got {_show(value)}")
    if len(value) > max_len:
        raise ValueError(f"{field} is {len(value)} characters long; at most {max_len} are allowed")
    return value


def check_str_list(value: Any, field: str, max_items: int) -> list:
    """A list of strings (a single string is refused: it would be read letter by letter)."""
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"{field} must be a list of strings, got {_show(value)}")
    if len(value) > max_items:
        raise ValueError(f"{field} has {len(value)} entries; at most {max_items} are allowed")
    for i, v in enumerate(value):
        check_str(v, f"{field}[{i}]")
    return list(value)


def check_object(value: Any, field: str) -> dict:
    if not isinstance(value, dict):
        raise ValueError(f"{field} must be a JSON object, got {_show(value)}")
    return value


def read_json(path: Path, what: str, error: Type[Exception] = ValueError,
              max_bytes: Optional[int] = None) -> Any:
    """Parse a JSON file of at most ``max_bytes`` (default :data:`MAX_JSON_BYTES`); a file too large,
    not text, not JSON or nested too deep is one ``error`` naming it."""
    limit = MAX_JSON_BYTES if max_bytes is None else max_bytes
    try:
        size = path.stat().st_size
        if size > limit:
            raise error(f"{what} {path} is {size / 1e6:.1f} MB; precal reads JSON files of at most "
                        f"{limit / 1e6:.0f} MB")
        with open(path, "rb") as fh:
            raw = fh.read(limit + 1)
        if len(raw) > limit:  # grew since stat (or a special file)
            raise error(f"{what} {path} is larger than {limit / 1e6:.0f} MB")
        return json.loads(raw.decode("utf-8"))
    except json.JSONDecodeError as exc:
        raise error(f"{what} {path} is not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    except UnicodeDecodeError as exc:
        raise error(f"{what} {path} is not text (not UTF-8)") from exc
    except RecursionError as exc:
        raise error(f"{what} {path} is nested too deeply to be a precal file") from exc
    except OSError as exc:
        raise error(f"{what} {path} cannot be read: {exc.strerror or exc}") from exc


def _range(lo: Optional[int], hi: Optional[int]) -> str:
    if lo is not None and hi is not None:
        return f"between {lo} and {hi}"
    return f">= {lo}" if lo is not None else f"<= {hi}"


def _show(value: Any) -> str:
    """A short, plain rendering of a bad value for an error line (no numpy reprs, no huge dumps)."""
    if isinstance(value, str):
        text = repr(value)
    elif isinstance(value, (list, tuple, dict)):
        text = f"a {'list' if isinstance(value, (list, tuple)) else 'JSON object'}"
    elif value is None:
        text = "null"
    elif isinstance(value, bool):
        text = "true" if value else "false"
    else:
        text = str(value.item() if hasattr(value, "item") else value)
    return text if len(text) <= 60 else text[:57] + "..."
