"""Training with validation-based model selection and a per-epoch training-dynamics log.

Every run is seeded end to end (initialisation, shuffling, augmentation) and writes a checkpoint
folder with weights, config, metrics and the history that the dashboard's "Training dynamics" page
plots. Runs under ``torchrun`` use PyTorch DDP (gloo on CPU): each process trains on its shard of
every epoch's permutation and gradients are averaged, so a 2-process run trains the same model as a
1-process run with the same global batch.
"""

from __future__ import annotations

import copy
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from precal.calibration_losses import AUX_LOSSES, gate_ranking_loss
from precal.checkpoint import save_checkpoint
from precal.data.batch import Batch
from precal.data.dataset import MultimodalDataset, Preprocessor
from precal.data.schema import DatasetSchema, unknown_modality_message
from precal.data.storage import MultimodalData, load_dataset
from precal.inference import Predictions, predict, unimodal_probe_logits
from precal.metrics import compute_metrics, higher_is_better, primary_metric
from precal.models.model import ModelOutput, MultimodalModel
from precal.own_checkpoint import save_own_checkpoint
from precal.own_model import OwnModel, build_own_model
from precal.safe_write import CHECKPOINT, check_output_folder
from precal.training.augment import (GeometryAugment, mixup, modality_dropout, noise_augment, recombine_augment,
                                     swap_augment, time_augment)
from precal.training.checks import check_names, check_train_config
from precal.training.config import TrainConfig
from precal.training.distributed import average_gradients, barrier, broadcast_state, process_group
from precal.training.weight_average import WeightAverage, recompute_batch_norm


@dataclass
class TrainResult:
    model: MultimodalModel
    preprocessor: Preprocessor
    history: List[Dict[str, Any]]
    metrics: Dict[str, Any]
    seconds: float
    checkpoint: Optional[Path] = None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def task_loss(logits: Tensor, labels: Tensor, task: str, label_smoothing: float,
              mixed: Optional[Tuple[Tensor, Tensor]] = None) -> Tensor:
    """The task's loss; ``mixed`` = (partner labels, partner weight w) of mixup-blended samples,
    whose target is their own label with weight 1 - w and the partner's with weight w."""
    if task == "classification":
        if mixed is None:
            return F.cross_entropy(logits, labels, label_smoothing=label_smoothing)
        other, weight = mixed
        own = F.cross_entropy(logits, labels, label_smoothing=label_smoothing, reduction="none")
        theirs = F.cross_entropy(logits, other, label_smoothing=label_smoothing, reduction="none")
        return ((1 - weight) * own + weight * theirs).mean()
    if mixed is not None:
        labels = (1 - mixed[1]) * labels + mixed[1] * mixed[0]
    return F.l1_loss(logits[:, 0], labels)


def unimodal_loss(out: ModelOutput, modalities: List[str], labels: Tensor, swapped: Tensor, task: str,
                  label_smoothing: float) -> Tensor:
    """Mean over modalities of each encoder summary's own classification loss, on the rows where
    the modality is present and its own (a swapped-in modality belongs to another label)."""
    losses = []
    for i, n in enumerate(modalities):
        rows = out.report.present[:, i] & ~swapped[:, i]
        if rows.any():
            losses.append(task_loss(out.unimodal_logits[n][rows], labels[rows], task, label_smoothing))
    return torch.stack(losses).mean() if losses else out.logits.new_zeros(())


def _point_index(schema: DatasetSchema, name: str, point: str, verb: str) -> int:
    """The index of a named point of a point-sequence modality, with errors that name the fix."""
    spec = schema.modality(name) if name in schema.modality_names else None
    if spec is None:
        raise ValueError(unknown_modality_message(name, schema.modality_names))
    if spec.kind != "time_series" or len(spec.step_shape) != 2:
        raise ValueError(f"cannot {verb} {name!r}: only point sequences (steps of shape (points, coords)) "
                         f"can be {verb}d, its steps are {tuple(spec.step_shape)}")
    points = list(schema.extra.get("joint_names", []))
    if point not in points:
        raise ValueError(f"unknown point {point!r} for {name!r}; the data set names: {', '.join(points) or 'none'}")
    return points.index(point)


def root_indices(schema: DatasetSchema, centre: Dict[str, str]) -> Dict[str, int]:
    """Resolve ``{modality: root point name}`` to point indices."""
    return {name: _point_index(schema, name, root, "centre") for name, root in centre.items()}


def segment_indices(schema: DatasetSchema, scale: Dict[str, str]) -> Dict[str, Tuple[int, int]]:
    """Resolve ``{modality: "POINT:POINT"}`` to the two point indices of the unit segment."""
    out: Dict[str, Tuple[int, int]] = {}
    for name, segment in scale.items():
        a, sep, b = segment.partition(":")
        if not sep or not a or not b or a == b:
            raise ValueError(f"--scale expects NAME=POINT:POINT with two different points "
                             f"(e.g. skeleton=hip_center:shoulder_center), got {name}={segment}")
        out[name] = (_point_index(schema, name, a, "scale"), _point_index(schema, name, b, "scale"))
    return out


def prepare_data(data: MultimodalData, cfg: TrainConfig) -> tuple[Preprocessor, Dict[str, MultimodalDataset]]:
    """Fit preprocessing on the training split only, then build every split that is needed."""
    names = list(cfg.modalities) or data.schema.modality_names
    check_names(cfg, data.schema)
    pre = Preprocessor(lengths=dict(cfg.lengths), centre=root_indices(data.schema, cfg.centre),
                       scale=segment_indices(data.schema, cfg.scale))
    pre.check(data.schema)
    for role, split in (("training", cfg.train_split), ("validation", cfg.val_split)):
        if split is not None and len(_split_indices(data, split, role)) == 0:
            raise ValueError(f"the {role} split {split!r} is empty")
    pre.fit(data, data.split(cfg.train_split))
    splits = {cfg.train_split, *([cfg.val_split] if cfg.val_split else []),
              *[s for s in cfg.eval_splits if s in data.splits and len(data.splits[s])]}
    return pre, {s: MultimodalDataset(data, data.split(s), pre, names) for s in splits}


def _split_indices(data: MultimodalData, split: str, role: str) -> np.ndarray:
    """A split's indices, with an error that says how to name another validation split."""
    try:
        return data.split(split)
    except KeyError as exc:
        hint = (" (name another with --val-split NAME, or pass --val-split none with --selection last)"
                if role == "validation" else "")
        raise KeyError(f"{role} {exc.args[0]}{hint}") from None


SELECTIONS = ("best", "last")


def check_selection(cfg: TrainConfig) -> None:
    """Refuse settings under which validation would choose on data the model was trained on.

    Why "last" exists: UTD-MHAD's validation split (a trial of the training subjects) saturates at
    100%, so it cannot choose an epoch anyway; training on it as well and keeping the final epoch of
    a budget fixed on inner cross-subject folds uses a quarter more data."""
    if cfg.selection not in SELECTIONS:
        raise ValueError(f"unknown selection {cfg.selection!r}; expected one of {', '.join(SELECTIONS)}")
    trained = cfg.train_split.split("+")
    if cfg.selection == "best" and cfg.val_split is None:
        raise ValueError("selection 'best' needs a validation split to choose the epoch: name it with "
                         "--val-split NAME, or keep the final epoch with selection 'last'")
    if cfg.selection == "best" and cfg.val_split in trained:
        raise ValueError(f"the validation split {cfg.val_split!r} is also trained on (train split "
                         f"{cfg.train_split!r}), so it cannot choose the epoch: use selection 'last'")
    if cfg.selection == "last" and cfg.average_epochs:
        raise ValueError("--average-epochs needs validation to choose between the average and the best "
                         "epoch; it cannot be combined with selection 'last'")


def train(cfg: TrainConfig, out: Optional[Path | str] = None, progress: bool = True,
          data: Optional[MultimodalData] = None, overwrite: bool = False) -> TrainResult:
    """Train one model; write a checkpoint to ``out`` (rank 0 only) if given. An existing ``out``
    is replaced only if it is a precal checkpoint and ``overwrite`` is set (checked before training)."""
    check_train_config(cfg)
    if out is not None:
        check_output_folder(out, CHECKPOINT, overwrite, inputs=[cfg.data], option="--out")
    if not 0 <= cfg.average_epochs <= cfg.epochs:
        raise ValueError(f"--average-epochs must be between 0 and the number of epochs ({cfg.epochs}), "
                         f"got {cfg.average_epochs}")
    if not 0 <= cfg.mixup <= 0.5:
        raise ValueError(f"--mixup must be between 0 and 0.5 (each sample's own label stays the larger part), "
                         f"got {cfg.mixup}")
    check_selection(cfg)
    start = time.perf_counter()
    rank, world = process_group()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    data = data if data is not None else load_dataset(cfg.data)
    for name in [*cfg.velocity, *cfg.norms]:
        if name not in data.schema.modality_names:
            raise ValueError("derived inputs: " + unknown_modality_message(name, data.schema.modality_names))
    pre, sets = prepare_data(data, cfg)
    task = data.schema.task
    geometry = GeometryAugment(cfg.rotate_augment, data.schema, pre.mean, pre.std, cfg.shear_augment) \
        if cfg.rotate_augment or cfg.shear_augment else None
    kinds = {m.name: m.kind for m in data.schema.modalities}
    train_batch = sets[cfg.train_split].full_batch()
    val_batch = sets[cfg.val_split].full_batch() if cfg.val_split else None
    model = build_model(cfg, data.schema)
    model.fit_derived_inputs(train_batch, pre.mean, pre.std)
    broadcast_state(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    per_rank = max(1, cfg.batch_size // world)
    steps_per_epoch = max(1, train_batch.size // cfg.batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, epochs=cfg.epochs,
                                                    steps_per_epoch=steps_per_epoch, pct_start=0.25)
    gen = torch.Generator().manual_seed(cfg.seed)
    metric_name = primary_metric(task)
    sign = 1.0 if higher_is_better(metric_name) else -1.0
    best = (-float("inf"), float("inf"))
    best_state: Dict[str, Tensor] = copy.deepcopy(model.state_dict())
    best_epoch = 0
    history: List[Dict[str, Any]] = []
    average = WeightAverage() if cfg.average_epochs > 0 else None
    bar = tqdm(range(1, cfg.epochs + 1), desc=f"train {model.config.backbone} cal={'on' if cfg.calibration else 'off'}",
               disable=not progress or rank != 0, unit="epoch")
    for epoch in bar:
        t0 = time.perf_counter()
        stats = _train_epoch(model, optimizer, scheduler, train_batch, cfg, gen, task, rank, world,
                             per_rank, steps_per_epoch, geometry, kinds)
        record = _epoch_record(model, val_batch, data, task, cfg, stats, epoch, optimizer)
        record["time_s"] = round(time.perf_counter() - t0, 3)
        history.append(record)
        score = (sign * record.get(f"val_{metric_name}", 0.0), record.get("val_loss", 0.0))
        if cfg.selection == "last" or score[0] > best[0] or (score[0] == best[0] and score[1] < best[1]):
            best, best_epoch = score, epoch
            best_state = copy.deepcopy(model.state_dict())
        if average is not None and epoch > cfg.epochs - cfg.average_epochs:
            average.add(model)
        val = record.get(f"val_{metric_name}", float("nan"))
        bar.set_postfix(loss=f"{stats['train_loss']:.3f}", val=f"{val:.3f}", best=f"{sign * best[0]:.3f}@{best_epoch}")
    metrics: Dict[str, Any] = {"selected_epoch": best_epoch,
                               "selection_metric": "last_epoch" if cfg.selection == "last" else f"val_{metric_name}"}
    if average is not None:
        averaged = _averaged_candidate(model, average, train_batch, val_batch, data, task, cfg, metric_name)
        metrics["weight_average"] = averaged["summary"]
        if (sign * averaged["score"], -averaged["loss"]) > (best[0], -best[1]):  # better metric, or lower loss
            best_state = averaged["state"]
            metrics["weight_average"]["selected"] = True
    model.load_state_dict(best_state)
    model.eval()
    for split in cfg.eval_splits:
        if split in sets:
            preds = predict(model, sets[split].full_batch())
            metrics[split] = compute_metrics(task, preds.labels, preds.logits, data.schema.class_names)
    seconds = time.perf_counter() - start
    metrics["train_seconds"] = round(seconds, 1)
    metrics["world_size"] = world
    path = None
    if out is not None and rank == 0:
        training = {**cfg.to_json(), "world_size": world}
        save = save_own_checkpoint if isinstance(model, OwnModel) else save_checkpoint
        path = save(out, model, pre, training=training, metrics=metrics, history=history, overwrite=overwrite,
                    inputs=[cfg.data])
    barrier(world)
    return TrainResult(model, pre, history, metrics, seconds, path)


def build_model(cfg: TrainConfig, schema: DatasetSchema) -> MultimodalModel | OwnModel:
    """precal's model of the config's architecture, or the user's own (``cfg.model``, a factory
    called with the schema of the modalities trained on; its initial weights follow ``cfg.seed``)."""
    if not cfg.model:
        return MultimodalModel(schema, cfg.model_config())
    names = list(cfg.modalities) or schema.modality_names
    return build_own_model(cfg.model, schema.subset(names), seed=cfg.seed, calibration=cfg.calibration)


def _averaged_candidate(model: MultimodalModel, average: WeightAverage, train_batch: Batch, val_batch: Batch,
                        data: MultimodalData, task: str, cfg: TrainConfig, metric_name: str) -> Dict[str, Any]:
    """The averaged weights (BatchNorm statistics recomputed on the un-augmented training split)
    and their validation score, so that validation chooses between them and the best epoch."""
    model.load_state_dict(average.state_dict(model))
    recompute_batch_norm(model, train_batch, cfg.batch_size)
    _, val_metrics, loss = _validate(model, val_batch, data, task)
    first = cfg.epochs - average.count + 1
    summary = {"epochs": [first, cfg.epochs], f"val_{metric_name}": float(val_metrics[metric_name]),
               "val_loss": loss, "selected": False}
    return {"state": copy.deepcopy(model.state_dict()), "score": float(val_metrics[metric_name]), "loss": loss,
            "summary": summary}


def _train_epoch(model: MultimodalModel, optimizer: torch.optim.Optimizer,
                 scheduler: Any, batch: Batch, cfg: TrainConfig, gen: torch.Generator, task: str,
                 rank: int, world: int, per_rank: int, steps: int,
                 geometry: Optional[GeometryAugment] = None,
                 kinds: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
    model.train()
    perm = torch.randperm(batch.size, generator=gen)
    totals = {"loss": 0.0, "correct": 0.0, "n": 0}
    encoders = model.encoders  # an own model may not say which parameters encode which modality
    grad_norms = {n: 0.0 for n in model.modalities if n in encoders}
    for step in range(steps):
        rows = perm[step * cfg.batch_size:(step + 1) * cfg.batch_size]
        sub = batch.select(rows)
        if geometry is not None:  # natural variation first, then the corruptions
            sub = geometry(sub, gen)
        sub = time_augment(sub, cfg.time_augment, gen, kinds or {})
        sub = recombine_augment(sub, cfg.recombine_augment, gen)
        sub, partner, mix_weight = mixup(sub, cfg.mixup, gen)
        mix_labels = sub.labels[partner] if sub.labels is not None else None
        sub = modality_dropout(sub, cfg.modality_dropout, gen)  # same draws on every rank
        sub = noise_augment(sub, cfg.noise_augment, gen)
        sub, swapped = swap_augment(sub, cfg.swap_augment, gen)
        if world > 1:
            mine = slice(rank * per_rank, (rank + 1) * per_rank)
            sub, swapped = sub.select(mine), swapped[mine]
            mix_labels, mix_weight = (None if mix_labels is None else mix_labels[mine]), mix_weight[mine]
        out = model(sub)
        mixed = (mix_labels, mix_weight) if cfg.mixup > 0 and mix_labels is not None else None
        loss = task_loss(out.logits, sub.labels, task, cfg.label_smoothing, mixed)
        if cfg.calibration and cfg.aux_weight > 0:
            consistent = ~swapped.any(dim=1, keepdim=True).expand_as(swapped)  # whole sample is clean
            loss = loss + cfg.aux_weight * AUX_LOSSES[cfg.aux_loss](out.report, consistent)
        if cfg.calibration and cfg.gate_loss > 0 and swapped.any():
            loss = loss + cfg.gate_loss * gate_ranking_loss(out.report, swapped)
        if cfg.unimodal_loss > 0:
            loss = loss + cfg.unimodal_loss * unimodal_loss(out, model.modalities, sub.labels, swapped, task,
                                                            cfg.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        average_gradients(model, world)
        for n in grad_norms:
            grads = [p.grad.norm() ** 2 for p in encoders[n].parameters() if p.grad is not None]
            grad_norms[n] += float(torch.stack(grads).sum().sqrt()) if grads else 0.0
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        scheduler.step()
        totals["loss"] += float(loss.detach()) * sub.size
        if task == "classification":
            totals["correct"] += float((out.logits.argmax(1) == sub.labels).sum())
        totals["n"] += sub.size
    n = max(1, totals["n"])
    return {"train_loss": totals["loss"] / n,
            "train_accuracy": totals["correct"] / n if task == "classification" else None,
            "grad_norm": {k: v / steps for k, v in grad_norms.items()}}


def _validate(model: MultimodalModel, val_batch: Batch, data: MultimodalData,
              task: str) -> Tuple[Predictions, Dict[str, Any], float]:
    """Predictions, metrics and loss (without label smoothing) on the validation split."""
    preds = predict(model, val_batch)
    metrics = compute_metrics(task, preds.labels, preds.logits, data.schema.class_names)
    loss = float(task_loss(torch.from_numpy(preds.logits), torch.from_numpy(preds.labels), task, 0.0))
    return preds, metrics, loss


def _epoch_record(model: MultimodalModel, val_batch: Optional[Batch], data: MultimodalData, task: str,
                  cfg: TrainConfig, stats: Dict[str, Any], epoch: int,
                  optimizer: torch.optim.Optimizer) -> Dict[str, Any]:
    """Validation metrics plus the calibrator's and each modality's dynamics for one epoch (the
    training statistics alone when the run has no validation split)."""
    record: Dict[str, Any] = {
        "epoch": epoch,
        "lr": optimizer.param_groups[0]["lr"],
        "train_loss": stats["train_loss"],
        "train_accuracy": stats["train_accuracy"],
    }
    if val_batch is None:
        return record
    preds, val_metrics, val_loss = _validate(model, val_batch, data, task)
    record["val_loss"] = val_loss
    record.update({f"val_{k}": v for k, v in val_metrics.items() if isinstance(v, (int, float))})
    record["modalities"] = modality_dynamics(model, val_batch, preds, data, task, stats["grad_norm"])
    return record


def modality_dynamics(model: MultimodalModel, batch: Batch, preds: Predictions, data: MultimodalData,
                      task: str, grad_norm: Dict[str, float]) -> Dict[str, Dict[str, float]]:
    """Per modality: gate and cue statistics, a unimodal probe and the encoder's gradient norm."""
    out: Dict[str, Dict[str, float]] = {}
    metric = primary_metric(task)
    probes = unimodal_probe_logits(model, batch)
    for i, n in enumerate(model.modalities):
        probe_metrics = compute_metrics(task, preds.labels, probes[n], data.schema.class_names)
        out[n] = {
            "alpha_mean": float(preds.alpha[:, i].mean()), "alpha_std": float(preds.alpha[:, i].std()),
            "beta_mean": float(preds.beta_mean[:, i].mean()), "beta_std": float(preds.beta_std[:, i].mean()),
            "support_mean": float(preds.support[:, i].mean()), "support_std": float(preds.support[:, i].std()),
            "conflict_mean": float(preds.conflict[:, i].mean()), "conflict_std": float(preds.conflict[:, i].std()),
            f"probe_{metric}": float(probe_metrics[metric]),
        }
        if n in grad_norm:
            out[n]["grad_norm"] = float(grad_norm[n])
    return out
