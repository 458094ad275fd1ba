"""Who is enrolled: the face-recognition analytic matches each track's face
against a gallery it does not own.

The enrollment app (faces) keeps the people and their faces and registers its
gallery when it starts (`gallery_set`, from faces/apps.py); analytics never
imports it. Without a registered gallery nobody is enrolled: every face is
UNKNOWN.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


class KeyspaceMissing(Exception):
    """The keyspace a pipeline matches against does not exist (yet)."""


@dataclass(frozen=True)
class FaceMatch:
    """The best enrolled face for an embedding."""

    face_id: str
    similarity: float
    name: str = ""
    secondary_text: str = ""
    # The enrolled faces (variations) the embedding was compared with: what a
    # false-match probability depends on (analytics/face/calibration.py).
    gallery_size: int = 1


class FaceGallery(Protocol):
    def match(self, keyspace: str, embedding: Sequence[float]) -> FaceMatch | None:
        """The best match in `keyspace`, or None when nobody is enrolled there;
        KeyspaceMissing when the keyspace does not exist."""
        ...


_gallery: FaceGallery | None = None


def gallery_set(gallery: FaceGallery | None) -> None:
    """Register the gallery every face-recognition pipeline of this process matches against."""
    global _gallery
    _gallery = gallery


def gallery_get() -> FaceGallery | None:
    return _gallery
