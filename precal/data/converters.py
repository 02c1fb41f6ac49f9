"""Registry of raw-data converters, so ``precal convert NAME SRC OUT`` has one place to look."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict

from precal.data.avletters import convert_avletters
from precal.data.mmsa import TRUST_FLAG, convert_mmsa
from precal.data.utd_mhad import convert_utd_mhad
from precal.safe_write import DATASET, write_folder_with

Converter = Callable[..., Path]

CONVERTERS: Dict[str, Converter] = {
    "utd-mhad": convert_utd_mhad,
    "avletters": convert_avletters,
    "mmsa": convert_mmsa,
}
READS_PICKLES = {"mmsa"}
"""Converters whose source is a Python pickle: they run only when the caller trusts the file
(``trusted=True``, on the command line ``--trust-pickle``), and then unpickle numpy arrays only."""


def convert(name: str, src: Path | str, out: Path | str, overwrite: bool = False, option: str = "",
            trusted: bool = False) -> Path:
    """Run the converter registered as ``name`` on ``src``, writing ``out``; returns ``out``.

    ``utd_mhad`` is accepted for ``utd-mhad`` (and case is ignored) because folder names use
    underscores and users type what they see. An unknown name raises ValueError listing the known
    ones, instead of a bare KeyError. ``out`` is checked before the conversion starts: an existing
    folder is replaced only if it is a precal data set and ``overwrite`` is set, and never if it is
    (or holds) ``src`` or the working directory (see :mod:`precal.safe_write`).
    """
    key = name.strip().lower().replace("_", "-")
    if key not in CONVERTERS:
        raise ValueError(f"unknown converter {name!r}; known converters: {', '.join(sorted(CONVERTERS))}")
    if trusted and key not in READS_PICKLES:
        raise ValueError(f"{TRUST_FLAG} applies only to a converter that reads pickles ({', '.join(sorted(READS_PICKLES))})")
    options = {"trusted": trusted} if key in READS_PICKLES else {}
    return write_folder_with(Path(out), DATASET, lambda path: CONVERTERS[key](Path(src), path, **options), overwrite,
                             inputs=[src], option=option)
