from django.apps import AppConfig


class StreamsConfig(AppConfig):
    name = "streams"

    def ready(self) -> None:
        from core.metrics import collector_register

        from .metrics import StreamsCollector

        collector_register(StreamsCollector())
