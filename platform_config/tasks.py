"""Periodic jobs of the platform configuration (scheduled in CELERY_BEAT_SCHEDULE)."""

from __future__ import annotations

from celery import shared_task

from . import services


@shared_task(name="platform_config.licence_expire")
def licence_expire() -> bool:
    """Fall back to the community allowance once the licence in force expires."""
    return services.licence_expire_overdue()
