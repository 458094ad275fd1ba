"""Input rules every route shares (README "API"): a nesting limit for JSON
bodies, no NUL anywhere, one image policy, no null body, chunked bodies read
like any other, and the bearer scheme in any case."""

from __future__ import annotations

import base64
import http.client
import json

import cv2
import numpy as np
import pytest

from core.errors import BadRequest
from core.parsers import json_input_check
from tests.events.conftest import ANALYTIC, pipeline_make, stream_make
from tests.viewing.support import AsgiServer

SID = "00000000000000b1"
TOO_DEEP = "the JSON body is nested too deeply (more than 64 levels of arrays and objects)"
DEEP_ARRAY = "[" * 5000 + "]" * 5000


def assert_error(response, status: int, message: str):
    assert response.status_code == status, response.content
    assert response.json() == {"code": status, "message": message}


def nested(levels: int):
    """`levels` objects, one inside the other."""
    value: object = 1
    for _ in range(levels):
        value = {"a": value}
    return value


def encoded(extension: str) -> str:
    ok, data = cv2.imencode(extension, np.full((20, 30, 3), 90, dtype=np.uint8))
    assert ok
    return base64.b64encode(data.tobytes()).decode()


@pytest.fixture
def stream(db):
    stream = stream_make(SID, address="rtsp://127.0.0.1:8554/lobby")
    pipeline_make(stream)
    return stream


# --- nesting ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/streams/0"),
        ("put", f"/streams/0/{SID}"),
        ("post", "/smart-search"),
        ("post", "/v1/face/enrollment"),
        ("post", f"/pipeline/0/{SID}/{ANALYTIC}"),
        ("post", "/config/platform"),
    ],
)
def test_bodies_nested_thousands_deep_are_400(api, stream, method, path):
    for body in (DEEP_ARRAY, '{"stream_custom_data": ' + DEEP_ARRAY + "}"):
        assert_error(getattr(api, method)(path, body), 400, TOO_DEEP)


def test_nesting_up_to_the_limit_is_accepted(api, stream, settings):
    # The body is level 1, stream_custom_data level 2: 63 more objects make 64 levels.
    body = {"stream_address": "rtsp://127.0.0.1:8554/a", "stream_custom_data": nested(63)}
    response = api.post("/streams/0", body)
    assert response.status_code == 200, response.content
    body["stream_custom_data"] = nested(64)
    assert_error(api.post("/streams/0", body), 400, TOO_DEEP)
    settings.API_MAX_JSON_DEPTH = 65
    assert api.post("/streams/0", body).status_code == 200


# --- NUL and unpaired surrogates ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"analytic_ids": ["ok", "a\x00"]}, "analytic_ids[1]: must not contain NUL characters"),
        ({"metadata": {"source": "x\x00"}}, "metadata.source: must not contain NUL characters"),
        ({"a": [{"b": [0, "\x00"]}]}, "a[0].b[1]: must not contain NUL characters"),
        ({"a": {"k\x00": 1}}, "a: field names must not contain NUL characters"),
        ({"k\x00": 1}, "the body: field names must not contain NUL characters"),
        ("\x00", "the body: must not contain NUL characters"),
        ({"q": "\ud800"}, "q: must not contain unpaired surrogates (it is not valid Unicode)"),
        ({"q": "café\x00"}, "q: must not contain NUL characters"),  # not ASCII: the other path
        ({"first": "\x00", "second": "\x00"}, "first: must not contain NUL characters"),
    ],
)
def test_json_input_check_names_the_field(data, message):
    with pytest.raises(BadRequest) as error:
        json_input_check(data, max_depth=64)
    assert error.value.message == message


def test_json_input_check_passes_ordinary_documents():
    json_input_check({"a": [1, 2.5, None, True, "text ü 😀"], "b": {"c": ""}}, max_depth=3)
    with pytest.raises(BadRequest):
        json_input_check({"a": {"b": {"c": {}}}}, max_depth=3)


def test_nul_in_smart_search_analytic_ids(api, db):
    body = {"type": "text", "query": "x", "analytic_ids": ["\x00"]}
    assert_error(api.post("/smart-search", body), 400, "analytic_ids[0]: must not contain NUL characters")


def test_nul_in_extract_metadata(api, stream):
    body = {"image": encoded(".jpg"), "metadata": {"source": "front\x00desk"}}
    assert_error(
        api.post(f"/extract/0/{SID}/{ANALYTIC}", body),
        400,
        "metadata.source: must not contain NUL characters",
    )


def test_unpaired_surrogate_in_a_body(api, db):
    response = api.post("/smart-search", '{"type": "text", "query": "\\ud800"}')
    assert_error(response, 400, "query: must not contain unpaired surrogates (it is not valid Unicode)")


def test_nul_in_query_parameters_and_path(api, stream):
    assert_error(api.get("/events?stream_id=%00"), 400, "stream_id: must not contain NUL characters")
    assert_error(api.get("/events?a%00=1"), 400, "query parameter names must not contain NUL characters")
    assert_error(api.get(f"/streams/0/{SID}%00"), 400, "the path must not contain NUL characters")


# --- null bodies ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("put", f"/streams/0/{SID}"),
        ("post", "/streams/0"),
        ("post", "/config/platform"),
        ("post", "/smart-search"),
    ],
)
def test_a_null_body_is_400(api, stream, method, path):
    assert_error(getattr(api, method)(path, "null"), 400, "request body must be a JSON object, not null")


def test_an_empty_put_is_still_an_empty_update(api, stream):
    assert api.put(f"/streams/0/{SID}", "").status_code == 200
    assert api.put(f"/streams/0/{SID}", {}).status_code == 200


# --- images ---------------------------------------------------------------------------------


@pytest.fixture
def keyspace(api, db):
    assert api.post("/v1/face/keyspace", {"keyspace": "staff"}).status_code == 200
    return "staff"


def test_gif_is_refused_by_every_image_route_with_one_message(api, stream, keyspace):
    gif = encoded(".gif")
    assert base64.b64decode(gif).startswith(b"GIF89a")
    cases = [
        ("/v1/face/enrollment", {"image": gif, "keyspace": keyspace}, "image"),
        ("/v1/face/recognition", {"image": gif, "keyspace": keyspace}, "image"),
        ("/v1/face/extract-embedding", {"image": gif}, "image"),
        ("/v1/face/match", {"image_a": {"content": gif}, "image_b": {"content": gif}}, "image_a.content"),
        ("/smart-search", {"type": "image", "query": gif}, "query"),
        (f"/extract/0/{SID}/{ANALYTIC}", {"image": gif}, "image"),
    ]
    for path, body, field in cases:
        assert_error(api.post(path, body), 400, f"{field} is not a JPEG or PNG image")


def test_webp_and_bmp_are_refused_too(api, stream):
    for extension in (".webp", ".bmp"):
        assert_error(
            api.post(f"/extract/0/{SID}/{ANALYTIC}", {"image": encoded(extension)}),
            400,
            "image is not a JPEG or PNG image",
        )


# --- chunked bodies (through the real ASGI server) ------------------------------------------------


@pytest.fixture
def server(transactional_db):
    """uvicorn in a thread; the rows migrations make are restored after the test's
    flush, as the other transactional tests expect."""
    with AsgiServer() as server:
        yield server


def post_chunked(server: AsgiServer, path: str, chunks: list[bytes], headers: dict | None = None):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        connection.request(
            "POST",
            path,
            body=iter(chunks),
            headers={"Content-Type": "application/json", **(headers or {})},
            encode_chunked=True,
        )
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_a_chunked_body_is_read(server):
    body = json.dumps({"type": "text", "query": "nobody", "limit": 5}).encode()
    status, answer = post_chunked(server, "/smart-search", [body[:7], body[7:20], body[20:]])
    assert (status, answer) == (200, {"code": 200, "message": "success", "results": []})


def test_a_chunked_body_over_the_limit_is_413(server, settings):
    settings.API_MAX_BODY_BYTES = 2048
    status, answer = post_chunked(server, "/smart-search", [b" " * 1024] * 3)
    assert (status, answer) == (413, {"code": 413, "message": "request body is too large (limit 2048 bytes)"})
    # At the limit it is read (and judged on its content).
    status, answer = post_chunked(server, "/smart-search", [b" " * 1024, b" " * 1020, b"null"])
    assert (status, answer) == (400, {"code": 400, "message": "request body must be a JSON object, not null"})


def test_a_chunked_body_follows_the_json_rules(server):
    status, answer = post_chunked(server, "/smart-search", [DEEP_ARRAY.encode()])
    assert (status, answer) == (400, {"code": 400, "message": TOO_DEEP})


# --- bearer scheme --------------------------------------------------------------------------


@pytest.mark.parametrize("header", ["Bearer t0ken", "bearer t0ken", "BEARER t0ken", "bEaReR   t0ken "])
def test_the_bearer_scheme_is_case_insensitive(api, db, settings, header):
    settings.API_TOKENS = ["t0ken"]
    assert api.get("/streams", HTTP_AUTHORIZATION=header).status_code == 200


@pytest.mark.parametrize("header", ["Basic t0ken", "Bearert0ken", "t0ken", "bearer"])
def test_other_schemes_carry_no_token(api, db, settings, header):
    settings.API_TOKENS = ["t0ken"]
    assert_error(
        api.get("/streams", HTTP_AUTHORIZATION=header),
        401,
        "missing API token: send 'Authorization: Bearer <token>'",
    )
