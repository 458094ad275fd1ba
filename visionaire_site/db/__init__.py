"""PostgreSQL as the platform's processes use it: one bounded connection pool per
process, and telling "the server is gone" from "every connection is in use".

Django's own pool (psycopg_pool, `OPTIONS["pool"]`) does the pooling; the
engine `visionaire_site.db` (see `base.py`) adds what the pool does not:

- a request waits at most `DB_POOL_TIMEOUT_SECONDS` for a connection, in slices
  of `POOL_SLICE_SECONDS`; after a slice without one it asks the server directly
  (one probe per process at a time, at most one per `PROBE_INTERVAL_SECONDS`).
  A server that does not answer ends the wait at once with `DatabaseUnavailable`;
  a server that answers while the pool stays full ends it at the deadline with
  `DatabaseBusy`.
- while the server is known to be down, connecting fails at once (no request
  queues behind a dead server), and the next probe that succeeds lets requests
  through again, so the platform recovers by itself within seconds.

Both errors are psycopg `OperationalError`s, so Django turns them into
`django.db.OperationalError` like any other connection failure;
`core.db.database_outage()` reads the reason back for the 503 answer (`core.outage`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import psycopg

from core.db import DatabaseBusy, DatabaseUnavailable, one_line

logger = logging.getLogger(__name__)

# How long one wait on the pool lasts before the server is asked whether it is there.
POOL_SLICE_SECONDS = 1.0
PROBE_INTERVAL_SECONDS = 1.0
PROBE_CONNECT_TIMEOUT_SECONDS = 2
# psycopg_pool retries a failed connection with doubling delays (1 s, 2 s, 4 s, ...)
# for this long before giving up that attempt; the next request starts a new one.
# Short, so that after an outage the pool reconnects within seconds of the server's
# return instead of sleeping through a long backoff.
POOL_RECONNECT_SECONDS = 5.0
# SQLSTATE of "sorry, too many clients already": the server is there, only full.
TOO_MANY_CONNECTIONS = "53300"


class ServerGate:
    """What this process knows of the server's reachability (one per process)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._probing = threading.Lock()
        self.down_reason: str | None = None
        self._next_probe = 0.0
        self._last_probe_up = 0.0

    @property
    def down(self) -> bool:
        return self.down_reason is not None

    def mark_down(self, reason: str) -> None:
        with self._lock:
            if self.down_reason is None:
                logger.warning("database unavailable: %s", reason)
            self.down_reason = reason
            self._next_probe = time.monotonic() + PROBE_INTERVAL_SECONDS

    def mark_up(self) -> None:
        with self._lock:
            if self.down_reason is not None:
                logger.warning("database reachable again")
            self.down_reason = None
            self._last_probe_up = time.monotonic()

    def server_answers(self, probe: Callable[[], None]) -> bool:
        """Whether the server answers: `probe` connects (outside the pool) and
        raises when it cannot. One probe at a time per process; a caller that
        finds one running, or one made less than a second ago, takes its result."""
        now = time.monotonic()
        if not self.down and now - self._last_probe_up < PROBE_INTERVAL_SECONDS:
            return True
        if self.down and now < self._next_probe:
            return False
        if not self._probing.acquire(blocking=False):
            return not self.down
        try:
            probe()
        except psycopg.OperationalError as exc:
            if exc.sqlstate == TOO_MANY_CONNECTIONS:
                self.mark_up()  # full, but there
                return True
            self.mark_down(one_line(exc))
            return False
        finally:
            self._probing.release()
        self.mark_up()
        return True

    def connect(self, get_connection: Callable[[], object], probe: Callable[[], None], wait: float):
        """A connection from `get_connection` (a pool wait of at most a slice that
        raises psycopg_pool.PoolTimeout), waiting at most `wait` seconds in all."""
        from psycopg_pool import PoolTimeout

        if self.down and not self.server_answers(probe):
            raise DatabaseUnavailable(self.down_reason or "the server does not answer")
        deadline = time.monotonic() + wait
        while True:
            try:
                return get_connection()
            except PoolTimeout:
                if not self.server_answers(probe):
                    raise DatabaseUnavailable(self.down_reason or "the server does not answer") from None
                if time.monotonic() >= deadline:
                    raise DatabaseBusy(f"no free database connection within {wait:g}s (pool full)") from None


GATE = ServerGate()
