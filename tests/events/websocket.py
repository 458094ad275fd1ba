"""A WebSocket test client on asgiref's ApplicationCommunicator.

channels.testing.WebsocketCommunicator does the same, except at disconnect:
it waits for the consumer to end, which with the real Redis channel layer
takes up to channels-redis's 5 s blocking read (see `disconnect` below). This
keeps the few calls the tests use and stops the consumer as a server would.
"""

from __future__ import annotations

import json
from urllib.parse import unquote, urlparse

from asgiref.testing import ApplicationCommunicator


class WebsocketCommunicator(ApplicationCommunicator):
    def __init__(self, application, path: str, headers: list[tuple[bytes, bytes]] | None = None):
        parsed = urlparse(path)
        scope = {
            "type": "websocket",
            "path": unquote(parsed.path),
            "query_string": parsed.query.encode(),
            "headers": headers or [],
            "subprotocols": [],
        }
        super().__init__(application, scope)

    async def connect(self, timeout: float = 1) -> tuple[bool, object]:
        """(True, subprotocol) when accepted, (False, close code) when refused."""
        await self.send_input({"type": "websocket.connect"})
        response = await self.receive_output(timeout)
        if response["type"] == "websocket.close":
            return False, response.get("code", 1000)
        assert response["type"] == "websocket.accept", response
        return True, response.get("subprotocol")

    async def send_to(self, text_data: str) -> None:
        await self.send_input({"type": "websocket.receive", "text": text_data})

    async def receive_json_from(self, timeout: float = 1):
        response = await self.receive_output(timeout)
        assert response["type"] == "websocket.send", response
        return json.loads(response["text"])

    async def disconnect(self, code: int = 1000) -> None:
        """Tell the consumer the socket closed, then stop it.

        The consumer leaves its groups at once, but its pending channel-layer read
        ends only when Redis's blocking pop times out (5 s): redis-py shields a
        command in flight from cancellation. So the test stops the task, as the
        server's own shutdown would, instead of waiting those seconds.
        """
        await self.send_input({"type": "websocket.disconnect", "code": code})
        await self.wait(timeout=0.1)
