"""Outages answer 503, not 500.

While PostgreSQL or Redis cannot serve, any route that needs it answers
`{"code": 503, "message": "database unavailable"}` (or `"redis unavailable"`;
`"database busy: ..."` when this process's pool stayed full for the whole wait),
and the next request after the server's return works again: nothing here keeps
state, the pool (visionaire_site.db) and the Redis client reconnect by themselves.

The translation happens in three places, so no route escapes it: DRF's
exception handler (core.errors), the site's `OutageMiddleware` for every other
view (async ones included), and the 500 handler for what fails in a middleware.
"""

from __future__ import annotations

import logging

import redis

from .db import database_outage
from .errors import error_response

logger = logging.getLogger(__name__)

# The 503 message of every route that needs Redis while it is unreachable.
REDIS_UNAVAILABLE = "redis unavailable"


def _redis_outage(exc: BaseException) -> bool:
    # A refused or timed-out connection (Redis down, restarting or loading its
    # snapshot), not a command error such as WRONGTYPE, which is a bug.
    if isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
        return True
    try:
        from kombu.exceptions import OperationalError as BrokerUnavailable  # Celery's broker is Redis
    except ImportError:  # pragma: no cover (Celery is a dependency)
        return False
    return isinstance(exc, BrokerUnavailable)


def outage_message(exc: BaseException) -> str | None:
    """The 503 message when `exc` means a server the platform needs cannot serve now."""
    message = database_outage(exc)
    if message is not None:
        return message
    if _redis_outage(exc):
        return REDIS_UNAVAILABLE
    return None


def outage_response(request, exc: BaseException):
    """A 503 response for an outage, or None for any other exception."""
    message = outage_message(exc)
    if message is None:
        return None
    logger.info("%s %s: %s (%s: %s)", request.method, request.path, message, type(exc).__name__, exc)
    return error_response(503, message)
