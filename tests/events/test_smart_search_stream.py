"""End to end: a real stream (a video file of a person) runs NFV4-SS in a stream
runner; the events it stores are found by another photo of that person and by
the stream's name, through POST /smart-search.

The runner reads the database from its own thread, so the test commits
(transaction=True; the flush after it runs post_migrate, which restores node 0 and the
analytics).
"""

from __future__ import annotations

import base64
import os
import subprocess
import threading

import cv2
import numpy as np
import pytest
from django.conf import settings
from django.db import connections

from events.models import Event
from tests.support.face_photos import FacePhotos, face_photos_dir, jpeg_bytes
from tests.support.media import FFMPEG
from tests.workers.conftest import wait_for
from workers.event_sink import event_sink_forget, event_sink_started
from workers.runner import StreamRunner

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SS = "NFV4-SS"


@pytest.fixture(scope="session")
def photos() -> FacePhotos:
    return FacePhotos(face_photos_dir(settings.DATA_DIR / "cache"))


@pytest.fixture
def person_video(tmp_path, settings, photos) -> str:
    """4 s at 25 fps, 640x360: Obama walks across for 2 s, then an empty grey scene."""
    root = tmp_path / "videos"
    frames = tmp_path / "frames"
    root.mkdir()
    frames.mkdir()
    settings.STREAM_MEDIA_ROOT = os.path.realpath(root)
    face = photos.bgr("obama.jpg")
    face = cv2.resize(face, (face.shape[1] * 240 // face.shape[0], 240))
    for index in range(100):
        canvas = np.full((360, 640, 3), 110, np.uint8)
        if index < 50:
            x = 40 + 4 * index
            canvas[60:300, x : x + face.shape[1]] = face[:, : 640 - x]
        cv2.imwrite(str(frames / f"frame_{index:03d}.png"), canvas)
    target = os.path.join(settings.STREAM_MEDIA_ROOT, "person.mp4")
    subprocess.run(
        [
            FFMPEG, "-nostdin", "-loglevel", "error", "-y", "-framerate", "25",
            "-i", str(frames / "frame_%03d.png"),
            "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-g", "25", target,
        ],
        check=True,
        timeout=120,
    )  # fmt: skip
    return target


@pytest.fixture
def crops(tmp_path, settings):
    settings.MEDIA_ROOT = str(tmp_path / "media")


@pytest.fixture(autouse=True)
def fresh_event_sink():
    """This test's events go through a sink of its own, stopped afterwards."""
    event_sink_forget()
    yield
    sink = event_sink_started()
    event_sink_forget()
    if sink is not None:
        assert sink.stop(timeout=10), "the event writer did not stop"


def run_stream(stream_id: str) -> tuple[StreamRunner, threading.Thread]:
    runner = StreamRunner(stream_id, node_num=0, worker_name="test")

    def body() -> None:
        try:
            runner.run()
        finally:
            connections.close_all()

    thread = threading.Thread(target=body, name=f"runner-{stream_id}", daemon=True)
    thread.start()
    return runner, thread


def test_faces_of_a_running_stream_are_found_by_photo_and_by_text(api, person_video, crops, photos):
    response = api.post("/streams/0", {"stream_address": person_video, "stream_name": "Camera Lobby"})
    assert response.status_code == 200, response.json()
    stream_id = response.json()["stream_id"]
    config = {"sampling_time_ms": 100, "track_timeout_ms": 600}
    assert api.post(f"/pipeline/0/{stream_id}/{SS}", config).status_code == 200

    runner, thread = run_stream(stream_id)
    try:
        # Each pass of the looping file is one track, whose event comes 0.6 s after the person left.
        wait_for(lambda: Event.objects.filter(analytic_id=SS).exists(), timeout=60, what="an NFV4-SS event")
    finally:
        runner.request_stop()
        thread.join(15)
    assert not thread.is_alive()

    event = Event.objects.filter(analytic_id=SS).order_by("timestamp").first()
    assert (event.stream_id, event.stream_name, event.pipeline_data["object"]) == (
        stream_id,
        "Camera Lobby",
        "face",
    )
    assert event.search_text == "face Camera Lobby"

    query = base64.b64encode(jpeg_bytes(photos.bgr("obama2.jpg"))).decode()
    by_photo = api.post("/smart-search", {"type": "image", "query": query}).json()["results"]
    assert by_photo and by_photo[0]["stream_id"] == stream_id and by_photo[0]["analytic_id"] == SS
    assert by_photo[0]["similarity"] >= 0.85
    assert base64.b64decode(by_photo[0]["image_jpeg"]).startswith(b"\xff\xd8")

    by_text = api.post("/smart-search", {"type": "text", "query": "camra lobby"}).json()["results"]
    assert by_text and {r["stream_id"] for r in by_text} == {stream_id}
