"""The inner folds that design choices are made on (experiments/inner_fold.py): a UTD-MHAD fold holds
out one training subject, an AVLetters fold one training repetition, and no fold ever reads the
test split."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from experiments import inner_fold
from precal.data.storage import load_dataset

ROOT = Path(__file__).resolve().parents[2]


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


@pytest.mark.parametrize("held_out", [1, 2])
def test_an_avletters_fold_holds_out_one_training_repetition_and_never_reads_the_test_one(tmp_path: Path,
                                                                                          held_out: int):
    inner_fold.write_split(tmp_path / "fold", held_out, "avletters")
    data = load_dataset(tmp_path / "fold")
    official = load_dataset(ROOT / "sample_data" / "avletters")
    repetition = np.array([int(s.split("_")[0][1:]) for s in data.sample_ids])
    fit = 3 - held_out
    assert set(repetition[data.split("train")]) == {fit} and set(repetition[data.split("val")]) == {fit}
    assert set(data.split("train")) <= set(official.split("train"))  # model selection stays on val
    assert set(data.split("val")) <= set(official.split("val"))
    assert set(repetition[data.split("test")]) == {held_out}
    assert len(data.split("test")) == int((repetition == held_out).sum())
    # every letter and speaker is in the fitted part, as in the official speaker-dependent split
    speakers = np.array([s.split("_")[1] for s in data.sample_ids])
    assert set(speakers[data.split("train")]) == set(speakers)
    assert not set(repetition[np.concatenate([data.split(s) for s in ("train", "val", "test")])]) & {3}


def test_an_avletters_test_repetition_or_an_unknown_data_set_is_refused(tmp_path: Path):
    with pytest.raises(SystemExit, match="training repetition"):
        inner_fold.write_split(tmp_path / "fold", 3, "avletters")
    with pytest.raises(SystemExit, match="unknown data set"):
        inner_fold.write_split(tmp_path / "fold", 7, "mmsa")
    assert not (tmp_path / "fold").exists()


def test_paired_change_uses_only_runs_both_variants_have():
    runs = pd.DataFrame([
        {"variant": "fused_on_ep60", "held_out": 1, "seed": 0, "accuracy": 0.90},
        {"variant": "fused_on_ep60", "held_out": 3, "seed": 0, "accuracy": 0.80},
        {"variant": "fused_on_ep60", "held_out": 5, "seed": 0, "accuracy": 0.70},  # no partner: left out
        {"variant": "fused_on_ep60_rot30", "held_out": 1, "seed": 0, "accuracy": 0.93},
        {"variant": "fused_on_ep60_rot30", "held_out": 3, "seed": 0, "accuracy": 0.81},
        {"variant": "fused_on_ep60_rot30", "held_out": 7, "seed": 1, "accuracy": 0.50},  # no partner
    ])
    assert inner_fold.reference_of("fused_on_ep60_rot30") == "fused_on_ep60"
    assert inner_fold.reference_of("fused_off_noswap") == "fused_off"
    assert inner_fold.reference_of("fused_on_ep60") == "fused_on" and inner_fold.reference_of("fused_on") is None
    assert inner_fold.reference_of("audio") is None
    assert inner_fold.reference_of("skeleton_joints_ep60") == "skeleton_hip_ep60"  # same modality, other trunk
    assert inner_fold.reference_of("conv_on_trainval") == "conv_on" and inner_fold.reference_of("conv_on") is None
    assert inner_fold.reference_of("audio_trainval") == "audio"
    # one variant name on both data sets, each against its own data set's run of the other gates
    assert inner_fold.reference_of("fused_on_monotone", "avletters") == "fused_on_trainval"
    assert inner_fold.reference_of("fused_on_monotone", "utd_mhad") == "fused_on_ep60_derived_trainval"
    assert inner_fold.reference_of("fused_on_trainval_noswap") == "fused_on_trainval"  # the shipped recipe
    assert inner_fold.paired_difference(runs, "fused_on_ep60_rot30", "fused_on_ep60") == "+2.0 ± 1.4 (2)"
    assert inner_fold.paired_difference(runs, "fused_on_ep60_rot30", "fused_off") == "–"


def test_persistent_confusions_count_over_fused_runs_only(tmp_path):
    def run(name, matrix):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "metrics.json").write_text(json.dumps({"test": {"confusion_matrix": matrix}}))

    run("fused_off_held3_seed0", [[1, 2], [0, 3]])  # class a read as b twice
    run("fused_on_ep60_held3_seed1", [[2, 1], [1, 2]])
    run("fused_on_held5_seed0", [[3, 0], [2, 1]])
    run("skeleton_hip_held3_seed0", [[0, 3], [0, 3]])  # unimodal: not counted
    top = inner_fold.persistent_confusions(inner_fold.fold_runs(tmp_path), ["a", "b"], top=2)
    assert top == [(3, "a", "b", 3, 6), (5, "b", "a", 2, 3)]


def test_a_generated_section_is_replaced_in_place_and_a_duplicate_is_refused(tmp_path: Path):
    from experiments.readme_section import replace_section

    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- t:begin -->\nold\n<!-- t:end -->\noutro\n")
    replace_section("t", "new", readme)
    assert readme.read_text() == "intro\n<!-- t:begin -->\n\nnew\n\n<!-- t:end -->\noutro\n"
    replace_section("u", "added", readme)  # absent: appended
    assert readme.read_text().endswith("<!-- u:begin -->\n\nadded\n\n<!-- u:end -->\n")
    readme.write_text("<!-- t:begin -->\na\n<!-- t:end -->\n<!-- t:begin -->\nstale\n<!-- t:end -->\n")
    with pytest.raises(ValueError, match="more than once"):
        replace_section("t", "new", readme)
    assert "stale" in readme.read_text()  # nothing written


def test_kept_under_corruption_reads_each_runs_sweep_and_pairs_the_variants(tmp_path):
    """Kept = accuracy at severity >= 3 over clean, averaged over modality x corruption, removal left
    out; the table pairs a variant with its reference by (held-out unit, seed)."""
    def run(name, clean, hard, auroc):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "metrics.json").write_text(json.dumps({"test": {"accuracy": clean}}))
        rows = []
        for modality in ("a", "b"):
            for corruption in ("swap", "gaussian_noise", "remove_absent"):
                rows.append((modality, corruption, 0, clean, ""))
                for severity in (3, 4, 5):
                    value = 0.0 if corruption == "remove_absent" else hard[modality]
                    rows.append((modality, corruption, severity, value, auroc[modality]))
        pd.DataFrame(rows, columns=["modality", "corruption", "severity", "value", "auroc_alpha"]).assign(
            checkpoint=name.split("_held")[0]).to_csv(folder / "sweep.csv", index=False)

    run("fused_on_monotone_held1_seed0", 0.8, {"a": 0.4, "b": 0.8}, {"a": 0.9, "b": 0.7})
    run("fused_on_monotone_learned_held1_seed0", 0.8, {"a": 0.6, "b": 0.8}, {"a": 0.95, "b": 0.9})
    run("fused_off_held1_seed0", 0.9, {"a": 0.9, "b": 0.9}, {"a": 0.5, "b": 0.5})
    (tmp_path / "fused_off_held1_seed0" / "config.json").write_text(json.dumps({"model": {"calibration": False}}))
    run("fused_off_held3_seed0", 0.9, {"a": 0.9, "b": 0.9}, {"a": 0.5, "b": 0.5})
    (tmp_path / "fused_off_held3_seed0" / "sweep.csv").unlink()  # a run without a sweep is not in the table
    table = inner_fold.kept_under_corruption(inner_fold.fold_runs(tmp_path)).set_index("variant")
    assert table.loc["fused_on_monotone", "kept"] == pytest.approx((0.5 + 1.0) / 2)  # removal left out
    assert table.loc["fused_on_monotone_learned", "kept"] == pytest.approx((0.75 + 1.0) / 2)
    assert table.loc["fused_on_monotone", "swap_auroc"] == pytest.approx(0.7)  # the worst modality
    assert np.isnan(table.loc["fused_off", "swap_auroc"])  # no gates, no gate AUROC (its alpha is 1)
    assert list(table.index).count("fused_off") == 1
    lines = inner_fold.kept_lines(inner_fold.fold_runs(tmp_path), inner_fold.VARIANTS, "subject")
    learned = next(line for line in lines if "learned evidence" in line)
    assert learned.endswith("| +12.5 (1) |")  # 0.875 - 0.75 kept, in points
    baseline = next(line for line in lines if line.startswith("| fused baseline"))
    assert baseline.split(" | ")[4] == "–"
