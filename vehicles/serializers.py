"""Request validation and response shapes of the registered-vehicle routes; the
admin and the CSV import validate a vehicle with the same serializers.

Input fields are strict: a string field takes a JSON string only, unknown keys
are refused, and lengths are checked on the text as sent (then it is stripped),
so what the OpenAPI document allows is exactly what is accepted."""

from __future__ import annotations

from typing import Any

from django.core.validators import RegexValidator
from rest_framework import serializers

from analytics.plates.formats import normalise
from core.validation import DrfWordedInputSerializer, StrictCharField

from .models import PLATE_MAX_LENGTH, PLATE_NUMBER_MAX_LENGTH
from .services import NAME_RE, NAME_RULE

# Field -> most characters (the model's columns).
DETAIL_LIMITS = {"unique_id": 64, "name": 200, "type": 64, "brand": 64, "color": 64, "status": 64}
DETAIL_HELP = {
    "unique_id": "The vehicle's id in another system.",
    "name": "The owner.",
    "type": "e.g. car, motorcycle.",
    "brand": "",
    "color": "",
    "status": "Free text such as blacklist or whitelist.",
}
PLATE_MIN_CHARS = 2


def _no_control_characters(value: str) -> None:
    if any(ord(char) < 32 or ord(char) == 127 for char in value):
        raise serializers.ValidationError("it must not contain control characters")


def _text(**kwargs) -> StrictCharField:
    """A string field as the vehicle routes check it: only the empty string is
    blank (a plate of spaces is refused by its own rule)."""
    return StrictCharField(
        spaces_are_blank=False,
        messages={"type": "{field}: it must be a string"},
        **kwargs,
    )


def plate_number_clean(value: str) -> str:
    """The plate as given, stripped, spaces collapsed; refused when it does not hold
    2 to 15 letters and digits (A-Z, 0-9) once spaces and dashes are left out."""
    _no_control_characters(value)
    plate = normalise(value)
    if not PLATE_MIN_CHARS <= len(plate) <= PLATE_MAX_LENGTH:
        raise serializers.ValidationError(
            f"it must hold {PLATE_MIN_CHARS} to {PLATE_MAX_LENGTH} letters (A-Z) or digits "
            "once spaces and punctuation are left out"
        )
    return " ".join(value.split())


def _plate_field(required: bool) -> StrictCharField:
    return _text(
        required=required,
        max_length=PLATE_NUMBER_MAX_LENGTH,
        help_text="As written, e.g. `B 1234 XYZ`: 2 to 15 letters or digits besides spaces and dashes. "
        "Unique in the list once spaces, dashes and case are left out.",
    )


def _detail_field(name: str) -> StrictCharField:
    return _text(
        required=False,
        allow_blank=True,
        max_length=DETAIL_LIMITS[name],
        help_text=DETAIL_HELP[name] or None,
    )


class _VehicleFieldsSerializer(DrfWordedInputSerializer):
    unique_id = _detail_field("unique_id")
    name = _detail_field("name")
    type = _detail_field("type")
    brand = _detail_field("brand")
    color = _detail_field("color")
    status = _detail_field("status")

    def validate_plate_number(self, value: str) -> str:
        return plate_number_clean(value)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        for name in DETAIL_LIMITS:
            if name in attrs:
                try:
                    _no_control_characters(attrs[name])
                except serializers.ValidationError as exc:
                    raise serializers.ValidationError({name: exc.detail}) from None
                attrs[name] = attrs[name].strip()
        return attrs


class VehicleCreateSerializer(_VehicleFieldsSerializer):
    """A vehicle to register: the fields of Nodeflux's dashboard; unknown fields are refused."""

    plate_number = _plate_field(required=True)


class VehicleUpdateSerializer(_VehicleFieldsSerializer):
    """Any subset of the create fields; `{}` is valid; unknown fields are refused."""

    plate_number = _plate_field(required=False)


class VehicleListCreateSerializer(DrfWordedInputSerializer):
    """A new list of registered vehicles."""

    list_name = _text(
        max_length=64,
        validators=[RegexValidator(NAME_RE, f"it must be {NAME_RULE}")],
        help_text=NAME_RULE + ".",
    )


class VehicleQuerySerializer(serializers.Serializer):
    """The filters of GET /vehicle-lists/{list_name}/vehicles. Unknown parameters are refused by the view."""

    plate = serializers.CharField(
        required=False,
        max_length=PLATE_NUMBER_MAX_LENGTH,
        help_text="Vehicles of this plate, whatever its spacing and case, with OCR confusions "
        "(I/1, O/0, B/8, S/5, Z/2, G/6) or one character missing: exact matches first, in one page.",
    )
    name = serializers.CharField(
        required=False, max_length=200, help_text="Owner's name containing this text (case-insensitive)."
    )
    status = serializers.CharField(required=False, max_length=64, help_text="This status (case-insensitive).")
    limit = serializers.IntegerField(required=False, default=100, min_value=1, max_value=1000)
    cursor = serializers.CharField(
        required=False,
        max_length=PLATE_MAX_LENGTH,
        help_text="`next_cursor` of the previous page, unchanged.",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        for name in ("plate", "name", "status", "cursor"):
            if name in attrs:
                try:
                    _no_control_characters(attrs[name])
                except serializers.ValidationError as exc:
                    raise serializers.ValidationError({name: exc.detail}) from None
        if "plate" in attrs and "cursor" in attrs:
            raise serializers.ValidationError({"cursor": "a plate search answers in one page"})
        return attrs


# --- responses -------------------------------------------------------------------


class VehicleSerializer(serializers.Serializer):
    vehicle_id = serializers.IntegerField(source="pk")
    list_name = serializers.CharField(source="vehicle_list.name")
    plate_number = serializers.CharField()
    unique_id = serializers.CharField()
    name = serializers.CharField()
    type = serializers.CharField()
    brand = serializers.CharField()
    color = serializers.CharField()
    status = serializers.CharField()


class VehicleFoundSerializer(VehicleSerializer):
    match = serializers.ChoiceField(
        choices=["exact", "confusable", "missing"],
        allow_null=True,
        help_text="With `plate`: how the vehicle's plate matches it (the same plate; the same but for "
        "OCR confusions; one character more). Null without `plate`.",
    )


class VehicleListItemSerializer(serializers.Serializer):
    list_name = serializers.CharField(source="name")
    vehicle_count = serializers.IntegerField()


class VehicleListsResponseSerializer(serializers.Serializer):
    code = serializers.IntegerField(default=200)
    message = serializers.CharField(default="success")
    lists = VehicleListItemSerializer(many=True)


class VehicleListCreatedSerializer(serializers.Serializer):
    code = serializers.IntegerField(default=200)
    message = serializers.CharField(default="vehicle list successfully created")
    list_name = serializers.CharField()


class VehicleListDeletedSerializer(serializers.Serializer):
    code = serializers.IntegerField(default=200)
    message = serializers.CharField(default="vehicle list successfully deleted")
    list_name = serializers.CharField()
    deleted_vehicles = serializers.IntegerField()


class VehiclePageSerializer(serializers.Serializer):
    code = serializers.IntegerField(default=200)
    message = serializers.CharField(default="success")
    vehicles = VehicleFoundSerializer(many=True)
    next_cursor = serializers.CharField(allow_null=True, help_text="Null on the last page.")


class VehicleResponseSerializer(serializers.Serializer):
    code = serializers.IntegerField(default=200)
    message = serializers.CharField()
    vehicle = VehicleSerializer()


class VehicleDeletedSerializer(serializers.Serializer):
    code = serializers.IntegerField(default=200)
    message = serializers.CharField(default="vehicle successfully deleted")
    vehicle_id = serializers.IntegerField()
