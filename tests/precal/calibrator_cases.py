"""The modality layouts, calibrators and features the calibrator's tests share."""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import pytest
import torch
from torch import Tensor

from precal.calibration import CalibrationReport, ModalityFeatureSpec, PreFusionCalibrator

B = 4

# name -> (layout, feature dim, shape of one sample *including* the feature axis, time axis or None)
# The time axis is the axis (of the full batched tensor) that a (B, T) padding mask refers to.
CASES: Dict[str, Tuple[str, int, Tuple[int, ...], Optional[int]]] = {
    "vec": ("token", 5, (5,), None),  # (B, D)
    "tok": ("token", 6, (4, 6), 1),  # (B, T, D)
    "ch1d": ("channel", 3, (3, 5), 2),  # (B, C, T)
    "img": ("channel", 4, (4, 3, 2), None),  # (B, C, H, W)
    "vid": ("channel", 2, (2, 3, 2, 2), 2),  # (B, C, T, H, W)
    "chvec": ("channel", 7, (7,), None),  # (B, C)
}
SUBSETS = {
    1: ["tok"],
    2: ["vec", "vid"],
    3: ["tok", "ch1d", "img"],
    6: ["vec", "tok", "ch1d", "img", "vid", "chvec"],
}
SEQUENCE_CASES = [n for n, c in CASES.items() if c[3] is not None]


def specs_for(names: Sequence[str]) -> List[ModalityFeatureSpec]:
    return [ModalityFeatureSpec(n, CASES[n][1], CASES[n][0]) for n in names]


def make_calibrator(names: Sequence[str], seed: int = 0, **kwargs) -> PreFusionCalibrator:
    torch.manual_seed(seed)
    return PreFusionCalibrator(specs_for(names), shared_dim=8, **kwargs)


def make_features(names: Sequence[str], seed: int = 1, b: int = B, dtype=torch.float32) -> Dict[str, Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {n: (torch.randn((b, *CASES[n][2]), generator=g) * 2 + 0.5).to(dtype) for n in names}


def perturb(cal: PreFusionCalibrator, seed: int = 7, scale: float = 1.0) -> None:
    """Random re-init of the gate parameters and a random evidence reference, so that every gate
    responds to its cues (a fresh calibrator has no reference: its evidence is zero)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        touched = 0
        for name, p in cal.named_parameters():
            if name.startswith(("alpha_", "beta_")):
                p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * scale)
                touched += 1
        set_reference(cal, g)
    cal.eval()  # the reference stays fixed: repeated passes over the same inputs agree
    assert touched >= 5  # alpha_weight, alpha_bias, beta_agreement, beta_discrepancy, beta_bias.*


def set_reference(cal: PreFusionCalibrator, g: torch.Generator) -> None:
    """A random running reference (means around 0, variances around 1) for every cue column."""
    with torch.no_grad():
        for ref in (getattr(cal, "alpha_reference", None), getattr(cal, "beta_reference", None)):
            if ref is not None:
                ref.mean.copy_(torch.randn(ref.mean.shape, generator=g) * 0.3)
                ref.var.copy_(torch.rand(ref.var.shape, generator=g) + 0.5)
                ref.count.fill_(1)


def expected_gated(x: Tensor, layout: str, alpha: Tensor, beta: Tensor) -> Tensor:
    """x * alpha * beta with explicit reshapes per layout (alpha (B,), beta (B, D))."""
    g = alpha[:, None] * beta  # (B, D)
    if layout == "token":
        if x.dim() == 2:
            return x * g
        if x.dim() == 3:
            return x * g[:, None, :]
    else:
        if x.dim() == 2:
            return x * g
        if x.dim() == 3:
            return x * g[:, :, None]
        if x.dim() == 4:
            return x * g[:, :, None, None]
        if x.dim() == 5:
            return x * g[:, :, None, None, None]
    raise AssertionError(f"unexpected test layout {layout} {tuple(x.shape)}")


def reference_summary(x: Tensor, layout: str, lengths: Optional[Sequence[int]] = None) -> Tensor:
    """Mean over the non-feature axes using only the first ``lengths[b]`` time steps (explicit loop)."""
    rows = []
    for b in range(x.shape[0]):
        xb = x[b]
        if layout == "channel":
            xb = xb.movedim(0, -1)  # features last
        if lengths is not None:
            xb = xb[: lengths[b]]  # time is the first non-feature axis in every masked test layout
        rows.append(xb.reshape(-1, xb.shape[-1]).mean(dim=0))
    return torch.stack(rows)


def lengths_mask(lengths: Sequence[int], t: int) -> Tensor:
    return torch.arange(t)[None, :] < torch.as_tensor(list(lengths))[:, None]


def cue_tensors(report: CalibrationReport, i: int, name: str) -> Dict[str, Tensor]:
    return {
        "summary": report.summaries_before[name], "shared": report.shared[name],
        "predicted": report.predicted[name], "support": report.support[:, i],
        "conflict": report.conflict[:, i], "alpha": report.alpha[:, i],
        "alpha_logit": report.alpha_logit[:, i], "contributions": report.contributions[:, i],
        "beta": report.beta[name], "after": report.summaries_after[name],
        "pairwise_row": report.pairwise_support[:, i], "weights_row": report.context_weights[:, i],
    }


def twin_calibrator(neg: bool):
    """Two identical token modalities with identical bias-free projections and predictors g = identity.

    With M = 2 the context of each modality is exactly the other's u, so with g = identity
    u_hat_a = u_b. Feeding x_b = x_a gives u_hat == u; x_b = -x_a gives u_hat == -u (LayerNorm with
    zero bias is odd). g is a two-layer GELU MLP: W1 = W2 = I, b1 = +K, b2 = -K with K large makes it
    the identity up to float rounding (GELU(z) == z for z >= ~10 in float32).

    This helper sets parameters by name (the calibrator's internals); update it if they change.
    """
    cal = PreFusionCalibrator([ModalityFeatureSpec("a", 5), ModalityFeatureSpec("b", 5)], shared_dim=8)
    params = dict(cal.named_parameters())
    needed = ["project.a.weight", "project.a.bias", "project.b.weight", "project.b.bias", "norm_bias",
              "predictor_w1", "predictor_b1", "predictor_w2", "predictor_b2"]
    missing = [k for k in needed if k not in params]
    if missing:
        pytest.fail(f"calibrator internals changed ({missing} not found): update twin_calibrator")
    k_shift = 20.0
    with torch.no_grad():
        params["project.a.bias"].zero_()
        params["project.b.bias"].zero_()
        params["project.b.weight"].copy_(params["project.a.weight"])
        params["norm_bias"].zero_()
        if "norm_weight" in params:
            params["norm_weight"].fill_(1.0)
        eye = torch.eye(8).expand(2, 8, 8)
        params["predictor_w1"].copy_(eye)
        params["predictor_w2"].copy_(eye)
        params["predictor_b1"].fill_(k_shift)
        params["predictor_b2"].fill_(-k_shift)
    xa = make_features(["vec"])["vec"]
    return cal, {"a": xa, "b": -xa if neg else xa.clone()}
