"""Fixtures of the site tests."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest


@pytest.fixture
def server_dir():
    """A folder for embedded servers' data, outside pytest's own temporary folder:
    the embedded PostgreSQL runs as another user, which must traverse the path,
    and each pytest session (of any suite on the machine) makes
    /tmp/pytest-of-<user> private again."""
    path = Path(tempfile.mkdtemp(prefix="visionaire-test-servers-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)
