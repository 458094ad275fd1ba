"""Admin for nodes, the platform configuration and the licence check-in. The
configuration changes through the services behind POST /config/platform and
PUT /config/database, so it is checked exactly as there."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.db import transaction

from core.admin import ServiceSavedAdmin
from core.errors import ApiError

from . import services
from .models import LicenceCheckin, Node, PlatformConfig
from .selectors import platform_config_get
from .serializers import DatabaseConfigPatchSerializer, PlatformConfigPatchSerializer


def _wire_fields(serializer_class) -> dict[str, str]:
    """Wire key -> PlatformConfig field, as the route's serializer declares them."""
    return {name: field.source for name, field in serializer_class().fields.items()}


def _config_bodies(changes: dict) -> tuple[dict, dict]:
    """The changed fields as the two routes' bodies (wire key -> value)."""
    platform_fields = _wire_fields(PlatformConfigPatchSerializer)
    platform = {name: changes[field] for name, field in platform_fields.items() if field in changes}
    covered = {platform_fields[name] for name in platform}  # retention is in both
    database = {
        name: changes[field]
        for name, field in _wire_fields(DatabaseConfigPatchSerializer).items()
        if field in changes and field not in covered
    }
    return platform, database


def _config_error_field(message: str) -> str | None:
    # The services' messages name the wire key ("invalid configuration value: <key> must …").
    detail = message.partition(": ")[2]
    for serializer_class in (PlatformConfigPatchSerializer, DatabaseConfigPatchSerializer):
        for name, field in _wire_fields(serializer_class).items():
            if detail.startswith(f"{name} "):
                return field
    return None


class PlatformConfigAdminForm(forms.ModelForm):
    class Meta:
        model = PlatformConfig
        fields = [
            "max_streams_per_node",
            "event_retention_days",
            "max_events_per_stream",
            "enable_cors",
            "log_level",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The routes' serializers hold the limits (and their messages): the model's own
        # bounds would refuse first, in other words.
        for name in ("max_streams_per_node", "event_retention_days", "max_events_per_stream"):
            field = self.fields[name]
            field.validators = []
            field.min_value = field.max_value = None
            field.widget.attrs.pop("min", None)
            field.widget.attrs.pop("max", None)
        self.saved = None

    def _post_clean(self):
        # After every field and model check: only a valid form reaches the service.
        super()._post_clean()
        cleaned = self.cleaned_data
        if self.errors:
            return
        changes = {name: cleaned[name] for name in self.changed_data if name in cleaned}
        platform, database = _config_bodies(changes)
        try:
            # Both or neither: the two services' transactions nest in this one.
            with transaction.atomic():
                if platform:
                    services.platform_config_update(data=platform)
                if database:
                    services.database_config_update(data=database)
        except ApiError as exc:
            self.add_error(_config_error_field(exc.message), exc.message)
            return
        self.saved = services.platform_config_current()


@admin.register(PlatformConfig)
class PlatformConfigAdmin(ServiceSavedAdmin):
    """The single configuration row: edited, never added (it exists from the
    first read) nor deleted; the services apply an edit (they also tell every
    process to reload once committed)."""

    form = PlatformConfigAdminForm
    list_display = ["__str__", "max_streams_per_node", "event_retention_days", "enable_cors", "log_level"]
    fields = [
        "deployment_key",
        "max_streams_per_node",
        "event_retention_days",
        "max_events_per_stream",
        "enable_cors",
        "log_level",
        "updated_at",
    ]
    # The deployment key identifies the install to the licence issuer: set once, at the first read.
    readonly_fields = ["deployment_key", "updated_at"]

    def changelist_view(self, request, extra_context=None):
        platform_config_get()  # a fresh install gets its row, as the API's first read gives it
        return super().changelist_view(request, extra_context)

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(LicenceCheckin)
class LicenceCheckinAdmin(admin.ModelAdmin):
    """Check in and clear through the API (it verifies the signature and moves
    seats); here the licence is for reading."""

    list_display = ["access_key", "deployment_key", "status", "issued_at", "expires_at", "last_checkin_at"]
    list_filter = ["status"]
    search_fields = ["access_key", "deployment_key"]
    readonly_fields = [
        "access_key",
        "secret_key",
        "deployment_key",
        "status",
        "issued_at",
        "expires_at",
        "last_checkin_at",
    ]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(Node)
class NodeAdmin(admin.ModelAdmin):
    list_display = ["num", "name", "ip_address", "registered_at", "last_started_at"]
    search_fields = ["name", "ip_address"]
    readonly_fields = ["ip_address", "registered_at", "last_started_at"]
