"""The query strings of the visualization routes: each is checked, and
described in the OpenAPI document, by one serializer (core.validation)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from core.validation import refuse, refuse_input

HEIGHT_RANGE = (16, 4320)
QUALITY_RANGE = (1, 100)
DEFAULT_HEIGHT = 320
DEFAULT_JPEG_QUALITY = 60


class QueryIntegerField(serializers.IntegerField):
    """An integer query parameter; the message names it and its bounds."""

    def to_internal_value(self, data: Any) -> int:
        low, high = self.min_value, self.max_value
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        try:
            value = int(data)
        except (TypeError, ValueError):
            refuse(f"invalid {self.field_name} '{str(data)[:40]}': it must be an integer {bounds}")
        if value < low or (high is not None and value > high):
            refuse(f"invalid {self.field_name} {value}: it must be {bounds}")
        return value


class FrameQuerySerializer(serializers.Serializer):
    height = QueryIntegerField(
        required=False,
        default=DEFAULT_HEIGHT,
        min_value=HEIGHT_RANGE[0],
        max_value=HEIGHT_RANGE[1],
        help_text=f"Frame height in px, {HEIGHT_RANGE[0]}-{HEIGHT_RANGE[1]} (default {DEFAULT_HEIGHT}).",
    )
    jpeg_quality = QueryIntegerField(
        required=False,
        default=DEFAULT_JPEG_QUALITY,
        min_value=QUALITY_RANGE[0],
        max_value=QUALITY_RANGE[1],
        help_text=f"JPEG quality, {QUALITY_RANGE[0]}-{QUALITY_RANGE[1]} (default {DEFAULT_JPEG_QUALITY}).",
    )
    # Checked by the token middleware; listed so it is not an unknown parameter.
    token = serializers.CharField(
        required=False, allow_blank=True, help_text="API token, when tokens are configured."
    )


class ViewingQuerySerializer(FrameQuerySerializer):
    """With `path_fps` in the context, the rate comes from the path and may not be
    given in the query too."""

    fps = QueryIntegerField(
        required=False, default=0, min_value=0, help_text="Frame-rate cap, >= 0; 0 = unlimited (default)."
    )

    def to_internal_value(self, data: Any) -> Any:
        path_fps = self.context.get("path_fps")
        if path_fps is not None:
            if "fps" in data:
                refuse_input("fps: give it in the path or in the query, not both")
            data = {**data, "fps": path_fps}
        return super().to_internal_value(data)
