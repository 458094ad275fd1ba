from django.apps import AppConfig


class ViewingConfig(AppConfig):
    """Live viewing: MJPEG, snapshots and the visual page of a stream, served from
    the frames its runner publishes while someone watches. No models."""

    name = "viewing"
