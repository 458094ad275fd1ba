"""One Redis client per process, for the live state the platform keeps there."""

from __future__ import annotations

import contextlib
import functools
import logging

import redis
from django.conf import settings

from core.errors import ApiError
from core.outage import REDIS_UNAVAILABLE

logger = logging.getLogger(__name__)

KEY_PREFIX = "visionaire:"


def key(*parts: object) -> str:
    return KEY_PREFIX + ":".join(str(part) for part in parts)


@functools.lru_cache(maxsize=1)
def get_redis() -> redis.Redis:
    # redis-py's client is thread-safe and pools connections; short timeouts keep
    # a lost Redis from hanging a request or a stream loop. Blocking reads through
    # it (the control queue's BRPOP) wait less than its socket timeout.
    return redis.Redis.from_url(settings.REDIS_URL, decode_responses=True, **settings.REDIS_CLIENT_OPTIONS)


class LiveStateUnavailable(ApiError):
    """Redis is unreachable: live figures cannot be read. 503 rather than a
    guess, so a client never mistakes "unknown" for "stopped" or "offline"."""

    status = 503

    def __init__(self, message: str = REDIS_UNAVAILABLE):
        super().__init__(message)


@contextlib.contextmanager
def live_state(what: str):
    """Turn a Redis failure while reading `what` into a 503 (the log names `what`)."""
    try:
        yield
    except redis.RedisError as exc:
        logger.warning("reading %s failed: %s", what, exc)
        raise LiveStateUnavailable() from None


@functools.lru_cache(maxsize=1)
def get_redis_binary() -> redis.Redis:
    """A client that returns bytes, for frames and other binary payloads."""
    return redis.Redis.from_url(settings.REDIS_URL, **settings.REDIS_CLIENT_OPTIONS)
