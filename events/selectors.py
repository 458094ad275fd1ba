"""Reading event history: newest first, paged by keyset on (timestamp, event_id)."""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db.models import Q

from core.errors import BadRequest, NotFound

from .models import Event

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The largest instant Python's datetime holds, in milliseconds since the epoch.
MAX_TIMESTAMP_MS = (datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC) - EPOCH) // timedelta(
    milliseconds=1
)


@dataclass(frozen=True)
class EventCursor:
    """Where a page ended: the last event's timestamp (in microseconds, so no
    event is skipped or repeated) and id, the tie-breaker."""

    timestamp_us: int
    event_id: uuid.UUID

    def encode(self) -> str:
        raw = json.dumps({"ts": self.timestamp_us, "id": str(self.event_id)}, separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode("ascii").rstrip("=")

    @classmethod
    def decode(cls, text: str) -> EventCursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            data = json.loads(raw)
            if not isinstance(data, dict) or set(data) != {"ts", "id"}:
                raise ValueError
            timestamp_us, event_id = data["ts"], uuid.UUID(data["id"])
            if type(timestamp_us) is not int or not 0 <= timestamp_us <= MAX_TIMESTAMP_MS * 1000:
                raise ValueError
        except (ValueError, TypeError, AttributeError, binascii.Error, UnicodeDecodeError):
            raise BadRequest("invalid cursor: pass the next_cursor of a previous page unchanged") from None
        return cls(timestamp_us=timestamp_us, event_id=event_id)

    @classmethod
    def after(cls, event: Event) -> EventCursor:
        return cls(
            timestamp_us=(event.timestamp - EPOCH) // timedelta(microseconds=1), event_id=event.event_id
        )

    @property
    def timestamp(self) -> datetime:
        return EPOCH + timedelta(microseconds=self.timestamp_us)


def ms_to_datetime(milliseconds: int) -> datetime:
    return EPOCH + timedelta(milliseconds=milliseconds)


def event_list(
    *,
    stream_id: str | None = None,
    analytic_id: str | None = None,
    from_ms: int | None = None,
    to_ms: int | None = None,
    q: str | None = None,
    limit: int = 50,
    cursor: EventCursor | None = None,
) -> tuple[list[Event], EventCursor | None]:
    """One page of events matching the filters (times inclusive, in ms) and the
    cursor for the next page, None on the last one. One query whatever the size."""
    events = Event.objects.defer("embedding", "search_text").order_by("-timestamp", "-event_id")
    if stream_id:
        events = events.filter(stream_id=stream_id)
    if analytic_id:
        events = events.filter(analytic_id=analytic_id)
    if from_ms is not None:
        events = events.filter(timestamp__gte=ms_to_datetime(from_ms))
    if to_ms is not None:
        # Inclusive of the whole millisecond `to_ms`, whatever finer precision is stored.
        events = events.filter(timestamp__lt=ms_to_datetime(to_ms + 1))
    if q:
        # `~*` (case-insensitive regex) rather than icontains: Django's icontains wraps the
        # column in UPPER(), which the trigram GIN index on search_text cannot serve.
        events = events.filter(search_text__iregex=re.escape(q))
    if cursor is not None:
        events = events.filter(
            Q(timestamp__lt=cursor.timestamp) | Q(timestamp=cursor.timestamp, event_id__lt=cursor.event_id)
        )
    page = list(events[: limit + 1])
    if len(page) > limit:
        page = page[:limit]
        return page, EventCursor.after(page[-1])
    return page, None


def event_get(*, event_id: uuid.UUID) -> Event:
    try:
        return Event.objects.defer("embedding").get(event_id=event_id)
    except Event.DoesNotExist:
        raise NotFound("event not found") from None
