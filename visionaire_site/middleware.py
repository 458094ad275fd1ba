"""Cross-cutting HTTP concerns: request ids, bearer-token auth, body size, text
the database cannot store, and outages answered as 503."""

from __future__ import annotations

import contextvars
import logging
import uuid

from django.conf import settings

from core.auth import bearer_token, token_is_valid
from core.errors import error_response
from core.outage import outage_response
from core.parsers import unstorable_text_problem

_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

# Media routes that browsers load from <img>/<iframe>, where no header can be set
# (event crops, /events/<id>/image.jpg, are handled beside these).
_QUERY_TOKEN_PREFIXES = ("/mjpeg/", "/stream_jpeg/", "/visual/", "/event_channel")


class RequestIdLogFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _request_id.get()
        return True


class RequestIdMiddleware:
    """Tags each request (and its log lines) with an id, echoed as X-Request-Id,
    so a 500's message can be matched to the server log."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request_id = request.headers.get("X-Request-Id", "")[:64] or uuid.uuid4().hex[:16]
        request.request_id = request_id
        token = _request_id.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            _request_id.reset(token)
        response["X-Request-Id"] = request_id
        return response


def request_token(path: str, headers, query) -> str:
    """The token a request carries: the bearer header, or `?token=` on media routes."""
    token = bearer_token(headers.get("Authorization", ""))
    if token:
        return token
    is_crop = path.startswith("/events/") and path.endswith("/image.jpg")
    if path.startswith(_QUERY_TOKEN_PREFIXES) or is_crop:
        return query.get("token", "")
    return ""


def path_is_open(path: str) -> bool:
    if path == "/" and settings.API_OPEN_ROOT:
        return True
    if path == "/metrics" and settings.API_OPEN_METRICS:
        return True
    return path.startswith(("/admin/", "/static/"))  # the admin has its own login


class TokenAuthMiddleware:
    """Optional bearer-token auth: off unless VISIONAIRE_API_TOKENS is set."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if settings.API_TOKENS and request.method != "OPTIONS" and not path_is_open(request.path):
            token = request_token(request.path, request.headers, request.GET)
            if not token:
                return error_response(401, "missing API token: send 'Authorization: Bearer <token>'")
            if not token_is_valid(token):
                return error_response(401, "invalid API token")
        return self.get_response(request)


class BodySizeMiddleware:
    """Refuses oversized bodies from their Content-Length before anything reads them."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return error_response(400, "invalid Content-Length header")
        if length > settings.API_MAX_BODY_BYTES:
            return error_response(
                413, f"request body is too large ({length} bytes, limit {settings.API_MAX_BODY_BYTES})"
            )
        return self.get_response(request)


class UnstorableTextMiddleware:
    """The path and query parameters follow the JSON bodies' rule (core.parsers):
    no NUL character, which PostgreSQL cannot store or compare, anywhere."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if "\x00" in request.path:
            return error_response(400, "the path must not contain NUL characters")
        for name, values in request.GET.lists():
            problem = unstorable_text_problem(name)
            if problem:
                return error_response(400, f"query parameter names {problem}")
            for value in values:
                problem = unstorable_text_problem(value)
                if problem:
                    return error_response(400, f"{name[:40]}: {problem}")
        return self.get_response(request)


class OutageMiddleware:
    """Answers 503 for an outage raised by any view (DRF's are answered by its handler first)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        return outage_response(request, exception)
