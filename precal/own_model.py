"""Your own fusion model in precal: load it from a factory and give it the interface precal's tools use.

A researcher's model is any ``torch.nn.Module`` that holds at least one
:class:`~precal.calibration.PreFusionCalibrator` and has

    forward(inputs: Dict[str, Tensor], padding_mask: Dict[str, Tensor] | None = None,
            present: Dict[str, Tensor] | None = None) -> Tensor | Dict[str, Tensor]

taking the batches precal's collate makes (``inputs[m]`` of shape (B, T, *step_shape), (B, F) for a
vector modality; ``padding_mask[m]`` (B, T) True for real steps; ``present[m]`` (B,) False where the
modality is missing, its values zeros then) and returning logits (B, C) (or (B,) / (B, 1) for
regression), or a dict with ``"logits"`` and optionally ``"features"`` (the fused representation,
for the embeddings page).

It is built by a factory named on the command line, ``FILE.py:NAME`` or ``package.module:NAME``,
called with the data set's :class:`~precal.data.schema.DatasetSchema`. Loading a user's Python file
is the user's explicit act: only the command line does it (``--model``), never a stored or uploaded
file; a checkpoint records the factory's name and the file's SHA-256, not its code.

:class:`OwnModel` wraps such a module so that evaluation, the robustness sweep, training and the
dashboard treat it like precal's own models:

- the calibration report is taken from the *same* forward pass by a hook on the calibrator
  (nothing is recomputed); with several calibrators, the first in module order is reported;
- ``calibration(False)`` switches every calibrator of the module off (same weights, gates 1), the
  uncalibrated view;
- ``encode``/``fuse`` exist with the identity as "encoder": an own model cannot be split at its
  calibrator from outside, so an analysis that varies one modality runs the whole model again
  (the results are the same; only precal's own models save the encoder pass).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Tuple

import torch
from torch import Tensor, nn

from precal.calibration import CalibrationReport, PreFusionCalibrator
from precal.data.batch import Batch
from precal.data.schema import DatasetSchema

_SPEC = re.compile(r"^(?P<module>[^:]+):(?P<name>[A-Za-z_][A-Za-z0-9_]*)$")
_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


class OwnModelError(ValueError):
    """A factory or model that precal cannot use; the message names the problem in one line."""


@dataclass(frozen=True)
class FactorySpec:
    """Where a model factory lives: a Python file or an importable module, and the callable's name."""

    module: str
    name: str

    @classmethod
    def parse(cls, text: str) -> "FactorySpec":
        match = _SPEC.match(str(text).strip())
        if not match or not (match["module"].endswith(".py") or _MODULE.match(match["module"])):
            raise OwnModelError(f"--model expects FILE.py:NAME or package.module:NAME, got {str(text)[:200]!r}")
        return cls(match["module"], match["name"])

    @property
    def is_file(self) -> bool:
        return self.module.endswith(".py")

    @property
    def short(self) -> str:
        """The factory without its folder (``my_model.py:build``): what tables and labels show."""
        return f"{Path(self.module).name}:{self.name}" if self.is_file else str(self)

    def same_factory(self, other: "FactorySpec") -> bool:
        """Whether two specs name the same factory: the same callable in a file of the same name (the
        folder may differ: a checkpoint is loaded from another working directory), or in the same module."""
        if self.is_file != other.is_file or self.name != other.name:
            return False
        return Path(self.module).name == Path(other.module).name if self.is_file else self.module == other.module

    def __str__(self) -> str:
        return f"{self.module}:{self.name}"


def file_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _importable(folder: Path) -> None:
    """Let the user's code import what lies beside it, as ``python my_model.py`` would (its folder;
    for a module name, the working directory, as ``python -m`` would)."""
    where = str(folder.resolve())
    if where not in sys.path:
        sys.path.insert(0, where)


def load_factory(spec: FactorySpec) -> Tuple[Callable[[DatasetSchema], nn.Module], Optional[str]]:
    """Import the factory and return it with the SHA-256 of the file it came from (None when the
    module has no file); every failure is one readable line."""
    if spec.is_file:
        path = Path(spec.module).expanduser()
        if not path.is_file():
            raise OwnModelError(f"--model: no such file {path}")
        _importable(path.parent)
        digest = file_digest(path)
        # One module per file *content*: a file edited while the process runs is imported afresh.
        module_name = f"precal_own_model_{hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:10]}_{digest[:10]}"
        module = sys.modules.get(module_name)
        if module is None:
            loader_spec = importlib.util.spec_from_file_location(module_name, path)
            if loader_spec is None or loader_spec.loader is None:
                raise OwnModelError(f"--model: cannot import {path}")
            module = importlib.util.module_from_spec(loader_spec)
            sys.modules[module_name] = module
            writes = sys.dont_write_bytecode
            sys.dont_write_bytecode = True  # no __pycache__ in the user's folder: nothing written unasked
            try:
                loader_spec.loader.exec_module(module)
            except Exception as exc:  # the user's file: report its error in one line
                del sys.modules[module_name]
                raise OwnModelError(f"--model: importing {path} failed: {type(exc).__name__}: {exc}") from exc
            finally:
                sys.dont_write_bytecode = writes
    else:
        _importable(Path.cwd())
        try:
            module = importlib.import_module(spec.module)
        except Exception as exc:
            raise OwnModelError(f"--model: importing {spec.module} failed: {type(exc).__name__}: {exc}") from exc
        source = getattr(module, "__file__", None)
        digest = file_digest(Path(source)) if source and Path(source).is_file() else None
    factory = getattr(module, spec.name, None)
    if not callable(factory):
        raise OwnModelError(f"--model: {spec.module} has no callable {spec.name!r}")
    return factory, digest


def find_calibrators(module: nn.Module) -> List[Tuple[str, PreFusionCalibrator]]:
    return [(name, m) for name, m in module.named_modules() if isinstance(m, PreFusionCalibrator)]


def build_own_model(spec: FactorySpec | str, schema: DatasetSchema, seed: int = 0,
                    calibration: bool = True) -> "OwnModel":
    """Call the factory with the schema and wrap what it returns.

    The factory runs under a fixed seed (``seed``, without touching the caller's random state), so
    that a model without trained weights is the same model every time it is built."""
    spec = FactorySpec.parse(spec) if isinstance(spec, str) else spec
    factory, digest = load_factory(spec)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            module = factory(schema)
        except Exception as exc:
            raise OwnModelError(f"--model: {spec} raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(module, nn.Module):
        raise OwnModelError(f"--model: {spec} returned {type(module).__name__}, not a torch.nn.Module")
    model = OwnModel(module, schema, spec, digest)
    model.set_calibration(calibration)
    return model


@dataclass
class OwnModelConfig:
    """The few architecture facts precal's tools read from a model config (``backbone`` names the
    factory); the architecture itself is the user's code."""

    backbone: str
    calibration: bool = True
    modalities: List[str] = field(default_factory=list)
    velocity: List[str] = field(default_factory=list)  # precal's derived inputs: never for an own model
    norms: Dict[str, str] = field(default_factory=dict)

    def to_json(self) -> Dict[str, Any]:
        return asdict(self)


@dataclass
class OwnModelOutput:
    """The same fields as precal's ModelOutput: logits, fused representation, calibration report."""

    logits: Tensor
    fused: Tensor
    report: CalibrationReport
    unimodal_logits: Dict[str, Tensor]


class OwnModel(nn.Module):
    """A user's module behind the interface of :class:`precal.models.MultimodalModel`."""

    def __init__(self, module: nn.Module, schema: DatasetSchema, spec: Optional[FactorySpec] = None,
                 source_sha256: Optional[str] = None) -> None:
        super().__init__()
        calibrators = find_calibrators(module)
        if not calibrators:
            raise OwnModelError("the model holds no PreFusionCalibrator: put one between your encoders and your "
                                "fusion (see examples/own_model/README.md)")
        self.net = module
        self.spec = spec
        self.source_sha256 = source_sha256
        self.calibrator_path, self.calibrator = calibrators[0]
        names = list(self.calibrator.names)
        unknown = [n for n in names if n not in schema.modality_names]
        if unknown:
            raise OwnModelError(f"the model's calibrator has modality {unknown[0]!r}, which the data set does not "
                                f"have ({', '.join(schema.modality_names)})")
        left_out = [n for n in schema.modality_names if n not in names]
        if left_out:
            raise OwnModelError(f"the model's calibrator leaves out modality {left_out[0]!r}: build it with every "
                                f"modality of the schema it is given ({', '.join(schema.modality_names)})")
        self.modalities: List[str] = names  # the report's order: per-modality arrays follow it
        self.schema = schema.subset(names)
        self.config = OwnModelConfig(backbone=spec.short if spec else type(module).__name__,
                                     calibration=True, modalities=list(names))
        self.features_given: Optional[bool] = None  # known after the first forward pass
        self._reports: List[CalibrationReport] = []
        self.calibrator.register_forward_hook(self._keep_report)

    def _keep_report(self, _module: nn.Module, _inputs: tuple, output: tuple) -> None:
        self._reports.append(output[1])

    # --- the interface precal's tools use ----------------------------------------------------

    def forward(self, batch: Batch) -> OwnModelOutput:
        return self.fuse(*self.encode(batch))

    def encode(self, batch: Batch, only: Optional[List[str]] = None
               ) -> Tuple[Dict[str, Tensor], Dict[str, Optional[Tensor]], Dict[str, Tensor]]:
        """The identity "encoder": the inputs themselves (zeroed where absent), their masks and presence."""
        names = self.modalities if only is None else list(only)
        missing = [n for n in names if n not in batch.inputs]
        if missing:
            raise KeyError(f"batch lacks modality {missing[0]!r} (model expects {', '.join(names)})")
        feats, masks, present = {}, {}, {}
        for n in names:
            present[n] = batch.presence(n)
            x = batch.inputs[n]
            feats[n] = torch.where(present[n].reshape(-1, *([1] * (x.dim() - 1))), x, torch.zeros((), dtype=x.dtype))
            masks[n] = batch.padding_mask.get(n)
        return feats, masks, present

    def fuse(self, feats: Mapping[str, Tensor], masks: Mapping[str, Optional[Tensor]],
             present: Mapping[str, Tensor]) -> OwnModelOutput:
        """The whole user model on (identity-)encoded inputs, with the report of its calibrator."""
        self._reports.clear()
        padding = {k: v for k, v in masks.items() if v is not None}
        try:
            out = self.net(dict(feats), padding_mask=padding or None, present=dict(present))
            if not self._reports:
                raise OwnModelError("the model's forward did not call its PreFusionCalibrator "
                                    f"({self.calibrator_path or 'the module itself'})")
            report = self._reports[0]
        finally:
            self._reports.clear()
        logits, fused = self._outputs(out, report)
        return OwnModelOutput(logits, fused, report, {})

    def _outputs(self, out: object, report: CalibrationReport) -> Tuple[Tensor, Tensor]:
        features = None
        if isinstance(out, Mapping):
            if "logits" not in out:
                raise OwnModelError("the model returned a dict without 'logits'")
            logits, features = out["logits"], out.get("features")
        else:
            logits = out
        if not isinstance(logits, Tensor):
            raise OwnModelError(f"the model returned {type(logits).__name__}, not logits (a tensor)")
        if logits.dim() == 1:
            logits = logits.unsqueeze(1)
        expected = self.schema.num_classes
        if logits.dim() != 2 or logits.shape[1] != expected:
            raise OwnModelError(f"the model returned logits of shape {tuple(logits.shape)}; expected (batch, "
                                f"{expected}) for this data set")
        if features is not None and (not isinstance(features, Tensor) or features.shape[0] != logits.shape[0]):
            raise OwnModelError("the model's 'features' must be a tensor with one row per sample")
        self.features_given = features is not None
        if features is None:  # the calibrated summaries stand in for a fused representation
            features = torch.cat([report.summaries_after[n] for n in report.modalities], dim=1)
        return logits, features.reshape(features.shape[0], -1)

    def set_calibration(self, enabled: bool) -> None:
        """Switch every calibrator on or off for good (a model trained with ``--calibration off``)."""
        for _, c in find_calibrators(self.net):
            c.enabled = enabled
        self.config.calibration = enabled

    @contextlib.contextmanager
    def calibration(self, enabled: bool) -> Iterator["OwnModel"]:
        """Switch every calibrator of the module on/off with the same weights, for a while."""
        calibrators = [c for _, c in find_calibrators(self.net)]
        previous = [c.enabled for c in calibrators]
        for c in calibrators:
            c.enabled = enabled
        try:
            yield self
        finally:
            for c, p in zip(calibrators, previous):
                c.enabled = p

    @property
    def encoders(self) -> Mapping[str, nn.Module]:
        """The module's per-modality encoders when it keeps them in an ``encoders`` ModuleDict keyed
        by modality (training logs their gradient norms); else none."""
        found = getattr(self.net, "encoders", None)
        if isinstance(found, nn.ModuleDict) and all(n in found for n in self.modalities):
            return found
        return {}

    def fit_derived_inputs(self, *_args: object, **_kwargs: object) -> None:
        """Own models compute their own derived inputs, if any."""

    def parameter_counts(self) -> Dict[str, int]:
        total = sum(p.numel() for p in self.net.parameters())
        calibrator = sum(p.numel() for _, c in find_calibrators(self.net) for p in c.parameters())
        return {"model without calibrator": total - calibrator, "calibrator": calibrator}


def is_own_model(model: nn.Module) -> bool:
    return isinstance(model, OwnModel)
