"""What a worker process says about its own machinery, beside the heartbeat:
the shared models of the analytics (warming, ready with which provider, or
failed, and their running figures, e.g. a batching runtime's) and the event
writer's counters (written, dropped, failed, queued).

A reporter thread writes it (live.messages.RuntimeReport) to the node's runtime
key every NODE_HEARTBEAT_SECONDS, expiring like a heartbeat, so a dead worker's
figures disappear; `/metrics` reads it for every online node (workers/metrics.py).

The models are the ones the registered analytics declare (analytics.runtime.SharedModel);
those of the installed analytics are warmed in the background when the worker
starts, so the first frame of the first stream does not wait for them.
"""

from __future__ import annotations

import logging
import threading
import time

import redis
from django.conf import settings

from analytics.registry import all_plugins, shared_models
from analytics.selectors import plugins_installed
from live.keys import node_runtime_key
from live.messages import RuntimeReport, runtime_report_encode
from live.redis import get_redis

from .node_agent import gpu_service_add
from .runtime_redis import RedisBackoff

logger = logging.getLogger(__name__)


# --- the shared models ------------------------------------------------------------------


def models_warm_up() -> None:
    """Load and warm the models of the installed analytics (each model once,
    however many analytics share it); a model running on CUDA is reported as a
    GPU service of the node."""
    try:
        plugins = plugins_installed()
    except Exception:
        logger.exception("could not tell which analytics are installed; warming every analytic's models")
        plugins = all_plugins()
    for model in shared_models(plugins):
        model.warm_up()
        if model.gpu_service and model.on_gpu:
            gpu_service_add(gpu_id=0, service_name=model.gpu_service)


def models_warm_up_thread() -> None:
    """The body of the worker's warm-up thread."""
    from django.db import connection

    try:
        models_warm_up()
    finally:
        connection.close()  # this thread's own connection


# --- the report --------------------------------------------------------------------


def runtime_report(node_num: int) -> RuntimeReport:
    from .event_sink import event_sink_started

    sink = event_sink_started()
    return RuntimeReport(
        node_num=node_num,
        ts=time.time(),
        models={model.name: model.status() for model in shared_models()},
        event_writer=dict(sink.stats()) if sink is not None else None,
    )


def runtime_report_write(*, client: redis.Redis, node_num: int) -> RuntimeReport:
    report = runtime_report(node_num)
    ttl_ms = int(max(3 * settings.NODE_HEARTBEAT_SECONDS, settings.NODE_OFFLINE_AFTER_SECONDS) * 1000)
    client.set(node_runtime_key(node_num), runtime_report_encode(report), px=ttl_ms)
    return report


class RuntimeReporter:
    """Writes this process's runtime report every NODE_HEARTBEAT_SECONDS."""

    def __init__(self, node_num: int, *, client: redis.Redis | None = None) -> None:
        self.node_num = node_num
        self.client = client or get_redis()
        self.reports = 0
        self._outage = RedisBackoff(f"node {node_num} runtime report")  # logs an outage once
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"runtime-report-{self.node_num}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        try:
            self.client.delete(node_runtime_key(self.node_num))
        except redis.RedisError:
            pass  # it expires by itself

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                runtime_report_write(client=self.client, node_num=self.node_num)
                self.reports += 1
                self._outage.succeeded()
            except redis.RedisError as exc:
                self._outage.failed(exc)
            except Exception:
                logger.exception("node %s runtime report failed", self.node_num)
            self._stop.wait(settings.NODE_HEARTBEAT_SECONDS)
