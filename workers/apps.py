from django.apps import AppConfig


class WorkersConfig(AppConfig):
    name = "workers"

    def ready(self) -> None:
        from . import signals  # noqa: F401  (starts the node agent in Celery workers)
