"""WebSocket routes: the live event channel."""

from events.routing import websocket_urlpatterns as event_routes

websocket_urlpatterns: list = [*event_routes]
