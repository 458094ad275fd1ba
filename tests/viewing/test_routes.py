"""Visualization routes: input checks and the 501 that stands in for live viewing."""

from __future__ import annotations

import pytest

from tests.events.conftest import ANALYTIC, pipeline_make, stream_make

SID = "5136c6c0916cd30c"
NOT_AVAILABLE = {"code": 501, "message": "live viewing is not available yet in this version"}

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


@pytest.mark.parametrize("template", ALL_ROUTES)
def test_valid_request_answers_not_available(api, stream, template):
    response = api.get(url(template), HTTP_ACCEPT="image/avif,image/webp,*/*")
    assert_error(response, 501, NOT_AVAILABLE["message"])


@pytest.mark.parametrize(
    "query",
    ["height=16&jpeg_quality=1", "height=4320&jpeg_quality=100", "token=anything"],
)
def test_parameter_bounds_are_inclusive(api, stream, query):
    assert_error(api.get(f"/mjpeg/0/{SID}?fps=0&{query}"), 501, NOT_AVAILABLE["message"])


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
    assert_error(api.get(f"/mjpeg/0/{SID}?token=s3cret&height=240"), 501, NOT_AVAILABLE["message"])


@pytest.mark.parametrize("analytic", ["%00", "A" * 41, "%0A"])
def test_implausible_analytic_ids_are_not_found(api, stream, analytic):
    assert_error(api.get(f"/mjpeg/0/{SID}/{analytic}"), 404, "stream or analytic not found")
    assert_error(api.get(f"/visual/0/{SID}/{analytic}"), 404, "stream or analytic not found")
