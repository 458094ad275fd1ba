"""Celery worker hooks: what lives as long as a node's worker process.

Connected from `WorkersConfig.ready()`; they fire only in a Celery worker (not
in the API or beat), and the node number is the worker's VISIONAIRE_NODE_NUM.
At start: the node agent (heartbeat, restart requests), the control listener,
and a reconcile of this node's streams. At shutdown: every stream runner is
stopped gracefully before Celery waits for its tasks.
"""

from __future__ import annotations

import logging
import threading

from celery.signals import worker_ready, worker_shutdown, worker_shutting_down
from django.conf import settings

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_agent = None
_listener = None


def current_agent():
    """The agent of this worker process, or None outside a running worker."""
    return _agent


def _restart_streams() -> None:
    from .runner import RUNNERS

    RUNNERS.restart_all()


@worker_ready.connect(dispatch_uid="visionaire_node_agent_start")
def start_node_agent(**_kwargs) -> None:
    global _agent, _listener
    from .control import ControlListener
    from .node_agent import NodeAgent, on_restart
    from .reconcile import streams_reconcile_run

    with _lock:
        if _agent is None:
            on_restart(_restart_streams)
            _agent = NodeAgent(settings.NODE_NUM)
            _agent.start()
            logger.info("node agent for node %s started", settings.NODE_NUM)
        if _listener is None:
            _listener = ControlListener(settings.NODE_NUM)
            _listener.start()

    def resume() -> None:
        # Streams of this node that run nowhere start now, not at the next beat.
        try:
            if _agent is not None:
                _agent.wait_for_beat(timeout=10)
            streams_reconcile_run(node_num=settings.NODE_NUM)
        except Exception:
            logger.exception(
                "resuming the streams of node %s failed; the reconcile job retries", settings.NODE_NUM
            )

    threading.Thread(target=resume, name="resume-streams", daemon=True).start()


@worker_shutting_down.connect(dispatch_uid="visionaire_runners_stop")
def stop_stream_runners(**_kwargs) -> None:
    from .runner import RUNNERS

    RUNNERS.stop_all(timeout=settings.STREAM_STOP_TIMEOUT_SECONDS)


@worker_shutdown.connect(dispatch_uid="visionaire_node_agent_stop")
def stop_node_agent(**_kwargs) -> None:
    global _agent, _listener
    with _lock:
        agent, _agent = _agent, None
        listener, _listener = _listener, None
    if listener is not None:
        listener.stop()
    if agent is not None:
        agent.stop()
        logger.info("node agent for node %s stopped", agent.node_num)
