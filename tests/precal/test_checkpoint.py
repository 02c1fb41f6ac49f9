"""Checkpoints: round trip, and every bad-file case gives a one-line error naming the problem."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from precal.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from precal.data.batch import Batch
from precal.data.dataset import Preprocessor
from precal.data.schema import DatasetSchema, ModalitySchema
from precal.models.model import ModelConfig, MultimodalModel

SCHEMA = DatasetSchema(
    "tiny", (ModalitySchema("accel", "time_series", (3,)), ModalitySchema("video", "frame_sequence", (8, 8))),
    class_names=("a", "b", "c"),
)


def _batch(b: int = 4) -> Batch:
    g = torch.Generator().manual_seed(0)
    return Batch({"accel": torch.randn(b, 12, 3, generator=g), "video": torch.randn(b, 4, 8, 8, generator=g)},
                 {"accel": torch.ones(b, 12, dtype=torch.bool), "video": torch.ones(b, 4, dtype=torch.bool)})


@pytest.fixture()
def saved(tmp_path: Path) -> tuple[Path, MultimodalModel]:
    torch.manual_seed(0)
    model = MultimodalModel(SCHEMA, ModelConfig(backbone="conv", dim=8, shared_dim=4))
    torch.nn.init.normal_(model.calibrator.alpha_weight)  # non-trivial calibrator state
    model.eval()
    pre = Preprocessor(lengths={"accel": 12, "video": 4})
    path = save_checkpoint(tmp_path / "ck", model, pre, training={"data": "nowhere", "seed": 3},
                           metrics={"test": {"accuracy": 0.5}}, history=[{"epoch": 1, "train_loss": 1.0}])
    return path, model


def test_round_trip_reproduces_outputs_and_metadata(saved: tuple[Path, MultimodalModel]) -> None:
    path, model = saved
    ckpt = load_checkpoint(path)
    batch = _batch()
    with torch.no_grad():
        expected = model(batch).logits
        got = ckpt.model(batch).logits
    assert torch.equal(expected, got)
    assert ckpt.config.backbone == "conv" and ckpt.config.calibration is True
    assert ckpt.training["seed"] == 3
    assert ckpt.metrics["test"]["accuracy"] == 0.5
    assert ckpt.history[0]["epoch"] == 1
    assert ckpt.preprocessor.lengths == {"accel": 12, "video": 4}
    assert not ckpt.model.training
    # The folder, its config.json or its weights file all name the same checkpoint.
    assert load_checkpoint(path / "config.json").fingerprint == ckpt.fingerprint
    assert load_checkpoint(path / "model.safetensors").fingerprint == ckpt.fingerprint


def test_no_pickle_in_a_checkpoint(saved: tuple[Path, MultimodalModel]) -> None:
    path, _ = saved
    for f in path.iterdir():
        assert f.read_bytes()[:1] != b"\x80", f"{f.name} looks like a pickle"


def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg, msg
    return msg


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".ckpt", ".pkl"])
def test_pickle_file_is_refused_without_being_executed(tmp_path: Path, suffix: str) -> None:
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):  # noqa: D105 - a payload that would create a file if unpickled
            return (os.system, (f"touch {marker}",))

    bad = tmp_path / f"model{suffix}"
    bad.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(bad)
    assert "pickle" in _one_line(exc)
    assert not marker.exists()


def test_torch_save_file_in_folder_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "ck"
    folder.mkdir()
    torch.save({"w": torch.zeros(2)}, folder / "model.pt")
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(folder)
    msg = _one_line(exc)
    assert "model.pt" in msg and "pickle" in msg


def test_pickle_renamed_as_safetensors_is_refused(tmp_path: Path, saved: tuple[Path, MultimodalModel]) -> None:
    path, _ = saved
    torch.save({"w": torch.zeros(2)}, path / "model.safetensors")
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(path / "model.safetensors")
    assert "pickle" in _one_line(exc)


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(tmp_path / "nope")
    assert "does not exist" in _one_line(exc)


def test_missing_weights(saved: tuple[Path, MultimodalModel]) -> None:
    path, _ = saved
    (path / "model.safetensors").unlink()
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(path)
    assert "model.safetensors" in _one_line(exc)


def test_truncated_weights(saved: tuple[Path, MultimodalModel]) -> None:
    path, _ = saved
    data = (path / "model.safetensors").read_bytes()
    (path / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(path)
    assert "safetensors" in _one_line(exc)


def test_missing_tensor_is_named(saved: tuple[Path, MultimodalModel]) -> None:
    path, _ = saved
    state = load_file(str(path / "model.safetensors"))
    del state["head.net.4.weight"]
    save_file(state, str(path / "model.safetensors"))
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(path)
    assert "head.net.4.weight" in _one_line(exc)


def test_wrong_shape_is_named(saved: tuple[Path, MultimodalModel]) -> None:
    path, _ = saved
    state = load_file(str(path / "model.safetensors"))
    state["head.net.4.weight"] = torch.zeros(7, 7)
    save_file(state, str(path / "model.safetensors"))
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(path)
    msg = _one_line(exc)
    assert "head.net.4.weight" in msg and "(7, 7)" in msg


def test_unexpected_tensor_is_named(saved: tuple[Path, MultimodalModel]) -> None:
    path, _ = saved
    state = load_file(str(path / "model.safetensors"))
    state["extra.weight"] = torch.zeros(1)
    save_file(state, str(path / "model.safetensors"))
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(path)
    assert "extra.weight" in _one_line(exc)


def test_nan_weights_are_refused(saved: tuple[Path, MultimodalModel]) -> None:
    path, _ = saved
    state = load_file(str(path / "model.safetensors"))
    state["head.net.4.bias"] = torch.full_like(state["head.net.4.bias"], float("nan"))
    save_file(state, str(path / "model.safetensors"))
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(path)
    assert "NaN" in _one_line(exc)


def _edit_config(path: Path, edit) -> None:
    cfg = json.loads((path / "config.json").read_text())
    edit(cfg)
    (path / "config.json").write_text(json.dumps(cfg))


def test_unknown_modality_in_config_is_named(saved: tuple[Path, MultimodalModel]) -> None:
    path, _ = saved
    _edit_config(path, lambda c: c["model"].__setitem__("modalities", ["accel", "lidar"]))
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(path)
    assert "lidar" in _one_line(exc)


def test_malformed_config_json(saved: tuple[Path, MultimodalModel]) -> None:
    path, _ = saved
    (path / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(path)
    assert "not valid JSON" in _one_line(exc)


def test_missing_config_section(saved: tuple[Path, MultimodalModel]) -> None:
    path, _ = saved
    _edit_config(path, lambda c: c.pop("schema"))
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(path)
    assert "schema" in _one_line(exc)


def test_wrong_format_version(saved: tuple[Path, MultimodalModel]) -> None:
    path, _ = saved
    _edit_config(path, lambda c: c.__setitem__("format_version", 99))
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(path)
    assert "99" in _one_line(exc)


def test_unknown_config_field(saved: tuple[Path, MultimodalModel]) -> None:
    path, _ = saved
    _edit_config(path, lambda c: c["model"].__setitem__("wings", 2))
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(path)
    assert "wings" in _one_line(exc)


def test_failed_save_leaves_nothing_behind(tmp_path: Path, saved: tuple[Path, MultimodalModel]) -> None:
    _, model = saved

    class Broken(Preprocessor):
        def to_json(self):  # noqa: D102 - fails mid-write
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        save_checkpoint(tmp_path / "half", model, Broken())
    assert not (tmp_path / "half").exists()
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".half")] == []


def test_overwrite_replaces_only_a_checkpoint_and_only_when_asked(saved: tuple[Path, MultimodalModel]) -> None:
    path, model = saved
    (path / "eval_test.json").write_text("{}")  # precal's own output: replaced with the folder
    before = (path / "config.json").read_text()
    with pytest.raises(ValueError, match="--overwrite"):
        save_checkpoint(path, model, Preprocessor())
    assert (path / "config.json").read_text() == before
    save_checkpoint(path, model, Preprocessor(), overwrite=True)
    assert not (path / "eval_test.json").exists() and (path / "config.json").read_text() != before
    (path / "stale.txt").write_text("x")  # not precal's: the folder is never replaced
    with pytest.raises(ValueError, match="stale.txt"):
        save_checkpoint(path, model, Preprocessor(), overwrite=True)
    assert (path / "stale.txt").read_text() == "x"
    assert sorted(p.name for p in path.parent.iterdir()) == ["ck"]  # no temporary folder left behind
