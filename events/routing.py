"""WebSocket routes of the live event channel."""

from django.urls import path

from .consumers import EventChannelConsumer

websocket_urlpatterns = [
    path("event_channel", EventChannelConsumer.as_asgi()),
    path("event_channel/<str:node>/<str:stream_id>", EventChannelConsumer.as_asgi()),
]
