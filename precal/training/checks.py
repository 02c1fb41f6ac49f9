"""Range checks of a training run's settings, before any data is read or any tensor is built.

Why a module of its own: ``precal train`` takes some forty options, and each used to fail in its own
way when out of range (``--batch-size 0`` divided by zero, ``--threads -1`` raised inside PyTorch,
``--modality-dropout 1.5`` and ``--batch-size -3`` were silently accepted, ``--epochs -1`` was
reported as an ``--average-epochs`` error). Here every setting is checked in one place, in the order
of the command line's help, and the message names the option the user typed.
"""

from __future__ import annotations

from typing import Any, Dict

from precal.data.schema import DatasetSchema, unknown_modality_message
from precal.limits import (MAX_LENGTH, MAX_MODALITIES, MAX_THREADS, MAX_WIDTH, check_int, check_number, check_object,
                           check_probability, check_str, check_str_list)
from precal.training.config import TrainConfig, option_name

PROBABILITIES = ("modality_dropout", "noise_augment", "swap_augment", "recombine_augment", "time_augment")
"""Per-sample probabilities of the augmentations: each must lie in [0, 1]."""
MAX_EPOCHS = 100_000
MAX_BATCH = 1_000_000
MAX_SEED = 2 ** 32 - 1  # numpy's seed range


def option(name: str) -> str:
    """The command-line spelling of a TrainConfig field (``batch_size`` -> ``--batch-size``)."""
    return option_name(TrainConfig.__dataclass_fields__[name])


def check_train_config(cfg: TrainConfig) -> None:
    """Raise one ValueError naming the first setting out of range (architecture fields included,
    so that a bad ``--dim`` is reported before the data set is loaded)."""
    check_str(cfg.data, "--data")
    check_int(cfg.epochs, "--epochs", 1, MAX_EPOCHS)
    check_int(cfg.batch_size, "--batch-size", 1, MAX_BATCH)
    check_int(cfg.seed, "--seed", 0, MAX_SEED)
    check_number(cfg.lr, "--lr", 0.0, 100.0, lo_open=True)
    check_number(cfg.weight_decay, "--weight-decay", 0.0, 100.0)
    check_number(cfg.label_smoothing, "label_smoothing", 0.0, 1.0, hi_open=True)
    for name in PROBABILITIES:
        check_probability(getattr(cfg, name), option(name))
    for name in ("aux_weight", "gate_loss", "unimodal_loss"):
        check_number(getattr(cfg, name), option(name), 0.0, 1000.0)
    check_int(cfg.average_epochs, "--average-epochs", 0, cfg.epochs)
    check_int(cfg.threads, "--threads", 0, MAX_THREADS)
    check_int(cfg.dim, "--dim", 1, MAX_WIDTH)
    check_int(cfg.shared_dim, "--shared-dim", 1, MAX_WIDTH)
    check_number(cfg.dropout, "--dropout", 0.0, 1.0, hi_open=True)
    check_str_list(cfg.modalities, "--modalities", MAX_MODALITIES)
    check_str_list(cfg.velocity, "--velocity", MAX_MODALITIES)
    for name, steps in check_object(cfg.lengths, "--length").items():
        check_int(steps, f"--length {name}", 1, MAX_LENGTH)
    for field in ("centre", "scale", "norms"):
        for name, value in check_object(getattr(cfg, field), option(field)).items():
            check_str(value, f"{option(field)} {name}", 1000)
    for field in ("rotate_augment", "shear_augment"):
        for name, value in check_object(getattr(cfg, field), option(field)).items():
            check_number(value, f"{option(field)} {name}")
    check_str(cfg.train_split, "--train-split", 1000)
    if cfg.val_split is not None:
        check_str(cfg.val_split, "--val-split", 1000)
    cfg.model_config()  # the remaining architecture fields (backbone, encoders, gate) check themselves
    if cfg.typicality and cfg.batch_size < 2:
        raise ValueError("--typicality on needs --batch-size 2 or more: its reference of typical summaries is a "
                         "covariance, which one sample per batch cannot give")
    if cfg.model is not None:
        from precal.own_model import FactorySpec

        check_str(cfg.model, "--model", 1000)
        FactorySpec.parse(cfg.model)
        conflicts = cfg.own_model_conflicts()
        if conflicts:
            raise ValueError(f"{conflicts[0]} does not apply to --model: your factory builds the architecture "
                             "(precal's own backbone, encoders and calibrator settings are not used)")


def check_names(cfg: TrainConfig, schema: DatasetSchema) -> None:
    """Every modality a per-modality option names must exist in the data set (``--length smell=3``
    would otherwise be ignored without a word)."""
    named: Dict[str, Any] = {"--modalities": cfg.modalities, "--length": cfg.lengths,
                             "--rotate-augment": cfg.rotate_augment, "--shear-augment": cfg.shear_augment}
    for opt, names in named.items():
        for name in names:
            if name not in schema.modality_names:
                raise ValueError(f"{opt}: {unknown_modality_message(name, schema.modality_names)}")
