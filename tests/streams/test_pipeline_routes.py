"""The /pipeline routes: configs, seats, conflicts and live stats."""

from __future__ import annotations

import pytest

from analytics.models import Analytic, Seat
from live.keys import pipeline_stats_key
from streams.models import Pipeline

from .conftest import ANALYTIC

DEFAULT_CONFIG = {"threshold": 128.0, "sampling_time_ms": 100, "areas": []}
PENDING = {
    "processed_fps": 0.0,
    "last_latency_ms": 0.0,
    "p95_latency_ms": 0.0,
    "events_emitted": 0,
    "errors": 0,
    "state": "PENDING",
    "last_error": "",
}
NO_SEAT = (
    f"no available seat for analytic {ANALYTIC}: "
    "delete a pipeline of it or check in a licence with more seats"
)


def url(stream, analytic=ANALYTIC, node=0):
    return f"/pipeline/{node}/{stream.stream_id}/{analytic}"


def created(stream, analytic=ANALYTIC):
    return {
        "code": 200,
        "message": "pipeline successfully created",
        "node_num": stream.node_id,
        "stream_id": stream.stream_id,
        "analytic_id": analytic,
    }


@pytest.fixture
def stream(make_stream, seats):
    return make_stream()


def test_create_fills_defaults_and_takes_a_seat(api, stream):
    response = api.post(url(stream), {"threshold": 40})
    assert (response.status_code, response.json()) == (200, created(stream))
    pipeline = Pipeline.objects.get()
    assert (pipeline.stream_id, pipeline.analytic_id) == (stream.stream_id, ANALYTIC)
    assert pipeline.config == {**DEFAULT_CONFIG, "threshold": 40.0}
    assert Seat.objects.get(pipeline=pipeline).analytic_id == ANALYTIC


def test_create_with_an_empty_body(api, stream):
    response = api.generic("POST", url(stream), b"", content_type="application/json")
    assert (response.status_code, response.json()) == (200, created(stream))
    assert Pipeline.objects.get().config == DEFAULT_CONFIG


def test_get_shows_config_seat_and_pending_stats(api, stream):
    api.post(
        url(stream), {"areas": [{"name": "Door", "points": [{"x": 0.1, "y": 0.2}, {"x": 0.5, "y": 0.5}]}]}
    )
    seat = Seat.objects.get(pipeline__stream=stream)
    response = api.get(url(stream))
    assert (response.status_code, response.json()) == (
        200,
        {
            "code": 200,
            "message": "success",
            "node_num": 0,
            "stream_id": stream.stream_id,
            "analytic_id": ANALYTIC,
            "config": {
                **DEFAULT_CONFIG,
                "areas": [{"name": "Door", "points": [{"x": 0.1, "y": 0.2}, {"x": 0.5, "y": 0.5}]}],
            },
            "seat": {"serial_number": seat.serial_number, "active_status": True},
            "stats": PENDING,
        },
    )


def test_get_reads_live_stats_and_shows_a_missing_seat_as_null(api, stream, redis_client):
    api.post(url(stream), {})
    Seat.objects.filter(pipeline__stream=stream).update(pipeline=None)
    redis_client.hset(
        pipeline_stats_key(stream.stream_id, ANALYTIC),
        mapping={
            "processed_fps": "9.5",
            "last_latency_ms": "12.25",
            "p95_latency_ms": "20",
            "events_emitted": "7",
            "errors": "1",
            "state": "RUNNING",
            "last_error": "decode hiccup",
        },
    )
    body = api.get(url(stream)).json()
    assert body["seat"] is None
    assert body["stats"] == {
        "processed_fps": 9.5,
        "last_latency_ms": 12.25,
        "p95_latency_ms": 20.0,
        "events_emitted": 7,
        "errors": 1,
        "state": "RUNNING",
        "last_error": "decode hiccup",
    }


def test_delete_frees_the_seat(api, stream):
    api.post(url(stream), {})
    response = api.delete(url(stream))
    assert (response.status_code, response.json()) == (
        200,
        {
            "code": 200,
            "message": "pipeline successfully deleted",
            "node_num": 0,
            "stream_id": stream.stream_id,
            "analytic_id": ANALYTIC,
        },
    )
    assert Pipeline.objects.count() == 0
    assert Seat.objects.filter(pipeline__isnull=False).count() == 0


def test_delete_then_post_back_to_back_edits_the_pipeline(api, stream, seats, make_stream):
    # Every seat taken, so the POST only works if the DELETE really freed one.
    others = [make_stream() for _ in range(seats - 1)]
    for other in others:
        assert api.post(url(other), {}).status_code == 200
    assert api.post(url(stream), {"threshold": 10}).status_code == 200
    for threshold in (20, 30, 40):
        assert api.delete(url(stream)).status_code == 200
        assert api.post(url(stream), {"threshold": threshold}).json() == created(stream)
    assert Pipeline.objects.get(stream=stream).config["threshold"] == 40.0
    assert Seat.objects.filter(pipeline__isnull=False).count() == seats


def test_seat_exhaustion_answers_402_and_writes_nothing(api, make_stream, seats):
    streams = [make_stream() for _ in range(seats + 1)]
    for stream in streams[:-1]:
        assert api.post(url(stream), {}).status_code == 200
    response = api.post(url(streams[-1]), {})
    assert (response.status_code, response.json()) == (402, {"code": 402, "message": NO_SEAT})
    assert Pipeline.objects.count() == seats
    assert not Pipeline.objects.filter(stream=streams[-1]).exists()
    # Freeing one through the pipeline route makes room.
    assert api.delete(url(streams[0])).status_code == 200
    assert api.post(url(streams[-1]), {}).status_code == 200


def test_inactive_seats_are_not_handed_out(api, stream):
    Seat.objects.update(active=False)
    response = api.post(url(stream), {})
    assert (response.status_code, response.json()) == (402, {"code": 402, "message": NO_SEAT})
    assert Pipeline.objects.count() == 0


def test_second_create_conflicts(api, stream):
    api.post(url(stream), {})
    response = api.post(url(stream), {"threshold": 1})
    assert (response.status_code, response.json()) == (
        409,
        {"code": 409, "message": "pipeline already exists"},
    )
    assert Pipeline.objects.get().config == DEFAULT_CONFIG
    assert Seat.objects.filter(pipeline__isnull=False).count() == 1


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"nope": 1}, "unknown config key 'nope'"),
        (
            {"threshold": 300},
            "invalid config value for 'threshold': Input should be less than or equal to 255",
        ),
        (
            {"threshold": "high"},
            "invalid config value for 'threshold': Input should be a valid number, "
            "unable to parse string as a number",
        ),
        (
            {"areas": [{"points": [{"x": 0, "y": 0}]}]},
            "invalid config value for 'areas.0.points': "
            "List should have at least 2 items after validation, not 1",
        ),
        ([1, 2], "request body must be a JSON object"),
        (
            {"areas": [{"name": "a\u0000", "points": [{"x": 0, "y": 0}, {"x": 1, "y": 1}]}]},
            "areas[0].name: must not contain NUL characters",
        ),
    ],
)
def test_invalid_config_is_refused_without_writing(api, stream, payload, message):
    response = api.post(url(stream), payload)
    assert (response.status_code, response.json()) == (400, {"code": 400, "message": message})
    assert Pipeline.objects.count() == 0
    assert Seat.objects.filter(pipeline__isnull=False).count() == 0


def test_malformed_json_config(api, stream):
    response = api.post(url(stream), "{")
    assert response.status_code == 400
    assert response.json()["message"].startswith("malformed JSON body: ")
    assert Pipeline.objects.count() == 0


def test_unknown_analytic(api, stream):
    for method in ("post", "get", "delete"):
        response = getattr(api, method)(url(stream, "NOPE"), {} if method == "post" else None)
        assert (response.status_code, response.json()) == (
            404,
            {"code": 404, "message": "analytic not found"},
        )


def test_analytic_not_installed(api, stream):
    Analytic.objects.filter(pk=ANALYTIC).update(installed=False)
    response = api.post(url(stream), {})
    assert (response.status_code, response.json()) == (404, {"code": 404, "message": "analytic not found"})
    assert Pipeline.objects.count() == 0


@pytest.mark.parametrize("method", ["get", "delete"])
def test_missing_pipeline(api, stream, method):
    response = getattr(api, method)(url(stream))
    assert (response.status_code, response.json()) == (404, {"code": 404, "message": "pipeline not found"})


@pytest.mark.parametrize("method", ["post", "get", "delete"])
@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/pipeline/5/{sid}/TEST-BRIGHT", 404, "node not found"),
        ("/pipeline/-1/{sid}/TEST-BRIGHT", 400, "invalid node number -1: it must be between 0 and 1023"),
        (
            "/pipeline/0/ZZZ/TEST-BRIGHT",
            400,
            "invalid stream_id 'ZZZ': it must be 16 lowercase hex characters",
        ),
        ("/pipeline/0/0000000000000000/TEST-BRIGHT", 404, "stream not found"),
        ("/pipeline/1/{sid}/TEST-BRIGHT", 404, "stream not found"),
    ],
)
def test_bad_paths(api, stream, node1, method, path, status, message):
    response = getattr(api, method)(path.format(sid=stream.stream_id), {} if method == "post" else None)
    assert (response.status_code, response.json()) == (status, {"code": status, "message": message})
    assert Pipeline.objects.count() == 0


def test_wrong_method(api, stream):
    response = api.put(url(stream), {})
    assert (response.status_code, response.json()) == (
        405,
        {"code": 405, "message": "method PUT not allowed"},
    )
