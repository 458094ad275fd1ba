"""Event history routes ([ours] in spec/API.md, "Events history") and the storage
figures of /database/stats."""

from __future__ import annotations

import uuid

from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.response import Response

from core.api import ApiView
from core.errors import BadRequest, NotFound
from core.openapi import ErrorSerializer
from core.validation import query_validated

from . import selectors
from .serializers import (
    DatabaseStatsSerializer,
    EventDetailResponseSerializer,
    EventListQuerySerializer,
    EventListResponseSerializer,
    EventSerializer,
)
from .stats import database_stats_measure

ERROR_400 = OpenApiResponse(ErrorSerializer, description="Invalid parameter (the message names it).")
ERROR_404 = OpenApiResponse(ErrorSerializer, description="Unknown event.")


class IgnoreAcceptNegotiation(BaseContentNegotiation):
    """Answer with the view's own renderer whatever `Accept` says, so an `<img>` that asks for
    image/* still gets the JSON error body instead of a 406."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


def parse_event_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise BadRequest(f"invalid event_id '{raw[:60]}': it must be a UUID") from None


def event_body(event) -> dict:
    return EventSerializer(event).data


class EventListView(ApiView):
    @extend_schema(
        operation_id="events_list",
        summary="Past events, newest first",
        parameters=[EventListQuerySerializer],
        responses={200: EventListResponseSerializer, 400: ERROR_400},
        tags=["events"],
    )
    def get(self, request):
        filters = dict(query_validated(EventListQuerySerializer, request.query_params))
        raw_cursor = filters.pop("cursor", None)
        cursor = selectors.EventCursor.decode(raw_cursor) if raw_cursor is not None else None
        events, next_cursor = selectors.event_list(**filters, cursor=cursor)
        return Response(
            {
                "code": 200,
                "message": "success",
                "events": EventSerializer(events, many=True).data,
                "next_cursor": next_cursor.encode() if next_cursor else None,
            }
        )


class EventDetailView(ApiView):
    @extend_schema(
        operation_id="events_retrieve",
        summary="One event",
        parameters=[OpenApiParameter("event_id", OpenApiTypes.UUID, OpenApiParameter.PATH)],
        responses={200: EventDetailResponseSerializer, 400: ERROR_400, 404: ERROR_404},
        tags=["events"],
    )
    def get(self, request, event_id: str):
        event = selectors.event_get(event_id=parse_event_id(event_id))
        return Response({"code": 200, "message": "success", "event": event_body(event)})


class EventImageView(ApiView):
    content_negotiation_class = IgnoreAcceptNegotiation

    @extend_schema(
        operation_id="events_image",
        summary="The event's crop as a JPEG",
        parameters=[OpenApiParameter("event_id", OpenApiTypes.UUID, OpenApiParameter.PATH)],
        responses={
            (200, "image/jpeg"): OpenApiResponse(OpenApiTypes.BINARY, description="The stored crop."),
            400: ERROR_400,
            404: OpenApiResponse(ErrorSerializer, description="Unknown event, or one without an image."),
        },
        tags=["events"],
    )
    def get(self, request, event_id: str):
        event = selectors.event_get(event_id=parse_event_id(event_id))
        if not event.image:
            raise NotFound("event image not found")
        try:
            handle = event.image.open("rb")
        except FileNotFoundError:  # the row outlived its file (storage cleaned by hand)
            raise NotFound("event image not found") from None
        return FileResponse(handle, content_type="image/jpeg")


class DatabaseStatsView(ApiView):
    @extend_schema(
        operation_id="database_stats",
        summary="Storage used (database + stored media) and free, and the number of events",
        responses={200: DatabaseStatsSerializer},
    )
    def get(self, request):
        return Response({"code": 200, "message": "success", **database_stats_measure()})
