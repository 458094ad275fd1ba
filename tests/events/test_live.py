"""Live events over WebSocket: /event_channel and /event_channel/{node}/{stream_id},
through the real Redis channel layer and the project's ASGI application.

The consumer reads the database from its own thread and events are published
on commit, so these tests commit (transactional_db); the flush after each runs
post_migrate, which restores node 0 and the analytics.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async

from events.models import Event
from events.publisher import event_message_build
from events.services import event_create
from live.events import EventRecord
from visionaire_site.asgi import application

from .conftest import ANALYTIC, stream_make
from .websocket import WebsocketCommunicator

transactional = pytest.mark.django_db(transaction=True)

T0 = datetime(2025, 1, 15, 8, 0, 0, tzinfo=UTC)
LOBBY = "5136c6c0916cd30c"
GATE = "0123456789abcdef"
TIMEOUT = 5  # seconds; a deadline for what must arrive, never a pause


@pytest.fixture
def streams(media_root):
    return {LOBBY: stream_make(LOBBY), GATE: stream_make(GATE, name="Gate", address="rtsp://10.7.2.51/gate")}


async def connect(path: str, headers: list[tuple[bytes, bytes]] | None = None) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, path, headers=headers or [])
    connected, _ = await communicator.connect(timeout=TIMEOUT)
    assert connected, path
    return communicator


async def assert_closed(communicator: WebsocketCommunicator, code: int, reason: str) -> None:
    assert await communicator.receive_output(timeout=TIMEOUT) == {
        "type": "websocket.close",
        "code": code,
        "reason": reason,
    }
    # What the server does once the socket is closed; it ends the consumer.
    await communicator.disconnect(code=code)


create_event = database_sync_to_async(event_create)


def lobby_message(event: Event, jpeg: bytes) -> dict:
    return {
        "analytic_id": ANALYTIC,
        "node_num": 0,
        "stream_id": LOBBY,
        "stream_name": "Camera Lobby",
        "stream_address": "rtsp://10.7.2.50:554/lobby",
        "stream_latitude": -6.261376,
        "stream_longitude": 106.823648,
        "timestamp": 1736928000,
        "primary_text": "John Doe",
        "secondary_text": "Employee",
        "image_jpeg": base64.b64encode(jpeg).decode(),
        "pipeline_data": {"event_id": str(event.event_id), "status": "KNOWN", "similarity": 0.92},
    }


async def lobby_event(streams, jpeg: bytes, analytic_id: str = ANALYTIC) -> Event:
    return await create_event(
        stream=streams[LOBBY],
        analytic_id=analytic_id,
        timestamp=T0,
        primary_text="John Doe",
        secondary_text="Employee",
        pipeline_data={"status": "KNOWN", "similarity": 0.92},
        image_jpeg=jpeg,
    )


async def gate_event(streams) -> Event:
    return await create_event(
        stream=streams[GATE], analytic_id=ANALYTIC, timestamp=T0, pipeline_data={}, image_jpeg=None
    )


@transactional
def test_all_and_stream_channels_get_the_exact_message_other_streams_do_not(streams, jpeg):
    async def body():
        everything = await connect("/event_channel")
        lobby = await connect(f"/event_channel/0/{LOBBY}")
        gate = await connect(f"/event_channel/0/{GATE}")

        event = await lobby_event(streams, jpeg)
        expected = lobby_message(event, jpeg)
        assert await everything.receive_json_from(timeout=TIMEOUT) == expected
        assert await lobby.receive_json_from(timeout=TIMEOUT) == expected

        # Messages reach a channel in the order they were sent: the gate client's
        # first message being the gate event proves it never got the lobby one.
        second = await gate_event(streams)
        gate_message = await gate.receive_json_from(timeout=TIMEOUT)
        assert gate_message == {
            "analytic_id": ANALYTIC,
            "node_num": 0,
            "stream_id": GATE,
            "stream_name": "Gate",
            "stream_address": "rtsp://10.7.2.51/gate",
            "stream_latitude": -6.261376,
            "stream_longitude": 106.823648,
            "timestamp": 1736928000,
            "primary_text": "",
            "secondary_text": "",
            "image_jpeg": "",
            "pipeline_data": {"event_id": str(second.event_id)},
        }
        assert await everything.receive_json_from(timeout=TIMEOUT) == gate_message
        for communicator in (everything, lobby, gate):
            await communicator.disconnect()

    async_to_sync(body)()


@transactional
def test_include_image_false_and_analytic_filter(streams, jpeg):
    async def body():
        no_image = await connect("/event_channel?include_image=false")
        only_fr = await connect(f"/event_channel/0/{LOBBY}?analytic_id=NFV4-FR&include_image=true")

        first = await lobby_event(streams, jpeg)
        expected = lobby_message(first, jpeg)
        del expected["image_jpeg"]
        assert await no_image.receive_json_from(timeout=TIMEOUT) == expected

        second = await lobby_event(streams, jpeg, analytic_id="NFV4-FR")
        assert await only_fr.receive_json_from(timeout=TIMEOUT) == {
            **lobby_message(second, jpeg),
            "analytic_id": "NFV4-FR",
        }
        await no_image.disconnect()
        await only_fr.disconnect()

    async_to_sync(body)()


@transactional
@pytest.mark.parametrize(
    ("path", "code", "reason"),
    [
        ("/event_channel/0/ffffffffffffffff", 4404, "stream not found"),
        (f"/event_channel/7/{LOBBY}", 4404, "node not found"),
        (f"/event_channel/x/{LOBBY}", 4400, "invalid node number 'x': it must be an integer"),
        ("/event_channel/0/NOT-HEX", 4400, "invalid stream_id: it must be 16 lowercase hex characters"),
        ("/event_channel?since=now", 4400, "unknown query parameter(s): since"),
        ("/event_channel?include_image=maybe", 4400, "invalid include_image: it must be true or false"),
    ],
)
def test_refused_connections_are_closed_with_a_code(streams, path, code, reason):
    async def body():
        await assert_closed(await connect(path), code, reason)

    async_to_sync(body)()


@transactional
def test_token_auth(streams, jpeg, settings):
    settings.API_TOKENS = ["s3cret"]

    async def body():
        await assert_closed(await connect("/event_channel"), 4401, "missing API token: add ?token=<token>")
        await assert_closed(await connect("/event_channel?token=wrong"), 4401, "invalid API token")
        await assert_closed(
            await connect("/event_channel", headers=[(b"authorization", b"Bearer wrong")]),
            4401,
            "invalid API token",
        )
        by_query = await connect(f"/event_channel/0/{LOBBY}?token=s3cret")
        # The scheme name is case-insensitive (RFC 7235), as on HTTP routes.
        by_header = await connect("/event_channel", headers=[(b"authorization", b"bearer s3cret")])
        event = await lobby_event(streams, jpeg)
        assert await by_query.receive_json_from(timeout=TIMEOUT) == lobby_message(event, jpeg)
        assert await by_header.receive_json_from(timeout=TIMEOUT) == lobby_message(event, jpeg)
        await by_query.disconnect()
        await by_header.disconnect()

    async_to_sync(body)()


@transactional
def test_what_clients_send_is_ignored(streams, jpeg):
    async def body():
        client = await connect("/event_channel")
        await client.send_to(text_data="not json")
        await client.send_to(text_data='{"subscribe": "everything"}')
        event = await lobby_event(streams, jpeg)
        assert await client.receive_json_from(timeout=TIMEOUT) == lobby_message(event, jpeg)
        await client.disconnect()

    async_to_sync(body)()


def test_message_of_an_event_whose_stream_is_gone():
    """The message is built from the row and the record the runner stamped: an event of
    a stream deleted before the publish still carries the stream as it was seen."""
    event = Event(
        stream_id=LOBBY,
        stream_name="Old camera",
        node_num=2,
        analytic_id=ANALYTIC,
        timestamp=T0,
        pipeline_data={"status": "UNKNOWN"},
    )
    stream = SimpleNamespace(
        stream_id=LOBBY,
        node_num=2,
        name="Old camera",
        address="rtsp://10.7.2.9/old",
        latitude=-6.5,
        longitude=106,
    )
    record = EventRecord(pipeline_data={"status": "UNKNOWN"}).for_stream(
        stream, analytic_id=ANALYTIC, emitted_at=T0.timestamp()
    )
    assert event_message_build(event=event, record=record) == {
        "analytic_id": ANALYTIC,
        "node_num": 2,
        "stream_id": LOBBY,
        "stream_name": "Old camera",
        "stream_address": "rtsp://10.7.2.9/old",
        "stream_latitude": -6.5,
        "stream_longitude": 106.0,
        "timestamp": 1736928000,
        "primary_text": "",
        "secondary_text": "",
        "image_jpeg": "",
        "pipeline_data": {"status": "UNKNOWN"},
    }
