from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
    name = "analytics"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from core.metrics import collector_register

        from . import signals  # noqa: F401  (seats follow the licence)
        from .metrics import CountsCollector
        from .registry import load_plugin_modules
        from .services import analytics_sync_registry

        load_plugin_modules()
        collector_register(CountsCollector())
        post_migrate.connect(analytics_sync_registry, sender=self, dispatch_uid="analytics_sync_registry")
