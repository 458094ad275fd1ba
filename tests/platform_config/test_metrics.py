"""/metrics: django-prometheus's exposition plus the platform's own series,
with live figures written into Redis the way stream runners on any host do."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from analytics.models import Analytic
from live.keys import pipeline_stats_key, stream_stats_key
from platform_config.models import Node
from platform_config.nodes import node_heartbeat_write, redis_now
from streams.models import Pipeline, Stream

pytestmark = pytest.mark.django_db

STREAM_IDS = [
    "5136c6c0916cd30c",
    "5136c6c0916cd30d",
    "5136c6c0916cd30e",
    "5136c6c0916cd30f",
    "5136c6c0916cd310",
]


def scrape(api) -> tuple[str, dict[str, dict[tuple, float]]]:
    """The body, and each family's samples keyed by (sample name, sorted labels)."""
    response = api.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = response.content.decode()
    families = {}
    for family in text_string_to_metric_families(text):
        families[family.name] = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in family.samples}
    return text, families


def analytic(analytic_id: str) -> Analytic:
    return Analytic.objects.get_or_create(
        id=analytic_id,
        defaults={"name": analytic_id, "major_version": 1, "minor_version": 0, "publisher": "t", "type": "t"},
    )[0]


@pytest.fixture
def cluster(redis_client):
    Node.objects.create(num=1)
    for index, stream_id in enumerate(STREAM_IDS):
        Stream.objects.create(
            stream_id=stream_id, node_id=index % 2, address=f"rtsp://10.0.0.{index}/s", active=index != 4
        )
    Pipeline.objects.create(stream_id=STREAM_IDS[0], analytic=analytic("NFV4-FR"))
    Pipeline.objects.create(stream_id=STREAM_IDS[1], analytic=analytic("NFV4-FR"))
    Pipeline.objects.create(stream_id=STREAM_IDS[1], analytic=analytic("NFV4-LPR3"))
    # As a stream runner on node 0 and one on node 1 would write them.
    redis_client.hset(
        stream_stats_key(STREAM_IDS[0]),
        mapping={
            "fps": 25.5,
            "frames_dropped": 12,
            "reconnects": 2,
            "reconnect_attempts": 9,
            "uptime_sec": 600,
            "state": "RUNNING",
        },
    )
    redis_client.hset(
        stream_stats_key(STREAM_IDS[1]),
        mapping={
            "fps": 0,
            "frames_dropped": 0,
            "reconnects": 7,
            "reconnect_attempts": 31,
            "uptime_sec": 30,
            "state": "RECONNECTING",
        },
    )
    redis_client.hset(
        pipeline_stats_key(STREAM_IDS[0], "NFV4-FR"),
        mapping={
            "processed_fps": 8,
            "last_latency_ms": 42,
            "p95_latency_ms": 80,
            "events_emitted": 31,
            "errors": 1,
        },
    )
    now = redis_now(redis_client)
    node_heartbeat_write(
        client=redis_client,
        heartbeat={
            "node_num": 1,
            "ts": now,
            "started_at": now - 100,
            "uptime_sec": 100.0,
            "ip_address": "192.168.1.101",
            "hostname": "h1",
            "pid": 1,
            "run_mode": "CPU",
            "cpu_percent": 12.5,
            "ram_percent": 40.0,
            "swap_memory_percent": 0.0,
            "gpus": [],
            "last_restart_at": None,
            "restart_generation": 0,
        },
    )


def test_metrics_has_the_seed_series(api):
    for stream_id in STREAM_IDS:
        Stream.objects.create(stream_id=stream_id, node_id=0, address="rtsp://10.0.0.1/s")
    text, families = scrape(api)
    # The seed's example, as exposed (the value is printed as 5.0).
    assert "# HELP visionaire_streams_total Total streams\n# TYPE visionaire_streams_total gauge\n" in text
    assert families["visionaire_streams_total"] == {("visionaire_streams_total", ()): 5.0}
    # django-prometheus's own series are there too.
    assert "django_http_requests_before_middlewares" in families


def test_metrics_platform_series_with_values(api, cluster):
    _text, m = scrape(api)
    node0, node1 = ("node_num", "0"), ("node_num", "1")
    s0 = (node0, ("stream_id", STREAM_IDS[0]))
    s1 = (node1, ("stream_id", STREAM_IDS[1]))

    assert m["visionaire_streams_total"] == {("visionaire_streams_total", ()): 5.0}
    assert m["visionaire_streams_active"] == {("visionaire_streams_active", ()): 4.0}
    assert m["visionaire_nodes_total"] == {("visionaire_nodes_total", ()): 2.0}
    assert m["visionaire_nodes_online"] == {("visionaire_nodes_online", ()): 1.0}
    pipelines = m["visionaire_pipelines"]
    assert pipelines[("visionaire_pipelines", (("analytic_id", "NFV4-FR"),))] == 2.0
    assert pipelines[("visionaire_pipelines", (("analytic_id", "NFV4-LPR3"),))] == 1.0

    assert m["visionaire_stream_fps"] == {
        ("visionaire_stream_fps", s0): 25.5,
        ("visionaire_stream_fps", s1): 0.0,
    }
    assert m["visionaire_stream_frames_dropped"] == {
        ("visionaire_stream_frames_dropped_total", s0): 12.0,
        ("visionaire_stream_frames_dropped_total", s1): 0.0,
    }
    assert m["visionaire_stream_reconnects"] == {
        ("visionaire_stream_reconnects_total", s0): 2.0,
        ("visionaire_stream_reconnects_total", s1): 7.0,
    }
    assert m["visionaire_stream_reconnect_attempts"] == {
        ("visionaire_stream_reconnect_attempts_total", s0): 9.0,
        ("visionaire_stream_reconnect_attempts_total", s1): 31.0,
    }
    assert m["visionaire_stream_uptime_seconds"] == {
        ("visionaire_stream_uptime_seconds", s0): 600.0,
        ("visionaire_stream_uptime_seconds", s1): 30.0,
    }
    states = m["visionaire_stream_state"]
    assert states[("visionaire_stream_state", tuple(sorted((*s0, ("state", "RUNNING")))))] == 1.0
    assert states[("visionaire_stream_state", tuple(sorted((*s0, ("state", "ERROR")))))] == 0.0
    assert states[("visionaire_stream_state", tuple(sorted((*s1, ("state", "RECONNECTING")))))] == 1.0
    assert sum(states.values()) == 2.0

    p0 = tuple(sorted((("analytic_id", "NFV4-FR"), *s0)))
    assert m["visionaire_pipeline_processed_fps"] == {("visionaire_pipeline_processed_fps", p0): 8.0}
    assert m["visionaire_pipeline_inference_latency_seconds"] == {
        ("visionaire_pipeline_inference_latency_seconds", p0): 0.042
    }
    assert m["visionaire_pipeline_inference_latency_p95_seconds"] == {
        ("visionaire_pipeline_inference_latency_p95_seconds", p0): 0.08
    }
    assert m["visionaire_pipeline_events_emitted"] == {("visionaire_pipeline_events_emitted_total", p0): 31.0}
    assert m["visionaire_pipeline_errors"] == {("visionaire_pipeline_errors_total", p0): 1.0}

    assert m["visionaire_node_up"] == {
        ("visionaire_node_up", (node0,)): 0.0,
        ("visionaire_node_up", (node1,)): 1.0,
    }
    assert m["visionaire_node_cpu_percent"] == {("visionaire_node_cpu_percent", (node1,)): 12.5}
    assert m["visionaire_node_ram_percent"] == {("visionaire_node_ram_percent", (node1,)): 40.0}
    assert m["visionaire_live_state_up"] == {("visionaire_live_state_up", ()): 1.0}


def test_metrics_read_stream_hashes_in_one_round_trip(api, cluster, django_assert_max_num_queries):
    # The scrape's own database work does not grow with the number of streams.
    for index in range(20):
        Stream.objects.create(stream_id=f"{index:016x}", node_id=0, address="rtsp://10.0.0.9/s")
    with django_assert_max_num_queries(12):
        scrape(api)


def test_metrics_without_redis_still_report_database_counts(api, cluster, monkeypatch):
    import socket

    import redis as redis_lib
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from platform_config import nodes
    from streams import metrics as stream_metrics
    from workers import metrics as runtime_metrics

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    down = redis_lib.Redis(port=port, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    monkeypatch.setattr(nodes, "get_redis", lambda: down)
    monkeypatch.setattr(stream_metrics, "get_redis", lambda: down)
    monkeypatch.setattr(runtime_metrics, "get_redis", lambda: down)
    _text, m = scrape(api)
    assert m["visionaire_streams_total"] == {("visionaire_streams_total", ()): 5.0}
    assert m["visionaire_live_state_up"] == {("visionaire_live_state_up", ()): 0.0}
    assert "visionaire_stream_fps" not in m or m["visionaire_stream_fps"] == {}


def test_metrics_is_open_when_tokens_are_set(api, settings):
    settings.API_TOKENS = ["secret"]
    assert api.get("/metrics").status_code == 200
    assert api.get("/node_status").status_code == 401


def test_metrics_accepts_a_prometheus_accept_header(api):
    accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
    response = api.get("/metrics", HTTP_ACCEPT=accept)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
