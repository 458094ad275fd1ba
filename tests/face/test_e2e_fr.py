"""Face recognition end to end, as a user runs it.

A real H.264 video made of the face_recognition test photos (an empty scene,
Barack Obama for 2 s, the empty scene, Joe Biden for 2 s, the empty scene) is
played at its own pace as a file stream by a real node worker (the launcher's
Celery command, its control listener and stream runner). Through the API: a
keyspace, Obama enrolled from a different photo than the video shows, the
stream, an NFV4-FR pipeline on that keyspace, then the stream activated.
WebSocket clients of the project's ASGI application (the real Redis channel
layer) receive one KNOWN event naming Obama and one UNKNOWN event for Biden;
both are stored with their crop and embedding and returned by /events.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from asgiref.sync import async_to_sync, sync_to_async

from events.models import Event
from live.keys import node_runtime_key
from tests.events.websocket import WebsocketCommunicator
from tests.support.face_video import Segment, face_video
from tests.support.workers import spawn_worker
from tests.workers.conftest import wait_for
from visionaire_site.asgi import application

# A worker start, the models' warm-up and a played video, each with a generous deadline
# for a busy machine: more than the suite's default per-test limit.
pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.timeout(900)]

KEYSPACE = "lobby"
OBAMA = {"face_id": "obama", "name": "Barack Obama", "category": "President"}
# The video lasts 10 s; its events come 1.5 s (fr_timeout_dump) after each face
# leaves. The worker's start and model warm-up come first.
EVENT_DEADLINE = 90.0


@pytest.fixture
def dirs(tmp_path, settings) -> dict[str, Path]:
    videos, media = tmp_path / "videos", tmp_path / "media"
    videos.mkdir()
    media.mkdir()
    settings.STREAM_MEDIA_ROOT = os.path.realpath(videos)
    settings.MEDIA_ROOT = str(media)  # the worker stores crops here; the API reads them
    return {"videos": Path(os.path.realpath(videos)), "media": media}


@pytest.fixture
def lobby_video(photos, dirs) -> Path:
    return face_video(
        dirs["videos"] / "lobby.mp4",
        [
            Segment(1.0),
            Segment(2.0, photos.bgr("obama3.jpg"), height=620, left=330),
            Segment(2.5),
            Segment(2.0, photos.bgr("biden.jpg"), height=620, left=440),
            Segment(2.5),
        ],
    )


@pytest.fixture
def worker(transactional_db, tmp_path, redis_client, dirs):
    """Node 0's worker, as `visionaire.py up` starts it; the file plays once."""
    env = {
        "VISIONAIRE_MEDIA_DIR": str(dirs["media"]),
        "VISIONAIRE_STREAM_MEDIA_ROOT": str(dirs["videos"]),
        "VISIONAIRE_STREAM_LOOP_FILES": "false",
        # Every frame analysed, in video time: the events are the video's whatever else
        # keeps the machine busy (tests/face/test_fr_continuity.py covers dropped frames).
        "VISIONAIRE_STREAM_EVERY_FILE_FRAME": "true",
    }
    process = spawn_worker(0, log_dir=tmp_path, concurrency=4, env=env)
    try:
        process.wait_online(redis_client, timeout=60)
        # The models load in the background at start (seconds, more on a busy machine);
        # the video plays once, so it starts only once they are ready.
        wait_for(
            lambda: (
                json.loads(redis_client.get(node_runtime_key(0)) or "{}")
                .get("models", {})
                .get("face_engine", {})
                .get("state")
                in ("ready", "failed")
            ),
            timeout=180,
            what="the worker's face engine to be warm",
        )
        yield process
    finally:
        process.stop()
        print(process.log_tail(8000))  # shown when the test fails


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def test_known_and_unknown_faces_reach_websocket_clients_the_database_and_events(
    api, photos, lobby_video, worker, redis_client
):
    assert api.post("/v1/face/keyspace", {"keyspace": KEYSPACE}).status_code == 200
    enrolled = api.post(
        "/v1/face/enrollment",
        {"image": b64(photos.bytes("obama.jpg")), "keyspace": KEYSPACE, "additional_params": OBAMA},
    )
    assert enrolled.json() == {"face_id": "obama", "variation": 1}

    created = api.post(
        "/streams/0",
        {
            "stream_address": str(lobby_video),
            "stream_name": "Lobby camera",
            "stream_latitude": -6.261376,
            "stream_longitude": 106.823648,
            "active": False,  # the pipeline is attached before the video starts playing
        },
    ).json()
    stream_id = created["stream_id"]
    pipeline = api.post(f"/pipeline/0/{stream_id}/NFV4-FR", {"keyspace": KEYSPACE})
    assert pipeline.json()["message"] == "pipeline successfully created"

    async def receive_two(client: WebsocketCommunicator) -> list[dict]:
        return [await client.receive_json_from(timeout=EVENT_DEADLINE) for _ in range(2)]

    async def body() -> tuple[list[dict], list[dict]]:
        everything = WebsocketCommunicator(application, "/event_channel?analytic_id=NFV4-FR")
        this_stream = WebsocketCommunicator(application, f"/event_channel/0/{stream_id}")
        for client in (everything, this_stream):
            assert (await client.connect(timeout=10))[0]
        started = await sync_to_async(api.put)(f"/streams/0/{stream_id}", {"active": True})
        assert started.status_code == 200
        received = await receive_two(everything), await receive_two(this_stream)
        for client in (everything, this_stream):
            await client.disconnect()
        return received

    on_all, on_stream = async_to_sync(body)()
    assert on_all == on_stream
    known, unknown = on_all  # in the order the faces appear

    common = {
        "analytic_id": "NFV4-FR",
        "node_num": 0,
        "stream_id": stream_id,
        "stream_name": "Lobby camera",
        "stream_address": str(lobby_video),
        "stream_latitude": -6.261376,
        "stream_longitude": 106.823648,
    }
    assert known == {
        **common,
        "timestamp": known["timestamp"],
        "primary_text": "Barack Obama",
        "secondary_text": "President",
        "image_jpeg": known["image_jpeg"],
        "pipeline_data": {
            "event_id": known["pipeline_data"]["event_id"],
            "face_id": "obama",
            "status": "KNOWN",
            "similarity": known["pipeline_data"]["similarity"],
            "false_match_probability": known["pipeline_data"]["false_match_probability"],
            "threshold": 0.846,  # one enrolled face, max_false_match_rate 0.01
            "confidence_detection": known["pipeline_data"]["confidence_detection"],
            "bounding_box": known["pipeline_data"]["bounding_box"],
        },
    }
    assert unknown == {
        **common,
        "timestamp": unknown["timestamp"],
        "primary_text": "",
        "secondary_text": "",
        "image_jpeg": unknown["image_jpeg"],
        "pipeline_data": {
            "event_id": unknown["pipeline_data"]["event_id"],
            "face_id": "",
            "status": "UNKNOWN",
            "similarity": unknown["pipeline_data"]["similarity"],
            "false_match_probability": unknown["pipeline_data"]["false_match_probability"],
            "threshold": 0.846,  # one enrolled face, max_false_match_rate 0.01
            "confidence_detection": unknown["pipeline_data"]["confidence_detection"],
            "bounding_box": unknown["pipeline_data"]["bounding_box"],
        },
    }
    assert known["pipeline_data"]["similarity"] >= 0.846 > unknown["pipeline_data"]["similarity"]
    assert (
        known["pipeline_data"]["false_match_probability"]
        < 0.01
        < unknown["pipeline_data"]["false_match_probability"]
    )
    for message in (known, unknown):
        data = message["pipeline_data"]
        assert 0.9 <= data["confidence_detection"] <= 1.0
        box = data["bounding_box"]
        assert box["width"] >= 48 and box["height"] >= 48
        assert 0 <= box["left"] and box["left"] + box["width"] <= 1280
        crop = cv2.imdecode(
            np.frombuffer(base64.b64decode(message["image_jpeg"]), np.uint8), cv2.IMREAD_COLOR
        )
        assert crop is not None and crop.shape[0] >= box["height"]
    # Obama is left of centre in his segment, Biden right of it.
    assert known["pipeline_data"]["bounding_box"]["left"] < unknown["pipeline_data"]["bounding_box"]["left"]
    assert known["timestamp"] < unknown["timestamp"]

    # Stored, with the crop and the embedding (for smart search).
    stored = {str(e.event_id): e for e in Event.objects.filter(stream_id=stream_id)}
    assert sorted(stored) == sorted(m["pipeline_data"]["event_id"] for m in on_all)
    for message in on_all:
        event = stored[message["pipeline_data"]["event_id"]]
        assert len(event.embedding) == 128
        assert float(np.linalg.norm(event.embedding)) == pytest.approx(1.0, abs=1e-3)
        with event.image.open("rb") as handle:
            assert handle.read() == base64.b64decode(message["image_jpeg"])

    # Returned by /events, newest first, and found by name.
    listed = api.get(f"/events?stream_id={stream_id}").json()
    assert listed == {
        "code": 200,
        "message": "success",
        "events": [
            {
                "event_id": message["pipeline_data"]["event_id"],
                "stream_id": stream_id,
                "analytic_id": "NFV4-FR",
                "node_num": 0,
                "timestamp_ms": listed_ms,
                "primary_text": message["primary_text"],
                "secondary_text": message["secondary_text"],
                "pipeline_data": message["pipeline_data"],
                "image_url": f"/events/{message['pipeline_data']['event_id']}/image.jpg",
            }
            for message, listed_ms in zip(
                (unknown, known), [e["timestamp_ms"] for e in listed["events"]], strict=True
            )
        ],
        "next_cursor": None,
    }
    for message, item in zip((unknown, known), listed["events"], strict=True):
        assert item["timestamp_ms"] // 1000 == message["timestamp"]
    image = api.get(known_image := f"/events/{known['pipeline_data']['event_id']}/image.jpg")
    assert image.status_code == 200, known_image
    assert image["Content-Type"] == "image/jpeg"
    assert b"".join(image.streaming_content if image.streaming else [image.content]) == base64.b64decode(
        known["image_jpeg"]
    )
    by_name = api.get("/events?q=Obama").json()["events"]
    assert [e["event_id"] for e in by_name] == [known["pipeline_data"]["event_id"]]

    # The pipeline's stats count them; the worker reports its warmed face engine.
    stats = wait_for(
        lambda: (
            (s := api.get(f"/pipeline/0/{stream_id}/NFV4-FR").json()["stats"])["events_emitted"] == 2 and s
        ),
        what="the pipeline's stats counting two events",
    )
    assert stats["errors"] == 0
    report = wait_for(
        lambda: (
            (r := json.loads(redis_client.get(node_runtime_key(0)) or "{}")).get("event_writer", {})
            and r["event_writer"]["written"] == 2
            and r
        ),
        what="the worker's runtime report counting two stored events",
    )
    assert report["models"]["face_engine"]["state"] == "ready"
    assert report["models"]["face_engine"]["provider"] == "CPUExecutionProvider"
    assert Event.objects.filter(stream_id=stream_id).count() == 2
