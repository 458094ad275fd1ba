"""Stream leases in Redis: the proof that a stream runs somewhere, and the lock
that keeps it from running twice.

A stream task takes the lease with SET NX before it opens the source and
refreshes it while it runs; a refresh or release only touches a lease whose
token is its own (compare-and-set in Lua, atomic in Redis). When a worker dies
the lease expires and the reconcile job starts the stream again.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import redis
from django.conf import settings

from visionaire_site.redis import key

_REFRESH = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


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

    def refresh(self) -> bool:
        """Extend the lease; False when it is no longer ours (expired and taken)."""
        return bool(self.client.eval(_REFRESH, 1, lease_key(self.stream_id), self.value, lease_ttl_ms()))

    def release(self) -> None:
        self.client.eval(_RELEASE, 1, lease_key(self.stream_id), self.value)


def leases_alive(client: redis.Redis, stream_ids: list[str]) -> set[str]:
    """The streams among `stream_ids` whose lease is held right now."""
    if not stream_ids:
        return set()
    values = client.mget([lease_key(stream_id) for stream_id in stream_ids])
    return {stream_id for stream_id, value in zip(stream_ids, values, strict=True) if value}
