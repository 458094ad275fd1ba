"""Fixtures of the face tests: real photos and the process's face engine."""

from __future__ import annotations

import pytest
from django.conf import settings

from tests.support.face_photos import FacePhotos, astronaut_bgr, face_photos_dir


@pytest.fixture(scope="session")
def photos() -> FacePhotos:
    """The face_recognition sdist's test photos (downloaded once into the data dir's cache)."""
    return FacePhotos(face_photos_dir(settings.DATA_DIR / "cache"))


@pytest.fixture(scope="session")
def astronaut():
    return astronaut_bgr()


@pytest.fixture(scope="session")
def engine():
    from analytics.face.engine import face_engine

    return face_engine()
