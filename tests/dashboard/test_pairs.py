"""Pairing checkpoints by what they are (their configs), not by their folder names; every pair
reachable under a label of its own; a folder of checkpoints; the demo's choice of pair."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from precal.dashboard.backend.demo import demo_pair_key, stored_effect
from precal.dashboard.backend.pairs import (default_checkpoint_dirs, expand_checkpoint_paths, load_checkpoints,
                                            pair_checkpoints)
from precal.dashboard.settings import ROOT
from tests.dashboard.fixtures import tiny_checkpoints, variant


@pytest.fixture(scope="module")
def family(tmp_path_factory):
    """The tiny pair, two more seeds of it, an ablation of its recipe (no swap augmentation), and
    two runs whose folder names would pair them although their seeds differ."""
    tiny = tiny_checkpoints()
    root = tmp_path_factory.mktemp("family")
    for seed in (1, 2):
        variant(tiny["on"], root / f"tiny_sequence_s{seed}_calon", {"seed": seed})
        variant(tiny["off"], root / f"tiny_sequence_s{seed}_caloff", {"seed": seed})
    variant(tiny["on"], root / "tiny_sequence_noswap_calon", {"swap_augment": 0.0})
    variant(tiny["off"], root / "tiny_sequence_noswap_caloff", {"swap_augment": 0.0})
    variant(tiny["on"], root / "mixed_calon", {"seed": 7})
    variant(tiny["off"], root / "mixed_caloff", {"seed": 8})
    shutil.copytree(tiny["on"], root / "tiny_sequence_calon")
    shutil.copytree(tiny["off"], root / "tiny_sequence_caloff")
    return root


def test_pairs_follow_configs_and_every_label_is_distinct(family):
    ckpts, problems = load_checkpoints([family])  # a folder of checkpoints
    assert not problems and len(ckpts) == 10
    pairs = pair_checkpoints(ckpts)
    labels = [p.label for p in pairs]
    assert len(set(labels)) == len(labels), labels
    full = {p.key: p for p in pairs if p.calibrated is not None and p.uncalibrated is not None}
    for p in full.values():  # a pair is one recipe and one seed
        assert json.dumps(p.calibrated.training.get("seed")) == json.dumps(p.uncalibrated.training.get("seed"))
        assert p.calibrated.training.get("swap_augment") == p.uncalibrated.training.get("swap_augment")
    assert len(full) == 4  # seeds 0, 1, 2 and the ablation
    # mixed_calon / mixed_caloff: seeds 7 and 8 differ, so their names do not make them a pair
    mixed = [p for p in pairs if "mixed" in p.name]
    assert len(mixed) == 2 and all(len(p.checkpoints) == 1 for p in mixed)
    # the labels say what differs: seed and recipe
    assert sum("seed 1" in label for label in labels) == 1 and sum("seed 2" in label for label in labels) == 1
    assert sum(bool(re.search(r"swap augment 0(?![.\d])", label)) for label in labels) == 1
    # every checkpoint is reachable
    assert {str(c.path) for p in pairs for c in p.checkpoints} == {str(c.path) for c in ckpts}


def test_copies_of_one_checkpoint_get_labels_of_their_own(tmp_path):
    tiny = tiny_checkpoints()
    for k in (1, 2):
        shutil.copytree(tiny["on"], tmp_path / f"copy{k}" / "tiny_sequence_calon")
    ckpts, _ = load_checkpoints([tiny["on"], tiny["off"], tmp_path / "copy1" / "tiny_sequence_calon",
                                 tmp_path / "copy2" / "tiny_sequence_calon"])
    pairs = pair_checkpoints(ckpts)
    assert len(pairs) == 3
    assert len({p.label for p in pairs}) == 3 and len({p.key for p in pairs}) == 3
    assert len({p.cache_key for p in pairs}) == 3  # in-memory caches keep the copies apart


def test_shipped_checkpoints_pair_by_recipe():
    dirs = default_checkpoint_dirs(ROOT)
    if not dirs:
        pytest.skip("no shipped checkpoints")
    ckpts, problems = load_checkpoints(dirs)
    assert not problems
    pairs = pair_checkpoints(ckpts)
    assert all(p.calibrated is not None and p.uncalibrated is not None for p in pairs)
    assert len({p.label for p in pairs}) == len(pairs)
    for p in pairs:  # calibrated and uncalibrated of one recipe, whatever their folders are called
        assert p.calibrated.name.replace("_calon", "") == p.uncalibrated.name.replace("_caloff", "")


def test_demo_pair_is_chosen_by_stored_results():
    dirs = default_checkpoint_dirs(ROOT)
    ckpts, _ = load_checkpoints(dirs)
    pairs = pair_checkpoints(ckpts)
    effects = {p.key: stored_effect(p) for p in pairs}
    if not all(effects.values()):
        pytest.skip("the shipped checkpoints have no stored sweeps")
    best = demo_pair_key(pairs)
    assert best == max(effects, key=lambda k: effects[k].score)
    e = effects[best]
    assert e.clean_calibrated >= e.clean_uncalibrated - 1e-9  # never a pair where calibration is worse
    assert e.kept_calibrated > e.kept_uncalibrated and e.swap_auroc > 0.9
    # UTD-MHAD has three modalities, so its gates can single the swapped one out: the demo opens there
    assert e.singled_out > 0.1 and best.startswith("utd_mhad")


def test_singled_out_is_zero_when_both_gates_fall_alike_and_positive_when_the_swapped_one_falls_alone():
    """The demo's measure of whether the gates name the swapped modality: each modality's mean alpha
    under a swap as a share of its clean value, the peers' share minus the swapped one's."""
    import pandas as pd
    from precal.dashboard.backend.demo import singled_out

    def sweep(alphas):  # {swapped: {severity: {modality: alpha}}}
        return pd.DataFrame([{"corruption": "swap", "modality": m, "severity": sev,
                              **{f"alpha_{k}": a for k, a in row.items()}}
                             for m, by_sev in alphas.items() for sev, row in by_sev.items()])

    alike = sweep({"a": {0: {"a": 1.0, "b": 2.0}, 1: {"a": 0.5, "b": 1.0}},
                   "b": {0: {"a": 1.0, "b": 2.0}, 1: {"a": 0.5, "b": 1.0}}})
    assert singled_out(alike) == pytest.approx(0.0)
    alone = sweep({"a": {0: {"a": 1.0, "b": 1.0, "c": 1.0}, 1: {"a": 0.4, "b": 1.0, "c": 0.8}}})
    assert singled_out(alone) == pytest.approx((1.0 + 0.8) / 2 - 0.4)
    assert singled_out(sweep({"a": {0: {"a": 1.0}, 1: {"a": 0.5}}})) == 0.0  # no peers


def test_a_folder_of_checkpoints_stands_for_its_checkpoints(tmp_path):
    tiny = tiny_checkpoints()
    shutil.copytree(tiny["on"], tmp_path / "a_calon")
    (tmp_path / "notes").mkdir()
    assert expand_checkpoint_paths([tmp_path]) == [str(tmp_path / "a_calon")]
    assert expand_checkpoint_paths([tiny["on"]]) == [str(tiny["on"])]
    assert expand_checkpoint_paths([tmp_path / "nowhere"]) == [str(tmp_path / "nowhere")]


def test_two_calibrators_of_one_recipe_and_seed_are_told_apart_by_their_calibrator_settings(tmp_path):
    """Pairing ignores the calibrator's settings (a baseline has none), so two calibrated models of
    one recipe and seed that differ only in them (here the evidence margin, as for a change of the
    evidence mode) share one baseline; their labels must say how they differ."""
    tiny = tiny_checkpoints()
    shutil.copytree(tiny["on"], tmp_path / "tiny_sequence_calon")
    shutil.copytree(tiny["off"], tmp_path / "tiny_sequence_caloff")
    variant(tiny["on"], tmp_path / "tiny_margin_calon", {"evidence_margin": 1.0}, {"evidence_margin": 1.0})
    ckpts, problems = load_checkpoints([tmp_path])
    assert not problems
    pairs = pair_checkpoints(ckpts)
    labels = [p.label for p in pairs if p.calibrated is not None]
    assert len(labels) == 2 and len(set(labels)) == 2, labels
    assert sum("evidence margin 1" in label for label in labels) == 1
    assert all("copy" not in label for label in labels)  # told apart by what they are, not where
    assert not any("evidence margin" in p.label for p in pairs if p.calibrated is None)
    # the baseline goes to the calibrated model of its own name, though the other comes first
    own = next(p for p in pairs if p.uncalibrated is not None)
    assert own.calibrated.path.name == "tiny_sequence_calon"
