"""Runs the platform's processes (called by `visionaire.py` inside the venv).

    up      servers, migrations, then the API, node 0's worker and beat, supervised
    worker  the worker of one node (for another host: needs DATABASE_URL, REDIS_URL)
    api     the API server alone
    beat    Celery beat alone
    test    the test suite against real servers (embedded unless URLs are set)
    manage  a Django management command

Children are restarted with backoff if they die, and so are the embedded
PostgreSQL and Redis (visionaire_site.services.EmbeddedServers); Ctrl-C or
SIGTERM stops the children in order, then the embedded servers.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from .endpoints import DB_POOL_MAX_DEFAULT, read_services_file
from .services import (
    EmbeddedServers,
    Endpoints,
    ServiceUnavailable,
    check_database,
    check_redis,
    configured_endpoints,
    connection_budget_check,
)

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
CELERY = [PYTHON, "-m", "celery", "-A", "visionaire_site"]  # the worker and beat commands
WS_PING_INTERVAL_SECONDS = 20.0
WS_PING_TIMEOUT_SECONDS = 20.0


def _say(message: str) -> None:
    # On stderr: a `manage` command's stdout (JSON results, dumps) stays its own.
    print(f"visionaire: {message}", file=sys.stderr, flush=True)


def data_dir_from_env(default: Path) -> Path:
    value = os.environ.get("VISIONAIRE_DATA_DIR", "").strip()
    return Path(value).expanduser().resolve() if value else default


@contextlib.contextmanager
def servers(data_dir: Path, *, reuse_running: bool = True):
    """Configured servers if DATABASE_URL/REDIS_URL are set; else the embedded
    ones already run by a launcher on this host; else start them here."""
    configured = configured_endpoints()
    if configured is not None:
        yield configured
        return
    if reuse_running:
        running = read_services_file(data_dir)
        if running:
            check_database(running["database_url"])
            check_redis(running["redis_url"])
            yield Endpoints(running["database_url"], running["redis_url"], embedded=True)
            return
    _say(f"starting embedded PostgreSQL and Redis in {data_dir}")
    with EmbeddedServers(data_dir) as endpoints:
        yield endpoints


def child_env(endpoints: Endpoints, data_dir: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=endpoints.database_url,
        REDIS_URL=endpoints.redis_url,
        VISIONAIRE_DATA_DIR=str(data_dir),
        PYTHONUNBUFFERED="1",
    )
    env.setdefault("DJANGO_SETTINGS_MODULE", "visionaire_site.settings")
    env.update(extra)
    return env


def pool_max_from_env() -> int:
    try:
        return int(os.environ.get("VISIONAIRE_DB_POOL_MAX", "") or DB_POOL_MAX_DEFAULT)
    except ValueError:
        return DB_POOL_MAX_DEFAULT  # the processes themselves refuse it, naming the variable


def db_name(role: str) -> dict[str, str]:
    """Each process shows in pg_stat_activity as what it is (visionaire-api, ...)."""
    if os.environ.get("VISIONAIRE_DB_APPLICATION_NAME"):
        return {}
    return {"VISIONAIRE_DB_APPLICATION_NAME": f"visionaire-{role}"}


def manage(env: dict[str, str], *args: str) -> int:
    return subprocess.call([PYTHON, str(ROOT / "manage.py"), *args], cwd=ROOT, env=env)


def api_command(host: str, port: int) -> list[str]:
    return [
        PYTHON,
        "-m",
        "uvicorn",
        "visionaire_site.asgi:application",
        "--host",
        host,
        "--port",
        str(port),
        "--lifespan",
        "off",  # Channels' router speaks no lifespan protocol
        "--no-access-log",
        "--timeout-graceful-shutdown",
        "5",
        # WebSocket keep-alive (uvicorn's defaults, set here so a new uvicorn cannot
        # change them): a ping every 20 s keeps idle /event_channel clients' connections
        # alive through proxies and NATs; a client that answers none within 20 s is closed.
        "--ws-ping-interval",
        str(WS_PING_INTERVAL_SECONDS),
        "--ws-ping-timeout",
        str(WS_PING_TIMEOUT_SECONDS),
    ]


def worker_command(node: int) -> list[str]:
    # One thread per running stream plus room for control tasks: keep it above
    # max_streams_per_node (idle threads cost next to nothing).
    concurrency = os.environ.get("VISIONAIRE_WORKER_CONCURRENCY", "64")
    return [
        *CELERY,
        "worker",
        # Its node's queue (stream tasks) and the shared one (periodic jobs).
        "-Q",
        f"node.{node},control",
        "--hostname",
        f"node{node}@%h",
        # Stream tasks are long-lived and I/O or native-code bound (OpenCV and
        # ONNX Runtime release the GIL), so threads, not processes.
        "--pool",
        "threads",
        "--concurrency",
        concurrency,
        "--without-gossip",
        "--without-mingle",
        "--loglevel",
        "INFO",
    ]


def beat_command(data_dir: Path) -> list[str]:
    return [
        *CELERY,
        "beat",
        "--loglevel",
        "INFO",
        "--schedule",
        str(data_dir / "run" / "celerybeat-schedule"),
    ]


@dataclass
class Child:
    name: str
    command: list[str]
    env: dict[str, str]
    process: subprocess.Popen | None = None
    restarts: int = 0
    next_start: float = 0.0
    started_at: float = field(default=0.0)

    def start(self) -> None:
        # Own session: a Ctrl-C reaches the launcher only, which stops children in order.
        self.process = subprocess.Popen(self.command, cwd=ROOT, env=self.env, start_new_session=True)
        self.started_at = time.monotonic()

    def stop(self, timeout: float = 20.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class Supervisor:
    """Keeps children running: a child that dies is restarted with capped backoff."""

    def __init__(self, children: list[Child]):
        self.children = children
        self.stopping = False

    def request_stop(self, *_args) -> None:
        self.stopping = True

    def run(self, ready_check=None) -> int:
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGTERM, self.request_stop)
        for child in self.children:
            child.start()
        if ready_check is not None:
            ready_check(self)
        while not self.stopping:
            now = time.monotonic()
            for child in self.children:
                code = child.process.poll() if child.process else None
                if child.process is not None and code is not None:
                    # A child that ran a while before dying starts over at a short delay.
                    if now - child.started_at > 60:
                        child.restarts = 0
                    delay = min(30.0, 2.0**child.restarts)
                    _say(f"{child.name} exited with code {code}; restarting in {delay:.0f}s")
                    child.restarts += 1
                    child.next_start = now + delay
                    child.process = None
                elif child.process is None and now >= child.next_start:
                    child.start()
            time.sleep(0.3)
        _say("stopping")
        for child in reversed(self.children):
            child.stop()
        return 0


def wait_until_healthy(url: str, started: float, timeout: float = 120.0):
    def check(supervisor: Supervisor) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not supervisor.stopping:
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        _say(f"API ready at {url} ({time.monotonic() - started:.1f}s after start)")
                        return
            except OSError:
                pass
            time.sleep(0.3)
        if not supervisor.stopping:
            _say(f"the API did not answer at {url} within {timeout:.0f}s; still trying")

    return check


def cmd_up(args) -> int:
    started = time.monotonic()
    data_dir = data_dir_from_env(ROOT / "data")
    with servers(data_dir, reuse_running=False) as endpoints:
        # Every process knows the API's port (the stream address policy refuses it).
        env = child_env(endpoints, data_dir, VISIONAIRE_API_PORT=str(args.port))
        if manage(env, "migrate", "--noinput", "-v", "0") != 0:
            _say("database migration failed; see the output above")
            return 1
        node = args.node
        # Beat only sends messages: it never opens a database connection.
        budget = connection_budget_check(endpoints.database_url, processes=2, pool_max=pool_max_from_env())
        if budget is not None:
            _say(f"warning: {budget}")
        children = [
            Child("api", api_command(args.host, args.port), {**env, **db_name("api")}),
            Child(
                f"worker node {node}",
                worker_command(node),
                {**env, "VISIONAIRE_NODE_NUM": str(node), **db_name(f"worker-node{node}")},
            ),
        ]
        if not args.no_beat:
            children.append(Child("beat", beat_command(data_dir), {**env, **db_name("beat")}))
        _say(
            f"starting API on {args.host}:{args.port}, worker for node {node}"
            + ("" if args.no_beat else ", beat")
        )
        return Supervisor(children).run(wait_until_healthy(f"http://127.0.0.1:{args.port}/", started))


def cmd_worker(args) -> int:
    data_dir = data_dir_from_env(ROOT / "data")
    with servers(data_dir) as endpoints:
        env = child_env(
            endpoints, data_dir, VISIONAIRE_NODE_NUM=str(args.node), **db_name(f"worker-node{args.node}")
        )
        return Supervisor([Child(f"worker node {args.node}", worker_command(args.node), env)]).run()


def cmd_api(args) -> int:
    data_dir = data_dir_from_env(ROOT / "data")
    with servers(data_dir) as endpoints:
        env = child_env(endpoints, data_dir, VISIONAIRE_API_PORT=str(args.port), **db_name("api"))
        return Supervisor([Child("api", api_command(args.host, args.port), env)]).run()


def cmd_beat(args) -> int:
    data_dir = data_dir_from_env(ROOT / "data")
    with servers(data_dir) as endpoints:
        return Supervisor([Child("beat", beat_command(data_dir), child_env(endpoints, data_dir))]).run()


# Test processes the suite runs in (pytest-xdist) unless the arguments say otherwise: many
# tests wait on real servers and processes rather than on the CPU, so two overlap well
# on two cores. Each process has its own test database and Redis database.
TEST_PROCESSES = 2


def pytest_arguments(rest: list[str]) -> list[str]:
    """pytest's arguments for `visionaire.py test [--quick] [pytest args]`: the suite in
    TEST_PROCESSES processes (a module stays in one process, with its fixtures) unless
    the arguments choose (`-n 0` runs it in this process); `--quick` leaves out the
    tests marked e2e (real worker and API processes, RTSP servers, a browser) and
    heavy (models over whole clips, model conversions)."""
    arguments = [argument for argument in rest if argument != "--quick"]
    if len(arguments) != len(rest):
        arguments = ["-m", "not e2e and not heavy", *arguments]
    chooses = any(a == "-n" or a.startswith(("-n", "--numprocesses", "--dist")) for a in arguments)
    if not chooses and "no:xdist" not in arguments:
        arguments = ["-n", str(TEST_PROCESSES), "--dist", "loadfile", *arguments]
    return arguments


def cmd_test(args) -> int:
    # The suite keeps its own servers so it never touches a running platform's data.
    data_dir = data_dir_from_env(ROOT / "data") / "test"
    with servers(data_dir, reuse_running=False) as endpoints:
        env = child_env(endpoints, data_dir, DJANGO_SETTINGS_MODULE="visionaire_site.settings_test")
        return subprocess.call([PYTHON, "-m", "pytest", *pytest_arguments(args.rest)], cwd=ROOT, env=env)


def cmd_bench(args) -> int:
    """Run bench/<name>.py; each benchmark starts the servers it needs itself."""
    if not args.rest:
        names = sorted(path.stem for path in (ROOT / "bench").glob("*.py"))
        _say(f"name a benchmark: {', '.join(names)}")
        return 2
    script = ROOT / "bench" / f"{args.rest[0]}.py"
    if not script.exists():
        _say(f"no benchmark {args.rest[0]!r} (bench/{args.rest[0]}.py)")
        return 2
    return subprocess.call([PYTHON, str(script), *args.rest[1:]], cwd=ROOT)


def cmd_manage(args) -> int:
    data_dir = data_dir_from_env(ROOT / "data")
    with servers(data_dir) as endpoints:
        return manage(child_env(endpoints, data_dir), *args.rest)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="visionaire.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="run the whole platform on this machine")
    up.add_argument("--host", default=os.environ.get("VISIONAIRE_API_HOST", "0.0.0.0"))
    up.add_argument("--port", type=int, default=int(os.environ.get("VISIONAIRE_API_PORT", "4004")))
    up.add_argument("--node", type=int, default=0, help="node number of this machine's worker")
    up.add_argument("--no-beat", action="store_true", help="do not run Celery beat here")
    worker = sub.add_parser("worker", help="run the worker of one node")
    worker.add_argument("--node", type=int, required=True)
    api = sub.add_parser("api", help="run only the API server")
    api.add_argument("--host", default=os.environ.get("VISIONAIRE_API_HOST", "0.0.0.0"))
    api.add_argument("--port", type=int, default=int(os.environ.get("VISIONAIRE_API_PORT", "4004")))
    sub.add_parser("beat", help="run only Celery beat (one per cluster)")
    for name, text in (
        ("test", "run the test suite (extra arguments go to pytest)"),
        ("manage", "run a Django management command"),
    ):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("rest", nargs=argparse.REMAINDER)
    return parser


def _exit_on_sigterm(*_args) -> None:
    raise SystemExit(128 + signal.SIGTERM)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("test", "manage", "bench"):
        # Everything after these goes to pytest / manage.py untouched (argparse's
        # REMAINDER refuses a leading option such as `-q`).
        args = argparse.Namespace(command=argv[0], rest=argv[1:])
    else:
        args = build_parser().parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the embedded servers are stopped on the way out
    # (the supervisor of `up`, `api`, `worker` and `beat` replaces this while it runs).
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    handler = {
        "up": cmd_up,
        "worker": cmd_worker,
        "api": cmd_api,
        "beat": cmd_beat,
        "test": cmd_test,
        "bench": cmd_bench,
        "manage": cmd_manage,
    }[args.command]
    try:
        return handler(args)
    except ServiceUnavailable as exc:
        _say(str(exc))
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
