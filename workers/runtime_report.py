"""What a worker process says about its own machinery, beside the heartbeat:
the face engine (warming, ready with which provider, or failed), the face
embedding runtime's figures (batches, refusals, latency) and the event
writer's counters (written, dropped, failed, queued).

A reporter thread writes it as JSON to `visionaire:node:<N>:runtime` every
NODE_HEARTBEAT_SECONDS, expiring like a heartbeat, so a dead worker's figures
disappear; `/metrics` reads it for every node in the scrape's one Redis round
trip (platform_config/metrics.py).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

import redis
from django.conf import settings

from platform_config.nodes import node_runtime_key
from visionaire_site.redis import get_redis

from .runtime_redis import RedisBackoff

logger = logging.getLogger(__name__)

FACE_ANALYTIC_ID = "NFV4-FR"
FACE_GPU_SERVICE = "visionaire::face_recognition"


# --- the face engine's state in this process -------------------------------------

_face_lock = threading.Lock()
_face: dict[str, Any] = {"state": "not_loaded"}


def face_engine_status() -> dict[str, Any]:
    """`state` is not_loaded, warming, ready or failed; ready adds the engine's
    description (detector, embedder, provider, ...) and the warm-up seconds."""
    with _face_lock:
        return dict(_face)


def _face_set(**fields: Any) -> None:
    with _face_lock:
        _face.clear()
        _face.update(fields)


def face_engine_warm_up() -> dict[str, Any]:
    """Load and warm the face engine now (called in a background thread at
    worker start), so the first face of the first stream does not wait for it."""
    from analytics.face.engine import face_engine

    _face_set(state="warming")
    try:
        engine = face_engine()
        seconds = engine.warm_up()
    except Exception as exc:
        logger.exception("face engine warm-up failed")
        _face_set(state="failed", error=f"{type(exc).__name__}: {exc}"[:300])
        return face_engine_status()
    _face_set(state="ready", warm_up_seconds=round(seconds, 3), **engine.describe())
    if engine.provider == "CUDAExecutionProvider":
        from .node_agent import gpu_service_add

        gpu_service_add(gpu_id=0, service_name=FACE_GPU_SERVICE)
    return face_engine_status()


def face_analytic_installed() -> bool:
    from analytics.models import Analytic

    return Analytic.objects.filter(id=FACE_ANALYTIC_ID, installed=True).exists()


def face_engine_warm_up_if_installed() -> None:
    try:
        installed = face_analytic_installed()
    except Exception:
        logger.exception(
            "could not tell whether %s is installed; warming the face engine anyway", FACE_ANALYTIC_ID
        )
        installed = True
    if installed:
        face_engine_warm_up()


def face_engine_warm_up_thread() -> None:
    """The body of the worker's warm-up thread."""
    from django.db import connection

    try:
        face_engine_warm_up_if_installed()
    finally:
        connection.close()  # this thread's own connection


# --- the report --------------------------------------------------------------------


def runtime_snapshot() -> dict[str, Any]:
    from analytics.face.batching import face_embed_runtime_started

    from .event_sink import event_sink_started

    sink = event_sink_started()
    embed_runtime = face_embed_runtime_started()
    return {
        "face_engine": face_engine_status(),
        "event_writer": sink.stats() if sink is not None else None,
        # Batches, refusals and latency of the face embeddings of this worker's streams.
        "face_embedding": embed_runtime.stats() if embed_runtime is not None else None,
    }


def runtime_report_write(*, client: redis.Redis, node_num: int) -> dict[str, Any]:
    snapshot = {"node_num": node_num, "ts": time.time(), **runtime_snapshot()}
    ttl_ms = int(max(3 * settings.NODE_HEARTBEAT_SECONDS, settings.NODE_OFFLINE_AFTER_SECONDS) * 1000)
    client.set(node_runtime_key(node_num), json.dumps(snapshot), px=ttl_ms)
    return snapshot


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
