"""One Redis client per process, for the live state the platform keeps there."""

from __future__ import annotations

import functools

import redis
from django.conf import settings

KEY_PREFIX = "visionaire:"


def key(*parts: object) -> str:
    return KEY_PREFIX + ":".join(str(part) for part in parts)


@functools.lru_cache(maxsize=1)
def get_redis() -> redis.Redis:
    # redis-py's client is thread-safe and pools connections; short timeouts keep
    # a lost Redis from hanging a request or a stream loop.
    return redis.Redis.from_url(
        settings.REDIS_URL,
        decode_responses=True,
        socket_timeout=5,
        socket_connect_timeout=3,
        health_check_interval=30,
    )
