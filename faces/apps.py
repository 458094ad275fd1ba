from django.apps import AppConfig


class FacesConfig(AppConfig):
    name = "faces"
    verbose_name = "Face enrollment"

    def ready(self) -> None:
        from . import signals  # noqa: F401  (photo files follow their rows)
