"""Live events over WebSocket (spec/API.md, "Live events").

`/event_channel` joins the group of all events, `/event_channel/{node}/{stream_id}`
the group of one stream; messages come from `events.publisher`. A refused
connection is accepted and then closed with a code a browser can read:

- 4400: bad query parameter, node number or stream id (the close reason says which)
- 4401: API tokens are configured and `?token=` / `Authorization: Bearer` is missing or wrong
- 4404: unknown node or stream
- 4503: PostgreSQL or Redis is unavailable (the reason says which); retry later

Nothing is buffered per client: a client too slow to drain its channel loses
messages at the channel layer's capacity, it never grows this process.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from core.auth import bearer_token, token_is_valid
from core.errors import ApiError, NotFound
from core.outage import outage_message
from platform_config.selectors import node_get
from streams.models import Stream

from .publisher import ALL_EVENTS_GROUP, EventEnvelope, stream_group

STREAM_ID_RE = re.compile(r"^[0-9a-f]{16}$")
QUERY_PARAMETERS = {"analytic_id", "include_image", "token"}
_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}


class Refused(Exception):
    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code = code
        self.reason = reason


def _stream_group_get(raw_node: str, stream_id: str) -> str:
    """The group of a stream named in the path; raises Refused for a bad or unknown one."""
    try:
        node = node_get(raw_node)
    except ApiError as error:
        raise Refused(4000 + error.status, error.message) from None
    if not STREAM_ID_RE.match(stream_id):
        raise Refused(4400, "invalid stream_id: it must be 16 lowercase hex characters")
    if not Stream.objects.filter(stream_id=stream_id, node=node).exists():
        raise Refused(4404, NotFound("stream not found").message)
    return stream_group(node.num, stream_id)


def _token_from_scope(scope, query: dict[str, list[str]]) -> str:
    for name, value in scope.get("headers", []):
        if name.lower() == b"authorization":
            token = bearer_token(value.decode("latin-1"))
            if token:
                return token
    return query.get("token", [""])[-1]


class EventChannelConsumer(AsyncJsonWebsocketConsumer):
    analytic_filter: str | None = None
    include_image: bool = True
    _accepted = False
    _closed = False

    async def __call__(self, scope, receive, send):
        # The channel layer's own read (Redis) runs beside the socket from the
        # start: with Redis gone it fails, and the client is told why (4503)
        # instead of the server dropping the connection with an error.
        try:
            await super().__call__(scope, receive, send)
        except Exception as exc:
            message = outage_message(exc)
            if message is None:
                raise
            if not self._closed:
                if not self._accepted:
                    await self.base_send({"type": "websocket.accept"})
                await self.base_send({"type": "websocket.close", "code": 4503, "reason": message})

    async def accept(self, subprotocol=None, headers=None):
        self._accepted = True
        await super().accept(subprotocol, headers)

    async def close(self, code=None, reason=None):
        self._closed = True
        await super().close(code, reason)

    async def connect(self):
        try:
            group = await self._admit()
            await self.channel_layer.group_add(group, self.channel_name)
        except Refused as refusal:
            await self.accept()
            await self.close(code=refusal.code, reason=refusal.reason[:120])
            return
        except Exception as exc:
            message = outage_message(exc)
            if message is None:
                raise
            # PostgreSQL or Redis is down: the client is told so and may reconnect later.
            await self.accept()
            await self.close(code=4503, reason=message)
            return
        # The base class leaves the groups listed here on disconnect.
        self.groups = [group]
        await self.accept()

    async def _admit(self) -> str:
        try:
            query = parse_qs(self.scope.get("query_string", b"").decode(), keep_blank_values=True)
        except UnicodeDecodeError:
            raise Refused(4400, "the query string is not valid UTF-8") from None
        if settings.API_TOKENS:
            token = _token_from_scope(self.scope, query)
            if not token:
                raise Refused(4401, "missing API token: add ?token=<token>")
            if not token_is_valid(token):
                raise Refused(4401, "invalid API token")
        unknown = sorted(set(query) - QUERY_PARAMETERS)
        if unknown:
            raise Refused(4400, f"unknown query parameter(s): {', '.join(unknown)}")
        if "analytic_id" in query:
            self.analytic_filter = query["analytic_id"][-1] or None
        if "include_image" in query:
            value = query["include_image"][-1].lower()
            if value not in _BOOLEANS:
                raise Refused(4400, "invalid include_image: it must be true or false")
            self.include_image = _BOOLEANS[value]
        kwargs = self.scope["url_route"]["kwargs"]
        if "stream_id" not in kwargs:
            return ALL_EVENTS_GROUP
        return await database_sync_to_async(_stream_group_get)(kwargs["node"], kwargs["stream_id"])

    async def event_message(self, envelope: EventEnvelope):
        message = envelope["message"]
        if self.analytic_filter is not None and message["analytic_id"] != self.analytic_filter:
            return
        if not self.include_image:
            message = {key: value for key, value in message.items() if key != "image_jpeg"}
        await self.send_json(message)

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        """Clients only listen; whatever they send (JSON or not) is ignored."""
