"""The per-sample measurement of the gates' rises must recompute the stored sweep itself (same
engine, same corruption seed), or what it says about the other seeds and the standard error would
be about another model or another damage."""

from __future__ import annotations

import pytest

from experiments.monotone_rises import RISE, SEEDS, measure, rising_steps


@pytest.mark.slow
def test_seed_zero_reproduces_the_stored_means_of_every_rising_step():
    steps = list(rising_steps())
    frame = measure()
    assert len(frame) == len(steps) * len(SEEDS) > 0
    first = frame[frame["seed"] == 0]
    assert (abs(first["alpha_low"] - first["stored_low"]) < 1e-3).all()
    assert (abs(first["alpha_high"] - first["stored_high"]) < 1e-3).all()
    assert (first["rise"] > RISE).all()  # the stored rise is there again, sample by sample
    assert (frame["se"] > 0).all() and (frame["n"] > 100).all()
