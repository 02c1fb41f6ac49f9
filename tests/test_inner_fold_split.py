"""The inner cross-subject folds that UTD-MHAD design choices are made on (scripts/inner_fold.py):
each fold holds out one training subject, and no fold ever reads a test subject."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import inner_fold  # noqa: E402  (a script, importable once scripts/ is on the path)

from precal.data.storage import load_dataset  # noqa: E402


def _subject_and_trial(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return (np.array([int(s.split("_")[1][1:]) for s in ids]), np.array([int(s.split("_")[2][1:]) for s in ids]))


@pytest.mark.parametrize("held_out", [7, 3])
def test_a_fold_holds_out_one_training_subject_and_never_reads_the_test_subjects(tmp_path: Path, held_out: int):
    inner_fold.write_split(tmp_path / "fold", held_out)
    data = load_dataset(tmp_path / "fold")
    subject, trial = _subject_and_trial(data.sample_ids)
    fit = {1, 3, 5, 7} - {held_out}
    assert set(subject[data.split("train")]) == fit and set(trial[data.split("train")]) == {1, 2, 3}
    assert set(subject[data.split("val")]) == fit and set(trial[data.split("val")]) == {4}
    assert set(subject[data.split("test")]) == {held_out}
    assert len(data.split("test")) == int((subject == held_out).sum())  # every trial of the held-out subject
    header = json.loads((tmp_path / "fold" / "dataset.json").read_text())
    used = np.concatenate([np.asarray(v) for v in header["splits"].values()])
    assert not set(subject[used]) & {2, 4, 6, 8}


def test_a_test_subject_cannot_be_held_out(tmp_path: Path):
    with pytest.raises(SystemExit, match="training subject"):
        inner_fold.write_split(tmp_path / "fold", 2)
    assert not (tmp_path / "fold").exists()
