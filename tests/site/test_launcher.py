"""Start-up paths: configured servers, embedded servers, and their errors."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from visionaire_site.endpoints import database_settings, read_services_file
from visionaire_site.services import EmbeddedServers, ServiceUnavailable, configured_endpoints

ROOT = Path(__file__).resolve().parents[2]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_database_settings_accepts_socket_directories_and_tcp():
    socket_form = database_settings("postgresql://postgres:@/visionaire?host=/tmp/pg")
    assert (socket_form["NAME"], socket_form["USER"], socket_form["HOST"]) == (
        "visionaire",
        "postgres",
        "/tmp/pg",
    )
    tcp = database_settings("postgresql://u:secret@db.example:6543/app?sslmode=require&application_name=x")
    options = dict(tcp["OPTIONS"])
    options.pop("pool")
    assert (tcp["HOST"], tcp["PORT"], tcp["PASSWORD"], options) == (
        "db.example",
        "6543",
        "secret",
        {"sslmode": "require", "application_name": "x"},
    )


def test_database_settings_pool_bounds_each_process():
    entry = database_settings(
        "postgresql://u@db/app", pool_min=5, pool_max=3, pool_wait_seconds=0.5, application_name="api"
    )
    # Django refuses persistent connections with a pool: requests give theirs back.
    assert entry["CONN_MAX_AGE"] == 0
    assert entry["OPTIONS"]["application_name"] == "api"
    pool = entry["OPTIONS"]["pool"]
    assert (pool["min_size"], pool["max_size"]) == (3, 3)
    assert pool["timeout"] == 0.5  # one slice, never longer than the whole wait


def test_no_urls_means_embedded(monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    assert configured_endpoints() is None


def test_half_configured_cluster_is_refused(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://localhost/x")
    monkeypatch.delenv("REDIS_URL", raising=False)
    with pytest.raises(ServiceUnavailable, match="REDIS_URL is not set"):
        configured_endpoints()


def test_unreachable_configured_server_gives_one_line_naming_it():
    port = _closed_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{port}/visionaire",
        "REDIS_URL": "redis://127.0.0.1:1/0",
    }
    result = subprocess.run(
        [sys.executable, "-m", "visionaire_site.launcher", "worker", "--node", "1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"visionaire: cannot reach PostgreSQL at 127.0.0.1:{port}/visionaire")
    assert "Traceback" not in result.stderr


def test_unreachable_redis_is_named(monkeypatch, settings):
    monkeypatch.setenv("DATABASE_URL", settings.DATABASE_URL)
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    with pytest.raises(ServiceUnavailable, match=r"cannot reach Redis at 127.0.0.1:1"):
        configured_endpoints()


def test_embedded_servers_keep_data_across_runs_and_stop_cleanly(server_dir):
    data_dir = server_dir / "data"
    with EmbeddedServers(data_dir) as first:
        assert read_services_file(data_dir)["database_url"] == first.database_url
        with psycopg.connect(first.database_url, autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (value text)")
            conn.execute("INSERT INTO kept VALUES ('still here')")
            extensions = {row[0] for row in conn.execute("SELECT name FROM pg_available_extensions")}
        assert {"vector", "pg_trgm"} <= extensions
        # A second launcher on the same folder is refused instead of corrupting it.
        with pytest.raises(ServiceUnavailable, match="already run by another launcher"):
            EmbeddedServers(data_dir).__enter__()
    assert read_services_file(data_dir) == {}
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(first.database_url, connect_timeout=2).close()

    with EmbeddedServers(data_dir) as second:
        with psycopg.connect(second.database_url) as conn:
            assert conn.execute("SELECT value FROM kept").fetchone() == ("still here",)
