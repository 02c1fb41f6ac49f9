"""The noise-information measurement trains a real model on the synthetic generator and reads each
modality with a linear probe: it must see the class in clean modalities and not in swapped-in ones
(a swapped modality is a real sample of another class), or its split of the noisy modalities by
what they still carry would mean nothing."""

from __future__ import annotations

import pytest

from experiments.noise_information import rows_for


@pytest.mark.slow
def test_the_probe_reads_clean_modalities_and_not_swapped_ones():
    rows = rows_for("tokens2", -10.0, samples=2000, backbone="late", seed=0)
    assert [r["modality"] for r in rows] == ["token_sequence", "time_series"]
    for r in rows:
        assert r["probe clean"] > 0.6  # six classes: chance is 0.17
        assert r["probe swap"] < 0.2
        assert r["n noise, all"] == r["n noise, probe right"] + r["n noise, probe wrong"] > 0
        assert r["AUROC swap"] > 0.7  # the gates find swaps (stored runs: 0.90 and above)
