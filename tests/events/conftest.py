"""Fixtures for the event history and live event tests."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from analytics.models import Analytic
from platform_config.models import Node
from streams.models import Pipeline, Stream

ANALYTIC = "TEST-BRIGHT"


@pytest.fixture
def media_root(tmp_path, settings):
    """Crops go to a fresh folder per test, not the data folder."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return settings.MEDIA_ROOT


@pytest.fixture
def jpeg() -> bytes:
    image = np.zeros((24, 16, 3), dtype=np.uint8)
    image[:, :, 1] = 200
    ok, encoded = cv2.imencode(".jpg", image)
    assert ok
    return encoded.tobytes()


def stream_make(stream_id: str = "5136c6c0916cd30c", node_num: int = 0, **fields) -> Stream:
    node, _ = Node.objects.get_or_create(num=node_num)
    fields.setdefault("name", "Camera Lobby")
    fields.setdefault("address", "rtsp://10.7.2.50:554/lobby")
    fields.setdefault("latitude", -6.261376)
    fields.setdefault("longitude", 106.823648)
    return Stream.objects.create(stream_id=stream_id, node=node, **fields)


def pipeline_make(stream: Stream, analytic_id: str = ANALYTIC) -> Pipeline:
    analytic, _ = Analytic.objects.get_or_create(
        id=analytic_id,
        defaults={
            "name": analytic_id,
            "major_version": 1,
            "minor_version": 0,
            "publisher": "test",
            "type": "test",
        },
    )
    return Pipeline.objects.create(stream=stream, analytic=analytic)
