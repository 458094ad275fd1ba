"""Visualization routes through Django's test client: input checks and their
JSON errors, and what a valid request answers for a stream that is not running
(its first MJPEG part, a placeholder JPEG, the HTML page). Live frames from a
running stream are in test_live.py."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tests.events.conftest import ANALYTIC, pipeline_make, stream_make

from .support import first_part

SID = "5136c6c0916cd30c"

PLAIN_ROUTES = [
    "/mjpeg/{node}/{sid}",
    "/mjpeg/fps/5/{node}/{sid}",
    "/stream_jpeg/{node}/{sid}",
    "/visual/{node}/{sid}",
]
ANALYTIC_ROUTES = [
    "/mjpeg/{node}/{sid}/{analytic}",
    "/mjpeg/fps/5/{node}/{sid}/{analytic}",
    "/visual/{node}/{sid}/{analytic}",
]
ALL_ROUTES = PLAIN_ROUTES + ANALYTIC_ROUTES


def url(template: str, node="0", sid=SID, analytic=ANALYTIC) -> str:
    return template.format(node=node, sid=sid, analytic=analytic)


@pytest.fixture
def stream(db):
    stream = stream_make(SID)
    pipeline_make(stream)
    return stream


def assert_error(response, status: int, message: str) -> None:
    assert (response.status_code, response.json()) == (status, {"code": status, "message": message})


MJPEG_ROUTES = [t for t in ALL_ROUTES if t.startswith("/mjpeg/")]


def jpeg_height(data: bytes) -> int:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "not a JPEG"
    return image.shape[0]


def assert_placeholder_part(chunk: bytes, *, height: int, overlay: bool) -> None:
    head, _, rest = chunk.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0] == "--frame"
    headers = dict(line.split(": ", 1) for line in lines[1:])
    assert headers["Content-Type"] == "image/jpeg"
    body = rest[: int(headers["Content-Length"])]
    assert rest == body + b"\r\n"
    assert jpeg_height(body) == height
    # Active, but no node has reported on it yet.
    assert headers["X-NF-Stream-State"] == "INITIALIZING"
    assert headers["X-NF-Message-Data"] == "Stream is initializing: Waiting for node 0 to start the stream"
    assert "X-NF-Frame-Ts" not in headers
    assert ("X-NF-Visual-Data" in headers) is overlay


@pytest.mark.parametrize("template", MJPEG_ROUTES)
def test_mjpeg_of_a_stream_not_running_starts_with_a_placeholder_part(stream, template):
    response, chunk = first_part(url(template), HTTP_ACCEPT="image/avif,image/webp,*/*")
    assert response.status_code == 200
    assert response["Content-Type"] == "multipart/x-mixed-replace; boundary=frame"
    assert response["Cache-Control"] == "no-cache, no-store, must-revalidate"
    assert_placeholder_part(chunk, height=320, overlay=template.endswith("{analytic}"))


def test_stream_jpeg_of_a_stream_not_running_is_a_placeholder(api, stream):
    response = api.get(f"/stream_jpeg/0/{SID}?height=90&jpeg_quality=50")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    assert response["X-NF-Stream-State"] == "INITIALIZING"
    assert response["X-NF-Message-Data"] == "Stream is initializing: Waiting for node 0 to start the stream"
    assert not response.has_header("X-NF-Frame-Ts")
    assert jpeg_height(response.content) == 90


def test_placeholder_of_a_stopped_stream(api, stream):
    stream.active = False
    stream.save()
    response = api.get(f"/stream_jpeg/0/{SID}")
    assert (response["X-NF-Stream-State"], response["X-NF-Message-Data"]) == ("STOPPED", "Stream is stopped")


def test_placeholder_says_what_the_runtime_reports(api, stream, redis_client):
    from live.keys import stream_stats_key

    redis_client.hset(
        stream_stats_key(SID),
        mapping={"state": "RECONNECTING", "last_error_msg": "Reconnecting in 1.0s: connection refused"},
    )
    response = api.get(f"/stream_jpeg/0/{SID}")
    assert (response["X-NF-Stream-State"], response["X-NF-Message-Data"]) == (
        "RECONNECTING",
        "Stream is reconnecting in 1.0s: connection refused",
    )


@pytest.mark.parametrize("template", ["/visual/{node}/{sid}", "/visual/{node}/{sid}/{analytic}"])
def test_visual_page(api, stream, template):
    response = api.get(url(template) + "?height=480&token=abc")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/html; charset=utf-8"
    assert not response.has_header("X-Frame-Options")  # embeddable
    html = response.content.decode()
    mjpeg = url(template.replace("/visual/", "/mjpeg/"))
    assert f'"mjpeg_url": "{mjpeg}?height=480\\u0026token=abc"' in html
    assert "<img" in html


def test_visual_page_without_query_uses_the_plain_mjpeg_url(api, stream):
    html = api.get(f"/visual/0/{SID}").content.decode()
    assert f'"mjpeg_url": "/mjpeg/0/{SID}"' in html
    assert "<title>Camera Lobby</title>" in html


@pytest.mark.parametrize("template", ALL_ROUTES)
@pytest.mark.parametrize(
    ("node", "sid", "status", "message"),
    [
        ("x", SID, 400, "invalid node number 'x': it must be an integer"),
        ("-1", SID, 400, "invalid node number -1: it must be between 0 and 1023"),
        ("7", SID, 404, "node not found"),
        ("0", "NOT-HEX", 400, "invalid stream_id 'NOT-HEX': it must be 16 lowercase hex characters"),
        (
            "0",
            "5136C6C0916CD30C",
            400,
            "invalid stream_id '5136C6C0916CD30C': it must be 16 lowercase hex characters",
        ),
        ("0", "ffffffffffffffff", 404, "stream not found"),
    ],
)
def test_bad_node_or_stream(api, stream, template, node, sid, status, message):
    assert_error(api.get(url(template, node=node, sid=sid)), status, message)


@pytest.mark.parametrize("template", PLAIN_ROUTES)
def test_stream_on_another_node_is_not_found(api, stream, template):
    stream_make("0123456789abcdef", node_num=1)
    assert_error(api.get(url(template, node="0", sid="0123456789abcdef")), 404, "stream not found")


@pytest.mark.parametrize("template", ANALYTIC_ROUTES)
def test_analytic_without_pipeline_on_the_stream(api, stream, template):
    assert_error(api.get(url(template, analytic="NFV4-FR")), 404, "stream or analytic not found")


@pytest.mark.parametrize(
    ("path", "message"),
    [
        (f"/mjpeg/0/{SID}?fps=-1", "invalid fps -1: it must be at least 0"),
        (f"/mjpeg/0/{SID}?fps=fast", "invalid fps 'fast': it must be an integer at least 0"),
        (f"/mjpeg/0/{SID}?height=15", "invalid height 15: it must be between 16 and 4320"),
        (f"/mjpeg/0/{SID}?height=4321", "invalid height 4321: it must be between 16 and 4320"),
        (f"/visual/0/{SID}?height=tall", "invalid height 'tall': it must be an integer between 16 and 4320"),
        (f"/mjpeg/0/{SID}?jpeg_quality=0", "invalid jpeg_quality 0: it must be between 1 and 100"),
        (f"/stream_jpeg/0/{SID}?jpeg_quality=101", "invalid jpeg_quality 101: it must be between 1 and 100"),
        (
            f"/mjpeg/0/{SID}/{ANALYTIC}?jpeg_quality=1.5",
            "invalid jpeg_quality '1.5': it must be an integer between 1 and 100",
        ),
        (f"/mjpeg/0/{SID}?width=640&scale=2", "unknown query parameter(s): scale, width"),
        (f"/mjpeg/0/{SID}?height=100&height=200", "query parameter(s) given more than once: height"),
        (f"/stream_jpeg/0/{SID}?fps=5", "unknown query parameter(s): fps"),
        (f"/mjpeg/fps/-2/0/{SID}", "invalid fps -2: it must be at least 0"),
        (f"/mjpeg/fps/ten/0/{SID}/{ANALYTIC}", "invalid fps 'ten': it must be an integer at least 0"),
        (f"/mjpeg/fps/5/0/{SID}?fps=10", "fps: give it in the path or in the query, not both"),
    ],
)
def test_bad_query_parameters(api, stream, path, message):
    assert_error(api.get(path), 400, message)


def test_wrong_method(api, stream):
    assert_error(api.post(f"/mjpeg/0/{SID}", {}), 405, "method POST not allowed")


def test_token_in_the_query_is_accepted_when_tokens_are_on(api, stream, settings):
    settings.API_TOKENS = ["s3cret"]
    assert_error(api.get(f"/mjpeg/0/{SID}"), 401, "missing API token: send 'Authorization: Bearer <token>'")
    assert_error(api.get(f"/visual/0/{SID}?token=wrong"), 401, "invalid API token")
    response, chunk = first_part(f"/mjpeg/0/{SID}?token=s3cret&height=240")
    assert response.status_code == 200 and chunk.startswith(b"--frame\r\n")
    assert api.get(f"/visual/0/{SID}?token=s3cret").status_code == 200


@pytest.mark.parametrize("analytic", ["A" * 41, "%0A"])
def test_implausible_analytic_ids_are_not_found(api, stream, analytic):
    assert_error(api.get(f"/mjpeg/0/{SID}/{analytic}"), 404, "stream or analytic not found")
    assert_error(api.get(f"/visual/0/{SID}/{analytic}"), 404, "stream or analytic not found")


def test_nul_in_the_path_is_refused(api, stream):
    for path in (f"/mjpeg/0/{SID}/%00", f"/visual/0/{SID}/%00"):
        assert_error(api.get(path), 400, "the path must not contain NUL characters")
