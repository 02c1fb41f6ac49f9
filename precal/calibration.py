"""Pre-fusion calibration: compare each modality with the others and gate its original features.

For every modality ``m`` the calibrator

1. summarises its features by a masked mean over every non-feature axis, ``s_m`` (B, D_m);
2. projects the summary into a shared space, ``u_m = LayerNorm(P_m s_m)`` (B, d);
3. attends over the *other present* modalities to form a context ``c_m`` and predicts from it what
   the others imply about ``m``: ``û_m = g_m(c_m)``;
4. extracts cues: support ``cos(u_m, û_m)``, conflict ``||u_m - û_m||^2 / d``, pairwise support
   ``cos(u_m, u_k)``, per-dimension agreement ``u_m * û_m`` and discrepancy ``|u_m - û_m|``;
5. measures each cue against a running training-split reference (:mod:`precal.evidence`): the
   *evidence* is how many standard deviations this sample's cue is from a typical sample's;
6. turns the evidence into an instance gate ``alpha_m = 2 sigmoid(b_m + sum_k w_mk e_mk)`` (one
   scalar per sample) and a dimension gate ``beta_m`` (one value per channel) from the per-dimension
   agreement and discrepancy evidence;
7. returns ``x_m * alpha_m * beta_m`` broadcast over the non-feature axes, plus a report.

Direction by design: the weights on support and on pairwise support are non-negative and the weight
on conflict non-positive (signed softplus of free parameters), and in beta agreement evidence only
raises and discrepancy evidence only lowers a channel's gate. So "more support never lowers trust,
more conflict never raises it" holds for *any* learned weights, not as the outcome of a training run:
before this design, the gate of a modality swapped in from another sample often rose on late and
convolutional backbones while the cues themselves flagged the swap. The bias ``b_m`` carries the
modality's level (what a typical sample gets, ``2 sigmoid(b_m)``); the cues carry only evidence.

Why this shape: the gates act on the *original* features, so the fusion backbone and head are
unchanged (a plug-in). Biases start at zero and evidence is zero until the reference has seen a
training batch, so the module is exactly the identity at initialisation: a calibrated model starts as
its baseline and only departs from it where the cues earn it. Because the alpha logit is linear in
the evidence, it splits *exactly* into the bias (the typical sample's logit) plus one contribution per
cue (also the exact Shapley values), which is what answers "why was this modality damped?".

Two other gate sources share the interface, for comparison in one harness: ``direction="free"``
(unconstrained weights on raw cues, the design before the contract; checkpoints written with it load
with it) and ``source="self"`` (a control: gates from the modality's own summary only, through a
network of the same size, so that a gain can be attributed to the *comparison* and not to gating).

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

from precal.evidence import EvidenceReference, soft_threshold
from precal.typicality import SummaryReference

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
    contributions: Tensor  # (B, M, K) bias + per-cue parts of alpha_logit; sum over K == alpha_logit
    contribution_names: List[str]  # K names: "baseline", "support", "conflict", "support from <k>"
    beta: Dict[str, Tensor]  # (B, D_m) dimension gate in (0, 2)
    present: Tensor  # (B, M) bool
    has_context: Tensor  # (B, M) bool: present and at least one other present modality
    evidence: Optional[Tensor] = None  # (B, M, K-1) what each weight multiplied: the cue against a
    # typical training sample, in its standard deviations (monotone), or the raw cue (free)
    gate: str = "monotone"  # how the gates were made: "monotone", "free" or "self" (see models.GATES)
    enabled: bool = True
    evidence_mode: str = "absolute"  # one of EVIDENCE_MODES: relative evidence is also against the peers'
    atypicality: Optional[Tensor] = None  # (B, M) how unlike its typical training summaries each
    # modality's own summary is (precal.typicality); None when the calibrator does not read it

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


DIRECTIONS = ("monotone", "free")
"""monotone: evidence (cues against a running reference) through sign-constrained weights (the
default and the contract); free: raw cues through unconstrained weights (earlier checkpoints)."""

EVIDENCE_MODES = ("absolute", "relative", "learned", "capped")
"""absolute: each cue against the training reference; relative: the same, then centred over the
sample's modalities for which the cue is defined, so that only how much one modality disagrees
*more than its peers* moves its gate (see :func:`centre_over_modalities`); learned: centred by a
share per modality that the task learns (from one half), between the two; capped: the same, the
share at most :data:`MAX_CENTRING_SHARE`."""
LEARNED_SHARE = ("learned", "capped")
"""The evidence modes whose centring share is a trained parameter (``centring``)."""

MAX_CENTRING_SHARE = 0.5
"""The largest share of the modalities' mean evidence that ``capped`` centring takes off. Why: with
two modalities a swap lowers both modalities' evidence alike, and a share near 1 cancels it, so the
gates no longer see the conflict the cues flag; training can drive the share there (two 1024-d and
768-d feature vectors, late fusion: shares 0.95 and 0.98, swap AUROC of 1 - alpha 0.87 and 0.67
beside cues at 0.999). At most one half, at least half of any drop that every modality shows still
reaches each gate, and a modality's own drop always moves its gate at least half as far as
absolute evidence does."""

GATE_SOURCES = ("peers", "self")
"""peers: gates from the comparison with the other modalities (the calibrator); self: gates from the
modality's own summary only (the control)."""

ATYPICALITY = "atypicality"
"""The cue (and contribution) of a modality's own summary against typical training summaries
(:mod:`precal.typicality`): its weight is <= 0, so a more unusual summary never raises the gate."""

ATYPICAL_FROM_SD = 1.0
"""Atypicality counts as evidence only beyond this many standard deviations above typical (and never
below: an unusually typical summary says nothing about the modality's reliability). Read linearly
from 0, every sample's own scatter around typical would move its gate, which blurs what the
comparison cues see: measured on the synthetic benchmark (seed 0, four backbones), the gates found
swapped modalities with AUROC 0.941 instead of 0.956 without the cue, and 0.954 with this threshold
(results/gates/exploration/typicality_linear.txt, benchmark_typicality.txt)."""

INITIAL_WEIGHT = 0.5
"""Initial evidence weight of a monotone head (softplus of its free parameter). Non-zero so that the
gates respond to evidence from the first step on and the task loss refines how much; identity at
initialisation comes from the evidence, which is zero until the reference has seen a batch."""


def signed_softplus(raw: Tensor, sign: Tensor) -> Tensor:
    """``sign * softplus(raw)``: a weight whose sign is fixed by design and whose size is learned."""
    return sign * F.softplus(raw)


def off_diagonal(n: int) -> Tensor:
    """Boolean (n, n) mask, True off the diagonal. Not ``~torch.eye``: on the meta device (where
    :func:`precal.models.model.check_model_size` builds a model to count its parameters) ``eye``
    runs a reference implementation whose first call imports sympy, about 1.5 s of every checkpoint
    load and dashboard start."""
    mask = torch.ones(n, n, dtype=torch.bool)
    mask.diagonal().fill_(False)
    return mask


def centre_over_modalities(evidence: Tensor, valid: Tensor) -> Tensor:
    """Evidence (B, M, K) minus, per sample and cue column, its mean over the modalities where the
    column is defined (``valid``); 0 where it is not.

    Why: agreement is symmetric. With two modalities a disagreement lowers both modalities' support
    alike (a modality swapped in from another sample leaves the pair distributed alike whichever one
    was swapped), so absolute evidence damps both, and the reliable one's loss costs accuracy
    (docs/results/gates.md, "Which modality is damped"). Centred, a disagreement that every modality
    shows moves no gate, and the odd one out of three or more is still damped while its peers rise.
    Still non-decreasing in a modality's own cue (its coefficient is 1 - 1/n, n >= 1), so the
    direction contract holds; still linear, so the contributions still add up exactly."""
    w = valid.to(evidence.dtype)
    mean = (evidence * w).sum(dim=1, keepdim=True) / w.sum(dim=1, keepdim=True).clamp_min(1.0)
    return torch.where(valid, evidence - mean, torch.zeros((), dtype=evidence.dtype, device=evidence.device))


def _softplus_inverse(y: float) -> float:
    return math.log(math.expm1(y))


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
        direction: "monotone" (default, the direction contract holds for any weights) or "free".
        evidence_margin: monotone only; evidence within this many standard deviations of typical
            counts as none (soft-thresholding), so that the spread of clean samples' cues does not
            move their gates.
        source: "peers" (default, the calibrator) or "self" (the own-summary control).
        evidence: monotone peers only; "absolute", "relative", "learned" or "capped" (:data:`EVIDENCE_MODES`). The
            default here stays absolute, so that an own model's saved weights keep loading; precal's
            own models default to capped (:data:`precal.models.config.DEFAULT_EVIDENCE`).
    """

    def __init__(self, modalities: Sequence[ModalityFeatureSpec], shared_dim: int = 16, *,
                 enabled: bool = True, instance_gate: bool = True, dimension_gate: bool = True,
                 cue_gradient: bool = True, direction: str = "monotone", source: str = "peers",
                 evidence_margin: float = 0.0, evidence: str = "absolute", typicality: bool = False) -> None:
        super().__init__()
        if not modalities:
            raise ValueError("the calibrator needs at least one modality")
        names = [m.name for m in modalities]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate modality names: {names}")
        if direction not in DIRECTIONS:
            raise ValueError(f"unknown gate direction {direction!r}; choose one of {', '.join(DIRECTIONS)}")
        if source not in GATE_SOURCES:
            raise ValueError(f"unknown gate source {source!r}; choose one of {', '.join(GATE_SOURCES)}")
        if source == "self" and direction != "monotone":
            raise ValueError("the self-gate control has no cues to constrain; use it with direction 'monotone'")
        if evidence not in EVIDENCE_MODES:
            raise ValueError(f"unknown evidence mode {evidence!r}; choose one of {', '.join(EVIDENCE_MODES)}")
        if evidence != "absolute" and (direction != "monotone" or source != "peers"):
            raise ValueError(f"centred evidence ({evidence}) compares the modalities' cues: it needs monotone gates "
                             "from the peers")
        if typicality and (direction != "monotone" or source != "peers"):
            raise ValueError("the atypicality cue is evidence for monotone gates from the peers")
        self.evidence = evidence
        self.typicality = typicality
        self.specs: Dict[str, ModalityFeatureSpec] = {m.name: m for m in modalities}
        self.names: List[str] = names
        self.shared_dim = shared_dim
        self.enabled = enabled
        self.instance_gate = instance_gate
        self.dimension_gate = dimension_gate
        self.cue_gradient = cue_gradient
        self.direction = direction
        self.source = source
        if not 0.0 <= evidence_margin <= 10.0:
            raise ValueError(f"evidence margin must be between 0 and 10 standard deviations, got {evidence_margin}")
        self.evidence_margin = float(evidence_margin)
        m_count = len(names)
        d = shared_dim
        self.project = nn.ModuleDict({m.name: nn.Linear(m.dim, d) for m in modalities})
        self.norm_weight = nn.Parameter(torch.ones(m_count, d))
        self.norm_bias = nn.Parameter(torch.zeros(m_count, d))
        if source == "peers":
            self.query = nn.Linear(d, d, bias=False)
            self.key = nn.Linear(d, d, bias=False)
        # Per-modality predictors g_m (two-layer MLPs) stored as stacked weights so that all M of
        # them run as one batched contraction: the calibrator is many small ops, and at batch 1
        # their count, not their FLOPs, sets its latency. The self-gate control runs the same
        # network on the modality's own u_m.
        bound = 1.0 / math.sqrt(d)
        self.predictor_w1 = nn.Parameter(torch.empty(m_count, d, d).uniform_(-bound, bound))
        self.predictor_b1 = nn.Parameter(torch.empty(m_count, d).uniform_(-bound, bound))
        self.predictor_w2 = nn.Parameter(torch.empty(m_count, d, d).uniform_(-bound, bound))
        self.predictor_b2 = nn.Parameter(torch.empty(m_count, d).uniform_(-bound, bound))
        monotone = direction == "monotone"
        start = _softplus_inverse(INITIAL_WEIGHT) if monotone else 0.0
        # Alpha head: per modality, linear in [support, conflict, support from each peer k]
        # (self-gate: in the d outputs of g_m on its own u_m, free signs, starting at zero). The
        # peers start with INITIAL_WEIGHT between them, so that adding modalities does not add
        # evidence weight.
        cue_count = 2 + m_count + int(typicality) if source == "peers" else d
        initial = torch.zeros(m_count, cue_count)
        if monotone and source == "peers":
            initial[:, :2] = start
            initial[:, 2:2 + m_count] = _softplus_inverse(INITIAL_WEIGHT / max(1, m_count - 1))
            initial[:, 2 + m_count:] = start
        self.alpha_weight = nn.Parameter(initial)
        self.alpha_bias = nn.Parameter(torch.zeros(m_count))
        # Beta head: per-dimension agreement/discrepancy in the shared space, weighted per shared
        # dimension and mapped back to the modality's channels through the projection that built
        # the shared space, plus a per-channel bias. This keeps the calibrator at a few percent of
        # the backbone's parameters (a dense 2d x D_m map would dominate them) and ties "which
        # channels" to the channels the comparison was made from. Monotone: through the projection's
        # magnitudes, so evidence keeps its sign on its way to every channel.
        self.beta_agreement = nn.Parameter(torch.full((m_count, d), start if source == "peers" else 0.0))
        # (self-gate: one map from the own-summary features is the whole beta head)
        self.beta_discrepancy = nn.Parameter(torch.full((m_count, d), start)) if source == "peers" else None
        self.beta_bias = nn.ParameterDict({m.name: nn.Parameter(torch.zeros(m.dim)) for m in modalities})
        if evidence in LEARNED_SHARE:  # how far each modality's evidence is centred: sigmoid, from 0.5
            self.centring = nn.Parameter(torch.zeros(m_count))
        if monotone:
            self.alpha_reference = EvidenceReference((m_count, cue_count))
            self.beta_reference = EvidenceReference((m_count, 2 * d))
        if typicality:
            self.summary_reference = SummaryReference([m.dim for m in modalities])
        # Sign of each alpha weight: support +, conflict -, pairwise support with each peer +,
        # atypicality -.
        self.register_buffer("_alpha_sign", torch.tensor([1.0, -1.0] + [1.0] * m_count + [-1.0] * int(typicality)),
                             persistent=False)
        self.register_buffer("_not_self", off_diagonal(m_count), persistent=False)

    @property
    def contribution_names(self) -> List[str]:
        if self.source == "self":
            return ["baseline"] + [f"own feature {j}" for j in range(self.shared_dim)]
        return (["baseline", "support", "conflict"] + [f"support from {k}" for k in self.names]
                + [ATYPICALITY] * int(self.typicality))

    def alpha_weights(self) -> Tensor:
        """The alpha head's effective weights (M, K): signed softplus for monotone heads."""
        if self.direction == "monotone" and self.source == "peers":
            return signed_softplus(self.alpha_weight, self._alpha_sign)
        return self.alpha_weight

    def beta_weights(self) -> Tuple[Tensor, Optional[Tensor]]:
        """The beta head's effective weights on agreement (>= 0) and discrepancy (<= 0), (M, d) each."""
        if self.source == "self":
            return self.beta_agreement, None
        if self.direction == "monotone":
            return F.softplus(self.beta_agreement), -F.softplus(self.beta_discrepancy)
        return self.beta_agreement, self.beta_discrepancy

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
        peer_mask = pres.unsqueeze(1) & pres.unsqueeze(2) & self._not_self  # (B, M, M)
        has_context = pres & peer_mask.any(dim=2)
        valid = has_context.unsqueeze(-1).to(u.dtype)  # zero every cue without context
        if self.source == "peers":
            context, weights = self._context(u, peer_mask)
            u_hat = self._predict(context)
        else:  # the control: the same network, on the modality's own shared summary
            weights = torch.zeros(b, len(self.names), len(self.names), dtype=u.dtype, device=device)
            u_hat = self._predict(u)
        unit = F.normalize(u, dim=-1, eps=1e-6)
        diff = u - u_hat
        pair_valid = (pres.unsqueeze(2) & pres.unsqueeze(1)).to(u.dtype)
        if self.direction == "free":  # the earlier cue: similarity of the two shared summaries
            pairwise = torch.bmm(unit, unit.transpose(1, 2)) * pair_valid
        elif self.source == "peers":  # support from k alone: cos(u_m, g_m(u_k)), nothing from itself
            pairwise = (unit.unsqueeze(2) * F.normalize(self._predict_from_each(u), dim=-1, eps=1e-6)).sum(-1)
            pairwise = pairwise * peer_mask.to(u.dtype)
        else:
            pairwise = torch.zeros_like(pair_valid)
        if self.source == "peers":
            support = (unit * F.normalize(u_hat, dim=-1, eps=1e-6)).sum(dim=-1) * valid[..., 0]
            conflict = diff.pow(2).mean(dim=-1) * valid[..., 0]
            agreement = u * u_hat * valid
            discrepancy = diff.abs() * valid
            peer_support = pairwise * peer_mask.to(u.dtype)  # only other present modalities
            cues = torch.cat([support.unsqueeze(-1), conflict.unsqueeze(-1), peer_support], dim=-1)  # (B,M,2+M)
            cue_valid = torch.cat([has_context.unsqueeze(-1).expand(-1, -1, 2), peer_mask], dim=-1)
            shared_cues = torch.cat([agreement, discrepancy], dim=-1)  # (B, M, 2d)
            if self.typicality:  # the own summary against typical training summaries, after the peers
                atypical_valid = has_context & self.summary_reference.known.unsqueeze(0)
                own_summaries = [summaries[n] for n in self.names]
                atypicality = self.summary_reference.atypicality(own_summaries)
                atypicality = torch.where(atypical_valid, atypicality, torch.zeros_like(atypicality))
                cues = torch.cat([cues, atypicality.unsqueeze(-1)], dim=-1)
                cue_valid = torch.cat([cue_valid, atypical_valid.unsqueeze(-1)], dim=-1)
        else:
            support = conflict = torch.zeros_like(u[..., 0])
            agreement = discrepancy = torch.zeros_like(u)
            cues = u_hat * valid
            cue_valid = has_context.unsqueeze(-1).expand_as(cues)
            shared_cues = cues
        shared_valid = has_context.unsqueeze(-1).expand_as(shared_cues)

        if self.direction == "monotone":
            # The gates read the cues, they do not shape them: the comparison is trained by its own
            # objective (the cue loss), and the task and the gate loss can only learn how much to
            # trust the evidence (weights) and each modality's level (bias). Measured: letting the
            # task bend the cues through sign-constrained gates made them worse detectors (on the
            # synthetic benchmark backwards, AUROC 0.40), and the gate loss did too on real data.
            cues, shared_cues = cues.detach(), shared_cues.detach()
        contributions, evidence = self.instance_logit_parts(cues, cue_valid, has_context)
        alpha_logit = contributions.sum(dim=-1)
        beta_logits = self.dimension_logits(shared_cues, shared_valid, has_context)
        if self.training and self.direction == "monotone":  # after this pass's gates used the old reference
            self.alpha_reference.update(cues, cue_valid)
            if self.source == "peers":
                self.beta_reference.update(shared_cues, shared_valid)
            if self.typicality:
                self.summary_reference.update(own_summaries, pres)
        gates_on = self.enabled and self.instance_gate
        alpha = 2.0 * torch.sigmoid(alpha_logit) if gates_on else torch.ones_like(alpha_logit)

        outputs: Dict[str, Tensor] = {}
        betas: Dict[str, Tensor] = {}
        after: Dict[str, Tensor] = {}
        for i, n in enumerate(self.names):
            if self.enabled and self.dimension_gate:
                beta = 2.0 * torch.sigmoid(beta_logits[n])
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
            evidence=evidence,
            gate="self" if self.source == "self" else self.direction,
            enabled=self.enabled,
            evidence_mode=self.evidence,
            atypicality=atypicality if self.typicality else None,
        )
        return outputs, report

    def instance_logit_parts(self, cues: Tensor, cue_valid: Tensor, has_context: Tensor) -> Tuple[Tensor, Tensor]:
        """The alpha head on cues (B, M, K-1): per-part logits (B, M, K), the bias first, and the
        evidence each weight multiplied (B, M, K-1). Reads the reference, never updates it.

        Monotone: ``logit = b + sum_k w_k e_k`` with ``e_k`` the cue against the reference and
        ``w_k`` >= 0 for support and pairwise support, <= 0 for conflict, whatever the parameters."""
        if self.direction == "monotone":
            z = self.alpha_reference.standardise(cues, cue_valid)
            # centring acts column by column, so the atypicality column can be replaced afterwards
            evidence = self._centred(soft_threshold(z, self.evidence_margin), cue_valid, self.alpha_reference)
            if self.typicality:  # atypicality: never centred, counted beyond its own threshold, not the margin's
                evidence = torch.cat([evidence[..., :-1], F.relu(z[..., -1:] - ATYPICAL_FROM_SD)], dim=-1)
        else:
            evidence = torch.where(cue_valid, cues, torch.zeros((), dtype=cues.dtype, device=cues.device))
        valid = has_context.unsqueeze(-1).to(cues.dtype)
        parts = evidence * self.alpha_weights().unsqueeze(0)
        baseline = self.alpha_bias.unsqueeze(0).expand(cues.shape[0], -1).unsqueeze(-1)
        return torch.cat([baseline, parts], dim=-1) * valid, evidence * valid

    def dimension_logits(self, shared_cues: Tensor, shared_valid: Tensor, has_context: Tensor) -> Dict[str, Tensor]:
        """The beta head: per modality, the (B, D_m) logit of each channel's gate.

        Monotone peers: agreement evidence (the first d columns of ``shared_cues``) only raises and
        discrepancy evidence (the last d) only lowers every channel's logit."""
        if self.direction == "monotone" and self.source == "peers":
            evidence = self.beta_reference.standardise(shared_cues, shared_valid, self.evidence_margin)
            evidence = self._centred(evidence, shared_valid, self.beta_reference)
        elif self.direction == "monotone":  # the self-gate's own-summary features, like its alpha
            evidence = self.alpha_reference.standardise(shared_cues, shared_valid, self.evidence_margin)
        else:
            evidence = shared_cues
        shared_logit = self._beta_shared_logit(evidence)  # (B, M, d)
        valid = has_context.to(shared_cues.dtype)
        return {n: (shared_logit[:, i] @ self._channel_map(n) + self.beta_bias[n]) * valid[:, i: i + 1]
                for i, n in enumerate(self.names)}

    def _centred(self, evidence: Tensor, valid: Tensor, reference: EvidenceReference) -> Tensor:
        """The evidence as the mode says: as is (no extra work on the default path), centred over the
        modalities whose column has a reference, or centred by a learned share per modality
        (``e - s_m * mean``, 0 < s_m < 1, or at most one half when capped: still non-decreasing in the
        own cue). The evidence is already
        0 outside ``valid`` and the known columns, and both forms keep it so."""
        if self.evidence == "absolute":
            return evidence
        centred = centre_over_modalities(evidence, valid & reference.known)
        if self.evidence == "relative":
            return centred
        share = self.centring_share().to(evidence.dtype).view(1, -1, *([1] * (evidence.dim() - 2)))
        return evidence - share * (evidence - centred)

    def centring_share(self) -> Tensor:
        """(M,) the share of the modalities' mean evidence taken off each modality's: 0 for absolute
        evidence, 1 for relative, learned (at most :data:`MAX_CENTRING_SHARE` when capped)."""
        if self.evidence in LEARNED_SHARE:
            share = torch.sigmoid(self.centring)
            return share.clamp(max=MAX_CENTRING_SHARE) if self.evidence == "capped" else share
        return torch.full((len(self.names),), 1.0 if self.evidence == "relative" else 0.0,
                          device=self.alpha_bias.device)

    def _predict(self, source: Tensor) -> Tensor:
        """All M predictors at once, modality-major: (M, B, d) @ (M, d, d) -> (B, M, d)."""
        hidden = F.gelu(torch.baddbmm(self.predictor_b1.unsqueeze(1), source.transpose(0, 1), self.predictor_w1))
        return torch.baddbmm(self.predictor_b2.unsqueeze(1), hidden, self.predictor_w2).transpose(0, 1)

    def _predict_from_each(self, u: Tensor) -> Tensor:
        """What each peer alone implies about each modality: (B, M, M, d), [b, m, k] = g_m(u_k).

        With k as m's only present peer the attention context is exactly u_k, so this is the
        prediction m would get from k alone, and its cosine with u_m is the support m would get."""
        b, m, d = u.shape
        source = u.reshape(1, b * m, d).expand(m, -1, -1)  # every (sample, peer) for each target m
        hidden = F.gelu(torch.baddbmm(self.predictor_b1.unsqueeze(1), source, self.predictor_w1))
        out = torch.baddbmm(self.predictor_b2.unsqueeze(1), hidden, self.predictor_w2)  # (M, B*M, d)
        return out.reshape(m, b, m, d).transpose(0, 1)

    def _beta_shared_logit(self, shared_evidence: Tensor) -> Tensor:
        """Per shared dimension, the beta logit before it is mapped to channels: (B, M, d)."""
        agree_w, disc_w = self.beta_weights()
        d = self.shared_dim
        if disc_w is None:
            return shared_evidence * agree_w
        return shared_evidence[..., :d] * agree_w + shared_evidence[..., d:] * disc_w

    def _channel_map(self, name: str) -> Tensor:
        """(d, D_m) map from shared dimensions to the modality's channels.

        Monotone peers: the projection's magnitudes, each channel's column normalised to sum to one,
        so a channel's evidence is a weighted mean of the evidence of the shared dimensions it feeds
        and keeps its sign (detached: the comparison space is shaped by the cue objective, not by the
        gate). Otherwise the signed projection, as before the direction contract."""
        weight = self.project[name].weight
        if self.direction == "monotone" and self.source == "peers":
            magnitude = weight.detach().abs()
            return magnitude / magnitude.sum(dim=0, keepdim=True).clamp_min(1e-12)
        return weight

    def _context(self, u: Tensor, peer_mask: Tensor) -> Tuple[Tensor, Tensor]:
        """Attention of each modality over the *other present* ones.

        Returns the context (B, M, d) and the attention weights (B, M, M); ``peer_mask`` (B, M, M) is
        True where k != m and k is present. Rows without any peer get zero weights and a zero context
        (so no NaN from an all-masked softmax).
        """
        scores = torch.bmm(self.query(u), self.key(u).transpose(1, 2)) / math.sqrt(self.shared_dim)
        scores = scores.masked_fill(~peer_mask, float("-inf"))
        any_peer = peer_mask.any(dim=2, keepdim=True)
        weights = torch.softmax(scores.masked_fill(~any_peer, 0.0), dim=2) * any_peer
        weights = weights.masked_fill(~peer_mask, 0.0)
        context = torch.bmm(weights, u)
        return context, weights

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
