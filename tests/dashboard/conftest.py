"""The dashboard's tests keep their disk caches (predictions, maps, sweeps, first paints) in a
folder of their own: they never write into the checkout's ``.cache/precal`` that a developer's
dashboard reads, and never read what a developer's run left there."""

from __future__ import annotations

from typing import Iterator

import pytest

from precal.dashboard import settings


@pytest.fixture(autouse=True, scope="session")
def _own_cache_folder(tmp_path_factory) -> Iterator[None]:
    saved = settings.CACHE_DIR
    settings.CACHE_DIR = tmp_path_factory.mktemp("dashboard-cache")
    try:
        yield
    finally:
        settings.CACHE_DIR = saved
