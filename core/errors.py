"""The error contract: every failure answers `{"code": <status>, "message": <text>}`.

Services raise `ApiError` (or a subclass); DRF's own exceptions and Django's
404/500 handlers are translated here, so no route can answer in another shape.
"""

from __future__ import annotations

import logging
import sys

from django.core.exceptions import ImproperlyConfigured, RequestDataTooBig
from django.http import Http404, JsonResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response

logger = logging.getLogger(__name__)


class ApiError(Exception):
    """An error with the HTTP status and the message a client will see."""

    status = 400

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class BadRequest(ApiError):
    status = 400


class NotFound(ApiError):
    status = 404


class Conflict(ApiError):
    status = 409


class PayloadTooLarge(ApiError):
    status = 413


def error_body(status: int, message: str) -> dict:
    return {"code": status, "message": message}


def error_response(status: int, message: str) -> JsonResponse:
    return JsonResponse(error_body(status, message), status=status)


# The code of a validation message that already names its field in the
# contract's words (core.validation.refuse): it is answered as it is.
WHOLE_MESSAGE = "whole"


def validation_message(detail, prefix: str = "") -> str:
    """Flatten DRF's nested validation detail into one line naming the field: the
    first error in the order the fields are declared."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = prefix if key == "non_field_errors" else (f"{prefix}.{key}" if prefix else str(key))
            return validation_message(value, name)
        return "invalid input"
    if isinstance(detail, list):
        if not detail:
            return f"{prefix}: invalid value" if prefix else "invalid input"
        return validation_message(detail[0], prefix)
    text = str(detail)
    if getattr(detail, "code", None) == WHOLE_MESSAGE:
        return text
    return f"{prefix}: {text}" if prefix else text


def exception_handler(exc, context):
    """DRF exception handler producing the contract's error body."""
    if isinstance(exc, ApiError):
        return Response(error_body(exc.status, exc.message), status=exc.status)
    if isinstance(exc, RequestDataTooBig):
        return Response(error_body(413, "request body is too large"), status=413)
    if isinstance(exc, Http404):
        return Response(error_body(404, "not found"), status=404)
    if isinstance(exc, drf_exceptions.ParseError):
        return Response(error_body(400, f"malformed JSON body: {exc.detail}"), status=400)
    if isinstance(exc, drf_exceptions.UnsupportedMediaType):
        return Response(error_body(415, "the body must be JSON (Content-Type: application/json)"), status=415)
    if isinstance(exc, drf_exceptions.MethodNotAllowed):
        return Response(error_body(405, f"method {context['request'].method} not allowed"), status=405)
    if isinstance(exc, drf_exceptions.ValidationError):
        return Response(error_body(400, validation_message(exc.detail)), status=400)
    if isinstance(exc, drf_exceptions.APIException):
        return Response(error_body(exc.status_code, str(exc.detail)), status=exc.status_code)
    if isinstance(exc, ImproperlyConfigured):
        # A setting that cannot work (e.g. the face engine refusing to start): the
        # service is unavailable until an operator fixes what the message names.
        return Response(error_body(503, f"service not available: {exc}"[:1000]), status=503)
    from .outage import outage_message

    message = outage_message(exc)
    if message is not None:  # PostgreSQL or Redis down: 503, and the client may retry
        return Response(error_body(503, message), status=503)
    return None  # Django's 500 handler logs it and answers in the contract's shape.


def handler404(request, exception=None):
    return error_response(404, "not found")


def handler500(request):
    # An outage raised outside a view (in a middleware) still answers 503.
    from .outage import outage_message

    message = outage_message(sys.exc_info()[1]) if sys.exc_info()[1] is not None else None
    if message is not None:
        return error_response(503, message)
    request_id = getattr(request, "request_id", "-")
    return error_response(500, f"internal server error (request id {request_id})")


def handler400(request, exception=None):
    return error_response(400, "bad request")


def handler403(request, exception=None):
    return error_response(403, "forbidden")
