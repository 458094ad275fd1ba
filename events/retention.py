"""Retention: events older than `retention_days`, and each stream's events beyond
`max_events_per_stream` (oldest first), are removed with their stored crops.

The job runs from Celery beat (CELERY_BEAT_SCHEDULE "events-retention") and is
built to leave the API responsive while it works through millions of rows:

- rows go in small batches (RETENTION_BATCH_SIZE, 1000 by default), one short
  transaction per batch, chosen through an index and `FOR UPDATE SKIP LOCKED`, so
  a batch never waits on a row someone else holds and holds its own locks for
  milliseconds; `lock_timeout` and `statement_timeout` bound the worst case;
- a run stops after RETENTION_TIME_BUDGET_SECONDS and the next run carries on;
- crops are deleted through the storage API only after their rows' transaction
  committed (a rolled-back batch keeps its files); a crash between the two
  leaves files no row names, which the orphan sweep of old day folders removes;
- a Redis lock keeps two workers from running it at once (every worker consumes
  the queue the beat job is sent to).

The configuration row is read afresh at the start of each run (one query, not
the per-process copy), so a change made with PUT /config/database or POST
/config/platform applies on the next run.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from redis.exceptions import LockError

from analytics.counts import counts_prune
from live.keys import RETENTION_LOCK_KEY
from live.redis import get_redis
from platform_config.services import platform_config_current

from .models import Event

logger = logging.getLogger(__name__)

TABLE = Event._meta.db_table
# Crops live under events/YYYY/MM/DD (Event.image upload_to): the day they were stored.
CROP_ROOT = "events"


@dataclass
class RetentionReport:
    expired: int = 0  # rows older than retention_days removed
    over_cap: int = 0  # rows beyond max_events_per_stream removed
    files_removed: int = 0
    counts_expired: int = 0  # rows of counts over time (analytics.counts) older than retention_days
    orphan_files_removed: int = 0
    complete: bool = True  # False when the time budget ran out with work left
    skipped: bool = False  # another run held the lock
    seconds: float = 0.0

    @property
    def removed(self) -> int:
        return self.expired + self.over_cap


class _Budget:
    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    @property
    def spent(self) -> bool:
        return time.monotonic() >= self.deadline


def _crop_storage():
    return Event._meta.get_field("image").storage


def _delete_batch(select_sql: str, params: list) -> list[str]:
    """Delete the rows `select_sql` picks (event ids, at most one batch) in one short
    transaction; the crops' names come back for deletion after the commit."""
    with transaction.atomic(), connection.cursor() as cursor:
        # Never queue behind a long lock (e.g. an index build): give up, retry next run.
        cursor.execute("SET LOCAL lock_timeout = '2s'")
        cursor.execute("SET LOCAL statement_timeout = '60s'")
        cursor.execute(
            f"WITH doomed AS ({select_sql} FOR UPDATE SKIP LOCKED) "
            f"DELETE FROM {TABLE} e USING doomed WHERE e.event_id = doomed.event_id RETURNING e.image",
            params,
        )
        return [row[0] for row in cursor.fetchall()]


def _files_delete(names: list[str]) -> int:
    storage = _crop_storage()
    removed = 0
    for name in names:
        if not name:
            continue
        try:
            storage.delete(name)
            removed += 1
        except OSError:
            logger.warning("retention: could not delete crop %s", name, exc_info=True)
    return removed


def _run_batches(select_sql: str, params: list, *, batch_size: int, budget: _Budget) -> tuple[int, int, bool]:
    """Delete batch after batch until none is full or the budget is spent.
    Returns (rows, files, finished)."""
    rows = files = 0
    while True:
        names = _delete_batch(select_sql, [*params, batch_size])
        rows += len(names)
        files += _files_delete(names)
        if len(names) < batch_size:
            return rows, files, True
        if budget.spent:
            return rows, files, False


def _stream_ids_with_events() -> list[str]:
    """Distinct stream ids by a loose index scan on (stream_id, timestamp): one index
    probe per stream instead of reading every row."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH RECURSIVE s AS (
                (SELECT stream_id FROM {TABLE} ORDER BY stream_id LIMIT 1)
                UNION ALL
                SELECT (SELECT stream_id FROM {TABLE} WHERE stream_id > s.stream_id
                        ORDER BY stream_id LIMIT 1)
                FROM s WHERE s.stream_id IS NOT NULL
            )
            SELECT stream_id FROM s WHERE stream_id IS NOT NULL
            """
        )
        return [row[0] for row in cursor.fetchall()]


def _cap_boundary(stream_id: str, cap: int) -> tuple[datetime, uuid.UUID] | None:
    """The newest event of the stream that is over the cap (the cap+1-th newest), or
    None when the stream is within it. Events are ranked by (timestamp, event_id)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT timestamp, event_id FROM {TABLE} WHERE stream_id = %s "
            "ORDER BY timestamp DESC, event_id DESC OFFSET %s LIMIT 1",
            [stream_id, cap],
        )
        row = cursor.fetchone()
    return (row[0], row[1]) if row else None


def _expired_delete(cutoff: datetime, *, batch_size: int, budget: _Budget) -> tuple[int, int, bool]:
    select_sql = f"SELECT event_id FROM {TABLE} WHERE timestamp < %s ORDER BY timestamp LIMIT %s"
    return _run_batches(select_sql, [cutoff], batch_size=batch_size, budget=budget)


def _over_cap_delete(cap: int, *, batch_size: int, budget: _Budget) -> tuple[int, int, bool]:
    rows = files = 0
    for stream_id in _stream_ids_with_events():
        if budget.spent:
            return rows, files, False
        boundary = _cap_boundary(stream_id, cap)
        if boundary is None:
            continue
        # Events newer than the boundary are the `cap` kept; those arriving meanwhile
        # are newer still, so the boundary stays right while the batches run.
        select_sql = (
            f"SELECT event_id FROM {TABLE} WHERE stream_id = %s "
            "AND (timestamp, event_id) <= (%s, %s) ORDER BY timestamp LIMIT %s"
        )
        stream_rows, stream_files, finished = _run_batches(
            select_sql, [stream_id, boundary[0], boundary[1]], batch_size=batch_size, budget=budget
        )
        rows += stream_rows
        files += stream_files
        if not finished:
            return rows, files, False
    return rows, files, True


def _day_folder_date(parts: tuple[str, str, str]) -> date | None:
    try:
        return date(int(parts[0]), int(parts[1]), int(parts[2]))
    except ValueError:
        return None


def _orphans_delete(before: date, *, budget: _Budget) -> tuple[int, bool]:
    """Crops in day folders older than `before` that no row names any more (left by a
    crash between a batch's commit and its file deletion). Day folders of the last
    days are never touched: a crop is written just before its row is committed."""
    storage = _crop_storage()
    removed = 0
    try:
        years = storage.listdir(CROP_ROOT)[0]
    except (FileNotFoundError, NotImplementedError):
        return 0, True
    for year in sorted(years):
        for month in sorted(storage.listdir(f"{CROP_ROOT}/{year}")[0]):
            for day in sorted(storage.listdir(f"{CROP_ROOT}/{year}/{month}")[0]):
                if budget.spent:
                    return removed, False
                folder_date = _day_folder_date((year, month, day))
                if folder_date is None or folder_date >= before:
                    continue
                folder = f"{CROP_ROOT}/{year}/{month}/{day}"
                names = [f"{folder}/{name}" for name in storage.listdir(folder)[1]]
                for start in range(0, len(names), 1000):
                    chunk = names[start : start + 1000]
                    named = set(Event.objects.filter(image__in=chunk).values_list("image", flat=True))
                    removed += _files_delete([name for name in chunk if name not in named])
                _folder_prune(storage, folder, year=int(year), month=int(month), before=before)
    return removed, True


def _folder_prune(storage, folder: str, *, year: int, month: int, before: date) -> None:
    """Remove an emptied day folder, and its month and year folders once emptied and
    wholly before `before` (a folder crops may still be written to is kept)."""
    if not hasattr(storage, "path"):
        return
    path = Path(storage.path(folder))
    candidates = [path]
    if (year, month) < (before.year, before.month):
        candidates.append(path.parent)
        if year < before.year:
            candidates.append(path.parent.parent)
    for candidate in candidates:
        try:
            candidate.rmdir()
        except OSError:  # not empty, or gone already
            return


def events_retention_run(
    *,
    now: datetime | None = None,
    batch_size: int | None = None,
    time_budget_seconds: float | None = None,
) -> RetentionReport:
    """One retention pass with the configuration in force: expired rows first (the
    bulk), then each stream's rows over the cap, then orphaned crops."""
    started = time.monotonic()
    batch_size = batch_size or settings.RETENTION_BATCH_SIZE
    budget = _Budget(
        time_budget_seconds if time_budget_seconds is not None else settings.RETENTION_TIME_BUDGET_SECONDS
    )
    report = RetentionReport()
    # Outlives the run's budget, so a worker that dies mid-run frees it soon after.
    lock_seconds = int(budget.deadline - time.monotonic()) + 120
    lock = get_redis().lock(RETENTION_LOCK_KEY, timeout=lock_seconds, blocking=False)
    if not lock.acquire():
        report.skipped = True
        return report
    try:
        config = platform_config_current()
        now = now or timezone.now()
        cutoff = now - timedelta(days=config.event_retention_days)
        rows, files, finished = _expired_delete(cutoff, batch_size=batch_size, budget=budget)
        report.expired, report.files_removed = rows, files
        # Counts over time age out with the events they sit beside.
        report.counts_expired = counts_prune(int(cutoff.timestamp() * 1000))
        if finished:
            rows, files, finished = _over_cap_delete(
                config.max_events_per_stream, batch_size=batch_size, budget=budget
            )
            report.over_cap, report.files_removed = rows, report.files_removed + files
        if finished:
            report.orphan_files_removed, finished = _orphans_delete(
                min(cutoff.date(), now.date() - timedelta(days=2)), budget=budget
            )
        report.complete = finished
    finally:
        with contextlib.suppress(LockError):  # expired meanwhile: another run may hold it now
            lock.release()
        report.seconds = time.monotonic() - started
    if report.removed or report.orphan_files_removed or not report.complete:
        logger.info(
            "retention: %d expired and %d over-cap events removed, %d crops, %d orphaned crops in %.1f s%s",
            report.expired,
            report.over_cap,
            report.files_removed,
            report.orphan_files_removed,
            report.seconds,
            "" if report.complete else " (time budget spent; the next run continues)",
        )
    return report
