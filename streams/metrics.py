"""/metrics series of streams and pipelines: counts from the database, and each
stream's and pipeline's live figures from the hashes their runners write."""

from __future__ import annotations

from django.db.models import Count
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from analytics.models import Analytic
from core.metrics import AppCollector, Families, add_sample
from live.keys import pipeline_stats_key, stream_stats_key
from live.messages import as_number
from live.redis import get_redis
from live.states import StreamState

from .models import Pipeline, Stream

STREAM_STATES = tuple(state.value for state in StreamState)


class StreamFamilies(Families):
    def __init__(self) -> None:
        stream = ["node_num", "stream_id"]
        pipeline = ["node_num", "stream_id", "analytic_id"]
        self.streams_total = GaugeMetricFamily("visionaire_streams_total", "Total streams")
        self.streams_active = GaugeMetricFamily("visionaire_streams_active", "Streams desired to run")
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


class StreamsCollector(AppCollector):
    def families(self) -> StreamFamilies:
        return StreamFamilies()

    def fill(self, f: StreamFamilies) -> None:
        f.streams_total.add_metric([], Stream.objects.count())
        f.streams_active.add_metric([], Stream.objects.filter(active=True).count())
        per_analytic = Pipeline.objects.order_by().values("analytic_id").annotate(n=Count("id"))
        counts = {row["analytic_id"]: row["n"] for row in per_analytic}
        for analytic_id in Analytic.objects.filter(installed=True).values_list("id", flat=True):
            counts.setdefault(analytic_id, 0)
        for analytic_id, count in sorted(counts.items()):
            f.pipelines.add_metric([analytic_id], count)

        # The ids come from the database, so one pipelined round trip reads every
        # stream's and pipeline's hash without scanning the keyspace.
        streams = list(Stream.objects.values_list("stream_id", "node_id"))
        pipelines = list(Pipeline.objects.values_list("stream_id", "analytic_id", "stream__node_id"))
        if not streams and not pipelines:
            return
        pipe = get_redis().pipeline(transaction=False)
        for stream_id, _node in streams:
            pipe.hgetall(stream_stats_key(stream_id))
        for stream_id, analytic_id, _node in pipelines:
            pipe.hgetall(pipeline_stats_key(stream_id, analytic_id))
        results = pipe.execute()

        for (stream_id, node_num), stats in zip(streams, results[: len(streams)], strict=True):
            if not stats:
                continue
            labels = [str(node_num), stream_id]
            add_sample(f.stream_fps, labels, as_number(stats.get("fps")))
            add_sample(f.stream_dropped, labels, as_number(stats.get("frames_dropped")))
            add_sample(f.stream_reconnects, labels, as_number(stats.get("reconnects")))
            add_sample(f.stream_reconnect_attempts, labels, as_number(stats.get("reconnect_attempts")))
            add_sample(f.stream_uptime, labels, as_number(stats.get("uptime_sec")))
            state = stats.get("state")
            if state:
                for name in STREAM_STATES if state in STREAM_STATES else (*STREAM_STATES, state):
                    f.stream_state.add_metric([*labels, name], 1 if name == state else 0)
        for (stream_id, analytic_id, node_num), stats in zip(pipelines, results[len(streams) :], strict=True):
            if not stats:
                continue
            labels = [str(node_num), stream_id, analytic_id]
            add_sample(f.pipeline_fps, labels, as_number(stats.get("processed_fps")))
            add_sample(f.pipeline_latency, labels, as_number(stats.get("last_latency_ms")), scale=0.001)
            add_sample(f.pipeline_latency_p95, labels, as_number(stats.get("p95_latency_ms")), scale=0.001)
            add_sample(f.pipeline_events, labels, as_number(stats.get("events_emitted")))
            add_sample(f.pipeline_errors, labels, as_number(stats.get("errors")))
