"""Fixtures for the production tests; the helpers live in production_support.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from production_support import ProcessGroup


@pytest.fixture
def process_group(tmp_path: Path) -> Iterator[ProcessGroup]:
    """Processes the test starts; every one is stopped with its process group, whatever the outcome."""
    group = ProcessGroup(tmp_path)
    try:
        yield group
    finally:
        group.stop()
