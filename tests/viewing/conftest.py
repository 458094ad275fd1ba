from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient

from tests.events.conftest import ANALYTIC, jpeg, media_root, stream_make  # noqa: F401  (shared fixtures)

from .support import AsgiServer, RunnerThread

LIVE_SID = "00000000000000a1"


def first_part(path: str, **extra):
    """GET `path` through Django's async test client: (response, its first chunk
    or None when it does not stream). For MJPEG the first chunk is one whole part."""

    async def run():
        response = await AsyncClient().get(path, **extra)
        if not response.streaming:
            return response, None
        chunks = response.streaming_content
        try:
            async with asyncio.timeout(10):
                chunk = await anext(chunks)
        finally:
            await chunks.aclose()
        return response, chunk

    return async_to_sync(run)()


@pytest.fixture
def asgi_server(transactional_db, settings):
    """The platform's ASGI application served by uvicorn in a thread of this process."""
    settings.VIEWING_GRACE_SECONDS = 0.2
    with AsgiServer() as server:
        yield server


@pytest.fixture
def live_stream(transactional_db, api, h264_small):
    """A stream on node 0 reading the small H.264 file (320x240, 25 fps, looping)
    with a TEST-BRIGHT pipeline, its runner running in a thread."""
    stream = stream_make(LIVE_SID, address=str(h264_small), name="Viewing test")
    # A threshold no frame reaches: overlays, but no events to store.
    response = api.post(f"/pipeline/0/{LIVE_SID}/{ANALYTIC}", {"threshold": 255})
    assert response.status_code == 200, response.content
    with RunnerThread(LIVE_SID) as runner:
        yield stream, runner
