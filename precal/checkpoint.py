"""Safe checkpoints: safetensors weights + JSON for everything else; loading never runs code.

A checkpoint is a folder::

    model.safetensors   weights (tensors only; cannot carry code)
    config.json         format, precal version, model config, data schema, preprocessing
                        (fixed lengths + normalisation fitted on the training split), training args
    metrics.json        evaluation results (optional)
    history.json        per-epoch training dynamics (optional)

Pickle-based files (``.pt``, ``.pth``, ``.ckpt``, ``.pkl``, or anything starting with a pickle or
torch-zip signature) are refused: unpickling an untrusted file can execute arbitrary code.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from precal import __version__
from precal.data.dataset import Preprocessor
from precal.data.schema import DatasetSchema, SchemaError, unknown_modality_message
from precal.limits import check_object, read_json
from precal.models.model import ModelConfig, MultimodalModel
from precal.safe_write import CHECKPOINT, write_file, write_folder

FORMAT_NAME = "precal-checkpoint"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.json"
PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".bin")
OWN_MODEL_SECTION = "own_model"
"""config.json's section of a checkpoint of a user's own model (instead of ``model``): the factory
that builds it, the SHA-256 of its file and its calibrator switch (:mod:`precal.own_checkpoint`)."""


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded safely; the message names the problem in one line."""


class OwnModelRequired(CheckpointError):
    """A checkpoint of a user's own model, opened without naming its factory: precal runs a model's
    code only when the user names it (``--model``), never because a file says so."""

    def __init__(self, name: str, factory: str) -> None:
        self.factory = factory
        super().__init__(f"checkpoint {name} holds an own model built by {factory}; precal runs a model's code "
                         f"only when you name it: pass --model {factory}")


@dataclass
class Checkpoint:
    """A loaded checkpoint: the model (eval mode) and everything needed to feed it data."""

    path: Path
    model: MultimodalModel
    schema: DatasetSchema
    preprocessor: Preprocessor
    training: Dict[str, Any] = field(default_factory=dict)
    metrics: Dict[str, Any] = field(default_factory=dict)
    history: List[Dict[str, Any]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def config(self) -> ModelConfig:
        return self.model.config

    @property
    def fingerprint(self) -> str:
        """Content hash of the weights: the cache key for anything computed from this model."""
        return file_sha256(self.path / WEIGHTS_FILE)

    def check_modalities(self, names: List[str]) -> None:
        """Raise a readable error if data lacks a modality the model needs."""
        for n in self.model.modalities:
            if n not in names:
                raise CheckpointError(f"the data has no modality {n!r} that checkpoint {self.name} needs "
                                      f"(data has: {', '.join(names)})")


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def save_checkpoint(directory: Path | str, model: MultimodalModel, preprocessor: Preprocessor,
                    training: Optional[Dict[str, Any]] = None, metrics: Optional[Dict[str, Any]] = None,
                    history: Optional[List[Dict[str, Any]]] = None, overwrite: bool = False,
                    inputs: Sequence[Path | str] = ()) -> Path:
    """Write a checkpoint folder atomically (a crash never leaves a half-written checkpoint).

    An existing ``directory`` is replaced only if it is a precal checkpoint and ``overwrite`` is
    set; anything else (a user's folder, the working directory, one of ``inputs``) is refused with
    an :class:`~precal.safe_write.UnsafeWriteError` (see :mod:`precal.safe_write`)."""

    def write(tmp: Path) -> None:
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(tmp / WEIGHTS_FILE), metadata={"format": FORMAT_NAME})
        config = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "precal_version": __version__,
            "model": model.config.to_json(),
            "schema": model.schema.to_json(),
            "preprocessing": preprocessor.to_json(),
            "training": training or {},
        }
        _write_json(tmp / CONFIG_FILE, config)
        if metrics is not None:
            _write_json(tmp / METRICS_FILE, metrics)
        if history is not None:
            _write_json(tmp / HISTORY_FILE, history)

    return write_folder(directory, CHECKPOINT, write, overwrite, inputs)


def write_metrics(directory: Path | str, metrics: Dict[str, Any]) -> Path:
    """Replace the metrics file of an existing checkpoint (through a temporary file and a rename)."""
    return write_file(Path(directory) / METRICS_FILE, lambda tmp: _write_json(tmp, metrics))


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=1, sort_keys=False, allow_nan=True) + "\n")


def _read_json(path: Path, what: str) -> Any:
    return read_json(path, what, CheckpointError)


def _refuse_pickle(path: Path) -> None:
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise CheckpointError(
            f"{path.name} looks like a pickle-based PyTorch file; precal refuses to unpickle it because "
            "that can execute code. Save weights with safetensors (precal checkpoints are folders with "
            f"{WEIGHTS_FILE} + {CONFIG_FILE})"
        )
    if path.is_file():
        with open(path, "rb") as fh:
            head = fh.read(4)
        if head[:1] == b"\x80" or head[:2] == b"PK":
            raise CheckpointError(f"{path.name} is a pickle/zip archive, not a safetensors checkpoint; "
                                  "refusing to unpickle it")


def resolve_checkpoint_dir(path: Path | str) -> Path:
    """Accept the folder, its config.json or its model.safetensors; refuse pickles."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if path.is_file():
        _refuse_pickle(path)
        if path.name not in (CONFIG_FILE, WEIGHTS_FILE):
            raise CheckpointError(f"{path} is not a precal checkpoint: pass the folder holding "
                                  f"{WEIGHTS_FILE} and {CONFIG_FILE}")
        path = path.parent
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        if not (path / name).is_file():
            pickles = [p.name for p in path.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES]
            hint = f" (found {pickles[0]}, a pickle file, which precal refuses to load)" if pickles else ""
            raise CheckpointError(f"checkpoint folder {path} has no {name}{hint}")
    return path


def load_checkpoint(path: Path | str) -> Checkpoint:
    """Load and validate a checkpoint; every failure is a one-line :class:`CheckpointError`.

    Everything is checked before it is used: the config's fields (bounded, so that a few bytes
    cannot ask for gigabytes), the model's size (counted without allocating it), the weights'
    names and shapes (read from the safetensors header before any tensor is loaded)."""
    directory = resolve_checkpoint_dir(path)
    config = read_config(directory)
    if OWN_MODEL_SECTION in config:
        raise OwnModelRequired(directory.name, recorded_factory(config, directory))
    for key in ("model", "schema", "preprocessing"):
        if key not in config:
            raise CheckpointError(f"{directory / CONFIG_FILE} is missing the section {key!r}")
    try:
        schema = DatasetSchema.from_json(config["schema"])
        model_config = ModelConfig.from_json(check_object(config["model"], "the model section"))
        for n in model_config.modalities:
            if n not in schema.modality_names:
                raise CheckpointError(f"{directory.name}: model config names {unknown_modality_message(n, schema.modality_names)}")
        preprocessor = Preprocessor.from_json(config["preprocessing"])
        preprocessor.check(schema)
        training = _training_section(config.get("training", {}))
        model = MultimodalModel(schema, model_config)
    except CheckpointError:
        raise
    except (SchemaError, ValueError, TypeError, KeyError, IndexError) as exc:
        raise CheckpointError(f"{directory.name}: invalid config: {exc}") from exc
    state = load_weights(directory / WEIGHTS_FILE, directory.name, model)
    check_finite(directory.name, state)
    model.load_state_dict(state, strict=True)
    model.eval()
    metrics, history = read_records(directory)
    return Checkpoint(directory, model, schema.subset(model.modalities), preprocessor, training, metrics, history)


def read_records(directory: Path) -> Tuple[Dict[str, Any], List[Dict[str, Any]]]:
    """metrics.json and history.json of a checkpoint folder (empty when absent), checked."""
    metrics = _read_json(directory / METRICS_FILE, "metrics") if (directory / METRICS_FILE).is_file() else {}
    if not isinstance(metrics, dict):
        raise CheckpointError(f"{directory / METRICS_FILE} must hold a JSON object, got {type(metrics).__name__}")
    history = _read_json(directory / HISTORY_FILE, "history") if (directory / HISTORY_FILE).is_file() else []
    _check_history(directory / HISTORY_FILE, history)
    return metrics, history


def read_config(directory: Path) -> Dict[str, Any]:
    """config.json of a checkpoint folder, with its format checked (nothing else is read)."""
    config = _read_json(directory / CONFIG_FILE, "config")
    if not isinstance(config, dict) or config.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{directory / CONFIG_FILE}: 'format' must be {FORMAT_NAME!r}")
    if config.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{directory.name}: checkpoint format_version {config.get('format_version')!r} "
                              f"is not supported (expected {FORMAT_VERSION})")
    return config


def recorded_factory(config: Dict[str, Any], directory: Path) -> str:
    """The factory an own-model checkpoint records (a string, checked: it is shown to the user)."""
    section = config.get(OWN_MODEL_SECTION)
    factory = section.get("factory") if isinstance(section, dict) else None
    if not isinstance(factory, str) or not factory or len(factory) > 1000 or not factory.isprintable():
        raise CheckpointError(f"{directory / CONFIG_FILE}: {OWN_MODEL_SECTION}.factory must be a string "
                              "FILE.py:NAME or package.module:NAME")
    return factory


def _training_section(training: Any) -> Dict[str, Any]:
    """The recorded training settings: an object whose few fields precal reads have the right type."""
    check_object(training, "the training section")
    for key in ("data", "train_split", "val_split", "selection"):
        if training.get(key) is not None and not isinstance(training[key], str):
            raise ValueError(f"training.{key} must be a string, got {type(training[key]).__name__}")
    return training


def _check_history(path: Path, history: Any) -> None:
    """history.json: a list of per-epoch objects whose ``modalities`` map names to objects."""
    if not isinstance(history, list):
        raise CheckpointError(f"{path} must hold a list of per-epoch objects, got {type(history).__name__}")
    for i, record in enumerate(history):
        if not isinstance(record, dict):
            raise CheckpointError(f"{path}: entry {i} must be an object, got {type(record).__name__}")
        mods = record.get("modalities", {})
        if not isinstance(mods, dict) or not all(isinstance(v, dict) for v in mods.values()):
            raise CheckpointError(f"{path}: entry {i}: 'modalities' must map modality names to objects")


def load_weights(path: Path, name: str, model: torch.nn.Module) -> Dict[str, torch.Tensor]:
    """Compare the header's tensor names and shapes with the model's, then load the tensors (a
    hostile header cannot make precal allocate more than the model it already accepted)."""
    try:
        with safe_open(str(path), "pt") as fh:
            shapes = {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()}
            _check_state(name, model, shapes)
            return {k: fh.get_tensor(k) for k in shapes}
    except CheckpointError:
        raise
    except (SafetensorError, OSError, ValueError, RuntimeError, TypeError) as exc:
        raise CheckpointError(f"{path} cannot be read as safetensors (truncated or corrupt?): "
                              f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc


def _check_state(name: str, model: torch.nn.Module, shapes: Dict[str, tuple]) -> None:
    expected = model.state_dict()
    missing = [k for k in expected if k not in shapes]
    unexpected = [k for k in shapes if k not in expected]
    if missing:
        raise CheckpointError(f"{name}: weights are missing {len(missing)} tensor(s), e.g. {missing[0]!r}")
    if unexpected:
        raise CheckpointError(f"{name}: weights have {len(unexpected)} unexpected tensor(s), "
                              f"e.g. {unexpected[0][:80]!r}")
    for k, v in expected.items():
        if tuple(shapes[k]) != tuple(v.shape):
            raise CheckpointError(f"{name}: tensor {k!r} has shape {tuple(shapes[k])}, "
                                  f"the config implies {tuple(v.shape)}")


def check_finite(name: str, state: Dict[str, torch.Tensor]) -> None:
    """Refuse weights holding NaN or infinite values.

    One pass over all floating-point weights first (hundreds of small tensors cost a call each:
    about 80 ms per checkpoint, which the dashboard paid for every checkpoint it opened); only if
    that finds a bad value are the tensors checked one by one, to name the culprit."""
    floats = [v.reshape(-1).float() for v in state.values() if v.is_floating_point() and v.numel()]
    if not floats or bool(torch.isfinite(torch.cat(floats)).all()):
        return
    for k, v in state.items():
        if v.is_floating_point() and not torch.isfinite(v).all():
            raise CheckpointError(f"{name}: tensor {k!r} contains NaN or infinite values")
