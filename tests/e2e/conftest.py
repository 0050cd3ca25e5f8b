"""Fixtures the end-to-end backfill tests share."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .backfill_support import Simulators


@pytest.fixture
def simulator(tmp_path: Path) -> Iterator[Simulators]:
    """Simulator processes started by the test, all stopped when it ends."""
    simulators = Simulators(tmp_path)
    try:
        yield simulators
    finally:
        simulators.stop_all()
