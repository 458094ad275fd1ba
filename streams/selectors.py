"""Reads of streams and pipelines: desired state from Postgres, live state from
the Redis hashes that the stream runtime writes."""

from __future__ import annotations

from django.db.models import QuerySet

from analytics.models import Analytic
from core.errors import BadRequest, NotFound
from live.keys import pipeline_stats_key, stream_stats_key
from live.messages import PipelineFigures, StreamStats, pipeline_stats_read, stream_stats_read
from live.redis import get_redis, live_state
from platform_config.models import Node

from .models import Pipeline, Stream
from .serializers import STREAM_ITEM_COLUMNS
from .services import STREAM_ID_RE


def stream_list(*, node: Node | None = None) -> QuerySet[Stream]:
    """Streams of one node, or of all nodes, in creation order (one query)."""
    streams = Stream.objects.all()
    if node is not None:
        streams = streams.filter(node=node)
    return streams.order_by("created_at", "stream_id")


def stream_list_items(*, node: Node | None = None) -> list[dict]:
    """The list routes' items, read as rows: GET /streams is the route clients poll,
    and building 200 model instances and passing them through DRF's serializer
    took two thirds of its 17 ms; rows of the same columns give the same items
    (tests/streams keep them equal to the serializer's)."""
    rows = stream_list(node=node).values_list(*STREAM_ITEM_COLUMNS.values())  # the serializer's sources
    return [dict(zip(STREAM_ITEM_COLUMNS, row, strict=True)) for row in rows]


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


def stream_stats_get(*, stream: Stream) -> StreamStats:
    """Live stats of a stream as its runtime last wrote them. Before the runtime
    has written any: STOPPED for an inactive stream, else INITIALIZING."""
    with live_state("stream stats"):
        raw = get_redis().hgetall(stream_stats_key(stream.stream_id))
    return stream_stats_read(raw, active=stream.active, node_num=stream.node_id)


def pipeline_stats_get(*, pipeline: Pipeline) -> PipelineFigures:
    """Live stats of a pipeline; zeros and state PENDING until the runtime
    has written them."""
    with live_state("pipeline stats"):
        raw = get_redis().hgetall(pipeline_stats_key(pipeline.stream_id, pipeline.analytic_id))
    return pipeline_stats_read(raw)
