"""OpenAPI pieces shared by every app: the error body's schema and a hook that
documents the 401 answer of routes behind the optional bearer token."""

from __future__ import annotations

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
