from __future__ import annotations

import pytest

from tests.events.conftest import ANALYTIC, jpeg, media_root, stream_make  # noqa: F401  (shared fixtures)

from .support import AsgiServer, RunnerThread

LIVE_SID = "00000000000000a1"


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
