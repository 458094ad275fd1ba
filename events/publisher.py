"""The one place live event messages are built and sent.

A message goes to the channel-layer group `events` (every `/event_channel`
client) and to `events.<node>.<stream_id>` (clients of that stream only), so a
client receives each event once whichever channel it joined.
"""

from __future__ import annotations

import base64
import logging
from typing import Any, TypedDict

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from streams.models import Stream

from .models import Event

logger = logging.getLogger(__name__)

ALL_EVENTS_GROUP = "events"
# Channels' handler name for the messages below: `event.message` -> `event_message`.
EVENT_MESSAGE_TYPE = "event.message"


class EventMessage(TypedDict):
    """One event as WebSocket clients receive it (spec/API.md, "Live events")."""

    analytic_id: str
    node_num: int
    stream_id: str
    stream_name: str
    stream_address: str
    stream_latitude: float
    stream_longitude: float
    timestamp: int  # unix seconds
    primary_text: str
    secondary_text: str
    image_jpeg: str  # base64 JPEG crop, "" when the event has none
    pipeline_data: dict[str, Any]


class EventEnvelope(TypedDict):
    """What travels through the channel layer to each consumer."""

    type: str
    message: EventMessage


def stream_group(node_num: int, stream_id: str) -> str:
    return f"events.{node_num}.{stream_id}"


def event_message_build(*, event: Event, stream: Stream | None, image_jpeg: bytes | None) -> EventMessage:
    # The stream may have been deleted since the event was seen: its copied name stays,
    # the rest falls back to neutral values of the contract's types.
    return EventMessage(
        analytic_id=event.analytic_id,
        node_num=event.node_num,
        stream_id=event.stream_id,
        stream_name=stream.name if stream is not None else event.stream_name,
        stream_address=stream.address if stream is not None else "",
        stream_latitude=float(stream.latitude) if stream is not None else 0.0,
        stream_longitude=float(stream.longitude) if stream is not None else 0.0,
        timestamp=int(event.timestamp.timestamp()),
        primary_text=event.primary_text,
        secondary_text=event.secondary_text,
        image_jpeg=base64.b64encode(image_jpeg).decode("ascii") if image_jpeg else "",
        pipeline_data=event.pipeline_data,
    )


def event_publish(event: Event, *, stream: Stream | None = None, image_jpeg: bytes | None = None) -> None:
    """Send `event` to live clients. Called after the event's row is committed.

    `stream` and `image_jpeg` save a query and a storage read when the caller
    has them (the writer always does); otherwise they are loaded here.
    """
    if stream is None:
        stream = Stream.objects.filter(stream_id=event.stream_id).first()
    if image_jpeg is None and event.image:
        with event.image.open("rb") as handle:
            image_jpeg = handle.read()
    envelope = EventEnvelope(
        type=EVENT_MESSAGE_TYPE,
        message=event_message_build(event=event, stream=stream, image_jpeg=image_jpeg),
    )
    layer = get_channel_layer()
    if layer is None:  # no channel layer configured: nobody can be listening
        return
    # One loop run for both groups: each async_to_sync call outside a loop starts a
    # fresh event loop (and a fresh Redis connection for the channel layer).
    async_to_sync(_send_to_groups)(
        layer, envelope, [ALL_EVENTS_GROUP, stream_group(event.node_num, event.stream_id)]
    )


def events_publish(items: list[tuple[Event, Stream | None, bytes | None]]) -> None:
    """Send several committed events, in order, in one event-loop run (the
    batched writer's publish: one channel-layer connection per batch, not per event)."""
    layer = get_channel_layer()
    if layer is None or not items:
        return
    sends = []
    for event, stream, image_jpeg in items:
        envelope = EventEnvelope(
            type=EVENT_MESSAGE_TYPE,
            message=event_message_build(event=event, stream=stream, image_jpeg=image_jpeg),
        )
        sends.append((envelope, [ALL_EVENTS_GROUP, stream_group(event.node_num, event.stream_id)]))
    async_to_sync(_send_all)(layer, sends)


async def _send_all(layer, sends: list[tuple[EventEnvelope, list[str]]]) -> None:
    for envelope, groups in sends:
        await _send_to_groups(layer, envelope, groups)


async def _send_to_groups(layer, envelope: EventEnvelope, groups: list[str]) -> None:
    for group in groups:
        try:
            await layer.group_send(group, envelope)
        except Exception:  # live delivery is best effort; the event is already stored
            logger.exception("could not publish event to %s", group)
