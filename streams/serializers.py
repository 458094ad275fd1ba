"""Request validation and response shapes of the stream and pipeline routes.

Input fields are strict: a JSON string is not accepted for a number or a
boolean, and unknown keys are refused, so a client's typo is an error instead
of a silently ignored setting."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from core.validation import (
    DrfWordedInputSerializer,
    JsonObjectField,
    StrictBooleanField,
    StrictCharField,
    StrictFloatField,
)
from live.states import StreamState

from .services import json_storage_problem


def _json_storable(value: dict) -> None:
    problem = json_storage_problem(value)
    if problem:
        raise serializers.ValidationError(problem)


def _coordinate(limit: int, label: str, required: bool = False) -> StrictFloatField:
    return StrictFloatField(
        required=required,
        min_value=-limit,
        max_value=limit,
        help_text=label,
        messages={"range": "{field}: must be a number between {min} and {max}"},
    )


class StreamCreateSerializer(DrfWordedInputSerializer):
    """Refuses keys it does not declare."""

    # Blank and over-long addresses reach live.addresses.address_validate,
    # which answers with the contract's "Invalid stream_address" message.
    stream_address = StrictCharField(
        allow_blank=True,
        help_text="rtsp://, rtsps://, http(s):// URL, file under the media root "
        "(file:///path or /path), or a V4L2 device (/dev/videoN, v4l2:///dev/videoN).",
    )
    stream_name = StrictCharField(required=False, allow_blank=True, max_length=200)
    stream_latitude = _coordinate(90, "Latitude in degrees, -90 to 90.")
    stream_longitude = _coordinate(180, "Longitude in degrees, -180 to 180.")
    stream_custom_data = JsonObjectField(
        required=False,
        validators=[_json_storable],
        help_text="Free-form JSON object kept with the stream.",
    )
    active = StrictBooleanField(required=False, help_text="Whether the stream should run (default true).")
    check_capability = StrictBooleanField(
        required=False,
        help_text="When true, open the source and read a frame before accepting it.",
    )


class StreamUpdateSerializer(StreamCreateSerializer):
    """Any subset of the create fields; `{}` is valid."""

    stream_address = StrictCharField(
        required=False,
        allow_blank=True,
        help_text=StreamCreateSerializer().fields["stream_address"].help_text,
    )


# Request field -> model field / service argument.
STREAM_FIELD_MAP = {
    "stream_address": "address",
    "stream_name": "name",
    "stream_latitude": "latitude",
    "stream_longitude": "longitude",
    "stream_custom_data": "custom_data",
    "active": "active",
}


def stream_changes(validated: dict[str, Any]) -> dict[str, Any]:
    return {STREAM_FIELD_MAP[name]: value for name, value in validated.items() if name in STREAM_FIELD_MAP}


# --- responses -------------------------------------------------------------------


class StreamItemSerializer(serializers.Serializer):
    stream_id = serializers.CharField()
    stream_name = serializers.CharField(source="name")
    stream_address = serializers.CharField(source="address")
    stream_node_num = serializers.IntegerField(source="node_id")
    stream_latitude = serializers.FloatField(source="latitude")
    stream_longitude = serializers.FloatField(source="longitude")
    stream_custom_data = serializers.JSONField(source="custom_data")
    active = serializers.BooleanField()


# The list item's keys and the model columns they come from, as the serializer
# declares them (streams.selectors.stream_list_items reads the columns as rows).
STREAM_ITEM_COLUMNS = {name: field.source for name, field in StreamItemSerializer().fields.items()}


class StreamListSerializer(serializers.Serializer):
    stream_number = serializers.IntegerField(help_text="Number of streams in `streams`.")
    streams = StreamItemSerializer(many=True)


class StreamSeatSerializer(serializers.Serializer):
    analytic_id = serializers.CharField()
    serial_number = serializers.CharField()


class StreamStatsSerializer(serializers.Serializer):
    fps = serializers.IntegerField(help_text="Measured input frame rate.")
    frame_width = serializers.IntegerField()
    frame_height = serializers.IntegerField()
    state = serializers.ChoiceField(choices=[state.value for state in StreamState])
    last_error_msg = serializers.CharField()
    frames_dropped = serializers.IntegerField()
    reconnects = serializers.IntegerField()
    uptime_sec = serializers.IntegerField()


class StreamDetailSerializer(StreamItemSerializer):
    pipelines = serializers.ListField(child=serializers.CharField(), help_text="Analytic ids running on it.")
    seats = StreamSeatSerializer(many=True)
    stream_stats = StreamStatsSerializer(
        help_text="Live state written by the node's runtime. Before it has reported: STOPPED for an "
        "inactive stream, INITIALIZING otherwise, with zero figures."
    )


class StreamWriteResponseSerializer(serializers.Serializer):
    code = serializers.IntegerField()
    message = serializers.CharField()
    node_num = serializers.IntegerField()
    stream_id = serializers.CharField()
    stream_address = serializers.CharField()
    stream_name = serializers.CharField()


class StreamCreateResponseSerializer(StreamWriteResponseSerializer):
    ok = serializers.BooleanField()


class StreamDeleteResponseSerializer(serializers.Serializer):
    code = serializers.IntegerField()
    message = serializers.CharField()
    node_num = serializers.IntegerField()
    stream_id = serializers.CharField()


class PipelineWriteResponseSerializer(StreamDeleteResponseSerializer):
    analytic_id = serializers.CharField()


class PipelineSeatSerializer(serializers.Serializer):
    serial_number = serializers.CharField()
    active_status = serializers.BooleanField()


class PipelineStatsSerializer(serializers.Serializer):
    processed_fps = serializers.FloatField()
    last_latency_ms = serializers.FloatField(help_text="Time of the last inference, in ms.")
    p95_latency_ms = serializers.FloatField()
    events_emitted = serializers.IntegerField()
    errors = serializers.IntegerField()
    state = serializers.CharField(help_text="PENDING until the runtime has reported.")
    last_error = serializers.CharField()


class PipelineDetailSerializer(PipelineWriteResponseSerializer):
    config = serializers.JSONField(help_text="The validated config in force, defaults filled.")
    seat = PipelineSeatSerializer(allow_null=True, help_text="The seat it holds (null if none).")
    stats = PipelineStatsSerializer(
        help_text="Live figures written by the runtime; zeros and state PENDING until it has reported."
    )


class CountsQuerySerializer(serializers.Serializer):
    """The query of GET /analytics/{node}/{stream_id}/{analytic_id}/counts (described here;
    analytics.counts.counts_query_parse checks it)."""

    from_ms = serializers.IntegerField(
        required=False,
        min_value=0,
        max_value=2**53,
        help_text="Earliest minute, unix ms, inclusive (default: a day before to_ms).",
    )
    to_ms = serializers.IntegerField(
        required=False, min_value=0, max_value=2**53, help_text="End, unix ms, exclusive (default: now)."
    )
    bucket = serializers.ChoiceField(
        choices=["minute", "hour", "day"],
        required=False,
        default="minute",
        help_text="Totals per minute, hour or day (UTC); peaks roll up by their maximum, the rest by sum.",
    )


class CountRowSerializer(serializers.Serializer):
    bucket_ms = serializers.IntegerField(help_text="Start of the bucket, unix ms.")
    zone = serializers.CharField(help_text="The line's or area's name.")
    label = serializers.CharField(help_text="The object's class; * for all classes (peaks).")
    direction = serializers.CharField(
        help_text="in, out, wrong_way (line crossings), enter, dwell, stopped (areas) or peak (the highest "
        "number in the area at once)."
    )
    value = serializers.IntegerField()


class CountsResponseSerializer(serializers.Serializer):
    code = serializers.IntegerField(default=200)
    message = serializers.CharField(default="success")
    node_num = serializers.IntegerField()
    stream_id = serializers.CharField()
    analytic_id = serializers.CharField()
    bucket = serializers.CharField()
    from_ms = serializers.IntegerField()
    to_ms = serializers.IntegerField()
    counts = CountRowSerializer(many=True)
