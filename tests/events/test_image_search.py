"""POST /smart-search with type image: the query's faces are found and embedded,
stored events are ranked by the HNSW index, similarity in [0, 1]. Real photos
(the face_recognition test images, skimage's astronaut)."""

from __future__ import annotations

import base64
import functools
from datetime import UTC, datetime, timedelta

import cv2
import numpy as np
import pytest
from django.conf import settings
from django.db import connection

from analytics.face.calibration import DLIB_RESNET_V1
from analytics.face.engine import similarity_from_distance
from events.models import Event
from events.search import SearchFilters, events_embedding_search, events_nearest
from events.services import event_create
from tests.support.face_photos import FacePhotos, astronaut_bgr, face_photos_dir, jpeg_bytes

from .conftest import stream_make

pytestmark = pytest.mark.django_db

LOBBY = "5136c6c0916cd30c"
GATE = "0123456789abcdef"
T0 = datetime(2025, 1, 15, 8, 0, tzinfo=UTC)
T0_MS = 1736928000000


@pytest.fixture(scope="session")
def photos() -> FacePhotos:
    return FacePhotos(face_photos_dir(settings.DATA_DIR / "cache"))


@pytest.fixture(scope="session")
def engine(django_db_setup, django_db_blocker):
    from analytics.face.engine import face_engine

    # Starting the engine reads the embedding columns' size from the database.
    with django_db_blocker.unblock():
        return face_engine()


@pytest.fixture(scope="session")
def faces_of(engine, photos):
    """Crop and embedding of the one face of each stored photo, computed once."""
    from analytics.face.engine import crop_jpeg

    images = {
        "obama.jpg": photos.bgr("obama.jpg"),
        "obama3.jpg": photos.bgr("obama3.jpg"),
        "biden.jpg": photos.bgr("biden.jpg"),
        "astronaut": astronaut_bgr(),
    }
    analysed = {}
    for key, image in images.items():
        faces, embeddings = engine.analyze(image)
        assert len(faces) == 1, key
        analysed[key] = (crop_jpeg(image, faces[0]), [float(v) for v in embeddings[0]])
    return analysed


def face_event(stream, face, *, name: str, minute: int) -> Event:
    """An event as the face analytics store it: the crop, its embedding and the name."""
    crop, embedding = face
    return event_create(
        stream=stream,
        analytic_id="NFV4-FR",
        timestamp=T0 + timedelta(minutes=minute),
        primary_text=name,
        secondary_text="Employee" if name else "",
        pipeline_data={"status": "KNOWN" if name else "UNKNOWN"},
        image_jpeg=crop,
        embedding=embedding,
    )


@pytest.fixture
def seen(faces_of, media_root):
    """Obama seen at the lobby (enrolled: named) and at the gate (unknown), Biden and
    the astronaut seen once each, and an event without a face."""
    lobby = stream_make(LOBBY, name="Camera Lobby")
    gate = stream_make(GATE, name="Camera Gate")
    events = {
        "obama-lobby": face_event(lobby, faces_of["obama.jpg"], name="Barack Obama", minute=0),
        "obama-gate": face_event(gate, faces_of["obama3.jpg"], name="", minute=1),
        "biden": face_event(lobby, faces_of["biden.jpg"], name="Joe Biden", minute=2),
        "astronaut": face_event(gate, faces_of["astronaut"], name="Eileen Collins", minute=3),
    }
    event_create(
        stream=lobby,
        analytic_id="TEST-BRIGHT",
        timestamp=T0,
        primary_text="bright",
        pipeline_data={},
        image_jpeg=None,
    )
    return events


def search(api, image: np.ndarray | bytes, **options) -> list[dict]:
    data = image if isinstance(image, bytes) else jpeg_bytes(image)
    response = api.post(
        "/smart-search", {"type": "image", "query": base64.b64encode(data).decode(), **options}
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["code"], body["message"]) == (200, "success")
    return body["results"]


def test_another_photo_of_a_person_finds_their_events_first(api, seen, photos):
    results = search(api, photos.bgr("obama2.jpg"), min_similarity=0)
    top = {r["timestamp_ms"] for r in results[:2]}
    assert top == {T0_MS, T0_MS + 60_000}  # both Obama events, before anyone else
    assert all(r["similarity"] >= 0.85 for r in results[:2])  # the same person, per the engine
    assert all(r["similarity"] < 0.85 for r in results[2:])
    assert len(results) == 4  # the event without an embedding is never a result
    similarities = [r["similarity"] for r in results]
    assert similarities == sorted(similarities, reverse=True)
    assert all(0 <= s <= 1 for s in similarities)


def test_result_shape_is_the_contract(api, seen, photos):
    event = seen["obama-lobby"]
    results = search(api, photos.bgr("obama2.jpg"), limit=1, stream_ids=[LOBBY])
    with event.image.open("rb") as handle:
        crop = base64.b64encode(handle.read()).decode()
    assert results == [
        {
            "stream_id": LOBBY,
            "analytic_id": "NFV4-FR",
            "node_num": 0,
            "timestamp_ms": T0_MS,
            "similarity": results[0]["similarity"],
            "image_jpeg": crop,
            "primary_text": "Barack Obama",
            "secondary_text": "Employee",
            "false_match_probability": results[0]["false_match_probability"],
        }
    ]
    assert 0.85 <= results[0]["similarity"] <= 1
    # What the similarity means: how often a stranger's face reaches it (the embedder's
    # measured impostor scores), small for the same person.
    expected = DLIB_RESNET_V1.false_accept(results[0]["similarity"])
    assert results[0]["false_match_probability"] == pytest.approx(expected, abs=1e-6)
    assert results[0]["false_match_probability"] < 0.01
    decoded = cv2.imdecode(
        np.frombuffer(base64.b64decode(results[0]["image_jpeg"]), np.uint8), cv2.IMREAD_COLOR
    )
    assert decoded is not None and decoded.shape[0] > 40


def test_the_same_photo_scores_one(api, seen, photos):
    results = search(api, photos.bytes("biden.jpg"), limit=1)
    assert (results[0]["primary_text"], results[0]["similarity"]) == ("Joe Biden", 1.0)


def test_png_and_data_url_queries(api, seen):
    ok, png = cv2.imencode(".png", astronaut_bgr())
    assert ok
    assert search(api, png.tobytes(), limit=1)[0]["primary_text"] == "Eileen Collins"
    data_url = "data:image/jpeg;base64," + base64.b64encode(jpeg_bytes(astronaut_bgr())).decode()
    response = api.post("/smart-search", {"type": "image", "query": data_url, "limit": 1})
    assert response.json()["results"][0]["primary_text"] == "Eileen Collins"


def test_min_similarity_keeps_only_the_same_person(api, seen, photos):
    results = search(api, photos.bgr("obama2.jpg"), min_similarity=0.85)
    assert sorted(r["timestamp_ms"] for r in results) == [T0_MS, T0_MS + 60_000]
    assert search(api, photos.bgr("obama2.jpg"), min_similarity=1) == []


def test_default_min_similarity_keeps_strangers_out(api, seen, photos):
    """Defaults: limit 50, min_similarity 0.877 (a stranger passes with probability 0.1 %)."""
    results = search(api, photos.bgr("obama2.jpg"))
    assert sorted(r["timestamp_ms"] for r in results) == [T0_MS, T0_MS + 60_000]
    assert all(r["similarity"] >= 0.877 for r in results)


def test_each_image_result_says_how_often_a_stranger_scores_as_high(api, seen, photos):
    results = search(api, photos.bgr("obama2.jpg"), min_similarity=0)
    same = [r for r in results if r["primary_text"] == "Barack Obama"]
    others = [r for r in results if r["primary_text"] in {"Joe Biden", "Eileen Collins"}]
    assert same and others
    assert all(r["false_match_probability"] < 0.01 for r in same)
    assert all(r["false_match_probability"] > 0.05 for r in others), [
        (r["primary_text"], r["similarity"], r["false_match_probability"]) for r in results
    ]
    # Decreasing with the similarity, as the results are ranked.
    probabilities = [r["false_match_probability"] for r in results]
    assert probabilities == sorted(probabilities)


def test_filters_and_limit_hold(api, seen, photos):
    query = photos.bgr("obama2.jpg")
    gate = search(api, query, stream_ids=[GATE], min_similarity=0)
    assert [r["stream_id"] for r in gate] == [GATE, GATE]
    assert gate[0]["timestamp_ms"] == T0_MS + 60_000  # Obama at the gate first
    assert search(api, query, stream_ids=[], min_similarity=0) == []
    assert search(api, query, analytic_ids=["TEST-BRIGHT"], min_similarity=0) == []
    window = search(api, query, from_ms=T0_MS + 60_000, to_ms=T0_MS + 120_000, min_similarity=0)
    assert [r["timestamp_ms"] for r in window] == [T0_MS + 60_000, T0_MS + 120_000]
    assert len(search(api, query, limit=3, min_similarity=0)) == 3
    assert len(search(api, query, limit=1, min_similarity=0)) == 1


def test_every_face_of_a_group_photo_is_searched(api, seen, photos):
    """Two people side by side: each one's events come back."""
    left, right = photos.bgr("obama2.jpg"), astronaut_bgr()
    height = 512
    group = np.hstack(
        [
            cv2.resize(left, (left.shape[1] * height // left.shape[0], height)),
            cv2.resize(right, (right.shape[1] * height // right.shape[0], height)),
        ]
    )
    results = search(api, group, min_similarity=0.85)
    assert sorted(r["primary_text"] for r in results) == ["", "Barack Obama", "Eileen Collins"]


def test_no_face_in_the_query(api, seen):
    blank = np.full((240, 320, 3), 127, np.uint8)
    response = api.post(
        "/smart-search", {"type": "image", "query": base64.b64encode(jpeg_bytes(blank)).decode()}
    )
    assert (response.status_code, response.json()) == (
        400,
        {"code": 400, "message": "no face found in the query image"},
    )


def test_nearest_goes_through_the_hnsw_index(seen, engine, photos):
    _, embeddings = engine.analyze(photos.bgr("obama2.jpg"))
    captured = []

    def explain(execute, sql, params, many, context):
        if "<=>" in sql and sql.lstrip().startswith("SELECT e.event_id"):
            execute("EXPLAIN " + sql, params, many, context)
            captured.append("\n".join(row[0] for row in context["cursor"].fetchall()))
        return execute(sql, params, many, context)

    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
    with connection.execute_wrapper(explain):
        rows = events_nearest(embedding=embeddings[0], limit=2)
    assert "event_embedding_hnsw" in captured[0], captured[0]
    assert {row[0] for row in rows} == {seen["obama-lobby"].event_id, seen["obama-gate"].event_id}


def test_embedding_search_maps_distance_with_the_engine_scale(seen):
    stored = np.array(seen["biden"].embedding, dtype=np.float32)
    hits = events_embedding_search(
        embeddings=stored,
        filters=SearchFilters(stream_ids=[LOBBY]),
        limit=5,
        min_similarity=0,
        similarity=functools.partial(similarity_from_distance, scale=0.6),
    )
    assert hits[0].event.event_id == seen["biden"].event_id and hits[0].similarity == 1.0
    assert [hit.event.stream_id for hit in hits] == [LOBBY, LOBBY]  # Obama at the lobby
    assert [hit.similarity for hit in hits[1:]] == sorted((h.similarity for h in hits[1:]), reverse=True)


@pytest.mark.parametrize(("exact_max", "plan_has_hnsw"), [(20_000, False), (0, True)])
def test_filtered_searches_are_exact_when_few_rows_match(
    seen, engine, photos, settings, exact_max, plan_has_hnsw
):
    """Few events left by the filters: compared exactly (no graph walk). Many: the
    HNSW index, scanned iteratively. Either way the same answer here."""
    settings.SEARCH_EXACT_SCAN_MAX = exact_max
    _, embeddings = engine.analyze(photos.bgr("obama2.jpg"))
    plans = []

    def explain(execute, sql, params, many, context):
        if "<=>" in sql and sql.lstrip().startswith("SELECT e.event_id"):
            execute("EXPLAIN " + sql, params, many, context)
            plans.append("\n".join(row[0] for row in context["cursor"].fetchall()))
        return execute(sql, params, many, context)

    with connection.cursor() as cursor:
        # As on a big table: neither a scan of the whole table nor a sort of it is cheap.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_sort = off")
    with connection.execute_wrapper(explain):
        rows = events_nearest(embedding=embeddings[0], filters=SearchFilters(stream_ids=[GATE]), limit=2)
    assert ("event_embedding_hnsw" in plans[0]) is plan_has_hnsw, plans[0]
    assert [row[0] for row in rows] == [seen["obama-gate"].event_id, seen["astronaut"].event_id]
