"""A worker's runtime report (workers/runtime_report.py): the shared models of the
installed analytics warmed at start (the face engine, with its provider), the
event writer's counters, written to Redis and shown by /metrics."""

from __future__ import annotations

import json

import pytest
from prometheus_client.parser import text_string_to_metric_families

from analytics.face import engine
from analytics.face.capabilities import FACE_ENGINE
from analytics.models import Analytic
from live.keys import node_runtime_key
from platform_config.nodes import node_heartbeat_write, redis_now
from workers import event_sink as sink_module
from workers import runtime_report

from .conftest import wait_for

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_face_state():
    FACE_ENGINE.status_set(state="not_loaded")
    yield
    FACE_ENGINE.status_set(state="not_loaded")


@pytest.fixture
def no_process_sink():
    sink_module.event_sink_forget()
    yield
    sink_module.event_sink_forget()


def heartbeat(client, node_num: int = 0) -> None:
    now = redis_now(client)
    node_heartbeat_write(
        client=client,
        heartbeat={
            "node_num": node_num,
            "ts": now,
            "started_at": now - 10,
            "uptime_sec": 10.0,
            "ip_address": "127.0.0.1",
            "hostname": "h0",
            "pid": 1,
            "run_mode": "CPU",
            "cpu_percent": 1.0,
            "ram_percent": 1.0,
            "swap_memory_percent": 0.0,
            "gpus": [],
            "last_restart_at": None,
            "restart_generation": 0,
        },
    )


def test_warm_up_reports_the_engine_and_its_provider():
    status = FACE_ENGINE.warm_up()
    assert status == {
        "state": "ready",
        "warm_up_seconds": status["warm_up_seconds"],
        "detector": "retinaface-mobilenet0.25",
        "embedder": "dlib-resnet-v1",
        "provider": "CPUExecutionProvider",
        "embedder_runtime": "onnxruntime",
        "embedder_provider": "CPUExecutionProvider",
        "dim": 128,
        "calibrated": True,  # the shipped model's thresholds (analytics.face.calibration)
    }
    assert status["warm_up_seconds"] > 0
    assert FACE_ENGINE.status() == status


def test_a_failed_warm_up_is_reported(monkeypatch):
    def broken():
        raise RuntimeError("model file missing")

    monkeypatch.setattr(engine, "face_engine", broken)
    assert FACE_ENGINE.warm_up() == {
        "state": "failed",
        "error": "RuntimeError: model file missing",
    }


def test_warm_up_covers_the_models_of_the_installed_analytics(monkeypatch):
    """The face engine serves both face analytics: warmed once if either is installed."""
    calls = []
    monkeypatch.setattr(FACE_ENGINE, "warm_up", lambda: calls.append(1))
    Analytic.objects.filter(id__in=["NFV4-FR", "NFV4-SS"]).update(installed=False)
    runtime_report.models_warm_up()
    assert calls == []
    Analytic.objects.filter(id="NFV4-SS").update(installed=True)
    runtime_report.models_warm_up()
    assert calls == [1]
    Analytic.objects.filter(id="NFV4-FR").update(installed=True)
    runtime_report.models_warm_up()
    assert calls == [1, 1]


def test_the_report_carries_the_event_writer_counters(redis_client, no_process_sink, settings):
    from analytics.registry import shared_models

    # Every model the registered analytics declare is reported; other tests of this
    # process may have loaded some, so each is given a known state here (and its own
    # back afterwards). Running figures (a batching runtime another test started) aside.
    models = shared_models()
    saved = [model.status() for model in models]
    try:
        for model in models:
            model.status_set(state="not_loaded")
        FACE_ENGINE.status_set(state="warming")
        report = runtime_report.runtime_report_write(client=redis_client, node_num=3)
    finally:
        for model, status in zip(models, saved, strict=True):
            status.pop("figures", None)
            model.status_set(**status)
    reported = {
        name: {k: v for k, v in status.items() if k != "figures"} for name, status in report["models"].items()
    }
    assert {**report, "models": reported} == {
        "node_num": 3,
        "ts": report["ts"],
        "models": {
            "face_engine": {"state": "warming"},
            "object_detector": {"state": "not_loaded"},
            "plate_reader": {"state": "not_loaded"},
        },
        "event_writer": None,
    }
    settings.EVENT_QUEUE_CAPACITY = 50
    sink = sink_module.event_sink()
    try:
        runtime_report.runtime_report_write(client=redis_client, node_num=3)
        stored = json.loads(redis_client.get(node_runtime_key(3)))
        assert stored["event_writer"] == {
            "queued": 0,
            "capacity": 50,
            "submitted": 0,
            "written": 0,
            "dropped": 0,
            "failed": 0,
            "batches": 0,
            "last_batch_size": 0,
            "last_batch_ms": 0.0,
            "spilled": 0,
            "replayed": 0,
            "spooled": 0,
            "spool_bytes": 0,
            "retries": 0,
            "database_up": True,
        }
        assert 0 < redis_client.pttl(node_runtime_key(3)) <= settings.NODE_OFFLINE_AFTER_SECONDS * 1000
    finally:
        sink.stop(timeout=5)


def test_the_reporter_writes_until_stopped(redis_client):
    reporter = runtime_report.RuntimeReporter(2, client=redis_client)
    reporter.start()
    try:
        wait_for(lambda: reporter.reports >= 2, what="two runtime reports")
        assert json.loads(redis_client.get(node_runtime_key(2)))["node_num"] == 2
    finally:
        reporter.stop()
    assert redis_client.get(node_runtime_key(2)) is None


def test_metrics_show_the_face_engine_and_event_writer_of_online_nodes(api, redis_client, no_process_sink):
    heartbeat(redis_client, 0)
    FACE_ENGINE.warm_up()
    sink = sink_module.event_sink()
    try:
        sink.dropped = 4  # as if the store had fallen behind
        runtime_report.runtime_report_write(client=redis_client, node_num=0)
    finally:
        sink.stop(timeout=5)
    text = api.get("/metrics").content.decode()
    families = {
        family.name: {(s.name, tuple(sorted(s.labels.items()))): s.value for s in family.samples}
        for family in text_string_to_metric_families(text)
    }
    node0 = (("node_num", "0"),)
    assert families["visionaire_face_engine_info"] == {
        (
            "visionaire_face_engine_info",
            (
                ("embedder", "dlib-resnet-v1"),
                ("embedder_provider", "CPUExecutionProvider"),
                ("embedder_runtime", "onnxruntime"),
                ("node_num", "0"),
                ("provider", "CPUExecutionProvider"),
                ("state", "ready"),
            ),
        ): 1.0
    }
    assert families["visionaire_event_writer_dropped"] == {
        ("visionaire_event_writer_dropped_total", node0): 4.0
    }
    assert families["visionaire_event_writer_written"] == {
        ("visionaire_event_writer_written_total", node0): 0.0
    }
    assert families["visionaire_event_writer_queue_depth"] == {
        ("visionaire_event_writer_queue_depth", node0): 0.0
    }
