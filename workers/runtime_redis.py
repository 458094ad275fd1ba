"""Redis as the stream runners' frame loops use it: quick to fail, and left
alone for a while after it failed.

A stream keeps decoding while Redis is away; only its live figures, lease
refreshes and viewer frames wait. A Redis that is down can cost a connect
timeout on every call (several, with the client's default retries), so a loop
that touches it each second or each frame would spend its time waiting instead
of decoding. The loops' client fails fast (short timeouts, no retries), and
after a failure the caller skips its Redis work until a pause has passed
(doubling up to a cap); then one call tries again.
"""

from __future__ import annotations

import functools
import logging
import time

import redis
from django.conf import settings
from redis.backoff import NoBackoff
from redis.retry import Retry

logger = logging.getLogger(__name__)

# Redis answers a runner's small commands in milliseconds; one second of silence is an outage.
_TIMEOUT_S = 1.0


def _client(*, decode_responses: bool) -> redis.Redis:
    return redis.Redis.from_url(
        settings.REDIS_URL,
        decode_responses=decode_responses,
        socket_timeout=_TIMEOUT_S,
        socket_connect_timeout=_TIMEOUT_S,
        retry=Retry(NoBackoff(), 0),  # the backoff below is the retry
        health_check_interval=30,
    )


@functools.lru_cache(maxsize=1)
def runtime_redis() -> redis.Redis:
    """The stream runners' client (text replies); one pool per process."""
    return _client(decode_responses=True)


@functools.lru_cache(maxsize=1)
def runtime_redis_binary() -> redis.Redis:
    """The same for binary payloads (live frames)."""
    return _client(decode_responses=False)


class RedisBackoff:
    """Whether to touch Redis now. One instance per loop (not thread-safe)."""

    def __init__(self, what: str, *, initial_s: float = 0.5, max_s: float = 5.0) -> None:
        self.what = what
        self.initial_s = initial_s
        self.max_s = max_s
        self.failures = 0  # consecutive failed calls; 0 while Redis answers
        self._pause = 0.0
        self._retry_at = 0.0
        self._down_since = 0.0

    @property
    def down(self) -> bool:
        return self.failures > 0

    def ready(self) -> bool:
        return time.monotonic() >= self._retry_at

    def failed(self, exc: Exception) -> None:
        now = time.monotonic()
        if self.failures == 0:
            self._down_since = now
            self._pause = self.initial_s
            # Once per outage: the log would otherwise repeat every pause.
            logger.warning("%s: Redis unreachable (%s); retrying every few seconds", self.what, exc)
        else:
            self._pause = min(self._pause * 2, self.max_s)
            logger.debug("%s: Redis still unreachable (%s)", self.what, exc)
        self.failures += 1
        self._retry_at = now + self._pause

    def succeeded(self) -> None:
        if self.failures:
            logger.info("%s: Redis answers again after %.1fs", self.what, time.monotonic() - self._down_since)
        self.failures = 0
        self._retry_at = 0.0
