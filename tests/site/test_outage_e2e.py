"""PostgreSQL killed under a running platform: routes answer 503 meanwhile, the
launcher starts it again, and every event a pipeline produced meanwhile is
stored exactly once; stopping the launcher leaves nothing running.

The whole platform runs as `visionaire.py up` runs it (the launcher, its
embedded PostgreSQL and Redis in a data folder of the test's own, the API, a
worker and beat), with the test settings. A stream plays a file through an
analytic that numbers its events (tests/support/counting_analytic.py), so the
stored events show any loss (a gap) or repeat. The launcher is paused (SIGSTOP)
while the server is down, so the test sees the outage however slow the machine
is; once resumed, its supervision finds the dead server and restarts it.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import sys
import time
from collections import defaultdict
from pathlib import Path

import psutil
import psycopg
import pytest
import redis as redis_lib

from tests.support.workers import ManagedProcess

pytestmark = pytest.mark.e2e

UNAVAILABLE = {"code": 503, "message": "database unavailable"}
# tests/support/counting_analytic.py's id; that module is imported by the platform's
# processes only (importing it here would add the analytic to this process's registry).
ANALYTIC_ID = "TEST-SEQ"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Api:
    def __init__(self, port: int):
        self.port = port

    def call(self, method: str, path: str, body: dict | None = None, timeout: float = 60) -> tuple[int, dict]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            payload = json.dumps(body).encode() if body is not None else None
            headers = {"Content-Type": "application/json"} if payload is not None else {}
            conn.request(method, path, body=payload, headers=headers)
            response = conn.getresponse()
            raw = response.read()
            try:
                return response.status, json.loads(raw)
            except ValueError:
                return response.status, {"raw": raw[:200].decode(errors="replace")}
        finally:
            conn.close()

    def status(self, path: str) -> int | None:
        try:
            return self.call("GET", path, timeout=30)[0]
        except OSError:
            return None


class Platform:
    def __init__(self, tmp_path: Path, launcher: ManagedProcess, data_dir: Path, api: Api):
        self.tmp_path, self.launcher, self.data_dir, self.api = tmp_path, launcher, data_dir, api

    def services(self) -> dict:
        return json.loads((self.data_dir / "run" / "services.json").read_text())

    def wait(self, predicate, *, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if not self.launcher.running:
                raise AssertionError(
                    f"the launcher exited while waiting for {what}\n{self.launcher.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout}s waiting for {what}\n{self.launcher.log_tail()}"
                )
            time.sleep(0.2)

    def writer(self) -> dict:
        """Node 0's event writer figures, from its runtime report in Redis."""
        client = redis_lib.Redis.from_url(self.services()["redis_url"], decode_responses=True)
        try:
            raw = client.get("visionaire:node:0:runtime")
        except redis_lib.RedisError:
            return {}
        finally:
            client.close()
        report = json.loads(raw) if raw else {}
        return report.get("event_writer") or {}

    def stored_events(self) -> list[tuple[str, int]]:
        with psycopg.connect(self.services()["database_url"], connect_timeout=10) as conn:
            rows = conn.execute(
                "SELECT pipeline_data->>'run', (pipeline_data->>'seq')::int FROM events_event "
                "WHERE analytic_id = %s",
                [ANALYTIC_ID],
            ).fetchall()
        return [(run, seq) for run, seq in rows]


def platform_processes(data_dir: Path) -> list[str]:
    """What still runs for this data folder: the launcher's children carry it in
    their environment, the servers in their command line."""
    found = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        if process.pid == os.getpid():
            continue
        try:
            cmdline = " ".join(process.info["cmdline"] or [])
            environ = process.environ() if str(data_dir) not in cmdline else {}
        except psutil.Error:
            continue
        if str(data_dir) in cmdline or environ.get("VISIONAIRE_DATA_DIR") == str(data_dir):
            found.append(f"{process.pid} {cmdline[:160]}")
    return found


@pytest.fixture
def platform(tmp_path, server_dir, media):
    data_dir = server_dir / "data"
    (data_dir / "videos").mkdir(parents=True)
    shutil.copy(media.small_h264(), data_dir / "videos" / "clip.mp4")
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        VISIONAIRE_DATA_DIR=str(data_dir),
        DJANGO_SETTINGS_MODULE="tests.support.worker_settings",
        VISIONAIRE_ANALYTIC_MODULES="tests.support.analytics,tests.support.counting_analytic",
        VISIONAIRE_EVENT_SPOOL_DIR=str(data_dir / "spool"),
        # A small memory bound, so that the outage fills it and the spool file is used.
        VISIONAIRE_EVENT_QUEUE_CAPACITY="20",
        VISIONAIRE_WORKER_CONCURRENCY="8",
        VISIONAIRE_RECONCILE_SECONDS="2",
    )
    command = [
        sys.executable,
        "-m",
        "visionaire_site.launcher",
        "up",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    launcher = ManagedProcess("launcher", command, env, tmp_path / "launcher.log").start()
    platform = Platform(tmp_path, launcher, data_dir, Api(port))
    try:
        yield platform
    finally:
        if launcher.running:
            launcher.process.send_signal(signal.SIGCONT)  # if the test failed while it was paused
            launcher.stop(timeout=120)
        if launcher.running:
            launcher.kill()


def test_postgresql_killed_and_restarted_by_the_launcher_loses_no_event(platform):
    api = platform.api
    platform.wait(lambda: api.status("/") == 200, timeout=400, what="the API to answer")

    status, created = api.call(
        "POST", "/streams/0", {"stream_address": str(platform.data_dir / "videos" / "clip.mp4")}
    )
    assert status == 200, created
    stream_id = created["stream_id"]
    status, body = api.call("POST", f"/pipeline/0/{stream_id}/{ANALYTIC_ID}", {"sampling_time_ms": 0})
    assert status == 200, body
    platform.wait(lambda: len(platform.stored_events()) >= 20, timeout=240, what="the first events stored")

    # The outage: PostgreSQL's postmaster killed, its supervisor held back.
    pid = int((platform.data_dir / "postgres" / "postmaster.pid").read_text().splitlines()[0])
    platform.launcher.process.send_signal(signal.SIGSTOP)
    try:
        os.kill(pid, signal.SIGKILL)
        platform.wait(lambda: api.status("/streams") == 503, timeout=120, what="GET /streams to answer 503")
        for method, path, body in (
            ("GET", "/streams", None),
            ("GET", "/", None),
            ("GET", f"/streams/0/{stream_id}", None),
            ("POST", "/streams/0", {"stream_address": "rtsp://127.0.0.1:8554/gate"}),
        ):
            assert api.call(method, path, body) == (503, UNAVAILABLE), (method, path)
        # Events keep coming: the writer holds 20 in memory, then spools them.
        platform.wait(
            lambda: platform.writer().get("spilled", 0) >= 10 and not platform.writer().get("database_up"),
            timeout=120,
            what="the event writer to spool events",
        )
        during = platform.writer()
        assert during["dropped"] == 0, during
    finally:
        platform.launcher.process.send_signal(signal.SIGCONT)

    platform.wait(lambda: api.status("/streams") == 200, timeout=300, what="the API to recover")
    assert "the embedded PostgreSQL died; restarting it" in platform.launcher.log_text()
    platform.wait(
        lambda: "the embedded PostgreSQL was restarted" in platform.launcher.log_text(),
        timeout=120,
        what="the launcher to report the restart",
    )
    platform.wait(
        lambda: platform.writer().get("database_up") and platform.writer().get("spooled") == 0,
        timeout=180,
        what="the spool to be replayed",
    )

    # Stop producing, then let the writer settle.
    status, body = api.call("DELETE", f"/streams/0/{stream_id}")
    assert status == 200, body
    platform.wait(
        lambda: f"stream {stream_id}: runner ended" in platform.launcher.log_text(),
        timeout=120,
        what="the runner to end",
    )

    def settled():
        w = platform.writer()
        done = w.get("written", 0) + w.get("dropped", 0) + w.get("failed", 0)
        return w and w["queued"] == 0 and w["spooled"] == 0 and w["submitted"] == done

    platform.wait(settled, timeout=120, what="the event writer to store everything")
    writer = platform.writer()
    events = platform.stored_events()
    by_run: dict[str, list[int]] = defaultdict(list)
    for run, seq in events:
        by_run[run].append(seq)
    repeated = {
        run: len(seqs) - len(set(seqs)) for run, seqs in by_run.items() if len(seqs) != len(set(seqs))
    }
    gaps = {run: sorted(set(range(max(seqs) + 1)) - set(seqs))[:10] for run, seqs in by_run.items()}
    assert repeated == {}, f"events stored twice: {repeated}"
    assert all(not missing for missing in gaps.values()), f"events lost: {gaps}"
    assert (writer["dropped"], writer["failed"]) == (0, 0), writer
    assert len(events) == writer["written"] == writer["submitted"], writer
    assert writer["spilled"] >= during["spilled"] and writer["replayed"] == writer["spilled"], writer
    assert writer["retries"] >= 1

    # Stopping the launcher stops everything it started, the servers included.
    assert platform.launcher.stop(timeout=120) == 0, platform.launcher.log_tail()
    assert platform_processes(platform.data_dir) == []
