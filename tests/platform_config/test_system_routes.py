"""/node_status, /resource_stats, /v2/resource_stats and /system/restart, with
heartbeats written the way a node agent writes them."""

from __future__ import annotations

import time

import pytest
import redis as redis_lib
from redis.backoff import NoBackoff
from redis.retry import Retry

from live.keys import RESTART_CHANNEL, RESTART_GENERATION_KEY
from platform_config import nodes
from platform_config.models import Node
from platform_config.nodes import node_heartbeat_write, redis_now

pytestmark = pytest.mark.django_db

TESLA_P4 = {
    "gpu_id": 0,
    "gpu_name": "Tesla P4",
    "gpu_utilization": 85,
    "gpu_temperature": 72,
    "gpu_memory_total": 7981694976,
    "gpu_memory_used": 5451022336,
    "gpu_memory_free": 2530672640,
    "services": [{"service_name": "visionaire::face_extraction", "service_number": 1}],
}


def write_heartbeat(client, node_num: int, *, age: float = 0.0, **fields) -> None:
    now = redis_now(client)
    beat = {
        "node_num": node_num,
        "ts": now - age,
        "started_at": now - age - 3600,
        "uptime_sec": 3600.0,
        "ip_address": "192.168.1.100",
        "hostname": "gpu-host",
        "pid": 1234,
        "run_mode": "GPU",
        "cpu_percent": 12.4449,
        "ram_percent": 27.456,
        "swap_memory_percent": 0.0,
        "gpus": [TESLA_P4],
        "last_restart_at": None,
        "restart_generation": 0,
    }
    beat.update(fields)
    node_heartbeat_write(client=client, heartbeat=beat)


def test_node_without_heartbeat_is_offline(api):
    response = api.get("/node_status")
    assert response.status_code == 200
    assert response.json() == {
        "node_number": 1,
        "nodes": [
            {"node_num": 0, "status": "offline", "running_time_sec": 0, "ip_address": "", "run_mode": "CPU"}
        ],
    }


def test_node_status_online_stale_and_unknown(api, redis_client, settings):
    Node.objects.create(num=1, ip_address="192.168.1.101")
    Node.objects.create(num=2, ip_address="192.168.1.102")
    write_heartbeat(redis_client, 0)
    # Node 1 last beat longer ago than the offline window: offline, last run mode kept.
    write_heartbeat(redis_client, 1, age=settings.NODE_OFFLINE_AFTER_SECONDS + 1, ip_address="192.168.1.101")

    assert api.get("/node_status").json() == {
        "node_number": 3,
        "nodes": [
            {
                "node_num": 0,
                "status": "online",
                "running_time_sec": 3600,
                "ip_address": "192.168.1.100",
                "run_mode": "GPU",
            },
            {
                "node_num": 1,
                "status": "offline",
                "running_time_sec": 0,
                "ip_address": "192.168.1.101",
                "run_mode": "GPU",
            },
            {
                "node_num": 2,
                "status": "offline",
                "running_time_sec": 0,
                "ip_address": "192.168.1.102",
                "run_mode": "CPU",
            },
        ],
    }


def test_running_time_counts_the_age_of_the_heartbeat(api, redis_client, settings):
    settings.NODE_OFFLINE_AFTER_SECONDS = 60  # a busy machine may take seconds to answer
    started = time.monotonic()
    write_heartbeat(redis_client, 0, age=1.5)
    running = api.get("/node_status").json()["nodes"][0]["running_time_sec"]
    # uptime 3600 s at the beat, plus its age when the route read it.
    assert 3601 <= running <= 3601.5 + (time.monotonic() - started)


def test_resource_stats_lists_online_nodes_with_rounded_figures(api, redis_client, settings):
    Node.objects.create(num=1)
    Node.objects.create(num=2)
    write_heartbeat(redis_client, 0)
    write_heartbeat(redis_client, 1, age=settings.NODE_OFFLINE_AFTER_SECONDS + 1)
    write_heartbeat(redis_client, 2, gpus=[], cpu_percent=3.0, ram_percent=50.125, swap_memory_percent=1.5)

    response = api.get("/resource_stats")
    assert response.status_code == 200
    assert response.content.count(b'"swap_memory_percent":0,') == 1  # a whole number, as in the seed
    assert response.json() == {
        "devices": [
            {
                "node_num": 0,
                "data": {
                    "cpu_percent": 12.44,
                    "ram_percent": 27.46,
                    "swap_memory_percent": 0,
                    "gpus": [TESLA_P4],
                },
            },
            {
                "node_num": 2,
                "data": {"cpu_percent": 3, "ram_percent": 50.12, "swap_memory_percent": 1.5, "gpus": []},
            },
        ]
    }


def test_v2_resource_stats_adds_the_address(api, redis_client):
    write_heartbeat(redis_client, 0)
    response = api.get("/v2/resource_stats")
    assert response.status_code == 200
    assert list(response.json()["devices"][0]) == ["node_num", "ip_address", "data"]
    assert response.json() == {
        "devices": [
            {
                "node_num": 0,
                "ip_address": "192.168.1.100",
                "data": {
                    "cpu_percent": 12.44,
                    "ram_percent": 27.46,
                    "swap_memory_percent": 0,
                    "gpus": [TESLA_P4],
                },
            }
        ]
    }


def test_resource_stats_without_online_nodes(api):
    assert api.get("/resource_stats").json() == {"devices": []}
    assert api.get("/v2/resource_stats").json() == {"devices": []}


def test_heartbeat_of_an_unregistered_node_is_not_listed(api, redis_client):
    write_heartbeat(redis_client, 42)
    assert api.get("/node_status").json()["node_number"] == 1
    assert api.get("/resource_stats").json() == {"devices": []}


def test_system_restart_publishes_and_bumps_the_generation(api, redis_client):
    pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(RESTART_CHANNEL)
    try:
        response = api.post("/system/restart")
        assert response.status_code == 200
        assert response.json() == {"code": 200, "message": "System restart initiated"}
        deadline = time.monotonic() + 5
        message = None
        while message is None and time.monotonic() < deadline:
            message = pubsub.get_message(timeout=0.5)
        assert message == {"type": "message", "pattern": None, "channel": RESTART_CHANNEL, "data": "1"}
    finally:
        pubsub.close()
    assert redis_client.get(RESTART_GENERATION_KEY) == "1"

    assert api.post("/system/restart").status_code == 200
    assert redis_client.get(RESTART_GENERATION_KEY) == "2"


@pytest.mark.parametrize(
    "body, content_type",
    [
        ("", "application/json"),
        ("{not json", "application/json"),
        ("[1, 2]", "application/json"),
        ('{"force": true}', "application/json"),
        ("restart please", "text/plain"),
    ],
)
def test_system_restart_ignores_any_body(api, redis_client, body, content_type):
    response = api.generic("POST", "/system/restart", body, content_type=content_type)
    assert response.status_code == 200
    assert response.json() == {"code": 200, "message": "System restart initiated"}


def test_wrong_methods(api):
    assert api.get("/system/restart").json() == {"code": 405, "message": "method GET not allowed"}
    assert api.post("/node_status").json() == {"code": 405, "message": "method POST not allowed"}
    assert api.delete("/resource_stats").status_code == 405


def test_routes_answer_503_when_redis_is_down(api, monkeypatch, closed_port):
    down = redis_lib.Redis(port=closed_port, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    monkeypatch.setattr(nodes, "get_redis", lambda: down)
    unavailable = {"code": 503, "message": "redis unavailable"}
    for path in ("/node_status", "/resource_stats", "/v2/resource_stats"):
        response = api.get(path)
        assert (response.status_code, response.json()) == (503, unavailable)
    response = api.post("/system/restart")
    assert response.status_code == 503
    assert response.json() == {
        "code": 503,
        "message": "redis unavailable",
    }


def test_trailing_slash_is_not_a_route(api):
    assert api.get("/node_status/").status_code == 404


@pytest.fixture
def closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
