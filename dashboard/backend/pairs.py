"""Checkpoints side by side: loading them, pairing calibrated with uncalibrated, and the views
(a checkpoint with its calibrator on or off) that the pages show in columns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from precal.checkpoint import CONFIG_FILE, Checkpoint, load_checkpoint
from precal.dashboard.settings import ROOT
from precal.errors import USER_ERRORS, error_line
from precal.models.model import CALIBRATED, UNCALIBRATED, role_name

REFERENCE_TRAINED = "trained baseline"


REFERENCE_SWITCHED_OFF = "calibrator switched off"


@dataclass(frozen=True)
class LoadProblem:
    """A checkpoint or data folder that could not be opened, with a one-line reason."""

    path: str
    message: str


def default_checkpoint_dirs(root: Path = ROOT) -> List[Path]:
    """Every folder in ``<root>/checkpoints`` that looks like a checkpoint (has a config.json)."""
    folder = root / "checkpoints"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and (p / CONFIG_FILE).is_file()
                  and not p.name.startswith("."))


def load_checkpoints(paths: Sequence[str | Path], load: Callable[[str], Checkpoint] = load_checkpoint
                     ) -> Tuple[List[Checkpoint], List[LoadProblem]]:
    """Load each folder (with ``load``: the app passes its cached loader); a failure becomes a
    :class:`LoadProblem` instead of stopping the others. A folder named twice is loaded once."""
    loaded: List[Checkpoint] = []
    problems: List[LoadProblem] = []
    seen: set = set()
    for p in paths:
        try:
            ckpt = load(str(Path(p).expanduser().resolve()))
        except USER_ERRORS as exc:
            problems.append(LoadProblem(str(p), error_line(exc)))
            continue
        key = ckpt.path.resolve()
        if key not in seen:
            seen.add(key)
            loaded.append(ckpt)
    return loaded, problems


_SUFFIX = re.compile(r"^(?P<base>.+?)[_\-]cal(?P<flag>on|off)$")


def _group_key(ckpt: Checkpoint) -> str:
    m = _SUFFIX.match(ckpt.name)
    if m:
        return m.group("base")
    return f"{ckpt.schema.name}_{ckpt.config.backbone}"


@dataclass
class ModelPair:
    """The calibrated and uncalibrated checkpoint of one data set + backbone (either may be None)."""

    key: str
    calibrated: Optional[Checkpoint] = None
    uncalibrated: Optional[Checkpoint] = None
    _fingerprints: Dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def checkpoints(self) -> List[Checkpoint]:
        return [c for c in (self.calibrated, self.uncalibrated) if c is not None]

    @property
    def primary(self) -> Checkpoint:
        """The checkpoint whose schema, data and splits the pages use."""
        return self.checkpoints[0]

    @property
    def dataset(self) -> str:
        return self.primary.schema.name

    @property
    def backbone(self) -> str:
        return self.primary.config.backbone

    @property
    def label(self) -> str:
        parts = []
        if self.calibrated is not None:
            parts.append("calibrated")
        if self.uncalibrated is not None:
            parts.append("uncalibrated")
        return f"{self.dataset} · {self.backbone} backbone ({' + '.join(parts)})"

    def fingerprint(self, ckpt: Checkpoint) -> str:
        key = str(ckpt.path)
        if key not in self._fingerprints:
            self._fingerprints[key] = ckpt.fingerprint
        return self._fingerprints[key]

    @property
    def cache_key(self) -> str:
        """Identifies the weights of every checkpoint in the pair (for caches)."""
        return "-".join(self.fingerprint(c) for c in self.checkpoints)

    def reference_options(self) -> List[str]:
        """How the uncalibrated column can be produced for this pair."""
        options = []
        if self.uncalibrated is not None:
            options.append(REFERENCE_TRAINED)
        if self.calibrated is not None:
            options.append(REFERENCE_SWITCHED_OFF)
        return options

    def views(self, reference: Optional[str] = None) -> List["ModelView"]:
        """The models shown side by side: calibrated first, then the uncalibrated reference."""
        out: List[ModelView] = []
        if self.calibrated is not None:
            out.append(ModelView(CALIBRATED, self.calibrated, True, f"calibrated ({self.calibrated.name})"))
        options = self.reference_options()
        ref = reference if reference in options else (options[0] if options else None)
        if ref == REFERENCE_TRAINED and self.uncalibrated is not None:
            out.append(ModelView(UNCALIBRATED, self.uncalibrated, False, f"uncalibrated ({self.uncalibrated.name})"))
        elif ref == REFERENCE_SWITCHED_OFF and self.calibrated is not None:
            out.append(ModelView(UNCALIBRATED, self.calibrated, False,
                                 f"calibrator off (same weights as {self.calibrated.name})"))
        return out


@dataclass(frozen=True)
class ModelView:
    """One model as shown in a column: a checkpoint and the runtime calibrator switch."""

    role: str
    checkpoint: Checkpoint
    calibration: bool
    label: str

    @property
    def key(self) -> str:
        return f"{self.checkpoint.path}|{'on' if self.calibration else 'off'}"


def pair_checkpoints(ckpts: Sequence[Checkpoint]) -> List[ModelPair]:
    """Group checkpoints into calibrated/uncalibrated pairs.

    Folders named ``<name>_calon`` / ``<name>_caloff`` pair by ``<name>``; others by data set and
    backbone. A second checkpoint of the same role starts a pair of its own (named after its folder).
    """
    pairs: Dict[str, ModelPair] = {}
    for c in ckpts:
        role = role_name(c.config.calibration)
        key = _group_key(c)
        pair = pairs.get(key)
        if pair is not None and getattr(pair, role) is not None:
            key = c.name
            pair = pairs.get(key)
        if pair is None:
            pair = pairs[key] = ModelPair(key)
        setattr(pair, role, c)
    return sorted(pairs.values(), key=lambda p: p.key)
