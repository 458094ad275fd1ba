"""Admin for the desired state of streams and pipelines. Seats are handed out
by the pipeline routes, so they are shown here but not edited."""

from __future__ import annotations

from django import forms
from django.contrib import admin

from analytics.models import Seat
from core.errors import ApiError
from live.addresses import address_validate

from . import services
from .models import Pipeline, Stream


class StreamAdminForm(forms.ModelForm):
    class Meta:
        model = Stream
        fields = ("node", "name", "address", "latitude", "longitude", "custom_data", "active")

    def clean_address(self) -> str:
        # The same rules as the API: no file outside the media root from here either.
        address = self.cleaned_data["address"]
        try:
            address_validate(address)
        except ApiError as exc:
            raise forms.ValidationError(exc.message) from None
        return address


def _seat_serial(pipeline: Pipeline) -> str:
    try:
        return pipeline.seat.serial_number
    except Seat.DoesNotExist:
        return "-"


class PipelineInline(admin.TabularInline):
    model = Pipeline
    extra = 0
    fields = ("analytic", "config", "seat_serial", "created_at")
    readonly_fields = ("seat_serial", "created_at")
    show_change_link = True

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("seat", "analytic")

    @admin.display(description="seat")
    def seat_serial(self, pipeline: Pipeline) -> str:
        return _seat_serial(pipeline)


@admin.register(Stream)
class StreamAdmin(admin.ModelAdmin):
    list_display = ("stream_id", "name", "address", "node", "active", "created_at")
    list_filter = ("node", "active")
    search_fields = ("stream_id", "name", "address")
    readonly_fields = ("stream_id", "created_at", "updated_at")
    inlines = [PipelineInline]
    form = StreamAdminForm

    def save_model(self, request, obj, form, change):
        if not obj.stream_id:
            obj.stream_id = services.stream_id_new()
        super().save_model(request, obj, form, change)

    def get_readonly_fields(self, request, obj=None):
        # The node of an existing stream is fixed, as it is through the API.
        fields = list(super().get_readonly_fields(request, obj))
        return [*fields, "node"] if obj is not None else fields


@admin.register(Pipeline)
class PipelineAdmin(admin.ModelAdmin):
    list_display = ("id", "stream", "analytic", "seat_serial", "created_at")
    list_filter = ("analytic",)
    search_fields = ("stream__stream_id", "stream__name", "analytic__id")
    list_select_related = ("stream", "analytic", "seat")
    readonly_fields = ("seat_serial", "created_at")
    raw_id_fields = ("stream",)

    @admin.display(description="seat")
    def seat_serial(self, pipeline: Pipeline) -> str:
        return _seat_serial(pipeline)
