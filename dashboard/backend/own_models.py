"""Your own model in the dashboard: opening what ``precal dashboard --model`` names, and the one-line
notes a page shows where such a model does not give what the page would use.

Only the command line's ``--model`` ever makes the dashboard import a model's code: checkpoints it
was started with load with that factory, an uploaded checkpoint never does (the upload refuses an
own model's checkpoint, :func:`precal.checkpoint.load_checkpoint`).
"""

from __future__ import annotations

from typing import Callable, List, Optional, Sequence, Tuple

import torch

from precal.checkpoint import Checkpoint
from precal.dashboard.backend.pairs import LoadProblem
from precal.dashboard.backend.running import model_lock
from precal.data.batch import Batch
from precal.errors import USER_ERRORS, error_line
from precal.own_checkpoint import OwnCheckpoint, is_own, is_own_checkpoint, open_checkpoint, open_own_model


def load_named_checkpoint(path: str, model: Optional[str]) -> Checkpoint:
    """A checkpoint folder the dashboard was started with: an own model's loads with ``model`` (the
    ``--model`` of the command line), precal's own models as always."""
    return open_checkpoint(path, model if model and is_own_checkpoint(path) else None)


def load_model_without_checkpoint(model: str, data: Optional[str], weights: Optional[str],
                                  load: Callable[[str, Optional[str], Optional[str]], Checkpoint] = (
                                      lambda m, d, w: open_own_model(m, d, w))
                                  ) -> Tuple[List[Checkpoint], List[LoadProblem]]:
    """``--model F [--weights W] --data DIR`` without a checkpoint: the model opened on that data
    set (``load``: the app passes its cached loader); a failure is a :class:`LoadProblem`."""
    try:
        return [load(model, data, weights)], []
    except USER_ERRORS as exc:
        return [], [LoadProblem(model, error_line(exc))]


def checkpoint_notes(ckpts: Sequence[Checkpoint]) -> List[str]:
    """Remarks made while loading (a factory file that changed since the checkpoint was trained)."""
    return [f"{c.name}: {n}" for c in ckpts if isinstance(c, OwnCheckpoint) for n in c.notes]


def gives_features(ckpt: Checkpoint, batch: Batch) -> bool:
    """Whether an own model returns a fused representation (``features``), found out by running it
    on one sample if no forward pass has told yet (predictions may come from the disk cache)."""
    model = ckpt.model
    if getattr(model, "features_given", None) is None:
        with model_lock(model), torch.inference_mode():
            was = model.training
            model.eval()
            try:
                model(batch.select([0]))
            finally:
                model.train(was)
    return bool(model.features_given)


WHOLE_MODEL = ("{name} is your own model, which precal cannot split at its calibrator: every corrupted input "
               "runs the whole model (the results are the same; precal's own models re-run only the part after "
               "the encoders)")
NO_FEATURES = ("{name} returns no `features`: the fused representation here is its calibrated summaries, one per "
               "modality, concatenated (return a dict with `logits` and `features` to project your own)")
PARTS = ("{name} is your own model: its parameters are counted as its calibrator and the rest, since precal cannot "
         "tell its encoders from its fusion")


def page_notes(page: str, ckpt: Checkpoint, batch: Optional[Batch] = None) -> List[str]:
    """The one-line notes ``page`` shows for ``ckpt``: none for precal's own models."""
    if not is_own(ckpt):
        return []
    name = f"`{ckpt.name}`"
    if page == "overview":
        return [PARTS.format(name=name)]
    if page in ("lab", "robustness"):
        return [WHOLE_MODEL.format(name=name)]
    if page == "embeddings" and batch is not None and not gives_features(ckpt, batch):
        return [NO_FEATURES.format(name=name)]
    return []
