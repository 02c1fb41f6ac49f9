"""Everything that defines a training run, in one place: each field's default, its help text and how
the command line spells it.

``precal train``'s options are built from these fields (:mod:`precal.cli`), the architecture fields
take their defaults from :class:`~precal.models.model.ModelConfig`, ``precal info`` and the dashboard
list a run's settings from the fields' ``summary`` mark, and ``precal train --config FILE`` reads a
JSON or TOML file of these fields (``experiments/recipes/`` holds the shipped recipes). The whole
config is stored in every checkpoint (``config.json``, ``training``).
"""

from __future__ import annotations

from dataclasses import MISSING, Field, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

from precal.models.config import BACKBONES, EVIDENCE_MODES, FRAME_ENCODERS, GATES, POINT_ENCODERS, ModelConfig

ALWAYS = "always"
WHEN_USED = "when used"
"""``summary`` marks: a setting listed with every run, or only when it differs from "off"."""

_MODEL = {f.name: f for f in fields(ModelConfig)}


def setting(help: str = "", default: Any = MISSING, *, factory: Any = MISSING, option: Optional[str] = None,
            form: str = "value", choices: Any = None, metavar: Optional[str] = None, example: str = "",
            summary: Optional[str] = None, cli: bool = True) -> Any:
    """A :class:`TrainConfig` field with what the command line and the summaries need to know.

    ``form``: how the option is typed: ``value`` (one value of the field's type), ``switch``
    (``on``/``off`` for a bool), ``list`` (several values after the option), ``repeat`` (the option
    repeated, one value each), ``pairs`` (repeated ``NAME=VALUE``; ``example`` shows one)."""
    meta = {"help": help, "option": option, "form": form, "choices": choices, "metavar": metavar,
            "example": example, "summary": summary, "cli": cli}
    if factory is not MISSING:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def model_setting(name: str, help: str = "", **kw: Any) -> Any:
    """A field that is also an architecture field: its default is :class:`ModelConfig`'s."""
    f = _MODEL[name]
    if f.default_factory is not MISSING:  # type: ignore[misc]
        return setting(help, factory=f.default_factory, **kw)  # type: ignore[misc]
    return setting(help, f.default, **kw)


@dataclass
class TrainConfig:
    """Everything that defines a training run (stored in the checkpoint)."""

    data: str = setting("data folder (precal format)")
    model: Optional[str] = setting(
        "your own model instead of precal's: a factory FILE.py:NAME or package.module:NAME, called with the data "
        "set's schema, that returns a torch.nn.Module holding a PreFusionCalibrator (see examples/own_model); the "
        "checkpoint records it and loads again only with the same --model", None, metavar="FACTORY",
        summary=WHEN_USED)
    backbone: str = model_setting("backbone", "fusion backbone", choices=BACKBONES)
    calibration: bool = model_setting("calibration", "the pre-fusion calibrator (off: the uncalibrated baseline)",
                                      form="switch")
    seed: int = setting("", 0, summary=ALWAYS)
    epochs: int = setting("", 40, summary=ALWAYS)
    batch_size: int = setting("", 32, summary=ALWAYS)
    lr: float = setting("", 3e-3, summary=ALWAYS)
    weight_decay: float = setting("", 1e-2)
    label_smoothing: float = setting("", 0.1, cli=False)
    modalities: List[str] = setting("train on a subset (e.g. a unimodal model)", factory=list, form="list")
    lengths: Dict[str, int] = setting("resample a modality to a fixed number of steps (repeatable)", factory=dict,
                                      option="--length", form="pairs", metavar="NAME=STEPS", example="depth=16",
                                      summary=ALWAYS)
    centre: Dict[str, str] = setting(
        "express a point-sequence modality relative to this point of its first step (e.g. skeleton=hip_center); "
        "removes where the subject stands", factory=dict, form="pairs", metavar="NAME=POINT",
        example="skeleton=hip_center", summary=ALWAYS)
    scale: Dict[str, str] = setting(
        "measure a point-sequence modality in units of the distance between two points of its first step "
        "(e.g. skeleton=hip_center:shoulder_center); removes body size", factory=dict, form="pairs",
        metavar="NAME=POINT:POINT", example="skeleton=hip_center:shoulder_center", summary=WHEN_USED)
    modality_dropout: float = setting(
        "per-sample probability of dropping one modality (same for calibrated and baseline)", 0.0, summary=ALWAYS)
    noise_augment: float = setting("per-sample probability of adding noise to one modality", 0.0, summary=ALWAYS)
    swap_augment: float = setting(
        "per-sample probability of swapping one modality with a different-class sample: the conflicts the gates "
        "learn to damp (the baseline sees the same swaps)", 0.2, summary=ALWAYS)
    recombine_augment: float = setting(
        "per-sample probability of exchanging one modality with a same-class sample (new combinations of "
        "subjects' styles; same for calibrated and baseline)", 0.0, summary=WHEN_USED)
    rotate_augment: Dict[str, float] = setting(
        "rotate the 3-vectors of a modality's steps (IMU axes, skeleton joints) by a random rotation of up to "
        "DEGREES per sample, in raw units (repeatable)", factory=dict, form="pairs", metavar="NAME=DEGREES",
        example="inertial=15", summary=WHEN_USED)
    shear_augment: Dict[str, float] = setting(
        "shear the 3-vectors of a modality's steps by a random matrix with ones on the diagonal and off-diagonal "
        "entries up to AMOUNT per sample, after any rotation (repeatable; e.g. skeleton=0.2)", factory=dict,
        form="pairs", metavar="NAME=AMOUNT", example="skeleton=0.2", summary=WHEN_USED)
    time_augment: float = setting(
        "per-sample probability of cutting up to 20% of the recording (start and end) and stretching the rest "
        "back, the same window for every modality", 0.0, summary=WHEN_USED)
    mixup: float = setting(
        "blend every sample with another of the batch, partner weight drawn from [0, W] (W <= 0.5), the same for "
        "all its modalities; the loss mixes the labels alike", 0.0, metavar="W", summary=WHEN_USED)
    aux_weight: float = setting("weight of the calibrator's prediction loss", 0.1, summary=ALWAYS)
    aux_loss: str = setting("objective of the calibrator's predictors (mse: regression, collapses the cues)",
                            "contrastive", choices=("contrastive", "mse"), summary=ALWAYS)
    gate_loss: float = setting(
        "weight of a ranking loss that puts the gate of a swapped-in modality below the clean ones' (needs "
        "--swap-augment; 0: off)", 0.0)
    unimodal_loss: float = setting(
        "weight of a per-encoder classification loss (side heads on each modality's summary; same for "
        "calibrated and baseline)", 0.0, summary=WHEN_USED)
    average_epochs: int = setting(
        "also consider the average of the weights of the last N epochs (BatchNorm statistics recomputed); "
        "validation picks it or the best single epoch", 0, metavar="N", summary=WHEN_USED)
    dim: int = model_setting("dim")
    shared_dim: int = model_setting("shared_dim")
    dropout: float = model_setting("dropout", "dropout of encoders, fusion and head")
    frame_encoder: str = model_setting(
        "frame_encoder", "trunk for frame sequences: motion-energy images, per-frame CNN + temporal conv, or the "
        "same with each frame's difference from the previous as a second channel", choices=FRAME_ENCODERS,
        summary=ALWAYS)
    point_encoder: str = model_setting(
        "point_encoder", "trunk for point sequences (skeletons): all coordinates as one series, or a joint graph "
        "with shared per-joint embedding, bone-initialised adjacency and temporal conv", choices=POINT_ENCODERS,
        summary=ALWAYS)
    cue_gradient: bool = model_setting(
        "cue_gradient", "off: the calibrator compares detached encoder summaries, so the cue objective does not "
        "shape the encoders", form="switch", summary=ALWAYS)
    gate: str = model_setting(
        "gate", "monotone: gates from the comparison with the other modalities, more support never lowers and "
        "more conflict never raises them; free: the same cues through unconstrained weights; self: the "
        "control, gates from the modality's own summary only", choices=tuple(GATES))
    evidence_margin: float = model_setting(
        "evidence_margin", "monotone gates: a cue within this many standard deviations of a typical training "
        "sample is no evidence", metavar="SD")
    evidence: Optional[str] = model_setting(
        "evidence", "monotone gates: absolute, each cue against a typical training sample; relative, that "
        "centred over the sample's modalities, so that only disagreeing more than the peers lowers a gate "
        "(with two modalities a disagreement then moves neither); learned, centred by a share per modality "
        "that training learns; capped, the same with a share of at most one half, so that a disagreement "
        "every modality shows still lowers the gates (the default for monotone gates; the other gates: "
        "absolute)", choices=EVIDENCE_MODES)
    typicality: bool = model_setting(
        "typicality", "monotone gates: also read how unlike its typical training samples each modality's own "
        "summary is (a more unusual summary never raises its gate): finds a modality drowned in noise that "
        "still agrees with the others", form="switch")
    velocity: List[str] = model_setting(
        "velocity", "the modality's encoder also sees each feature's change since the previous step "
        "(repeatable; e.g. skeleton)", form="repeat", metavar="NAME", summary=WHEN_USED)
    norms: Dict[str, str] = model_setting(
        "norms", "the modality's encoder also sees the physical length of column groups, inclusive ranges "
        "(repeatable; e.g. inertial=0-2,3-5 for |acc| and |gyro|)", form="pairs", metavar="NAME=RANGES",
        example="inertial=0-2,3-5", summary=WHEN_USED)
    train_split: str = setting(
        'split to train on; several joined by "+" (e.g. train+val, with --selection last)', "train")
    selection: str = setting(
        "keep the epoch with the best validation score, or the final epoch (a fixed budget)", "best",
        choices=("best", "last"))
    val_split: Optional[str] = setting(
        "split that validates every epoch; 'none' with --selection last: no validation split", "val", metavar="NAME")
    eval_splits: List[str] = setting("", factory=lambda: ["val", "test"], cli=False)
    threads: int = setting("torch threads (0: torch's default)", 0)

    def own_model_conflicts(self) -> List[str]:
        """The options of precal's own architecture that this config sets although it trains an own
        model (``model``), whose architecture is the user's code: each would be ignored without a word."""
        if not self.model:
            return []
        default = TrainConfig(data=self.data)
        return [option_name(f) for f in fields(self) if f.name in OWN_MODEL_IGNORES
                and getattr(self, f.name) != getattr(default, f.name)]

    def model_config(self) -> ModelConfig:
        # Derived inputs of modalities this model does not use (a unimodal run of a shared recipe) do not apply.
        used = (lambda n: n in self.modalities) if self.modalities else (lambda n: True)
        return ModelConfig(backbone=self.backbone, calibration=self.calibration, modalities=list(self.modalities),
                           dim=self.dim, shared_dim=self.shared_dim, dropout=self.dropout,
                           frame_encoder=self.frame_encoder, point_encoder=self.point_encoder,
                           cue_gradient=self.cue_gradient, gate=self.gate, evidence_margin=self.evidence_margin,
                           evidence=self.evidence, typicality=self.typicality,
                           unimodal_heads=self.unimodal_loss > 0,
                           velocity=[n for n in self.velocity if used(n)],
                           norms={n: v for n, v in self.norms.items() if used(n)})

    def to_json(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_mapping(cls, values: Dict[str, Any], source: str = "config") -> "TrainConfig":
        """A config from field names and JSON values (a ``--config`` file, or a checkpoint's record);
        an unknown field is refused with the known ones named."""
        if not isinstance(values, dict):
            raise ValueError(f"{source}: expected an object of training settings, got {type(values).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{source}: unknown setting {unknown[0][:60]!r}; known: {', '.join(sorted(known))}")
        if "data" not in values:
            raise ValueError(f"{source}: no data folder (set 'data', or pass --data)")
        return cls(**values)


TRUE_WORDS, FALSE_WORDS = ("1", "true", "on", "yes"), ("0", "false", "off", "no")


def parse_settings(items: List[str]) -> Dict[str, Any]:
    """``KEY=VALUE`` training settings (the benchmarks' and experiments' ``--set``), each parsed as its
    field's type, so that one spelling (``typicality=true``) means the same in every script. Refused,
    with the key named: an unknown key, a missing ``=``, a value that is not of the field's type or
    not among its choices (a misspelt ``typicality=ture`` must not silently train the default), and
    settings that take several values (lists and maps: give those in a ``--config`` file)."""
    defaults = TrainConfig(data="")
    out: Dict[str, Any] = {}
    for item in items:
        key, eq, value = item.partition("=")
        f = TrainConfig.__dataclass_fields__.get(key)
        if f is None:
            raise ValueError(f"unknown training setting {key!r}")
        if not eq:
            raise ValueError(f"training setting {key!r}: expected {key}=VALUE")
        default = getattr(defaults, key)
        if isinstance(default, (list, tuple, dict)):
            raise ValueError(f"training setting {key!r} takes several values; give it in a --config file")
        if isinstance(default, bool):
            if value.lower() not in TRUE_WORDS + FALSE_WORDS:
                raise ValueError(f"training setting {key!r}: expected true or false, got {value!r}")
            parsed: Any = value.lower() in TRUE_WORDS
        elif default is None or isinstance(default, str):  # an unset optional setting (e.g. evidence) takes a name
            parsed = value
        else:
            try:
                parsed = type(default)(value)
            except ValueError:
                raise ValueError(f"training setting {key!r}: expected a {type(default).__name__}, got {value!r}") \
                    from None
        choices = f.metadata.get("choices")
        if choices is not None and parsed not in choices:
            raise ValueError(f"training setting {key!r}: {value!r} is not one of {', '.join(map(str, choices))}")
        out[key] = parsed
    return out


OWN_MODEL_IGNORES = ("backbone", "dim", "shared_dim", "dropout", "frame_encoder", "point_encoder", "cue_gradient",
                     "gate", "evidence_margin", "evidence", "typicality", "velocity", "norms", "unimodal_loss")
"""Settings of precal's own architecture (and its side heads), which an own model does not have."""


def read_settings(path: Path | str) -> Dict[str, Any]:
    """The training settings in a JSON or TOML file (``.toml``; else JSON), as field name -> value."""
    from precal.limits import read_json

    path = Path(path)
    if path.suffix == ".toml":
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10
            raise ValueError(f"{path}: reading TOML needs Python 3.11 or later; write the config as JSON") from None
        try:
            with open(path, "rb") as fh:
                values = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{path} is not valid TOML: {exc}") from None
    else:
        values = read_json(path, "training config")
    if not isinstance(values, dict):
        raise ValueError(f"{path}: expected an object of training settings, got {type(values).__name__}")
    return values


def cli_fields() -> Iterator[Field]:
    """The fields ``precal train`` offers as options, in the order of its help."""
    return (f for f in fields(TrainConfig) if f.metadata.get("cli", True))


def option_name(f: Field) -> str:
    """The command-line spelling of a field (``batch_size`` -> ``--batch-size``)."""
    return f.metadata.get("option") or "--" + f.name.replace("_", "-")


def summary_fields(mark: str) -> List[str]:
    """The fields a run's summary lists ``always`` or ``when used``, in field order."""
    return [f.name for f in fields(TrainConfig) if f.metadata.get("summary") == mark]
