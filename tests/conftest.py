"""Fixtures shared by the engine's test modules."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from qrt_apply.engine.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A fresh SQLite store in the test's temporary directory, closed afterwards."""
    opened = Store(tmp_path / "runtime.db")
    yield opened
    opened.close()
