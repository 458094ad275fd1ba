from django.apps import AppConfig


class FacesConfig(AppConfig):
    name = "faces"
    verbose_name = "Face enrollment"

    def ready(self) -> None:
        from analytics.face.engine import embedding_store_check_set
        from analytics.face.gallery import gallery_set

        from . import signals  # noqa: F401  (photo files follow their rows)
        from .reembed import embedding_store_check
        from .services import EnrolledGallery

        # Face-recognition pipelines match against the people enrolled here.
        gallery_set(EnrolledGallery())
        # The face engine refuses to start when the stored vectors have another size.
        embedding_store_check_set(embedding_store_check)
