"""Admin for analytics (mirrors of code) and their seats: both read-only."""

from __future__ import annotations

from django.contrib import admin

from .models import Analytic, Seat


@admin.register(Analytic)
class AnalyticAdmin(admin.ModelAdmin):
    """Rows follow the plugins registered in code, so nothing here is editable."""

    list_display = ["id", "name", "major_version", "minor_version", "publisher", "type", "installed"]
    list_filter = ["installed", "type", "publisher"]
    search_fields = ["id", "name", "description"]

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Seat)
class SeatAdmin(admin.ModelAdmin):
    list_display = ["serial_number", "analytic", "source", "active", "pipeline"]
    list_filter = ["source", "active", "analytic"]
    search_fields = ["serial_number"]
    list_select_related = ["analytic", "pipeline"]

    # Seats come from the community allowance and the licence check-in, and are
    # taken and freed by pipeline create/delete (analytics.services): never by hand.
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
