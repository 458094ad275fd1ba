"""faces.services as analytics use it: faces_match on embeddings, and the
HNSW search agreeing with an exact scan."""

from __future__ import annotations

import numpy as np
import pytest

from analytics.face.engine import face_engine
from core.errors import NotFound
from core.images import image_from_bytes
from faces import services
from faces.models import FaceVariation, Keyspace, Person
from faces.selectors import KeyspaceNotFound

pytestmark = pytest.mark.django_db


def decoded(data: bytes):
    return image_from_bytes(data, field="image")


@pytest.fixture
def enrolled(media_root, photos):
    services.keyspace_create(name="employees")
    services.face_enroll(
        keyspace="employees",
        image=decoded(photos.bytes("obama.jpg")),
        face_id="obama",
        name="Barack Obama",
        category="President",
    )
    services.face_enroll(keyspace="employees", image=decoded(photos.bytes("obama3.jpg")), face_id="obama")
    services.face_enroll(keyspace="employees", image=decoded(photos.bytes("biden.jpg")), face_id="biden")
    return "employees"


def test_faces_match_names_the_person(enrolled, photos):
    engine = face_engine()
    query = engine.analyze(photos.bgr("obama2.jpg"))[1][0]
    best = services.faces_match(keyspace=enrolled, embedding=query, limit=1)
    assert len(best) == 1
    candidate = best[0]
    assert (candidate.face_id, candidate.name, candidate.secondary_text) == (
        "obama",
        "Barack Obama",
        "President",
    )
    assert candidate.variation in (1, 2) and candidate.similarity >= 0.85
    both = services.faces_match(keyspace=enrolled, embedding=query.tolist(), limit=5)
    assert [c.face_id for c in both] == ["obama", "biden"]
    # A person without a name is shown by their face id.
    assert both[1].name == "biden" and both[1].secondary_text == "" and both[1].similarity < 0.85


def test_faces_match_in_an_unknown_keyspace():
    with pytest.raises(KeyspaceNotFound) as raised:
        services.faces_match(keyspace="nobody", embedding=np.ones(128) / np.sqrt(128), limit=1)
    assert isinstance(raised.value, NotFound) and raised.value.message == "keyspace not found"


def test_hnsw_search_agrees_with_an_exact_scan(db):
    """Many synthetic people in two keyspaces: the index (with its iterative
    scan under the keyspace filter) finds what an exact scan finds."""
    rng = np.random.default_rng(7)
    big, small = Keyspace.objects.create(name="big"), Keyspace.objects.create(name="small")
    rows = []
    for keyspace, count in ((big, 1500), (small, 40)):
        people = Person.objects.bulk_create(
            [Person(keyspace=keyspace, face_id=f"{keyspace.name}-{i}") for i in range(count)]
        )
        vectors = rng.standard_normal((count, 128)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        rows += [
            FaceVariation(
                person=p, keyspace=keyspace, variation=1, embedding=v.tolist(), embedder="synthetic"
            )
            for p, v in zip(people, vectors, strict=True)
        ]
    FaceVariation.objects.bulk_create(rows)
    for keyspace in (big, small):
        for _ in range(5):
            query = rng.standard_normal(128)
            approximate = services.faces_nearest(keyspace=keyspace, embedding=query, limit=10)
            exact = services.faces_nearest(keyspace=keyspace, embedding=query, limit=10, exact=True)
            assert len(approximate) == len(exact) == 10
            assert all(c.face_id.startswith(keyspace.name + "-") for c in approximate)
            found = {c.face_id for c in approximate} & {c.face_id for c in exact}
            assert len(found) >= 9, (keyspace.name, found)
