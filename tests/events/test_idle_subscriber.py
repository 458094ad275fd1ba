"""An idle /event_channel subscriber of a real API server stays connected.

The API runs as the launcher runs it (uvicorn, `launcher.api_command`) against
the test database and Redis; a WebSocket client connects, stays idle for a
minute, then an event is created and must reach it. Idle subscribers used to be
dropped after about 5 s, when the Redis client's socket timeout equalled the
channel layer's blocking read.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from events.services import event_create
from tests.support.workers import ManagedProcess, subprocess_env
from visionaire_site.launcher import api_command

from .conftest import ANALYTIC, stream_make

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

IDLE_SECONDS = 60
DEADLINE = 60  # seconds for what must happen (start, connect, delivery); a bound, never a pause
LOBBY = "5136c6c0916cd30c"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_ready(server: ManagedProcess, port: int) -> None:
    deadline = time.monotonic() + DEADLINE
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
                if response.status == 200:
                    return
        except (OSError, urllib.error.URLError):
            pass
        assert server.running, f"the API exited with {server.process.returncode}\n{server.log_tail()}"
        assert time.monotonic() < deadline, f"the API did not answer within {DEADLINE}s\n{server.log_tail()}"
        time.sleep(0.2)


@pytest.fixture
def api_server(tmp_path):
    port = _free_port()
    server = ManagedProcess("api", api_command("127.0.0.1", port), subprocess_env(), tmp_path / "api.log")
    with server:
        _wait_ready(server, port)
        yield server, port


class _Frames(logging.Handler):
    """The frames the client logs ("< PING …" for each keep-alive ping it receives)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def received(self, kind: str) -> int:
        return sum(line.startswith(f"< {kind}") for line in self.lines)


def test_idle_subscriber_stays_connected_and_gets_the_next_event(api_server, media_root):
    server, port = api_server
    stream = stream_make(LOBBY)
    frames = _Frames()
    client_log = logging.getLogger("tests.events.idle_subscriber")
    client_log.setLevel(logging.DEBUG)
    client_log.propagate = False
    client_log.addHandler(frames)

    async def body():
        # The client sends no pings of its own: the connection is idle but for the
        # server's keep-alive.
        async with connect(
            f"ws://127.0.0.1:{port}/event_channel",
            ping_interval=None,
            open_timeout=DEADLINE,
            logger=client_log,
        ) as websocket:
            try:
                message = await asyncio.wait_for(websocket.recv(), IDLE_SECONDS)
            except TimeoutError:
                pass  # idle for the whole minute and still open: what is expected
            except ConnectionClosed as closed:
                pytest.fail(f"the idle subscriber was dropped ({closed!r})\n{server.log_tail()}")
            else:
                pytest.fail(f"an idle subscriber got a message nobody sent: {message!r}")

            event = await database_sync_to_async(event_create)(
                stream=stream,
                analytic_id=ANALYTIC,
                timestamp=datetime(2025, 1, 15, 8, 0, 0, tzinfo=UTC),
                primary_text="after a quiet minute",
                pipeline_data={},
                image_jpeg=None,
            )
            try:
                message = json.loads(await asyncio.wait_for(websocket.recv(), DEADLINE))
            except ConnectionClosed as closed:
                pytest.fail(f"the subscriber was dropped before the event ({closed!r})\n{server.log_tail()}")
            assert message["pipeline_data"] == {"event_id": str(event.event_id)}
            assert (message["stream_id"], message["primary_text"]) == (LOBBY, "after a quiet minute")

    try:
        async_to_sync(body)()
    finally:
        client_log.removeHandler(frames)
    # uvicorn pings every 20 s (launcher.api_command): a minute of silence saw some.
    assert frames.received("PING") >= 1, frames.lines
    assert "Traceback" not in server.log_text(), server.log_tail()
