"""End to end: streams created through the API run on real node workers.

Two Celery workers (node 0 and node 1, each consuming `node.N,control` as the
launcher starts them) and Celery beat (the reconcile job every second) run for
the whole module against the pytest database and Redis. Every desired-state
change goes through the API (the test client commits, so the control messages
are sent on commit); what the runtime did is read back through the API (stream
detail), Redis (stats hash, lease) and the workers' logs (timestamped runner
start and end lines). Sources are real: the GStreamer RTSP server, an MJPEG
HTTP server, H.264 files, an HTML page, a refused port.

The workers are shared by the tests: each test creates its own streams and
deletes them (and waits for their runners to end) before the next one starts.
Redis is therefore not flushed between these tests (the workers' broker
bindings and heartbeats live there); see `clean_live_state` below.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from live.keys import lease_key, stream_stats_key
from live.redis import get_redis, key
from platform_config import selectors as config_selectors
from platform_config.models import Node
from streams.models import Stream
from tests.support.workers import (
    ManagedProcess,
    WorkerProcess,
    runner_events,
    runner_overlaps,
    spawn_beat,
    spawn_worker,
)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# How long a fault or a change may take to show through the API. The test
# settings make faults quick (stall 2 s, open timeout 3 s, backoff <= 1 s).
SOON = 10.0
RECONNECTING_BECAUSE = "Reconnecting(?: in [0-9.]+s)?: {}"


# --- the shared cluster -----------------------------------------------------------


class Cluster:
    """The module's worker processes: the current worker of each node, beat,
    and every process started so far (killed ones too, for their logs)."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.workers: dict[int, WorkerProcess] = {}
        self.beat: ManagedProcess | None = None
        self.processes: list[ManagedProcess] = []
        self._generation = 0

    def start_worker(self, node_num: int) -> WorkerProcess:
        self._generation += 1
        worker = spawn_worker(
            node_num, log_dir=self.log_dir, hostname=f"node{node_num}-g{self._generation}@e2e"
        )
        self.processes.append(worker)
        self.workers[node_num] = worker
        return worker

    def start(self) -> None:
        redis = get_redis()
        started = [self.start_worker(0), self.start_worker(1)]
        self.beat = spawn_beat(log_dir=self.log_dir, reconcile_seconds=1.0)
        self.processes.append(self.beat)
        for worker in started:
            worker.wait_online(redis)

    def stop(self) -> None:
        for process in self.processes:  # all at once: each shutdown takes a few seconds
            process.terminate()
        for process in self.processes:
            process.stop(timeout=15)

    def log_tails(self, size: int = 5000) -> str:
        return "\n".join(process.log_tail(size) for process in self.processes)


@pytest.fixture(scope="module")
def cluster(django_db_setup, tmp_path_factory):
    cluster = Cluster(tmp_path_factory.mktemp("e2e-workers"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(autouse=True)
def clean_live_state():
    """Replaces the suite's Redis flush for this module: the shared workers keep
    their broker bindings, heartbeats and restart generation. Streams clean up
    after themselves (see `e2e`)."""
    config_selectors._cache.update(version=None, config=None)
    yield
    config_selectors._cache.update(version=None, config=None)


def _runtime_keys(redis) -> list[str]:
    patterns = [key("lease", "stream", "*"), key("starting", "*"), key("stream", "*"), key("pipeline", "*")]
    return [name for pattern in patterns for name in redis.scan_iter(match=pattern)]


@pytest.fixture
def e2e(cluster, api, settings, media):
    """Node 1 registered, file sources allowed from the media cache; afterwards
    every stream deleted through the API and its runner gone."""
    redis = get_redis()
    Node.objects.get_or_create(num=1)  # the worker registered it, but a flush may have removed it
    settings.STREAM_MEDIA_ROOT = os.path.realpath(media.root)
    yield cluster
    try:
        for stream in Stream.objects.all():
            api.delete(f"/streams/{stream.node_id}/{stream.stream_id}")
        poll(lambda: not list(redis.scan_iter(match=key("lease", "stream", "*"))), "every runner to end")
        leftovers = _runtime_keys(redis)
        if leftovers:
            redis.delete(*leftovers)
    finally:
        # Shown by pytest only when the test failed.
        print(cluster.log_tails())


# --- helpers ------------------------------------------------------------------------


_last_seen: list[object] = []  # what the predicate of the running poll() last observed


def poll(predicate: Callable[[], object], what: str, *, timeout: float = SOON, interval: float = 0.05):
    """Call `predicate` until it returns something truthy; fail after `timeout`
    naming the last value the predicate passed to `observe` (stream stats)."""
    _last_seen.clear()
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            last = _last_seen[-1] if _last_seen else None
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last seen: {last}")
        time.sleep(interval)


def observe(value):
    _last_seen[:] = [value]
    return value


def create(api, node: int, address: str, name: str = "", **fields) -> str:
    response = api.post(f"/streams/{node}", {"stream_address": address, "stream_name": name, **fields})
    assert response.status_code == 200, response.json()
    return response.json()["stream_id"]


def detail(api, node: int, stream_id: str) -> dict:
    response = api.get(f"/streams/{node}/{stream_id}")
    assert response.status_code == 200, response.json()
    return response.json()


def stats(api, node: int, stream_id: str) -> dict:
    return observe({"stream_id": stream_id, **detail(api, node, stream_id)["stream_stats"]})


def stats_when(api, node: int, stream_id: str, condition: Callable[[dict], bool], what: str, **kw) -> dict:
    """Wait until the stream's stats satisfy `condition`; returns them."""

    def satisfied():
        current = stats(api, node, stream_id)
        return current if condition(current) else None

    return poll(satisfied, f"stream {stream_id} on node {node}: {what}", **kw)


def wait_state(api, node: int, stream_id: str, state: str, message: str | None = None, **figures) -> dict:
    """Wait until the stream's stats show `state` (and `message`, a regex matched
    whole, and each figure in `figures`); returns those stats."""

    def reached():
        current = stats(api, node, stream_id)
        if current["state"] != state:
            return None
        if message is not None and not re.fullmatch(message, current["last_error_msg"]):
            return None
        if any(current[name] != value for name, value in figures.items()):
            return None
        return current

    return poll(reached, f"stream {stream_id} on node {node} to be {state} {message or ''} {figures or ''}")


def running(api, node: int, stream_id: str, **figures) -> dict:
    current = wait_state(api, node, stream_id, "RUNNING", **figures)
    assert current["last_error_msg"] == "Stream is running.."
    return current


def lease(stream_id: str) -> str | None:
    return get_redis().get(lease_key(stream_id))


def raw_stats(stream_id: str) -> dict:
    return get_redis().hgetall(stream_stats_key(stream_id))


def reconnecting(api, node: int, stream_id: str, cause: str | re.Pattern) -> dict:
    """Wait until the stream is RECONNECTING with a message naming `cause`
    (text, or a pattern), as the capture words it: "Reconnecting[ in 0.4s]: <cause>"."""
    cause = cause.pattern if isinstance(cause, re.Pattern) else re.escape(cause)
    return wait_state(api, node, stream_id, "RECONNECTING", RECONNECTING_BECAUSE.format(cause))


def running_on(api, node: int, stream_id: str, worker: WorkerProcess, *, timeout: float = SOON) -> dict:
    """Wait until `worker` holds the stream's lease and has itself reported it
    RUNNING (stats written after it took the lease: not what a dead or frozen
    runner left behind); returns those stats."""
    owned = lambda: (lease(stream_id) or "").startswith(worker.lease_owner)  # noqa: E731
    poll(owned, f"{worker.name} to take the lease of {stream_id}", timeout=timeout)
    taken_at = time.time()

    def reported() -> bool:
        # State and time from one read of the figures: read apart, the state could be
        # the frozen runner's last RUNNING and the time the new runner's first write.
        figures = observe({"stream_id": stream_id, **raw_stats(stream_id)})
        return figures.get("state") == "RUNNING" and float(figures.get("updated_at", 0)) > taken_at

    poll(reported, f"stream {stream_id}: RUNNING as reported by {worker.name}", timeout=timeout)
    return stats(api, node, stream_id)


def stable_leases(stream_ids: list[str], seconds: float) -> dict[str, str]:
    """The streams' lease values, checked unchanged for `seconds`: an observation
    window (longer than a reconcile period) in which a second runner would show."""
    values = {stream_id: lease(stream_id) for stream_id in stream_ids}
    assert all(values.values()), f"a stream holds no lease: {values}"
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        now = {stream_id: lease(stream_id) for stream_id in stream_ids}
        assert now == values, f"a lease changed hands: {values} -> {now}"
        time.sleep(0.05)
    return values


# --- 1. two nodes --------------------------------------------------------------------


def test_streams_run_only_on_their_node(api, e2e, media, rtsp_server, mjpeg_server):
    one_second = str(media.h264(width=320, height=240, seconds=1))
    looped = create(api, 0, one_second, "file looped")
    on_node_0 = {create(api, 0, rtsp_server.url, "rtsp live"): rtsp_server.url, looped: one_second}
    on_node_1 = {create(api, 1, mjpeg_server.url, "mjpeg"): mjpeg_server.url}

    for node, streams in ((0, on_node_0), (1, on_node_1)):
        for stream_id, address in streams.items():
            current = running(api, node, stream_id, frame_width=320, frame_height=240)
            body = detail(api, node, stream_id)
            assert body == {
                "stream_id": stream_id,
                "stream_name": body["stream_name"],
                "stream_address": address,
                "stream_node_num": node,
                "stream_latitude": 0.0,
                "stream_longitude": 0.0,
                "stream_custom_data": {},
                "active": True,
                "pipelines": [],
                "seats": [],
                "stream_stats": {
                    "fps": body["stream_stats"]["fps"],
                    "frame_width": 320,
                    "frame_height": 240,
                    "state": "RUNNING",
                    "last_error_msg": "Stream is running..",
                    "frames_dropped": body["stream_stats"]["frames_dropped"],
                    "reconnects": 0,
                    "uptime_sec": body["stream_stats"]["uptime_sec"],
                },
            }
            assert current["fps"] >= 0
            # Where it runs: the runner's own figures and its lease name its node and worker.
            assert raw_stats(stream_id)["node_num"] == str(node)
            assert lease(stream_id).startswith(e2e.workers[node].lease_owner)
            other = e2e.workers[1 - node]
            assert runner_events(other, stream_id=stream_id) == []
            assert [e.what for e in runner_events(e2e.workers[node], stream_id=stream_id)] == ["started"]

    # The measured rate settles near the sources' 25 fps.
    for node, streams in ((0, on_node_0), (1, on_node_1)):
        for stream_id in streams:
            stats_when(api, node, stream_id, lambda s: 20 <= s["fps"] <= 30, "about 25 fps")

    # The one-second file plays on and on: rewound in place, never reconnected.
    current = stats_when(api, 0, looped, lambda s: s["uptime_sec"] >= 3, "3 s of a 1 s file")
    assert (current["state"], current["reconnects"]) == ("RUNNING", 0)


# --- 2. faults through the full stack ---------------------------------------------------


def test_faults_show_through_the_api(
    api, e2e, rtsp_server, mjpeg_server, html_server, refused_port, not_a_video_file, text_as_video_file
):
    live = create(api, 0, rtsp_server.url, "rtsp")
    stalling = create(api, 1, mjpeg_server.url, "mjpeg")
    refused_stream = create(api, 0, f"rtsp://127.0.0.1:{refused_port}/test", "refused")
    html = create(api, 1, html_server.url, "html")
    garbage = create(api, 0, str(not_a_video_file), "random bytes")
    text = create(api, 1, str(text_as_video_file), "text")

    # Sources that never worked: each says why.
    reconnecting(api, 0, refused_stream, f"connection refused by 127.0.0.1:{refused_port}")
    reconnecting(api, 1, html, f"127.0.0.1:{html_server.port} answered but sent no readable video")
    reconnecting(api, 0, garbage, f"file is not a readable video: {not_a_video_file}")
    reconnecting(api, 1, text, f"file is not a readable video: {text_as_video_file}")

    # The camera goes away mid-stream, then comes back on the same port.
    running(api, 0, live)
    port = rtsp_server.port
    rtsp_server.stop()
    reconnecting(api, 0, live, f"connection refused by 127.0.0.1:{port}")
    rtsp_server.start()
    assert rtsp_server.port == port
    back = running(api, 0, live)
    assert back["reconnects"] >= 1

    # A frozen camera: the connection stays open, no frame comes.
    running(api, 1, stalling)
    mjpeg_server.stall()
    reconnecting(api, 1, stalling, re.compile(r"no frame for \d+s \(stalled source\)"))
    mjpeg_server.resume()
    assert running(api, 1, stalling)["reconnects"] >= 1


# --- 3. desired-state changes -------------------------------------------------------------


def test_updates_take_effect_within_seconds(api, e2e, media, rtsp_server, redis_client):
    worker = e2e.workers[0]
    small = media.h264(width=160, height=120, seconds=2)
    stream_id = create(api, 0, rtsp_server.url, "camera")
    running(api, 0, stream_id, frame_width=320, frame_height=240)
    first_lease = lease(stream_id)

    # A new address: the same runner opens the new source.
    response = api.put(f"/streams/0/{stream_id}", {"stream_address": str(small)})
    assert response.json() == {
        "code": 200,
        "message": "stream successfully updated",
        "node_num": 0,
        "stream_id": stream_id,
        "stream_address": str(small),
        "stream_name": "camera",
    }
    changed_at = time.monotonic()
    running(api, 0, stream_id, frame_width=160, frame_height=120)
    assert time.monotonic() - changed_at < 5
    assert lease(stream_id) == first_lease

    # Deactivated: STOPPED, its runner gone.
    response = api.put(f"/streams/0/{stream_id}", {"active": False})
    assert response.status_code == 200
    changed_at = time.monotonic()
    wait_state(api, 0, stream_id, "STOPPED", re.escape("Stream is stopped"))
    poll(lambda: lease(stream_id) is None, "the lease to be released")
    assert time.monotonic() - changed_at < 5
    assert [e.what for e in runner_events(worker, stream_id=stream_id)] == ["started", "ended"]

    # Active again: a new runner.
    assert api.put(f"/streams/0/{stream_id}", {"active": True}).status_code == 200
    running(api, 0, stream_id, frame_width=160, frame_height=120)
    assert lease(stream_id) not in (None, first_lease)

    # Deleted: the task ends within 5 s.
    response = api.delete(f"/streams/0/{stream_id}")
    assert response.json() == {
        "code": 200,
        "message": "stream successfully deleted",
        "node_num": 0,
        "stream_id": stream_id,
    }
    deleted_at = time.monotonic()
    poll(lambda: lease(stream_id) is None, "the lease to be released after DELETE", timeout=5)
    poll(
        lambda: [e.what for e in runner_events(worker, stream_id=stream_id)] == ["started", "ended"] * 2,
        "'runner ended' in the worker log",
        timeout=max(0.1, 5 - (time.monotonic() - deleted_at)),
    )
    assert api.get(f"/streams/0/{stream_id}").json() == {"code": 404, "message": "stream not found"}


# --- 4. a killed worker ----------------------------------------------------------------------


def test_streams_resume_exactly_once_after_sigkill(api, e2e, rtsp_server, mjpeg_server, h264_small):
    node_0 = [
        create(api, 0, rtsp_server.url, "rtsp"),
        create(api, 0, mjpeg_server.url, "mjpeg"),
        create(api, 0, str(h264_small), "file"),
    ]
    node_1 = create(api, 1, str(h264_small), "node 1 file")
    for stream_id in node_0:
        running(api, 0, stream_id)
    running(api, 1, node_1)
    node_1_lease = lease(node_1)

    old = e2e.workers[0]
    old.kill()
    killed_at = time.time()
    new = e2e.start_worker(0)
    new.wait_online(get_redis())

    for stream_id in node_0:
        # A while for the dead leases to expire (3 s), the new worker to start and the streams to open.
        current = running_on(api, 0, stream_id, new, timeout=30)
        assert current["last_error_msg"] == "Stream is running.."
        assert raw_stats(stream_id)["node_num"] == "0"

    # Exactly once: one runner per stream, started after the kill, never a second one.
    leases = stable_leases([*node_0, node_1], seconds=2.5)
    events = runner_events(new)
    assert runner_overlaps(events) == []
    assert sorted((e.stream_id, e.what) for e in events) == sorted((s, "started") for s in node_0)
    assert all(e.at > killed_at for e in events)
    for stream_id in node_0:
        assert leases[stream_id].startswith(new.lease_owner)
    # Node 1 never noticed.
    assert leases[node_1] == node_1_lease
    assert [e.what for e in runner_events(e2e.workers[1], stream_id=node_1)] == ["started"]
    assert stats(api, 1, node_1)["state"] == "RUNNING"


def test_a_frozen_worker_never_runs_a_stream_twice(api, e2e, rtsp_server):
    stream_id = create(api, 0, rtsp_server.url, "rtsp")
    running(api, 0, stream_id)
    old = e2e.workers[0]
    try:
        _frozen_worker_gives_up(api, e2e, old, stream_id)
    finally:
        old.kill()  # never left to compete with its replacement in later tests


def _frozen_worker_gives_up(api, e2e, old: WorkerProcess, stream_id: str) -> None:
    with old.paused():
        # Frozen (a paused VM, a stuck host): its lease expires and a
        # replacement worker for node 0 takes the stream over.
        new = e2e.start_worker(0)
        new.wait_online(get_redis())
        running_on(api, 0, stream_id, new, timeout=30)
    # The old worker wakes up: its runner finds its lease taken and gives up,
    # leaving the new runner's lease and live figures alone.
    took_over = lease(stream_id)
    end = time.monotonic() + 2.5
    while time.monotonic() < end:
        current = stats(api, 0, stream_id)
        assert (current["state"], current["last_error_msg"]) == ("RUNNING", "Stream is running.."), current
        assert lease(stream_id) == took_over
        time.sleep(0.05)
    assert [e.what for e in runner_events(old, stream_id=stream_id)] == ["started", "ended"]
    assert "lease lost; stopping this runner" in old.log_text()
    assert [e.what for e in runner_events(new, stream_id=stream_id)] == ["started"]


# --- 5. races ------------------------------------------------------------------------------------


def test_races_leave_exactly_one_runner(api, e2e, rtsp_server, h264_small):
    # Beat is frozen: the control messages alone must bring the streams to
    # their final state (the reconcile job is only the safety net).
    with e2e.beat.paused():
        _races(api, e2e, rtsp_server, h264_small)


def _races(api, e2e, rtsp_server, h264_small):
    worker = e2e.workers[0]
    toggled = create(api, 0, str(h264_small), "toggled")
    renamed = create(api, 0, rtsp_server.url, "renamed")
    # A restart while both are starting up.
    assert api.post("/system/restart").json() == {"code": 200, "message": "System restart initiated"}
    for i in range(20):
        response = api.put(f"/streams/0/{toggled}", {"active": i % 2 == 1, "stream_name": f"toggled {i}"})
        assert response.status_code == 200, response.json()
        response = api.put(f"/streams/0/{renamed}", {"stream_name": f"renamed {i}"})
        assert response.status_code == 200, response.json()
        if i == 10:
            assert api.post("/system/restart").status_code == 200
    settled_at = time.monotonic()

    for stream_id in (toggled, renamed):
        running(api, 0, stream_id)
    took = time.monotonic() - settled_at
    leases = stable_leases([toggled, renamed], seconds=2.5)
    assert stats(api, 0, toggled)["state"] == stats(api, 0, renamed)["state"] == "RUNNING"
    assert detail(api, 0, toggled)["stream_name"] == "toggled 19"

    events = runner_events(worker, stream_id=toggled) + runner_events(worker, stream_id=renamed)
    assert runner_overlaps(sorted(events, key=lambda e: e.at)) == []
    toggles = [e.what for e in runner_events(worker, stream_id=toggled)]
    assert toggles[-1] == "started" and toggles.count("started") == toggles.count("ended") + 1, toggles
    # Renames and restarts never replace a runner.
    assert [e.what for e in runner_events(worker, stream_id=renamed)] == ["started"]
    for stream_id in (toggled, renamed):
        assert leases[stream_id].startswith(worker.lease_owner)
    assert took < 5, f"the last PUT took {took:.1f}s to take effect"


# --- 6. /system/restart -------------------------------------------------------------------------


def test_system_restart_restarts_every_runner(api, e2e, rtsp_server, mjpeg_server):
    streams = {create(api, 0, rtsp_server.url, "rtsp"): 0, create(api, 1, mjpeg_server.url, "mjpeg"): 1}
    before = {}
    for stream_id, node in streams.items():
        before[stream_id] = stats_when(
            api, node, stream_id, lambda s: s["state"] == "RUNNING" and s["uptime_sec"] >= 2, "2 s of uptime"
        )
    leases = {stream_id: lease(stream_id) for stream_id in streams}

    assert api.post("/system/restart").json() == {"code": 200, "message": "System restart initiated"}
    for stream_id, node in streams.items():
        # Every poll is an API answer: it keeps serving during the restart.
        uptime = before[stream_id]["uptime_sec"]
        stats_when(api, node, stream_id, lambda s, uptime=uptime: s["uptime_sec"] < uptime, "uptime to reset")
        running(api, node, stream_id)
        assert api.get(f"/streams/{node}").status_code == 200

    # A graceful restart: the same runner (and lease), a new session.
    for stream_id, node in streams.items():
        assert lease(stream_id) == leases[stream_id]
        assert [e.what for e in runner_events(e2e.workers[node], stream_id=stream_id)] == ["started"]
