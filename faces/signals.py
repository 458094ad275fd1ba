"""Photo files follow their rows: a deleted variation's photo and thumbnail are
removed from storage once the deletion commits (by the API, the admin, or a
cascade from its person or keyspace)."""

from __future__ import annotations

from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver

from .models import FaceVariation


@receiver(post_delete, sender=FaceVariation, dispatch_uid="faces_variation_files_delete")
def variation_files_delete(sender, instance: FaceVariation, **_kwargs) -> None:
    from .services import files_delete

    names = [f.name for f in (instance.photo, instance.thumbnail) if f]
    if names:
        transaction.on_commit(lambda: files_delete(names))
