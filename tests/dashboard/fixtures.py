"""Fixture checkpoints for the dashboard's tests, built in a second or two: a small slice of the
real UTD-MHAD and AVLetters sample data, and a calibrated + uncalibrated pair of small models of each
with their calibrator's zero-initialised gate heads set to seeded random values (so that gates
actually respond to the inputs); nothing depends on /tmp or on shipped checkpoints.
:func:`tiny_checkpoints` is shared by the backend, app and browser tests (module-level cache: built
once per test session)."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path
from typing import Dict

import numpy as np
import torch

from precal.checkpoint import save_checkpoint
from precal.data.dataset import MultimodalDataset, Preprocessor
from precal.data.storage import MultimodalData, build_ragged, load_dataset, save_dataset
from precal.models.model import ModelConfig, MultimodalModel

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "sample_data" / "utd_mhad"
LENGTHS = {"inertial": 24, "skeleton": 12, "depth": 4}
AV_SOURCE = ROOT / "sample_data" / "avletters"
AV_LENGTHS = {"audio": 24, "lips": 4}
_CACHE: Dict[str, Path] = {}


def spread_gates(model: torch.nn.Module, train_batch) -> None:
    """Random gate weights (seeded) on ``model.calibrator``, so that an untrained test model's gates
    differ between samples and modalities; then one training-mode pass on ``train_batch`` gives the
    calibrator its reference of a typical training sample, as training does (before it, every gate
    sees zero evidence). Leaves the model in eval mode."""
    gen = torch.Generator().manual_seed(1)
    cal = model.calibrator
    with torch.no_grad():
        cal.alpha_weight.copy_(torch.randn(cal.alpha_weight.shape, generator=gen) * 2.0)
        cal.alpha_bias.copy_(torch.randn(cal.alpha_bias.shape, generator=gen) * 0.5)
        cal.beta_agreement.copy_(torch.randn(cal.beta_agreement.shape, generator=gen))
        cal.beta_discrepancy.copy_(torch.randn(cal.beta_discrepancy.shape, generator=gen))
        model.train()
        model(train_batch)
    model.eval()


def _subset(data: MultimodalData, per_class: Dict[str, int], classes=(0, 1, 2, 3)) -> MultimodalData:
    keep = {}
    for split, n in per_class.items():
        idx = data.split(split)
        keep[split] = [int(i) for c in classes for i in idx[data.labels[idx] == c][:n]]
    order = [i for s in keep for i in keep[s]]
    pos = {i: k for k, i in enumerate(order)}
    mods = {m: build_ragged([data.modalities[m].raw(i) for i in order], data.schema.modality(m).step_shape,
                            data.modalities[m].values.dtype) for m in data.schema.modality_names}
    return MultimodalData(data.schema, data.sample_ids[order], data.labels[order], mods,
                          {s: np.array([pos[i] for i in v], dtype=np.int64) for s, v in keep.items()},
                          groups={k: v[order] for k, v in data.groups.items()})


def _history(epochs: int, modalities, calibrated: bool, seed: int):
    rng = np.random.default_rng(seed)
    out = []
    for e in range(1, epochs + 1):
        mods = {m: {"alpha_mean": 1.0 + (0.1 * rng.normal() if calibrated else 0.0), "alpha_std": 0.05,
                    "beta_mean": 1.0, "beta_std": 0.01, "support_mean": float(rng.uniform(-0.5, 0.5)),
                    "support_std": 0.1, "conflict_mean": float(rng.uniform(0.5, 1.5)), "conflict_std": 0.1,
                    "probe_accuracy": float(rng.uniform(0.2, 0.6)), "grad_norm": float(rng.uniform(0.1, 1.0))}
                for m in modalities}
        out.append({"epoch": e, "lr": 1e-3, "train_loss": 2.0 / e, "train_accuracy": 0.3 * e / epochs,
                    "val_loss": 2.2 / e, "val_accuracy": 0.25 * e / epochs, "val_macro_f1": 0.2 * e / epochs,
                    "val_n": 8, "modalities": mods, "time_s": 1.0})
    return out


def _tiny_pair(source: Path, name: str, lengths: Dict[str, int], out: Path) -> Dict[str, Path]:
    data = _subset(load_dataset(source), {"train": 4, "val": 2, "test": 3})
    data_dir = save_dataset(data, out / "data" / source.name)
    pre = Preprocessor(lengths=dict(lengths)).fit(data, data.split("train"))
    paths = {"data": data_dir}
    for flag in ("on", "off"):
        torch.manual_seed(0)
        cfg = ModelConfig(backbone="sequence", calibration=flag == "on", dim=16, shared_dim=8, fusion_layers=1,
                          heads=2, head_hidden=16, dropout=0.0)
        model = MultimodalModel(data.schema, cfg)
        spread_gates(model, MultimodalDataset(data, data.split("train"), pre, model.modalities).full_batch())
        training = {"data": str(data_dir), "backbone": "sequence", "calibration": flag == "on", "epochs": 3,
                    "lengths": dict(lengths)}
        metrics = {"selected_epoch": 3, "val": {"accuracy": 0.25, "macro_f1": 0.2},
                   "test": {"accuracy": 0.25, "macro_f1": 0.2}}
        paths[flag] = save_checkpoint(out / "checkpoints" / f"{name}_cal{flag}", model, pre, training=training,
                                      metrics=metrics, history=_history(3, model.modalities, flag == "on", 0))
    return paths


def build_tiny_checkpoints(out: Path) -> Dict[str, Path]:
    """Small data sets and a calibrated + uncalibrated checkpoint pair of each, in ``out``:
    UTD-MHAD (keys data, on, off) and AVLetters (keys av_data, av_on, av_off)."""
    paths = _tiny_pair(SOURCE, "tiny_sequence", LENGTHS, out)
    av = _tiny_pair(AV_SOURCE, "tinyav_sequence", AV_LENGTHS, out)
    paths.update({f"av_{k}": v for k, v in av.items()})
    return paths


def tiny_checkpoints() -> Dict[str, Path]:
    """Built once per process (shared by the backend, app and browser tests)."""
    if "on" not in _CACHE:
        tmp = Path(tempfile.mkdtemp(prefix="precal-dash-test-"))
        atexit.register(shutil.rmtree, tmp, True)
        _CACHE.update(build_tiny_checkpoints(tmp))
    return dict(_CACHE)


def variant(source: Path, target: Path, training: Dict | None = None, model: Dict | None = None) -> Path:
    """A copy of checkpoint folder ``source`` at ``target`` with some recorded settings changed
    (e.g. another seed or an ablation's recipe): same weights, another identity for pairing."""
    import json

    shutil.copytree(source, target)
    config = json.loads((target / "config.json").read_text())
    config["training"] = {**config.get("training", {}), **(training or {})}
    config["model"] = {**config["model"], **(model or {})}
    (target / "config.json").write_text(json.dumps(config))
    return target


def build_vector_checkpoint(out: Path) -> Dict[str, Path]:
    """A small synthetic data set of two vector modalities (pre-extracted features, the usual own
    data) with a ``session`` group, and a calibrated checkpoint of a late-fusion model on it:
    keys ``vec_data`` and ``vec_on``."""
    from precal.data.synthetic import SyntheticSpec, generate

    data = generate(SyntheticSpec(kinds=("vector", "vector"), samples=48, classes=3, corrupt_fraction=0.0, seed=3,
                                  name="tinyvec"))
    data = MultimodalData(data.schema, data.sample_ids, data.labels, data.modalities, data.splits,
                          groups={"session": np.array([f"day{i % 3}" for i in range(len(data.labels))])})
    data_dir = save_dataset(data, out / "data" / "tinyvec")
    pre = Preprocessor().fit(data, data.split("train"))
    torch.manual_seed(0)
    cfg = ModelConfig(backbone="late", calibration=True, dim=16, shared_dim=8, fusion_layers=1, heads=2,
                      head_hidden=16, dropout=0.0)
    model = MultimodalModel(data.schema, cfg)
    model.train()
    model(MultimodalDataset(data, data.split("train"), pre, model.modalities).full_batch())
    model.eval()
    training = {"data": str(data_dir), "backbone": "late", "calibration": True, "epochs": 1}
    path = save_checkpoint(out / "checkpoints" / "tinyvec_late_calon", model, pre, training=training,
                           metrics={"test": {"accuracy": 0.3}}, history=_history(2, model.modalities, True, 0))
    return {"vec_data": data_dir, "vec_on": path}


def vector_checkpoint() -> Dict[str, Path]:
    """Built once per process, like :func:`tiny_checkpoints`."""
    if "vec_on" not in _CACHE:
        tmp = Path(tempfile.mkdtemp(prefix="precal-dash-vec-"))
        atexit.register(shutil.rmtree, tmp, True)
        _CACHE.update(build_vector_checkpoint(tmp))
    return {k: _CACHE[k] for k in ("vec_data", "vec_on")}
