"""Writing events: the row, its crop in storage, and the live publish."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.core.files.base import ContentFile
from django.db import transaction

from streams.models import Stream

from .models import Event
from .publisher import event_publish, events_publish


@dataclass(frozen=True)
class EventInput:
    """One event to store, as an analytic saw it (see `events_create_batch`)."""

    stream: Stream  # may be an unsaved copy: only its fields are read
    analytic_id: str
    timestamp: datetime
    pipeline_data: dict[str, Any] = field(default_factory=dict)
    primary_text: str = ""
    secondary_text: str = ""
    image_jpeg: bytes | None = None
    embedding: list[float] | None = None
    search_text: str = ""


def _event_build(item: EventInput) -> Event:
    """An unsaved row; `pipeline_data` gets the event's id as `event_id` unless
    the analytic set one, as in the contract's example, so a live client can
    fetch the event later."""
    event_id = uuid.uuid4()
    return Event(
        event_id=event_id,
        stream_id=item.stream.stream_id,
        stream_name=item.stream.name,
        node_num=item.stream.node_id,
        analytic_id=item.analytic_id,
        timestamp=item.timestamp,
        primary_text=item.primary_text,
        secondary_text=item.secondary_text,
        pipeline_data={"event_id": str(event_id), **item.pipeline_data},
        embedding=item.embedding,
        search_text=search_text_compose(
            item.search_text, item.primary_text, item.secondary_text, item.stream.name
        ),
    )


def search_text_compose(text: str, *parts: str) -> str:
    """What text search matches an event by: the analytic's own search text (labels),
    then the names, secondary text and stream name it does not already contain, so
    every event can be found by its stream's name whatever its analytic wrote."""
    composed = text.strip()
    for part in parts:
        part = part.strip()
        if part and part.casefold() not in composed.casefold():
            composed = f"{composed} {part}" if composed else part
    return composed


def _crops_delete(events: list[Event]) -> None:
    # Storage is not transactional: crops saved for rows that were rolled back are removed.
    for event in events:
        if event.image:
            event.image.storage.delete(event.image.name)


def event_create(
    *,
    stream: Stream,
    analytic_id: str,
    timestamp: datetime,
    primary_text: str = "",
    secondary_text: str = "",
    pipeline_data: dict[str, Any],
    image_jpeg: bytes | None,
    embedding: list[float] | None = None,
    search_text: str = "",
) -> Event:
    """Store one event (row and crop) and publish it to live clients once committed."""
    event = _event_build(
        EventInput(
            stream=stream,
            analytic_id=analytic_id,
            timestamp=timestamp,
            primary_text=primary_text,
            secondary_text=secondary_text,
            pipeline_data=pipeline_data,
            image_jpeg=image_jpeg,
            embedding=embedding,
            search_text=search_text,
        )
    )
    try:
        with transaction.atomic():
            if image_jpeg:
                event.image.save(f"{event.event_id.hex}.jpg", ContentFile(image_jpeg), save=False)
            event.save(force_insert=True)
            # robust: a failed live publish is logged and never undoes a stored event.
            transaction.on_commit(
                lambda: event_publish(event, stream=stream, image_jpeg=image_jpeg or b""), robust=True
            )
    except BaseException:
        _crops_delete([event])
        raise
    return event


def events_create_batch(*, items: Sequence[EventInput]) -> list[Event]:
    """Store several events in one transaction (crops through the storage API,
    then one multi-row INSERT) and publish them, in order, once committed.

    All or nothing: if any row fails, none is stored and every crop saved for
    the batch is removed; the caller may retry the events one by one.
    """
    events = [_event_build(item) for item in items]
    if not events:
        return []
    try:
        with transaction.atomic():
            for event, item in zip(events, items, strict=True):
                if item.image_jpeg:
                    event.image.save(f"{event.event_id.hex}.jpg", ContentFile(item.image_jpeg), save=False)
            Event.objects.bulk_create(events)
            published = [
                (event, item.stream, item.image_jpeg or b"")
                for event, item in zip(events, items, strict=True)
            ]
            transaction.on_commit(lambda: events_publish(published), robust=True)
    except BaseException:
        _crops_delete(events)
        raise
    return events
