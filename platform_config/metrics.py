"""Platform series for `/metrics`, gathered at scrape time.

Counts come from the database; live figures come from Redis, where node agents
and stream runners on any host write them (node heartbeats, the hashes
`visionaire:stream:<stream_id>:stats` and
`visionaire:pipeline:<stream_id>:<analytic_id>`). So one scrape of the API
covers the whole cluster.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import redis
from django.db import DatabaseError
from django.db.models import Count
from prometheus_client.core import REGISTRY, CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from analytics.models import Analytic
from core.db import database_outage
from core.errors import ApiError
from live.keys import node_runtime_key, pipeline_stats_key, stream_stats_key
from live.messages import as_number, runtime_report_decode
from live.redis import get_redis
from live.states import StreamState
from streams.models import Pipeline, Stream

from .models import Node
from .nodes import nodes_live

logger = logging.getLogger(__name__)

STREAM_STATES = tuple(state.value for state in StreamState)


class _Families:
    """The metric families of one scrape, declared once so describe() and
    collect() agree on names."""

    def __init__(self) -> None:
        stream = ["node_num", "stream_id"]
        pipeline = ["node_num", "stream_id", "analytic_id"]
        node = ["node_num"]
        gpu = ["node_num", "gpu_id", "gpu_name"]
        self.streams_total = GaugeMetricFamily("visionaire_streams_total", "Total streams")
        self.streams_active = GaugeMetricFamily("visionaire_streams_active", "Streams desired to run")
        self.nodes_total = GaugeMetricFamily("visionaire_nodes_total", "Registered nodes")
        self.nodes_online = GaugeMetricFamily("visionaire_nodes_online", "Nodes with a fresh heartbeat")
        self.pipelines = GaugeMetricFamily(
            "visionaire_pipelines", "Pipelines per analytic", labels=["analytic_id"]
        )
        self.stream_fps = GaugeMetricFamily(
            "visionaire_stream_fps", "Measured input frame rate", labels=stream
        )
        self.stream_dropped = CounterMetricFamily(
            "visionaire_stream_frames_dropped", "Frames dropped because processing was busy", labels=stream
        )
        self.stream_reconnects = CounterMetricFamily(
            "visionaire_stream_reconnects",
            "Source outages recovered from (frames again after a fault)",
            labels=stream,
        )
        self.stream_reconnect_attempts = CounterMetricFamily(
            "visionaire_stream_reconnect_attempts", "Connection attempts after a source fault", labels=stream
        )
        self.stream_uptime = GaugeMetricFamily(
            "visionaire_stream_uptime_seconds", "Seconds since the stream runner started", labels=stream
        )
        self.stream_state = GaugeMetricFamily(
            "visionaire_stream_state", "1 for the stream's current state", labels=[*stream, "state"]
        )
        self.pipeline_fps = GaugeMetricFamily(
            "visionaire_pipeline_processed_fps", "Frames processed per second", labels=pipeline
        )
        self.pipeline_latency = GaugeMetricFamily(
            "visionaire_pipeline_inference_latency_seconds", "Latency of the last inference", labels=pipeline
        )
        self.pipeline_latency_p95 = GaugeMetricFamily(
            "visionaire_pipeline_inference_latency_p95_seconds",
            "95th percentile of recent inference latency",
            labels=pipeline,
        )
        self.pipeline_events = CounterMetricFamily(
            "visionaire_pipeline_events_emitted", "Events emitted", labels=pipeline
        )
        self.pipeline_errors = CounterMetricFamily(
            "visionaire_pipeline_errors", "Processing errors", labels=pipeline
        )
        self.node_up = GaugeMetricFamily(
            "visionaire_node_up", "1 when the node's heartbeat is fresh", labels=node
        )
        self.node_cpu = GaugeMetricFamily("visionaire_node_cpu_percent", "Host CPU use", labels=node)
        self.node_ram = GaugeMetricFamily("visionaire_node_ram_percent", "Host memory use", labels=node)
        self.node_swap = GaugeMetricFamily("visionaire_node_swap_percent", "Host swap use", labels=node)
        self.node_uptime = GaugeMetricFamily(
            "visionaire_node_uptime_seconds", "Seconds since the node's worker started", labels=node
        )
        self.gpu_util = GaugeMetricFamily("visionaire_node_gpu_utilization_percent", "GPU use", labels=gpu)
        self.gpu_temp = GaugeMetricFamily(
            "visionaire_node_gpu_temperature_celsius", "GPU temperature", labels=gpu
        )
        self.gpu_mem_used = GaugeMetricFamily(
            "visionaire_node_gpu_memory_used_bytes", "GPU memory used", labels=gpu
        )
        self.gpu_mem_total = GaugeMetricFamily(
            "visionaire_node_gpu_memory_total_bytes", "GPU memory size", labels=gpu
        )
        # From each worker's runtime report (workers/runtime_report.py).
        self.events_written = CounterMetricFamily(
            "visionaire_event_writer_written", "Events stored by the node's event writer", labels=node
        )
        self.events_dropped = CounterMetricFamily(
            "visionaire_event_writer_dropped",
            "Events dropped by the node's event writer: past its memory queue and spool file bounds",
            labels=node,
        )
        self.events_spilled = CounterMetricFamily(
            "visionaire_event_writer_spilled",
            "Events the node's event writer kept in its spool file (database unavailable or slow)",
            labels=node,
        )
        self.events_replayed = CounterMetricFamily(
            "visionaire_event_writer_replayed", "Events stored from the node's spool file", labels=node
        )
        self.events_spooled = GaugeMetricFamily(
            "visionaire_event_writer_spool_depth", "Events waiting in the node's spool file", labels=node
        )
        self.events_retries = CounterMetricFamily(
            "visionaire_event_writer_retries",
            "Store attempts of the node's event writer that failed: database unavailable",
            labels=node,
        )
        self.events_failed = CounterMetricFamily(
            "visionaire_event_writer_failed", "Events the node's event writer could not store", labels=node
        )
        self.events_queued = GaugeMetricFamily(
            "visionaire_event_writer_queue_depth", "Events waiting in the node's event writer", labels=node
        )
        self.face_engine = GaugeMetricFamily(
            "visionaire_face_engine_info",
            "1 for the face engine of the node's worker: its state, the detector's ONNX Runtime provider, "
            "the embedder, what runs it (onnxruntime or dlib) and on which provider",
            labels=[*node, "state", "provider", "embedder", "embedder_runtime", "embedder_provider"],
        )
        self.database_up = GaugeMetricFamily(
            "visionaire_database_up", "1 when PostgreSQL answered this scrape"
        )
        self.live_state_up = GaugeMetricFamily(
            "visionaire_live_state_up", "1 when the live state store (Redis) answered this scrape"
        )

    def all(self) -> list:
        return list(vars(self).values())


class VisionaireCollector(Collector):
    def describe(self) -> Iterator:
        # Names only: registering must not query the database.
        return iter(_Families().all())

    def collect(self) -> Iterator:
        f = _Families()
        try:
            self._collect_counts(f)
        except DatabaseError as exc:
            if database_outage(exc) is None:
                raise
            # A scrape during an outage still answers: the process's own series, and 0 here.
            logger.warning("metrics: database unavailable: %s", exc)
            f.database_up.add_metric([], 0)
            return iter(f.all())
        f.database_up.add_metric([], 1)
        try:
            self._collect_live(f)
            f.live_state_up.add_metric([], 1)
        except (redis.RedisError, ApiError) as exc:
            logger.warning("metrics: live state unavailable: %s", exc)
            f.live_state_up.add_metric([], 0)
        return iter(f.all())

    def _collect_counts(self, f: _Families) -> None:
        f.streams_total.add_metric([], Stream.objects.count())
        f.streams_active.add_metric([], Stream.objects.filter(active=True).count())
        f.nodes_total.add_metric([], Node.objects.count())
        per_analytic = Pipeline.objects.order_by().values("analytic_id").annotate(n=Count("id"))
        counts = {row["analytic_id"]: row["n"] for row in per_analytic}
        for analytic_id in Analytic.objects.filter(installed=True).values_list("id", flat=True):
            counts.setdefault(analytic_id, 0)
        for analytic_id, count in sorted(counts.items()):
            f.pipelines.add_metric([analytic_id], count)

    def _collect_live(self, f: _Families) -> None:
        online = 0
        live_nodes = nodes_live()
        for live in live_nodes:
            node = str(live.node.num)
            beat = live.heartbeat
            f.node_up.add_metric([node], 1 if beat else 0)
            if beat is None:
                continue
            online += 1
            f.node_cpu.add_metric([node], float(beat.get("cpu_percent", 0)))
            f.node_ram.add_metric([node], float(beat.get("ram_percent", 0)))
            f.node_swap.add_metric([node], float(beat.get("swap_memory_percent", 0)))
            f.node_uptime.add_metric([node], float(beat.get("uptime_sec", 0)) + live.age_sec)
            for gpu in beat.get("gpus", []):
                labels = [node, str(gpu.get("gpu_id", 0)), str(gpu.get("gpu_name", ""))]
                f.gpu_util.add_metric(labels, float(gpu.get("gpu_utilization", 0)))
                f.gpu_temp.add_metric(labels, float(gpu.get("gpu_temperature", 0)))
                f.gpu_mem_used.add_metric(labels, float(gpu.get("gpu_memory_used", 0)))
                f.gpu_mem_total.add_metric(labels, float(gpu.get("gpu_memory_total", 0)))
        f.nodes_online.add_metric([], online)

        # The ids come from the database, so one pipelined round trip reads every
        # stream's and pipeline's hash without scanning the keyspace.
        streams = list(Stream.objects.values_list("stream_id", "node_id"))
        pipelines = list(Pipeline.objects.values_list("stream_id", "analytic_id", "stream__node_id"))
        online_nodes = [live.node.num for live in live_nodes if live.heartbeat]
        pipe = get_redis().pipeline(transaction=False)
        for stream_id, _node in streams:
            pipe.hgetall(stream_stats_key(stream_id))
        for stream_id, analytic_id, _node in pipelines:
            pipe.hgetall(pipeline_stats_key(stream_id, analytic_id))
        if online_nodes:
            pipe.mget([node_runtime_key(num) for num in online_nodes])
        results = pipe.execute() if streams or pipelines or online_nodes else []
        if online_nodes:
            self._collect_runtime(f, online_nodes, results.pop())

        for (stream_id, node_num), stats in zip(streams, results[: len(streams)], strict=True):
            if not stats:
                continue
            labels = [str(node_num), stream_id]
            self._add(f.stream_fps, labels, stats.get("fps"))
            self._add(f.stream_dropped, labels, stats.get("frames_dropped"))
            self._add(f.stream_reconnects, labels, stats.get("reconnects"))
            self._add(f.stream_reconnect_attempts, labels, stats.get("reconnect_attempts"))
            self._add(f.stream_uptime, labels, stats.get("uptime_sec"))
            state = stats.get("state")
            if state:
                for name in STREAM_STATES if state in STREAM_STATES else (*STREAM_STATES, state):
                    f.stream_state.add_metric([*labels, name], 1 if name == state else 0)
        for (stream_id, analytic_id, node_num), stats in zip(pipelines, results[len(streams) :], strict=True):
            if not stats:
                continue
            labels = [str(node_num), stream_id, analytic_id]
            self._add(f.pipeline_fps, labels, stats.get("processed_fps"))
            self._add(f.pipeline_latency, labels, stats.get("last_latency_ms"), scale=0.001)
            self._add(f.pipeline_latency_p95, labels, stats.get("p95_latency_ms"), scale=0.001)
            self._add(f.pipeline_events, labels, stats.get("events_emitted"))
            self._add(f.pipeline_errors, labels, stats.get("errors"))

    def _collect_runtime(self, f: _Families, node_nums: list[int], raws: list[str | None]) -> None:
        for num, raw in zip(node_nums, raws, strict=True):
            report = runtime_report_decode(raw)
            if report is None:
                continue
            node = [str(num)]
            writer = report["event_writer"] or {}
            self._add(f.events_written, node, writer.get("written"))
            self._add(f.events_dropped, node, writer.get("dropped"))
            self._add(f.events_failed, node, writer.get("failed"))
            self._add(f.events_queued, node, writer.get("queued"))
            self._add(f.events_spilled, node, writer.get("spilled"))
            self._add(f.events_replayed, node, writer.get("replayed"))
            self._add(f.events_spooled, node, writer.get("spooled"))
            self._add(f.events_retries, node, writer.get("retries"))
            face = report["models"].get("face_engine") or {}
            if face.get("state"):
                labels = [
                    str(face.get(key, ""))
                    for key in ("state", "provider", "embedder", "embedder_runtime", "embedder_provider")
                ]
                f.face_engine.add_metric([*node, *labels], 1)

    @staticmethod
    def _add(family, labels: list[str], raw: object, *, scale: float = 1.0) -> None:
        value = as_number(raw)
        if value is not None:
            family.add_metric(labels, value * scale)


_register_lock = threading.Lock()
_collector: VisionaireCollector | None = None


def register_collector() -> VisionaireCollector:
    """Add the platform's collector to prometheus_client's default registry (the
    one django-prometheus exports), once per process."""
    global _collector
    with _register_lock:
        if _collector is None:
            collector = VisionaireCollector()
            REGISTRY.register(collector)
            _collector = collector
    return _collector
