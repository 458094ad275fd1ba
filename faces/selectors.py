"""Reads of the face gallery."""

from __future__ import annotations

from analytics.face.gallery import KeyspaceMissing
from core.errors import NotFound

from .models import Keyspace, Person


class KeyspaceNotFound(NotFound, KeyspaceMissing):
    def __init__(self) -> None:
        super().__init__("keyspace not found")


def keyspace_get(*, name: str) -> Keyspace:
    """The keyspace of that name; 404 "keyspace not found" otherwise."""
    keyspace = Keyspace.objects.filter(name=name).first() if isinstance(name, str) else None
    if keyspace is None:
        raise KeyspaceNotFound()
    return keyspace


def gallery_size(*, keyspace: Keyspace) -> int:
    """Enrolled faces (variations) in a keyspace: what a stranger is compared with
    when a search takes the best variation of each person. Read from the count the
    database keeps beside the keyspace (faces.models.Keyspace.variation_count), as
    of now rather than of when `keyspace` was read."""
    size = Keyspace.objects.filter(pk=keyspace.pk).values_list("variation_count", flat=True).first()
    return size or 0


def enrollment_count() -> int:
    """Enrolled face ids (people) over every keyspace."""
    return Person.objects.count()


def keyspace_count() -> int:
    return Keyspace.objects.count()
