"""A new analytic touches no core file: TEST-MOTION (tests/analytics/motion_plugin.py)
is registered only by naming its module in ANALYTIC_MODULES, and then has its
config served, its model warmed, and runs in the real stream runner on a real
video, its events stored and sent to /event_channel.

The runner runs on a thread of this process and reads the database from there,
so the test commits (transaction=True)."""

from __future__ import annotations

import os
import re
import shutil
import sys
import threading
import time

import cv2
import pytest
from asgiref.sync import async_to_sync
from django.db import connections

from analytics import registry
from analytics.models import Analytic
from analytics.plugins import Frame
from analytics.services import analytics_sync_registry
from events.models import Event
from tests.events.websocket import WebsocketCommunicator
from tests.test_import_graph import ROOT, project_packages
from visionaire_site.asgi import application
from workers.event_sink import event_sink, event_sink_forget, event_sink_started
from workers.runner import StreamRunner

pytestmark = pytest.mark.django_db(transaction=True)

MODULE = "tests.analytics.motion_plugin"
ANALYTIC = "TEST-MOTION"
DEADLINE = 60  # seconds for what must happen on a loaded machine; never a pause


@pytest.fixture
def motion(transactional_db, settings):
    """TEST-MOTION installed the way an operator installs an analytic: its module
    named in ANALYTIC_MODULES, loaded as at start-up, the rows synced as after a
    migrate. Afterwards the registry is put back as it was (other tests count the
    analytics), before the database flush re-syncs the rows."""
    saved = dict(registry._REGISTRY)
    settings.ANALYTIC_MODULES = [*settings.ANALYTIC_MODULES, MODULE]
    sys.modules.pop(MODULE, None)  # imported afresh, so its @register runs against this registry
    registry.load_plugin_modules()
    analytics_sync_registry()
    yield sys.modules[MODULE]
    registry._REGISTRY.clear()
    registry._REGISTRY.update(saved)


@pytest.fixture
def sink():
    """This test's event writer, stopped afterwards (its thread holds a connection)."""

    def stop() -> None:
        started = event_sink_started()
        event_sink_forget()
        if started is not None:
            assert started.stop(timeout=10), "the event writer did not stop"

    stop()
    yield
    stop()


@pytest.fixture
def video(tmp_path, settings, media) -> str:
    root = tmp_path / "videos"
    root.mkdir()
    settings.STREAM_MEDIA_ROOT = os.path.realpath(root)
    # testsrc2 moves shapes across the picture: about 3% of it changes from frame to frame.
    return shutil.copy(
        media.small_h264(seconds=2, pattern="testsrc2"),
        os.path.join(settings.STREAM_MEDIA_ROOT, "moving.mp4"),
    )


def test_the_config_is_served_and_the_model_warms(api, motion):
    assert Analytic.objects.get(pk=ANALYTIC).installed
    schema = api.get(f"/config/pipeline/{ANALYTIC}")
    assert schema.status_code == 200
    properties = schema.json()["properties"]
    assert {name: properties[name]["default"] for name in properties} == {
        "sampling_time_ms": 100,
        "pixel_threshold": 25,
        "min_area": 0.01,
        "cooldown_ms": 5000,
    }

    # Its model is one of the shared models the registry reports and warms.
    (model,) = [m for m in registry.shared_models() if m.name == "motion-frame-difference"]
    assert model is motion.FRAME_DIFFERENCE
    status = model.warm_up()
    assert status["state"] == "ready" and status["provider"] == "opencv"


def test_overlay_boxes_the_motion_of_a_real_video(motion, video):
    processor = registry.get_plugin(ANALYTIC).create_processor(motion.MotionConfig(min_area=0.005))
    capture = cv2.VideoCapture(video)
    results = []
    try:
        for index in range(10):
            ok, image = capture.read()
            assert ok, f"frame {index} of {video}"
            frame = Frame(image=image, timestamp=index / 25, index=index, stream_id="0" * 16, node_num=0)
            results.append(processor.process(frame))
    finally:
        capture.release()
    assert results[0].overlay == [] and results[0].events == []  # nothing to compare with yet
    boxes = [item for result in results[1:] for item in result.overlay]
    assert boxes and all(item.kind == "box" and item.label == "motion" for item in boxes)
    events = [event for result in results for event in result.events]
    assert len(events) == 1  # the cooldown holds the rest back
    assert events[0].primary_text == "motion" and events[0].pipeline_data["area"] >= 0.005


def test_it_runs_in_the_stream_runner_and_its_events_reach_the_database_and_the_channel(
    api, motion, sink, video
):
    created = api.post("/streams/0", {"stream_address": video, "stream_name": "Yard"})
    assert created.status_code == 200, created.json()
    stream_id = created.json()["stream_id"]
    pipeline = api.post(f"/pipeline/0/{stream_id}/{ANALYTIC}", {"min_area": 0.005, "cooldown_ms": 0})
    assert pipeline.status_code == 200, pipeline.json()

    runner = StreamRunner(stream_id, node_num=0, worker_name="test")

    def run() -> None:
        try:
            runner.run()
        finally:
            connections.close_all()  # this thread's connection to the test database

    thread = threading.Thread(target=run, name=f"runner-{stream_id}", daemon=True)

    async def first_motion_message() -> dict:
        channel = WebsocketCommunicator(application, "/event_channel")
        connected, _ = await channel.connect(timeout=10)
        assert connected
        thread.start()
        deadline = time.monotonic() + DEADLINE
        try:
            while True:
                message = await channel.receive_json_from(timeout=max(0.1, deadline - time.monotonic()))
                if message["analytic_id"] == ANALYTIC:
                    return message
        finally:
            await channel.disconnect()

    try:
        message = async_to_sync(first_motion_message)()
        assert event_sink().flush(timeout=10)
    finally:
        runner.request_stop()
        thread.join(10)
    assert not thread.is_alive(), "the runner did not stop"

    assert (message["stream_id"], message["stream_name"], message["primary_text"]) == (
        stream_id,
        "Yard",
        "motion",
    )
    stored = Event.objects.get(event_id=message["pipeline_data"]["event_id"])
    assert (stored.analytic_id, stored.stream_id, stored.primary_text) == (ANALYTIC, stream_id, "motion")
    assert stored.pipeline_data["area"] == message["pipeline_data"]["area"] >= 0.005


def test_no_platform_file_names_it():
    names = re.compile(r"TEST-MOTION|motion_plugin|MotionAnalytic")
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for package in project_packages()
        for path in sorted((ROOT / package).rglob("*"))
        if path.suffix in {".py", ".html", ".js", ".txt", ".toml", ".json"}
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if names.search(line)
    ]
    assert offenders == []
