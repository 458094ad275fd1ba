"""Reads of streams and pipelines: desired state from Postgres, live state from
the Redis hashes that the stream runtime writes."""

from __future__ import annotations

from typing import Any, TypedDict

from django.db.models import QuerySet

from analytics.models import Analytic
from core.errors import BadRequest, NotFound
from platform_config.models import Node
from visionaire_site.redis import get_redis, key, live_state

from .models import Pipeline, Stream
from .services import STREAM_ID_RE


def stream_stats_key(stream_id: str) -> str:
    return key("stream", stream_id, "stats")


def pipeline_stats_key(stream_id: str, analytic_id: str) -> str:
    return key("pipeline", stream_id, analytic_id)


def stream_list(*, node: Node | None = None) -> QuerySet[Stream]:
    """Streams of one node, or of all nodes, in creation order (one query)."""
    streams = Stream.objects.all()
    if node is not None:
        streams = streams.filter(node=node)
    return streams.order_by("created_at", "stream_id")


def stream_id_parse(raw: str) -> str:
    if not STREAM_ID_RE.fullmatch(raw):
        raise BadRequest(f"invalid stream_id '{raw[:40]}': it must be 16 lowercase hex characters")
    return raw


def stream_get(*, node: Node, stream_id: str) -> Stream:
    """The stream named in a path: 400 for a malformed id, 404 when it does not
    exist or belongs to another node."""
    stream_id_parse(stream_id)
    try:
        return Stream.objects.get(pk=stream_id, node=node)
    except Stream.DoesNotExist:
        raise NotFound("stream not found") from None


def stream_pipelines(*, stream: Stream) -> list[Pipeline]:
    """The stream's pipelines with their seats (one query)."""
    return list(Pipeline.objects.filter(stream=stream).select_related("seat").order_by("created_at", "id"))


def pipeline_get(*, stream: Stream, analytic_id: str) -> Pipeline:
    pipeline = Pipeline.objects.filter(stream=stream, analytic_id=analytic_id).select_related("seat").first()
    if pipeline is None:
        if not Analytic.objects.filter(pk=analytic_id).exists():
            raise NotFound("analytic not found")
        raise NotFound("pipeline not found")
    return pipeline


def _int(value: Any) -> int:
    try:
        return int(float(value))
    except (TypeError, ValueError, OverflowError):
        return 0


def _float(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.0
    return number if number == number and abs(number) != float("inf") else 0.0


class StreamStats(TypedDict):
    fps: int
    frame_width: int
    frame_height: int
    state: str
    last_error_msg: str
    frames_dropped: int
    reconnects: int
    uptime_sec: int


def stream_stats_get(*, stream: Stream) -> StreamStats:
    """Live stats of a stream as its runtime last wrote them. Before the runtime
    has written any: STOPPED for an inactive stream, else INITIALIZING."""
    with live_state("stream stats"):
        raw = get_redis().hgetall(stream_stats_key(stream.stream_id))
    if raw:
        state, message = raw.get("state") or "INITIALIZING", raw.get("last_error_msg", "")
    elif not stream.active:
        state, message = "STOPPED", "Stream is stopped"
    else:
        state, message = "INITIALIZING", f"Waiting for node {stream.node_id} to start the stream"
    return StreamStats(
        fps=_int(raw.get("fps")),
        frame_width=_int(raw.get("frame_width")),
        frame_height=_int(raw.get("frame_height")),
        state=state,
        last_error_msg=message,
        frames_dropped=_int(raw.get("frames_dropped")),
        reconnects=_int(raw.get("reconnects")),
        uptime_sec=_int(raw.get("uptime_sec")),
    )


class PipelineStats(TypedDict):
    processed_fps: float
    last_latency_ms: float
    p95_latency_ms: float
    events_emitted: int
    errors: int
    state: str
    last_error: str


def pipeline_stats_get(*, pipeline: Pipeline) -> PipelineStats:
    """Live stats of a pipeline; zeros and state PENDING until the runtime
    has written them."""
    with live_state("pipeline stats"):
        raw = get_redis().hgetall(pipeline_stats_key(pipeline.stream_id, pipeline.analytic_id))
    return PipelineStats(
        processed_fps=_float(raw.get("processed_fps")),
        last_latency_ms=_float(raw.get("last_latency_ms")),
        p95_latency_ms=_float(raw.get("p95_latency_ms")),
        events_emitted=_int(raw.get("events_emitted")),
        errors=_int(raw.get("errors")),
        state=raw.get("state") or "PENDING",
        last_error=raw.get("last_error", ""),
    )
