"""The /streams routes: whole bodies of successes and errors."""

from __future__ import annotations

import re

import pytest

from analytics.models import Seat
from live.keys import stream_stats_key
from streams.models import Pipeline, Stream

from .conftest import ANALYTIC

ADDRESS = "rtsp://127.0.0.1:8554/VOD/command.mp4"
WAITING = {
    "fps": 0,
    "frame_width": 0,
    "frame_height": 0,
    "state": "INITIALIZING",
    "last_error_msg": "Waiting for node 0 to start the stream",
    "frames_dropped": 0,
    "reconnects": 0,
    "uptime_sec": 0,
}


def item(stream: Stream) -> dict:
    return {
        "stream_id": stream.stream_id,
        "stream_name": stream.name,
        "stream_address": stream.address,
        "stream_node_num": stream.node_id,
        "stream_latitude": stream.latitude,
        "stream_longitude": stream.longitude,
        "stream_custom_data": stream.custom_data,
        "active": stream.active,
    }


# --- create ------------------------------------------------------------------------


def test_create_answers_the_contract_body_and_stores_the_stream(api, node0):
    response = api.post(
        "/streams/0",
        {
            "stream_address": ADDRESS,
            "stream_name": "Command Center",
            "stream_latitude": -6.261376,
            "stream_longitude": 106.823648,
            "stream_custom_data": {"floor": 3, "tags": ["lobby"]},
        },
    )
    assert response.status_code == 200
    body = response.json()
    assert re.fullmatch(r"[0-9a-f]{16}", body["stream_id"])
    assert body == {
        "code": 200,
        "ok": True,
        "message": "stream successfully created",
        "node_num": 0,
        "stream_id": body["stream_id"],
        "stream_address": ADDRESS,
        "stream_name": "Command Center",
    }
    stream = Stream.objects.get()
    assert (stream.stream_id, stream.node_id, stream.name, stream.address) == (
        body["stream_id"],
        0,
        "Command Center",
        ADDRESS,
    )
    assert (stream.latitude, stream.longitude, stream.custom_data, stream.active) == (
        -6.261376,
        106.823648,
        {"floor": 3, "tags": ["lobby"]},
        True,
    )


def test_create_with_only_the_address_takes_defaults(api, node0):
    body = api.post("/streams/0", {"stream_address": "/dev/video0", "active": False}).json()
    assert body["stream_name"] == ""
    stream = Stream.objects.get(pk=body["stream_id"])
    assert item(stream) == {
        "stream_id": body["stream_id"],
        "stream_name": "",
        "stream_address": "/dev/video0",
        "stream_node_num": 0,
        "stream_latitude": 0.0,
        "stream_longitude": 0.0,
        "stream_custom_data": {},
        "active": False,
    }


def test_create_on_another_node(api, node1):
    body = api.post("/streams/1", {"stream_address": ADDRESS}).json()
    assert body["node_num"] == 1
    assert Stream.objects.get().node_id == 1


def test_stream_ids_are_distinct(api, node0):
    ids = {api.post("/streams/0", {"stream_address": ADDRESS}).json()["stream_id"] for _ in range(5)}
    assert len(ids) == 5


BAD_CREATE_BODIES = [
    ({}, "stream_address: This field is required."),
    ({"stream_address": 5}, "stream_address: must be a string"),
    ({"stream_address": None}, "stream_address: This field may not be null."),
    ({"stream_address": ADDRESS, "stream_name": 12}, "stream_name: must be a string"),
    (
        {"stream_address": ADDRESS, "stream_name": "x" * 201},
        "stream_name: Ensure this field has no more than 200 characters.",
    ),
    ({"stream_address": ADDRESS, "stream_latitude": "1.5"}, "stream_latitude: must be a number"),
    ({"stream_address": ADDRESS, "stream_latitude": True}, "stream_latitude: must be a number"),
    (
        {"stream_address": ADDRESS, "stream_latitude": 90.5},
        "stream_latitude: must be a number between -90 and 90",
    ),
    (
        {"stream_address": ADDRESS, "stream_latitude": -91},
        "stream_latitude: must be a number between -90 and 90",
    ),
    (
        {"stream_address": ADDRESS, "stream_longitude": 180.01},
        "stream_longitude: must be a number between -180 and 180",
    ),
    ({"stream_address": ADDRESS, "stream_longitude": []}, "stream_longitude: must be a number"),
    ({"stream_address": ADDRESS, "stream_custom_data": [1]}, "stream_custom_data: must be a JSON object"),
    ({"stream_address": ADDRESS, "stream_custom_data": "x"}, "stream_custom_data: must be a JSON object"),
    (
        {"stream_address": ADDRESS, "stream_custom_data": {"a": "x\u0000"}},
        "stream_custom_data.a: must not contain NUL characters",
    ),
    (
        '{"stream_address": "rtsp://h/x", "stream_custom_data": {"a": 1e400}}',
        "stream_custom_data: must not contain NaN or Infinity",
    ),
    ({"stream_address": ADDRESS, "stream_name": "a\u0000b"}, "stream_name: must not contain NUL characters"),
    ({"stream_address": "rtsp://h/\u0000"}, "stream_address: must not contain NUL characters"),
    (
        '{"stream_address": "rtsp://h/x", "stream_latitude": 1e400}',
        "stream_latitude: must be a number between -90 and 90",
    ),
    ({"stream_address": ADDRESS, "active": "true"}, "active: must be true or false"),
    ({"stream_address": ADDRESS, "active": 1}, "active: must be true or false"),
    ({"stream_address": ADDRESS, "check_capability": "yes"}, "check_capability: must be true or false"),
    ({"stream_address": ADDRESS, "stream_node_num": 1}, "unknown field 'stream_node_num'"),
    ({"stream_address": ADDRESS, "fps": 30}, "unknown field 'fps'"),
    ([ADDRESS], "request body must be a JSON object"),
    ('"x"', "request body must be a JSON object"),
    ("17", "request body must be a JSON object"),
]


@pytest.mark.parametrize(("payload", "message"), BAD_CREATE_BODIES)
def test_create_refuses_bad_fields_without_writing(api, node0, payload, message):
    response = api.post("/streams/0", payload)
    assert (response.status_code, response.json()) == (400, {"code": 400, "message": message})
    assert Stream.objects.count() == 0


@pytest.mark.parametrize(
    "raw", ['{"stream_address": "rtsp://h/x",', '{"stream_address": "rtsp://h/x", "stream_latitude": NaN}']
)
def test_create_refuses_malformed_json(api, node0, raw):
    response = api.post("/streams/0", raw)
    assert response.status_code == 400
    body = response.json()
    assert body == {"code": 400, "message": body["message"]}
    assert body["message"].startswith("malformed JSON body: ")
    assert Stream.objects.count() == 0


BAD_ADDRESSES = [
    ("file:///etc/passwd", "a file must be under {root}"),
    ("/etc/passwd", "a file must be under {root}"),
    ("{root}/../../etc/passwd", "a file must be under {root}"),
    ("file://{root}/../secret.mp4", "a file must be under {root}"),
    ("/dev/video", "a video device must be /dev/videoN"),
    ("v4l2:///dev/video", "a V4L2 source must be v4l2:///dev/videoN or /dev/videoN"),
    ("ftp://x", "scheme 'ftp' is not allowed (allowed: rtsp, rtsps, http, https, file, v4l2)"),
    ("rtsp://", "a rtsp URL needs a host"),
    ("", "it must not be empty"),
    ("camera.mp4", "it must be a URL (rtsp://, http://…), an absolute file path or /dev/videoN"),
    ("rtsp://h/x\n", "it must not contain spaces or control characters"),
]


@pytest.mark.parametrize(("address", "reason"), BAD_ADDRESSES)
def test_create_refuses_invalid_addresses(api, node0, media_root, address, reason):
    response = api.post("/streams/0", {"stream_address": address.format(root=media_root)})
    message = "Invalid stream_address: " + reason.format(root=media_root)
    assert (response.status_code, response.json()) == (400, {"code": 400, "message": message})
    assert Stream.objects.count() == 0


def test_create_accepts_a_file_under_the_media_root(api, node0, media_root):
    response = api.post("/streams/0", {"stream_address": f"file://{media_root}/lobby.mp4"})
    assert response.status_code == 200
    assert response.json()["stream_address"] == f"file://{media_root}/lobby.mp4"


@pytest.mark.parametrize(
    ("node", "status", "message"),
    [
        ("5", 404, "node not found"),
        ("-1", 400, "invalid node number -1: it must be between 0 and 1023"),
        (
            "99999999999999999999",
            400,
            "invalid node number 99999999999999999999: it must be between 0 and 1023",
        ),
        ("abc", 400, "invalid node number 'abc': it must be an integer"),
    ],
)
def test_create_on_bad_nodes(api, node0, node, status, message):
    response = api.post(f"/streams/{node}", {"stream_address": ADDRESS})
    assert (response.status_code, response.json()) == (status, {"code": status, "message": message})
    assert Stream.objects.count() == 0


def test_create_enforces_max_streams_per_node(api, node0, node1, max_streams):
    max_streams(2)
    for _ in range(2):
        assert api.post("/streams/0", {"stream_address": ADDRESS}).status_code == 200
    response = api.post("/streams/0", {"stream_address": ADDRESS})
    assert (response.status_code, response.json()) == (
        400,
        {"code": 400, "message": "node 0 already has the maximum of 2 streams (max_streams_per_node)"},
    )
    assert Stream.objects.filter(node=node0).count() == 2
    # The limit is per node.
    assert api.post("/streams/1", {"stream_address": ADDRESS}).status_code == 200
    # A freed slot can be used again, and a raised limit applies at once.
    api.delete(f"/streams/0/{Stream.objects.filter(node=node0).first().stream_id}")
    assert api.post("/streams/0", {"stream_address": ADDRESS}).status_code == 200
    max_streams(3)
    assert api.post("/streams/0", {"stream_address": ADDRESS}).status_code == 200


def test_wrong_method(api, node0):
    response = api.patch("/streams/0", {})
    assert (response.status_code, response.json()) == (
        405,
        {"code": 405, "message": "method PATCH not allowed"},
    )


# --- list ---------------------------------------------------------------------------


def test_lists_are_empty_at_first(api, node0):
    assert api.get("/streams").json() == {"stream_number": 0, "streams": []}
    assert api.get("/streams/0").json() == {"stream_number": 0, "streams": []}


def test_list_all_and_per_node(api, make_stream, node1):
    first = make_stream(name="Camera Lobby", latitude=-6.261376, longitude=106.823648, custom_data={"a": 1})
    second = make_stream(node=node1, address="/dev/video1", active=False)
    third = make_stream(name="Gate")
    assert api.get("/streams").json() == {
        "stream_number": 3,
        "streams": [item(first), item(second), item(third)],
    }
    assert api.get("/streams/0").json() == {"stream_number": 2, "streams": [item(first), item(third)]}
    assert api.get("/streams/1").json() == {"stream_number": 1, "streams": [item(second)]}
    assert item(first) == {
        "stream_id": first.stream_id,
        "stream_name": "Camera Lobby",
        "stream_address": "rtsp://127.0.0.1:8554/VOD/stream.mp4",
        "stream_node_num": 0,
        "stream_latitude": -6.261376,
        "stream_longitude": 106.823648,
        "stream_custom_data": {"a": 1},
        "active": True,
    }


@pytest.mark.parametrize(
    ("node", "status", "message"),
    [
        ("5", 404, "node not found"),
        ("-1", 400, "invalid node number -1: it must be between 0 and 1023"),
        (
            "99999999999999999999",
            400,
            "invalid node number 99999999999999999999: it must be between 0 and 1023",
        ),
    ],
)
def test_list_of_bad_nodes(api, node0, node, status, message):
    response = api.get(f"/streams/{node}")
    assert (response.status_code, response.json()) == (status, {"code": status, "message": message})


def test_trailing_slash_is_not_a_route(api, node0):
    response = api.get("/streams/")
    assert (response.status_code, response.json()) == (404, {"code": 404, "message": "not found"})


# --- detail --------------------------------------------------------------------------


def test_detail_of_a_new_stream(api, make_stream):
    stream = make_stream(name="Camera Lobby")
    response = api.get(f"/streams/0/{stream.stream_id}")
    assert response.status_code == 200
    assert response.json() == {**item(stream), "pipelines": [], "seats": [], "stream_stats": WAITING}


def test_detail_of_an_inactive_stream_says_stopped(api, make_stream):
    stream = make_stream(active=False)
    assert api.get(f"/streams/0/{stream.stream_id}").json()["stream_stats"] == {
        **WAITING,
        "state": "STOPPED",
        "last_error_msg": "Stream is stopped",
    }


def test_detail_reads_live_stats_from_redis(api, make_stream, redis_client):
    stream = make_stream()
    redis_client.hset(
        stream_stats_key(stream.stream_id),
        mapping={
            "fps": "29.7",
            "frame_width": 1280,
            "frame_height": 720,
            "state": "RUNNING",
            "last_error_msg": "Stream is running..",
            "frames_dropped": 12,
            "reconnects": 1,
            "uptime_sec": "3600.4",
        },
    )
    assert api.get(f"/streams/0/{stream.stream_id}").json()["stream_stats"] == {
        "fps": 29,
        "frame_width": 1280,
        "frame_height": 720,
        "state": "RUNNING",
        "last_error_msg": "Stream is running..",
        "frames_dropped": 12,
        "reconnects": 1,
        "uptime_sec": 3600,
    }


def test_detail_lists_pipelines_and_seats(api, make_stream, seats):
    stream = make_stream()
    assert api.post(f"/pipeline/0/{stream.stream_id}/{ANALYTIC}", {}).status_code == 200
    seat = Seat.objects.get(pipeline__stream=stream)
    assert api.get(f"/streams/0/{stream.stream_id}").json() == {
        **item(stream),
        "pipelines": [ANALYTIC],
        "seats": [{"analytic_id": ANALYTIC, "serial_number": seat.serial_number}],
        "stream_stats": WAITING,
    }


BAD_STREAM_IDS = [
    ("ZZZ", 400, "invalid stream_id 'ZZZ': it must be 16 lowercase hex characters"),
    ("5136C6C0916CD30C", 400, "invalid stream_id '5136C6C0916CD30C': it must be 16 lowercase hex characters"),
    ("5136c6c0916cd30", 400, "invalid stream_id '5136c6c0916cd30': it must be 16 lowercase hex characters"),
    (
        "5136c6c0916cd30c0",
        400,
        "invalid stream_id '5136c6c0916cd30c0': it must be 16 lowercase hex characters",
    ),
    ("5136c6c0916cd30c", 404, "stream not found"),
]


@pytest.mark.parametrize("method", ["get", "put", "delete"])
@pytest.mark.parametrize(("stream_id", "status", "message"), BAD_STREAM_IDS)
def test_bad_or_unknown_stream_ids(api, make_stream, method, stream_id, status, message):
    make_stream()
    response = getattr(api, method)(f"/streams/0/{stream_id}", {} if method == "put" else None)
    assert (response.status_code, response.json()) == (status, {"code": status, "message": message})
    assert Stream.objects.count() == 1


@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_a_stream_is_not_found_under_another_node(api, make_stream, node1, method):
    stream = make_stream()
    response = getattr(api, method)(f"/streams/1/{stream.stream_id}", {} if method == "put" else None)
    assert (response.status_code, response.json()) == (404, {"code": 404, "message": "stream not found"})
    assert Stream.objects.filter(pk=stream.pk, node_id=0).exists()


@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_stream_routes_on_unknown_node(api, make_stream, method):
    stream = make_stream()
    response = getattr(api, method)(f"/streams/5/{stream.stream_id}", {} if method == "put" else None)
    assert (response.status_code, response.json()) == (404, {"code": 404, "message": "node not found"})


# --- update ---------------------------------------------------------------------------


def test_empty_update_changes_nothing(api, make_stream):
    stream = make_stream(name="Command Center")
    response = api.put(f"/streams/0/{stream.stream_id}", {})
    assert (response.status_code, response.json()) == (
        200,
        {
            "code": 200,
            "message": "stream successfully updated",
            "node_num": 0,
            "stream_id": stream.stream_id,
            "stream_address": stream.address,
            "stream_name": "Command Center",
        },
    )
    assert item(Stream.objects.get()) == item(stream)


def test_empty_body_is_an_empty_update(api, make_stream):
    stream = make_stream()
    response = api.generic("PUT", f"/streams/0/{stream.stream_id}", b"", content_type="application/json")
    assert response.status_code == 200


def test_partial_update(api, make_stream, media_root):
    stream = make_stream(name="Old", latitude=1.0, custom_data={"a": 1})
    response = api.put(
        f"/streams/0/{stream.stream_id}",
        {
            "stream_address": f"{media_root}/new.mp4",
            "stream_name": "Command Center Updated",
            "stream_longitude": -120.5,
            "stream_custom_data": {"b": 2},
            "active": False,
        },
    )
    assert response.json() == {
        "code": 200,
        "message": "stream successfully updated",
        "node_num": 0,
        "stream_id": stream.stream_id,
        "stream_address": f"{media_root}/new.mp4",
        "stream_name": "Command Center Updated",
    }
    assert item(Stream.objects.get()) == {
        "stream_id": stream.stream_id,
        "stream_name": "Command Center Updated",
        "stream_address": f"{media_root}/new.mp4",
        "stream_node_num": 0,
        "stream_latitude": 1.0,
        "stream_longitude": -120.5,
        "stream_custom_data": {"b": 2},
        "active": False,
    }


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"stream_address": "file:///etc/passwd"}, "Invalid stream_address: a file must be under {root}"),
        (
            {"stream_address": "ftp://x"},
            "Invalid stream_address: scheme 'ftp' is not allowed "
            "(allowed: rtsp, rtsps, http, https, file, v4l2)",
        ),
        ({"stream_latitude": "north"}, "stream_latitude: must be a number"),
        ({"active": None}, "active: This field may not be null."),
        ({"stream_node_num": 1}, "unknown field 'stream_node_num'"),
        ({"stream_id": "0000000000000000"}, "unknown field 'stream_id'"),
        ([], "request body must be a JSON object"),
    ],
)
def test_update_refuses_bad_input_without_writing(api, make_stream, media_root, payload, message):
    stream = make_stream(name="Same")
    response = api.put(f"/streams/0/{stream.stream_id}", payload)
    expected = message.format(root=media_root)
    assert (response.status_code, response.json()) == (400, {"code": 400, "message": expected})
    assert item(Stream.objects.get()) == item(stream)


def test_update_refuses_malformed_json(api, make_stream):
    stream = make_stream()
    response = api.put(f"/streams/0/{stream.stream_id}", "{nope")
    assert response.status_code == 400
    assert response.json()["message"].startswith("malformed JSON body: ")


# --- delete -----------------------------------------------------------------------------


def test_delete(api, make_stream):
    stream = make_stream()
    other = make_stream()
    response = api.delete(f"/streams/0/{stream.stream_id}")
    assert (response.status_code, response.json()) == (
        200,
        {"code": 200, "message": "stream successfully deleted", "node_num": 0, "stream_id": stream.stream_id},
    )
    assert list(Stream.objects.values_list("stream_id", flat=True)) == [other.stream_id]
    again = api.delete(f"/streams/0/{stream.stream_id}")
    assert (again.status_code, again.json()) == (404, {"code": 404, "message": "stream not found"})


def test_delete_removes_pipelines_and_frees_their_seats(api, make_stream, seats):
    streams = [make_stream() for _ in range(seats)]
    for stream in streams:
        assert api.post(f"/pipeline/0/{stream.stream_id}/{ANALYTIC}", {}).status_code == 200
    spare = make_stream()
    assert api.post(f"/pipeline/0/{spare.stream_id}/{ANALYTIC}", {}).status_code == 402

    assert api.delete(f"/streams/0/{streams[0].stream_id}").status_code == 200
    assert Pipeline.objects.filter(stream_id=streams[0].stream_id).count() == 0
    assert Seat.objects.filter(analytic_id=ANALYTIC, pipeline__isnull=True).count() == 1
    assert api.post(f"/pipeline/0/{spare.stream_id}/{ANALYTIC}", {}).status_code == 200
