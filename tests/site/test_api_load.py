"""50 keep-alive clients mixing reads and writes against a real API process
(uvicorn, as the launcher runs it) for 30 s: no answer is a 5xx, and the API's
PostgreSQL connections stay within its pool (sampled from pg_stat_activity
throughout), far below the server's max_connections."""

from __future__ import annotations

import http.client
import json
import random
import socket
import threading
import time
from collections import Counter

import psycopg
import pytest

from tests.support import workers as support
from tests.support.workers import ManagedProcess, subprocess_env
from visionaire_site.launcher import api_command

pytestmark = pytest.mark.e2e

transactional = pytest.mark.django_db(transaction=True)

CLIENTS = 50
SECONDS = 30
POOL_MAX = 10
APPLICATION_NAME = "visionaire-load-test-api"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Client:
    """One keep-alive HTTP/1.1 connection, reopened if the server closes it."""

    def __init__(self, port: int):
        self.port = port
        self.conn: http.client.HTTPConnection | None = None

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
        payload = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
            try:
                self.conn.request(method, path, body=payload, headers=headers)
                response = self.conn.getresponse()
                return response.status, response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


class Sampler(threading.Thread):
    """Counts the server's connections (all, and the API's) twice a second."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url = url
        self.stop = threading.Event()
        self.samples: list[tuple[int, int]] = []
        self.max_connections = 0
        self.probes = 0  # most "is the server there?" connections seen at once (outside the pool)

    def run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            self.max_connections = int(conn.execute("SHOW max_connections").fetchone()[0])
            while not self.stop.is_set():
                total, api, probes = conn.execute(
                    "SELECT count(*), count(*) FILTER (WHERE application_name = %s), "
                    "count(*) FILTER (WHERE application_name = %s) FROM pg_stat_activity "
                    "WHERE backend_type = 'client backend'",
                    [APPLICATION_NAME, f"{APPLICATION_NAME} probe"],
                ).fetchone()
                self.samples.append((total, api))
                self.probes = max(self.probes, probes)
                self.stop.wait(0.5)


@pytest.fixture
def api_process(tmp_path, transactional_db):
    port = free_port()
    env = subprocess_env(
        VISIONAIRE_DB_POOL_MAX=str(POOL_MAX),
        VISIONAIRE_DB_APPLICATION_NAME=APPLICATION_NAME,
        # Generous for a loaded test machine: a request waits for a connection rather than fail.
        VISIONAIRE_DB_POOL_TIMEOUT_SECONDS="60",
    )
    process = ManagedProcess("api", api_command("127.0.0.1", port), env, tmp_path / "api.log").start()
    client = Client(port)
    deadline = time.monotonic() + 120
    while True:
        try:
            if client.call("GET", "/")[0] == 200:
                break
        except OSError:
            client.close()
            client.conn = None
        assert process.running, process.log_tail()
        assert time.monotonic() < deadline, f"the API did not answer\n{process.log_tail()}"
        time.sleep(0.2)
    client.close()
    yield port, process
    process.stop(timeout=30)


@transactional
def test_fifty_clients_mixing_reads_and_writes_get_no_5xx_and_bounded_connections(api_process):
    port, process = api_process
    setup = Client(port)
    status, body = setup.call("POST", "/config/platform", {"max_streams_per_node": 1024})
    assert status == 200, body
    for n in range(20):
        assert setup.call("POST", "/streams/0", {"stream_address": f"rtsp://127.0.0.1:8554/cam{n}"})[0] == 200
    setup.close()

    sampler = Sampler(support.test_database_url())
    sampler.start()
    statuses: Counter = Counter()
    failures: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + SECONDS

    def client_loop(seed: int) -> None:
        rng = random.Random(seed)
        client = Client(port)
        mine: list[str] = []
        seen: Counter = Counter()
        try:
            while time.monotonic() < deadline:
                roll = rng.random()
                if roll < 0.4:
                    status, _ = client.call("GET", "/streams")
                elif roll < 0.5:
                    status, _ = client.call("GET", "/node_status")
                elif roll < 0.6:
                    status, _ = client.call("GET", "/metrics")
                elif roll < 0.8 or not mine:
                    status, body = client.call(
                        "POST", "/streams/0", {"stream_address": "rtsp://127.0.0.1:8554/load"}
                    )
                    if status == 200:
                        mine.append(json.loads(body)["stream_id"])
                elif roll < 0.9:
                    status, _ = client.call(
                        "PUT", f"/streams/0/{mine[-1]}", {"stream_name": f"renamed {seed}"}
                    )
                else:
                    status, _ = client.call("DELETE", f"/streams/0/{mine.pop()}")
                seen[status] += 1
        except Exception as exc:
            with lock:
                failures.append(f"client {seed}: {type(exc).__name__}: {exc}")
        finally:
            client.close()
            with lock:
                statuses.update(seen)

    threads = [threading.Thread(target=client_loop, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(SECONDS + 300)
    sampler.stop.set()
    sampler.join(10)

    assert not failures, failures[:5]
    assert not [t for t in threads if t.is_alive()], "clients still waiting for answers"
    server_errors = {status: count for status, count in statuses.items() if status >= 500}
    assert server_errors == {}, f"{server_errors}\n{process.log_tail()}"
    assert set(statuses) == {200}, statuses
    assert sum(statuses.values()) >= CLIENTS, statuses  # every client got answers
    assert sampler.samples, "no pg_stat_activity sample"
    most_api = max(api for _, api in sampler.samples)
    most_total = max(total for total, _ in sampler.samples)
    assert 0 < most_api <= POOL_MAX, sampler.samples
    assert sampler.probes <= 1, sampler.probes
    assert most_total < sampler.max_connections, (most_total, sampler.max_connections)
