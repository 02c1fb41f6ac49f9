"""The five-seed comparison of accuracy kept under corruption is only a comparison if every seed's
sweep was made the same way: both models of the pair, the same corruptions and severities on the
same test samples as the shipped checkpoints' stored sweep (seed 0)."""

from __future__ import annotations

from experiments.kept_seeds import rows, tables


def test_every_seed_is_swept_like_seed_zero():
    found = tables()
    assert set(found) == {"avletters_conv", "avletters_sequence", "utd_mhad_conv", "utd_mhad_sequence"}
    for name, by_seed in found.items():
        assert sorted(by_seed) == [0, 1, 2, 3, 4], name
        plan = lambda t: sorted(set(zip(t["modality"], t["corruption"], t["severity"])))  # noqa: E731
        reference = by_seed[0]
        for seed, table in by_seed.items():
            models = sorted(table["checkpoint"].astype(str).unique())
            assert [m.rsplit("_", 1)[1] for m in models] == ["caloff", "calon"], (name, seed)
            for model in models:
                assert plan(table[table["checkpoint"] == model]) == plan(reference[reference["checkpoint"] ==
                                                                                     reference["checkpoint"].iloc[0]])
            assert set(table["n"]) == set(reference["n"]), (name, seed)  # the same test split


def test_kept_fractions_are_fractions_for_both_models_of_every_seed():
    found = rows()
    assert len(found) == 20
    assert all(0.3 < r["calibrated"] <= 1.05 and 0.3 < r["baseline"] <= 1.05 for r in found)
