from django.apps import AppConfig


class PlatformConfigConfig(AppConfig):
    name = "platform_config"
    verbose_name = "Platform"

    def ready(self) -> None:
        from . import signals  # noqa: F401  (connects CORS and config-reload hooks)
