"""A real Celery worker for node 1, started as `visionaire.py up` starts one:
its node agent comes up with the worker, acts on /system/restart, and the node
goes offline when the worker is stopped with SIGTERM."""

from __future__ import annotations

import json

import pytest

from live.keys import heartbeat_key
from tests.support.workers import spawn_worker

from .conftest import wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture
def worker_node_1(transactional_db, tmp_path):
    # The worker uses the test database, and sees the rows this test commits.
    worker = spawn_worker(1, log_dir=tmp_path, concurrency=2)
    try:
        yield worker
    finally:
        worker.kill()
        print(worker.log_tail())  # captured by pytest: shown only when the test fails


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

    assert worker_node_1.stop(timeout=20) == 0  # SIGTERM: a graceful shutdown
    assert node_1(api) == {
        "node_num": 1,
        "status": "offline",
        "running_time_sec": 0,
        "ip_address": online["ip_address"],
        "run_mode": "CPU",
    }
