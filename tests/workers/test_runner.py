"""The stream runner (workers.runner.StreamRunner) in this process, on a thread,
against real Stream and Pipeline rows made through the API and real video files.

The runner reads the database from its own thread, so the tests commit
(transaction=True); the flush after each runs post_migrate, which restores
node 0, the analytics and their seats. Changes made through the API reach the runner through
its periodic re-read of the desired state (STREAM_DESIRED_CHECK_SECONDS, 0.5 s in
the test settings); one test runs the control listener instead.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from dataclasses import dataclass, field

import pytest
import redis
from django.db import connections
from prometheus_client.parser import text_string_to_metric_families
from redis.backoff import NoBackoff
from redis.retry import Retry

from analytics.plugins import EventRecord, ProcessResult
from events.models import Event
from live.keys import control_queue, lease_key, pipeline_stats_key, starting_key, stream_stats_key
from streams.models import Stream
from tests.support.analytics import BrightnessProcessor
from workers.control import ControlListener
from workers.event_sink import event_sink, event_sink_forget, event_sink_started
from workers.runner import RUNNERS, StreamRunner

from .conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

ANALYTIC = "TEST-BRIGHT"
STOPPED = {"state": "STOPPED", "last_error_msg": "Stream is stopped"}
# A 25 fps file: the measured rate must settle in here (a loaded machine may
# read outside it for a moment, so tests wait for it rather than sample once).
FPS_LOW, FPS_HIGH = 22, 28


@dataclass
class Running:
    runner: StreamRunner
    thread: threading.Thread
    result: dict = field(default_factory=dict)

    def ended(self, timeout: float) -> float:
        """Wait for run() to return; how long that took."""
        started = time.monotonic()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"the runner did not end within {timeout}s"
        return time.monotonic() - started


@pytest.fixture(autouse=True)
def fresh_event_sink():
    """Each test's events go through a sink of its own, stopped afterwards: its
    writer thread closes its database connection (or the test database could not
    be dropped at the end of the session) and nothing leaks into the next test."""

    def stop_started_sink() -> None:
        sink = event_sink_started()
        event_sink_forget()
        if sink is not None:
            assert sink.stop(timeout=10), "the event writer did not stop"

    stop_started_sink()
    yield
    stop_started_sink()


@pytest.fixture
def runners():
    """Start StreamRunners on threads; each is stopped (and must end) after the test."""
    started: list[Running] = []

    def start(stream_id: str, node_num: int = 0) -> Running:
        runner = StreamRunner(stream_id, node_num=node_num, worker_name="test")
        running = Running(runner, threading.Thread())

        def body() -> None:
            try:
                running.result["ran"] = runner.run()
            finally:
                connections.close_all()  # this thread's connection to the test database

        running.thread = threading.Thread(target=body, name=f"runner-{stream_id}", daemon=True)
        running.thread.start()
        started.append(running)
        return running

    yield start
    for running in started:
        running.runner.request_stop()
    for running in started:
        running.ended(timeout=10)


@pytest.fixture
def media_root(tmp_path, settings):
    root = tmp_path / "videos"
    root.mkdir()
    settings.STREAM_MEDIA_ROOT = os.path.realpath(root)
    return settings.STREAM_MEDIA_ROOT


@pytest.fixture
def video(media_root, media) -> str:
    """A 320x240 25 fps H.264 file (1 s, looped by the runner) under STREAM_MEDIA_ROOT."""
    return shutil.copy(media.small_h264(seconds=1), os.path.join(media_root, "small.mp4"))


@pytest.fixture
def wide_video(media_root, media) -> str:
    """A 640x360 25 fps H.264 file (1 s) under STREAM_MEDIA_ROOT."""
    return shutil.copy(media.h264(width=640, height=360, seconds=1), os.path.join(media_root, "wide.mp4"))


@pytest.fixture
def make_stream(api):
    def make(address: str, *, name: str = "Lobby") -> str:
        response = api.post("/streams/0", {"stream_address": address, "stream_name": name})
        assert response.status_code == 200, response.json()
        return response.json()["stream_id"]

    return make


def stats(redis_client, stream_id: str) -> dict:
    return redis_client.hgetall(stream_stats_key(stream_id))


def pipeline_stats(redis_client, stream_id: str) -> dict:
    return redis_client.hgetall(pipeline_stats_key(stream_id, ANALYTIC))


def stats_when(redis_client, stream_id: str, predicate, *, timeout: float = 10.0, what: str) -> dict:
    """The stream's stats once `predicate(stats)` holds."""
    return wait_for(
        lambda: (s := stats(redis_client, stream_id)) and predicate(s) and s, timeout=timeout, what=what
    )


def running_at(redis_client, stream_id: str, low: int = FPS_LOW, high: int = FPS_HIGH) -> dict:
    """The stream's stats once RUNNING with an fps in [low, high] (25 for the test files)."""
    return stats_when(
        redis_client,
        stream_id,
        lambda s: s["state"] == "RUNNING" and low <= int(s["fps"]) <= high,
        what=f"RUNNING at {low}-{high} fps",
    )


def flowing(redis_client, stream_id: str) -> dict:
    return running_at(redis_client, stream_id, low=1, high=1000)


def between_writes(redis_client, stream_id: str, read):
    """(stream stats, pipeline stats, read()) with read() done between two writes
    of the runner, so what a route shows can be compared with Redis exactly."""

    def attempt():
        before = stats(redis_client, stream_id), pipeline_stats(redis_client, stream_id)
        value = read()
        after = stats(redis_client, stream_id), pipeline_stats(redis_client, stream_id)
        return before == after and (*before, value)

    # A slow read (a /metrics scrape on a busy machine) may take several attempts.
    return wait_for(attempt, timeout=120, what="a read between two stats writes")


def add_pipeline(api, stream_id: str, **config) -> None:
    response = api.post(f"/pipeline/0/{stream_id}/{ANALYTIC}", config)
    assert response.status_code == 200, response.json()


def scrape(api) -> dict:
    text = api.get("/metrics").content.decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("visionaire_stream") or sample.name.startswith("visionaire_pipeline")
    }


# --- a stream at work ---------------------------------------------------------------


def test_a_stream_runs_with_live_stats_pipeline_and_events(api, runners, make_stream, video, redis_client):
    stream_id = make_stream(video)
    add_pipeline(api, stream_id, threshold=0, sampling_time_ms=200)
    started = time.time()
    running = runners(stream_id)

    live = running_at(redis_client, stream_id)
    assert live == {
        "fps": live["fps"],
        "frame_width": "320",
        "frame_height": "240",
        "state": "RUNNING",
        "last_error_msg": "Stream is running..",
        "frames_dropped": live["frames_dropped"],
        "reconnects": "0",
        "uptime_sec": live["uptime_sec"],
        "node_num": "0",
        "updated_at": live["updated_at"],
        "reconnect_attempts": "0",
        "frames_decoded": live["frames_decoded"],
        "last_frame_at": live["last_frame_at"],
    }
    assert started <= float(live["updated_at"]) <= time.time()
    assert int(live["frames_decoded"]) > 0 and started < float(live["last_frame_at"]) <= time.time()
    # While running, the figures expire unless refreshed (a killed worker shows no RUNNING stream).
    assert 0 < redis_client.ttl(stream_stats_key(stream_id)) <= 4
    assert redis_client.get(lease_key(stream_id)) == running.runner.lease.value
    assert RUNNERS.get(stream_id) is running.runner

    # One frame in every 200 ms of a 25 fps source: about 5 processed per second.
    figures = wait_for(
        lambda: (
            (p := pipeline_stats(redis_client, stream_id)) and 4.5 <= float(p["processed_fps"]) <= 5.5 and p
        ),
        what="the pipeline at its sampling rate",
    )
    assert float(figures["last_latency_ms"]) > 0 and float(figures["p95_latency_ms"]) > 0
    assert {k: figures[k] for k in ("events_emitted", "errors", "state", "last_error")} == {
        "events_emitted": "1",  # the first frame crossed threshold 0; it stays above
        "errors": "0",
        "state": "RUNNING",
        "last_error": "",
    }

    # The event went through the sink to the database.
    assert event_sink().flush(timeout=10)
    event = Event.objects.get()
    assert (event.stream_id, event.stream_name, event.node_num, event.analytic_id, event.primary_text) == (
        stream_id,
        "Lobby",
        0,
        ANALYTIC,
        "bright",
    )
    level = event.pipeline_data["level"]
    assert event.pipeline_data == {"event_id": str(event.event_id), "level": level} and level > 0
    assert started - 1 <= event.timestamp.timestamp() <= time.time()

    # The detail route serves the live figures.
    live, figures, body = between_writes(
        redis_client, stream_id, lambda: api.get(f"/streams/0/{stream_id}").json()
    )
    assert body["stream_stats"] == {
        "fps": int(live["fps"]),
        "frame_width": 320,
        "frame_height": 240,
        "state": "RUNNING",
        "last_error_msg": "Stream is running..",
        "frames_dropped": int(live["frames_dropped"]),
        "reconnects": 0,
        "uptime_sec": int(live["uptime_sec"]),
    }
    assert body["pipelines"] == [ANALYTIC] and int(live["uptime_sec"]) >= 1
    live, figures, body = between_writes(
        redis_client, stream_id, lambda: api.get(f"/pipeline/0/{stream_id}/{ANALYTIC}").json()
    )
    assert body["stats"] == {
        "processed_fps": float(figures["processed_fps"]),
        "last_latency_ms": float(figures["last_latency_ms"]),
        "p95_latency_ms": float(figures["p95_latency_ms"]),
        "events_emitted": 1,
        "errors": 0,
        "state": "RUNNING",
        "last_error": "",
    }

    # ... and so does /metrics.
    live, figures, metrics = between_writes(redis_client, stream_id, lambda: scrape(api))
    labels = (("node_num", "0"), ("stream_id", stream_id))
    pipeline_labels = tuple(sorted((*labels, ("analytic_id", ANALYTIC))))
    assert {name: value for (name, sample_labels), value in metrics.items() if sample_labels == labels} == {
        "visionaire_stream_fps": float(live["fps"]),
        "visionaire_stream_frames_dropped_total": float(live["frames_dropped"]),
        "visionaire_stream_reconnects_total": 0.0,
        "visionaire_stream_reconnect_attempts_total": 0.0,
        "visionaire_stream_uptime_seconds": float(live["uptime_sec"]),
    }
    assert metrics[("visionaire_stream_state", tuple(sorted((*labels, ("state", "RUNNING")))))] == 1.0
    assert {
        name: value for (name, sample_labels), value in metrics.items() if sample_labels == pipeline_labels
    } == {
        "visionaire_pipeline_processed_fps": float(figures["processed_fps"]),
        "visionaire_pipeline_inference_latency_seconds": pytest.approx(
            float(figures["last_latency_ms"]) / 1000
        ),
        "visionaire_pipeline_inference_latency_p95_seconds": pytest.approx(
            float(figures["p95_latency_ms"]) / 1000
        ),
        "visionaire_pipeline_events_emitted_total": 1.0,
        "visionaire_pipeline_errors_total": 0.0,
    }


def test_a_pipeline_that_raises_is_isolated_and_recovers(
    api, runners, make_stream, video, redis_client, monkeypatch
):
    def explode(self, frame):
        raise RuntimeError("analytic exploded")

    monkeypatch.setattr(BrightnessProcessor, "process", explode)
    stream_id = make_stream(video)
    add_pipeline(api, stream_id, threshold=0, sampling_time_ms=0)
    running = runners(stream_id)

    failing = wait_for(
        lambda: (p := pipeline_stats(redis_client, stream_id)) and int(p["errors"]) >= 10 and p,
        what="errors counted",
    )
    assert {k: v for k, v in failing.items() if k != "errors"} == {
        "processed_fps": "0.0",
        "last_latency_ms": "0.0",
        "p95_latency_ms": "0.0",
        "events_emitted": "0",
        "state": "RUNNING",
        "last_error": "RuntimeError: analytic exploded",
    }
    # The stream goes on: RUNNING, frames flowing.
    live = running_at(redis_client, stream_id)
    assert live["last_error_msg"] == "Stream is running.."
    decoded = running.runner.source.frames_decoded
    wait_for(lambda: running.runner.source.frames_decoded >= decoded + 10, what="frames still flowing")

    monkeypatch.undo()  # the analytic works again, in the same processor
    recovered = wait_for(
        lambda: (p := pipeline_stats(redis_client, stream_id)) and float(p["processed_fps"]) >= 15 and p,
        what="the pipeline processing again",
    )
    assert (recovered["state"], recovered["events_emitted"]) == ("RUNNING", "1")
    # The last error stays on show; no new ones are counted.
    errors = int(recovered["errors"])
    assert recovered["last_error"] == "RuntimeError: analytic exploded"
    wait_for(
        lambda: float(pipeline_stats(redis_client, stream_id)["processed_fps"]) >= 20,
        what="a full-rate pipeline",
    )
    assert int(pipeline_stats(redis_client, stream_id)["errors"]) == errors
    assert stats(redis_client, stream_id)["state"] == "RUNNING"


def test_a_refused_source_reports_reconnecting(api, runners, make_stream, refused_port, redis_client):
    stream_id = make_stream(f"rtsp://127.0.0.1:{refused_port}/cam")
    runners(stream_id)
    cause = f"connection refused by 127.0.0.1:{refused_port}"
    live = stats_when(
        redis_client,
        stream_id,
        lambda s: s["state"] == "RECONNECTING" and int(s["reconnect_attempts"]) >= 2,
        what="RECONNECTING with retries",
    )
    assert live["reconnects"] == "0"  # attempts, but never back
    assert live["last_error_msg"].endswith(f": {cause}")
    assert live["last_error_msg"].startswith("Reconnecting")
    assert (live["fps"], live["frame_width"], live["frame_height"], live["uptime_sec"]) == (
        "0",
        "0",
        "0",
        "0",
    )
    shown = api.get(f"/streams/0/{stream_id}").json()["stream_stats"]
    assert shown["state"] == "RECONNECTING" and shown["last_error_msg"].endswith(cause)
    assert shown["reconnects"] == 0 and "reconnect_attempts" not in shown  # the contract's shape


# --- leases -------------------------------------------------------------------------


def test_a_second_runner_for_the_same_stream_does_not_start(runners, make_stream, video, redis_client):
    stream_id = make_stream(video)
    first = runners(stream_id)
    flowing(redis_client, stream_id)
    value = redis_client.get(lease_key(stream_id))
    assert value == first.runner.lease.value and value.startswith("node0:test:")

    redis_client.set(starting_key(stream_id), 0)
    second = runners(stream_id)
    assert second.ended(timeout=2) < 1.0
    assert second.result == {"ran": False}
    assert second.runner.finished.is_set()
    assert redis_client.get(starting_key(stream_id)) is None  # the queued start was taken up
    assert redis_client.get(lease_key(stream_id)) == value
    assert RUNNERS.get(stream_id) is first.runner
    assert first.thread.is_alive()

    first.runner.request_stop()
    first.ended(timeout=5)
    assert first.result == {"ran": True}
    assert redis_client.get(lease_key(stream_id)) is None
    assert RUNNERS.get(stream_id) is None
    final = stats(redis_client, stream_id)
    assert {k: final[k] for k in ("state", "last_error_msg", "fps")} == {**STOPPED, "fps": "0"}
    assert 4 < redis_client.ttl(stream_stats_key(stream_id)) <= 60  # a final state stays readable

    # Released: a new runner starts.
    third = runners(stream_id)
    wait_for(lambda: redis_client.get(lease_key(stream_id)) == third.runner.lease.value, what="the new lease")


def test_a_runner_whose_lease_is_taken_stops(runners, make_stream, video, redis_client):
    stream_id = make_stream(video)
    running = runners(stream_id)
    flowing(redis_client, stream_id)
    # As if this worker had been frozen past the lease and another took the stream.
    redis_client.set(lease_key(stream_id), "node0:other:token", px=10_000)
    redis_client.delete(stream_stats_key(stream_id))  # the figures are the new holder's to write
    assert running.ended(timeout=4) < 3.0  # noticed at the next refresh (every second)
    # It left no final STOPPED over the stream that runs elsewhere now.
    assert stats(redis_client, stream_id).get("state") in (None, "RUNNING")
    assert running.result == {"ran": True}
    assert redis_client.get(lease_key(stream_id)) == "node0:other:token"  # not released: not ours
    assert RUNNERS.get(stream_id) is None


def test_a_lease_that_vanished_is_taken_again_without_a_restart(runners, make_stream, video, redis_client):
    stream_id = make_stream(video)
    running = runners(stream_id)
    flowing(redis_client, stream_id)
    value = redis_client.get(lease_key(stream_id))
    source = running.runner.source
    decoded = int(stats(redis_client, stream_id)["frames_decoded"])

    # As after Redis restarted empty (or the lease expired while Redis was away).
    redis_client.flushdb()
    wait_for(lambda: redis_client.get(lease_key(stream_id)) == value, timeout=5, what="the lease taken again")
    assert 0 < redis_client.pttl(lease_key(stream_id)) <= 3000
    live = stats_when(
        redis_client, stream_id, lambda s: int(s.get("frames_decoded", 0)) > decoded, what="the figures again"
    )
    # The same runner and session: nothing restarted, no counter reset.
    assert live["state"] == "RUNNING" and live["reconnects"] == "0"
    assert running.runner.source is source and running.thread.is_alive()
    assert RUNNERS.get(stream_id) is running.runner


class SilentRedis:
    """A TCP port that accepts connections (in the kernel) and never answers: a
    Redis that hangs, where each call waits for its whole timeout."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.port = self.socket.getsockname()[1]

    def client(self, *, binary: bool = False) -> redis.Redis:
        # As workers.runtime_redis makes them: one-second timeouts, no retries.
        return redis.Redis(
            port=self.port,
            decode_responses=not binary,
            socket_timeout=1,
            socket_connect_timeout=1,
            retry=Retry(NoBackoff(), 0),
        )

    def close(self) -> None:
        self.socket.close()


def test_a_redis_that_hangs_neither_stops_nor_starves_the_stream(
    api, runners, make_stream, video, redis_client
):
    stream_id = make_stream(video)
    add_pipeline(api, stream_id, threshold=0, sampling_time_ms=0)
    running = runners(stream_id)
    runner = running.runner
    flowing(redis_client, stream_id)
    value = redis_client.get(lease_key(stream_id))
    before = wait_for(
        lambda: (p := pipeline_stats(redis_client, stream_id)) and p["events_emitted"] == "1" and p,
        what="the pipeline's first event",
    )
    decoded = int(stats(redis_client, stream_id)["frames_decoded"])
    processed: list[float] = []
    process = runner._process
    runner._process = lambda *args: (processed.append(time.monotonic()), process(*args))
    source = runner.source

    silent = SilentRedis()
    real, real_binary = runner.client, runner.publisher.client
    try:
        runner.client = runner.lease.client = silent.client()
        runner.publisher.client = silent.client(binary=True)
        outage = time.monotonic()
        # Longer than the lease (3 s): it expires in the real Redis meanwhile.
        expired = lambda: redis_client.get(lease_key(stream_id)) is None  # noqa: E731
        wait_for(expired, timeout=10, what="the lease to expire")
        wait_for(lambda: time.monotonic() - outage >= 5, timeout=10, what="a 5 s outage")
        assert runner.redis_backoff.down
    finally:
        runner.client = runner.lease.client = real
        runner.publisher.client = real_binary
        silent.close()
    lasted = time.monotonic() - outage
    # Redis calls waited out their timeouts, but only one now and then: the frame
    # loop went on handing frames to the pipeline (at 25 fps, a call on every
    # stats tick would have left it a frame or two per second at most).
    during = [at for at in processed if outage <= at <= outage + lasted]
    assert len(during) >= 5 * lasted, (len(during), lasted)

    retaken = lambda: redis_client.get(lease_key(stream_id)) == value  # noqa: E731
    wait_for(retaken, timeout=10, what="the lease taken again")
    live = stats_when(
        redis_client,
        stream_id,
        lambda s: int(s["frames_decoded"]) >= decoded + len(during),
        what="the figures written again, counting on",
    )
    assert live["state"] == "RUNNING" and runner.source is source and running.thread.is_alive()
    assert not runner.redis_backoff.down
    # The same pipeline: its figures go on, and it emitted no second first event.
    after = wait_for(lambda: pipeline_stats(redis_client, stream_id), what="the pipeline figures again")
    assert after["events_emitted"] == before["events_emitted"] == "1"
    assert event_sink().flush(timeout=10)
    assert Event.objects.filter(stream_id=stream_id).count() == 1
    print(f"outage {lasted:.1f}s: {len(during)} frames processed meanwhile")


# --- the desired state, changed through the API -------------------------------------


def test_deactivating_stops_the_runner(api, runners, make_stream, video, redis_client):
    stream_id = make_stream(video)
    running = runners(stream_id)
    flowing(redis_client, stream_id)

    assert api.put(f"/streams/0/{stream_id}", {"active": False}).status_code == 200
    assert running.ended(timeout=5) < 3.0
    assert redis_client.get(lease_key(stream_id)) is None
    final = stats(redis_client, stream_id)
    assert {k: final[k] for k in ("state", "last_error_msg", "fps", "node_num")} == {
        **STOPPED,
        "fps": "0",
        "node_num": "0",
    }
    assert api.get(f"/streams/0/{stream_id}").json()["stream_stats"] == {
        "fps": 0,
        "frame_width": 0,
        "frame_height": 0,
        "state": "STOPPED",
        "last_error_msg": "Stream is stopped",
        "frames_dropped": int(final["frames_dropped"]),
        "reconnects": 0,
        "uptime_sec": 0,
    }


def test_an_address_change_opens_the_new_source(api, runners, make_stream, video, wide_video, redis_client):
    stream_id = make_stream(video)
    running = runners(stream_id)
    flowing(redis_client, stream_id)
    lease = redis_client.get(lease_key(stream_id))

    changed = time.monotonic()
    assert api.put(f"/streams/0/{stream_id}", {"stream_address": wide_video}).status_code == 200
    live = stats_when(
        redis_client,
        stream_id,
        lambda s: s["frame_width"] == "640" and s["state"] == "RUNNING",
        timeout=5,
        what="the new source",
    )
    assert time.monotonic() - changed < 3.0
    assert (live["frame_width"], live["frame_height"], live["reconnects"]) == ("640", "360", "0")
    assert running.runner.source.address == wide_video
    assert redis_client.get(lease_key(stream_id)) == lease  # the same task, the same lease
    assert running.thread.is_alive()


def test_pipeline_changes_reach_the_running_stream(
    api, runners, make_stream, video, redis_client, monkeypatch
):
    def close(self):  # as an analytic holding an event until it is closed (a track in progress)
        return ProcessResult(events=[EventRecord(primary_text="flushed at close")])

    monkeypatch.setattr(BrightnessProcessor, "close", close)
    stream_id = make_stream(video)
    add_pipeline(api, stream_id, sampling_time_ms=200)
    running = runners(stream_id)
    wait_for(
        lambda: (p := pipeline_stats(redis_client, stream_id)) and float(p["processed_fps"]) >= 4.5,
        what="the pipeline running",
    )

    assert api.delete(f"/pipeline/0/{stream_id}/{ANALYTIC}").status_code == 200
    wait_for(lambda: running.runner.host.slots == [], timeout=5, what="the pipeline removed")
    # What the closed processor held was stored (the runner hands it to the event
    # writer just after the slot is gone: await the writer's count, then flush).
    wait_for(lambda: event_sink().stats()["submitted"] >= 1, timeout=60, what="the flushed event submitted")
    assert event_sink().flush(timeout=10)
    assert list(Event.objects.values_list("stream_id", "analytic_id", "primary_text")) == [
        (stream_id, ANALYTIC, "flushed at close")
    ]
    # The removed pipeline's figures are no longer refreshed (they expire within 4 s).
    ttl = redis_client.pttl(pipeline_stats_key(stream_id, ANALYTIC))
    written = stats(redis_client, stream_id)["updated_at"]
    stats_when(redis_client, stream_id, lambda s: s["updated_at"] != written, what="the next stats")
    assert redis_client.pttl(pipeline_stats_key(stream_id, ANALYTIC)) < ttl <= 4000

    add_pipeline(api, stream_id, sampling_time_ms=500)
    [slot] = wait_for(lambda: running.runner.host.slots, timeout=5, what="the pipeline back")
    assert (slot.spec.config["sampling_time_ms"], slot.interval_s) == (500, 0.5)
    # One frame in every 500 ms: about 2 per second.
    wait_for(
        lambda: 1.8 <= float(pipeline_stats(redis_client, stream_id)["processed_fps"]) <= 2.2,
        what="the new sampling rate",
    )
    assert stats(redis_client, stream_id)["state"] == "RUNNING"


def test_deleting_the_stream_ends_the_runner(api, runners, make_stream, video, redis_client):
    stream_id = make_stream(video)
    add_pipeline(api, stream_id)
    running = runners(stream_id)
    flowing(redis_client, stream_id)

    assert api.delete(f"/streams/0/{stream_id}").status_code == 200
    assert running.ended(timeout=5) < 5.0
    assert running.result == {"ran": True}
    assert redis_client.get(lease_key(stream_id)) is None
    assert RUNNERS.get(stream_id) is None
    assert not Stream.objects.filter(pk=stream_id).exists()


def test_an_inactive_stream_or_one_of_another_node_does_not_run(
    api, runners, make_stream, video, redis_client
):
    stream_id = make_stream(video)
    elsewhere = runners(stream_id, node_num=1)  # the stream belongs to node 0
    assert elsewhere.ended(timeout=5) < 2.0
    assert elsewhere.result == {"ran": True}
    assert {k: stats(redis_client, stream_id)[k] for k in ("state", "last_error_msg", "node_num")} == {
        **STOPPED,
        "node_num": "1",
    }

    assert api.put(f"/streams/0/{stream_id}", {"active": False}).status_code == 200
    inactive = runners(stream_id)
    assert inactive.ended(timeout=5) < 2.0
    assert redis_client.get(lease_key(stream_id)) is None


# --- restart ------------------------------------------------------------------------


def test_request_restart_starts_a_new_session_under_the_same_lease(runners, make_stream, video, redis_client):
    stream_id = make_stream(video)
    running = runners(stream_id)
    stats_when(
        redis_client,
        stream_id,
        lambda s: s["state"] == "RUNNING" and int(s["uptime_sec"]) >= 1,
        what="a second of uptime",
    )
    lease = redis_client.get(lease_key(stream_id))
    old = running.runner.source

    asked = time.time()
    running.runner.request_restart()
    wait_for(
        lambda: (s := running.runner.source) is not None and s is not old and s.state == "RUNNING",
        timeout=5,
        what="a new source",
    )
    fresh = stats_when(
        redis_client,
        stream_id,
        lambda s: float(s["updated_at"]) > asked and s["state"] == "RUNNING",
        what="RUNNING after the restart",
    )
    assert (fresh["state"], fresh["reconnects"]) == ("RUNNING", "0")
    # Uptime counts from the new session: never more than the time since the restart
    # (the old session's would be at least a second more).
    assert int(fresh["uptime_sec"]) <= float(fresh["updated_at"]) - asked
    assert running.runner.source.running_since > asked
    assert redis_client.get(lease_key(stream_id)) == lease
    assert running.thread.is_alive() and RUNNERS.get(stream_id) is running.runner


def test_a_file_that_does_not_loop_ends_and_the_runner_waits(
    api, runners, make_stream, video, redis_client, settings
):
    settings.STREAM_LOOP_FILES = False
    stream_id = make_stream(video)
    running = runners(stream_id)
    ended = stats_when(
        redis_client, stream_id, lambda s: s["state"] == "STOPPED", timeout=5, what="the end of the file"
    )
    assert (ended["last_error_msg"], ended["fps"], ended["frame_width"]) == (
        "End of file reached",
        "0",
        "320",
    )
    # The task goes on (holding the lease) until the stream is changed or stopped.
    assert running.thread.is_alive()
    assert redis_client.get(lease_key(stream_id)) == running.runner.lease.value
    assert running.runner.source.frames_decoded == 25

    assert api.put(f"/streams/0/{stream_id}", {"active": False}).status_code == 200
    running.ended(timeout=5)
    assert redis_client.get(lease_key(stream_id)) is None


def test_control_messages_take_effect_without_waiting_for_the_periodic_check(
    api, runners, make_stream, video, wide_video, redis_client, settings
):
    settings.STREAM_DESIRED_CHECK_SECONDS = 60.0  # only the control queue can tell the runner now
    stream_id = make_stream(video)
    running = runners(stream_id)
    flowing(redis_client, stream_id)
    listener = ControlListener(0)
    listener.start()  # takes the create's "start" first: a reload for the running stream
    try:
        changed = time.monotonic()
        assert api.put(f"/streams/0/{stream_id}", {"stream_address": wide_video}).status_code == 200
        wait_for(
            lambda: running.runner.source and running.runner.source.address == wide_video,
            timeout=5,
            what="the new address",
        )
        assert time.monotonic() - changed < 2.0
        stats_when(redis_client, stream_id, lambda s: s["frame_width"] == "640", timeout=5, what="640 wide")

        assert api.delete(f"/streams/0/{stream_id}").status_code == 200
        assert running.ended(timeout=5) < 2.0
    finally:
        listener.stop()
    assert redis_client.llen(control_queue(0)) == 0  # every message was taken
