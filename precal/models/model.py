"""One model class for every backbone: encoders -> calibrator -> fusion -> head.

Calibration on/off is a config flag (and a runtime switch, :meth:`MultimodalModel.calibration`),
not a different class: a calibrated checkpoint can always be shown beside its own "calibration off"
behaviour with the same weights, and a baseline checkpoint has exactly the same architecture minus
the effect of the (unused) calibrator.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field, replace
from typing import Any, Dict, Iterator, List, Optional, Tuple

import torch
from torch import Tensor, nn

from precal import limits
from precal.calibration import CalibrationReport, ModalityFeatureSpec, PreFusionCalibrator, masked_mean
from precal.data.batch import Batch
from precal.data.schema import DatasetSchema, ModalitySchema, unknown_modality_message
from precal.data.skeleton import skeleton_bones
from precal.models.derived import DerivedInputs, WithDerivedInputs, check_derived, parse_column_groups
from precal.models.config import (BACKBONES, CALIBRATED, FRAME_ENCODERS, FUSION_LAYOUT, GATES,  # noqa: F401
                                  POINT_ENCODERS, ROLES, UNCALIBRATED, ModelConfig, role_name)
from precal.models.encoders import build_encoder
from precal.models.fusion import ClassificationHead, ConvFusion, LateFusion, ScoreFusion, TransformerFusion


def check_model_size(schema: DatasetSchema, config: ModelConfig, limit: Optional[int] = None) -> int:
    """Count the parameters ``config`` would build on ``schema`` without allocating them (the model
    is built on PyTorch's meta device) and refuse more than ``limit`` (default
    :data:`~precal.limits.MAX_PARAMETERS`), naming the fields that make it large."""
    limit = limits.MAX_PARAMETERS if limit is None else limit
    with torch.device("meta"):
        model = MultimodalModel(schema, replace(config, modalities=list(config.modalities)), _size_checked=True)
    counts = model.parameter_counts()
    total = sum(counts.values())
    if total > limit:
        part = max(counts, key=counts.get)
        names = {"encoders": ["dim"], "calibrator": ["shared_dim", "dim"], "head": ["head_hidden", "dim"],
                 "fusion": ["dim", "fusion_layers"] if config.backbone == "sequence" else ["dim"]}[part]
        fields = " or ".join(f"{n} ({getattr(config, n)})" for n in names)
        if part == "encoders":
            fields += " or the modalities' step_shape"
        raise ValueError(f"model config describes {total / 1e6:,.0f} M parameters (limit {limit / 1e6:,.0f} M), "
                         f"most in the {part}: reduce {fields}")
    return total


@dataclass
class ModelOutput:
    """Prediction and everything the UI and analysis need from the *same* forward pass."""

    logits: Tensor  # (B, classes) or (B, 1) for regression
    fused: Tensor  # (B, F) the representation fed to the head
    report: CalibrationReport
    unimodal_logits: Dict[str, Tensor] = field(default_factory=dict)  # side heads, in training only


class MultimodalModel(nn.Module):
    """Encoders -> pre-fusion calibrator -> fusion backbone -> head, ``Dict[str, Tensor]`` between."""

    def __init__(self, schema: DatasetSchema, config: ModelConfig, *, _size_checked: bool = False) -> None:
        super().__init__()
        names = list(config.modalities) or schema.modality_names
        for n in names:
            if n not in schema.modality_names:
                raise ValueError(unknown_modality_message(n, schema.modality_names))
        if not _size_checked:
            check_model_size(schema, config)
        config.modalities = names
        self.schema = schema.subset(names)
        self.config = config
        self.modalities = names
        self.layout = FUSION_LAYOUT[config.backbone]
        bones = skeleton_bones(schema.extra.get("joint_names", []))
        for n in [*config.velocity, *config.norms]:
            if n not in names:
                raise ValueError("derived inputs: " + unknown_modality_message(n, names))
        self.encoders = nn.ModuleDict({n: self._build_encoder(schema.modality(n), config, bones) for n in names})
        self.calibrator = PreFusionCalibrator(
            [ModalityFeatureSpec(n, config.dim, self.layout) for n in names],
            shared_dim=config.shared_dim, enabled=config.calibration,
            instance_gate=config.instance_gate, dimension_gate=config.dimension_gate,
            cue_gradient=config.cue_gradient, direction=GATES[config.gate][0], source=GATES[config.gate][1],
            evidence_margin=config.evidence_margin, evidence=config.evidence, typicality=config.typicality,
        )
        if config.backbone == "sequence":
            self.fusion: nn.Module = TransformerFusion(names, config.dim, config.fusion_layers, config.heads,
                                                       config.dropout)
        elif config.backbone == "conv":
            self.fusion = ConvFusion(names, config.dim, dropout=config.dropout)
        elif config.backbone == "score":
            self.fusion = ScoreFusion(names, config.dim, schema.num_classes, config.head_hidden, config.dropout)
        else:
            self.fusion = LateFusion(names, config.dim)
        # The score backbone's experts are its head: the fused scores are the prediction.
        self.head = (nn.Identity() if config.backbone == "score" else
                     ClassificationHead(self.fusion.out_dim, config.head_hidden, schema.num_classes, config.dropout))
        # Training-only side heads (precal train --unimodal-loss): they make every encoder learn to
        # classify on its own, against the fused model's habit of leaning on its strongest modality.
        # The prediction never uses them. The score backbone needs none: its experts play that part.
        self.unimodal_heads = nn.ModuleDict(
            {n: nn.Linear(config.dim, schema.num_classes) for n in names}
            if config.unimodal_heads and config.backbone != "score" else {})

    @staticmethod
    def _build_encoder(spec: ModalitySchema, config: ModelConfig, bones: List[Tuple[int, int]]) -> nn.Module:
        """The modality's trunk, behind its derived input channels when the config asks for any."""
        velocity = spec.name in config.velocity
        norms = parse_column_groups(config.norms[spec.name]) if spec.name in config.norms else []
        if not velocity and not norms:
            return build_encoder(spec, config.dim, config.dropout, config.frame_encoder, config.point_encoder, bones)
        check_derived(spec.name, spec.kind, spec.step_shape, velocity, norms)
        derived = DerivedInputs(spec.step_shape, velocity, norms)
        trunk = build_encoder(replace(spec, step_shape=derived.out_step_shape), config.dim, config.dropout,
                              config.frame_encoder, config.point_encoder, bones)
        return WithDerivedInputs(derived, trunk)

    def fit_derived_inputs(self, batch: Batch, input_mean: Dict[str, Any], input_std: Dict[str, Any]) -> None:
        """Fit the statistics of every derived input channel on ``batch`` (the un-augmented training
        split); ``input_mean``/``input_std`` are the preprocessing statistics of each modality."""
        for n, encoder in self.encoders.items():
            if isinstance(encoder, WithDerivedInputs):
                encoder.derived.fit(batch.inputs[n], batch.padding_mask.get(n), batch.presence(n),
                                    torch.as_tensor(input_mean[n]), torch.as_tensor(input_std[n]))

    def encode(self, batch: Batch, only: Optional[List[str]] = None
               ) -> Tuple[Dict[str, Tensor], Dict[str, Optional[Tensor]], Dict[str, Tensor]]:
        """Run the encoders and convert to the backbone's layout: features, masks, presence.

        ``only`` restricts encoding to some modalities (analyses that change one modality reuse
        the others' features)."""
        names = self.modalities if only is None else list(only)
        missing = [n for n in names if n not in batch.inputs]
        if missing:
            raise KeyError(f"batch lacks modality {missing[0]!r} (model expects {', '.join(names)}); "
                           "mark a missing modality with present=False instead of leaving it out")
        feats: Dict[str, Tensor] = {}
        masks: Dict[str, Optional[Tensor]] = {}
        present: Dict[str, Tensor] = {}
        for n in names:
            present[n] = batch.presence(n)
            x = batch.inputs[n]
            # Absent rows may hold anything (zeros, stale values, NaN): replace them, so that
            # nothing of an absent modality can reach the calibrator or the fusion.
            x = torch.where(present[n].reshape(-1, *([1] * (x.dim() - 1))), x, torch.zeros((), dtype=x.dtype))
            y, mask = self.encoders[n](x, batch.padding_mask.get(n))
            if self.config.backbone in ("sequence", "score"):
                if y.dim() == 5:  # frames: pool space, keep time as tokens
                    y = y.mean(dim=(3, 4))
                y = y.transpose(1, 2) if y.dim() == 3 else y.unsqueeze(1)  # (B, T, D)
            elif self.config.backbone == "late":
                y = masked_mean(y, "channel", mask) if y.dim() > 2 else y
                mask = None
            feats[n], masks[n] = y, mask
        return feats, masks, present

    def forward(self, batch: Batch) -> ModelOutput:
        return self.fuse(*self.encode(batch))

    def fuse(self, feats: Dict[str, Tensor], masks: Dict[str, Optional[Tensor]],
             present: Dict[str, Tensor]) -> ModelOutput:
        """Calibrator -> fusion -> head on encoded features. Split from :meth:`encode` so that
        analyses varying only presence (unimodal probes, removal) reuse one encoder pass."""
        calibrated, report = self.calibrator(feats, {k: v for k, v in masks.items() if v is not None}, present)
        # Computed inside forward (not by the trainer) so that distributed training syncs their gradients.
        if isinstance(self.fusion, ScoreFusion):
            experts = self.fusion.expert_logits(calibrated, masks)
            fused = self.fusion.combine(experts, present)
            side = experts if self.training else {}
        else:
            fused = self.fusion(calibrated, masks, present)
            side = ({n: head(report.summaries_before[n]) for n, head in self.unimodal_heads.items()}
                    if self.training else {})
        return ModelOutput(self.head(fused), fused, report, side)

    @contextlib.contextmanager
    def calibration(self, enabled: bool) -> Iterator["MultimodalModel"]:
        """Temporarily switch the calibrator on/off with the same weights."""
        previous = self.calibrator.enabled
        self.calibrator.enabled = enabled
        try:
            yield self
        finally:
            self.calibrator.enabled = previous

    def parameter_counts(self) -> Dict[str, int]:
        """Parameters per part (encoders, calibrator, fusion, head)."""
        def count(m: nn.Module) -> int:
            return sum(p.numel() for p in m.parameters())

        fusion, head = count(self.fusion), count(self.head)
        if isinstance(self.fusion, ScoreFusion):  # its experts are the head; nothing else fuses
            fusion, head = 0, fusion
        return {"encoders": count(self.encoders), "calibrator": count(self.calibrator),
                "fusion": fusion, "head": head}
