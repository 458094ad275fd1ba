"""Another face embedder: the engine refuses a database whose vectors have
another size, `face_reembed` re-embeds every stored face and resizes the
columns in one transaction, and recognition then works with the new model."""

from __future__ import annotations

import io

import numpy as np
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.files.base import ContentFile
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from analytics.face import engine as face
from analytics.face.calibration import false_accept_model
from analytics.face.engine import crop_jpeg, face_engine
from events.models import Event
from faces import reembed
from faces.models import FaceVariation, Person
from tests.face.test_routes import enroll, recognise
from tests.support.face_photos import jpeg_bytes
from tests.support.onnx_model import write_embedder_model

pytestmark = pytest.mark.django_db


@pytest.fixture
def use_onnx(settings, tmp_path, engine):
    """Switches this process to a test ONNX embedder of `dim` values; the shipped
    engine comes back after the test (the test's transaction undoes the columns)."""

    def use(dim: int, *, false_accept=()) -> None:
        settings.FACE_EMBEDDER = "onnx"
        settings.FACE_ONNX_MODEL = str(write_embedder_model(tmp_path / f"embedder{dim}.onnx", dim=dim))
        settings.FACE_ONNX_FALSE_ACCEPT = list(false_accept)
        face.face_engine_reset()

    yield use
    face.face_engine_reset()
    face._engine = engine


def stored() -> dict[int, list[float]]:
    return {
        pk: [float(v) for v in vector] for pk, vector in FaceVariation.objects.values_list("pk", "embedding")
    }


def dimensions() -> dict[str, int | None]:
    return reembed.embedding_column_dimensions()


def index_definitions() -> dict[str, str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes "
            "WHERE indexname IN ('face_variation_embedding_hnsw', 'event_embedding_hnsw')"
        )
        return dict(cursor.fetchall())


def reembed_command(*args: str) -> str:
    out = io.StringIO()
    call_command("face_reembed", "--no-progress", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


@pytest.fixture
def enrolled(api, keyspace, photos, astronaut, engine):
    """Obama and the astronaut enrolled with the shipped engine, and one face event
    (Obama's crop, its 128-d embedding) as the face analytics store them."""
    assert enroll(api, keyspace, photos.bytes("obama.jpg"), face_id="obama", name="Obama").status_code == 200
    assert enroll(api, keyspace, jpeg_bytes(astronaut), face_id="collins").status_code == 200
    image = photos.bgr("obama2.jpg")
    faces, vectors = engine.analyze(image)
    event = Event(
        stream_id="s1",
        node_num=1,
        analytic_id="NFV4-FR",
        timestamp=timezone.now(),
        embedding=vectors[0].tolist(),
    )
    event.image.save("obama2.jpg", ContentFile(crop_jpeg(image, faces[0])), save=False)
    event.save()
    return keyspace


def test_fresh_database_holds_the_shipped_size(engine):
    assert dimensions() == {"faces_facevariation.embedding": 128, "events_event.embedding": 128}
    reembed.embedding_store_check(engine.embedder)  # no complaint


def test_another_size_is_refused_then_reembedded_and_recognised(api, enrolled, photos, use_onnx, settings):
    before = index_definitions()
    use_onnx(512)
    message = (
        r"outputs 512-d embeddings but the database stores 128-d ones: run `python3 visionaire.py manage "
        r"face_reembed` .*\(faces_facevariation.embedding is vector\(128\), events_event.embedding is "
        r"vector\(128\)\)\.$"
    )
    with pytest.raises(ImproperlyConfigured, match=message):
        face_engine()
    # The routes say so too, and nothing was stored.
    response = recognise(api, enrolled, photos.bytes("obama.jpg"))
    assert response.status_code == 503
    assert "512-d" in response.json()["message"] and "face_reembed" in response.json()["message"]

    out = reembed_command("--events", "--batch", "1")
    assert "re-embedded 2 enrolled face(s) with onnx:embedder512.onnx; columns resized to 512" in out
    assert "re-embedded 1 event face(s); 0 event(s)" in out
    assert dimensions() == {"faces_facevariation.embedding": 512, "events_event.embedding": 512}
    # The same HNSW indexes (cosine, same parameters) on the new columns.
    assert index_definitions() == before
    assert set(FaceVariation.objects.values_list("embedder", flat=True)) == {"onnx:embedder512.onnx"}
    engine = face_engine()  # starts now
    assert engine.embedder.dim == 512 and not engine.calibrated
    # The stored vectors are the new model's embeddings of the enrolled faces.
    obama = np.array(FaceVariation.objects.get(person__face_id="obama").embedding)
    expected = engine.analyze(photos.bgr("obama.jpg"))[1][0]
    assert obama.shape == (512,) and np.allclose(obama, expected, atol=1e-5)
    event = Event.objects.get()
    assert len(event.embedding) == 512
    assert engine.similarity(event.embedding, engine.analyze(photos.bgr("obama2.jpg"))[1][0]) > 0.99

    response = recognise(api, enrolled, photos.bytes("obama.jpg"))
    assert response.status_code == 200, response.json()
    answer = response.json()["result"]["face_recognition"]
    assert answer["candidates"][0]["face_id"] == "obama" and answer["candidates"][0]["match"]
    assert answer["candidates"][0]["similarity"] == pytest.approx(1.0, abs=1e-3)
    # Uncalibrated: a fixed threshold, no false-match probability, and the answer says so.
    assert answer["calibrated"] is False and answer["threshold"] == 0.85
    assert answer["candidates"][0]["false_match_probability"] is None
    # Enrollment stores the new size.
    assert enroll(api, enrolled, photos.bytes("biden.jpg"), face_id="biden").status_code == 200
    assert len(FaceVariation.objects.get(person__face_id="biden").embedding) == 512

    # Another model again, without --events: the events drop out of search by photo.
    use_onnx(64)
    with pytest.raises(ImproperlyConfigured, match=r"outputs 64-d .*vector\(512\)"):
        face_engine()
    out = reembed_command()
    assert "re-embedded 3 enrolled face(s)" in out and "cleared the embeddings of 1 event(s)" in out
    assert dimensions() == {"faces_facevariation.embedding": 64, "events_event.embedding": 64}
    assert Event.objects.get().embedding is None
    # Idempotent: the same model again re-embeds and keeps the size.
    vectors = stored()
    out = reembed_command()
    assert "re-embedded 3 enrolled face(s)" in out and "cleared the embeddings of 0 event(s)" in out
    assert dimensions()["faces_facevariation.embedding"] == 64
    again = stored()
    assert all(np.allclose(again[pk], vectors[pk], atol=1e-6) for pk in vectors)
    assert face_engine().embedder.dim == 64
    assert (
        recognise(api, enrolled, photos.bytes("biden.jpg")).json()["result"]["face_recognition"][
            "candidates"
        ][0]["face_id"]
        == "biden"
    )


def test_measured_points_calibrate_a_foreign_model(api, enrolled, photos, use_onnx):
    points = [(0.80, 1e-2), (0.86, 1e-3), (0.90, 1e-4)]
    use_onnx(512, false_accept=points)
    reembed_command()
    engine = face_engine()
    assert engine.calibrated
    answer = recognise(api, enrolled, photos.bytes("obama.jpg")).json()["result"]["face_recognition"]
    model = false_accept_model(engine.embedder.name, points)
    assert answer["calibrated"] is True and answer["gallery_size"] == 2
    assert answer["threshold"] == pytest.approx(model.threshold(0.01, 2), abs=1e-4)
    best = answer["candidates"][0]
    assert best["false_match_probability"] == pytest.approx(
        model.false_match(best["similarity"], 2), rel=1e-3
    )


def test_a_face_without_its_photo_is_refused_unless_dropped(api, enrolled, use_onnx, media_root):
    missing = FaceVariation.objects.get(person__face_id="collins")
    missing.photo.delete(save=True)
    before = stored()
    use_onnx(512)
    err = io.StringIO()
    with pytest.raises(
        CommandError, match=r"1 enrolled face\(s\) cannot be re-embedded .*nothing was changed"
    ):
        call_command("face_reembed", "--no-progress", stdout=io.StringIO(), stderr=err)
    assert f"keyspace {enrolled}, face_id collins, variation 1: no stored photo" in err.getvalue()
    assert dimensions()["faces_facevariation.embedding"] == 128
    assert stored() == before

    out = reembed_command("--drop-unembeddable")
    assert "deleted 1 enrolled face(s) that could not be re-embedded, and 1 person(s)" in out
    assert list(Person.objects.values_list("face_id", flat=True)) == ["obama"]
    assert dimensions()["faces_facevariation.embedding"] == 512


def test_a_failure_in_the_swap_leaves_the_old_columns(enrolled, use_onnx, monkeypatch):
    before = stored()
    event_before = Event.objects.get().embedding
    indexes = index_definitions()
    create = reembed._index_create

    def failing(column):  # the faces' column is swapped already when the events' index fails
        if column.nullable:
            raise RuntimeError("disk full")
        create(column)

    monkeypatch.setattr(reembed, "_index_create", failing)
    use_onnx(512)
    with pytest.raises(RuntimeError, match="disk full"):
        reembed_command("--events")
    assert dimensions() == {"faces_facevariation.embedding": 128, "events_event.embedding": 128}
    assert index_definitions() == indexes
    assert stored() == before
    assert np.array_equal(Event.objects.get().embedding, event_before)
    assert set(FaceVariation.objects.values_list("embedder", flat=True)) == {"dlib-resnet-v1"}
    with connection.cursor() as cursor:  # the staging tables are gone
        cursor.execute("SELECT count(*) FROM pg_class WHERE relname LIKE 'face_reembed_%%'")
        assert cursor.fetchone()[0] == 0
    with pytest.raises(ImproperlyConfigured, match="512-d"):
        face_engine()


def test_batch_out_of_range_is_refused(use_onnx):
    with pytest.raises(CommandError, match=r"--batch must lie in 1\.\.256, got 0"):
        call_command("face_reembed", "--batch", "0", stdout=io.StringIO())
