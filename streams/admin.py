"""Admin for streams and pipelines. Every change goes through the services the
API calls (streams.services), after the API's own input checks, so the admin
can neither store what the API would refuse nor skip the node's control
message; a refusal is shown as a form error with the API's message. Live state
is read through the selectors behind GET /streams and GET /pipeline."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from analytics.models import Analytic, Seat
from analytics.selectors import analytic_config_schema
from core.admin import ServiceSavedAdmin
from core.errors import ApiError, NotFound, validation_message
from platform_config.nodes import system_restart_request

from . import selectors, services
from .models import Pipeline, Stream
from .serializers import STREAM_FIELD_MAP, StreamCreateSerializer, StreamUpdateSerializer, stream_changes

# Model field -> the API's name for it (the inverse of the serializers' map).
API_FIELD = {model: api for api, model in STREAM_FIELD_MAP.items()}


def _stream_error_field(message: str) -> str | None:
    # The service's messages name what they refuse; the form shows each on its field.
    if message.startswith(("Invalid stream_address", "stream cannot be opened")):
        return "address"
    if "max_streams_per_node" in message:
        return "node"
    return None


def stream_live(stream: Stream) -> dict[str, Any]:
    """The stream's live figures as GET /streams/{node}/{id} serves them, read once
    per row; with Redis unreachable the state is UNKNOWN and the error says why."""
    cached = getattr(stream, "_admin_live", None)
    if cached is None:
        try:
            cached = dict(selectors.stream_stats_get(stream=stream))
        except ApiError as exc:
            cached = {"state": "UNKNOWN", "fps": "-", "reconnects": "-", "last_error_msg": exc.message}
        stream._admin_live = cached
    return cached


def pipeline_live(pipeline: Pipeline) -> dict[str, Any]:
    cached = getattr(pipeline, "_admin_live", None)
    if cached is None:
        try:
            cached = dict(selectors.pipeline_stats_get(pipeline=pipeline))
        except ApiError as exc:
            cached = {
                "state": "UNKNOWN",
                "processed_fps": "-",
                "events_emitted": "-",
                "last_error": exc.message,
            }
        pipeline._admin_live = cached
    return cached


def _seat_serial(pipeline: Pipeline) -> str:
    try:
        return pipeline.seat.serial_number
    except Seat.DoesNotExist:
        return "-"


# --- streams ---------------------------------------------------------------------


class StreamAdminForm(forms.ModelForm):
    check_capability = forms.BooleanField(
        required=False,
        help_text="Open the source and read one frame before saving (the API's check_capability).",
    )

    class Meta:
        model = Stream
        fields = ("node", "name", "address", "latitude", "longitude", "custom_data", "active")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The API takes text as sent: a stray space is the address policy's to refuse.
        for name in ("name", "address"):
            if name in self.fields:
                self.fields[name].strip = False
        self.saved: Stream | None = None

    def _post_clean(self):
        # After every field and model check: only a valid form reaches the service.
        super()._post_clean()
        cleaned = self.cleaned_data
        if self.errors:
            return
        adding = self.instance._state.adding
        # As a PUT: only what was changed is sent (an unchanged address is not re-checked).
        body = {
            API_FIELD[name]: cleaned.get(name)
            for name in API_FIELD
            if name in self.fields and (adding or name in self.changed_data)
        }
        if body.get("stream_custom_data", {}) is None:
            body["stream_custom_data"] = {}
        if cleaned.get("check_capability"):
            body["check_capability"] = True
        serializer = (StreamCreateSerializer if adding else StreamUpdateSerializer)(data=body)
        if not serializer.is_valid():
            for name, errors in serializer.errors.items():
                field = STREAM_FIELD_MAP.get(name)
                self.add_error(field if field in self.fields else None, validation_message({name: errors}))
            return
        data = serializer.validated_data
        check = data.get("check_capability", False)
        try:
            if adding:
                self.saved = services.stream_create(
                    node=cleaned["node"], check_capability=check, **stream_changes(data)
                )
            else:
                self.saved = services.stream_update(
                    stream=self.instance, check_capability=check, **stream_changes(data)
                )
        except ApiError as exc:
            self.add_error(_stream_error_field(exc.message), exc.message)


@admin.register(Stream)
class StreamAdmin(ServiceSavedAdmin):
    form = StreamAdminForm
    list_display = (
        "stream_id",
        "name",
        "address",
        "node",
        "active",
        "live_state",
        "live_fps",
        "live_reconnects",
        "live_last_error",
    )
    list_filter = ("node", "active")
    search_fields = ("stream_id", "name", "address")
    list_per_page = 50  # one Redis read per row for its live figures
    readonly_fields = ("stream_id", "live_figures", "pipelines_live", "created_at", "updated_at")
    actions = ("activate", "deactivate", "restart_runners")

    def get_fields(self, request, obj=None):
        fields = [
            "node",
            "name",
            "address",
            "latitude",
            "longitude",
            "custom_data",
            "active",
            "check_capability",
        ]
        if obj is None:
            return fields
        return ["stream_id", *fields, "live_figures", "pipelines_live", "created_at", "updated_at"]

    def get_readonly_fields(self, request, obj=None):
        # The node of an existing stream is fixed, as it is through the API.
        fields = list(super().get_readonly_fields(request, obj))
        return [*fields, "node"] if obj is not None else fields

    # -- live figures --

    @admin.display(description="state")
    def live_state(self, stream: Stream) -> str:
        return stream_live(stream)["state"]

    @admin.display(description="fps")
    def live_fps(self, stream: Stream):
        return stream_live(stream)["fps"]

    @admin.display(description="reconnects")
    def live_reconnects(self, stream: Stream):
        return stream_live(stream)["reconnects"]

    @admin.display(description="last error")
    def live_last_error(self, stream: Stream) -> str:
        return stream_live(stream)["last_error_msg"]

    @admin.display(description="live figures")
    def live_figures(self, stream: Stream) -> str:
        live = stream_live(stream)
        return format_html(
            "<table><tbody>{}</tbody></table>",
            format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", ((k, v) for k, v in live.items())),
        )

    @admin.display(description="pipelines")
    def pipelines_live(self, stream: Stream) -> str:
        pipelines = selectors.stream_pipelines(stream=stream)
        if not pipelines:
            return "-"
        rows = (
            (
                reverse("admin:streams_pipeline_change", args=[pipeline.pk]),
                pipeline.analytic_id,
                _seat_serial(pipeline),
                (live := pipeline_live(pipeline))["state"],
                live["processed_fps"],
                live["events_emitted"],
                live["last_error"],
            )
            for pipeline in pipelines
        )
        return format_html(
            "<table><thead><tr><th>analytic</th><th>seat</th><th>state</th><th>processed fps</th>"
            "<th>events</th><th>last error</th></tr></thead><tbody>{}</tbody></table>",
            format_html_join(
                "",
                '<tr><td><a href="{}">{}</a></td>' + "<td>{}</td>" * 5 + "</tr>",
                rows,
            ),
        )

    # -- deleting, through the service: pipelines go too and their seats are freed --

    def delete_model(self, request, obj):
        try:
            services.stream_delete(stream=obj)
        except NotFound:
            pass  # deleted meanwhile: what was asked for is done

    def delete_queryset(self, request, queryset):
        # Django's default is one queryset delete, which would skip the seats and the stop messages.
        for stream in queryset:
            self.delete_model(request, stream)

    # -- actions --

    def _set_active(self, request, queryset, active: bool) -> None:
        changed = 0
        for stream in queryset.filter(active=not active):
            try:
                services.stream_update(stream=stream, active=active)
            except NotFound:
                continue
            changed += 1
        verb = "activated" if active else "deactivated"
        self.message_user(request, f"{changed} stream(s) {verb}.", messages.SUCCESS)

    @admin.action(description="Activate the selected streams")
    def activate(self, request, queryset):
        self._set_active(request, queryset, True)

    @admin.action(description="Deactivate the selected streams")
    def deactivate(self, request, queryset):
        self._set_active(request, queryset, False)

    @admin.action(description="Restart the stream runners of every node (as POST /system/restart)")
    def restart_runners(self, request, queryset):
        # The contract restarts runners per node, not per stream: the selection only starts it.
        try:
            system_restart_request()
        except ApiError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return
        self.message_user(request, "System restart initiated: every node restarts its stream runners.")


# --- pipelines ---------------------------------------------------------------------


def _schema_help(analytic_id: str) -> str:
    """The analytic's config schema (GET /config/pipeline/{id}): a table of its keys
    with type, default and limits, then the whole JSON Schema."""
    try:
        schema = analytic_config_schema(analytic_id)
    except ApiError as exc:
        return exc.message
    rows = []
    for key, prop in schema.get("properties", {}).items():
        limits = ", ".join(
            f"{name} {prop[name]}"
            for name in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "enum")
            if name in prop
        )
        kind = prop.get("type") or ("array" if "items" in prop else "object")
        rows.append((key, kind, json.dumps(prop.get("default")), limits, prop.get("description", "")))
    return format_html(
        '<div class="pipeline-config-schema" data-analytic="{}"><strong>{}</strong>'
        "<table><thead><tr><th>key</th><th>type</th><th>default</th><th>limits</th><th>description</th></tr>"
        "</thead><tbody>{}</tbody></table>"
        "<details><summary>JSON Schema</summary><pre>{}</pre></details></div>",
        analytic_id,
        analytic_id,
        format_html_join(
            "",
            "<tr><td><code>{}</code></td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
            rows,
        ),
        json.dumps(schema, indent=2),
    )


class PipelineAdminForm(forms.ModelForm):
    config = forms.JSONField(
        required=False,
        initial=dict,
        help_text="A JSON object: missing keys take their defaults, unknown keys are refused.",
        widget=forms.Textarea(attrs={"rows": 14, "cols": 60, "style": "font-family: monospace"}),
    )

    class Meta:
        model = Pipeline
        fields = ("stream", "analytic", "config")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "analytic" in self.fields:
            self.fields["analytic"].queryset = Analytic.objects.filter(installed=True)
        self.saved: Pipeline | None = None

    def _get_validation_exclusions(self):
        # One pipeline per analytic per stream is the service's to refuse, in the API's
        # words; the form's own fields have already checked both exist.
        exclude = super()._get_validation_exclusions()
        exclude.update({"stream", "analytic"})
        return exclude

    def _post_clean(self):
        # After every field and model check: only a valid form reaches the service.
        super()._post_clean()
        cleaned = self.cleaned_data
        if self.errors:
            return
        # An empty box is an empty object, as an empty POST body is.
        config = cleaned.get("config")
        config = {} if config is None else config
        try:
            if self.instance._state.adding:
                self.saved = services.pipeline_create(
                    stream=cleaned["stream"], analytic_id=cleaned["analytic"].pk, config=config
                )
            else:
                self.saved = services.pipeline_update(pipeline=self.instance, config=config)
        except ApiError as exc:
            field = "analytic" if exc.message == "pipeline already exists" else "config"
            self.add_error(field if field in self.fields else None, exc.message)


@admin.register(Pipeline)
class PipelineAdmin(ServiceSavedAdmin):
    form = PipelineAdminForm
    list_display = (
        "id",
        "stream",
        "stream_name",
        "analytic",
        "seat_serial",
        "live_state",
        "live_processed_fps",
        "live_events",
        "created_at",
    )
    list_filter = ("analytic",)
    search_fields = ("stream__stream_id", "stream__name", "analytic__id")
    list_select_related = ("stream", "analytic", "seat")
    list_per_page = 50  # one Redis read per row for its live figures
    raw_id_fields = ("stream",)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["stream", "analytic", ("config", "config_schema")]
        return [
            "stream",
            "analytic",
            ("config", "config_schema"),
            "seat_serial",
            "live_figures",
            "created_at",
        ]

    def get_readonly_fields(self, request, obj=None):
        # Another stream or analytic is another pipeline: delete this one and add that.
        base = ["config_schema", "seat_serial", "live_figures", "created_at"]
        return [*base, "stream", "analytic"] if obj is not None else base

    @admin.display(description="stream name")
    def stream_name(self, pipeline: Pipeline) -> str:
        return pipeline.stream.name

    @admin.display(description="seat")
    def seat_serial(self, pipeline: Pipeline) -> str:
        return _seat_serial(pipeline)

    @admin.display(description="state")
    def live_state(self, pipeline: Pipeline) -> str:
        return pipeline_live(pipeline)["state"]

    @admin.display(description="processed fps")
    def live_processed_fps(self, pipeline: Pipeline):
        return pipeline_live(pipeline)["processed_fps"]

    @admin.display(description="events")
    def live_events(self, pipeline: Pipeline):
        return pipeline_live(pipeline)["events_emitted"]

    @admin.display(description="live figures")
    def live_figures(self, pipeline: Pipeline) -> str:
        return format_html(
            "<table><tbody>{}</tbody></table>",
            format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", pipeline_live(pipeline).items()),
        )

    @admin.display(description="config schema")
    def config_schema(self, pipeline: Pipeline) -> str:
        if pipeline.pk is not None:
            return _schema_help(pipeline.analytic_id)
        # Adding: the schema of each analytic that can be chosen.
        return format_html_join(
            "",
            "{}",
            (
                (_schema_help(analytic_id),)
                for analytic_id in Analytic.objects.filter(installed=True).values_list("pk", flat=True)
            ),
        )

    def delete_model(self, request, obj):
        try:
            services.pipeline_delete(stream=obj.stream, analytic_id=obj.analytic_id)
        except NotFound:
            pass  # deleted meanwhile

    def delete_queryset(self, request, queryset):
        # Not one queryset delete: each seat is freed and each stream reloaded by the service.
        for pipeline in queryset.select_related("stream"):
            self.delete_model(request, pipeline)
