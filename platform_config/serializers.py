"""Request and response shapes of the platform routes, for the OpenAPI document.

Validation of the config bodies is done by platform_config.services (strict JSON
types, one message format); these serializers describe the wire shapes.
"""

from __future__ import annotations

from rest_framework import serializers

from .models import LogLevel


class VersionSerializer(serializers.Serializer):
    major = serializers.IntegerField()
    minor = serializers.IntegerField()
    patch = serializers.IntegerField()


class PlatformIdentitySerializer(serializers.Serializer):
    name = serializers.CharField()
    version = VersionSerializer()
    deployment_key = serializers.CharField()


class PlatformConfigSerializer(serializers.Serializer):
    max_streams_per_node = serializers.IntegerField(min_value=1, max_value=1024)
    event_retention_days = serializers.IntegerField(min_value=1, max_value=36_500)
    enable_cors = serializers.BooleanField()
    log_level = serializers.ChoiceField(choices=LogLevel.values)


class PlatformConfigPatchSerializer(PlatformConfigSerializer):
    """Any subset of the keys; unknown keys are refused."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.required = False


class PlatformConfigResponseSerializer(serializers.Serializer):
    code = serializers.IntegerField(default=200)
    message = serializers.CharField(default="success")
    config = PlatformConfigSerializer()


class DatabaseConfigSerializer(serializers.Serializer):
    retention_days = serializers.IntegerField(min_value=1, max_value=36_500)
    max_events_per_stream = serializers.IntegerField(min_value=1, max_value=100_000_000)


class DatabaseConfigPatchSerializer(DatabaseConfigSerializer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.required = False


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


class CheckinRequestSerializer(serializers.Serializer):
    access_key = serializers.CharField(help_text='"AKID-" followed by the licence id.')
    secret_key = serializers.CharField(help_text='"sk-<payload>.<signature>", as issued.')


class MessageSerializer(serializers.Serializer):
    code = serializers.IntegerField(default=200)
    message = serializers.CharField()
