"""Celery worker hooks: what lives as long as a node's worker process.

Connected from `WorkersConfig.ready()`; they fire only in a Celery worker (not
in the API or beat), and the node number is the worker's VISIONAIRE_NODE_NUM.
At start: the node agent (heartbeat, restart requests), the control listener,
the runtime report (shared models, event writer), a reconcile of this node's
streams, and the warm-up of the installed analytics' models in the background.
At shutdown: every stream runner is stopped gracefully before Celery waits for
its tasks, then the event writer stores what is queued.
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
_reporter = None
_warm_up: threading.Thread | None = None


def _restart_streams() -> None:
    from .runner import RUNNERS

    RUNNERS.restart_all()


@worker_ready.connect(dispatch_uid="visionaire_node_agent_start")
def start_node_agent(**_kwargs) -> None:
    global _agent, _listener, _reporter, _warm_up
    from .control import ControlListener
    from .node_agent import NodeAgent, on_restart
    from .reconcile import streams_reconcile_run
    from .runtime_report import RuntimeReporter, models_warm_up_thread

    with _lock:
        if _agent is None:
            on_restart(_restart_streams)
            _agent = NodeAgent(settings.NODE_NUM)
            _agent.start()
            logger.info("node agent for node %s started", settings.NODE_NUM)
        if _listener is None:
            _listener = ControlListener(settings.NODE_NUM)
            _listener.start()
        if _reporter is None:
            _reporter = RuntimeReporter(settings.NODE_NUM)
            _reporter.start()

    # Loading the models takes seconds: not on the thread that tells Celery it is ready.
    _warm_up = threading.Thread(target=models_warm_up_thread, name="models-warm-up", daemon=True)
    _warm_up.start()

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
    from .event_sink import event_sink_started
    from .runner import RUNNERS

    RUNNERS.stop_all(timeout=settings.STREAM_STOP_TIMEOUT_SECONDS)
    # The streams flushed their tracks: nothing waits for the models' own threads any more.
    from analytics.registry import shared_models

    for model in shared_models():
        model.stop(settings.STREAM_STOP_TIMEOUT_SECONDS)
    # The runners' last events (tracks flushed at close) are queued: store them before exit.
    sink = event_sink_started()
    if sink is not None and not sink.stop(timeout=settings.STREAM_STOP_TIMEOUT_SECONDS):
        logger.warning(
            "event writer did not finish within %ss; queued events are lost",
            settings.STREAM_STOP_TIMEOUT_SECONDS,
        )


@worker_shutdown.connect(dispatch_uid="visionaire_node_agent_stop")
def stop_node_agent(**_kwargs) -> None:
    global _agent, _listener, _reporter
    with _lock:
        agent, _agent = _agent, None
        listener, _listener = _listener, None
        reporter, _reporter = _reporter, None
    if listener is not None:
        listener.stop()
    if reporter is not None:
        reporter.stop()
    if agent is not None:
        agent.stop()
        logger.info("node agent for node %s stopped", agent.node_num)
    # A model still loading when the interpreter exits aborts the process inside
    # ONNX Runtime (std::terminate): let the warm-up end first, within the stop timeout.
    warm_up = _warm_up
    if warm_up is not None:
        warm_up.join(settings.STREAM_STOP_TIMEOUT_SECONDS)
