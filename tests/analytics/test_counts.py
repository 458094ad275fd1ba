"""Counts over time: the additive store, the roll-up by hour and day, the counts
route's answers and errors, the count writer, and the /metrics counters."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from analytics.counts import CountWriter, StoredCount, counts_prune, counts_store
from analytics.models import AnalyticCount

pytestmark = pytest.mark.django_db

HOUR = 3_600_000
DAY = 86_400_000
T0 = 1_767_225_600_000  # 2026-01-01 00:00 UTC
MPA = "NFV4-MPA"


@pytest.fixture
def stream_id(api) -> str:
    response = api.post("/streams/0", {"stream_address": "rtsp://127.0.0.1:8554/cam"})
    return response.json()["stream_id"]


def row(stream_id, minute_ms, direction, value, *, zone="gate", label="person", analytic=MPA):
    return StoredCount(stream_id, analytic, minute_ms, zone, label, direction, value)


def test_store_adds_counts_and_keeps_the_higher_peak(stream_id):
    counts_store([row(stream_id, T0, "in", 2), row(stream_id, T0, "peak", 5, zone="hall", label="*")])
    counts_store([row(stream_id, T0, "in", 3), row(stream_id, T0, "peak", 4, zone="hall", label="*")])
    counts_store([row(stream_id, T0, "in", 1), row(stream_id, T0, "in", 1)])  # one call, one key twice
    stored = {(c.zone, c.direction): c.value for c in AnalyticCount.objects.all()}
    assert stored == {("gate", "in"): 7, ("hall", "peak"): 5}


def test_counts_route_by_minute_hour_and_day(api, stream_id):
    counts_store(
        [
            row(stream_id, T0, "in", 2),
            row(stream_id, T0 + 60_000, "in", 1),
            row(stream_id, T0 + 60_000, "out", 4),
            row(stream_id, T0 + HOUR + 120_000, "in", 5),
            row(stream_id, T0, "peak", 3, zone="hall", label="*"),
            row(stream_id, T0 + 60_000, "peak", 6, zone="hall", label="*"),
            row(stream_id, T0 + DAY, "in", 9),
            row(stream_id, T0, "in", 100, analytic="NFV4-MVA"),  # another analytic
        ]
    )
    base = f"/analytics/0/{stream_id}/{MPA}/counts?from_ms={T0}&to_ms={T0 + DAY}"
    head = {
        "code": 200,
        "message": "success",
        "node_num": 0,
        "stream_id": stream_id,
        "analytic_id": MPA,
        "from_ms": T0,
        "to_ms": T0 + DAY,
    }
    assert api.get(base).json() == {
        **head,
        "bucket": "minute",
        "counts": [
            {"bucket_ms": T0, "zone": "gate", "label": "person", "direction": "in", "value": 2},
            {"bucket_ms": T0, "zone": "hall", "label": "*", "direction": "peak", "value": 3},
            {"bucket_ms": T0 + 60_000, "zone": "gate", "label": "person", "direction": "in", "value": 1},
            {"bucket_ms": T0 + 60_000, "zone": "gate", "label": "person", "direction": "out", "value": 4},
            {"bucket_ms": T0 + 60_000, "zone": "hall", "label": "*", "direction": "peak", "value": 6},
            {
                "bucket_ms": T0 + HOUR + 120_000,
                "zone": "gate",
                "label": "person",
                "direction": "in",
                "value": 5,
            },
        ],
    }
    assert api.get(base + "&bucket=hour").json() == {
        **head,
        "bucket": "hour",
        "counts": [
            {"bucket_ms": T0, "zone": "gate", "label": "person", "direction": "in", "value": 3},
            {"bucket_ms": T0, "zone": "gate", "label": "person", "direction": "out", "value": 4},
            {"bucket_ms": T0, "zone": "hall", "label": "*", "direction": "peak", "value": 6},  # max, not sum
            {"bucket_ms": T0 + HOUR, "zone": "gate", "label": "person", "direction": "in", "value": 5},
        ],
    }
    day = api.get(
        f"/analytics/0/{stream_id}/{MPA}/counts?from_ms={T0}&to_ms={T0 + 2 * DAY}&bucket=day"
    ).json()
    assert day["counts"] == [
        {"bucket_ms": T0, "zone": "gate", "label": "person", "direction": "in", "value": 8},
        {"bucket_ms": T0, "zone": "gate", "label": "person", "direction": "out", "value": 4},
        {"bucket_ms": T0, "zone": "hall", "label": "*", "direction": "peak", "value": 6},
        {"bucket_ms": T0 + DAY, "zone": "gate", "label": "person", "direction": "in", "value": 9},
    ]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("bucket=week", "bucket must be minute, hour or day, not 'week'"),
        ("from_ms=abc", "from_ms must be an integer (unix milliseconds), not 'abc'"),
        ("to_ms=-5", "to_ms must be between 0 and 2^53 (unix milliseconds)"),
        ("from_ms=10&to_ms=5", "from_ms must not be after to_ms"),
    ],
)
def test_counts_route_refuses_bad_queries(api, stream_id, query, message):
    response = api.get(f"/analytics/0/{stream_id}/{MPA}/counts?{query}")
    assert (response.status_code, response.json()) == (400, {"code": 400, "message": message})


def test_counts_route_unknown_node_stream_or_analytic(api, stream_id):
    assert api.get(f"/analytics/7/{stream_id}/{MPA}/counts").json() == {
        "code": 404,
        "message": "node not found",
    }
    assert api.get(f"/analytics/0/00000000000000ff/{MPA}/counts").json() == {
        "code": 404,
        "message": "stream not found",
    }
    assert api.get(f"/analytics/0/{stream_id}/NOPE/counts").json() == {
        "code": 404,
        "message": "analytic not found",
    }
    assert api.get(f"/analytics/0/{stream_id}/{MPA}/counts").json()["counts"] == []


def test_counts_reach_metrics_as_counters_without_peaks(api, stream_id):
    counts_store(
        [row(stream_id, T0, "in", 2), row(stream_id, T0 + 60_000, "in", 3), row(stream_id, T0, "peak", 9)]
    )
    text = api.get("/metrics").content.decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.startswith("visionaire_people_counted")
    }
    labels = (("direction", "in"), ("label", "person"), ("stream_id", stream_id), ("zone", "gate"))
    assert samples == {("visionaire_people_counted_total", labels): 5}


def test_prune_removes_old_minutes(stream_id):
    counts_store([row(stream_id, T0, "in", 1), row(stream_id, T0 + DAY, "in", 1)])
    assert counts_prune(T0 + DAY) == 1
    assert list(AnalyticCount.objects.values_list("minute_ms", flat=True)) == [T0 + DAY]


def test_writer_keeps_rows_while_the_store_fails_and_bounds_them(stream_id):
    from django.db import OperationalError

    calls = {"fail": True}
    stored: list = []

    def store(rows):
        if calls["fail"]:
            raise OperationalError("connection refused")
        rows = list(rows)
        stored.extend(rows)
        return len(rows)

    writer = CountWriter(max_rows=3, store=store)
    try:
        writer.submit([row(stream_id, T0, "in", 1), row(stream_id, T0, "in", 2)])  # merged: one key
        writer.submit([row(stream_id, T0 + 60_000, "in", 1), row(stream_id, T0 + 60_000, "out", 1)])
        writer.submit([row(stream_id, T0 + 120_000, "in", 1)])  # over the bound: the oldest minute goes
        assert not writer.flush(timeout=0.5)
        assert writer.stats()["dropped_rows"] == 1 and writer.pending == 3
        calls["fail"] = False
        assert writer.flush(timeout=20)
    finally:
        assert writer.stop()
    assert sorted((r.minute_ms - T0, r.direction, r.value) for r in stored) == [
        (60_000, "in", 1),
        (60_000, "out", 1),
        (120_000, "in", 1),
    ]
