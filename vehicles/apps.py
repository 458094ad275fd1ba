from django.apps import AppConfig


class VehiclesConfig(AppConfig):
    name = "vehicles"
    verbose_name = "Registered vehicles"

    def ready(self) -> None:
        from analytics.plates.registered import directory_set

        from .services import RegisteredDirectory

        # Plate pipelines and text search look plates up in the lists kept here.
        directory_set(RegisteredDirectory())
