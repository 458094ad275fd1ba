"""Desired streams against live leases: what should run but does not is
started again on its own node. The safety net behind control messages, and
what brings streams back after a worker or host dies."""

from __future__ import annotations

import logging

import redis
from django.db import close_old_connections

from core.db import connection_release
from live.leases import leases_alive
from live.redis import get_redis
from platform_config.nodes import nodes_live
from streams.models import Stream

from .control import stream_dispatch

logger = logging.getLogger(__name__)


def streams_reconcile_run(*, node_num: int | None = None, client: redis.Redis | None = None) -> int:
    """Dispatch the active streams (of `node_num`, or of every node) that hold
    no lease, on nodes whose worker is online; returns how many were dispatched.

    Offline nodes are skipped so their queues do not fill with starts that no
    worker takes; they catch up when their worker is back.
    """
    client = client or get_redis()
    close_old_connections()
    try:
        streams = Stream.objects.filter(active=True)
        if node_num is not None:
            streams = streams.filter(node_id=node_num)
        wanted = list(streams.values_list("stream_id", "node_id"))
        if not wanted:
            return 0
        online = {live.node.num for live in nodes_live() if live.online}
    finally:
        connection_release()  # also run from a worker's start-up thread, which then ends
    running = leases_alive(client, [stream_id for stream_id, _ in wanted])
    dispatched = 0
    for stream_id, node in wanted:
        if stream_id in running or node not in online:
            continue
        if stream_dispatch(stream_id=stream_id, node_num=node, client=client):
            dispatched += 1
            logger.info("reconcile: started stream %s on node %s", stream_id, node)
    return dispatched
