"""Periodic jobs of the events app (scheduled in CELERY_BEAT_SCHEDULE)."""

from __future__ import annotations

from celery import shared_task

from .retention import events_retention_run


@shared_task(name="events.retention_run", ignore_result=True)
def retention_run() -> dict:
    """Enforce retention_days and max_events_per_stream (see events.retention)."""
    report = events_retention_run()
    return {"expired": report.expired, "over_cap": report.over_cap, "complete": report.complete}
