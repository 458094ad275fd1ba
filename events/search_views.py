"""Smart search and extract routes (spec/API.md, "Smart search"): input checks
here, the searches in events/search.py, the push in events/extract.py.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from analytics.plugins import NothingToSearch
from core.api import ApiView, body_object
from core.errors import BadRequest, NotFound
from core.images import image_decode
from core.openapi import ErrorSerializer
from platform_config.selectors import node_get
from streams.models import Pipeline, Stream

from . import search
from .extract import pipeline_extract
from .search import SearchFilters

STREAM_ID_RE = re.compile(r"^[0-9a-f]{16}$")
# A small file can declare a huge picture; decoding it would take gigabytes.
MAX_IMAGE_PIXELS = 40_000_000
MAX_TIMESTAMP_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
SEARCH_KEYS = {"type", "query", "limit", "min_similarity", "stream_ids", "analytic_ids", "from_ms", "to_ms"}
EXTRACT_KEYS = {"image", "metadata"}


def _image_limit() -> int:
    return min(settings.SEARCH_MAX_IMAGE_BYTES, settings.API_MAX_BODY_BYTES)


def image_field_decode(value: Any, *, field: str) -> np.ndarray:
    """A base64 JPEG/PNG from a JSON body, decoded to BGR pixels, under the one
    image policy of every route (core.images) with the search limits."""
    return image_decode(value, field=field, max_bytes=_image_limit(), max_pixels=MAX_IMAGE_PIXELS).pixels


def _refuse_unknown(body: dict, allowed: set[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise BadRequest(f"unknown field(s): {', '.join(unknown)}")


def _int_field(body: dict, name: str, low: int, high: int) -> None:
    value = body.get(name)
    if name in body and (type(value) is not int or not low <= value <= high):
        raise BadRequest(f"{name} must be an integer between {low} and {high}")


def search_request_validate(body: dict) -> np.ndarray | None:
    """The checks of POST /smart-search, in the order a client should fix them;
    the decoded query image for `type: image`."""
    _refuse_unknown(body, SEARCH_KEYS)
    if body.get("type") not in ("image", "text"):
        raise BadRequest("invalid query type")
    query = body.get("query")
    if query is None:
        raise BadRequest("query: this field is required")
    if body["type"] == "text":
        if not isinstance(query, str):
            raise BadRequest("query must be a string")
        if not query.strip():
            raise BadRequest("query must not be empty")
        if len(query) > 200:
            raise BadRequest("query must be at most 200 characters")
        if any(ord(char) < 32 for char in query):
            raise BadRequest("query must not contain control characters")
    _int_field(body, "limit", 1, 1000)
    similarity = body.get("min_similarity")
    if "min_similarity" in body and (
        isinstance(similarity, bool) or not isinstance(similarity, int | float) or not 0 <= similarity <= 1
    ):
        raise BadRequest("min_similarity must be a number between 0 and 1")
    stream_ids = body.get("stream_ids")
    if "stream_ids" in body and (
        not isinstance(stream_ids, list)
        or not all(isinstance(item, str) and STREAM_ID_RE.match(item) for item in stream_ids)
    ):
        raise BadRequest("stream_ids must be a list of stream ids (16 lowercase hex characters each)")
    analytic_ids = body.get("analytic_ids")
    if "analytic_ids" in body and (
        not isinstance(analytic_ids, list)
        or not all(isinstance(item, str) and 0 < len(item) <= 40 for item in analytic_ids)
    ):
        raise BadRequest("analytic_ids must be a list of analytic ids (strings of 1 to 40 characters)")
    _int_field(body, "from_ms", 0, MAX_TIMESTAMP_MS)
    _int_field(body, "to_ms", 0, MAX_TIMESTAMP_MS)
    if "from_ms" in body and "to_ms" in body and body["from_ms"] > body["to_ms"]:
        raise BadRequest("from_ms must not be after to_ms")
    # The image is decoded last: it is the costly check.
    if body["type"] == "image":
        return image_field_decode(query, field="query")
    return None


def extract_pipeline_get(*, node: str, stream_id: str, pipeline_id: str) -> Pipeline:
    node_row = node_get(node)
    if not STREAM_ID_RE.match(stream_id):
        raise BadRequest(f"invalid stream_id '{stream_id[:40]}': it must be 16 lowercase hex characters")
    stream = Stream.objects.filter(stream_id=stream_id, node=node_row).first()
    if stream is None:
        raise NotFound("stream not found")
    # An id PostgreSQL could not even compare (NUL bytes) is simply not found.
    plausible = 0 < len(pipeline_id) <= 40 and all(ord(char) >= 32 for char in pipeline_id)
    pipeline = Pipeline.objects.filter(stream=stream, analytic_id=pipeline_id).first() if plausible else None
    if pipeline is None:
        raise NotFound("pipeline not found")
    return pipeline


def extract_request_validate(body: dict) -> np.ndarray:
    """The checks of POST /extract; the decoded image."""
    _refuse_unknown(body, EXTRACT_KEYS)
    if "image" not in body:
        raise BadRequest("image: this field is required")
    if "metadata" in body and not isinstance(body["metadata"], dict):
        raise BadRequest("metadata must be a JSON object")
    return image_field_decode(body["image"], field="image")


# --- OpenAPI description -----------------------------------------------------


class SmartSearchRequestSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=["image", "text"])
    query = serializers.CharField(help_text="Base64 JPEG/PNG for type image, text for type text.")
    limit = serializers.IntegerField(required=False, min_value=1, max_value=1000, help_text="Default 50.")
    min_similarity = serializers.FloatField(
        required=False,
        min_value=0,
        max_value=1,
        help_text="Default 0.3 for text, 0.877 for images (a stranger's face passes with probability 0.1 %).",
    )
    stream_ids = serializers.ListField(child=serializers.RegexField(STREAM_ID_RE.pattern), required=False)
    analytic_ids = serializers.ListField(child=serializers.CharField(max_length=40), required=False)
    from_ms = serializers.IntegerField(required=False, min_value=0, help_text="Unix ms, inclusive.")
    to_ms = serializers.IntegerField(required=False, min_value=0, help_text="Unix ms, inclusive.")


class SmartSearchResultSerializer(serializers.Serializer):
    stream_id = serializers.CharField()
    analytic_id = serializers.CharField()
    node_num = serializers.IntegerField()
    timestamp_ms = serializers.IntegerField()
    similarity = serializers.FloatField(min_value=0, max_value=1)
    image_jpeg = serializers.CharField(help_text="Base64 JPEG crop.")
    primary_text = serializers.CharField()
    secondary_text = serializers.CharField()


class SmartSearchResponseSerializer(serializers.Serializer):
    code = serializers.IntegerField(default=200)
    message = serializers.CharField(default="success")
    results = SmartSearchResultSerializer(many=True, help_text="Highest similarity first.")


class ExtractRequestSerializer(serializers.Serializer):
    image = serializers.CharField(help_text="Base64 JPEG/PNG.")
    metadata = serializers.DictField(required=False)


class ExtractResponseSerializer(serializers.Serializer):
    code = serializers.IntegerField(default=200)
    message = serializers.CharField(default="payload successfully pushed to pipeline")
    node_num = serializers.IntegerField()
    stream_id = serializers.CharField()
    pipeline_id = serializers.CharField()


def _error(description: str) -> OpenApiResponse:
    return OpenApiResponse(ErrorSerializer, description=description)


class SmartSearchView(ApiView):
    @extend_schema(
        operation_id="smart_search",
        summary="Search past events by image or text",
        request=SmartSearchRequestSerializer,
        description=(
            "`type: text` ranks events by the similarity of their names, secondary text, labels and "
            "stream name to the query (trigram and full-text matching, tolerant of typos and partial "
            "words). `type: image` finds the faces of the query image and ranks events by face "
            "similarity (HNSW index over the stored embeddings). Defaults: `limit` 50, "
            "`min_similarity` 0.3 for text and 0.877 for images (measured with the default face "
            "embedder: a stranger's face reaches it with probability 0.1 %, the same person's with "
            "92.5 %; strangers score 0.726 at the median). Results are sorted by similarity, highest first."
        ),
        responses={
            200: SmartSearchResponseSerializer,
            400: _error("Invalid query type, query or filter; undecodable image; no face in the image."),
            413: _error("Query image over the size limit."),
        },
        tags=["smart search"],
    )
    def post(self, request):
        body = body_object(request)
        image = search_request_validate(body)
        filters = SearchFilters(
            stream_ids=body.get("stream_ids"),
            analytic_ids=body.get("analytic_ids"),
            from_ms=body.get("from_ms"),
            to_ms=body.get("to_ms"),
        )
        limit = body.get("limit", search.DEFAULT_LIMIT)
        if image is None:
            hits = search.events_text_search(
                query=body["query"],
                filters=filters,
                limit=limit,
                min_similarity=body.get("min_similarity", search.DEFAULT_TEXT_MIN_SIMILARITY),
            )
        else:
            try:
                hits = search.events_image_search(
                    image_bgr=image,
                    filters=filters,
                    limit=limit,
                    min_similarity=body.get("min_similarity", search.DEFAULT_IMAGE_MIN_SIMILARITY),
                )
            except NothingToSearch as refusal:
                raise BadRequest(refusal.message) from None
        return Response(
            {"code": 200, "message": "success", "results": [search.search_result_body(hit) for hit in hits]}
        )


class ExtractView(ApiView):
    @extend_schema(
        operation_id="extract",
        summary="Push an image to a pipeline",
        description=(
            "The image goes through the pipeline's analytic as the stream's frames do and what it "
            "makes is stored and broadcast as events before the answer. Smart search stores one event per "
            "face found (crop and embedding, searchable by photo), or one of the whole image when it "
            "shows none. `metadata` is kept in each event's `pipeline_data.metadata` and its text "
            "values are searchable; `primary_text`, `secondary_text` (strings) and `timestamp_ms` "
            "(unix ms) are used for the events' texts and time when given."
        ),
        parameters=[
            OpenApiParameter("node", OpenApiTypes.INT, OpenApiParameter.PATH),
            OpenApiParameter("stream_id", OpenApiTypes.STR, OpenApiParameter.PATH),
            OpenApiParameter(
                "pipeline_id", OpenApiTypes.STR, OpenApiParameter.PATH, description="Analytic id."
            ),
        ],
        request=ExtractRequestSerializer,
        responses={
            200: ExtractResponseSerializer,
            400: _error("Malformed node, stream id or body."),
            404: _error("Unknown node, stream or pipeline."),
            413: _error("Image over the size limit."),
        },
        tags=["smart search"],
    )
    def post(self, request, node: str, stream_id: str, pipeline_id: str):
        pipeline = extract_pipeline_get(node=node, stream_id=stream_id, pipeline_id=pipeline_id)
        body = body_object(request)
        image = extract_request_validate(body)
        pipeline_extract(pipeline=pipeline, image=image, metadata=body.get("metadata", {}))
        return Response(
            {
                "code": 200,
                "message": "payload successfully pushed to pipeline",
                "node_num": pipeline.stream.node_id,
                "stream_id": pipeline.stream.stream_id,
                "pipeline_id": pipeline.analytic_id,
            }
        )
