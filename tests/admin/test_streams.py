"""Streams in the admin go through the API's checks and services: the same
refusals with the same messages, the same control messages to the node, the
same seats freed; lists and pages show the live figures GET /streams serves."""

from __future__ import annotations

from analytics.models import Seat
from live.keys import pipeline_stats_key, stream_stats_key
from platform_config.nodes import RESTART_GENERATION_KEY
from streams.models import Pipeline, Stream
from tests.streams.conftest import ANALYTIC

from .conftest import field_errors, queued

ADD_URL = "/admin/streams/stream/add/"
LIST_URL = "/admin/streams/stream/"


def add_form(**fields) -> dict:
    form = {
        "node": "0",
        "name": "From admin",
        "address": "rtsp://cam/1",
        "latitude": "0",
        "longitude": "0",
        "custom_data": "{}",
        "active": "on",
    }
    form.update(fields)
    return {name: value for name, value in form.items() if value is not None}


def change_form(stream: Stream, **fields) -> dict:
    form = {
        "name": stream.name,
        "address": stream.address,
        "latitude": str(stream.latitude),
        "longitude": str(stream.longitude),
        "custom_data": "{}",
        "active": "on" if stream.active else None,
    }
    form.update(fields)
    return {name: value for name, value in form.items() if value is not None}


def test_a_stream_added_in_the_admin_starts_as_one_added_through_the_api(
    admin_web, api, node0, redis_client, commits
):
    with commits():
        response = admin_web.post(ADD_URL, add_form(name="Lobby", custom_data='{"floor": 2}'))
    assert response.status_code == 302, response.content[:2000]
    stream = Stream.objects.get()
    assert len(stream.stream_id) == 16
    assert (stream.name, stream.address, stream.custom_data, stream.active) == (
        "Lobby",
        "rtsp://cam/1",
        {"floor": 2},
        True,
    )
    with commits():
        api_id = api.post("/streams/0", {"stream_address": "rtsp://cam/2"}).json()["stream_id"]
    assert queued(redis_client) == [
        {"v": 1, "action": "start", "stream_id": stream.stream_id},
        {"v": 1, "action": "start", "stream_id": api_id},
    ]


def test_an_inactive_stream_added_in_the_admin_is_not_started(admin_web, node0, redis_client, commits):
    with commits():
        response = admin_web.post(ADD_URL, add_form(active=None))
    assert response.status_code == 302
    assert Stream.objects.get().active is False
    assert queued(redis_client) == []


def test_the_admin_refuses_a_stream_beyond_max_streams_per_node(
    admin_web, api, make_stream, max_streams, redis_client, commits
):
    max_streams(1)
    make_stream()
    refused_by_api = api.post("/streams/0", {"stream_address": "rtsp://cam/2"})
    assert refused_by_api.status_code == 400
    message = refused_by_api.json()["message"]
    assert message == "node 0 already has the maximum of 1 streams (max_streams_per_node)"

    with commits():
        response = admin_web.post(ADD_URL, add_form(address="rtsp://cam/2"))
    assert response.status_code == 200
    assert field_errors(response, "node") == [message]
    assert Stream.objects.count() == 1
    assert queued(redis_client) == []


def test_the_admin_refuses_what_the_api_refuses_with_its_messages(admin_web, api, node0, media_root):
    cases = [
        ("address", {"address": "file:///etc/passwd"}, {"stream_address": "file:///etc/passwd"}),
        ("address", {"address": "rtsp://cam/1 x"}, {"stream_address": "rtsp://cam/1 x"}),
        ("latitude", {"latitude": "91"}, {"stream_address": "rtsp://cam/1", "stream_latitude": 91}),
        ("longitude", {"longitude": "-181"}, {"stream_address": "rtsp://cam/1", "stream_longitude": -181}),
        (
            "custom_data",
            {"custom_data": "[1, 2]"},
            {"stream_address": "rtsp://cam/1", "stream_custom_data": [1, 2]},
        ),
    ]
    for field, form, body in cases:
        by_api = api.post("/streams/0", body)
        assert by_api.status_code == 400, body
        response = admin_web.post(ADD_URL, add_form(**form))
        assert response.status_code == 200, form
        assert field_errors(response, field) == [by_api.json()["message"]], form
    assert Stream.objects.count() == 0


def test_the_capability_check_refuses_a_missing_file(admin_web, api, node0, media_root):
    address = f"{media_root}/missing.mp4"
    by_api = api.post("/streams/0", {"stream_address": address, "check_capability": True})
    assert by_api.json() == {"code": 400, "message": "stream cannot be opened: file does not exist"}
    response = admin_web.post(ADD_URL, add_form(address=address, check_capability="on"))
    assert field_errors(response, "address") == ["stream cannot be opened: file does not exist"]
    assert Stream.objects.count() == 0


def test_changes_in_the_admin_send_the_apis_control_messages(
    admin_web, api, make_stream, redis_client, commits
):
    stream = make_stream(name="Lobby")
    url = f"/admin/streams/stream/{stream.stream_id}/change/"
    with commits():
        assert admin_web.post(url, change_form(stream, name="Hall")).status_code == 302
    stream.refresh_from_db()
    with commits():
        assert admin_web.post(url, change_form(stream, active=None)).status_code == 302
    stream.refresh_from_db()
    with commits():
        assert admin_web.post(url, change_form(stream, latitude="12.5")).status_code == 302
    stream.refresh_from_db()
    assert (stream.name, stream.active, stream.latitude) == ("Hall", False, 12.5)
    # Renamed: reload; stopped: stop; changed while stopped: nothing.
    assert queued(redis_client) == [
        {"v": 1, "action": "reload", "stream_id": stream.stream_id},
        {"v": 1, "action": "stop", "stream_id": stream.stream_id},
    ]

    by_api = api.put(f"/streams/0/{stream.stream_id}", {"stream_address": "ftp://cam/1"})
    assert by_api.json()["message"].startswith("Invalid stream_address: scheme 'ftp' is not allowed")
    refused = admin_web.post(url, change_form(stream, address="ftp://cam/1"))
    assert field_errors(refused, "address") == [by_api.json()["message"]]
    stream.refresh_from_db()
    assert stream.address == "rtsp://127.0.0.1:8554/VOD/stream.mp4"


def test_deleting_in_the_admin_frees_seats_and_stops_streams(
    admin_web, api, make_stream, seats, redis_client, commits
):
    single, first, second = make_stream(), make_stream(), make_stream(active=False)
    for stream in (single, first, second):
        assert api.post(f"/pipeline/0/{stream.stream_id}/{ANALYTIC}", {}).status_code == 200
    assert Seat.objects.filter(pipeline__isnull=False).count() == 3

    with commits():
        response = admin_web.post(f"/admin/streams/stream/{single.stream_id}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert Seat.objects.filter(pipeline__isnull=False).count() == 2

    with commits():
        response = admin_web.post(
            LIST_URL,
            {
                "action": "delete_selected",
                "_selected_action": [first.stream_id, second.stream_id],
                "post": "yes",
            },
        )
    assert response.status_code == 302
    assert Stream.objects.count() == 0 and Pipeline.objects.count() == 0
    assert Seat.objects.filter(pipeline__isnull=False).count() == 0
    assert Seat.objects.filter(analytic_id=ANALYTIC, active=True).count() == seats
    # Stop messages for the two that were running, none for the stopped one.
    assert queued(redis_client) == [
        {"v": 1, "action": "stop", "stream_id": single.stream_id},
        {"v": 1, "action": "stop", "stream_id": first.stream_id},
    ]


def test_activate_and_deactivate_actions(admin_web, make_stream, redis_client, commits):
    running, stopped = make_stream(), make_stream(active=False)
    with commits():
        response = admin_web.post(
            LIST_URL, {"action": "deactivate", "_selected_action": [running.stream_id, stopped.stream_id]}
        )
    assert response.status_code == 302
    assert set(Stream.objects.values_list("active", flat=True)) == {False}
    with commits():
        admin_web.post(LIST_URL, {"action": "activate", "_selected_action": [running.stream_id]})
    running.refresh_from_db()
    stopped.refresh_from_db()
    assert (running.active, stopped.active) == (True, False)
    assert queued(redis_client) == [
        {"v": 1, "action": "stop", "stream_id": running.stream_id},
        {"v": 1, "action": "start", "stream_id": running.stream_id},
    ]


def test_restart_action_asks_every_node_as_the_system_restart_route_does(
    admin_web, api, make_stream, redis_client
):
    stream = make_stream()
    assert redis_client.get(RESTART_GENERATION_KEY) is None
    response = admin_web.post(LIST_URL, {"action": "restart_runners", "_selected_action": [stream.stream_id]})
    assert response.status_code == 302
    assert redis_client.get(RESTART_GENERATION_KEY) == "1"
    assert api.post("/system/restart").status_code == 200
    assert redis_client.get(RESTART_GENERATION_KEY) == "2"


def test_lists_and_pages_show_the_live_figures_of_get_streams(
    admin_web, api, make_stream, seats, redis_client
):
    running = make_stream(name="Gate camera")
    stopped = make_stream(name="Dock camera", active=False)
    assert api.post(f"/pipeline/0/{running.stream_id}/{ANALYTIC}", {}).status_code == 200
    redis_client.hset(
        stream_stats_key(running.stream_id),
        mapping={
            "fps": 25,
            "frame_width": 1280,
            "frame_height": 720,
            "state": "RECONNECTING",
            "last_error_msg": "connection refused by 10.0.0.9",
            "frames_dropped": 4,
            "reconnects": 7,
            "uptime_sec": 90,
        },
    )
    redis_client.hset(
        pipeline_stats_key(running.stream_id, ANALYTIC),
        mapping={"processed_fps": 12.5, "events_emitted": 31, "state": "RUNNING", "last_error": ""},
    )
    by_api = {
        stream.stream_id: api.get(f"/streams/0/{stream.stream_id}").json()["stream_stats"]
        for stream in (running, stopped)
    }
    assert by_api[running.stream_id]["reconnects"] == 7
    assert by_api[stopped.stream_id]["state"] == "STOPPED"

    listing = admin_web.get(LIST_URL)
    assert listing.status_code == 200
    html = listing.content.decode()
    for stream in (running, stopped):
        stats = by_api[stream.stream_id]
        row = html[html.index(f">{stream.stream_id}<") :].split("</tr>", 1)[0]
        assert stream.name in row
        for cell in (stats["state"], str(stats["fps"]), str(stats["reconnects"]), stats["last_error_msg"]):
            assert f">{cell}</td>" in row, (cell, row)

    page = admin_web.get(f"/admin/streams/stream/{running.stream_id}/change/").content.decode()
    stats = by_api[running.stream_id]
    for name in (
        "state",
        "fps",
        "frame_width",
        "frames_dropped",
        "reconnects",
        "uptime_sec",
        "last_error_msg",
    ):
        assert f"<tr><th>{name}</th><td>{stats[name]}</td></tr>" in page, name
    serial = Seat.objects.get(pipeline__stream=running).serial_number
    assert f"<td>{serial}</td><td>RUNNING</td><td>12.5</td><td>31</td>" in page


def test_the_list_says_so_when_live_state_cannot_be_read(admin_web, make_stream, monkeypatch):
    from live.redis import LiveStateUnavailable
    from streams import selectors

    stream = make_stream(name="Gate camera")

    def unreachable(**_kwargs):
        raise LiveStateUnavailable()

    monkeypatch.setattr(selectors, "stream_stats_get", unreachable)
    response = admin_web.get(LIST_URL)
    assert response.status_code == 200
    row = response.content.decode().split(f">{stream.stream_id}<", 1)[1].split("</tr>", 1)[0]
    assert ">UNKNOWN</td>" in row
    assert f">{LiveStateUnavailable().message}</td>" in row
