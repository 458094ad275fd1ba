from django.apps import AppConfig


class WorkersConfig(AppConfig):
    name = "workers"

    def ready(self) -> None:
        from core.metrics import collector_register

        from . import signals  # noqa: F401  (starts the node agent in Celery workers)
        from .metrics import RuntimeCollector

        collector_register(RuntimeCollector())
