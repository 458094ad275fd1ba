"""The node agent run in-process: registration, heartbeats, restart control,
and surviving a lost Redis.

The agent thread uses its own database connection, so these tests commit
(transactional_db); the flush after each runs post_migrate, which restores
node 0.
"""

from __future__ import annotations

import json
import sys
import time
import types

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from live.keys import RESTART_CHANNEL, RESTART_GENERATION_KEY, heartbeat_key
from platform_config.models import Node
from workers import node_agent
from workers.node_agent import GpuProbe, detect_run_mode, outbound_ip

from .conftest import wait_for

transactional = pytest.mark.django_db(transaction=True)


def heartbeat(redis_client, node_num: int) -> dict | None:
    raw = redis_client.get(heartbeat_key(node_num))
    return json.loads(raw) if raw else None


def unreachable_redis(port: int) -> redis.Redis:
    # No retries: each beat fails at once instead of backing off for seconds.
    return redis.Redis(port=port, socket_connect_timeout=0.2, socket_timeout=0.2, retry=Retry(NoBackoff(), 0))


OFFLINE_NODE_0 = {
    "node_num": 0,
    "status": "offline",
    "running_time_sec": 0,
    "ip_address": "",
    "run_mode": "CPU",
}


@transactional
def test_agent_registers_node_and_reports_online_then_offline_after_clean_stop(api, agents, redis_client):
    agent = agents(3)
    beat = wait_for(lambda: heartbeat(redis_client, 3), what="node 3 heartbeat")

    node = Node.objects.get(num=3)
    assert node.ip_address == outbound_ip()
    assert node.last_started_at is not None
    assert set(beat) == {
        "v", "node_num", "ts", "started_at", "uptime_sec", "ip_address", "hostname", "pid", "run_mode",
        "cpu_percent", "ram_percent", "swap_memory_percent", "gpus", "last_restart_at", "restart_generation",
    }  # fmt: skip
    assert beat["v"] == 1  # the live contract's message version (live.messages)
    assert beat["node_num"] == 3 and beat["run_mode"] == "CPU" and beat["gpus"] == []
    assert beat["last_restart_at"] is None and beat["restart_generation"] == 0
    assert redis_client.smembers("visionaire:nodes") == {"3"}

    body = api.get("/node_status").json()
    online = body["nodes"][1]
    assert isinstance(online["running_time_sec"], int) and 0 <= online["running_time_sec"] < 60
    assert body == {
        "node_number": 2,
        "nodes": [
            OFFLINE_NODE_0,
            {
                "node_num": 3,
                "status": "online",
                "running_time_sec": online["running_time_sec"],
                "ip_address": outbound_ip(),
                "run_mode": "CPU",
            },
        ],
    }

    agent.stop()
    # A clean stop clears the heartbeat: offline at once, last address kept from the row.
    assert api.get("/node_status").json()["nodes"][1] == {
        "node_num": 3,
        "status": "offline",
        "running_time_sec": 0,
        "ip_address": outbound_ip(),
        "run_mode": "CPU",
    }


@transactional
def test_node_goes_offline_after_the_window_when_the_agent_dies(api, agents, redis_client, settings):
    agent = agents(2)
    wait_for(lambda: agent.beats >= 1, what="first heartbeat")
    # Kill the thread without the clean stop: the last heartbeat stays and ages.
    agent._stop.set()
    agent._thread.join(5)
    died_at = time.monotonic()
    assert api.get("/node_status").json()["nodes"][1]["status"] == "online"

    wait_for(
        lambda: api.get("/node_status").json()["nodes"][1]["status"] == "offline",
        timeout=settings.NODE_OFFLINE_AFTER_SECONDS + 5,
        what="node 2 offline",
    )
    assert time.monotonic() - died_at >= settings.NODE_OFFLINE_AFTER_SECONDS - 0.5
    assert heartbeat(redis_client, 2) is not None  # still there: offline is judged by age


@transactional
def test_resource_stats_report_measured_figures_of_online_nodes(api, agents, redis_client):
    agents(4)
    wait_for(lambda: heartbeat(redis_client, 4), what="node 4 heartbeat")

    body = api.get("/resource_stats").json()
    assert [d["node_num"] for d in body["devices"]] == [4]  # node 0 is offline: not listed
    data = body["devices"][0]["data"]
    assert set(data) == {"cpu_percent", "ram_percent", "swap_memory_percent", "gpus"}
    for name in ("cpu_percent", "ram_percent", "swap_memory_percent"):
        assert isinstance(data[name], (int, float)) and 0 <= data[name] <= 100
        assert round(data[name], 2) == data[name]
    assert data["ram_percent"] > 0  # a real measurement
    assert body == {"devices": [{"node_num": 4, "data": {**data, "gpus": []}}]}

    v2 = api.get("/v2/resource_stats").json()
    assert list(v2["devices"][0]) == ["node_num", "ip_address", "data"]
    assert v2 == {"devices": [{"node_num": 4, "ip_address": outbound_ip(), "data": v2["devices"][0]["data"]}]}
    assert set(v2["devices"][0]["data"]) == set(data) and v2["devices"][0]["data"]["gpus"] == []


@transactional
def test_restart_message_runs_hooks_once(api, agents, redis_client, restart_calls, settings):
    # A beat every 30 s: within this test only the pub/sub message can deliver the restart.
    settings.NODE_HEARTBEAT_SECONDS = 30
    agent = agents(5)
    wait_for(lambda: agent._pubsub is not None and agent._pubsub.subscribed, what="agent subscribed")
    wait_for(lambda: redis_client.pubsub_numsub(RESTART_CHANNEL)[0][1] >= 1, what="subscription at Redis")

    response = api.post("/system/restart")
    assert response.status_code == 200
    assert response.json() == {"code": 200, "message": "System restart initiated"}

    wait_for(lambda: restart_calls, what="restart hook called")
    beat = wait_for(
        lambda: (b := heartbeat(redis_client, 5)) and b["restart_generation"] == 1 and b,
        what="restart recorded in the heartbeat",
    )
    assert beat["last_restart_at"] >= beat["started_at"]
    assert len(restart_calls) == 1


@transactional
def test_missed_restart_message_is_caught_by_the_generation_counter(agents, redis_client, restart_calls):
    agent = agents(6)
    wait_for(lambda: agent.beats >= 1, what="first heartbeat")
    # As if the API's publish was lost: only the counter moves.
    redis_client.incr(RESTART_GENERATION_KEY)

    wait_for(lambda: restart_calls, what="restart hook called from the counter")
    wait_for(lambda: (heartbeat(redis_client, 6) or {}).get("restart_generation") == 1, what="generation 1")
    beats = agent.beats
    wait_for(lambda: agent.beats >= beats + 3, what="more heartbeats")
    assert len(restart_calls) == 1  # the same generation does not restart twice


@transactional
def test_restart_requested_before_the_agent_started_is_not_replayed(agents, redis_client, restart_calls):
    redis_client.set(RESTART_GENERATION_KEY, 7)
    agent = agents(7)
    wait_for(lambda: agent.beats >= 3, what="heartbeats")
    assert restart_calls == []
    assert heartbeat(redis_client, 7)["restart_generation"] == 7


@transactional
def test_restart_after_redis_lost_the_counter(api, agents, redis_client, restart_calls):
    redis_client.set(RESTART_GENERATION_KEY, 7)
    agent = agents(11)
    wait_for(lambda: agent.beats >= 1, what="first heartbeat")
    redis_client.delete(RESTART_GENERATION_KEY)  # as after a Redis restart without persistence
    beats = agent.beats
    wait_for(lambda: agent.beats >= beats + 2, what="heartbeats after the reset")
    assert restart_calls == []

    assert api.post("/system/restart").status_code == 200  # generation 1 again
    wait_for(lambda: restart_calls, what="restart hook called")
    wait_for(lambda: (heartbeat(redis_client, 11) or {}).get("restart_generation") == 1, what="generation 1")
    assert len(restart_calls) == 1


@transactional
def test_failing_restart_hook_does_not_stop_the_others(agents, redis_client):
    calls: list[str] = []

    def broken() -> None:
        calls.append("broken")
        raise RuntimeError("boom")

    def working() -> None:
        calls.append("working")

    node_agent.on_restart(broken)
    node_agent.on_restart(working)
    node_agent.on_restart(broken)  # registering twice is a no-op
    try:
        agent = agents(8)
        wait_for(lambda: agent.beats >= 1, what="first heartbeat")
        redis_client.incr(RESTART_GENERATION_KEY)
        wait_for(lambda: "working" in calls, what="the hook after the failing one")
        assert calls == ["broken", "working"]
        assert agent.alive
    finally:
        node_agent.remove_restart_hook(broken)
        node_agent.remove_restart_hook(working)


def test_agent_survives_redis_being_down(agents, closed_port):
    client = unreachable_redis(closed_port)
    agent = agents(9, client=client, register=False)
    wait_for(lambda: agent.failures >= 3, what="failed beats")
    assert agent.alive
    assert agent.beats == 0


@transactional
def test_agent_recovers_when_redis_comes_back(agents, redis_client, closed_port):
    agent = agents(10)
    wait_for(lambda: agent.beats >= 1, what="first heartbeat")
    good = agent.client
    agent.client = unreachable_redis(closed_port)
    failures = agent.failures
    wait_for(lambda: agent.failures >= failures + 2, what="failed beats")
    agent.client = good
    beats = agent.beats
    wait_for(lambda: agent.beats >= beats + 2, what="heartbeats again")
    assert agent.alive


# --- measurements ---------------------------------------------------------------


class _FakeNvml(types.ModuleType):
    """Stand-in for pynvml with one Tesla P4, as in the contract's example."""

    NVML_TEMPERATURE_GPU = 0

    class NVMLError(Exception):
        pass

    def __init__(self):
        super().__init__("pynvml")
        self.shutdowns = 0

    def nvmlInit(self):
        pass

    def nvmlShutdown(self):
        self.shutdowns += 1

    def nvmlDeviceGetCount(self):
        return 1

    def nvmlDeviceGetHandleByIndex(self, index):
        return f"gpu{index}"

    def nvmlDeviceGetName(self, handle):
        return b"Tesla P4"

    def nvmlDeviceGetMemoryInfo(self, handle):
        return types.SimpleNamespace(total=7981694976, used=5451022336, free=2530672640)

    def nvmlDeviceGetUtilizationRates(self, handle):
        return types.SimpleNamespace(gpu=85, memory=40)

    def nvmlDeviceGetTemperature(self, handle, sensor):
        return 72


def test_gpu_probe_reads_nvml_and_registered_services(monkeypatch):
    fake = _FakeNvml()
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    node_agent.gpu_service_add(gpu_id=0, service_name="visionaire::face_extraction")
    try:
        probe = GpuProbe()
        assert probe.stats() == [
            {
                "gpu_id": 0,
                "gpu_name": "Tesla P4",
                "gpu_utilization": 85,
                "gpu_temperature": 72,
                "gpu_memory_total": 7981694976,
                "gpu_memory_used": 5451022336,
                "gpu_memory_free": 2530672640,
                "services": [{"service_name": "visionaire::face_extraction", "service_number": 1}],
            }
        ]
        probe.close()
        assert fake.shutdowns == 1
    finally:
        node_agent.gpu_service_remove(gpu_id=0, service_name="visionaire::face_extraction")
    assert node_agent.gpu_services(0) == []


def test_gpu_probe_without_driver_reports_no_gpus(monkeypatch):
    fake = _FakeNvml()

    def no_driver():
        raise fake.NVMLError("Driver Not Loaded")

    fake.nvmlInit = no_driver
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    assert GpuProbe().stats() == []
    monkeypatch.setitem(sys.modules, "pynvml", None)  # not installed
    assert GpuProbe().stats() == []


def test_run_mode_is_cpu_where_cuda_does_not_run():
    # This machine has ONNX Runtime's CPU build only: the probe model runs on CPU.
    from analytics import runtime as model_runtime

    assert model_runtime.cuda_works() is False
    assert model_runtime.providers() == ["CPUExecutionProvider"]
    assert detect_run_mode() == "CPU"
    session = model_runtime.SESSIONS.get("probe", lambda: model_runtime._PROBE_MODEL)
    assert session.get_providers() == ["CPUExecutionProvider"]
    assert model_runtime.SESSIONS.get("probe", lambda: b"never loaded") is session  # shared


def test_run_mode_is_gpu_only_with_working_cuda_and_a_visible_gpu(monkeypatch):
    from analytics import runtime as model_runtime

    monkeypatch.setattr(model_runtime, "cuda_works", lambda: True)
    monkeypatch.setitem(sys.modules, "pynvml", _FakeNvml())
    assert detect_run_mode() == "GPU"
    monkeypatch.setitem(sys.modules, "pynvml", None)  # CUDA runs but NVML sees no GPU
    assert detect_run_mode() == "CPU"


def test_outbound_ip_is_an_address():
    import ipaddress

    assert ipaddress.ip_address(outbound_ip()).version == 4
