"""Fixtures for the stream and pipeline tests."""

from __future__ import annotations

import os

import pytest
from django.conf import settings

from analytics.models import Seat
from analytics.services import analytics_sync_registry
from platform_config.models import Node
from platform_config.selectors import platform_config_get, platform_config_invalidate
from streams import services

ANALYTIC = "TEST-BRIGHT"


@pytest.fixture
def media_root(tmp_path, settings):
    """A fresh STREAM_MEDIA_ROOT (its real path, so messages are predictable)."""
    root = tmp_path / "videos"
    root.mkdir()
    settings.STREAM_MEDIA_ROOT = os.path.realpath(root)
    return settings.STREAM_MEDIA_ROOT


@pytest.fixture
def node0(db) -> Node:
    return Node.objects.get(num=0)


@pytest.fixture
def node1(db) -> Node:
    return Node.objects.create(num=1)


@pytest.fixture
def seats(db) -> int:
    """The community seats of the test analytic (the post-migrate hook makes them;
    syncing again is harmless and makes the test independent of that)."""
    analytics_sync_registry()
    count = Seat.objects.filter(analytic_id=ANALYTIC, active=True).count()
    assert count == settings.COMMUNITY_SEATS_PER_ANALYTIC > 0
    return count


@pytest.fixture
def make_stream(node0):
    def make(node=None, **fields):
        fields.setdefault("address", "rtsp://127.0.0.1:8554/VOD/stream.mp4")
        return services.stream_create(node=node or node0, **fields)

    return make


@pytest.fixture
def max_streams(db):
    def set_limit(limit: int) -> None:
        config = platform_config_get()
        config.max_streams_per_node = limit
        config.save()
        platform_config_invalidate()

    return set_limit
