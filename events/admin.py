"""Events in the admin: records to browse, search and export, never to edit.
Crops are served by the events API's own image view behind the admin's login,
so the admin needs no API token and exposes nothing new."""

from __future__ import annotations

import csv
import json

from asgiref.sync import sync_to_async
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import StreamingHttpResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from . import services
from .models import Event
from .serializers import EventSerializer
from .views import EventImageView

# An export is streamed, and bounded so one click cannot walk the whole history.
EXPORT_MAX_EVENTS = 10_000
EXPORT_CHUNK = 500
# The columns of an export: the fields of an event in GET /events, in that order.
EXPORT_FIELDS = tuple(EventSerializer.Meta.fields)


class _Echo:
    """A file-like object whose write returns the line, so csv.writer can feed a
    streaming response (Django's documented pattern)."""

    def write(self, value: str) -> str:
        return value


def _csv_cell(value) -> object:
    # pipeline_data is an object in the API: it is written as the same JSON text.
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    return value


def _export_chunk(event_ids: list) -> list[list]:
    events = Event.objects.filter(pk__in=event_ids).defer("embedding", "search_text")
    bodies = EventSerializer(events.order_by("-timestamp", "-event_id"), many=True).data
    return [[_csv_cell(body[name]) for name in EXPORT_FIELDS] for body in bodies]


async def export_lines(event_ids: list):
    """The export's lines: a header, then one line per event as GET /events gives
    it. Asynchronous, so the ASGI server sends each chunk as it is read instead of
    building the whole file first (it would for a synchronous iterator)."""
    writer = csv.writer(_Echo())
    yield writer.writerow(EXPORT_FIELDS)
    for start in range(0, len(event_ids), EXPORT_CHUNK):
        for row in await sync_to_async(_export_chunk)(event_ids[start : start + EXPORT_CHUNK]):
            yield writer.writerow(row)


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ("thumbnail", "timestamp", "stream_name", "stream_id", "analytic_id", "primary_text")
    list_display_links = ("timestamp",)
    list_filter = ("analytic_id", "node_num")
    date_hierarchy = "timestamp"
    search_fields = ("primary_text", "secondary_text", "stream_id", "stream_name")
    list_per_page = 50
    readonly_fields = ("crop",)
    actions = ("export_csv", "delete_selected")
    # Not the embedding: hundreds of numbers of no use to a reader.
    fields = (
        "crop",
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

    # -- the crop, through the API's image view --

    def get_urls(self):
        urls = [
            path(
                "<path:event_id>/crop.jpg",
                self.admin_site.admin_view(self.crop_view),
                name="events_event_crop",
            )
        ]
        return urls + super().get_urls()

    def crop_view(self, request, event_id: str):
        if not self.has_view_permission(request):
            raise PermissionDenied
        # The same view as GET /events/{id}/image.jpg: same checks, same 404s.
        return EventImageView.as_view()(request, event_id=event_id)

    def _crop_html(self, event: Event, height: int) -> str:
        if not event.image:
            return "-"
        url = reverse("admin:events_event_crop", args=[str(event.event_id)])
        return format_html('<img src="{}" alt="crop" loading="lazy" style="max-height:{}px">', url, height)

    @admin.display(description="crop")
    def thumbnail(self, event: Event) -> str:
        return self._crop_html(event, 64)

    @admin.display(description="crop")
    def crop(self, event: Event) -> str:
        return self._crop_html(event, 240)

    # -- deleting: the rows, then their crops once committed --

    def delete_model(self, request, obj):
        services.events_delete(event_ids=[obj.event_id])

    def delete_queryset(self, request, queryset):
        # Django's default (one queryset delete) would leave the crops behind.
        services.events_delete(event_ids=list(queryset.values_list("event_id", flat=True)))

    # -- export --

    @admin.action(description=f"Export the selected events as CSV (at most {EXPORT_MAX_EVENTS})")
    def export_csv(self, request, queryset):
        count = queryset.count()
        if count > EXPORT_MAX_EVENTS:
            self.message_user(
                request,
                f"{count} events selected: an export holds at most {EXPORT_MAX_EVENTS}. "
                "Narrow the selection (by date, stream or analytic) and export again.",
                messages.ERROR,
            )
            return None
        # The ids only (bounded above), newest first as GET /events lists them; rows follow in chunks.
        event_ids = list(queryset.order_by("-timestamp", "-event_id").values_list("event_id", flat=True))
        response = StreamingHttpResponse(export_lines(event_ids), content_type="text/csv; charset=utf-8")
        name = f"events-{timezone.now():%Y%m%d-%H%M%S}.csv"
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response
