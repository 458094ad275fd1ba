"""Stream leases in Redis: the proof that a stream runs somewhere, and the lock
that keeps it from running twice.

A lease is a redis-py `Lock` (SET NX PX to take it; a refresh or a release only
touches it while its token is ours, atomically in Lua). A stream task takes the
lease before it opens the source and refreshes it while it runs. When a worker
dies the lease expires and the reconcile job starts the stream again.

A lease can also vanish while its runner is alive: Redis was unreachable past
the lease's lifetime, or restarted empty. The refresh then takes it again
(SET NX), since nobody else runs the stream; only a lease held by another owner
means the stream runs elsewhere.
"""

from __future__ import annotations

import uuid
from enum import StrEnum

import redis
from django.conf import settings
from redis.exceptions import LockError
from redis.lock import Lock

from .keys import lease_key


class Refresh(StrEnum):
    HELD = "held"  # still ours, extended
    RETAKEN = "retaken"  # it had vanished (expired, or Redis lost it) and is ours again
    LOST = "lost"  # another owner holds it: the stream runs elsewhere


def lease_ttl_seconds() -> float:
    return float(settings.STREAM_LEASE_SECONDS)


class Lease:
    """The lease of one stream for one runner. Its value names the owner (node
    and worker, for operators reading Redis) and a token of its own."""

    def __init__(self, client: redis.Redis, stream_id: str, owner: str) -> None:
        self.client = client  # may be swapped (a runner's client); each call uses the current one
        self.stream_id = stream_id
        self.owner = owner
        self.value = f"{owner}:{uuid.uuid4().hex}"

    def _lock(self) -> Lock:
        # A Lock per call (cheap: its scripts are registered once per class), so
        # the calls always go through `self.client`. thread_local off: the
        # runner's thread takes the lease, but any thread may release it.
        lock = self.client.lock(
            lease_key(self.stream_id), timeout=lease_ttl_seconds(), blocking=False, thread_local=False
        )
        lock.local.token = self.client.get_encoder().encode(self.value)
        return lock

    def acquire(self) -> bool:
        return bool(self._lock().acquire(blocking=False, token=self.value))

    def refresh(self) -> Refresh:
        """Extend the lease, or take it again if it vanished; LOST when another owner holds it."""
        try:
            self._lock().reacquire()
            return Refresh.HELD
        except LockError:  # not ours now (LockNotOwnedError)
            pass
        return Refresh.RETAKEN if self.acquire() else Refresh.LOST

    def release(self) -> None:
        """Give the lease up if it is still ours (another owner's is left alone)."""
        try:
            self._lock().release()
        except LockError:  # expired, or taken by another runner meanwhile
            pass


def leases_alive(client: redis.Redis, stream_ids: list[str]) -> set[str]:
    """The streams among `stream_ids` whose lease is held right now."""
    if not stream_ids:
        return set()
    values = client.mget([lease_key(stream_id) for stream_id in stream_ids])
    return {stream_id for stream_id, value in zip(stream_ids, values, strict=True) if value}
