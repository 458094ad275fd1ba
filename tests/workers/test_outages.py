"""Outages a running stream must ride out, on a real node worker.

The worker (node 5) runs against a Redis of this module's own (its broker,
leases and live figures), so the tests can kill that Redis and start it again
empty without touching the suite's Redis; it shares the pytest database. The
API writes streams to the database as usual; the start reaches the worker as
the API would send it, through the node's control queue in that Redis. What
the runtime did is read from that Redis (the stream's stats hash, the lease)
and from the worker's log (timestamped runner start and end lines).

Sources are the real GStreamer RTSP server; a camera that hangs is the server
frozen with SIGSTOP (connections open, nothing sent).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable

import pytest

from events.models import Event
from live.keys import control_queue, lease_key, pipeline_stats_key, stream_stats_key
from platform_config.models import Node
from streams.models import Stream
from tests.support.redis_server import RedisServer
from tests.support.workers import WorkerProcess, runner_events, spawn_worker

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

NODE = 5
ANALYTIC = "TEST-BRIGHT"
STALL_SECONDS = 2.0  # the test settings' STREAM_STALL_SECONDS
STALLED = re.compile(r"Reconnecting(?: in [0-9.]+s)?: no frame for (\d+)s \(stalled source\)")


class Node5:
    def __init__(self, redis_server: RedisServer, worker: WorkerProcess):
        self.redis_server = redis_server
        self.worker = worker

    @property
    def redis(self):
        return self.redis_server.client()


@pytest.fixture(scope="module")
def node5(django_db_setup, tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("outage-worker")
    server = RedisServer(log_dir / "redis").start()
    worker = spawn_worker(NODE, log_dir=log_dir, hostname="node5@outages", env={"REDIS_URL": server.url})
    try:
        worker.wait_online(server.client(), timeout=60)
        yield Node5(server, worker)
    finally:
        worker.stop(timeout=20)
        server.stop()


@pytest.fixture
def node(node5, api):
    """Node 5 registered; afterwards its streams deleted and their runners gone."""
    Node.objects.get_or_create(num=NODE)  # the worker registered it, but a test's flush removed it
    yield node5
    try:
        for stream in Stream.objects.filter(node_id=NODE):
            api.delete(f"/streams/{NODE}/{stream.stream_id}")
        # The runners see the deletion at their next re-read of the desired state.
        poll(lambda: not list(node5.redis.scan_iter(match=lease_key("*"))), "every runner to end")
    finally:
        print(node5.worker.log_tail(12000))  # shown by pytest only when the test failed


def poll(predicate: Callable[[], object], what: str, *, timeout: float = 20.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def start_stream(api, node: Node5, address: str, *, pipeline: bool = False) -> str:
    response = api.post(f"/streams/{NODE}", {"stream_address": address, "stream_name": "camera"})
    assert response.status_code == 200, response.json()
    stream_id = response.json()["stream_id"]
    if pipeline:
        response = api.post(
            f"/pipeline/{NODE}/{stream_id}/{ANALYTIC}", {"threshold": 0, "sampling_time_ms": 200}
        )
        assert response.status_code == 200, response.json()
    # As streams.services.node_control_publish does, into the worker's Redis.
    node.redis.lpush(control_queue(NODE), json.dumps({"action": "start", "stream_id": stream_id}))
    return stream_id


def stats(node: Node5, stream_id: str) -> dict:
    try:
        return node.redis.hgetall(stream_stats_key(stream_id))
    except Exception:  # Redis is down in the middle of a test
        return {}


def running_stats(node: Node5, stream_id: str, *, after: float = 0.0, timeout: float = 20.0) -> dict:
    """The stream's stats once RUNNING, as written after `after` (unix time)."""
    return poll(
        lambda: (
            (s := stats(node, stream_id))
            and s["state"] == "RUNNING"
            and float(s["updated_at"]) > after
            and int(s["frames_decoded"]) > 0
            and s
        ),
        f"stream {stream_id} RUNNING",
        timeout=timeout,
    )


def test_a_redis_outage_does_not_restart_streams(api, node, rtsp_server):
    stream_id = start_stream(api, node, rtsp_server.url, pipeline=True)
    running_stats(node, stream_id)
    poll(
        lambda: node.redis.hget(pipeline_stats_key(stream_id, ANALYTIC), "events_emitted") == "1",
        "the pipeline's first event",
    )
    before = stats(node, stream_id)
    lease = node.redis.get(lease_key(stream_id))
    assert lease.startswith(node.worker.lease_owner)

    # Killed for longer than the lease (3 s), then back empty: no lease, no figures, no queues.
    node.redis_server.kill()
    killed_at = time.time()
    poll(lambda: time.time() - killed_at >= 7, "a 7 s outage", timeout=30)  # the outage itself
    assert node.worker.running
    node.redis_server.start()
    back_at = time.time()
    assert node.redis.get(lease_key(stream_id)) is None  # an empty Redis

    # The same runner takes its lease again and reports on.
    again = running_stats(node, stream_id, after=back_at, timeout=30)
    assert node.redis.get(lease_key(stream_id)) == lease  # its own token: not a new runner
    took = float(again["updated_at"]) - back_at
    # Decoding never stopped: the frame counter went on from where it was, past
    # the frames of the outage (25 fps live; half of them is ample on a loaded machine).
    outage = back_at - killed_at
    assert int(again["frames_decoded"]) >= int(before["frames_decoded"]) + 12 * outage, (before, again)
    assert again["reconnects"] == "0" and again["reconnect_attempts"] == "0"
    assert float(again["last_frame_at"]) > back_at - 1  # frames now, not only before the outage

    events = runner_events(node.worker, stream_id=stream_id)
    assert [event.what for event in events] == ["started"], events
    log = node.worker.log_text()
    assert f"stream {stream_id}: lease had vanished" in log
    # The pipeline was not restarted either: its counters went on, and a fresh
    # processor would have emitted its first event again.
    figures = poll(
        lambda: node.redis.hgetall(pipeline_stats_key(stream_id, ANALYTIC)), "the pipeline figures"
    )
    assert figures["events_emitted"] == "1" and figures["errors"] == "0"
    assert Event.objects.filter(stream_id=stream_id).count() == 1
    print(f"Redis down {outage:.1f}s; stream reported RUNNING {took:.1f}s after Redis was back")


def test_a_hung_camera_is_reconnecting_at_the_stall_limit_and_recovers(api, node, rtsp_server):
    stream_id = start_stream(api, node, rtsp_server.url)
    running_stats(node, stream_id)
    bound = STALL_SECONDS + 2.0

    seen: list[dict] = []
    with rtsp_server.paused():
        paused_at = time.time()
        while time.time() - paused_at < 25:
            current = stats(node, stream_id)
            if current and (not seen or current["updated_at"] != seen[-1]["updated_at"]):
                seen.append(current)
            time.sleep(0.05)  # sampling pace over a fixed 25 s pause
    resumed_at = time.time()

    # RECONNECTING within the bound after the last frame, as the runner itself reports both times.
    stalled = [s for s in seen if s["state"] == "RECONNECTING"]
    assert stalled, seen[-3:]
    first = stalled[0]
    last_frame_at = float(first["last_frame_at"])
    noticed = float(first["updated_at"]) - last_frame_at
    assert noticed <= bound, (noticed, first)
    said = STALLED.fullmatch(first["last_error_msg"])
    assert said, first
    assert STALL_SECONDS <= int(said[1]) <= noticed + 0.5, (said[1], noticed)
    # Never RUNNING (nor counting frames) past the bound while paused.
    for snapshot in seen:
        silent = float(snapshot["updated_at"]) - float(snapshot["last_frame_at"])
        assert snapshot["state"] != "RUNNING" or silent <= bound, snapshot
        assert snapshot["state"] == "RUNNING" or snapshot["fps"] == "0", snapshot
    assert seen[-1]["state"] == "RECONNECTING" and seen[-1]["last_frame_at"] == first["last_frame_at"]

    # Back: RUNNING again soon, and the reported rate never above the camera's 25 fps
    # (FFmpeg hands over its probe's frames in a burst right after the connect).
    back = running_stats(node, stream_id, after=resumed_at, timeout=30)
    recovered = float(back["updated_at"]) - resumed_at
    assert recovered <= 10, recovered
    after: list[dict] = []

    def three_seconds_on() -> bool:
        after.append(stats(node, stream_id))
        return float(after[-1]["updated_at"]) > float(back["updated_at"]) + 3

    poll(three_seconds_on, "3 s of figures after the recovery")
    assert max(int(s["fps"]) for s in [back, *after]) <= 25, after
    # One outage, one recovery; the attempts are counted apart.
    assert back["reconnects"] == "1"
    assert int(after[-1]["reconnect_attempts"]) >= 1
    assert [event.what for event in runner_events(node.worker, stream_id=stream_id)] == ["started"]
    print(
        f"stall noticed {noticed:.1f}s after the last frame ({first['last_error_msg']!r}); "
        f"RUNNING {recovered:.1f}s after the camera resumed; "
        f"{after[-1]['reconnect_attempts']} attempts"
    )
