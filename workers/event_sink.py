"""Hands events from stream runners to the store, off the frame loop.

One writer thread per worker process drains a bounded queue; when the store
falls behind, new events are dropped and counted rather than queued without
bound (a stream must never stall on its database).
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.db import close_old_connections

from analytics.plugins import EventRecord
from events.services import event_create
from streams.models import Stream

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PendingEvent:
    stream: Stream  # an unsaved copy carrying the fields events record
    analytic_id: str
    record: EventRecord
    timestamp: float


class EventSink:
    def __init__(self, capacity: int) -> None:
        self._queue: queue.Queue[PendingEvent | None] = queue.Queue(maxsize=capacity)
        self.dropped = 0
        self.written = 0
        self.failed = 0
        self._thread = threading.Thread(target=self._run, name="event-writer", daemon=True)
        self._thread.start()

    def submit(self, *, desired, analytic_id: str, record: EventRecord, timestamp: float) -> bool:
        stream = Stream(
            stream_id=desired.stream_id,
            node_id=desired.node_num,
            name=desired.name,
            address=desired.address,
            latitude=desired.latitude,
            longitude=desired.longitude,
        )
        try:
            self._queue.put_nowait(PendingEvent(stream, analytic_id, record, timestamp))
            return True
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 100 == 0:
                logger.warning("event store is behind: %d events dropped so far", self.dropped)
            return False

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every submitted event was handled (for shutdown and tests)."""
        done = threading.Event()
        threading.Thread(target=lambda: (self._queue.join(), done.set()), daemon=True).start()
        return done.wait(timeout)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is not None:
                    self._write(item)
            finally:
                self._queue.task_done()

    def _write(self, item: PendingEvent) -> None:
        record = item.record
        try:
            close_old_connections()
            event_create(
                stream=item.stream,
                analytic_id=item.analytic_id,
                timestamp=datetime.fromtimestamp(item.timestamp, tz=UTC),
                primary_text=record.primary_text,
                secondary_text=record.secondary_text,
                pipeline_data=record.pipeline_data,
                image_jpeg=record.image_jpeg or None,
                embedding=record.embedding,
                search_text=record.search_text
                or " ".join(
                    part for part in (record.primary_text, record.secondary_text, item.stream.name) if part
                ),
            )
            self.written += 1
        except Exception:
            self.failed += 1
            logger.exception("event of %s on %s not stored", item.analytic_id, item.stream.stream_id)


@functools.lru_cache(maxsize=1)
def event_sink() -> EventSink:
    return EventSink(capacity=settings.EVENT_QUEUE_CAPACITY)
