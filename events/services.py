"""Writing events: the row, its crop in storage, and the live publish."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.core.files.base import ContentFile
from django.db import DatabaseError, transaction

from analytics.plates.matching import search_key
from live.events import EventRecord
from streams.models import Stream

from .models import Event
from .publisher import events_publish


def event_image_name(event_id: uuid.UUID) -> str:
    """Where the crop of `event_id` is stored (the image field's upload_to, fixed once)."""
    return Event._meta.get_field("image").generate_filename(None, f"{event_id.hex}.jpg")


def _event_build(record: EventRecord) -> Event:
    """An unsaved row; `pipeline_data` gets the event's id as `event_id` unless
    the analytic set one, as in the contract's example, so a live client can
    fetch the event later."""
    event_id = record.event_id or uuid.uuid4()
    return Event(
        event_id=event_id,
        stream_id=record.stream_id,
        stream_name=record.stream_name,
        node_num=record.node_num,
        analytic_id=record.analytic_id,
        timestamp=record.seen_at,
        primary_text=record.primary_text,
        secondary_text=record.secondary_text,
        pipeline_data={"event_id": str(event_id), **record.pipeline_data},
        embedding=record.embedding,
        search_text=search_text_compose(
            record.search_text,
            record.primary_text,
            record.secondary_text,
            record.stream_name,
            plate_number=record.pipeline_data.get("plate_number"),
        ),
    )


def search_text_compose(text: str, *parts: str, plate_number: Any = None) -> str:
    """What text search matches an event by: the analytic's own search text (labels),
    then the names, secondary text and stream name it does not already contain, so
    every event can be found by its stream's name whatever its analytic wrote.

    An event with a `plate_number` (pipeline data of plate analytics) also carries
    the plate's search key as a word of its own (analytics.plates.matching: `LS15 EBC`,
    `ls15ebc` and `LSI5EBC` share the key `L515E8C`), which a plate-like query is
    turned into (events.search)."""
    composed = text.strip()
    for part in parts:
        part = part.strip()
        if part and part.casefold() not in composed.casefold():
            composed = f"{composed} {part}" if composed else part
    key = search_key(plate_number) if isinstance(plate_number, str) else ""
    if key and key.casefold() not in composed.casefold().split():
        composed = f"{composed} {key}" if composed else key
    return composed


def _crops_delete(events: list[Event]) -> None:
    # Storage is not transactional: crops saved for rows that were rolled back are removed.
    for event in events:
        if event.image:
            event.image.storage.delete(event.image.name)


def _crop_save(event: Event, record: EventRecord) -> None:
    if not record.image_jpeg:
        return
    if record.event_id is None:
        event.image.save(f"{event.event_id.hex}.jpg", ContentFile(record.image_jpeg), save=False)
        return
    name = event_image_name(record.event_id)
    storage = event.image.storage
    # A retry finds the crop an earlier attempt saved: the same file, not a copy beside it.
    if not storage.exists(name):
        saved = storage.save(name, ContentFile(record.image_jpeg))
        if saved != name:  # another attempt saved it meanwhile: one file is enough
            storage.delete(saved)
    event.image.name = name


def _crops_release_after_failure(
    events: list[Event], records: Sequence[EventRecord], exc: BaseException
) -> None:
    """After a failed batch: remove the crops of rows that are not stored. With
    the database unreachable nothing can be known (the commit may have happened),
    so crops of events with a writer's id (fixed names) are kept for its retry; a
    crop whose event is stored already (an earlier attempt's commit) is never removed."""
    from core.db import database_outage

    pairs = list(zip(events, records, strict=True))
    _crops_delete([event for event, record in pairs if record.event_id is None])
    named = [(event, record) for event, record in pairs if record.event_id is not None and record.image_jpeg]
    if not named or database_outage(exc) is not None:
        return
    try:
        ids = [event.event_id for event, _ in named]
        stored = set(Event.objects.filter(event_id__in=ids).values_list("pk", flat=True))
    except DatabaseError:
        return  # unknown: an orphan crop is better than a lost one
    for event, record in named:
        if event.event_id not in stored:
            event.image.storage.delete(event_image_name(record.event_id))


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
    """Store one event of `stream` (row and crop) and publish it to live clients once committed."""
    record = EventRecord(
        primary_text=primary_text,
        secondary_text=secondary_text,
        pipeline_data=pipeline_data,
        image_jpeg=image_jpeg or b"",
        embedding=embedding,
        search_text=search_text,
        timestamp=timestamp.timestamp(),
    ).for_stream(stream, analytic_id=analytic_id, emitted_at=timestamp.timestamp())
    return events_create_batch(records=[record])[0]


def events_create_batch(*, records: Sequence[EventRecord]) -> list[Event]:
    """Store several events (records stamped by `for_stream`) in one transaction
    (crops through the storage API, then one multi-row INSERT) and publish them,
    in order, once committed.

    All or nothing: if any row fails, none is stored and the crops saved for the
    batch are removed (see `_crops_release_after_failure`); the caller may retry
    the events one by one. Events with an `event_id` already stored are skipped
    (stored once, published once), so a writer may retry a batch whose commit's
    outcome it never learnt. Returns the events stored by this call.
    """
    events = [_event_build(record) for record in records]
    if not events:
        return []
    try:
        with transaction.atomic():
            given = [record.event_id for record in records if record.event_id is not None]
            stored: set = set()
            if given:
                stored = set(Event.objects.filter(event_id__in=given).values_list("pk", flat=True))
            pairs = zip(events, records, strict=True)
            fresh = [(event, record) for event, record in pairs if event.event_id not in stored]
            for event, record in fresh:
                _crop_save(event, record)
            # ignore_conflicts: the check above sees committed rows; this also covers a racing writer.
            Event.objects.bulk_create([event for event, _ in fresh], ignore_conflicts=bool(given))
            transaction.on_commit(lambda: events_publish(fresh), robust=True)
    except BaseException as exc:
        _crops_release_after_failure(events, records, exc)
        raise
    return [event for event, _ in fresh]


def events_delete(*, event_ids: Sequence[uuid.UUID]) -> int:
    """Delete these events; their crops go once the deletion is committed (a
    rollback keeps both). Returns how many rows were deleted."""
    with transaction.atomic():
        doomed = list(Event.objects.filter(event_id__in=list(event_ids)).only("event_id", "image"))
        Event.objects.filter(event_id__in=[event.event_id for event in doomed]).delete()
        transaction.on_commit(lambda: _crops_delete(doomed), robust=True)
    return len(doomed)
