"""Your own fusion model in precal: load it from a factory and give it the interface precal's tools use.

A researcher's model is any ``torch.nn.Module`` that holds at least one
:class:`~precal.calibration.PreFusionCalibrator` and has

    forward(inputs: Dict[str, Tensor], padding_mask: Dict[str, Tensor] | None = None,
            present: Dict[str, Tensor] | None = None) -> Tensor | Dict[str, Tensor]

taking the batches precal's collate makes (``inputs[m]`` of shape (B, T, *step_shape), (B, F) for a
vector modality; ``padding_mask[m]`` (B, T) True for real steps; ``present[m]`` (B,) False where the
modality is missing) and returning logits (B, C) (or (B,) / (B, 1) for regression), or a dict with
``"logits"`` and optionally ``"features"`` (the fused representation, for the embeddings page).

It is built by a factory named on the command line, ``FILE.py:NAME`` or ``package.module:NAME``,
called with the data set's :class:`~precal.data.schema.DatasetSchema`. Loading a user's Python file
is the user's explicit act: only the command line does it, never an uploaded or stored file.

:class:`OwnModel` wraps such a module so that evaluation, the robustness sweep, training and the
dashboard treat it like precal's own models: the calibration report is taken from the *same*
forward pass by a hook on the calibrator (nothing is recomputed), ``calibration(False)`` switches
every calibrator in the module off for the uncalibrated view, and ``encode``/``fuse`` exist with
the identity as "encoder" (an own model cannot be split at its calibrator from outside, so an
analysis that varies one modality runs the whole model again; the results are the same).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Mapping, Optional, Tuple

import torch
from torch import Tensor, nn

from precal.calibration import CalibrationReport, PreFusionCalibrator
from precal.data.batch import Batch
from precal.data.schema import DatasetSchema

_SPEC = re.compile(r"^(?P<module>[^:]+):(?P<name>[A-Za-z_][A-Za-z0-9_]*)$")


class OwnModelError(ValueError):
    """A factory or model that precal cannot use; the message names the problem in one line."""


@dataclass(frozen=True)
class FactorySpec:
    """Where a model factory lives: a Python file or an importable module, and the callable's name."""

    module: str
    name: str

    @classmethod
    def parse(cls, text: str) -> "FactorySpec":
        match = _SPEC.match(text.strip())
        if not match:
            raise OwnModelError(f"--model expects FILE.py:NAME or package.module:NAME, got {text!r}")
        return cls(match["module"], match["name"])

    @property
    def is_file(self) -> bool:
        return self.module.endswith(".py")

    def __str__(self) -> str:
        return f"{self.module}:{self.name}"

    def source_digest(self) -> Optional[str]:
        """SHA-256 of the factory's file, recorded with a checkpoint so a changed file is noticed."""
        if not self.is_file:
            return None
        return hashlib.sha256(Path(self.module).read_bytes()).hexdigest()


def load_factory(spec: FactorySpec) -> Callable[[DatasetSchema], nn.Module]:
    """Import the factory; every failure is one readable line."""
    if spec.is_file:
        path = Path(spec.module).expanduser()
        if not path.is_file():
            raise OwnModelError(f"--model: no such file {path}")
        module_name = f"precal_own_model_{hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]}"
        loader_spec = importlib.util.spec_from_file_location(module_name, path)
        if loader_spec is None or loader_spec.loader is None:
            raise OwnModelError(f"--model: cannot import {path}")
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[module_name] = module
        try:
            loader_spec.loader.exec_module(module)
        except Exception as exc:  # the user's file: report its error, do not hide it in a traceback
            del sys.modules[module_name]
            raise OwnModelError(f"--model: importing {path} failed: {type(exc).__name__}: {exc}") from exc
    else:
        try:
            module = importlib.import_module(spec.module)
        except Exception as exc:
            raise OwnModelError(f"--model: importing {spec.module} failed: {type(exc).__name__}: {exc}") from exc
    factory = getattr(module, spec.name, None)
    if not callable(factory):
        raise OwnModelError(f"--model: {spec.module} has no callable {spec.name!r}")
    return factory


def find_calibrators(module: nn.Module) -> List[Tuple[str, PreFusionCalibrator]]:
    return [(name, m) for name, m in module.named_modules() if isinstance(m, PreFusionCalibrator)]


def build_own_model(spec: FactorySpec | str, schema: DatasetSchema) -> "OwnModel":
    """Call the factory with the schema and wrap what it returns."""
    spec = FactorySpec.parse(spec) if isinstance(spec, str) else spec
    factory = load_factory(spec)
    try:
        module = factory(schema)
    except Exception as exc:
        raise OwnModelError(f"--model: {spec} raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(module, nn.Module):
        raise OwnModelError(f"--model: {spec} returned {type(module).__name__}, not a torch.nn.Module")
    return OwnModel(module, schema, spec)


@dataclass
class OwnModelOutput:
    """The same fields as precal's ModelOutput: logits, fused representation, calibration report."""

    logits: Tensor
    fused: Tensor
    report: CalibrationReport
    unimodal_logits: Dict[str, Tensor]


class OwnModel(nn.Module):
    """A user's module behind the interface of :class:`precal.models.MultimodalModel`."""

    def __init__(self, module: nn.Module, schema: DatasetSchema, spec: Optional[FactorySpec] = None) -> None:
        super().__init__()
        calibrators = find_calibrators(module)
        if not calibrators:
            raise OwnModelError("the model holds no PreFusionCalibrator: put one between your encoders and your "
                                "fusion (see the README, 'Your own model')")
        self.net = module
        self.schema = schema
        self.spec = spec
        self.calibrator_path, self.calibrator = calibrators[0]
        self.modalities: List[str] = [n for n in self.calibrator.names if n in schema.modality_names] or \
            list(self.calibrator.names)
        unknown = [n for n in self.calibrator.names if n not in schema.modality_names]
        if unknown:
            raise OwnModelError(f"the model's calibrator has modality {unknown[0]!r}, which the data set does not "
                                f"have ({', '.join(schema.modality_names)})")
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
        self._reports.clear()
        padding = {k: v for k, v in masks.items() if v is not None}
        out = self.net(dict(feats), padding_mask=padding or None, present=dict(present))
        if not self._reports:
            raise OwnModelError("the model's forward did not call its PreFusionCalibrator")
        report = self._reports[0]
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
        if features is None:  # the calibrated summaries stand in for a fused representation
            features = torch.cat([report.summaries_after[n] for n in report.modalities], dim=1)
        return logits, features.reshape(features.shape[0], -1)

    @contextlib.contextmanager
    def calibration(self, enabled: bool) -> Iterator["OwnModel"]:
        """Switch every calibrator of the module on/off with the same weights."""
        calibrators = [c for _, c in find_calibrators(self.net)]
        previous = [c.enabled for c in calibrators]
        for c in calibrators:
            c.enabled = enabled
        try:
            yield self
        finally:
            for c, p in zip(calibrators, previous):
                c.enabled = p

    def fit_derived_inputs(self, *_args: object, **_kwargs: object) -> None:
        """Own models compute their own derived inputs, if any."""

    def parameter_counts(self) -> Dict[str, int]:
        total = sum(p.numel() for p in self.net.parameters())
        calibrator = sum(p.numel() for p in self.calibrator.parameters())
        return {"model without calibrator": total - calibrator, "calibrator": calibrator}
