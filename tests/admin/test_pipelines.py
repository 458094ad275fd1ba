"""Pipelines in the admin: configs validated by the analytic's model exactly as
POST /pipeline validates them, a seat taken on create and freed on delete, the
config edited beside its JSON Schema."""

from __future__ import annotations

import json

from django.test import Client

from analytics.models import Seat
from analytics.selectors import analytic_config_schema
from live.keys import pipeline_stats_key
from streams.models import Pipeline
from tests.streams.conftest import ANALYTIC

from .conftest import field_errors, queued

FACE = "NFV4-FR"
ADD_URL = "/admin/streams/pipeline/add/"
LIST_URL = "/admin/streams/pipeline/"


def test_the_admin_refuses_the_configs_the_api_refuses(
    admin_web, api, make_stream, seats, redis_client, commits
):
    stream = make_stream()
    for analytic, config in [
        (FACE, {"bogus_key": 1, "similarity_threshold": 42}),
        (FACE, {"similarity_threshold": 42}),
        (FACE, {"similarity_threshold": "high"}),
        (ANALYTIC, {"threshold": -1}),
        (ANALYTIC, {"areas": [{"points": [{"x": 2, "y": 0}]}]}),
    ]:
        by_api = api.post(f"/pipeline/0/{stream.stream_id}/{analytic}", config)
        assert by_api.status_code == 400, config
        with commits():
            response = admin_web.post(
                ADD_URL, {"stream": stream.stream_id, "analytic": analytic, "config": json.dumps(config)}
            )
        assert response.status_code == 200, config
        assert field_errors(response, "config") == [by_api.json()["message"]], config
    assert Pipeline.objects.count() == 0
    assert Seat.objects.filter(pipeline__isnull=False).count() == 0
    assert queued(redis_client) == []
    # Not a JSON object: the API refuses the body itself; here the service says so of the config.
    assert api.post(f"/pipeline/0/{stream.stream_id}/{FACE}", [1]).status_code == 400
    response = admin_web.post(ADD_URL, {"stream": stream.stream_id, "analytic": FACE, "config": "[1]"})
    assert field_errors(response, "config") == ["pipeline config must be a JSON object"]
    assert Pipeline.objects.count() == 0


def test_a_pipeline_added_in_the_admin_is_the_one_the_api_would_make(
    admin_web, api, make_stream, seats, redis_client, commits
):
    stream = make_stream()
    with commits():
        response = admin_web.post(
            ADD_URL, {"stream": stream.stream_id, "analytic": FACE, "config": '{"similarity_threshold": 0.7}'}
        )
    assert response.status_code == 302, response.content[:3000]
    served = api.get(f"/pipeline/0/{stream.stream_id}/{FACE}").json()
    assert served["seat"] is not None and served["seat"]["active_status"] is True
    assert served["config"]["similarity_threshold"] == 0.7
    # Defaults filled as the API fills them.
    other = make_stream()
    assert api.post(f"/pipeline/0/{other.stream_id}/{FACE}", {"similarity_threshold": 0.7}).status_code == 200
    assert api.get(f"/pipeline/0/{other.stream_id}/{FACE}").json()["config"] == served["config"]
    assert queued(redis_client) == [{"v": 1, "action": "reload", "stream_id": stream.stream_id}]

    again = admin_web.post(ADD_URL, {"stream": stream.stream_id, "analytic": FACE, "config": "{}"})
    assert field_errors(again, "analytic") == ["pipeline already exists"]


def test_the_admin_refuses_a_pipeline_when_no_seat_is_free(admin_web, api, make_stream, seats):
    streams = [make_stream() for _ in range(seats + 1)]
    for stream in streams[:seats]:
        assert api.post(f"/pipeline/0/{stream.stream_id}/{ANALYTIC}", {}).status_code == 200
    last = streams[-1].stream_id
    by_api = api.post(f"/pipeline/0/{last}/{ANALYTIC}", {})
    assert by_api.status_code == 402
    response = admin_web.post(ADD_URL, {"stream": last, "analytic": ANALYTIC, "config": ""})
    assert response.status_code == 200
    assert field_errors(response, "config") == [by_api.json()["message"]]
    assert Pipeline.objects.filter(stream_id=last).count() == 0


def test_editing_a_config_keeps_the_seat_and_refuses_what_the_api_refuses(
    admin_web, api, make_stream, seats, redis_client, commits
):
    stream = make_stream()
    assert api.post(f"/pipeline/0/{stream.stream_id}/{ANALYTIC}", {}).status_code == 200
    pipeline = Pipeline.objects.get()
    serial = pipeline.seat.serial_number
    url = f"/admin/streams/pipeline/{pipeline.pk}/change/"

    with commits():
        response = admin_web.post(url, {"config": '{"threshold": 40, "sampling_time_ms": 0}'})
    assert response.status_code == 302, response.content[:3000]
    served = api.get(f"/pipeline/0/{stream.stream_id}/{ANALYTIC}").json()
    assert served["config"] == {"threshold": 40.0, "sampling_time_ms": 0, "areas": []}
    assert served["seat"]["serial_number"] == serial
    assert queued(redis_client) == [{"v": 1, "action": "reload", "stream_id": stream.stream_id}]

    # The API's POST checks the config before finding the pipeline exists: the same refusal.
    by_api = api.post(f"/pipeline/0/{stream.stream_id}/{ANALYTIC}", {"bogus_key": 1})
    assert by_api.json() == {"code": 400, "message": "unknown config key 'bogus_key'"}
    refused = admin_web.post(url, {"config": '{"bogus_key": 1}'})
    assert refused.status_code == 200
    assert field_errors(refused, "config") == [by_api.json()["message"]]
    assert api.get(f"/pipeline/0/{stream.stream_id}/{ANALYTIC}").json()["config"] == served["config"]


def test_the_config_is_edited_beside_its_json_schema(admin_web, api, make_stream, seats):
    stream = make_stream()
    assert api.post(f"/pipeline/0/{stream.stream_id}/{ANALYTIC}", {"threshold": 40}).status_code == 200
    pipeline = Pipeline.objects.get()
    schema = api.get(f"/config/pipeline/{ANALYTIC}").json()
    assert schema == analytic_config_schema(ANALYTIC)

    page = admin_web.get(f"/admin/streams/pipeline/{pipeline.pk}/change/").content.decode()
    assert f'<div class="pipeline-config-schema" data-analytic="{ANALYTIC}">' in page
    for key, prop in schema["properties"].items():
        default = json.dumps(prop["default"])
        assert (
            f"<tr><td><code>{key}</code></td><td>{prop.get('type', 'array')}</td><td><code>{default}</code>"
            in page
        )
    assert "<td>minimum 0, maximum 255</td>" in page  # threshold's limits
    # The config in force is in the box, and the whole schema below the table.
    form = admin_web.get(f"/admin/streams/pipeline/{pipeline.pk}/change/").context["adminform"].form
    assert json.loads(form["config"].value()) == pipeline.config
    assert "&quot;sampling_time_ms&quot;" in page

    # Adding: the schema of every analytic that can be chosen.
    add_page = admin_web.get(ADD_URL).content.decode()
    for analytic in (ANALYTIC, FACE):
        assert f'<div class="pipeline-config-schema" data-analytic="{analytic}">' in add_page
    assert "<code>similarity_threshold</code>" in add_page


def test_deleting_pipelines_in_the_admin_frees_their_seats(
    admin_web, api, make_stream, seats, redis_client, commits
):
    streams = [make_stream() for _ in range(3)]
    for stream in streams:
        assert api.post(f"/pipeline/0/{stream.stream_id}/{ANALYTIC}", {}).status_code == 200
    first, *rest = Pipeline.objects.order_by("id")
    with commits():
        response = admin_web.post(f"/admin/streams/pipeline/{first.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    with commits():
        response = admin_web.post(
            LIST_URL, {"action": "delete_selected", "_selected_action": [p.pk for p in rest], "post": "yes"}
        )
    assert response.status_code == 302
    assert Pipeline.objects.count() == 0
    assert Seat.objects.filter(pipeline__isnull=False).count() == 0
    assert queued(redis_client) == [
        {"v": 1, "action": "reload", "stream_id": stream.stream_id} for stream in streams
    ]
    for stream in streams:
        assert api.get(f"/pipeline/0/{stream.stream_id}/{ANALYTIC}").json() == {
            "code": 404,
            "message": "pipeline not found",
        }


def test_the_pipeline_list_shows_live_figures_and_the_stream_name(
    admin_web, api, make_stream, seats, redis_client
):
    stream = make_stream(name="Gate camera")
    assert api.post(f"/pipeline/0/{stream.stream_id}/{ANALYTIC}", {}).status_code == 200
    redis_client.hset(
        pipeline_stats_key(stream.stream_id, ANALYTIC),
        mapping={"processed_fps": 9.5, "events_emitted": 14, "state": "RUNNING"},
    )
    stats = api.get(f"/pipeline/0/{stream.stream_id}/{ANALYTIC}").json()["stats"]
    html = admin_web.get(LIST_URL).content.decode()
    for cell in ("Gate camera", stats["state"], str(stats["processed_fps"]), str(stats["events_emitted"])):
        assert f">{cell}</td>" in html, cell


def test_seats_are_read_only_in_the_admin(admin_web, seats):
    seat = Seat.objects.filter(analytic_id=ANALYTIC).first()
    assert admin_web.get("/admin/analytics/seat/add/").status_code == 403
    response = admin_web.post(
        f"/admin/analytics/seat/{seat.pk}/change/",
        {"analytic": ANALYTIC, "serial_number": "X", "source": "licence", "active": ""},
    )
    assert response.status_code == 403
    seat.refresh_from_db()
    assert seat.active is True and seat.serial_number.startswith("COMMUNITY-")
    assert admin_web.get(f"/admin/analytics/seat/{seat.pk}/change/").status_code == 200


def test_the_admin_pages_need_a_login(make_stream, seats):
    stream = make_stream()
    for url in (ADD_URL, LIST_URL, f"/admin/streams/stream/{stream.stream_id}/change/"):
        response = Client().get(url)
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/"), url
