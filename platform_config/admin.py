"""Admin for nodes, the platform configuration and the licence check-in."""

from __future__ import annotations

from django.contrib import admin
from django.db import transaction

from .models import LicenceCheckin, Node, PlatformConfig
from .selectors import platform_config_invalidate


@admin.register(PlatformConfig)
class PlatformConfigAdmin(admin.ModelAdmin):
    """The single configuration row: editable, never added twice nor deleted."""

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

    def get_readonly_fields(self, request, obj=None):
        # The deployment key identifies the install to the licence issuer: set once.
        return ["deployment_key", "updated_at"] if obj is not None else ["updated_at"]

    def has_add_permission(self, request) -> bool:
        return not PlatformConfig.objects.exists() and super().has_add_permission(request)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj, form, change) -> None:
        obj.pk = 1
        super().save_model(request, obj, form, change)
        # Same as the API: every process reloads once the change is committed.
        transaction.on_commit(platform_config_invalidate)


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
