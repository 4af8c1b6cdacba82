from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def folder() -> Iterator[Path]:
    """A temporary folder a private PostgreSQL or Redis (tools/devservers.py) can live in."""
    path = Path(tempfile.mkdtemp(prefix="optimove-servers-test-"))
    path.chmod(0o711)  # PostgreSQL runs as its own user when we are root
    yield path
    shutil.rmtree(path, ignore_errors=True)
