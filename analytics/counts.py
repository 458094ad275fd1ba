"""Counts over time in PostgreSQL: storing per-minute rows, reading them rolled up
by minute, hour or day, and the per-process writer that stores them off the frame loop.

Analytics that count (people and vehicles) keep a stream's counts in memory
(analytics.objects.counting.MinuteCounts) and hand them to `count_writer()`
every few seconds and when the pipeline stops. The store adds each row to the
minute's row already there (a peak keeps the higher value), so a minute handed
over in several pieces adds up to the same totals.

While the database is unavailable the writer keeps the rows in memory, merged by
key (a minute, stream, analytic, zone, class and direction is one row however
often it was counted), up to COUNT_WRITER_MAX_ROWS rows; beyond that the oldest
minute is dropped whole and counted (`dropped_rows`, logged). With a few zones
per stream that is hours of counts. A row whose commit outcome was lost with
the connection may be added twice (the store is additive, not idempotent), and
rows still unstored when a worker stops during an outage are lost (logged).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from django.db import DatabaseError, connection
from django.db.models import Max, Sum

from core.db import connection_release, database_outage
from core.errors import BadRequest

from .models import AnalyticCount

logger = logging.getLogger(__name__)

PEAK = "peak"
BUCKET_MS = {"minute": 60_000, "hour": 3_600_000, "day": 86_400_000}
Bucket = Literal["minute", "hour", "day"]
# Rows one answer of the counts route may hold; a wider range must be asked in pieces
# or with a larger bucket.
MAX_ANSWER_ROWS = 10_000
DEFAULT_RANGE_MS = 86_400_000  # without from_ms: the last day up to to_ms

COUNT_WRITER_MAX_ROWS = 100_000
COUNT_WRITER_RETRY_SECONDS = 2.0
COUNT_WRITER_INTERVAL_SECONDS = 1.0


@dataclass(frozen=True)
class StoredCount:
    stream_id: str
    analytic_id: str
    minute_ms: int
    zone: str
    label: str
    direction: str
    value: int

    @property
    def key(self) -> tuple[str, str, int, str, str, str]:
        return (self.stream_id, self.analytic_id, self.minute_ms, self.zone, self.label, self.direction)


_UPSERT = """
INSERT INTO analytics_analyticcount (stream_id, analytic_id, minute_ms, zone, label, direction, value)
VALUES {values}
ON CONFLICT (stream_id, analytic_id, minute_ms, zone, label, direction) DO UPDATE SET value =
  CASE WHEN analytics_analyticcount.direction = 'peak'
       THEN GREATEST(analytics_analyticcount.value, EXCLUDED.value)
       ELSE analytics_analyticcount.value + EXCLUDED.value END
"""
_UPSERT_CHUNK = 1000


def counts_store(rows: Iterable[StoredCount]) -> int:
    """Add `rows` to the stored counts in one transaction (peaks: the higher value);
    how many rows were written."""
    merged = merge_counts({}, rows)
    if not merged:
        return 0
    items = [(*key, value) for key, value in sorted(merged.items())]
    with connection.cursor() as cursor:
        for start in range(0, len(items), _UPSERT_CHUNK):
            chunk = items[start : start + _UPSERT_CHUNK]
            values = ", ".join(["(%s, %s, %s, %s, %s, %s, %s)"] * len(chunk))
            cursor.execute(_UPSERT.format(values=values), [v for item in chunk for v in item])
    return len(items)


def merge_counts(
    into: dict[tuple, int], rows: Iterable[StoredCount]
) -> dict[tuple[str, str, int, str, str, str], int]:
    for row in rows:
        key = row.key
        if row.direction == PEAK:
            into[key] = max(into.get(key, 0), row.value)
        else:
            into[key] = into.get(key, 0) + row.value
    return into


def _int_param(raw: str | None, name: str) -> int | None:
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an integer (unix milliseconds), not '{raw[:40]}'") from None
    if not 0 <= value <= 2**53:
        raise BadRequest(f"{name} must be between 0 and 2^53 (unix milliseconds)")
    return value


@dataclass(frozen=True)
class CountsQuery:
    from_ms: int
    to_ms: int
    bucket: Bucket


def counts_query_parse(params, *, now_ms: int) -> CountsQuery:
    """The counts route's query (`from_ms`, `to_ms`, `bucket`), checked; 400 names the problem."""
    bucket = params.get("bucket") or "minute"
    if bucket not in BUCKET_MS:
        raise BadRequest(f"bucket must be minute, hour or day, not '{str(bucket)[:40]}'")
    to_ms = _int_param(params.get("to_ms"), "to_ms")
    to_ms = now_ms if to_ms is None else to_ms
    from_ms = _int_param(params.get("from_ms"), "from_ms")
    from_ms = max(0, to_ms - DEFAULT_RANGE_MS) if from_ms is None else from_ms
    if from_ms > to_ms:
        raise BadRequest("from_ms must not be after to_ms")
    return CountsQuery(from_ms, to_ms, bucket)


def counts_rolled_up(*, stream_id: str, analytic_id: str, query: CountsQuery) -> list[dict]:
    """Stored counts of one stream's analytic whose minute starts in [from_ms, to_ms),
    summed by bucket (peaks: their maximum), oldest bucket first, then by zone, class
    and direction. 400 when the answer would exceed MAX_ANSWER_ROWS."""
    size = BUCKET_MS[query.bucket]
    rows = AnalyticCount.objects.filter(
        stream_id=stream_id, analytic_id=analytic_id, minute_ms__gte=query.from_ms, minute_ms__lt=query.to_ms
    )
    if query.bucket == "minute":
        found = list(
            rows.order_by("minute_ms", "zone", "label", "direction").values_list(
                "minute_ms", "zone", "label", "direction", "value"
            )[: MAX_ANSWER_ROWS + 1]
        )
    else:
        # Minutes are whole multiples of 60 000 ms, so integer division by the bucket's
        # size puts each in its UTC hour or day.
        from django.db.models import F

        bucketed = rows.annotate(bucket_ms=(F("minute_ms") / size) * size)
        summed = (
            bucketed.exclude(direction=PEAK)
            .values("bucket_ms", "zone", "label", "direction")
            .annotate(total=Sum("value"))
            .values_list("bucket_ms", "zone", "label", "direction", "total")
        )
        peaks = (
            bucketed.filter(direction=PEAK)
            .values("bucket_ms", "zone", "label", "direction")
            .annotate(total=Max("value"))
            .values_list("bucket_ms", "zone", "label", "direction", "total")
        )
        found = sorted([*summed[: MAX_ANSWER_ROWS + 1], *peaks[: MAX_ANSWER_ROWS + 1]])
    if len(found) > MAX_ANSWER_ROWS:
        raise BadRequest(
            f"more than {MAX_ANSWER_ROWS} counts in this range: narrow from_ms/to_ms or use a larger bucket"
        )
    return [
        {"bucket_ms": int(b), "zone": zone, "label": label, "direction": direction, "value": int(value)}
        for b, zone, label, direction, value in found
    ]


def counts_totals(analytic_id: str) -> list[tuple[str, str, str, str, int]]:
    """(stream_id, zone, label, direction, total) of everything an analytic counted and
    that is still stored, peaks left out (they are not counts): /metrics' counters."""
    return [
        (stream_id, zone, label, direction, int(total))
        for stream_id, zone, label, direction, total in AnalyticCount.objects.filter(analytic_id=analytic_id)
        .exclude(direction=PEAK)
        .values("stream_id", "zone", "label", "direction")
        .annotate(total=Sum("value"))
        .order_by("stream_id", "zone", "label", "direction")
        .values_list("stream_id", "zone", "label", "direction", "total")
    ]


def counts_prune(before_ms: int) -> int:
    """Delete minutes that started before `before_ms` (retention); how many rows."""
    deleted, _ = AnalyticCount.objects.filter(minute_ms__lt=before_ms).delete()
    return deleted


# --- the writer -------------------------------------------------------------------------


class CountWriter:
    """Stores the counts handed to it from a background thread (one per process):
    merged in memory by key, bounded, kept while the database is unavailable."""

    def __init__(self, *, max_rows: int = COUNT_WRITER_MAX_ROWS, store=counts_store) -> None:
        self.max_rows = max_rows
        self._store = store
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._pending: dict[tuple, int] = {}
        self._stopping = False
        self._writing = 0  # rows taken by the thread and not stored yet
        self.written = self.dropped_rows = self.retries = 0
        self._thread = threading.Thread(target=self._run, name="count-writer", daemon=True)
        self._thread.start()

    def submit(self, rows: Iterable[StoredCount]) -> None:
        rows = list(rows)
        if not rows:
            return
        with self._lock:
            merge_counts(self._pending, rows)
            self._bound()
            self._wake.notify()

    def _bound(self) -> None:
        dropped = 0
        while len(self._pending) > self.max_rows:
            oldest = min(key[2] for key in self._pending)
            doomed = [key for key in self._pending if key[2] == oldest]
            for key in doomed:
                del self._pending[key]
            dropped += len(doomed)
        if dropped:
            self.dropped_rows += dropped
            logger.warning("count writer: %d rows of the oldest minutes dropped (bound reached)", dropped)

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._pending) + self._writing

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._pending and not self._stopping:
                    self._wake.wait()
                if not self._pending and self._stopping:
                    return
                batch, self._pending = self._pending, {}
                self._writing = len(batch)
            stored = self._write(batch)
            with self._lock:
                self._writing = 0
            if not stored:
                with self._lock:
                    # Put back under what arrived meanwhile, then wait before retrying.
                    merge_counts(self._pending, (StoredCount(*key, value) for key, value in batch.items()))
                    self._bound()
                    if self._stopping:
                        logger.warning("count writer stopped with %d rows unstored", len(self._pending))
                        return
                    self._wake.wait(COUNT_WRITER_RETRY_SECONDS)
            else:
                with self._lock:
                    if not self._stopping:
                        self._wake.wait(COUNT_WRITER_INTERVAL_SECONDS)  # gather a second's rows

    def _write(self, batch: dict[tuple, int]) -> bool:
        try:
            self.written += self._store(StoredCount(*key, value) for key, value in batch.items())
            return True
        except DatabaseError as exc:
            self.retries += 1
            if database_outage(exc) is None:
                logger.exception("count writer: %d rows refused by the database; dropped", len(batch))
                self.dropped_rows += len(batch)
                return True
            if self.retries == 1 or self.retries % 100 == 0:
                logger.warning("count writer: database unavailable (%s); keeping %d rows", exc, len(batch))
            return False
        finally:
            connection_release()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything submitted so far is stored (tests, shutdown)."""
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._pending and not self._writing:
                    break
                self._wake.notify()
            time.sleep(0.05)
        return self.pending == 0

    def stop(self, timeout: float = 10.0) -> bool:
        with self._lock:
            self._stopping = True
            self._wake.notify_all()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {
                "pending": len(self._pending),
                "written": self.written,
                "dropped_rows": self.dropped_rows,
                "retries": self.retries,
            }


_writer: CountWriter | None = None
_writer_lock = threading.Lock()


def count_writer() -> CountWriter:
    """The process's count writer, started on first use."""
    global _writer
    with _writer_lock:
        if _writer is None:
            _writer = CountWriter()
        return _writer


def count_writer_stop(timeout: float = 10.0) -> bool:
    """Store what is pending and stop the writer (a later count_writer() starts a new one)."""
    global _writer
    with _writer_lock:
        writer, _writer = _writer, None
    return writer.stop(timeout) if writer is not None else True
