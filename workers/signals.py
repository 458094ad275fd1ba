"""Celery worker hooks: the node agent lives as long as the worker process.

Connected from `WorkersConfig.ready()`; they fire only in a Celery worker (not
in the API or beat), and the node number is the worker's VISIONAIRE_NODE_NUM.
"""

from __future__ import annotations

import logging
import threading

from celery.signals import worker_ready, worker_shutdown
from django.conf import settings

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_agent = None


def current_agent():
    """The agent of this worker process, or None outside a running worker."""
    return _agent


@worker_ready.connect(dispatch_uid="visionaire_node_agent_start")
def start_node_agent(**_kwargs) -> None:
    global _agent
    from .node_agent import NodeAgent

    with _lock:
        if _agent is None:
            _agent = NodeAgent(settings.NODE_NUM)
            _agent.start()
            logger.info("node agent for node %s started", settings.NODE_NUM)


@worker_shutdown.connect(dispatch_uid="visionaire_node_agent_stop")
def stop_node_agent(**_kwargs) -> None:
    global _agent
    with _lock:
        agent, _agent = _agent, None
    if agent is not None:
        agent.stop()
        logger.info("node agent for node %s stopped", agent.node_num)
