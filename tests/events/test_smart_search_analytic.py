"""NFV4-SS (analytics/face/smart_search.py): a stream's faces indexed for search
without enrollment, one event per face track; POST /extract pushes an external
image into the pipeline. Real photos; the processor on synthetic frame sequences."""

from __future__ import annotations

import base64

import cv2
import numpy as np
import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings

from analytics.face.smart_search import SmartSearchConfig, SmartSearchProcessor
from analytics.plugins import Frame
from analytics.registry import get_plugin
from events.models import Event
from events.publisher import ALL_EVENTS_GROUP
from tests.support.face_photos import FacePhotos, astronaut_bgr, face_photos_dir, jpeg_bytes

from .conftest import pipeline_make, stream_make

LOBBY = "5136c6c0916cd30c"
SS = "NFV4-SS"


@pytest.fixture(scope="session")
def photos() -> FacePhotos:
    return FacePhotos(face_photos_dir(settings.DATA_DIR / "cache"))


@pytest.fixture(scope="session")
def engine(django_db_setup, django_db_blocker):
    from analytics.face.engine import face_engine

    # Starting the engine reads the embedding columns' size from the database.
    with django_db_blocker.unblock():
        return face_engine()


def on_canvas(face: np.ndarray | None, *, x: int = 40, width: int = 640, height: int = 480) -> np.ndarray:
    """A grey frame with `face` (a photo, shrunk to 300 px high) pasted at x."""
    canvas = np.full((height, width, 3), 110, np.uint8)
    if face is not None:
        small = cv2.resize(face, (face.shape[1] * 300 // face.shape[0], 300))
        small = small[:, : width - x]
        canvas[90 : 90 + small.shape[0], x : x + small.shape[1]] = small
    return canvas


def frames(images: list[np.ndarray], *, start: float = 1000.0, step: float = 0.2):
    for index, image in enumerate(images):
        yield Frame(image=image, timestamp=start + index * step, index=index, stream_id=LOBBY, node_num=0)


def run(processor, images, **timing) -> list[list]:
    """The events each frame gave, then those of close()."""
    per_frame = [processor.process(frame).events for frame in frames(images, **timing)]
    return [*per_frame, processor.close().events]


# --- the processor ------------------------------------------------------------------------


def test_one_event_per_face_track_with_its_best_face(engine, photos):
    obama = photos.bgr("obama.jpg")
    # Walks in small and far, comes close, leaves; 0.2 s apart, the track times out after 1.5 s.
    images = [on_canvas(obama, x=40 + 10 * i) for i in range(6)] + [on_canvas(None)] * 9
    processor = SmartSearchProcessor(SmartSearchConfig(), engine=engine)
    produced = run(processor, images)
    events = [event for batch in produced for event in batch]
    assert len(events) == 1
    # The track ends when unseen for 1.5 s: at the frame 1.6 s after the last sighting.
    assert [len(batch) for batch in produced].index(1) == 5 + 8
    event = events[0]
    assert event.search_text == "face"
    assert (event.primary_text, event.secondary_text) == ("", "")
    assert event.pipeline_data["object"] == "face"
    assert event.pipeline_data["track_id"] == 1
    assert 0.8 <= event.pipeline_data["confidence_detection"] <= 1
    assert set(event.pipeline_data["bounding_box"]) == {"left", "top", "width", "height"}
    assert 1000.0 <= event.timestamp <= 1001.0  # when the face was seen, not when the track ended
    crop = cv2.imdecode(np.frombuffer(event.image_jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert crop is not None and crop.shape[0] >= 100
    embedding = np.array(event.embedding)
    assert embedding.shape == (128,) and abs(np.linalg.norm(embedding) - 1) < 1e-3
    # The same person as another photo of them, by the engine's measure.
    _, reference = engine.analyze(photos.bgr("obama2.jpg"))
    assert engine.similarity(embedding, reference[0]) >= 0.85


def test_a_face_still_in_view_is_reported_once_at_the_longest_track(engine, photos):
    images = [on_canvas(photos.bgr("biden.jpg"))] * 12  # 2.2 s in view
    config = SmartSearchConfig(max_track_ms=1000)
    produced = run(SmartSearchProcessor(config, engine=engine), images)
    assert [len(batch) for batch in produced] == [0] * 5 + [1] + [0] * 7


def test_close_reports_the_tracks_still_open(engine):
    produced = run(SmartSearchProcessor(SmartSearchConfig(), engine=engine), [on_canvas(astronaut_bgr())] * 3)
    assert [len(batch) for batch in produced] == [0, 0, 0, 1]


def test_without_tracking_every_sampled_face_is_an_event(engine):
    config = SmartSearchConfig(tracking=False)
    produced = run(SmartSearchProcessor(config, engine=engine), [on_canvas(astronaut_bgr())] * 3)
    assert [len(batch) for batch in produced] == [1, 1, 1, 0]
    assert all("track_id" not in batch[0].pipeline_data for batch in produced[:3])


def test_faces_under_the_minimum_size_are_not_indexed(engine):
    config = SmartSearchConfig(min_face_size=400)
    produced = run(SmartSearchProcessor(config, engine=engine), [on_canvas(astronaut_bgr())] * 3)
    assert produced == [[], [], [], []]


def test_overlay_boxes_the_faces(engine):
    result = SmartSearchProcessor(SmartSearchConfig(), engine=engine).process(
        next(frames([on_canvas(astronaut_bgr())]))
    )
    assert [(item.kind, item.label) for item in result.overlay] == [("box", "face")]


@pytest.mark.django_db
def test_registered_with_its_config_schema(api):
    plugin = get_plugin(SS)
    assert (plugin.name, plugin.type, plugin.sampling_key) == ("Smart Search", "search", "sampling_time_ms")
    schema = api.get(f"/config/pipeline/{SS}").json()
    assert {key: value["default"] for key, value in schema["properties"].items()} == {
        "sampling_time_ms": 200,
        "min_face_size": 32,
        "detection_threshold": 0.8,
        "tracking": True,
        "track_timeout_ms": 1500,
        "max_track_ms": 10000,
        "matching_iou_threshold": 0.3,
    }


# --- POST /extract into an NFV4-SS pipeline ------------------------------------------------


@pytest.fixture
def pipeline(db, media_root):
    stream = stream_make(LOBBY, name="Camera Lobby")
    row = pipeline_make(stream, SS)
    row.config = SmartSearchConfig().model_dump()
    row.save()
    return row


def push(api, image: np.ndarray, metadata: dict | None = None):
    body = {"image": base64.b64encode(jpeg_bytes(image)).decode()}
    if metadata is not None:
        body["metadata"] = metadata
    return api.post(f"/extract/0/{LOBBY}/{SS}", body)


PUSHED = {
    "code": 200,
    "message": "payload successfully pushed to pipeline",
    "node_num": 0,
    "stream_id": LOBBY,
    "pipeline_id": SS,
}


def test_a_pushed_photo_is_stored_searchable_and_broadcast(
    api, pipeline, photos, django_capture_on_commit_callbacks
):
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(ALL_EVENTS_GROUP, channel)
    metadata = {"source": "external-api", "case": {"ref": "INC-2291"}}
    with django_capture_on_commit_callbacks(execute=True):
        response = push(api, photos.bgr("obama.jpg"), metadata)
    assert (response.status_code, response.json()) == (200, PUSHED)

    event = Event.objects.get()
    assert (event.analytic_id, event.stream_id, event.stream_name) == (SS, LOBBY, "Camera Lobby")
    assert event.search_text == "face external-api INC-2291 Camera Lobby"
    assert event.pipeline_data["source"] == "extract"
    assert event.pipeline_data["metadata"] == metadata
    assert event.pipeline_data["object"] == "face"
    assert event.embedding is not None and event.image

    # Broadcast like any other event.
    message = async_to_sync(layer.receive)(channel)
    assert message["message"]["pipeline_data"]["event_id"] == str(event.event_id)
    assert message["message"]["analytic_id"] == SS

    # Found by another photo of the same person, and by the metadata's text.
    query = base64.b64encode(jpeg_bytes(photos.bgr("obama2.jpg"))).decode()
    found = api.post("/smart-search", {"type": "image", "query": query}).json()["results"]
    assert [(r["analytic_id"], r["stream_id"]) for r in found] == [(SS, LOBBY)]
    assert found[0]["similarity"] >= 0.85
    by_text = api.post("/smart-search", {"type": "text", "query": "inc 2291"}).json()["results"]
    assert [r["analytic_id"] for r in by_text] == [SS] and by_text[0]["similarity"] >= 0.9


def test_each_face_of_a_pushed_group_photo_is_an_event(api, pipeline, photos):
    left, right = photos.bgr("biden.jpg"), astronaut_bgr()
    group = np.hstack(
        [cv2.resize(left, (left.shape[1] * 400 // left.shape[0], 400)), cv2.resize(right, (400, 400))]
    )
    assert push(api, group).status_code == 200
    assert Event.objects.count() == 2
    assert all(event.embedding is not None for event in Event.objects.all())


def test_a_pushed_image_without_a_face_is_one_event_of_the_whole_image(api, pipeline):
    scene = np.zeros((900, 1600, 3), np.uint8)
    cv2.rectangle(scene, (100, 100), (700, 500), (0, 200, 255), -1)
    response = push(
        api, scene, {"primary_text": "Parcel", "secondary_text": "Dock 4", "timestamp_ms": 1674123456789}
    )
    assert (response.status_code, response.json()) == (200, PUSHED)
    event = Event.objects.get()
    assert (event.primary_text, event.secondary_text, event.embedding) == ("Parcel", "Dock 4", None)
    assert int(event.timestamp.timestamp() * 1000) == 1674123456789
    assert event.pipeline_data["object"] == "image"
    with event.image.open("rb") as handle:
        stored = cv2.imdecode(np.frombuffer(handle.read(), np.uint8), cv2.IMREAD_COLOR)
    assert stored.shape[:2] == (360, 640)  # shrunk to 640 px on its longest side
    results = api.post("/smart-search", {"type": "text", "query": "parcel dock"}).json()["results"]
    assert [(r["primary_text"], r["similarity"]) for r in results] == [("Parcel", 1.0)]


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({"primary_text": 5}, "metadata.primary_text must be a string of at most 200 characters"),
        ({"secondary_text": "x" * 201}, "metadata.secondary_text must be a string of at most 200 characters"),
        ({"timestamp_ms": "now"}, "metadata.timestamp_ms must be an integer between 0 and 253402300799999"),
        ({"timestamp_ms": -1}, "metadata.timestamp_ms must be an integer between 0 and 253402300799999"),
    ],
)
def test_bad_metadata_is_refused_and_nothing_stored(api, pipeline, metadata, message):
    response = push(api, astronaut_bgr(), metadata)
    assert (response.status_code, response.json()) == (400, {"code": 400, "message": message})
    assert Event.objects.count() == 0
