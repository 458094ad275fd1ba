"""Hands events from stream runners to the store, off the frame loop, in batches.

One writer thread per worker process drains a bounded queue: it takes up to
EVENT_BATCH_SIZE events, waiting at most EVENT_BATCH_WAIT_MS after the first
for others to join, and stores them in one transaction
(`events.services.events_create_batch`: crops, one multi-row INSERT, then the
live publish after commit). A burst of events from many streams costs a few
transactions instead of one per event. When the store falls behind, new events
are dropped and counted rather than queued without bound (a stream must never
stall on its database); the counts are in `stats()` and reach `/metrics`.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypedDict

from django.conf import settings
from django.db import close_old_connections, connection

from analytics.plugins import EventRecord
from events.services import EventInput, event_create, events_create_batch
from streams.models import Stream

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PendingEvent:
    stream: Stream  # an unsaved copy carrying the fields events record
    analytic_id: str
    record: EventRecord
    timestamp: float

    def to_input(self) -> EventInput:
        record = self.record
        seen_at = record.timestamp if record.timestamp is not None else self.timestamp
        return EventInput(
            stream=self.stream,
            analytic_id=self.analytic_id,
            timestamp=datetime.fromtimestamp(seen_at, tz=UTC),
            primary_text=record.primary_text,
            secondary_text=record.secondary_text,
            pipeline_data=record.pipeline_data,
            image_jpeg=record.image_jpeg or None,
            embedding=record.embedding,
            search_text=record.search_text
            or " ".join(
                part for part in (record.primary_text, record.secondary_text, self.stream.name) if part
            ),
        )


class SinkStats(TypedDict):
    queued: int  # waiting in the queue now
    capacity: int
    written: int  # stored (and handed to the live publish)
    dropped: int  # refused because the queue was full
    failed: int  # could not be stored (logged)
    batches: int  # transactions committed
    last_batch_size: int
    last_batch_ms: float


class EventSink:
    def __init__(self, capacity: int, *, batch_size: int = 100, batch_wait_s: float = 0.05) -> None:
        self.capacity = capacity
        self.batch_size = max(1, batch_size)
        self.batch_wait_s = max(0.0, batch_wait_s)
        self._queue: queue.Queue[PendingEvent | None] = queue.Queue(maxsize=capacity)
        self._lock = threading.Lock()  # counters are bumped from runner threads and the writer
        self.dropped = 0
        self.written = 0
        self.failed = 0
        self.batches = 0
        self.last_batch_size = 0
        self.last_batch_ms = 0.0
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="event-writer", daemon=True)
        self._thread.start()

    def submit(self, *, desired, analytic_id: str, record: EventRecord, timestamp: float) -> bool:
        """Queue one event of `desired` (a DesiredStream); False when dropped."""
        stream = Stream(
            stream_id=desired.stream_id,
            node_id=desired.node_num,
            name=desired.name,
            address=desired.address,
            latitude=desired.latitude,
            longitude=desired.longitude,
        )
        if self._stopping:
            with self._lock:
                self.dropped += 1
            return False
        try:
            self._queue.put_nowait(PendingEvent(stream, analytic_id, record, timestamp))
            return True
        except queue.Full:
            with self._lock:
                self.dropped += 1
                dropped = self.dropped
            if dropped == 1 or dropped % 100 == 0:
                logger.warning("event store is behind: %d events dropped so far", dropped)
            return False

    def stats(self) -> SinkStats:
        with self._lock:
            return SinkStats(
                queued=self._queue.qsize(),
                capacity=self.capacity,
                written=self.written,
                dropped=self.dropped,
                failed=self.failed,
                batches=self.batches,
                last_batch_size=self.last_batch_size,
                last_batch_ms=round(self.last_batch_ms, 2),
            )

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every submitted event was handled (for shutdown and tests)."""
        done = threading.Event()
        threading.Thread(target=lambda: (self._queue.join(), done.set()), daemon=True).start()
        return done.wait(timeout)

    def stop(self, timeout: float = 10.0) -> bool:
        """Store what is queued, then end the writer thread and its database
        connection (worker shutdown). Events submitted after this are dropped."""
        self._stopping = True
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            return False
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # -- the writer thread --------------------------------------------------------
    def _run(self) -> None:
        try:
            while True:
                batch, last = self._take()
                try:
                    if batch:
                        self._write(batch)
                except Exception:  # never let the writer die: later events must still be stored
                    logger.exception("event writer failed on a batch of %d", len(batch))
                finally:
                    for _ in range(len(batch) + (1 if last else 0)):
                        self._queue.task_done()
                if last:
                    return
        finally:
            connection.close()  # this thread's own connection

    def _take(self) -> tuple[list[PendingEvent], bool]:
        """Block for one event, then gather up to `batch_size` within `batch_wait_s`.
        The flag says the stop marker was taken (after the events before it)."""
        first = self._queue.get()
        if first is None:
            return [], True
        batch = [first]
        deadline = time.monotonic() + self.batch_wait_s
        while len(batch) < self.batch_size:
            remaining = deadline - time.monotonic()
            try:
                item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                return batch, True
            batch.append(item)
        return batch, False

    def _write(self, batch: list[PendingEvent]) -> None:
        started = time.perf_counter()
        close_old_connections()
        try:
            events_create_batch(items=[item.to_input() for item in batch])
            stored, failed = len(batch), 0
        except Exception:
            # One bad event must not cost the others: store them one by one.
            logger.exception("batch of %d events not stored; retrying one by one", len(batch))
            close_old_connections()
            stored = failed = 0
            for item in batch:
                if self._write_one(item):
                    stored += 1
                else:
                    failed += 1
        with self._lock:
            self.written += stored
            self.failed += failed
            self.batches += 1
            self.last_batch_size = len(batch)
            self.last_batch_ms = (time.perf_counter() - started) * 1000

    def _write_one(self, item: PendingEvent) -> bool:
        data = item.to_input()
        try:
            event_create(
                stream=data.stream,
                analytic_id=data.analytic_id,
                timestamp=data.timestamp,
                primary_text=data.primary_text,
                secondary_text=data.secondary_text,
                pipeline_data=data.pipeline_data,
                image_jpeg=data.image_jpeg,
                embedding=data.embedding,
                search_text=data.search_text,
            )
            return True
        except Exception:
            logger.exception("event of %s on %s not stored", item.analytic_id, item.stream.stream_id)
            return False


@functools.lru_cache(maxsize=1)
def event_sink() -> EventSink:
    return EventSink(
        capacity=settings.EVENT_QUEUE_CAPACITY,
        batch_size=settings.EVENT_BATCH_SIZE,
        batch_wait_s=settings.EVENT_BATCH_WAIT_MS / 1000,
    )


def event_sink_started() -> EventSink | None:
    """The process's sink if something already used it (never starts one)."""
    return event_sink() if event_sink.cache_info().currsize else None
