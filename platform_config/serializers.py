"""Request and response shapes of the platform routes. The config serializers
are the one source of the settings' limits: they check every change (from the
API and the admin alike, through platform_config.services) and describe it in
the OpenAPI document.
"""

from __future__ import annotations

from rest_framework import serializers

from core.validation import (
    InputSerializer,
    StrictBooleanField,
    StrictCharField,
    StrictChoiceField,
    StrictIntegerField,
)

from .models import LogLevel

CONFIG_ERROR = "invalid configuration value"


class VersionSerializer(serializers.Serializer):
    major = serializers.IntegerField()
    minor = serializers.IntegerField()
    patch = serializers.IntegerField()


class PlatformIdentitySerializer(serializers.Serializer):
    name = serializers.CharField()
    version = VersionSerializer()
    deployment_key = serializers.CharField()


def _setting_int(low: int, high: int, **kwargs) -> StrictIntegerField:
    return StrictIntegerField(
        required=False,
        min_value=low,
        max_value=high,
        message=CONFIG_ERROR + ": {field} must be an integer between {min} and {max}",
        **kwargs,
    )


class ConfigChangeSerializer(InputSerializer):
    """Any subset of the keys; unknown keys are refused."""

    # `validated_data` is keyed by the PlatformConfig field each key is stored in.

    unknown_message = CONFIG_ERROR + ": unknown key '{first}' (allowed: {allowed})"
    not_object_message = CONFIG_ERROR + ": the body must be a JSON object"


RETENTION_DAYS = (1, 36_500)


class PlatformConfigPatchSerializer(ConfigChangeSerializer):
    max_streams_per_node = _setting_int(1, 1024)
    event_retention_days = _setting_int(*RETENTION_DAYS)
    enable_cors = StrictBooleanField(
        required=False, message=CONFIG_ERROR + ": {field} must be a boolean (true or false)"
    )
    log_level = StrictChoiceField(
        LogLevel.values, required=False, message=CONFIG_ERROR + ": {field} must be one of {choices}"
    )


class PlatformConfigSerializer(PlatformConfigPatchSerializer):
    """The whole configuration, as answered."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.required = True


class PlatformConfigResponseSerializer(serializers.Serializer):
    code = serializers.IntegerField(default=200)
    message = serializers.CharField(default="success")
    config = PlatformConfigSerializer()


class DatabaseConfigPatchSerializer(ConfigChangeSerializer):
    retention_days = _setting_int(*RETENTION_DAYS, source="event_retention_days")
    max_events_per_stream = _setting_int(1, 100_000_000)


class DatabaseConfigSerializer(DatabaseConfigPatchSerializer):
    """The retention settings, as answered."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.required = True


class DatabaseConfigResponseSerializer(serializers.Serializer):
    code = serializers.IntegerField(default=200)
    message = serializers.CharField(default="success")
    config = DatabaseConfigSerializer()


class CheckinSerializer(serializers.Serializer):
    status = serializers.ChoiceField(
        choices=["active", "expired", "community"],
        help_text="`community`: no licence is checked in and the community allowance of seats is in force.",
    )
    deployment_key = serializers.CharField()
    last_checkin_at = serializers.CharField(allow_null=True, help_text="UTC, e.g. 2025-01-15T08:00:00Z")
    expires_at = serializers.CharField(allow_null=True, help_text="UTC, e.g. 2026-01-15T08:00:00Z")


class CheckinResponseSerializer(serializers.Serializer):
    code = serializers.IntegerField(default=200)
    message = serializers.CharField()
    checkin = CheckinSerializer()


class CheckinRequestSerializer(InputSerializer):
    unknown_message = "unknown field '{first}' (allowed: access_key, secret_key)"
    required_message = "missing field {field}"

    access_key = StrictCharField(
        allow_blank=True, message="{field} must be a string", help_text='"AKID-" followed by the licence id.'
    )
    secret_key = StrictCharField(
        allow_blank=True,
        message="{field} must be a string",
        help_text='"sk-<payload>.<signature>", as issued.',
    )


class MessageSerializer(serializers.Serializer):
    code = serializers.IntegerField(default=200)
    message = serializers.CharField()
