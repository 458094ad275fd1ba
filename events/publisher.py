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

from live.events import EventRecord

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


def event_message_build(*, event: Event, record: EventRecord) -> EventMessage:
    """The message of a stored event: the row, and what the record carries beside
    it (the stream's address and position as the runner saw them, the crop's bytes),
    so publishing reads neither the stream nor the storage, and an event of a
    stream deleted meanwhile is still sent whole."""
    return EventMessage(
        analytic_id=event.analytic_id,
        node_num=event.node_num,
        stream_id=event.stream_id,
        stream_name=event.stream_name,
        stream_address=record.stream_address,
        stream_latitude=float(record.stream_latitude),
        stream_longitude=float(record.stream_longitude),
        timestamp=int(event.timestamp.timestamp()),
        primary_text=event.primary_text,
        secondary_text=event.secondary_text,
        image_jpeg=base64.b64encode(record.image_jpeg).decode("ascii") if record.image_jpeg else "",
        pipeline_data=event.pipeline_data,
    )


def events_publish(items: list[tuple[Event, EventRecord]]) -> None:
    """Send committed events to live clients, in order, in one event-loop run (one
    channel-layer connection per batch, not per event). Called once the rows are
    committed; a failed send is logged and never undoes a stored event."""
    layer = get_channel_layer()
    if layer is None or not items:  # no channel layer configured: nobody can be listening
        return
    sends = []
    for event, record in items:
        envelope = EventEnvelope(
            type=EVENT_MESSAGE_TYPE, message=event_message_build(event=event, record=record)
        )
        sends.append((envelope, [ALL_EVENTS_GROUP, stream_group(event.node_num, event.stream_id)]))
    # Each async_to_sync call outside a loop starts a fresh event loop (and a fresh
    # Redis connection for the channel layer): one call for the whole batch.
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
