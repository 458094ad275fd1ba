"""Writing events: the row, its crop in storage, and the live publish."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from django.core.files.base import ContentFile
from django.db import transaction

from streams.models import Stream

from .models import Event
from .publisher import event_publish


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
    """Store one event (row and crop) and publish it to live clients once committed.

    `pipeline_data` gets the event's id as `event_id` unless the analytic set
    one, as in the contract's example, so a live client can fetch the event later.
    """
    event_id = uuid.uuid4()
    event = Event(
        event_id=event_id,
        stream_id=stream.stream_id,
        stream_name=stream.name,
        node_num=stream.node_id,
        analytic_id=analytic_id,
        timestamp=timestamp,
        primary_text=primary_text,
        secondary_text=secondary_text,
        pipeline_data={"event_id": str(event_id), **pipeline_data},
        embedding=embedding,
        search_text=search_text,
    )
    try:
        with transaction.atomic():
            if image_jpeg:
                event.image.save(f"{event_id.hex}.jpg", ContentFile(image_jpeg), save=False)
            event.save(force_insert=True)
            # robust: a failed live publish is logged and never undoes a stored event.
            transaction.on_commit(
                lambda: event_publish(event, stream=stream, image_jpeg=image_jpeg or b""), robust=True
            )
    except BaseException:
        # Storage is not transactional: a crop saved for a row that was rolled back is removed.
        if event.image:
            event.image.storage.delete(event.image.name)
        raise
    return event
