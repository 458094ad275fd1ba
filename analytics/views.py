"""Analytics registry routes: what runs here, with its seats, schemas and presets."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from core.api import ApiView
from core.openapi import ErrorSerializer
from platform_config.serializers import VersionSerializer
from platform_config.services import platform_identity

from . import selectors

NOT_FOUND = OpenApiResponse(ErrorSerializer, description="`analytic not found`")


class SeatSerializer(serializers.Serializer):
    serial_number = serializers.CharField(help_text="COMMUNITY-… while the community allowance is in force.")
    active_status = serializers.BooleanField(source="active")


class AnalyticSerializer(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    major_version = serializers.IntegerField()
    minor_version = serializers.IntegerField()
    publisher = serializers.CharField()
    description = serializers.CharField()
    type = serializers.CharField()
    seats = SeatSerializer(many=True)


class AnalyticListSerializer(serializers.Serializer):
    code = serializers.IntegerField(default=200)
    message = serializers.CharField(default="success")
    analytic_num = serializers.IntegerField()
    deployment_key = serializers.CharField()
    version = VersionSerializer()
    analytics = AnalyticSerializer(many=True)


class AnalyticListView(ApiView):
    @extend_schema(
        operation_id="analytic_list",
        summary="Analytics installed on this platform, with their seats",
        responses={200: AnalyticListSerializer},
    )
    def get(self, request):
        analytics = list(selectors.analytics_installed())
        identity = platform_identity()
        return Response(
            {
                "code": 200,
                "message": "success",
                "analytic_num": len(analytics),
                "deployment_key": identity["deployment_key"],
                "version": identity["version"],
                "analytics": AnalyticSerializer(analytics, many=True).data,
            }
        )


def _schema_view(operation_id: str, summary: str, reader):
    class SchemaView(ApiView):
        @extend_schema(
            operation_id=operation_id,
            summary=summary,
            responses={200: OpenApiResponse(OpenApiTypes.OBJECT, description="JSON Schema"), 404: NOT_FOUND},
        )
        def get(self, request, analytic_id: str):
            return Response(reader(analytic_id))

    SchemaView.__name__ = SchemaView.__qualname__ = f"{operation_id.title().replace('_', '')}View"
    return SchemaView


ConfigSchemaView = _schema_view(
    "analytic_config_schema",
    "JSON Schema of the analytic's pipeline config (defaults included; unknown keys refused)",
    selectors.analytic_config_schema,
)
ConfigSchemaV2View = _schema_view(
    "analytic_config_schema_v2",
    "Pipeline config schema plus `sub_analytics`: {id: {name, description, config}}",
    selectors.analytic_config_schema_v2,
)
RulesSchemaView = _schema_view(
    "analytic_rules_schema",
    "JSON Schema of the optional rules a pipeline may carry ({} if none)",
    selectors.analytic_rules_schema,
)
PresetsView = _schema_view(
    "analytic_presets",
    "Named preset configs, each complete with defaults ({} if none)",
    selectors.analytic_presets,
)
