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
def sdist_photos():
    """The folder of insightface's example photos (t1.jpg: six people, one near profile)."""
    from tests.support.sdist_photos import insightface_photos_dir

    return insightface_photos_dir(settings.DATA_DIR / "cache")


@pytest.fixture(scope="session")
def astronaut():
    return astronaut_bgr()


@pytest.fixture(scope="session")
def engine(django_db_setup, django_db_blocker):
    from analytics.face.engine import face_engine

    # Starting the engine reads the embedding columns' size from the database.
    with django_db_blocker.unblock():
        return face_engine()


@pytest.fixture
def media_root(tmp_path, settings):
    """Photos and thumbnails go to a fresh folder per test, not the data folder."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return tmp_path / "media"


def b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()


@pytest.fixture
def keyspace(api, db, media_root) -> str:
    response = api.post("/v1/face/keyspace", {"keyspace": "employees"})
    assert response.status_code == 200, response.json()
    return "employees"
