"""Events in the admin: records to browse and search, never to edit."""

from __future__ import annotations

import base64

from django.contrib import admin
from django.utils.html import format_html

from .models import Event

# Crops are small; a bigger file is not inlined into the page.
THUMBNAIL_MAX_BYTES = 512 * 1024


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ("timestamp", "stream_id", "analytic_id", "primary_text")
    list_filter = ("analytic_id", "node_num")
    date_hierarchy = "timestamp"
    search_fields = ("primary_text", "secondary_text", "stream_id")
    list_per_page = 50
    readonly_fields = ("thumbnail",)
    # Not the embedding: hundreds of numbers of no use to a reader.
    fields = (
        "thumbnail",
        "event_id",
        "timestamp",
        "stream_id",
        "stream_name",
        "node_num",
        "analytic_id",
        "primary_text",
        "secondary_text",
        "pipeline_data",
        "image",
        "search_text",
    )

    def get_queryset(self, request):
        return super().get_queryset(request).defer("embedding")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        # View-only: every field is shown read-only. Deleting stays possible for clean-ups.
        return False

    @admin.display(description="crop")
    def thumbnail(self, event: Event) -> str:
        # Inlined as a data URI: the image route may require an API token the
        # admin's browser does not send.
        if not event.image:
            return "-"
        try:
            if event.image.size > THUMBNAIL_MAX_BYTES:
                return f"(crop of {event.image.size} bytes, too large to preview)"
            with event.image.open("rb") as handle:
                encoded = base64.b64encode(handle.read()).decode("ascii")
        except OSError:
            return "(crop file missing)"
        return format_html('<img src="data:image/jpeg;base64,{}" style="max-height:160px">', encoded)
