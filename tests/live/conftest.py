"""Fixtures for the live contract's tests."""

from __future__ import annotations

import os

import pytest


@pytest.fixture
def media_root(tmp_path, settings):
    """A fresh STREAM_MEDIA_ROOT (its real path, so messages are predictable)."""
    root = tmp_path / "videos"
    root.mkdir()
    settings.STREAM_MEDIA_ROOT = os.path.realpath(root)
    return settings.STREAM_MEDIA_ROOT
