"""One way to validate input: every route's body or query string is one DRF
serializer, which both checks it and is its OpenAPI description (drf-spectacular
reads the same fields), so the document cannot drift from what is enforced.

Why DRF serializers and not pydantic: the routes are DRF views and the OpenAPI
document is drf-spectacular's, which describes serializers natively; pydantic
stays where it describes an analytic's pipeline config, which is served as a
JSON Schema of its own (`/config/pipeline/{id}`) and validated by the worker
and the API alike without Django.

The contract's messages name the field in their own words (`image_a must be a
JSON object`, `additional_params.candidate_count must be an integer between 1
and 100`): such a message is raised with `refuse` and answered as it is; any
other message is prefixed with the field's path (core.errors.validation_message).
Fields check strict JSON types: a string is not a number, true is not 1.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NoReturn

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.fields import empty

from .api import body_object
from .errors import WHOLE_MESSAGE, ApiError, BadRequest, validation_message


def refuse(message: str) -> NoReturn:
    """A validation error whose message names its field itself."""
    raise serializers.ValidationError(message, code=WHOLE_MESSAGE)


def refuse_input(message: str) -> NoReturn:
    """`refuse`, from a serializer's own `to_internal_value` (its errors must be a
    mapping: DRF builds `errors` from it)."""
    raise serializers.ValidationError({"non_field_errors": [message]}, code=WHOLE_MESSAGE)


def field_path(field) -> str:
    """`additional_params.name`: the field's names from the body's root."""
    names = []
    node = field
    while node is not None and node.parent is not None:
        if node.field_name:
            names.append(node.field_name)
        node = node.parent
    return ".".join(reversed(names))


def checked(check: Callable[..., Any], *args, **kwargs) -> Any:
    """Run a service's own check inside a field: its 400 becomes the field's
    error, so the first error in field order is still the one answered."""
    try:
        return check(*args, **kwargs)
    except ApiError as exc:
        if exc.status != 400:
            raise
        refuse(exc.message)


class InputSerializer(serializers.Serializer):
    # A JSON object with only the declared keys: unknown keys are refused, then
    # missing required ones (in `required_order`, else declaration order), then each
    # field's value in declaration order, then `validate()`. The wording is set per
    # route by the attributes below. (Comments, not a docstring: a docstring would
    # describe every subclass in the OpenAPI document.)

    # Templates: {field} is the object's path (empty at the root), {names} the unknown
    # keys sorted, {first} the first of them, {given} the first unknown key in the
    # order sent, {allowed} the declared keys sorted.
    unknown_message = "unknown field(s): {names}"
    unknown_name_max = 40
    required_message = "{field}: this field is required"
    not_object_message = "{field} must be a JSON object"
    null_as_empty = False  # a nested object given as null counts as {}
    # False: each field answers its own absence, in declaration order, instead.
    required_first = True
    required_order: tuple[str, ...] = ()
    # The strict fields answer null as a value of the wrong type; False: DRF's own
    # "This field may not be null." (a field's `null_is_wrong_type` overrides it).
    null_is_wrong_type = True

    def run_validation(self, data=empty):
        if data is None and self.null_as_empty:
            data = {}
        return super().run_validation(data)

    def _join(self, path: str, name: str) -> str:
        return f"{path}.{name}" if path else name

    def to_internal_value(self, data: Any) -> Any:
        path = field_path(self)
        if not isinstance(data, Mapping):
            refuse_input(self.not_object_message.format(field=path or "the body"))
        given = [str(name) for name in data if name not in self.fields]
        if given:
            unknown = sorted(given)
            limit = self.unknown_name_max
            message = self.unknown_message.format(
                names=", ".join(name[:limit] for name in unknown),
                first=unknown[0][:60],
                given=given[0][:60],
                allowed=", ".join(sorted(self.fields)),
            )
            refuse_input(f"{path}: {message}" if path else message)
        order = self.required_order or [name for name, field in self.fields.items() if field.required]
        for name in order if self.required_first else ():
            if name not in data:
                refuse_input(self.required_message.format(field=self._join(path, name)))
        return super().to_internal_value(data)


class DrfWordedInputSerializer(InputSerializer):
    # The wording of routes that answer in DRF's words: the first unknown key as
    # sent (`unknown field 'x'`), and each field its own absence or null
    # ("This field is required.", "This field may not be null."), in declaration order.
    unknown_message = "unknown field '{given}'"
    required_first = False
    null_is_wrong_type = False


def _valid(serializer: serializers.Serializer) -> dict[str, Any]:
    # A 400 in the contract's words, also where no DRF exception handler runs
    # (the asynchronous viewing routes, services called by the admin).
    if not serializer.is_valid():
        raise BadRequest(validation_message(serializer.errors))
    return serializer.validated_data


def data_validated(serializer_class: type[serializers.Serializer], data: Any, **context) -> dict[str, Any]:
    """`data` (parsed JSON) checked by `serializer_class`, for services that take a
    body from elsewhere than a request (the admin)."""
    return _valid(serializer_class(data=data, context=context))


def validated(serializer_class: type[serializers.Serializer], request, **context) -> dict[str, Any]:
    """The request's JSON body checked by `serializer_class`: its validated data."""
    serializer = serializer_class(data=body_object(request), context={"request": request, **context})
    return _valid(serializer)


def query_validated(
    serializer_class: type[serializers.Serializer], query, *, name_max: int | None = None, **context
) -> dict[str, Any]:
    """A query string checked by `serializer_class`: parameters it does not declare,
    or given twice, are refused first (unknown names cut at `name_max` characters)."""
    allowed = set(serializer_class().fields) | set(context.pop("also_allowed", ()))
    unknown = sorted(set(query) - allowed)
    if unknown:
        raise BadRequest(f"unknown query parameter(s): {', '.join(name[:name_max] for name in unknown)}")
    repeated = sorted(name for name, values in query.lists() if len(values) > 1)
    if repeated:
        raise BadRequest(f"query parameter(s) given more than once: {', '.join(repeated)}")
    serializer = serializer_class(data={name: query[name] for name in query}, context=context)
    return _valid(serializer)


# --- strict JSON fields ----------------------------------------------------------------
# Each takes `message`: the whole text answered for a wrong value ({field} is its path,
# {min}/{max}/{max_length} its bounds); without one, a short text prefixed by the path.
# `messages` sets the whole text of one kind of wrong value (each field says which).
# null is a value of the wrong type, answered with the field's own message, unless
# `null_is_wrong_type` (the field's, else its serializer's) is False: then DRF's own
# "This field may not be null.".


class _Strict:
    default_message = "invalid value"

    def __init__(
        self,
        *args,
        message: str | None = None,
        messages: dict[str, str] | None = None,
        null_is_wrong_type: bool | None = None,
        **kwargs,
    ):
        self.message = message
        self.messages = messages or {}
        self.null_is_wrong_type = null_is_wrong_type
        super().__init__(*args, **kwargs)

    def validate_empty_values(self, data):
        wrong_type = self.null_is_wrong_type
        if wrong_type is None:
            wrong_type = getattr(self.root, "null_is_wrong_type", True)
        if data is None and not self.allow_null and wrong_type:
            return True, self.to_internal_value(data)
        return super().validate_empty_values(data)

    def _refuse(self, message: str | None = None, **values) -> NoReturn:
        template = message or self.message
        if template is None:
            raise serializers.ValidationError(self.default_message.format(**values))
        refuse(template.format(field=field_path(self), **values))


class StrictIntegerField(_Strict, serializers.IntegerField):
    default_message = "must be an integer between {min} and {max}"

    def to_internal_value(self, data: Any) -> int:
        low, high = self.min_value, self.max_value
        if type(data) is not int or (low is not None and data < low) or (high is not None and data > high):
            self._refuse(min=low, max=high)
        return data


class StrictFloatField(_Strict, serializers.FloatField):
    default_message = "must be a number"

    def to_internal_value(self, data: Any) -> float:
        # messages: `range` (a number out of bounds; else as a wrong type).
        low, high = self.min_value, self.max_value
        if isinstance(data, bool) or not isinstance(data, int | float):
            self._refuse(min=low, max=high)
        if (low is not None and data < low) or (high is not None and data > high):
            self._refuse(self.messages.get("range"), min=low, max=high)
        return data


class StrictBooleanField(_Strict, serializers.BooleanField):
    default_message = "must be true or false"

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self._refuse()
        return data


class StrictCharField(_Strict, serializers.CharField):
    """A JSON string, taken as it is (not trimmed). `messages` may set the whole
    text of `type`, `max_length`, `control` (control characters, refused when
    `allow_control` is false) and `blank` (when `allow_blank` is false: a string of
    spaces only, or with `spaces_are_blank=False` the empty string only)."""

    default_message = "must be a string"

    def __init__(self, *, allow_control=True, spaces_are_blank=True, **kw):
        self.allow_control = allow_control
        self.spaces_are_blank = spaces_are_blank
        kw.setdefault("trim_whitespace", False)
        super().__init__(**kw)

    def run_validation(self, data=empty):
        # CharField checks blank before the type; here to_internal_value does, after it.
        return serializers.Field.run_validation(self, data)

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self._refuse(self.messages.get("type"))
        if not self.allow_blank and not (data.strip() if self.spaces_are_blank else data):
            if "blank" not in self.messages:
                self.fail("blank")
            self._refuse(self.messages["blank"])
        if self.max_length is not None and len(data) > self.max_length and "max_length" in self.messages:
            self._refuse(self.messages["max_length"], max_length=self.max_length)
        if not self.allow_control and any(ord(char) < 32 for char in data):
            self._refuse(self.messages.get("control", "{field} must not contain control characters"))
        return super().to_internal_value(data)


class StrictListField(_Strict, serializers.ListField):
    """A JSON array of `min_length` to `max_length` items. `messages` may set the
    whole text of `type` (not a list, or too short), `max_length` and `item` (an
    item its child refuses)."""

    default_message = "must be a list"

    def to_internal_value(self, data: Any) -> list:
        if not isinstance(data, list) or (self.min_length is not None and len(data) < self.min_length):
            self._refuse(self.messages.get("type"))
        if self.max_length is not None and len(data) > self.max_length:
            self._refuse(self.messages.get("max_length"), max_length=self.max_length)
        try:
            return super().to_internal_value(data)
        except serializers.ValidationError:
            if "item" not in self.messages:
                raise
            self._refuse(self.messages["item"])


@extend_schema_field({"type": "object", "additionalProperties": {}})
class JsonObjectField(_Strict, serializers.JSONField):
    """A free-form JSON object."""

    default_message = "must be a JSON object"

    def to_internal_value(self, data: Any) -> dict:
        if not isinstance(data, dict):
            self._refuse()
        return data


@extend_schema_field({"type": "string"})
class RawField(serializers.Field):
    """Any JSON value, handed on unchecked to a `validate()` that checks it last."""

    def to_internal_value(self, data: Any) -> Any:
        return data


@extend_schema_field({"type": "string", "minLength": 1})
class Base64ImageField(RawField):
    """A base64 JPEG/PNG, decoded by the serializer's `validate()` with
    core.images.image_decode: decoding is the costly check, after every cheap one."""


class StrictChoiceField(_Strict, serializers.ChoiceField):
    default_message = "must be one of {choices}"

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, str) or data not in self.choices:
            self._refuse(choices=", ".join(str(choice) for choice in self.choices))
        return data
