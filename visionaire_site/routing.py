"""WebSocket routes (the live event channel arrives with the events work)."""

websocket_urlpatterns: list = []
