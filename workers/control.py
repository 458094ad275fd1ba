"""How a node's worker learns what to do: the control queue it consumes, and
how a stream task is dispatched to a node.

The API pushes control messages (live.messages.ControlMessage) to the node's
bounded list (streams.services.node_control_publish); the listener thread here pops them
(oldest first) and acts on this process's runners. Every action is idempotent
and checked against the desired state, so a replayed or stale message is harmless.
"""

from __future__ import annotations

import logging
import threading

import redis
from celery import current_app
from django.conf import settings

from live.keys import control_queue, node_queue, starting_key
from live.messages import ControlMessage, MalformedMessage
from live.redis import get_redis

from .runner import RUNNERS
from .runtime_redis import RedisBackoff

logger = logging.getLogger(__name__)

STREAM_TASK = "workers.stream_run"


def stream_dispatch(*, stream_id: str, node_num: int, client: redis.Redis | None = None) -> bool:
    """Queue the stream's task on its node, unless a start is already on its way.

    The short-lived "starting" marker keeps the reconcile job and control
    messages from queueing the same start again while the first one is taken
    up; the lease (taken by the task) is what really rules out a double run.
    """
    client = client or get_redis()
    grace_ms = int(settings.STREAM_START_GRACE_SECONDS * 1000)
    if not client.set(starting_key(stream_id), node_num, nx=True, px=grace_ms):
        return False
    current_app.send_task(STREAM_TASK, args=[stream_id], queue=node_queue(node_num))
    return True


def control_handle(message: ControlMessage, *, node_num: int) -> None:
    runner = RUNNERS.get(message.stream_id)
    if message.action == "stop":
        if runner is not None:
            runner.request_stop()
    elif runner is not None:  # start or reload
        runner.request_reload()
    else:
        stream_dispatch(stream_id=message.stream_id, node_num=node_num)


class ControlListener:
    """A daemon thread popping this node's control queue."""

    def __init__(self, node_num: int, client: redis.Redis | None = None) -> None:
        self.node_num = node_num
        self.client = client or get_redis()
        self._stop = threading.Event()
        self._outage = RedisBackoff(f"control queue of node {node_num}")  # logs an outage once
        self._thread = threading.Thread(target=self._run, name=f"control-node{node_num}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 3.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        queue = control_queue(self.node_num)
        while not self._stop.is_set():
            try:
                item = self.client.brpop(queue, timeout=1)
            except redis.RedisError as exc:
                self._outage.failed(exc)
                self._stop.wait(1.0)
                continue
            self._outage.succeeded()
            if item is None:
                continue
            try:
                control_handle(ControlMessage.decode(item[1]), node_num=self.node_num)
            except MalformedMessage as exc:
                logger.warning("ignoring %s", exc)
            except Exception:
                logger.exception("control message %r failed", item[1])
