"""Admin for the registered vehicles. Every change goes through the services the
routes call, after the routes' own checks (the same serializers), so the admin
cannot store what the API would refuse; a refusal is shown on its field with the
API's message. The search box finds plates as the API does (spacing, case, OCR
confusions, one missing character) and owners by name."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.db.models import Count

from core.admin import ServiceSavedAdmin
from core.errors import ApiError, NotFound, validation_message

from . import selectors, services
from .models import Vehicle, VehicleList
from .serializers import (
    DETAIL_LIMITS,
    VehicleCreateSerializer,
    VehicleListCreateSerializer,
    VehicleUpdateSerializer,
)

VEHICLE_FIELDS = ("plate_number", *DETAIL_LIMITS)
MAX_PLATE_HITS = 1000


class VehicleListAdminForm(forms.ModelForm):
    class Meta:
        model = VehicleList
        fields = ("name",)

    def _post_clean(self):
        # Created by the service behind POST /vehicle-lists (name rule, limit, uniqueness).
        super()._post_clean()
        self.saved = self.instance
        if self.errors or not self.instance._state.adding:
            return
        serializer = VehicleListCreateSerializer(data={"list_name": self.cleaned_data["name"]})
        if not serializer.is_valid():
            self.add_error("name", validation_message(serializer.errors))
            return
        try:
            self.saved = services.list_create(name=serializer.validated_data["list_name"])
        except ApiError as exc:
            self.add_error("name", exc.message)

    def validate_unique(self):
        pass  # the service refuses a taken name, in the API's words


@admin.register(VehicleList)
class VehicleListAdmin(ServiceSavedAdmin):
    form = VehicleListAdminForm
    list_display = ("name", "vehicles", "created_at")
    search_fields = ("name",)

    def get_readonly_fields(self, request, obj=None):
        # Pipelines and clients name a list: it is not renamed.
        return ["name", "created_at"] if obj is not None else ["created_at"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(vehicle_count=Count("vehicles"))

    @admin.display(description="vehicles", ordering="vehicle_count")
    def vehicles(self, vehicle_list: VehicleList) -> int:
        return vehicle_list.vehicle_count

    def delete_model(self, request, obj):
        services.list_delete(vehicle_list=obj)

    def delete_queryset(self, request, queryset):
        for vehicle_list in queryset:
            self.delete_model(request, vehicle_list)


class VehicleAdminForm(forms.ModelForm):
    class Meta:
        model = Vehicle
        fields = ("vehicle_list", *VEHICLE_FIELDS)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The text as typed goes to the API's checks (which strip it after checking).
        for name in VEHICLE_FIELDS:
            if name in self.fields:
                self.fields[name].strip = False
        self.saved: Vehicle | None = None

    def _get_validation_exclusions(self):
        # One vehicle per plate in a list is the service's to refuse, in the API's words.
        exclude = super()._get_validation_exclusions()
        exclude.update(VEHICLE_FIELDS)
        return exclude

    def _post_clean(self):
        super()._post_clean()
        if self.errors:
            return
        adding = self.instance._state.adding
        body = {
            name: self.cleaned_data.get(name) or ""
            for name in VEHICLE_FIELDS
            if adding or name in self.changed_data
        }
        serializer = (VehicleCreateSerializer if adding else VehicleUpdateSerializer)(data=body)
        if not serializer.is_valid():
            for name, errors in serializer.errors.items():
                field = name if name in self.fields else None
                self.add_error(field, validation_message({name: errors}))
            return
        data = dict(serializer.validated_data)
        try:
            if adding:
                self.saved = services.vehicle_create(vehicle_list=self.cleaned_data["vehicle_list"], **data)
            else:
                self.saved = services.vehicle_update(vehicle=self.instance, **data)
        except ApiError as exc:
            self.add_error("plate_number", exc.message)


@admin.register(Vehicle)
class VehicleAdmin(ServiceSavedAdmin):
    form = VehicleAdminForm
    list_display = ("plate_number", "vehicle_list", "name", "status", "type", "brand", "color", "unique_id")
    list_filter = ("vehicle_list", "status", "type", "brand", "color")
    list_select_related = ("vehicle_list",)
    search_fields = ("name",)  # the search box; get_search_results does the searching
    search_help_text = (
        "A plate (spacing, case and OCR confusions aside, one character may be missing) or an owner's name."
    )
    readonly_fields = ("plate", "search_key", "created_at", "updated_at")
    list_per_page = 100

    def get_fields(self, request, obj=None):
        fields = ["vehicle_list", *VEHICLE_FIELDS]
        return fields if obj is None else [*fields, "plate", "search_key", "created_at", "updated_at"]

    def get_readonly_fields(self, request, obj=None):
        # A vehicle stays in its list: another list is another registration.
        fields = list(super().get_readonly_fields(request, obj))
        return [*fields, "vehicle_list"] if obj is not None else fields

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        if any(ord(char) < 32 for char in term):
            return queryset.none(), False  # no stored text has control characters (nor can a query hold NUL)
        by_plate = [hit.vehicle.pk for hit in selectors.vehicles_by_plate(plate=term, limit=MAX_PLATE_HITS)]
        by_owner = selectors.vehicles_filter(Vehicle.objects.all(), name=term).values("pk")
        return queryset.filter(pk__in=by_plate) | queryset.filter(pk__in=by_owner), False

    def delete_model(self, request, obj):
        try:
            services.vehicle_delete(vehicle=obj)
        except NotFound:
            pass  # deleted meanwhile

    def delete_queryset(self, request, queryset):
        for vehicle in queryset:
            self.delete_model(request, vehicle)
