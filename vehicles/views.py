"""The registered-vehicle routes ([ours], docs/contract/API.md "Registered
vehicles"): input checked by the serializers, then one selector or service call."""

from __future__ import annotations

import re

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.response import Response

from core.api import ApiView
from core.errors import BadRequest
from core.openapi import ErrorSerializer
from core.validation import query_validated, validated

from . import selectors, services
from . import serializers as s

TAGS = ["registered vehicles"]
_VEHICLE_ID_RE = re.compile(r"^[1-9][0-9]{0,18}$")
MAX_VEHICLE_ID = 2**63 - 1  # the primary key is a bigint


def _error(description: str) -> OpenApiResponse:
    return OpenApiResponse(ErrorSerializer, description=description)


LIST_PARAMETER = OpenApiParameter(
    "list_name",
    {"type": "string", "pattern": services.NAME_RE.pattern},
    OpenApiParameter.PATH,
    description=services.NAME_RULE + ".",
)
VEHICLE_PARAMETER = OpenApiParameter(
    "vehicle_id",
    {"type": "integer", "minimum": 1, "maximum": MAX_VEHICLE_ID},
    OpenApiParameter.PATH,
)
NO_LIST = _error("Unknown vehicle list (`vehicle list not found`).")
NO_VEHICLE = _error("Unknown vehicle list, or no such vehicle in it.")
BAD_PATH = "Invalid list name or vehicle id."


def _list(list_name: str):
    services.list_name_validate(list_name)
    return selectors.vehicle_list_get(name=list_name)


def _vehicle(list_name: str, vehicle_id: str):
    services.list_name_validate(list_name)
    if not _VEHICLE_ID_RE.match(vehicle_id) or int(vehicle_id) > MAX_VEHICLE_ID:
        raise BadRequest(f"invalid vehicle_id '{vehicle_id[:40]}': it must be a positive integer")
    vehicle_list = selectors.vehicle_list_get(name=list_name)
    return selectors.vehicle_get(vehicle_list=vehicle_list, vehicle_id=int(vehicle_id))


class VehicleListsView(ApiView):
    """Lists of registered vehicles (watch lists): a plate pipeline matches its readings against one."""

    @extend_schema(
        operation_id="vehicle_lists",
        summary="Every vehicle list with its number of vehicles",
        responses={200: s.VehicleListsResponseSerializer},
        tags=TAGS,
    )
    def get(self, request):
        lists = s.VehicleListItemSerializer(selectors.vehicle_lists(), many=True).data
        return Response({"code": 200, "message": "success", "lists": lists})

    @extend_schema(
        operation_id="vehicle_list_create",
        summary="Create a vehicle list",
        request=s.VehicleListCreateSerializer,
        responses={
            200: s.VehicleListCreatedSerializer,
            400: _error("Missing or invalid list name."),
            409: _error(
                "The list exists already, or the list limit (VISIONAIRE_VEHICLE_MAX_LISTS) is reached."
            ),
        },
        tags=TAGS,
    )
    def post(self, request):
        data = validated(s.VehicleListCreateSerializer, request)
        created = services.list_create(name=data["list_name"])
        return Response(
            {"code": 200, "message": "vehicle list successfully created", "list_name": created.name}
        )


class VehicleListDetailView(ApiView):
    @extend_schema(
        operation_id="vehicle_list_delete",
        summary="Delete a vehicle list and its vehicles",
        parameters=[LIST_PARAMETER],
        responses={200: s.VehicleListDeletedSerializer, 400: _error(BAD_PATH), 404: NO_LIST},
        tags=TAGS,
    )
    def delete(self, request, list_name: str):
        vehicle_list = _list(list_name)
        deleted = services.list_delete(vehicle_list=vehicle_list)
        return Response(
            {
                "code": 200,
                "message": "vehicle list successfully deleted",
                "list_name": list_name,
                "deleted_vehicles": deleted,
            }
        )


class VehiclesView(ApiView):
    @extend_schema(
        operation_id="vehicles_list",
        summary="A list's vehicles, by plate, or searched by plate, owner or status",
        description=(
            "Without `plate`: the vehicles by plate, `limit` per page (default 100), `next_cursor` "
            "leading to the next page, filtered by `name` and `status` when given. With `plate`: the "
            "vehicles whose plate matches it whatever its spacing and case, with OCR confusions "
            "(I/1, O/0, B/8, S/5, Z/2, G/6) or one character missing, exact matches first, at most "
            "`limit` in one page; each says how it matched in `match`."
        ),
        parameters=[LIST_PARAMETER, s.VehicleQuerySerializer],
        responses={
            200: s.VehiclePageSerializer,
            400: _error("Invalid list name or parameter."),
            404: NO_LIST,
        },
        tags=TAGS,
    )
    def get(self, request, list_name: str):
        vehicle_list = _list(list_name)
        query = query_validated(s.VehicleQuerySerializer, request.query_params, name_max=40)
        filters = {"name": query.get("name"), "status": query.get("status")}
        if "plate" in query:
            hits = selectors.vehicles_by_plate(
                plate=query["plate"], vehicle_list=vehicle_list, limit=query["limit"], **filters
            )
            found = [{**s.VehicleSerializer(hit.vehicle).data, "match": hit.kind} for hit in hits]
            next_cursor = None
        else:
            after = selectors.cursor_decode(query["cursor"]) if "cursor" in query else None
            rows, next_cursor = selectors.vehicle_page(
                vehicle_list=vehicle_list, limit=query["limit"], after=after, **filters
            )
            found = [{**s.VehicleSerializer(vehicle).data, "match": None} for vehicle in rows]
        return Response({"code": 200, "message": "success", "vehicles": found, "next_cursor": next_cursor})

    @extend_schema(
        operation_id="vehicle_create",
        summary="Register a vehicle in a list",
        parameters=[LIST_PARAMETER],
        request=s.VehicleCreateSerializer,
        responses={
            200: s.VehicleResponseSerializer,
            400: _error("Invalid list name or field (the message names it)."),
            404: NO_LIST,
            409: _error("The plate is in the list already, or the vehicle limit is reached."),
        },
        tags=TAGS,
    )
    def post(self, request, list_name: str):
        vehicle_list = _list(list_name)
        data = validated(s.VehicleCreateSerializer, request)
        vehicle = services.vehicle_create(vehicle_list=vehicle_list, **data)
        return Response(
            {
                "code": 200,
                "message": "vehicle successfully created",
                "vehicle": s.VehicleSerializer(vehicle).data,
            }
        )


class VehicleDetailView(ApiView):
    @extend_schema(
        operation_id="vehicle_retrieve",
        summary="One registered vehicle",
        parameters=[LIST_PARAMETER, VEHICLE_PARAMETER],
        responses={200: s.VehicleResponseSerializer, 400: _error(BAD_PATH), 404: NO_VEHICLE},
        tags=TAGS,
    )
    def get(self, request, list_name: str, vehicle_id: str):
        vehicle = _vehicle(list_name, vehicle_id)
        return Response({"code": 200, "message": "success", "vehicle": s.VehicleSerializer(vehicle).data})

    @extend_schema(
        operation_id="vehicle_update",
        summary="Change a registered vehicle (any subset of its fields)",
        parameters=[LIST_PARAMETER, VEHICLE_PARAMETER],
        request=s.VehicleUpdateSerializer,
        responses={
            200: s.VehicleResponseSerializer,
            400: _error(BAD_PATH + " Invalid field (the message names it)."),
            404: NO_VEHICLE,
            409: _error("The new plate is registered in the list already."),
        },
        tags=TAGS,
    )
    def put(self, request, list_name: str, vehicle_id: str):
        vehicle = _vehicle(list_name, vehicle_id)
        data = validated(s.VehicleUpdateSerializer, request)
        vehicle = services.vehicle_update(vehicle=vehicle, **data)
        return Response(
            {
                "code": 200,
                "message": "vehicle successfully updated",
                "vehicle": s.VehicleSerializer(vehicle).data,
            }
        )

    @extend_schema(
        operation_id="vehicle_delete",
        summary="Delete a registered vehicle",
        parameters=[LIST_PARAMETER, VEHICLE_PARAMETER],
        responses={200: s.VehicleDeletedSerializer, 400: _error(BAD_PATH), 404: NO_VEHICLE},
        tags=TAGS,
    )
    def delete(self, request, list_name: str, vehicle_id: str):
        vehicle = _vehicle(list_name, vehicle_id)
        services.vehicle_delete(vehicle=vehicle)
        return Response({"code": 200, "message": "vehicle successfully deleted", "vehicle_id": vehicle.pk})
