"""Celery tasks of the stream runtime. Thin: they adapt arguments and call the
runtime; retries and fault handling live in the runner itself."""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings

from core.outage import outage_message

from .control import stream_dispatch
from .reconcile import streams_reconcile_run
from .runner import StreamRunner

logger = logging.getLogger(__name__)


@shared_task(name="workers.stream_run", ignore_result=True, acks_late=False)
def stream_run(stream_id: str) -> None:
    """Run one stream until it is stopped; one task per active stream.

    acks_late stays off: after a worker crash the message must not be
    redelivered (the reconcile job restarts the stream once its lease expires).
    """
    hostname = getattr(stream_run.request, "hostname", "") or ""
    runner = StreamRunner(stream_id, node_num=settings.NODE_NUM, worker_name=hostname)
    if runner.run() and runner.wanted_again():
        logger.info("stream %s is active again; queueing it", stream_id)
        stream_dispatch(stream_id=stream_id, node_num=settings.NODE_NUM)


@shared_task(name="workers.streams_reconcile", ignore_result=True)
def streams_reconcile() -> int:
    """Start every active stream that runs nowhere (beat runs this every few seconds).
    While PostgreSQL or Redis is down it says so in one line; the next run catches up."""
    try:
        return streams_reconcile_run()
    except Exception as exc:
        message = outage_message(exc)
        if message is None:
            raise
        logger.warning("reconcile skipped: %s", message)
        return 0
