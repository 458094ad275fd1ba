"""Stream and pipeline routes: parse the path and body, call a service or a
selector, answer in the contract's shape."""

from __future__ import annotations

import time

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework.response import Response

from analytics.counts import counts_query_parse, counts_rolled_up
from analytics.models import Seat
from analytics.registry import get_plugin
from analytics.services import NO_SEAT_STATUS
from core.api import ApiView, body_object
from core.openapi import ErrorSerializer
from core.validation import validated
from platform_config.selectors import node_get

from . import selectors, services
from .models import Pipeline, Stream
from .serializers import (
    CountsQuerySerializer,
    CountsResponseSerializer,
    PipelineDetailSerializer,
    PipelineWriteResponseSerializer,
    StreamCreateResponseSerializer,
    StreamCreateSerializer,
    StreamDeleteResponseSerializer,
    StreamDetailSerializer,
    StreamItemSerializer,
    StreamListSerializer,
    StreamUpdateSerializer,
    StreamWriteResponseSerializer,
    stream_changes,
)

TAG_STREAMS = ["Streams"]
TAG_PIPELINES = ["Pipelines"]


def _error(description: str) -> OpenApiResponse:
    return OpenApiResponse(ErrorSerializer, description=description)


NODE_ERRORS = {400: _error("Malformed node number."), 404: _error("`node not found`.")}
STREAM_ERRORS = {
    400: _error("Malformed node number or stream_id (16 lowercase hex characters)."),
    404: _error("`node not found` or `stream not found`."),
}


def _stream_list_body(items: list[dict]) -> dict:
    return {"stream_number": len(items), "streams": items}


def _seat_of(pipeline: Pipeline) -> Seat | None:
    try:
        return pipeline.seat
    except Seat.DoesNotExist:
        return None


class StreamListView(ApiView):
    @extend_schema(
        operation_id="streams_list",
        tags=TAG_STREAMS,
        summary="List the streams of all nodes",
        responses={200: StreamListSerializer},
    )
    def get(self, request):
        return Response(_stream_list_body(selectors.stream_list_items()))


class NodeStreamsView(ApiView):
    @extend_schema(
        operation_id="streams_node_list",
        tags=TAG_STREAMS,
        summary="List the streams of a node",
        responses={200: StreamListSerializer, **NODE_ERRORS},
    )
    def get(self, request, node: str):
        return Response(_stream_list_body(selectors.stream_list_items(node=node_get(node))))

    @extend_schema(
        tags=TAG_STREAMS,
        summary="Create a stream on a node",
        description="`stream_address` must use an allowed scheme; file sources must lie under the media "
        "root and V4L2 devices are `/dev/videoN`. Anything else answers 400 `Invalid stream_address: "
        "<reason>`. A node already running `max_streams_per_node` streams answers 400. With "
        "`check_capability: true` the source is opened and one frame read first (400 `stream cannot be "
        "opened: <reason>` on failure).",
        request=StreamCreateSerializer,
        responses={
            200: StreamCreateResponseSerializer,
            400: _error("Invalid field, `Invalid stream_address`, or the node is full."),
            404: _error("`node not found`."),
        },
        examples=[
            OpenApiExample(
                "RTSP camera",
                request_only=True,
                value={
                    "stream_address": "rtsp://127.0.0.1:8554/VOD/command.mp4",
                    "stream_name": "Command Center",
                    "stream_latitude": -6.261376,
                    "stream_longitude": 106.823648,
                },
            )
        ],
    )
    def post(self, request, node: str):
        target = node_get(node)
        data = validated(StreamCreateSerializer, request)
        stream = services.stream_create(
            node=target,
            check_capability=data.get("check_capability", False),
            **stream_changes(data),
        )
        return Response(
            {
                "code": 200,
                "ok": True,
                "message": "stream successfully created",
                "node_num": stream.node_id,
                "stream_id": stream.stream_id,
                "stream_address": stream.address,
                "stream_name": stream.name,
            }
        )


class StreamDetailView(ApiView):
    @extend_schema(
        operation_id="stream_retrieve",
        tags=TAG_STREAMS,
        summary="A stream with its pipelines, seats and live stats",
        responses={200: StreamDetailSerializer, **STREAM_ERRORS},
    )
    def get(self, request, node: str, stream_id: str):
        stream = selectors.stream_get(node=node_get(node), stream_id=stream_id)
        pipelines = selectors.stream_pipelines(stream=stream)
        body = dict(StreamItemSerializer(stream).data)
        body["pipelines"] = [pipeline.analytic_id for pipeline in pipelines]
        body["seats"] = [
            {"analytic_id": pipeline.analytic_id, "serial_number": seat.serial_number}
            for pipeline in pipelines
            if (seat := _seat_of(pipeline)) is not None
        ]
        body["stream_stats"] = selectors.stream_stats_get(stream=stream)
        return Response(body)

    @extend_schema(
        tags=TAG_STREAMS,
        summary="Update a stream (any subset of the create fields)",
        description="The node of a stream cannot change. `{}` is a valid (empty) update.",
        request=StreamUpdateSerializer,
        responses={200: StreamWriteResponseSerializer, **STREAM_ERRORS},
    )
    def put(self, request, node: str, stream_id: str):
        stream = selectors.stream_get(node=node_get(node), stream_id=stream_id)
        data = validated(StreamUpdateSerializer, request)
        stream = services.stream_update(
            stream=stream, check_capability=data.get("check_capability", False), **stream_changes(data)
        )
        return Response(
            {
                "code": 200,
                "message": "stream successfully updated",
                "node_num": stream.node_id,
                "stream_id": stream.stream_id,
                "stream_address": stream.address,
                "stream_name": stream.name,
            }
        )

    @extend_schema(
        tags=TAG_STREAMS,
        summary="Delete a stream with its pipelines (their seats are freed)",
        responses={200: StreamDeleteResponseSerializer, **STREAM_ERRORS},
    )
    def delete(self, request, node: str, stream_id: str):
        stream = selectors.stream_get(node=node_get(node), stream_id=stream_id)
        services.stream_delete(stream=stream)
        return Response(
            {
                "code": 200,
                "message": "stream successfully deleted",
                "node_num": stream.node_id,
                "stream_id": stream.stream_id,
            }
        )


PIPELINE_ERRORS = {
    400: _error("Malformed node number or stream_id."),
    404: _error("`node not found`, `stream not found`, `analytic not found` or `pipeline not found`."),
}


class PipelineView(ApiView):
    def _stream(self, node: str, stream_id: str) -> Stream:
        return selectors.stream_get(node=node_get(node), stream_id=stream_id)

    @extend_schema(
        tags=TAG_PIPELINES,
        summary="Run an analytic on a stream",
        description="The body is the analytic's config (its JSON Schema is served at "
        "`/config/pipeline/{analytic_id}`); missing keys take their defaults, unknown keys are refused. "
        f"The pipeline takes a free seat of the analytic; when none is free the answer is "
        f"**{NO_SEAT_STATUS}** `no available seat for analytic …` and nothing is created.",
        request=OpenApiTypes.OBJECT,
        responses={
            200: PipelineWriteResponseSerializer,
            400: _error("Malformed path or invalid config (the message names the key)."),
            404: PIPELINE_ERRORS[404],
            409: _error("`pipeline already exists`."),
            NO_SEAT_STATUS: _error("No free seat of the analytic."),
        },
    )
    def post(self, request, node: str, stream_id: str, analytic_id: str):
        stream = self._stream(node, stream_id)
        services.pipeline_create(stream=stream, analytic_id=analytic_id, config=body_object(request))
        return Response(
            {
                "code": 200,
                "message": "pipeline successfully created",
                "node_num": stream.node_id,
                "stream_id": stream.stream_id,
                "analytic_id": analytic_id,
            }
        )

    @extend_schema(
        tags=TAG_PIPELINES,
        summary="Stop an analytic on a stream (its seat is freed)",
        responses={200: PipelineWriteResponseSerializer, **PIPELINE_ERRORS},
    )
    def delete(self, request, node: str, stream_id: str, analytic_id: str):
        stream = self._stream(node, stream_id)
        services.pipeline_delete(stream=stream, analytic_id=analytic_id)
        return Response(
            {
                "code": 200,
                "message": "pipeline successfully deleted",
                "node_num": stream.node_id,
                "stream_id": stream.stream_id,
                "analytic_id": analytic_id,
            }
        )

    @extend_schema(
        tags=TAG_PIPELINES,
        summary="A pipeline's config in force, its seat and live stats",
        description="`stats` come from the runtime; until it has reported they are zeros with state "
        "`PENDING`.",
        responses={200: PipelineDetailSerializer, **PIPELINE_ERRORS},
    )
    def get(self, request, node: str, stream_id: str, analytic_id: str):
        stream = self._stream(node, stream_id)
        pipeline = selectors.pipeline_get(stream=stream, analytic_id=analytic_id)
        seat = _seat_of(pipeline)
        return Response(
            {
                "code": 200,
                "message": "success",
                "node_num": stream.node_id,
                "stream_id": stream.stream_id,
                "analytic_id": pipeline.analytic_id,
                "config": pipeline.config,
                "seat": None
                if seat is None
                else {"serial_number": seat.serial_number, "active_status": seat.active},
                "stats": selectors.pipeline_stats_get(pipeline=pipeline),
            }
        )


class StreamCountsView(ApiView):
    @extend_schema(
        tags=["Analytics"],
        operation_id="analytic_counts",
        summary="Counts over time of an analytic on a stream",
        description="Per-minute totals stored by counting analytics (NFV4-MPA, NFV4-MVA) per line or "
        "area (`zone`), class (`label`) and `direction`, rolled up by `bucket`. Minutes are stored as "
        "they are counted (within a few seconds); counts outlive the pipeline until retention.",
        parameters=[CountsQuerySerializer],
        responses={
            200: CountsResponseSerializer,
            400: _error("Malformed path or query (the message names the parameter), or too many rows."),
            404: _error("`node not found`, `stream not found` or `analytic not found`."),
        },
    )
    def get(self, request, node: str, stream_id: str, analytic_id: str):
        stream = selectors.stream_get(node=node_get(node), stream_id=stream_id)
        get_plugin(analytic_id)
        query = counts_query_parse(request.query_params, now_ms=int(time.time() * 1000))
        return Response(
            {
                "code": 200,
                "message": "success",
                "node_num": stream.node_id,
                "stream_id": stream.stream_id,
                "analytic_id": analytic_id,
                "bucket": query.bucket,
                "from_ms": query.from_ms,
                "to_ms": query.to_ms,
                "counts": counts_rolled_up(stream_id=stream.stream_id, analytic_id=analytic_id, query=query),
            }
        )
