"""What a model is, as data: the architecture settings every checkpoint stores, their choices and
the role names, without importing torch.

Why a module of its own: the command line builds every option from these settings (through
:class:`~precal.training.config.TrainConfig`), and ``precal dashboard`` or ``precal --help`` should not
pay torch's import (about a second) to print help or to start a server that imports it anyway.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from precal.limits import (MAX_FUSION_LAYERS, MAX_MODALITIES, MAX_WIDTH, check_bool, check_int, check_number,
                           check_object, check_str, check_str_list)

FUSION_LAYOUT: Dict[str, str] = {"sequence": "token", "conv": "channel", "late": "token", "score": "token"}
"""Which calibrator layout each backbone feeds (late fusion: (B, D) vectors, i.e. token layout)."""

BACKBONES = tuple(FUSION_LAYOUT)

FRAME_ENCODERS = ("motion", "frames", "frame-diffs")
"""Trunks for frame sequences (see :mod:`precal.models.encoders`)."""
POINT_ENCODERS = ("series", "joints")
"""Trunks for point sequences (skeletons)."""

GATES: Dict[str, Tuple[str, str]] = {
    "monotone": ("monotone", "peers"),
    "free": ("free", "peers"),
    "self": ("monotone", "self"),
}
"""Gate variants -> the calibrator's (direction, source). monotone: the calibrator, evidence from the
comparison with the other modalities through sign-constrained weights (the default); free: the same
comparison through unconstrained weights on raw cues (checkpoints written before the direction
contract); self: the control, gates from the modality's own summary only."""

EVIDENCE_MODES = ("absolute", "relative", "learned", "capped")
"""How a monotone calibrator measures evidence: against the training reference (absolute), that
centred over the sample's modalities (relative), or centred by a learned share (learned; capped: a
learned share of at most one half). The same
names as
:data:`precal.calibration.EVIDENCE_MODES` (this module stays free of torch)."""

DEFAULT_EVIDENCE = "capped"
"""What a calibrator with monotone gates measures evidence by unless told: centring by a learned
share of at most one half. Learned centring was chosen on the inner folds, where it kept more accuracy
under corruption than absolute evidence on both data sets and both backbones at level clean accuracy
(docs/results/gates.md, "Centred evidence"); capping its share keeps that (level with learned on the
inner folds) and keeps the gates seeing a conflict that every modality shows, which a share near 1
hides: on two pre-extracted feature vectors the late and decision-level backbones learned shares
up to 0.99 and their gates no longer flagged a swap (docs/results/gates.md, "Capped centring"). The other gates measure it absolutely: centring compares
the peers' cues, which they do not read. (A model with its calibrator off gets the same mode, so
that both have the same parameters.)"""


def default_evidence(gate: str) -> str:
    """The evidence mode a model with these gates gets when its config does not name one."""
    return DEFAULT_EVIDENCE if gate == "monotone" else "absolute"


CALIBRATED = "calibrated"
UNCALIBRATED = "uncalibrated"
ROLES = (CALIBRATED, UNCALIBRATED)
"""The role of a model beside its counterpart, named by its calibrator switch (``calibration``): the
word tables (a ``role`` column), the dashboard's columns and the checkpoint folders' ``_calon`` /
``_caloff`` suffixes all stand for."""


def role_name(calibration: bool) -> str:
    """``calibrated`` for a model run with its calibrator on, ``uncalibrated`` with it off."""
    return CALIBRATED if calibration else UNCALIBRATED


@dataclass
class ModelConfig:
    """Architecture hyper-parameters; stored as JSON in every checkpoint."""

    backbone: str = "sequence"
    calibration: bool = True
    modalities: List[str] = field(default_factory=list)  # empty: every modality of the schema
    dim: int = 64
    shared_dim: int = 16
    fusion_layers: int = 2
    heads: int = 4
    head_hidden: int = 128
    dropout: float = 0.1
    instance_gate: bool = True
    dimension_gate: bool = True
    frame_encoder: str = "motion"  # trunk for frame sequences: one of FRAME_ENCODERS (see encoders)
    point_encoder: str = "series"  # trunk for point sequences (skeletons): one of POINT_ENCODERS
    cue_gradient: bool = True  # False: the calibrator reads detached encoder summaries (see calibration)
    gate: str = "monotone"  # one of GATES: how the calibrator turns what it sees into gates
    evidence_margin: float = 0.0  # evidence within this many sd of typical counts as none (monotone gates)
    evidence: Optional[str] = None  # one of EVIDENCE_MODES; None: default_evidence (capped for the calibrator)
    typicality: bool = False  # monotone gates also read each summary's atypicality (precal.typicality)
    unimodal_heads: bool = False  # one linear classifier per encoder summary, for a training-time loss
    velocity: List[str] = field(default_factory=list)  # modalities whose encoder also sees step-to-step change
    norms: Dict[str, str] = field(default_factory=dict)  # modality -> column groups whose lengths it also sees

    def __post_init__(self) -> None:
        # Every field is checked before a single tensor is built: a config is read from files.
        if self.evidence is None:
            self.evidence = default_evidence(self.gate)
        for name in ("backbone", "frame_encoder", "point_encoder", "gate", "evidence"):
            check_str(getattr(self, name), f"model config {name}", 100)
        for name in ("calibration", "instance_gate", "dimension_gate", "cue_gradient", "unimodal_heads", "typicality"):
            check_bool(getattr(self, name), f"model config {name}")
        for name, lo, hi in (("dim", 1, MAX_WIDTH), ("shared_dim", 1, MAX_WIDTH), ("head_hidden", 1, MAX_WIDTH),
                             ("fusion_layers", 1, MAX_FUSION_LAYERS), ("heads", 1, MAX_WIDTH)):
            check_int(getattr(self, name), f"model config {name}", lo, hi)
        check_number(self.dropout, "model config dropout", 0.0, 1.0, hi_open=True)
        check_number(self.evidence_margin, "model config evidence_margin", 0.0, 10.0)
        check_str_list(self.modalities, "model config modalities", MAX_MODALITIES)
        check_str_list(self.velocity, "model config velocity", MAX_MODALITIES)
        for k, v in check_object(self.norms, "model config norms").items():
            check_str(v, f"model config norms[{k[:60]!r}]", 1000)
        if self.backbone == "sequence" and self.dim % self.heads:
            raise ValueError(f"model config heads ({self.heads}) must divide dim ({self.dim}): the attention "
                             "splits dim evenly across heads")
        if self.backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {self.backbone!r}; choose one of {', '.join(BACKBONES)}")
        if self.frame_encoder not in FRAME_ENCODERS:
            raise ValueError(f"unknown frame encoder {self.frame_encoder!r}; choose one of {', '.join(FRAME_ENCODERS)}")
        if self.gate not in GATES:
            raise ValueError(f"unknown gate {self.gate!r}; choose one of {', '.join(GATES)}")
        if self.evidence not in EVIDENCE_MODES:
            raise ValueError(f"unknown evidence {self.evidence!r}; choose one of {', '.join(EVIDENCE_MODES)}")
        if self.evidence != "absolute" and self.gate != "monotone":
            raise ValueError(f"centred evidence ({self.evidence}) compares the modalities' cues: it needs --gate "
                             "monotone")
        if self.typicality and self.gate != "monotone":
            raise ValueError("the atypicality cue (typicality) is evidence for --gate monotone")
        if self.point_encoder not in POINT_ENCODERS:
            raise ValueError(f"unknown point encoder {self.point_encoder!r}; choose one of {', '.join(POINT_ENCODERS)}")

    def to_json(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> "ModelConfig":
        known = {f for f in cls.__dataclass_fields__}
        # Defaults of configs written before a field existed: the per-frame trunk, the free gate,
        # absolute evidence (also for an empty evidence field: the weights were made without centring).
        d = {"frame_encoder": "frames", "gate": "free", **d}
        if d.get("evidence") is None:
            d["evidence"] = "absolute"
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"model config has unknown fields: {', '.join(sorted(unknown))[:200]}")
        return cls(**d)
