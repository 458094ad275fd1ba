"""A keyspace's size (what 1:N decides at) is the count the database keeps beside
it, equal to counting its variations after every kind of write."""

from __future__ import annotations

import numpy as np
import pytest
from django.db import connection, transaction

from core.images import image_from_bytes
from faces import services
from faces.models import FaceVariation, Keyspace, Person
from faces.selectors import gallery_size

pytestmark = pytest.mark.django_db


def _vector(rng) -> list[float]:
    vector = rng.normal(size=128)
    return (vector / np.linalg.norm(vector)).tolist()


def _people(keyspace: Keyspace, count: int, rng, *, prefix: str = "p") -> list[Person]:
    people = Person.objects.bulk_create(
        [Person(keyspace=keyspace, face_id=f"{prefix}{i}") for i in range(count)]
    )
    FaceVariation.objects.bulk_create(
        [
            FaceVariation(person=p, keyspace=keyspace, variation=1, embedding=_vector(rng), embedder="t")
            for p in people
        ]
    )
    return people


def _sizes() -> dict[str, tuple[int, int]]:
    """Each keyspace: (the kept count, a real count)."""
    return {
        k.name: (gallery_size(keyspace=k), FaceVariation.objects.filter(keyspace=k).count())
        for k in Keyspace.objects.all()
    }


def test_the_kept_count_follows_every_kind_of_write():
    rng = np.random.default_rng(3)
    a, b = Keyspace.objects.create(name="a"), Keyspace.objects.create(name="b")
    assert _sizes() == {"a": (0, 0), "b": (0, 0)}

    people_a = _people(a, 30, rng)  # one INSERT statement of 30 rows
    _people(b, 5, rng)
    single = FaceVariation.objects.create(
        person=people_a[0], keyspace=a, variation=2, embedding=_vector(rng), embedder="t"
    )
    assert _sizes() == {"a": (31, 31), "b": (5, 5)}

    # COPY, as bulk loads write, into both keyspaces in one statement.
    extra_a = Person.objects.create(keyspace=a, face_id="copied-a")
    extra_b = Person.objects.create(keyspace=b, face_id="copied-b")
    with (
        connection.cursor() as cursor,
        cursor.copy(
            "COPY faces_facevariation (person_id, keyspace_id, variation, embedding, embedder, photo, "
            "thumbnail, box, detection_score, face_size, blur_score, frontal_score, created_at) FROM STDIN"
        ) as copy,
    ):
        for person, keyspace, number in ((extra_a, a, 1), (extra_b, b, 1), (extra_b, b, 2)):
            vector = str(_vector(rng))
            copy.write_row(
                (person.pk, keyspace.pk, number, vector, "t", "", "", "[]", 0, 0, 0, 0, "2026-01-01")
            )
    assert _sizes() == {"a": (32, 32), "b": (7, 7)}

    single.delete()  # one row
    Person.objects.filter(pk__in=[p.pk for p in people_a[:10]]).delete()  # the cascade to variations
    assert _sizes() == {"a": (21, 21), "b": (7, 7)}

    FaceVariation.objects.filter(person=extra_a).update(keyspace=b)  # a row moved between keyspaces
    FaceVariation.objects.filter(keyspace=b).update(embedder="u")  # an update that moves nothing
    assert _sizes() == {"a": (20, 20), "b": (8, 8)}

    # A write rolled back leaves the count as it was.
    with pytest.raises(RuntimeError), transaction.atomic():
        _people(a, 4, rng, prefix="gone")
        raise RuntimeError
    assert _sizes() == {"a": (20, 20), "b": (8, 8)}

    b.delete()
    assert _sizes() == {"a": (20, 20)}


def test_the_services_writes_keep_it(media_root, photos):
    services.keyspace_create(name="staff")
    for name, face_id in (("obama.jpg", "obama"), ("obama3.jpg", "obama"), ("biden.jpg", "biden")):
        services.face_enroll(
            keyspace="staff", image=image_from_bytes(photos.bytes(name), field="image"), face_id=face_id
        )
    assert _sizes() == {"staff": (3, 3)}
    services.variations_delete(keyspace="staff", face_id="obama", variations=[1])
    assert _sizes() == {"staff": (2, 2)}
    services.enrollments_delete(keyspace="staff", face_ids=["obama"])
    assert _sizes() == {"staff": (1, 1)}
