"""What a plain (non-editable) ``pip install .`` installs: every package of the library and of the app
(``dashboard/`` as ``precal.dashboard``), so that ``precal dashboard`` runs from an installation."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _setuptools() -> dict:
    if sys.version_info < (3, 11):
        pytest.skip("reads pyproject.toml with tomllib (Python 3.11+)")
    import tomllib

    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_package_of_the_library_and_the_app_is_installed() -> None:
    config = _setuptools()
    assert config["package-dir"] == {"precal.dashboard": "dashboard"}
    found = {".".join(p.relative_to(ROOT).parent.parts) for p in (ROOT / "precal").rglob("__init__.py")}
    found |= {".".join(("precal", *p.relative_to(ROOT).parent.parts)) for p in (ROOT / "dashboard").rglob("__init__.py")}
    assert set(config["packages"]) == found
