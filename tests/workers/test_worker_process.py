"""A real Celery worker for node 1, started as `visionaire.py up` starts one:
its node agent comes up with the worker, acts on /system/restart, and the node
goes offline when the worker is stopped with SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from psycopg.conninfo import make_conninfo

from platform_config.nodes import heartbeat_key

from .conftest import wait_for

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def worker_node_1(transactional_db):
    # The worker must use the test database, and see the rows this test commits.
    env = dict(os.environ)
    env.update(
        DATABASE_URL=make_conninfo(settings.DATABASE_URL, dbname=connection.settings_dict["NAME"]),
        REDIS_URL=settings.REDIS_URL,
        DJANGO_SETTINGS_MODULE="visionaire_site.settings_test",
        VISIONAIRE_NODE_NUM="1",
        PYTHONUNBUFFERED="1",
    )
    command = [
        sys.executable, "-m", "celery", "-A", "visionaire_site", "worker",
        "-Q", "node.1", "--hostname", "node1-test@%h", "--pool", "threads", "--concurrency", "2",
        "--without-gossip", "--without-mingle", "--loglevel", "WARNING",
    ]  # fmt: skip
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            yield process
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(10)
            log.seek(0)
            # Captured by pytest: shown only when the test fails.
            print(log.read().decode(errors="replace")[-5000:])


def node_1(api) -> dict:
    nodes = api.get("/node_status").json()["nodes"]
    return next((n for n in nodes if n["node_num"] == 1), {})


def test_worker_runs_the_node_agent(api, redis_client, worker_node_1):
    online = wait_for(
        lambda: node_1(api).get("status") == "online" and node_1(api), timeout=30, what="node 1 online"
    )
    assert online == {
        "node_num": 1,
        "status": "online",
        "running_time_sec": online["running_time_sec"],
        "ip_address": online["ip_address"],
        "run_mode": "CPU",
    }
    assert isinstance(online["running_time_sec"], int) and online["ip_address"]
    beat = json.loads(redis_client.get(heartbeat_key(1)))
    assert beat["pid"] == worker_node_1.pid
    assert beat["last_restart_at"] is None

    response = api.post("/system/restart")
    assert response.json() == {"code": 200, "message": "System restart initiated"}
    beat = wait_for(
        lambda: (
            (b := json.loads(redis_client.get(heartbeat_key(1)) or "{}")).get("restart_generation") == 1 and b
        ),
        what="the worker acting on the restart",
    )
    assert beat["last_restart_at"] >= beat["started_at"]

    worker_node_1.send_signal(signal.SIGTERM)
    assert worker_node_1.wait(20) == 0
    assert node_1(api) == {
        "node_num": 1,
        "status": "offline",
        "running_time_sec": 0,
        "ip_address": online["ip_address"],
        "run_mode": "CPU",
    }
