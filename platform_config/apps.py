from django.apps import AppConfig


class PlatformConfigConfig(AppConfig):
    name = "platform_config"
    verbose_name = "Platform"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from core.metrics import collector_register

        from . import signals  # noqa: F401  (connects CORS and config-reload hooks)
        from .metrics import NodesCollector
        from .nodes import node_zero_ensure

        collector_register(NodesCollector())

        # Also after `manage.py flush`, which empties the tables and runs post_migrate.
        post_migrate.connect(node_zero_ensure, sender=self, dispatch_uid="platform_node_zero")
