"""Request bodies without a Content-Length (`Transfer-Encoding: chunked`) are
read before Django sees them.

Django hands DRF no length for such a body and DRF then reads it as empty, so a
valid chunked request was answered as if it had no body. This middleware reads
the body (at most `API_MAX_BODY_BYTES`, 413 beyond, as BodySizeMiddleware does
for a declared length) and passes it on as one message with its Content-Length.
Bodies that declare their length pass through untouched.
"""

from __future__ import annotations

import json

from django.conf import settings


def _too_large_response(limit: int) -> tuple[dict, dict]:
    body = json.dumps({"code": 413, "message": f"request body is too large (limit {limit} bytes)"}).encode()
    start = {
        "type": "http.response.start",
        "status": 413,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ],
    }
    return start, {"type": "http.response.body", "body": body, "more_body": False}


class BufferedBodyMiddleware:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or any(name == b"content-length" for name, _ in scope["headers"]):
            return await self.app(scope, receive, send)
        limit = settings.API_MAX_BODY_BYTES
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None  # the client left before sending its whole body
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                for event in _too_large_response(limit):
                    await send(event)
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        headers = [(name, value) for name, value in scope["headers"] if name != b"transfer-encoding"]
        headers.append((b"content-length", str(len(body)).encode()))
        replayed = False

        async def replay():
            # The body once, then the client's own messages (Django listens for
            # http.disconnect while it streams a response).
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app({**scope, "headers": headers}, replay, send)
