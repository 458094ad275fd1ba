"""Platform identity, configuration and licence check-in routes.
The node and system routes are in system_views.py."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.response import Response

from core.api import ApiView, body_object
from core.openapi import ErrorSerializer
from core.validation import validated

from . import serializers as s
from . import services
from .selectors import licence_get

BAD_REQUEST = OpenApiResponse(ErrorSerializer, description="Invalid input; the message names the field.")


def _success(**fields) -> Response:
    return Response({"code": 200, "message": "success", **fields})


class RootView(ApiView):
    @extend_schema(
        operation_id="platform_identity",
        summary="Platform name, version and deployment key",
        responses={200: s.PlatformIdentitySerializer},
    )
    def get(self, request):
        return Response(services.platform_identity())


class PlatformConfigView(ApiView):
    @extend_schema(
        operation_id="config_platform_get",
        summary="Platform configuration in force",
        responses={200: s.PlatformConfigResponseSerializer},
    )
    def get(self, request):
        return _success(config=services.platform_config_as_dict(services.platform_config_current()))

    @extend_schema(
        operation_id="config_platform_update",
        summary="Change any subset of the platform configuration (takes effect without a restart)",
        request=s.PlatformConfigPatchSerializer,
        responses={200: s.PlatformConfigResponseSerializer, 400: BAD_REQUEST},
    )
    def post(self, request):
        config = services.platform_config_update(data=body_object(request))
        return _success(config=services.platform_config_as_dict(config))


class DatabaseConfigView(ApiView):
    @extend_schema(
        operation_id="config_database_get",
        summary="Event retention settings (retention_days is the platform's event_retention_days)",
        responses={200: s.DatabaseConfigResponseSerializer},
    )
    def get(self, request):
        return _success(config=services.database_config_as_dict(services.platform_config_current()))

    @extend_schema(
        operation_id="config_database_update",
        summary="Change any subset of the event retention settings",
        request=s.DatabaseConfigPatchSerializer,
        responses={200: s.DatabaseConfigResponseSerializer, 400: BAD_REQUEST},
    )
    def put(self, request):
        config = services.database_config_update(data=body_object(request))
        return _success(config=services.database_config_as_dict(config))


class CheckinView(ApiView):
    @extend_schema(
        operation_id="config_checkin_get",
        summary="Licence in force; status `community` when none is checked in",
        description=(
            "Without a check-in the community allowance is in force: COMMUNITY_SEATS_PER_ANALYTIC seats "
            "per installed analytic (their serial numbers start with COMMUNITY-)."
        ),
        responses={200: s.CheckinResponseSerializer},
    )
    def get(self, request):
        return _success(checkin=services.checkin_as_dict(licence_get()))

    @extend_schema(
        operation_id="config_checkin_post",
        summary="Check in licence credentials (verified offline against the issuer's public key)",
        request=s.CheckinRequestSerializer,
        responses={
            200: s.CheckinResponseSerializer,
            400: OpenApiResponse(
                ErrorSerializer, description="`invalid license credentials: <reason>`, or a malformed body."
            ),
        },
    )
    def post(self, request):
        checkin = services.licence_checkin(**validated(s.CheckinRequestSerializer, request))
        return Response(
            {"code": 200, "message": "checkin successful", "checkin": services.checkin_as_dict(checkin)}
        )

    @extend_schema(
        operation_id="config_checkin_delete",
        summary="Clear the check-in: licensed seats go inactive, the community allowance returns",
        responses={200: s.MessageSerializer},
    )
    def delete(self, request):
        services.licence_clear()
        return Response({"code": 200, "message": "checkin credentials cleared"})
