"""Stream leases in Redis: the proof that a stream runs somewhere, and the lock
that keeps it from running twice.

A stream task takes the lease with SET NX before it opens the source and
refreshes it while it runs; a refresh or release only touches a lease whose
token is its own (compare-and-set in Lua, atomic in Redis). When a worker dies
the lease expires and the reconcile job starts the stream again.

A lease can also vanish while its runner is alive: Redis was unreachable past
the lease's lifetime, or restarted empty. The refresh then takes it again
(SET if absent, in the same script), since nobody else runs the stream; only a
lease held by another owner means the stream runs elsewhere.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from enum import StrEnum

import redis
from django.conf import settings

from visionaire_site.redis import key

_REFRESH = """
local holder = redis.call('get', KEYS[1])
if holder == ARGV[1] then
  redis.call('pexpire', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 2
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


class Refresh(StrEnum):
    HELD = "held"  # still ours, extended
    RETAKEN = "retaken"  # it had vanished (expired, or Redis lost it) and is ours again
    LOST = "lost"  # another owner holds it: the stream runs elsewhere


def lease_key(stream_id: str) -> str:
    return key("lease", "stream", stream_id)


def starting_key(stream_id: str) -> str:
    """Marks a start queued for the stream but not yet taken up (see workers.control)."""
    return key("starting", stream_id)


def lease_ttl_ms() -> int:
    return int(settings.STREAM_LEASE_SECONDS * 1000)


@dataclass
class Lease:
    client: redis.Redis
    stream_id: str
    owner: str  # node and worker, for operators reading Redis
    token: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def value(self) -> str:
        return f"{self.owner}:{self.token}"

    def acquire(self) -> bool:
        return bool(self.client.set(lease_key(self.stream_id), self.value, nx=True, px=lease_ttl_ms()))

    def refresh(self) -> Refresh:
        """Extend the lease, or take it again if it vanished; LOST when another owner holds it."""
        outcome = int(self.client.eval(_REFRESH, 1, lease_key(self.stream_id), self.value, lease_ttl_ms()))
        return {1: Refresh.HELD, 2: Refresh.RETAKEN}.get(outcome, Refresh.LOST)

    def release(self) -> None:
        self.client.eval(_RELEASE, 1, lease_key(self.stream_id), self.value)


def leases_alive(client: redis.Redis, stream_ids: list[str]) -> set[str]:
    """The streams among `stream_ids` whose lease is held right now."""
    if not stream_ids:
        return set()
    values = client.mget([lease_key(stream_id) for stream_id in stream_ids])
    return {stream_id for stream_id, value in zip(stream_ids, values, strict=True) if value}
