"""docs/cli.md documents every option of precal train (the options are built from TrainConfig's
fields, so a new field needs a line there) and every registered converter."""

from __future__ import annotations

from pathlib import Path

from precal.data.converters import CONVERTERS
from precal.training.config import cli_fields, option_name

DOC = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text()


def test_every_train_option_is_documented() -> None:
    missing = [option_name(f) for f in cli_fields() if f"`{option_name(f)}" not in DOC]
    assert not missing, f"docs/cli.md lacks {missing}"


def test_every_converter_is_documented() -> None:
    assert all(f"`{name}`" in DOC or f"precal convert {name}" in DOC for name in CONVERTERS)
