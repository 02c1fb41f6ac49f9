"""The calibrator's training objectives, apart from the module they train.

The predictors ``g_m`` that make the support and conflict cues are trained by an auxiliary loss
(``--aux-loss``: contrastive by default, the regression kept for comparison), and the gates may be
trained by a ranking loss on the modalities swap augmentation made conflict (``--gate-loss``). The
training loop adds them to the task loss; they read only the calibrator's report.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from precal.calibration import CalibrationReport


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


def gate_ranking_loss(report: CalibrationReport, conflicted: Tensor) -> Tensor:
    """Rank every known-conflicted modality's gate below every clean one's, per modality and batch.

    ``conflicted`` (B, M) bool marks the (sample, modality) pairs that training made conflict on
    purpose (swapped in from a sample of another class). For each modality, over all pairs of a
    conflicted row ``s`` and a clean row ``c`` (both present, with context), the loss is the mean of
    ``softplus(logit_s - logit_c)``: a logistic ranking loss on the alpha logit.

    Why a ranking and not a target: the bias, which is the same for both rows, cancels in the
    difference, so the loss teaches *which samples* to damp without telling the task how loud the
    modality should be on average; that stays the task's choice.
    """
    rows = report.present & report.has_context
    losses = []
    for i in range(len(report.modalities)):
        bad = rows[:, i] & conflicted[:, i]
        good = rows[:, i] & ~conflicted[:, i]
        if bool(bad.any()) and bool(good.any()):
            logit = report.alpha_logit[:, i]
            losses.append(F.softplus(logit[bad].unsqueeze(1) - logit[good].unsqueeze(0)).mean())
    if not losses:
        return report.alpha_logit.sum() * 0.0
    return torch.stack(losses).mean()


AUX_LOSSES = {"contrastive": contrastive_prediction_loss, "mse": prediction_loss}
"""Auxiliary objectives for the predictors g_m, by name (the ``--aux-loss`` choices)."""
