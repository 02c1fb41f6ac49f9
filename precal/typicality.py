"""How unlike its typical training samples a modality's own summary looks: the atypicality cue.

Why it exists: the comparison cues (support, conflict) see what *disagrees* with the other
modalities. A modality drowned in noise often still agrees with them: pooling over many steps or
frames averages much of the noise away, so its summary keeps pointing at the right class while
lying far from anything the encoder produced in training. Measured on the synthetic benchmark
(``mixed3``, late backbone, −10 dB noise, 10,000 fresh samples): the gates found the noisy frame
sequence with AUROC 0.70, while the Mahalanobis distance of its summary from the training summaries
found it with 0.995 (vector 0.88 → 0.98, time series 0.90 → 0.96). The same distance knows nothing of
a modality swapped in from another sample (AUROC 0.5: that summary is typical, only in the wrong
company), which is what the comparison cues see. The two are complementary evidence.

The reference is a running mean and covariance of each modality's summary (the masked mean of its
input features, before any gate), updated in training-mode passes from the samples where the
modality is present, after the gates of that pass were computed, like the cue reference
(:mod:`precal.evidence`). The cue is ``log(mean_j w_j^2)`` with ``w = L^{-1}(s - mean)`` and
``L L^T`` the (ridged) covariance: the log of the mean squared whitened distance, so that a summary
a hundred times further away than typical is a few units of evidence, not hundreds. Full covariance,
not per-channel variances: a noisy summary leaves the subspace the clean ones span in directions of
*low* variance, which per-channel scales miss (diagonal distance: AUROC 0.39 on the frame sequence
above; ``python -m experiments.summary_distance``, results/gates/summary_distance.txt).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from precal.evidence import MOMENTUM

RIDGE = 1e-3
"""Added to the covariance's diagonal, relative to its mean variance: a summary whose channels are
collinear in training (a covariance of lower rank) still has a finite distance."""
FLOOR = 1e-6
"""Added before the log: a summary exactly at the mean has a finite cue."""
REFRESH_EVERY = 8
"""Training updates between two factorisations of the covariance (always refreshed before an
evaluation-mode pass reads it): a Cholesky factor of a wide summary (own features of a few thousand
channels) costs more than the rest of the calibrator, and the reference moves slowly."""


def identity(d: int) -> Tensor:
    """A (d, d) identity. Not ``torch.eye``: on the meta device, where a model is built to count its
    size (:func:`precal.models.model.check_model_size`), ``eye`` imports sympy on its first call,
    about a second of every checkpoint load (as :func:`precal.calibration.off_diagonal` notes)."""
    out = torch.zeros(d, d)
    out.diagonal().fill_(1.0)
    return out


class SummaryReference(nn.Module):
    """Running mean and covariance of the summaries of M modalities, and their atypicality.

    ``dims``: the channel count of each modality's summary. Before the first update a modality has
    no reference and its cue is undefined (``known`` False): a fresh calibrator is the identity."""

    def __init__(self, dims: list[int], momentum: Optional[float] = MOMENTUM) -> None:
        super().__init__()
        self.momentum = momentum
        self.dims = list(dims)
        for i, d in enumerate(self.dims):
            self.register_buffer(f"mean_{i}", torch.zeros(d))
            self.register_buffer(f"cov_{i}", identity(d))
        self.register_buffer("count", torch.zeros(len(self.dims)))
        self._forget_factors()

    @property
    def known(self) -> Tensor:
        """(M,) bool: the modalities that have a reference."""
        return self.count > 0

    def atypicality(self, summaries: list[Tensor]) -> Tensor:
        """(B, M): the log mean squared whitened distance of each summary from its modality's
        training mean; 0 where the modality has no reference yet (read ``known``)."""
        out = []
        for i, s in enumerate(summaries):
            if not bool(self.count[i] > 0):
                out.append(torch.zeros(s.shape[0], dtype=s.dtype, device=s.device))
                continue
            factor = self._factor(i).to(s.dtype)
            centred = (s.detach() - getattr(self, f"mean_{i}").to(s.dtype)).transpose(0, 1)  # (D, B)
            white = torch.linalg.solve_triangular(factor, centred, upper=False)
            out.append(torch.log(white.pow(2).mean(dim=0) + FLOOR))
        return torch.stack(out, dim=1)

    @torch.no_grad()
    def update(self, summaries: list[Tensor], present: Tensor) -> None:
        """Fold a batch into the reference: per modality, over the rows where it is present (two or
        more, else that modality's reference is left as it is). The first batch sets it directly."""
        for i, s in enumerate(summaries):
            rows = s.detach()[present[:, i]]
            if rows.shape[0] < 2 or not bool(torch.isfinite(rows).all()):
                continue
            rows = rows.to(self.count.dtype)
            mean = rows.mean(dim=0)
            centred = rows - mean
            cov = centred.transpose(0, 1) @ centred / rows.shape[0]
            old_mean, old_cov = getattr(self, f"mean_{i}"), getattr(self, f"cov_{i}")
            if self.count[i] == 0:
                old_mean.copy_(mean)
                old_cov.copy_(cov)
            else:  # momentum None: the plain average of every batch folded in (BatchNorm's cumulative mode)
                m = self.momentum if self.momentum is not None else 1.0 / (float(self.count[i]) + 1.0)
                shift = mean - old_mean  # the batch mean's move counts as spread around the running mean
                old_cov.mul_(1 - m).add_(m * (cov + (1 - m) * torch.outer(shift, shift)))
                old_mean.mul_(1 - m).add_(m * mean)
            self.count[i] += 1
            self._stale[i] += 1

    def reset(self) -> None:
        """Forget the reference (no cue until the next training-mode batch), as
        :meth:`precal.evidence.EvidenceReference.reset`."""
        for i in range(len(self.dims)):
            getattr(self, f"mean_{i}").zero_()
            getattr(self, f"cov_{i}").copy_(identity(self.dims[i]))
        self.count.zero_()
        self._forget_factors()

    def _factor(self, i: int) -> Tensor:
        """The Cholesky factor of modality ``i``'s ridged covariance, refreshed every
        ``REFRESH_EVERY`` training updates and whenever an evaluation-mode pass reads a stale one."""
        factor = self._factors[i]
        cov = getattr(self, f"cov_{i}")
        if factor is None or factor.device != cov.device or factor.dtype != cov.dtype or (
                self._stale[i] >= REFRESH_EVERY) or (self._stale[i] and not self.training):
            scale = cov.diagonal().abs().mean().clamp_min(1e-12)
            eye = torch.eye(cov.shape[0], dtype=cov.dtype, device=cov.device)
            factor, info = torch.linalg.cholesky_ex(cov + RIDGE * scale * eye)
            if bool(info != 0):  # not positive definite in floating point: a larger ridge
                factor, info = torch.linalg.cholesky_ex(cov + (1e3 * RIDGE * scale + 1e-6) * eye)
            if bool(info != 0):  # not a covariance at all (a damaged checkpoint): one common scale
                factor = scale.sqrt() * eye
            self._factors[i] = factor
            self._stale[i] = 0
        return factor

    def _load_from_state_dict(self, *args, **kwargs) -> None:  # noqa: D401 (torch's hook)
        """Loaded buffers: every cached factor is stale."""
        super()._load_from_state_dict(*args, **kwargs)
        self._forget_factors()

    def _forget_factors(self) -> None:
        """No cached factor: the next read factorises the covariance as it is."""
        self._factors: list[Optional[Tensor]] = [None] * len(self.dims)
        self._stale = [0] * len(self.dims)
