"""Node and system routes: /node_status, /resource_stats, /v2/resource_stats,
/system/restart and /metrics. Thin over `platform_config.nodes`."""

from __future__ import annotations

from django_prometheus.exports import ExportToDjangoView
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from rest_framework import serializers
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.response import Response

from core.api import ApiView
from core.openapi import ErrorSerializer

from . import nodes

_unavailable = OpenApiResponse(ErrorSerializer, description="Redis (live state) is unreachable.")

_node = inline_serializer(
    "NodeStatusItem",
    {
        "node_num": serializers.IntegerField(),
        "status": serializers.ChoiceField(choices=["online", "offline"]),
        "running_time_sec": serializers.IntegerField(),
        "ip_address": serializers.CharField(),
        "run_mode": serializers.ChoiceField(choices=["GPU", "CPU"]),
    },
    many=True,
)
_gpu = inline_serializer(
    "GpuStats",
    {
        "gpu_id": serializers.IntegerField(),
        "gpu_name": serializers.CharField(),
        "gpu_utilization": serializers.IntegerField(),
        "gpu_temperature": serializers.IntegerField(),
        "gpu_memory_total": serializers.IntegerField(),
        "gpu_memory_used": serializers.IntegerField(),
        "gpu_memory_free": serializers.IntegerField(),
        "services": inline_serializer(
            "GpuService",
            {"service_name": serializers.CharField(), "service_number": serializers.IntegerField()},
            many=True,
        ),
    },
    many=True,
)
_data = inline_serializer(
    "ResourceData",
    {
        "cpu_percent": serializers.FloatField(),
        "ram_percent": serializers.FloatField(),
        "swap_memory_percent": serializers.FloatField(),
        "gpus": _gpu,
    },
)


class NodeStatusView(ApiView):
    @extend_schema(
        tags=["system"],
        summary="Status of every node",
        description="`status` is `online` while the node's heartbeat is fresh.",
        responses={
            200: inline_serializer("NodeStatus", {"node_number": serializers.IntegerField(), "nodes": _node}),
            503: _unavailable,
        },
    )
    def get(self, request):
        return Response(nodes.node_status_body())


class ResourceStatsView(ApiView):
    @extend_schema(
        tags=["system"],
        summary="CPU, memory and GPU figures of each online node",
        responses={
            200: inline_serializer(
                "ResourceStats",
                {
                    "devices": inline_serializer(
                        "ResourceDevice", {"node_num": serializers.IntegerField(), "data": _data}, many=True
                    )
                },
            ),
            503: _unavailable,
        },
    )
    def get(self, request):
        return Response(nodes.resource_stats_body(with_ip=False))


class ResourceStatsV2View(ApiView):
    @extend_schema(
        tags=["system"],
        summary="Resource figures of each online node, with its address",
        responses={
            200: inline_serializer(
                "ResourceStatsV2",
                {
                    "devices": inline_serializer(
                        "ResourceDeviceV2",
                        {
                            "node_num": serializers.IntegerField(),
                            "ip_address": serializers.CharField(),
                            "data": _data,
                        },
                        many=True,
                    )
                },
            ),
            503: _unavailable,
        },
    )
    def get(self, request):
        return Response(nodes.resource_stats_body(with_ip=True))


class SystemRestartView(ApiView):
    @extend_schema(
        tags=["system"],
        summary="Gracefully restart the stream runners of every node",
        description="The API stays up. Any request body is ignored.",
        request=None,
        responses={
            200: inline_serializer(
                "SystemRestart", {"code": serializers.IntegerField(), "message": serializers.CharField()}
            ),
            503: _unavailable,
        },
    )
    def post(self, request):
        # request.data is never read, so no body (or a malformed one) can fail this route.
        nodes.system_restart_request()
        return Response({"code": 200, "message": "System restart initiated"})


class _FirstRenderer(BaseContentNegotiation):
    """Scrapers send Accept headers for OpenMetrics; the body is always the
    Prometheus text format, so the Accept header must not cause a 406."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class MetricsView(ApiView):
    content_negotiation_class = _FirstRenderer

    @extend_schema(
        tags=["system"],
        summary="Prometheus metrics",
        description="Prometheus text exposition format 0.0.4.",
        responses={(200, "text/plain"): OpenApiTypes.STR},
    )
    def get(self, request):
        response = ExportToDjangoView(request._request)
        # The text format is the same; the contract names version 0.0.4, which
        # every Prometheus server reads (prometheus_client now labels it 1.0.0).
        response["Content-Type"] = CONTENT_TYPE_PLAIN_0_0_4
        return response
