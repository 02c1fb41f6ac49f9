"""The encoder probes read a shipped checkpoint the way its evaluation did: the fused accuracy they
report is the stored test accuracy, and each modality's encoder summary carries its class above
chance (26 letters: 3.8%)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from experiments.encoder_probes import FUSED, probe_accuracies

CHECKPOINT = Path(__file__).resolve().parents[2] / "checkpoints" / "avletters_conv_calon"


@pytest.mark.slow
def test_probes_of_a_shipped_checkpoint():
    found = probe_accuracies(CHECKPOINT)
    stored = json.loads((CHECKPOINT / "metrics.json").read_text())["test"]["accuracy"]
    assert found[FUSED] == pytest.approx(stored, abs=1e-9)
    assert set(found) == {"audio", "lips", FUSED}
    assert found["audio"] > 0.5 and found["lips"] > 0.1
