"""Pre-fusion calibration: compare each modality with the others and gate its original features.

For every modality ``m`` the calibrator

1. summarises its features by a masked mean over every non-feature axis, ``s_m`` (B, D_m);
2. projects the summary into a shared space, ``u_m = LayerNorm(P_m s_m)`` (B, d);
3. attends over the *other present* modalities to form a context ``c_m`` and predicts from it what
   the others imply about ``m``: ``û_m = g_m(c_m)``;
4. extracts cues: support ``cos(u_m, û_m)``, conflict ``||u_m - û_m||^2 / d``, pairwise support
   ``cos(u_m, u_k)``, per-dimension agreement ``u_m * û_m`` and discrepancy ``|u_m - û_m|``;
5. turns cues into an instance gate ``alpha_m = 2 sigmoid(a_m(cues))`` (one scalar per sample) and
   a dimension gate ``beta_m = 2 sigmoid(B_m [agreement; discrepancy])`` (one value per channel);
6. returns ``x_m * alpha_m * beta_m`` broadcast over the non-feature axes, plus a report.

Why this shape: the gates act on the *original* features, so the fusion backbone and head are
unchanged (a plug-in), and the final layers of ``a_m`` and ``B_m`` start at zero so that the module
is exactly the identity at initialisation: a calibrated model starts as its baseline and only
departs from it where the cues earn it. Because ``a_m`` is linear in the cues, each alpha logit
splits *exactly* into per-cue contributions (which are also the exact Shapley values), which is
what answers "why was this modality suppressed?".

A modality with no present peer (a single-modality model, or every other modality missing for that
sample) has no context to be compared with: it is passed through unchanged (``alpha = beta = 1``),
its cues are reported as 0 and ``has_context`` is False. An absent modality is likewise passed
through (the fusion backbone masks it) and never enters another modality's context.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LAYOUTS = ("token", "channel")
"""token: features on the last axis, (B, D) / (B, T, D); channel: features on axis 1,
(B, C, T) / (B, C, H, W) / (B, C, T, H, W)."""


@dataclass(frozen=True)
class ModalityFeatureSpec:
    """What the calibrator needs to know about one modality's encoder output."""

    name: str
    dim: int
    layout: str = "token"

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(f"modality {self.name!r}: layout must be one of {LAYOUTS}, got {self.layout!r}")
        if self.dim < 1:
            raise ValueError(f"modality {self.name!r}: dim must be >= 1, got {self.dim}")


@dataclass
class CalibrationReport:
    """Everything the calibrator computed in the forward pass that produced the prediction.

    Shapes use B = batch, M = number of modalities (in ``modalities`` order), d = shared dim.
    """

    modalities: List[str]
    summaries_before: Dict[str, Tensor]  # (B, D_m) masked mean of the input features
    summaries_after: Dict[str, Tensor]  # (B, D_m) masked mean of the calibrated features
    shared: Dict[str, Tensor]  # (B, d) u_m
    predicted: Dict[str, Tensor]  # (B, d) û_m, what the others imply about m
    agreement: Dict[str, Tensor]  # (B, d) u_m * û_m
    discrepancy: Dict[str, Tensor]  # (B, d) |u_m - û_m|
    support: Tensor  # (B, M) cos(u_m, û_m)
    conflict: Tensor  # (B, M) ||u_m - û_m||^2 / d
    pairwise_support: Tensor  # (B, M, M) cos(u_m, u_k); 0 where either is absent
    context_weights: Tensor  # (B, M, M) attention of m (row) over k (column)
    alpha: Tensor  # (B, M) instance gate in (0, 2)
    alpha_logit: Tensor  # (B, M)
    contributions: Tensor  # (B, M, K) per-cue parts of alpha_logit; sum over K == alpha_logit
    contribution_names: List[str]  # K names: "baseline", "support", "conflict", "support from <k>"
    beta: Dict[str, Tensor]  # (B, D_m) dimension gate in (0, 2)
    present: Tensor  # (B, M) bool
    has_context: Tensor  # (B, M) bool: present and at least one other present modality
    enabled: bool = True

    def index(self, modality: str) -> int:
        return self.modalities.index(modality)

    def detach(self) -> "CalibrationReport":
        """A copy without autograd history (what the UI and the logs keep)."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Tensor):
                value = value.detach()
            elif isinstance(value, dict):
                value = {k: v.detach() for k, v in value.items()}
            out[f.name] = value
        return CalibrationReport(**out)


def masked_mean(x: Tensor, layout: str, mask: Optional[Tensor] = None) -> Tensor:
    """Mean over every non-feature axis, counting only valid positions: (B, D).

    ``mask`` (bool, True = valid) has shape (B, *leading non-feature axes): (B, T) for (B, T, D) or
    (B, C, T) / (B, C, T, H, W); it is broadcast over any trailing axes (e.g. the pixels of a
    frame). A sample with no valid position gets a zero summary, not NaN.
    """
    if layout == "channel":
        x = x.movedim(1, -1)
    b, d = x.shape[0], x.shape[-1]
    if x.dim() == 2 and mask is None:
        return x
    rest = x.shape[1:-1]
    if mask is None:
        return x.reshape(b, -1, d).mean(dim=1)
    if mask.shape[0] != b or tuple(mask.shape[1:]) != tuple(rest[: mask.dim() - 1]):
        raise ValueError(f"mask of shape {tuple(mask.shape)} does not match features {tuple(x.shape)}")
    w = mask.to(x.dtype)
    if len(rest) == 1:  # the common (B, T, D) case as one batched product: few ops matter at batch 1
        w = w / w.sum(dim=1, keepdim=True).clamp_min(1.0)
        return torch.bmm(w.unsqueeze(1), x).squeeze(1)
    w = w.reshape(*mask.shape, *([1] * (len(rest) - (mask.dim() - 1))))
    w = w.expand(b, *rest)
    total = (x * w.unsqueeze(-1)).reshape(b, -1, d).sum(dim=1)
    count = w.reshape(b, -1).sum(dim=1, keepdim=True).clamp_min(1.0)
    return total / count


def broadcast_gate(gate: Tensor, x: Tensor, layout: str) -> Tensor:
    """Reshape a (B, D) gate so it multiplies x of the given layout over its non-feature axes."""
    if layout == "token":
        return gate.reshape(gate.shape[0], *([1] * (x.dim() - 2)), gate.shape[1])
    return gate.reshape(gate.shape[0], gate.shape[1], *([1] * (x.dim() - 2)))


class PreFusionCalibrator(nn.Module):
    """Dict[str, Tensor] -> Dict[str, Tensor], shape-preserving, plus a :class:`CalibrationReport`.

    Args:
        modalities: one spec per modality (name, feature dim, layout).
        shared_dim: size d of the shared comparison space.
        enabled: False makes the module the identity with the same weights (the baseline).
        instance_gate / dimension_gate: switch either gate off (it is then fixed at 1), for ablations.
        cue_gradient: False compares *detached* summaries, so neither the cue objective nor the gates'
            dependence on the cues shapes the encoders: they learn from the task alone, as in the
            baseline, and the calibrator only reads them. The gated features still carry the task
            gradient to the encoders.
    """

    def __init__(self, modalities: Sequence[ModalityFeatureSpec], shared_dim: int = 16, *,
                 enabled: bool = True, instance_gate: bool = True, dimension_gate: bool = True,
                 cue_gradient: bool = True) -> None:
        super().__init__()
        if not modalities:
            raise ValueError("the calibrator needs at least one modality")
        names = [m.name for m in modalities]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate modality names: {names}")
        self.specs: Dict[str, ModalityFeatureSpec] = {m.name: m for m in modalities}
        self.names: List[str] = names
        self.shared_dim = shared_dim
        self.enabled = enabled
        self.instance_gate = instance_gate
        self.dimension_gate = dimension_gate
        self.cue_gradient = cue_gradient
        m_count = len(names)
        d = shared_dim
        self.project = nn.ModuleDict({m.name: nn.Linear(m.dim, d) for m in modalities})
        self.norm_weight = nn.Parameter(torch.ones(m_count, d))
        self.norm_bias = nn.Parameter(torch.zeros(m_count, d))
        self.query = nn.Linear(d, d, bias=False)
        self.key = nn.Linear(d, d, bias=False)
        # Per-modality predictors g_m (two-layer MLPs) stored as stacked weights so that all M of
        # them run as one batched contraction: the calibrator is many small ops, and at batch 1
        # their count, not their FLOPs, sets its latency.
        bound = 1.0 / math.sqrt(d)
        self.predictor_w1 = nn.Parameter(torch.empty(m_count, d, d).uniform_(-bound, bound))
        self.predictor_b1 = nn.Parameter(torch.empty(m_count, d).uniform_(-bound, bound))
        self.predictor_w2 = nn.Parameter(torch.empty(m_count, d, d).uniform_(-bound, bound))
        self.predictor_b2 = nn.Parameter(torch.empty(m_count, d).uniform_(-bound, bound))
        # Alpha head: per modality, linear in [support, conflict, pairwise support with each k].
        self.alpha_weight = nn.Parameter(torch.zeros(m_count, 2 + m_count))
        self.alpha_bias = nn.Parameter(torch.zeros(m_count))
        # Beta head: per-dimension agreement/discrepancy in the shared space, weighted per shared
        # dimension and mapped back to the modality's channels through the transpose of the
        # projection that built the shared space, plus a per-channel bias. This keeps the
        # calibrator at a few percent of the backbone's parameters (a dense 2d x D_m map would
        # dominate them) and ties "which channels" to the channels the comparison was made from.
        self.beta_agreement = nn.Parameter(torch.zeros(m_count, d))
        self.beta_discrepancy = nn.Parameter(torch.zeros(m_count, d))
        self.beta_bias = nn.ParameterDict({m.name: nn.Parameter(torch.zeros(m.dim)) for m in modalities})
        self.register_buffer("_not_self", ~torch.eye(m_count, dtype=torch.bool), persistent=False)

    @property
    def contribution_names(self) -> List[str]:
        return ["baseline", "support", "conflict"] + [f"support from {k}" for k in self.names]

    def forward(self, features: Mapping[str, Tensor], padding_mask: Optional[Mapping[str, Tensor]] = None,
                present: Optional[Mapping[str, Tensor]] = None) -> Tuple[Dict[str, Tensor], CalibrationReport]:
        self._check_inputs(features)
        padding_mask = padding_mask or {}
        ref = features[self.names[0]]
        b, device = ref.shape[0], ref.device
        pres = torch.stack([
            (present[n].to(device=device, dtype=torch.bool) if present is not None and n in present
             else torch.ones(b, dtype=torch.bool, device=device))
            for n in self.names
        ], dim=1)  # (B, M)

        summaries = {n: masked_mean(features[n], self.specs[n].layout, padding_mask.get(n)) for n in self.names}
        compared = summaries if self.cue_gradient else {n: s.detach() for n, s in summaries.items()}
        z = torch.stack([self.project[n](compared[n]) for n in self.names], dim=1)  # (B, M, d)
        u = F.layer_norm(z, (self.shared_dim,)) * self.norm_weight + self.norm_bias
        # An absent modality's values are arbitrary (even NaN): replace, never multiply by 0.
        u = torch.where(pres.unsqueeze(-1), u, torch.zeros_like(u))
        context, weights, peer_mask = self._context(u, pres)
        has_context = pres & peer_mask.any(dim=2)
        # All M predictors at once, modality-major: (M, B, d) @ (M, d, d).
        hidden = F.gelu(torch.baddbmm(self.predictor_b1.unsqueeze(1), context.transpose(0, 1), self.predictor_w1))
        u_hat = torch.baddbmm(self.predictor_b2.unsqueeze(1), hidden, self.predictor_w2).transpose(0, 1)

        valid = has_context.unsqueeze(-1).to(u.dtype)  # zero every cue without context
        unit = F.normalize(u, dim=-1, eps=1e-6)
        diff = u - u_hat
        support = (unit * F.normalize(u_hat, dim=-1, eps=1e-6)).sum(dim=-1) * valid[..., 0]
        conflict = diff.pow(2).mean(dim=-1) * valid[..., 0]
        pair_valid = (pres.unsqueeze(2) & pres.unsqueeze(1)).to(u.dtype)
        pairwise = torch.bmm(unit, unit.transpose(1, 2)) * pair_valid
        agreement = u * u_hat * valid
        discrepancy = diff.abs() * valid

        # Alpha: exact linear split into per-cue contributions.
        peer_support = pairwise * peer_mask.to(u.dtype)  # only other present modalities
        cues = torch.cat([support.unsqueeze(-1), conflict.unsqueeze(-1), peer_support], dim=-1)  # (B,M,2+M)
        parts = cues * self.alpha_weight.unsqueeze(0)
        baseline = self.alpha_bias.unsqueeze(0).expand(b, -1).unsqueeze(-1)
        contributions = torch.cat([baseline, parts], dim=-1) * valid
        alpha_logit = contributions.sum(dim=-1)
        gates_on = self.enabled and self.instance_gate
        alpha = 2.0 * torch.sigmoid(alpha_logit) if gates_on else torch.ones_like(alpha_logit)

        outputs: Dict[str, Tensor] = {}
        betas: Dict[str, Tensor] = {}
        after: Dict[str, Tensor] = {}
        shared_logit = agreement * self.beta_agreement + discrepancy * self.beta_discrepancy  # (B, M, d)
        for i, n in enumerate(self.names):
            if self.enabled and self.dimension_gate:
                beta_logit = shared_logit[:, i] @ self.project[n].weight + self.beta_bias[n]
                beta = 2.0 * torch.sigmoid(beta_logit * valid[:, i])
            else:
                beta = torch.ones_like(summaries[n])
            betas[n] = beta
            gate = alpha[:, i: i + 1] * beta  # (B, D_m)
            if self.enabled:
                outputs[n] = features[n] * broadcast_gate(gate, features[n], self.specs[n].layout)
                after[n] = summaries[n] * gate  # the masked mean is linear in a per-channel gate
            else:
                outputs[n] = features[n]
                after[n] = summaries[n]
        per_modality = lambda t: dict(zip(self.names, t.unbind(1)))  # noqa: E731  (one op, views)
        report = CalibrationReport(
            modalities=list(self.names),
            summaries_before=summaries,
            summaries_after=after,
            shared=per_modality(u),
            predicted=per_modality(u_hat),
            agreement=per_modality(agreement),
            discrepancy=per_modality(discrepancy),
            support=support,
            conflict=conflict,
            pairwise_support=pairwise,
            context_weights=weights,
            alpha=alpha,
            alpha_logit=alpha_logit,
            contributions=contributions,
            contribution_names=self.contribution_names,
            beta=betas,
            present=pres,
            has_context=has_context,
            enabled=self.enabled,
        )
        return outputs, report

    def _context(self, u: Tensor, present: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """Attention of each modality over the *other present* ones.

        Returns the context (B, M, d), the attention weights (B, M, M) and the peer mask
        (B, M, M): True where k != m and k is present. Rows without any peer get zero weights and a
        zero context (so no NaN from an all-masked softmax).
        """
        peer_mask = present.unsqueeze(1) & present.unsqueeze(2) & self._not_self  # (B, M, M)
        scores = torch.bmm(self.query(u), self.key(u).transpose(1, 2)) / math.sqrt(self.shared_dim)
        scores = scores.masked_fill(~peer_mask, float("-inf"))
        any_peer = peer_mask.any(dim=2, keepdim=True)
        weights = torch.softmax(scores.masked_fill(~any_peer, 0.0), dim=2) * any_peer
        weights = weights.masked_fill(~peer_mask, 0.0)
        context = torch.bmm(weights, u)
        return context, weights, peer_mask

    def _check_inputs(self, features: Mapping[str, Tensor]) -> None:
        unknown = [k for k in features if k not in self.specs]
        missing = [n for n in self.names if n not in features]
        if unknown:
            raise KeyError(f"unknown modality {unknown[0]!r}; the calibrator was built for: {', '.join(self.names)}")
        if missing:
            raise KeyError(f"missing modality {missing[0]!r}; pass it with present=False if it is absent")
        for n in self.names:
            x, spec = features[n], self.specs[n]
            axis = -1 if spec.layout == "token" else 1
            if x.dim() < 2 or x.shape[axis] != spec.dim:
                raise ValueError(
                    f"modality {n!r}: expected {spec.layout} layout with {spec.dim} features on axis "
                    f"{axis}, got shape {tuple(x.shape)}"
                )


def prediction_loss(report: CalibrationReport, valid: Optional[Tensor] = None) -> Tensor:
    """Mean squared error of g_m's prediction of u_m from the others (targets detached).

    ``valid`` (B, M) bool restricts which rows count (default: every row with context). Kept for
    comparison: with a regression target alone the cues collapse (the shared space shrinks to
    what every modality agrees on, support goes to 1 for every sample and the gates stop telling
    samples apart); :func:`contrastive_prediction_loss` is the training default.
    """
    rows = report.has_context if valid is None else valid & report.has_context
    losses = []
    for i, n in enumerate(report.modalities):
        err = ((report.predicted[n] - report.shared[n].detach()) ** 2).mean(dim=-1)
        losses.append(err * rows[:, i].to(err.dtype))
    stacked = torch.stack(losses, dim=1)
    count = rows.sum().clamp_min(1)
    return stacked.sum() / count


def contrastive_prediction_loss(report: CalibrationReport, valid: Optional[Tensor] = None,
                                temperature: float = 0.2) -> Tensor:
    """InfoNCE: g_m's prediction for sample i must be closer (in cosine, the support cue) to
    u_m of sample i than to u_m of any other sample in the batch.

    Why: the support and conflict cues are only useful if they separate "the others agree with
    this modality" from "the others describe a different sample". A regression loss is minimised by
    a shared space that ignores the sample; a contrastive one is not, so it keeps u_m sample-specific
    and makes a swapped or corrupted modality show up as low support. Gradients reach both u_m and
    the prediction, as in CLIP-style alignment.

    ``valid`` (B, M) bool marks the anchors that are known to be consistent (e.g. not swapped by
    augmentation); every present u_m of the batch serves as a candidate.
    """
    rows = report.has_context if valid is None else valid & report.has_context
    losses = []
    for i, n in enumerate(report.modalities):
        anchors = rows[:, i]
        if int(anchors.sum()) == 0:
            continue
        candidates = report.present[:, i]
        pred = F.normalize(report.predicted[n][anchors], dim=-1, eps=1e-6)
        target = F.normalize(report.shared[n], dim=-1, eps=1e-6)
        logits = pred @ target.T / temperature  # (A, B)
        logits = logits.masked_fill(~candidates.unsqueeze(0), float("-inf"))
        labels = torch.nonzero(anchors).squeeze(1)
        losses.append(F.cross_entropy(logits, labels, reduction="sum"))
    if not losses:
        return report.alpha.sum() * 0.0
    return torch.stack(losses).sum() / rows.sum().clamp_min(1)


AUX_LOSSES = {"contrastive": contrastive_prediction_loss, "mse": prediction_loss}
"""Auxiliary objectives for the predictors g_m, by name (the ``--aux-loss`` choices)."""
