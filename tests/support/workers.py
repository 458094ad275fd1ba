"""Real Celery worker and beat processes for end-to-end tests.

They run as `visionaire.py up` runs them (visionaire_site.launcher's worker and
beat commands), against the pytest database and Redis, with the test settings
plus INFO logging (tests/support/worker_settings.py). Each process writes its
output to its own file, which tests read to see what the runtime did:

    with spawn_worker(1, log_dir=tmp_path) as worker:
        worker.wait_online(redis_client)
        ...
        runner_events(worker.log_text())   # "runner started/ended" per stream, timestamped
        print(worker.log_tail())           # for a failing test

The database must be the one the test process sees (`test_database_url()`), and
rows the workers need must be committed: use `transactional_db`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import connection
from psycopg.conninfo import make_conninfo

ROOT = Path(__file__).resolve().parents[2]
SETTINGS_MODULE = "tests.support.worker_settings"


def test_database_url() -> str:
    """DATABASE_URL of the test database (call it once pytest-django has set it up)."""
    return make_conninfo(settings.DATABASE_URL, dbname=connection.settings_dict["NAME"])


def subprocess_env(*, node_num: int | None = None, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=test_database_url(),
        REDIS_URL=settings.REDIS_URL,
        DJANGO_SETTINGS_MODULE=SETTINGS_MODULE,
        PYTHONUNBUFFERED="1",
    )
    if node_num is not None:
        env["VISIONAIRE_NODE_NUM"] = str(node_num)
    env.update(extra)
    return env


class ManagedProcess:
    """A subprocess whose output goes to `log_path`; stopped on exit of the `with` block."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log_path: Path):
        self.name = name
        self.command = command
        self.env = env
        self.log_path = Path(log_path)
        self.process: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.name} was never started"
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> ManagedProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command,
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C on pytest does not reach it first
            )
        return self

    def terminate(self) -> None:
        """Send SIGTERM (a graceful shutdown) without waiting."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM (a graceful shutdown), SIGKILL after `timeout`; the exit status."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL now (a crash), and reap it."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    @contextlib.contextmanager
    def paused(self):
        """Freeze the process (SIGSTOP) for the `with` block, then let it go on (SIGCONT)."""
        assert self.running, f"{self.name} is not running"
        self.process.send_signal(signal.SIGSTOP)
        try:
            yield self
        finally:
            if self.running:
                self.process.send_signal(signal.SIGCONT)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, size: int = 6000) -> str:
        return f"----- {self.name} ({self.log_path}) -----\n{self.log_text()[-size:]}"

    def __enter__(self) -> ManagedProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class WorkerProcess(ManagedProcess):
    """A node's Celery worker (the launcher's command: queues `node.N,control`, thread pool)."""

    def __init__(
        self, node_num: int, *, hostname: str, env: dict[str, str], log_path: Path, concurrency: int
    ):
        self.node_num = node_num
        self.hostname = hostname
        command = [
            sys.executable, "-m", "celery", "-A", "visionaire_site", "worker",
            "-Q", f"node.{node_num},control", "--hostname", hostname,
            "--pool", "threads", "--concurrency", str(concurrency),
            "--without-gossip", "--without-mingle", "--loglevel", "INFO",
        ]  # fmt: skip
        super().__init__(hostname, command, env, log_path)

    @property
    def lease_owner(self) -> str:
        """How this worker's runners sign their leases (workers.runner.StreamRunner)."""
        return f"node{self.node_num}:{self.hostname}:"

    def heartbeat(self, client) -> dict:
        from live.keys import heartbeat_key

        raw = client.get(heartbeat_key(self.node_num))
        return json.loads(raw) if raw else {}

    def wait_online(self, client, timeout: float = 30.0) -> dict:
        """Wait until this process's node agent beats (the worker is ready)."""
        deadline = time.monotonic() + timeout
        while True:
            beat = self.heartbeat(client)
            if beat.get("pid") == self.pid:
                return beat
            if not self.running:
                raise AssertionError(f"{self.name} exited with {self.process.returncode}\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} not online after {timeout}s\n{self.log_tail()}")
            time.sleep(0.05)


def spawn_worker(
    node_num: int,
    *,
    log_dir: Path,
    hostname: str | None = None,
    concurrency: int = 16,
    env: dict[str, str] | None = None,
) -> WorkerProcess:
    """Start node `node_num`'s worker; its output goes to `<log_dir>/<hostname>.log`."""
    hostname = hostname or f"node{node_num}-test"
    worker = WorkerProcess(
        node_num,
        hostname=hostname,
        env=subprocess_env(node_num=node_num, **(env or {})),
        log_path=Path(log_dir) / f"{hostname}.log",
        concurrency=concurrency,
    )
    return worker.start()


def spawn_beat(*, log_dir: Path, reconcile_seconds: float = 1.0) -> ManagedProcess:
    """Start Celery beat (the launcher's command) with the reconcile job every `reconcile_seconds`."""
    log_dir = Path(log_dir)
    command = [
        sys.executable, "-m", "celery", "-A", "visionaire_site", "beat",
        "--loglevel", "INFO", "--schedule", str(log_dir / "celerybeat-schedule"),
    ]  # fmt: skip
    env = subprocess_env(VISIONAIRE_RECONCILE_SECONDS=str(reconcile_seconds))
    return ManagedProcess("beat", command, env, log_dir / "beat.log").start()


# --- reading worker logs --------------------------------------------------------

_RUNNER_LINE = re.compile(
    r"^(?P<at>\d+\.\d+) \w+ workers\.runner \[[^\]]*\] stream (?P<stream>[0-9a-f]{16}): "
    r"runner (?P<what>started|ended)",
    re.MULTILINE,
)


@dataclass(frozen=True)
class RunnerEvent:
    at: float  # unix time of the log line
    stream_id: str
    what: str  # "started" or "ended"
    worker: str


def runner_events(*workers: ManagedProcess, stream_id: str | None = None) -> list[RunnerEvent]:
    """The runner start and end lines of these workers' logs, oldest first."""
    events = [
        RunnerEvent(float(m["at"]), m["stream"], m["what"], worker.name)
        for worker in workers
        for m in _RUNNER_LINE.finditer(worker.log_text())
        if stream_id is None or m["stream"] == stream_id
    ]
    # Stable sort: lines of one process keep their order when their stamps tie.
    return sorted(events, key=lambda event: event.at)


def runner_overlaps(events: list[RunnerEvent]) -> list[str]:
    """Every moment where a stream had two runners at once (empty when none):
    per stream, starts and ends must alternate, beginning with a start."""
    problems: list[str] = []
    running: dict[str, RunnerEvent] = {}
    for event in events:
        current = running.get(event.stream_id)
        if event.what == "started":
            if current is not None:
                problems.append(
                    f"stream {event.stream_id}: runner started on {event.worker} at {event.at:.3f} "
                    f"while the one started on {current.worker} at {current.at:.3f} still ran"
                )
            running[event.stream_id] = event
        else:
            if current is None:
                problems.append(f"stream {event.stream_id}: runner ended at {event.at:.3f} without a start")
            running.pop(event.stream_id, None)
    return problems
