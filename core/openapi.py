"""OpenAPI pieces shared by every app: the error body's schema, a hook that
documents the 401 answer of routes behind the optional bearer token, and one
that describes the path parameters every app shares in one way."""

from __future__ import annotations

from django.conf import settings
from rest_framework import serializers


class ErrorSerializer(serializers.Serializer):
    """The contract's error body: `{"code": <HTTP status>, "message": <text>}`."""

    code = serializers.IntegerField()
    message = serializers.CharField()

    class Meta:
        ref_name = "Error"


_UNAUTHORIZED = {
    "description": "API tokens are configured and the request has none, or a wrong one.",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}
_OPEN_PATHS = {"/", "/metrics", "/openapi.json", "/docs"}


def add_auth_responses(result, generator, request, public):
    """drf-spectacular post-processing hook: every operation that the token
    middleware guards can answer 401; say so once here instead of in each view."""
    result.setdefault("components", {}).setdefault("schemas", {}).setdefault(
        "Error",
        {
            "type": "object",
            "properties": {"code": {"type": "integer"}, "message": {"type": "string"}},
            "required": ["code", "message"],
        },
    )
    for path, item in result.get("paths", {}).items():
        if path in _OPEN_PATHS:
            continue
        for operation in item.values():
            operation.setdefault("responses", {}).setdefault("401", _UNAUTHORIZED)
            operation.setdefault("security", [{"bearerAuth": []}, {}])
    return result


def _shared_path_parameters() -> dict[str, dict]:
    return {
        "node": {
            "schema": {"type": "integer", "minimum": 0, "maximum": settings.MAX_NODE_NUM},
            "description": "Node number.",
        },
        "stream_id": {
            "schema": {"type": "string", "pattern": "^[0-9a-f]{16}$"},
            "description": "16 lowercase hex characters.",
        },
    }


def describe_path_parameters(result, generator, request, public):
    """drf-spectacular post-processing hook: the URL converters match any path
    segment (so a bad one gets the contract's JSON error, not Django's 404), which
    the generator documents as any string; the views accept only these."""
    shared = _shared_path_parameters()
    for item in result.get("paths", {}).values():
        for operation in item.values():
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "path" and parameter.get("name") in shared:
                    parameter.update(shared[parameter["name"]])
    return result


def _referenced_components(schema, components: dict, found: set[str]) -> None:
    if isinstance(schema, dict):
        ref = schema.get("$ref", "")
        if ref.startswith("#/components/schemas/"):
            name = ref.rsplit("/", 1)[1]
            if name not in found:
                found.add(name)
                _referenced_components(components.get(name, {}), components, found)
        for value in schema.values():
            _referenced_components(value, components, found)
    elif isinstance(schema, list):
        for value in schema:
            _referenced_components(value, components, found)


def close_request_objects(result, generator, request, public):
    """drf-spectacular post-processing hook: request bodies refuse fields they do
    not declare (400 `unknown field(s)`), so their object schemas say
    `additionalProperties: false`; free-form objects (no declared properties) stay open."""
    components = result.get("components", {}).get("schemas", {})
    names: set[str] = set()
    for item in result.get("paths", {}).values():
        for operation in item.values():
            _referenced_components(operation.get("requestBody", {}), components, names)
    for name in names:
        schema = components.get(name, {})
        closable = schema.get("type") == "object" and schema.get("properties")
        if closable and "additionalProperties" not in schema:
            schema["additionalProperties"] = False
    return result
