"""API under load, and the event writer through a PostgreSQL outage.

    python3 visionaire.py bench api_load            # about 4 minutes on 2 cores
    .venv/bin/python bench/api_load.py --quick       # smoke run, about a minute
    .venv/bin/python bench/api_load.py --only reads  # one scenario (reads, mixed, outage)

The API is a real uvicorn process (the launcher's `api` command line, its pool
of VISIONAIRE_DB_POOL_MAX connections); the clients are threads of this process,
each with one keep-alive HTTP/1.1 connection, sending the next request as soon
as the last one is answered.

1. reads   GET /streams with 200 streams, at 1, 10 and 50 clients; against the
           same server answering a static file (WhiteNoise, through the same
           middleware) at the same concurrency in the same run: throughput
           ratio, p50/p95/p99. Target: 0 errors.
2. mixed   50 clients for 30 s mixing GET /streams (40%), /node_status (10%),
           /metrics (10%), POST (20%), PUT (10%) and DELETE (10%) of streams;
           the API's connections sampled from pg_stat_activity. Target: no
           answer >= 500, connections within the pool.
3. outage  the event writer (workers/event_sink.py, in this process) receiving
           50 events/s with a 10 KB crop while PostgreSQL is killed and started
           again 60 s later: events kept in memory and in the spool, dropped (target
           0), and the time from the server's return until everything is stored;
           every event stored once (rows against events submitted).

Servers: embedded PostgreSQL and Redis in a temporary folder deleted afterwards
(the outage scenario needs them: it kills the embedded server), or DATABASE_URL
and REDIS_URL when both are set (then without the outage). Prints readable lines
and one JSON line per scenario starting with {"bench": ...}; exits 0 when the
targets are met.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._common import django_setup, emit, free_port, machine, percentile, say  # noqa: E402

BENCH_NODE = 1022  # a node number no deployment uses: no worker runs the bench's streams
STREAMS = 200
STATIC_PATH = "/static/admin/img/icon-yes.svg"  # a small file WhiteNoise serves from the apps
APPLICATION_NAME = "visionaire-bench-api"


# --- servers, Django, the API process ---------------------------------------------


@contextlib.contextmanager
def servers(data_dir: Path):
    from visionaire_site.services import EmbeddedServers, configured_endpoints

    configured = configured_endpoints()
    if configured is not None:
        yield configured, None
        return
    say(f"starting embedded PostgreSQL and Redis in {data_dir}")
    # The outage scenario kills PostgreSQL: the supervisor starts it again after 60 s.
    embedded = EmbeddedServers(
        data_dir, say=lambda line: say(f"  servers: {line}"), restart_initial_seconds=60
    )
    with embedded as endpoints:
        yield endpoints, embedded


def streams_make(count: int) -> None:
    from platform_config.models import Node
    from streams.models import Stream
    from streams.services import stream_id_new

    node, _ = Node.objects.get_or_create(num=BENCH_NODE, defaults={"name": "benchmark"})
    Stream.objects.bulk_create(
        Stream(
            stream_id=stream_id_new(),
            node=node,
            name=f"bench {n}",
            address=f"rtsp://10.9.{n // 250}.{n % 250}/cam",
        )
        for n in range(count)
    )


def cleanup() -> None:
    from events.models import Event
    from platform_config.models import Node
    from streams.models import Stream

    Stream.objects.filter(node_id=BENCH_NODE).delete()
    Event.objects.filter(node_num=BENCH_NODE).delete()
    Node.objects.filter(num=BENCH_NODE).delete()


class ApiProcess:
    """The API as `visionaire.py api` runs it: uvicorn on the ASGI application."""

    def __init__(self, endpoints, data_dir: Path, port: int) -> None:
        from visionaire_site.launcher import api_command

        self.port = port
        env = dict(os.environ)
        env.update(
            DATABASE_URL=endpoints.database_url,
            REDIS_URL=endpoints.redis_url,
            VISIONAIRE_DATA_DIR=str(data_dir),
            DJANGO_SETTINGS_MODULE="visionaire_site.settings",
            VISIONAIRE_LOG_LEVEL="warning",
            VISIONAIRE_DB_APPLICATION_NAME=APPLICATION_NAME,
            PYTHONUNBUFFERED="1",
        )
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            api_command("127.0.0.1", port), cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 120
        while True:
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5):
                    break
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the API did not start:\n{self.log_tail()}")
            time.sleep(0.2)

    def log_tail(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-3000:]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


# --- clients ------------------------------------------------------------------------


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


@dataclass
class Load:
    latencies: list[float] = field(default_factory=list)  # seconds
    statuses: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def errors(self) -> int:
        return sum(count for status, count in self.statuses.items() if status >= 500) + len(self.failures)

    def summary(self) -> dict:
        ms = [value * 1000 for value in self.latencies]
        return {
            "requests": len(ms),
            "rps": round(len(ms) / self.seconds, 1) if self.seconds else 0.0,
            "p50_ms": round(percentile(ms, 0.50), 1),
            "p95_ms": round(percentile(ms, 0.95), 1),
            "p99_ms": round(percentile(ms, 0.99), 1),
            "errors": self.errors,
            "statuses": {str(status): count for status, count in sorted(self.statuses.items())},
        }


def run_load(port: int, clients: int, seconds: float, request) -> Load:
    """`clients` threads calling `request(client, rng, state)` until `seconds` pass."""
    load = Load()
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)

    def loop(seed: int) -> None:
        client, rng, state = Client(port), random.Random(seed), {}
        latencies: list[float] = []
        statuses: Counter = Counter()
        try:
            start.wait()
            while time.monotonic() < deadline:
                began = time.perf_counter()
                status = request(client, rng, state)
                latencies.append(time.perf_counter() - began)
                statuses[status] += 1
        except Exception as exc:
            with lock:
                load.failures.append(f"{type(exc).__name__}: {exc}")
        finally:
            client.close()
            with lock:
                load.latencies.extend(latencies)
                load.statuses.update(statuses)

    threads = [threading.Thread(target=loop, args=(n,), daemon=True) for n in range(clients)]
    for thread in threads:
        thread.start()
    began = time.monotonic()
    deadline = began + seconds  # read by the threads once the barrier lets them go
    start.wait()
    for thread in threads:
        thread.join(seconds + 180)
    load.seconds = time.monotonic() - began
    return load


def get(path: str):
    def request(client: Client, rng, state) -> int:
        return client.call("GET", path)[0]

    return request


def mixed(client: Client, rng: random.Random, state: dict) -> int:
    mine: list[str] = state.setdefault("mine", [])
    roll = rng.random()
    if roll < 0.4:
        return client.call("GET", "/streams")[0]
    if roll < 0.5:
        return client.call("GET", "/node_status")[0]
    if roll < 0.6:
        return client.call("GET", "/metrics")[0]
    if roll < 0.8 or not mine:
        status, body = client.call(
            "POST", f"/streams/{BENCH_NODE}", {"stream_address": "rtsp://10.9.9.9/cam"}
        )
        if status == 200:
            mine.append(json.loads(body)["stream_id"])
        return status
    if roll < 0.9:
        return client.call("PUT", f"/streams/{BENCH_NODE}/{mine[-1]}", {"stream_name": "renamed"})[0]
    return client.call("DELETE", f"/streams/{BENCH_NODE}/{mine.pop()}")[0]


class ConnectionSampler(threading.Thread):
    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url = url
        self.stop = threading.Event()
        self.samples: list[tuple[int, int]] = []  # (all client backends, the API's)
        self.max_connections = 0

    def run(self) -> None:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            self.max_connections = int(conn.execute("SHOW max_connections").fetchone()[0])
            while not self.stop.is_set():
                self.samples.append(
                    conn.execute(
                        "SELECT count(*), count(*) FILTER (WHERE application_name = %s) "
                        "FROM pg_stat_activity WHERE backend_type = 'client backend'",
                        [APPLICATION_NAME],
                    ).fetchone()
                )
                self.stop.wait(0.5)


# --- scenarios ----------------------------------------------------------------------


def scenario_reads(port: int, seconds: float) -> bool:
    say(f"\n1. reads: GET /streams ({STREAMS} streams) against a static file, {seconds:g} s each")
    ok = True
    for clients in (1, 10, 50):
        route = run_load(port, clients, seconds, get("/streams"))
        static = run_load(port, clients, seconds, get(STATIC_PATH))
        r, s = route.summary(), static.summary()
        ratio = round(r["rps"] / s["rps"], 3) if s["rps"] else 0.0
        say(
            f"   {clients:>2} clients: /streams {r['rps']:7.1f} req/s p50 {r['p50_ms']:7.1f} "
            f"p95 {r['p95_ms']:7.1f} p99 {r['p99_ms']:7.1f} ms | static {s['rps']:7.1f} req/s "
            f"p95 {s['p95_ms']:6.1f} ms | ratio {ratio} | errors {r['errors'] + s['errors']}"
        )
        emit({"bench": "api_reads", "clients": clients, "streams": STREAMS, **r, "static": s, "ratio": ratio})
        ok = ok and r["errors"] == 0 and s["errors"] == 0 and set(r["statuses"]) == {"200"}
    return ok


def scenario_mixed(port: int, seconds: float, database_url: str, pool_max: int) -> bool:
    say(f"\n2. mixed: 50 clients, reads and writes, {seconds:g} s")
    from platform_config.selectors import platform_config_get
    from platform_config.services import platform_config_update

    before = platform_config_get().max_streams_per_node
    platform_config_update(data={"max_streams_per_node": 1024})
    sampler = ConnectionSampler(database_url)
    sampler.start()
    try:
        load = run_load(port, 50, seconds, mixed)
    finally:
        sampler.stop.set()
        sampler.join(10)
        platform_config_update(data={"max_streams_per_node": before})
    summary = load.summary()
    api_max = max((api for _, api in sampler.samples), default=0)
    total_max = max((total for total, _ in sampler.samples), default=0)
    say(
        f"   {summary['rps']:.1f} req/s, p50 {summary['p50_ms']} p95 {summary['p95_ms']} "
        f"p99 {summary['p99_ms']} ms, statuses {summary['statuses']}, errors {summary['errors']}"
    )
    say(
        f"   connections: the API's at most {api_max} (pool {pool_max}), all clients at most {total_max} "
        f"of max_connections {sampler.max_connections}"
    )
    if load.failures:
        say(f"   failures: {load.failures[:3]}")
    emit(
        {
            "bench": "api_mixed",
            "clients": 50,
            **summary,
            "api_connections_max": api_max,
            "pool_max": pool_max,
            "connections_max": total_max,
            "max_connections": sampler.max_connections,
        }
    )
    return summary["errors"] == 0 and 0 < api_max <= pool_max and total_max < sampler.max_connections


def scenario_outage(data_dir: Path, embedded, outage_seconds: float, rate: float) -> bool:
    say(f"\n3. outage: the event writer at {rate:g} events/s, PostgreSQL down for ~{outage_seconds:g} s")
    import cv2
    import numpy as np
    from django.conf import settings
    from django.db import connection

    from analytics.plugins import EventRecord
    from events.models import Event
    from visionaire_site.services import ServiceUnavailable, check_database
    from workers.desired import DesiredStream
    from workers.event_sink import EventSink

    embedded._restarts["PostgreSQL"].initial = outage_seconds
    rng = np.random.default_rng(7)
    ok_, crop = cv2.imencode(".jpg", rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    crop = crop.tobytes()
    desired = DesiredStream(
        stream_id="b" * 16, node_num=BENCH_NODE, name="bench", address="rtsp://10.9.9.9/cam",
        latitude=0.0, longitude=0.0, active=True, pipelines=(),
    )  # fmt: skip
    sink = EventSink(
        capacity=settings.EVENT_QUEUE_CAPACITY,
        batch_size=settings.EVENT_BATCH_SIZE,
        batch_wait_s=settings.EVENT_BATCH_WAIT_MS / 1000,
        spool_dir=data_dir / "spool",
        spool_stem="bench",
        spool_max_bytes=settings.EVENT_SPOOL_MAX_BYTES,
    )
    stop = threading.Event()

    def produce() -> None:
        n, period, next_at = 0, 1.0 / rate, time.monotonic()
        while not stop.is_set():
            record = EventRecord(primary_text=f"bench {n}", pipeline_data={"n": n}, image_jpeg=crop)
            sink.submit(record.for_stream(desired, analytic_id="BENCH", emitted_at=time.time()))
            n += 1
            next_at += period
            stop.wait(max(0.0, next_at - time.monotonic()))

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    time.sleep(3)  # a few seconds of normal operation first (a warm-up, not a synchronisation)
    pid = int((data_dir / "postgres" / "postmaster.pid").read_text().splitlines()[0])
    killed_at = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    say(
        f"   PostgreSQL (pid {pid}) killed; the launcher's supervisor starts it again in {outage_seconds:g} s"
    )
    url = os.environ["DATABASE_URL"]

    def answers() -> bool:
        try:
            check_database(url, timeout=2)
            return True
        except ServiceUnavailable:
            return False

    while not answers() and time.monotonic() - killed_at < outage_seconds + 300:
        time.sleep(0.2)
    back_at = time.monotonic()
    during = sink.stats()
    say(
        f"   down {back_at - killed_at:.1f} s: {during['submitted']} submitted, {during['queued']} in memory,"
        f" {during['spooled']} in the spool ({during['spool_bytes'] / 1e6:.1f} MB), "
        f"{during['dropped']} dropped"
    )
    stop.set()
    producer.join(10)
    drained = sink.flush(timeout=600)
    drained_at = time.monotonic()
    sink.stop(timeout=30)
    after = sink.stats()
    connection.close()  # this thread's connection died with the server: take a fresh one
    stored = Event.objects.filter(node_num=BENCH_NODE).count()
    say(
        f"   stored everything {drained_at - back_at:.1f} s after the server's return: "
        f"{after['written']} written, {after['replayed']} from the spool, {after['dropped']} dropped, "
        f"{after['failed']} failed; "
        f"{stored} rows for {after['submitted']} events submitted"
    )
    emit(
        {
            "bench": "event_writer_outage",
            "rate_per_s": rate,
            "outage_s": round(back_at - killed_at, 1),
            "submitted": after["submitted"],
            "kept_in_memory": during["queued"],
            "kept_in_spool": during["spooled"],
            "spool_mb": round(during["spool_bytes"] / 1e6, 2),
            "dropped": after["dropped"],
            "failed": after["failed"],
            "rows": stored,
            "drain_s": round(drained_at - back_at, 1),
        }
    )
    return drained and after["dropped"] == 0 and stored == after["submitted"] == after["written"]


# --- main ---------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short runs (a smoke test, not figures)")
    parser.add_argument("--only", choices=["reads", "mixed", "outage"])
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    say(f"machine: {json.dumps(machine())}")
    data_dir = Path(tempfile.mkdtemp(prefix="visionaire-bench-api-"))
    ok = True
    try:
        with servers(data_dir) as (endpoints, embedded):
            django_setup(endpoints, data_dir, VISIONAIRE_EVENT_SPOOL_DIR=str(data_dir / "spool"))
            from django.conf import settings

            streams_make(STREAMS)
            api = ApiProcess(endpoints, data_dir, free_port())
            try:
                say(f"API pid {api.process.pid}, pool of {settings.DB_POOL_MAX} connections")
                if args.only in (None, "reads"):
                    ok = scenario_reads(api.port, 3 if args.quick else 10) and ok
                if args.only in (None, "mixed"):
                    ok = (
                        scenario_mixed(
                            api.port, 5 if args.quick else 30, endpoints.database_url, settings.DB_POOL_MAX
                        )
                        and ok
                    )
            finally:
                api.stop()
            if args.only in (None, "outage"):
                if embedded is None:
                    say(
                        "\n3. outage: skipped (the servers are configured ones; the bench kills only its own)"
                    )
                else:
                    ok = scenario_outage(data_dir, embedded, 10 if args.quick else 60, 50) and ok
            cleanup()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    say("\ntargets met" if ok else "\ntargets NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
