"""Checkpoints of a user's own model, and such a model opened without one.

A checkpoint of an own model is a precal checkpoint folder like any other (safetensors weights,
``config.json``, metrics, history) whose ``config.json`` holds an ``own_model`` section instead of
``model``: the factory that builds the model (``FILE.py:NAME`` or ``package.module:NAME``), the
SHA-256 of its file and the calibrator switch it was trained with. It records *which* code built
the model, never the code itself, and it loads only when the user names the same factory again
(``--model``): precal runs a model's code only when the user asks for it on the command line. A
factory file that changed since training is noticed (its SHA-256 differs): the checkpoint still
loads when the weights fit, with a one-line note, because a researcher's file changes for many
reasons (a comment, a new option) that do not touch the trained model.

Without a checkpoint (``--model F [--weights W] --data DIR``) the model is built on the data's
schema, its weights read from ``W`` (a safetensors state dict; never a pickle) or left as the
factory made them, and the inputs preprocessed with statistics fitted on the data's training split
at their native lengths.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from safetensors.torch import save_file

from precal import __version__
from precal.checkpoint import (CONFIG_FILE, FORMAT_NAME, FORMAT_VERSION, HISTORY_FILE, METRICS_FILE,
                               OWN_MODEL_SECTION, WEIGHTS_FILE, Checkpoint, CheckpointError, _refuse_pickle,
                               _training_section, check_finite, file_sha256, load_checkpoint, load_weights,
                               read_config, read_records, recorded_factory, resolve_checkpoint_dir)
from precal.data.dataset import Preprocessor
from precal.data.schema import DatasetSchema, SchemaError
from precal.data.storage import HEADER_FILE, MultimodalData, load_dataset
from precal.limits import check_bool, check_object
from precal.own_model import FactorySpec, OwnModel, OwnModelError, build_own_model
from precal.safe_write import CHECKPOINT, write_folder


@dataclass
class OwnCheckpoint(Checkpoint):
    """A :class:`~precal.checkpoint.Checkpoint` whose model is a user's (:class:`OwnModel`).

    ``folder`` is False for a model opened without a checkpoint (``--model F [--weights W]``): its
    ``path`` is then the weights file (else the factory's file), and nothing is ever written there."""

    factory: str = ""
    folder: bool = True
    weights: Optional[Path] = None  # the safetensors file the weights came from (None: as the factory made them)
    notes: List[str] = field(default_factory=list)  # one-line remarks for the user (a changed factory file)
    _fingerprint: str = ""

    @property
    def name(self) -> str:
        if self.folder:
            return self.path.name
        spec = FactorySpec.parse(self.factory)
        return spec.short + (f" + {self.weights.name}" if self.weights else " (untrained)")

    @property
    def fingerprint(self) -> str:
        """The weights *and* the code: a changed factory file is a different model for every cache."""
        return self._fingerprint


def _state_digest(model: OwnModel) -> str:
    h = hashlib.sha256()
    for k, v in model.net.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _fingerprint(model: OwnModel, weights: Optional[Path]) -> str:
    part = file_sha256(weights) if weights is not None else _state_digest(model)
    return hashlib.sha256(f"{model.source_sha256}|{part}".encode()).hexdigest()[:16]


def save_own_checkpoint(directory: Path | str, model: OwnModel, preprocessor: Preprocessor,
                        training: Optional[Dict[str, Any]] = None, metrics: Optional[Dict[str, Any]] = None,
                        history: Optional[List[Dict[str, Any]]] = None, overwrite: bool = False,
                        inputs: Sequence[Path | str] = ()) -> Path:
    """Write an own model's checkpoint folder atomically, as :func:`precal.checkpoint.save_checkpoint`
    does for precal's models. The weights are the user module's own state dict (the keys its
    ``state_dict()`` has), so ``--weights CK/model.safetensors`` also reads them."""
    if model.spec is None:
        raise OwnModelError("an own model's checkpoint needs the factory that built it")

    def write(tmp: Path) -> None:
        state = {k: v.detach().cpu().contiguous() for k, v in model.net.state_dict().items()}
        save_file(state, str(tmp / WEIGHTS_FILE), metadata={"format": FORMAT_NAME})
        config = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "precal_version": __version__,
            OWN_MODEL_SECTION: {"factory": str(model.spec), "sha256": model.source_sha256,
                                "calibration": bool(model.config.calibration),
                                "modalities": list(model.modalities)},
            "schema": model.schema.to_json(),
            "preprocessing": preprocessor.to_json(),
            "training": training or {},
        }
        for name, obj in ((CONFIG_FILE, config), (METRICS_FILE, metrics), (HISTORY_FILE, history)):
            if obj is not None:
                (tmp / name).write_text(json.dumps(obj, indent=1, allow_nan=True) + "\n")

    return write_folder(directory, CHECKPOINT, write, overwrite, inputs)


def is_own_checkpoint(path: Path | str) -> bool:
    """Whether a checkpoint folder holds an own model (read from config.json alone, no code run)."""
    try:
        return OWN_MODEL_SECTION in read_config(resolve_checkpoint_dir(path))
    except CheckpointError:
        return False


def load_own_checkpoint(path: Path | str, model: FactorySpec | str) -> OwnCheckpoint:
    """Load an own model's checkpoint with the factory the user named; every failure is one line.

    The factory must be the recorded one (same callable, in a file of the same name or the same
    module). A file whose SHA-256 differs from the recorded one still loads when the weights fit its
    model, with a note in ``notes``; when they do not fit, the error says the file changed."""
    spec = FactorySpec.parse(model) if isinstance(model, str) else model
    directory = resolve_checkpoint_dir(path)
    config = read_config(directory)
    if OWN_MODEL_SECTION not in config:
        raise CheckpointError(f"checkpoint {directory.name} holds one of precal's own models, not one built by "
                              f"a factory: open it without --model")
    recorded = recorded_factory(config, directory)
    try:
        recorded_spec = FactorySpec.parse(recorded)
    except OwnModelError:
        raise CheckpointError(f"{directory / CONFIG_FILE}: own_model.factory {recorded[:200]!r} is not "
                              "FILE.py:NAME or package.module:NAME") from None
    if not spec.same_factory(recorded_spec):
        raise CheckpointError(f"checkpoint {directory.name} was trained with --model {recorded}, not {spec}: "
                              f"pass --model {recorded}")
    section = check_object(config[OWN_MODEL_SECTION], f"{OWN_MODEL_SECTION} section")
    sha = section.get("sha256")
    calibration = check_bool(section.get("calibration", True), f"{OWN_MODEL_SECTION}.calibration")
    for key in ("schema", "preprocessing"):
        if key not in config:
            raise CheckpointError(f"{directory / CONFIG_FILE} is missing the section {key!r}")
    try:
        schema = DatasetSchema.from_json(config["schema"])
        preprocessor = Preprocessor.from_json(config["preprocessing"])
        preprocessor.check(schema)
        training = _training_section(config.get("training", {}))
    except (SchemaError, ValueError, TypeError, KeyError, IndexError) as exc:
        raise CheckpointError(f"{directory.name}: invalid config: {exc}") from exc
    own = build_own_model(spec, schema, calibration=calibration)
    changed = sha is not None and own.source_sha256 is not None and sha != own.source_sha256
    try:
        state = load_weights(directory / WEIGHTS_FILE, directory.name, own.net)
    except CheckpointError as exc:
        if changed:
            raise CheckpointError(f"{spec.module} has changed since checkpoint {directory.name} was trained "
                                  f"(SHA-256 {sha[:12]}…, now {own.source_sha256[:12]}…) and its weights no longer "
                                  f"fit: {exc}") from None
        raise
    check_finite(directory.name, state)
    own.net.load_state_dict(state, strict=True)
    own.eval()
    metrics, history = read_records(directory)
    notes = [f"{spec.module} has changed since {directory.name} was trained (SHA-256 {sha[:12]}…, now "
             f"{own.source_sha256[:12]}…); its weights still fit, but results may differ from the recorded "
             "ones"] if changed else []
    return OwnCheckpoint(directory, own, own.schema, preprocessor, training, metrics, history, factory=str(spec),
                         folder=True, weights=directory / WEIGHTS_FILE, notes=notes,
                         _fingerprint=_fingerprint(own, directory / WEIGHTS_FILE))


def open_checkpoint(path: Path | str, model: Optional[FactorySpec | str] = None) -> Checkpoint:
    """Any checkpoint folder: an own model's with the factory the user named (``model``), one of
    precal's own models otherwise (``model`` is then not needed; naming one is refused, so that a
    mix-up does not pass unnoticed)."""
    if is_own_checkpoint(path):
        if model is None:
            return load_checkpoint(path)  # raises OwnModelRequired, naming the factory to pass
        return load_own_checkpoint(path, model)
    if model is not None:
        raise CheckpointError(f"checkpoint {Path(path).name} is not an own model's checkpoint; open it without "
                              f"--model")
    return load_checkpoint(path)


def own_model_without_checkpoint(model: FactorySpec | str, data: MultimodalData, data_dir: Path | str,
                                 weights: Optional[Path | str] = None, train_split: str = "train") -> OwnCheckpoint:
    """A user's model on a data set without a checkpoint: built by the factory on the data's schema,
    weights from a safetensors file (or as the factory made them), inputs preprocessed with
    statistics of ``train_split`` at their native lengths."""
    spec = FactorySpec.parse(model) if isinstance(model, str) else model
    own = build_own_model(spec, data.schema)
    weights_path = None
    if weights is not None:
        weights_path = Path(weights)
        if not weights_path.is_file():
            raise CheckpointError(f"--weights: no such file {weights_path}")
        _refuse_pickle(weights_path)
        state = load_weights(weights_path, weights_path.name, own.net)
        check_finite(weights_path.name, state)
        own.net.load_state_dict(state, strict=True)
    own.eval()
    indices = data.split(train_split)
    if len(indices) == 0:
        raise ValueError(f"split {train_split!r} of data set {data.schema.name!r} is empty: the normalisation "
                         "statistics are fitted on it")
    pre = Preprocessor().fit(data, indices)
    path = (weights_path if weights_path is not None
            else Path(spec.module) if spec.is_file else Path.cwd() / spec.module).resolve()
    training = {"data": str(data_dir), "model": str(spec)}
    return OwnCheckpoint(path, own, own.schema, pre, training, {}, [], factory=str(spec), folder=False,
                         weights=weights_path, _fingerprint=_fingerprint(own, weights_path))


def single_dataset_dir(data_dir: Path | str | None) -> Path:
    """``--data`` for a model without a checkpoint: one data set folder (there is no recorded data
    set name to pick one from a folder of data sets)."""
    if data_dir is None:
        raise ValueError("--model without a checkpoint needs --data DIR (a data set folder)")
    path = Path(data_dir)
    if not path.is_dir():
        raise CheckpointError(f"data folder {path} does not exist")
    if not (path / HEADER_FILE).is_file():
        inside = sorted(p.name for p in path.iterdir() if (p / HEADER_FILE).is_file())
        hint = f" (it holds the data sets {', '.join(inside)}: name one of them)" if inside else ""
        raise CheckpointError(f"--data {path} is not a data set folder{hint}")
    return path


def open_own_model(model: FactorySpec | str, data_dir: Path | str | None,
                   weights: Optional[Path | str] = None) -> OwnCheckpoint:
    """:func:`own_model_without_checkpoint` on the data set folder ``data_dir``."""
    path = single_dataset_dir(data_dir)
    return own_model_without_checkpoint(model, load_dataset(path), path, weights)


def is_own(ckpt: Checkpoint) -> bool:
    return isinstance(ckpt, OwnCheckpoint)


__all__ = ["OwnCheckpoint", "is_own", "is_own_checkpoint", "load_own_checkpoint", "open_checkpoint",
           "open_own_model", "own_model_without_checkpoint", "save_own_checkpoint", "single_dataset_dir"]
