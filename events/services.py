"""Writing events: the row, its crop in storage, and the live publish."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.core.files.base import ContentFile
from django.db import DatabaseError, transaction

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
    # Given by a writer that may store the same event twice (a retry after a
    # commit whose outcome was lost): the row is then stored once, and its crop
    # goes to `image_name` (see `event_image_name`) whichever attempt saves it.
    event_id: uuid.UUID | None = None
    image_name: str = ""


def event_image_name(event_id: uuid.UUID) -> str:
    """Where the crop of `event_id` is stored (the image field's upload_to, fixed once)."""
    return Event._meta.get_field("image").generate_filename(None, f"{event_id.hex}.jpg")


def _event_build(item: EventInput) -> Event:
    """An unsaved row; `pipeline_data` gets the event's id as `event_id` unless
    the analytic set one, as in the contract's example, so a live client can
    fetch the event later."""
    event_id = item.event_id or uuid.uuid4()
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


def _crop_save(event: Event, item: EventInput) -> None:
    if not item.image_jpeg:
        return
    if not item.image_name:
        event.image.save(f"{event.event_id.hex}.jpg", ContentFile(item.image_jpeg), save=False)
        return
    storage = event.image.storage
    # A retry finds the crop an earlier attempt saved: the same file, not a copy beside it.
    if not storage.exists(item.image_name):
        saved = storage.save(item.image_name, ContentFile(item.image_jpeg))
        if saved != item.image_name:  # another attempt saved it meanwhile: one file is enough
            storage.delete(saved)
    event.image.name = item.image_name


def _crops_release_after_failure(
    events: list[Event], items: Sequence[EventInput], exc: BaseException
) -> None:
    """After a failed batch: remove the crops of rows that are not stored. With
    the database unreachable nothing can be known (the commit may have happened),
    so crops named by the writer are kept for its retry; a crop whose event is
    stored already (an earlier attempt's commit) is never removed."""
    from core.db import database_outage

    pairs = list(zip(events, items, strict=True))
    _crops_delete([event for event, item in pairs if not item.image_name])
    named = [(event, item) for event, item in pairs if item.image_name and item.image_jpeg]
    if not named or database_outage(exc) is not None:
        return
    try:
        ids = [event.event_id for event, _ in named]
        stored = set(Event.objects.filter(event_id__in=ids).values_list("pk", flat=True))
    except DatabaseError:
        return  # unknown: an orphan crop is better than a lost one
    for event, item in named:
        if event.event_id not in stored:
            event.image.storage.delete(item.image_name)


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

    All or nothing: if any row fails, none is stored and the crops saved for the
    batch are removed (see `_crops_release_after_failure`); the caller may retry
    the events one by one. Events with an `event_id` already stored are skipped
    (stored once, published once), so a writer may retry a batch whose commit's
    outcome it never learnt. Returns the events stored by this call.
    """
    events = [_event_build(item) for item in items]
    if not events:
        return []
    try:
        with transaction.atomic():
            given = [item.event_id for item in items if item.event_id is not None]
            stored: set = set()
            if given:
                stored = set(Event.objects.filter(event_id__in=given).values_list("pk", flat=True))
            pairs = zip(events, items, strict=True)
            fresh = [(event, item) for event, item in pairs if event.event_id not in stored]
            for event, item in fresh:
                _crop_save(event, item)
            # ignore_conflicts: the check above sees committed rows; this also covers a racing writer.
            Event.objects.bulk_create([event for event, _ in fresh], ignore_conflicts=bool(given))
            published = [(event, item.stream, item.image_jpeg or b"") for event, item in fresh]
            transaction.on_commit(lambda: events_publish(published), robust=True)
    except BaseException as exc:
        _crops_release_after_failure(events, items, exc)
        raise
    return [event for event, _ in fresh]
