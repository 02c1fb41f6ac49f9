"""Shared pieces of the bad-input corpus (tests/test_bad_input_*.py, tests/test_safe_writes.py).

Every case of the corpus asserts three things: the surface answers with one line that names the
problem, the CLI exits with status 2, and every file that existed before still exists with the same
bytes (:func:`snapshot` before and after). The tiny data set and checkpoint are built here in well
under a second, so each case builds its own inside its ``tmp_path`` and may damage it freely.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from pathlib import Path
from typing import Dict, Iterator, Tuple

import numpy as np
import torch

from precal.checkpoint import save_checkpoint
from precal.data.dataset import Preprocessor
from precal.data.schema import DatasetSchema, ModalitySchema
from precal.data.storage import MultimodalData, build_ragged, save_dataset
from precal.models.model import ModelConfig, MultimodalModel

SCHEMA = DatasetSchema("corpus", (ModalitySchema("acc", "time_series", (3,), rate_hz=50.0),
                                  ModalitySchema("cam", "frame_sequence", (4, 5)),
                                  ModalitySchema("meta", "vector", (2,))),
                       class_names=("x", "y"))
MODEL = dict(backbone="conv", dim=8, shared_dim=4, head_hidden=8, dropout=0.0)


def tiny_data(n: int = 24, absent_cam: Tuple[int, ...] = (2,)) -> MultimodalData:
    """24 samples of three modalities (one cam recording absent), splits train/val/test."""
    rng = np.random.default_rng(0)
    labels = np.array([i % 2 for i in range(n)], dtype=np.int64)
    acc = [(rng.normal(size=(6 + i % 4, 3)) + labels[i]).astype(np.float32) for i in range(n)]
    cam = [None if i in absent_cam else rng.integers(0, 255, size=(2 + i % 3, 4, 5)).astype(np.uint8)
           for i in range(n)]
    meta = [rng.normal(size=(1, 2)).astype(np.float32) for _ in range(n)]
    idx = np.arange(n)
    return MultimodalData(
        SCHEMA, np.array([f"s{i}" for i in range(n)]), labels,
        {"acc": build_ragged(acc, (3,), np.float32), "cam": build_ragged(cam, (4, 5), np.uint8),
         "meta": build_ragged(meta, (2,), np.float32)},
        {"train": idx[: n // 2], "val": idx[n // 2: 3 * n // 4], "test": idx[3 * n // 4:]},
    )


def tiny_dataset(folder: Path, **kwargs) -> Path:
    return save_dataset(tiny_data(**kwargs), folder)


def tiny_checkpoint(folder: Path, data_dir: Path | str = "nowhere", seed: int = 0, **config) -> Path:
    """A small conv checkpoint on :data:`SCHEMA` (untrained: the corpus tests refusals, not accuracy)."""
    torch.manual_seed(seed)
    model = MultimodalModel(SCHEMA, ModelConfig(**{**MODEL, **config})).eval()
    pre = Preprocessor(lengths={"acc": 8, "cam": 3}).fit(tiny_data(), np.arange(12))
    return save_checkpoint(folder, model, pre, training={"data": str(data_dir), "seed": seed},
                           metrics={"test": {"accuracy": 0.5}}, history=[{"epoch": 1, "train_loss": 1.0}])


def edit_json(path: Path, change) -> None:
    """Apply ``change`` to the JSON object in ``path`` and write it back."""
    obj = json.loads(path.read_text())
    change(obj)
    path.write_text(json.dumps(obj))


def snapshot(*roots: Path) -> Dict[str, Tuple[str, object]]:
    """Everything under ``roots``: files with their bytes, folders, links with their targets."""
    out: Dict[str, Tuple[str, object]] = {}
    for root in roots:
        root = Path(root)
        if root.is_symlink() or root.is_file():
            out[str(root)] = _entry(root)
            continue
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            base = Path(dirpath)
            out[str(base)] = ("dir", None)
            for name in dirnames + filenames:
                out[str(base / name)] = _entry(base / name)
    return out


def _entry(path: Path) -> Tuple[str, object]:
    if path.is_symlink():
        return "link", os.readlink(path)
    if path.is_dir():
        return "dir", None
    return "file", path.read_bytes()


def assert_unchanged(before: Dict[str, Tuple[str, object]], after: Dict[str, Tuple[str, object]]) -> None:
    """Nothing that existed before is gone or changed, and nothing new appeared."""
    gone = sorted(set(before) - set(after))
    new = sorted(set(after) - set(before))
    changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    assert not gone and not new and not changed, f"gone {gone[:3]}, new {new[:3]}, changed {changed[:3]}"


def one_line(text: str) -> str:
    """The single line of an error message (fails if there are more)."""
    lines = text.strip("\n").split("\n")
    assert len(lines) == 1 and lines[0], f"expected one line, got {text!r}"
    return lines[0]


def cli_error(capsys, command: str) -> str:
    """stderr of a failed ``precal COMMAND`` run: one line starting with ``precal COMMAND: error:``."""
    line = one_line(capsys.readouterr().err)
    assert line.startswith(f"precal {command}: error:"), line
    assert "Traceback" not in line and "np.str_" not in line, line
    return line


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Fail (TimeoutError) instead of hanging when a refusal takes longer than ``seconds``: a few
    hostile bytes must cost a check, not a build that runs until killed."""
    def expired(signum, frame):  # noqa: ARG001
        raise TimeoutError(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
