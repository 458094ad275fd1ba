"""Smart search and extract routes (spec/API.md, "Smart search"): each body
checked by its serializer here, the searches in events/search.py, the push in
events/extract.py.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from django.conf import settings
from django.core.validators import RegexValidator
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.fields import empty
from rest_framework.response import Response

from analytics.plugins import NothingToSearch
from core.api import ApiView
from core.errors import BadRequest, NotFound
from core.images import image_decode
from core.openapi import ErrorSerializer
from core.validation import (
    Base64ImageField,
    InputSerializer,
    JsonObjectField,
    RawField,
    StrictCharField,
    StrictFloatField,
    StrictIntegerField,
    StrictListField,
    refuse,
    validated,
)
from platform_config.selectors import node_get
from streams.models import Pipeline
from streams.selectors import stream_get

from . import search
from .extract import extract_metadata_validate, pipeline_extract
from .search import SearchFilters
from .selectors import MAX_TIMESTAMP_MS
from .serializers import STREAM_ID_PATTERN

STREAM_IDS_MESSAGE = "stream_ids must be a list of stream ids (16 lowercase hex characters each)"
ANALYTIC_IDS_MESSAGE = "analytic_ids must be a list of analytic ids (strings of 1 to 40 characters)"

# A small file can declare a huge picture; decoding it would take gigabytes.
MAX_IMAGE_PIXELS = 40_000_000
QUERY_TYPES = ("image", "text")


def _image_limit() -> int:
    return min(settings.SEARCH_MAX_IMAGE_BYTES, settings.API_MAX_BODY_BYTES)


def image_field_decode(value: Any, *, field: str) -> np.ndarray:
    """A base64 JPEG/PNG from a JSON body, decoded to BGR pixels, under the one
    image policy of every route (core.images) with the search limits."""
    return image_decode(value, field=field, max_bytes=_image_limit(), max_pixels=MAX_IMAGE_PIXELS).pixels


def extract_pipeline_get(*, node: str, stream_id: str, pipeline_id: str) -> Pipeline:
    stream = stream_get(node=node_get(node), stream_id=stream_id)
    # An id PostgreSQL could not even compare (NUL bytes) is simply not found.
    plausible = 0 < len(pipeline_id) <= 40 and all(ord(char) >= 32 for char in pipeline_id)
    pipeline = Pipeline.objects.filter(stream=stream, analytic_id=pipeline_id).first() if plausible else None
    if pipeline is None:
        raise NotFound("pipeline not found")
    return pipeline


# --- input: the one check of each body, in the order a client should fix them --------


class QueryTypeField(serializers.ChoiceField):
    def validate_empty_values(self, data):
        if data is empty or data is None:
            refuse("invalid query type")
        return super().validate_empty_values(data)

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str) or data not in QUERY_TYPES:
            refuse("invalid query type")
        return data


class QueryField(RawField):
    def validate_empty_values(self, data):
        if data is empty or data is None:
            refuse("query: this field is required")
        return super().validate_empty_values(data)


def _timestamp_field(help_text: str) -> StrictIntegerField:
    return StrictIntegerField(
        required=False,
        min_value=0,
        max_value=MAX_TIMESTAMP_MS,
        message="{field} must be an integer between {min} and {max}",
        help_text=help_text,
    )


class SmartSearchRequestSerializer(InputSerializer):
    unknown_name_max = None
    required_first = False  # a missing type is an invalid one

    type = QueryTypeField(choices=list(QUERY_TYPES))
    query = QueryField(help_text="Base64 JPEG/PNG for type image, text for type text.")
    limit = StrictIntegerField(
        required=False,
        min_value=1,
        max_value=1000,
        message="{field} must be an integer between {min} and {max}",
        help_text="Default 50.",
    )
    min_similarity = StrictFloatField(
        required=False,
        min_value=0,
        max_value=1,
        message="{field} must be a number between {min} and {max}",
        help_text="Default 0.3 for text, 0.877 for images (a stranger's face passes with probability 0.1 %).",
    )
    stream_ids = StrictListField(
        child=StrictCharField(validators=[RegexValidator(STREAM_ID_PATTERN)]),
        required=False,
        messages={"type": STREAM_IDS_MESSAGE, "item": STREAM_IDS_MESSAGE},
    )
    analytic_ids = StrictListField(
        child=StrictCharField(max_length=40),
        required=False,
        messages={"type": ANALYTIC_IDS_MESSAGE, "item": ANALYTIC_IDS_MESSAGE},
    )
    from_ms = _timestamp_field("Unix ms, inclusive.")
    to_ms = _timestamp_field("Unix ms, inclusive.")

    def validate_query(self, value: Any) -> Any:
        if self.initial_data.get("type") != "text":
            return value
        if not isinstance(value, str):
            refuse("query must be a string")
        if not value.strip():
            refuse("query must not be empty")
        if len(value) > 200:
            refuse("query must be at most 200 characters")
        if any(ord(char) < 32 for char in value):
            refuse("query must not contain control characters")
        return value

    def validate(self, attrs: dict) -> dict:
        if "from_ms" in attrs and "to_ms" in attrs and attrs["from_ms"] > attrs["to_ms"]:
            refuse("from_ms must not be after to_ms")
        # The image is decoded last: it is the costly check.
        if attrs["type"] == "image":
            attrs["image"] = image_field_decode(attrs["query"], field="query")
        return attrs


class ExtractRequestSerializer(InputSerializer):
    unknown_name_max = None

    image = Base64ImageField(help_text="Base64 JPEG/PNG.")
    metadata = JsonObjectField(required=False, message="{field} must be a JSON object")

    def validate(self, attrs: dict) -> dict:
        image = image_field_decode(attrs["image"], field="image")
        return {"image": image, **extract_metadata_validate(attrs.get("metadata", {}))}


class SmartSearchResultSerializer(serializers.Serializer):
    stream_id = serializers.CharField()
    analytic_id = serializers.CharField()
    node_num = serializers.IntegerField()
    timestamp_ms = serializers.IntegerField()
    similarity = serializers.FloatField(min_value=0, max_value=1)
    image_jpeg = serializers.CharField(help_text="Base64 JPEG crop.")
    primary_text = serializers.CharField()
    secondary_text = serializers.CharField()
    false_match_probability = serializers.FloatField(
        required=False,
        allow_null=True,
        help_text="[ours] Image search only: the probability that a stranger's face reaches this "
        "similarity against one event, from the face embedder's measured scores (e.g. 0.0075 at "
        "0.85, 0.001 at 0.877 for the default embedder); null for an embedder never measured.",
    )


class SmartSearchResponseSerializer(serializers.Serializer):
    code = serializers.IntegerField(default=200)
    message = serializers.CharField(default="success")
    results = SmartSearchResultSerializer(many=True, help_text="Highest similarity first.")


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
        body = validated(SmartSearchRequestSerializer, request)
        image = body.get("image")
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
            {
                "code": 200,
                "message": "success",
                "results": [search.search_result_body(hit, by_image=image is not None) for hit in hits],
            }
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
        pipeline_extract(pipeline=pipeline, **validated(ExtractRequestSerializer, request))
        return Response(
            {
                "code": 200,
                "message": "payload successfully pushed to pipeline",
                "node_num": pipeline.stream.node_id,
                "stream_id": pipeline.stream.stream_id,
                "pipeline_id": pipeline.analytic_id,
            }
        )
