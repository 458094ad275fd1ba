"""Shapes of the events routes: query parameters in, events out."""

from __future__ import annotations

from datetime import timedelta

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from .models import Event
from .selectors import EPOCH, MAX_TIMESTAMP_MS

STREAM_ID_PATTERN = r"^[0-9a-f]{16}$"


class EventListQuerySerializer(serializers.Serializer):
    """The filters of GET /events (unknown or repeated parameters are refused first)."""

    stream_id = serializers.RegexField(
        STREAM_ID_PATTERN,
        required=False,
        error_messages={"invalid": "it must be 16 lowercase hex characters"},
        help_text="Only events of this stream.",
    )
    analytic_id = serializers.CharField(
        required=False, max_length=40, help_text="Only events of this analytic (its id)."
    )
    from_ms = serializers.IntegerField(
        required=False,
        min_value=0,
        max_value=MAX_TIMESTAMP_MS,
        help_text="Earliest time, unix ms, inclusive.",
    )
    to_ms = serializers.IntegerField(
        required=False, min_value=0, max_value=MAX_TIMESTAMP_MS, help_text="Latest time, unix ms, inclusive."
    )
    q = serializers.CharField(
        required=False,
        max_length=200,
        help_text="Case-insensitive text contained in the event's names, labels or stream name.",
    )
    limit = serializers.IntegerField(required=False, default=50, min_value=1, max_value=500)
    cursor = serializers.CharField(
        required=False, max_length=400, help_text="`next_cursor` of the previous page, unchanged."
    )

    def validate_q(self, value: str) -> str:
        # Control characters (NUL above all) cannot reach PostgreSQL text.
        if any(ord(char) < 32 for char in value):
            raise serializers.ValidationError("it must not contain control characters")
        return value

    def validate(self, attrs):
        if "from_ms" in attrs and "to_ms" in attrs and attrs["from_ms"] > attrs["to_ms"]:
            raise serializers.ValidationError({"from_ms": "it must not be after to_ms"})
        return attrs


class EventSerializer(serializers.ModelSerializer):
    timestamp_ms = serializers.SerializerMethodField(help_text="Unix time in milliseconds.")
    image_url = serializers.SerializerMethodField(help_text="Path of the event's crop, null when none.")

    class Meta:
        model = Event
        fields = [
            "event_id",
            "stream_id",
            "analytic_id",
            "node_num",
            "timestamp_ms",
            "primary_text",
            "secondary_text",
            "pipeline_data",
            "image_url",
        ]

    @extend_schema_field(OpenApiTypes.INT64)
    def get_timestamp_ms(self, event: Event) -> int:
        return (event.timestamp - EPOCH) // timedelta(milliseconds=1)

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_image_url(self, event: Event) -> str | None:
        return f"/events/{event.event_id}/image.jpg" if event.image else None


class EventListResponseSerializer(serializers.Serializer):
    code = serializers.IntegerField(default=200)
    message = serializers.CharField(default="success")
    events = EventSerializer(many=True)
    next_cursor = serializers.CharField(
        allow_null=True, help_text="Pass as `cursor` for the next (older) page; null on the last page."
    )


class EventDetailResponseSerializer(serializers.Serializer):
    code = serializers.IntegerField(default=200)
    message = serializers.CharField(default="success")
    event = EventSerializer()


class DatabaseStatsSerializer(serializers.Serializer):
    code = serializers.IntegerField(default=200)
    message = serializers.CharField(default="success")
    total_size_bytes = serializers.IntegerField()
    used_size_bytes = serializers.IntegerField()
    free_size_bytes = serializers.IntegerField()
    event_count = serializers.IntegerField()
