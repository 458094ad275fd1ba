"""Admin for analytics (mirrors of code) and their seats: both read-only."""

from __future__ import annotations

from datetime import UTC, datetime

from django.contrib import admin

from core.admin import ReadOnlyAdmin

from .models import Analytic, AnalyticCount, Seat


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
class SeatAdmin(ReadOnlyAdmin):
    """Seats come from the community allowance and the licence check-in, and are
    taken and freed by pipeline create/delete (analytics.services): never by hand."""

    list_display = ["serial_number", "analytic", "source", "active", "pipeline"]
    list_filter = ["source", "active", "analytic"]
    search_fields = ["serial_number"]
    list_select_related = ["analytic", "pipeline"]


@admin.register(AnalyticCount)
class AnalyticCountAdmin(ReadOnlyAdmin):
    """Counts over time, as the analytics stored them: read-only."""

    list_display = ["minute", "stream_id", "analytic_id", "zone", "label", "direction", "value"]
    list_filter = ["analytic_id", "direction", "label"]
    search_fields = ["stream_id", "zone"]
    list_per_page = 100
    show_full_result_count = False  # the table is large; counting it all would cost a scan

    @admin.display(description="minute (UTC)", ordering="minute_ms")
    def minute(self, obj: AnalyticCount) -> str:
        return datetime.fromtimestamp(obj.minute_ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")
