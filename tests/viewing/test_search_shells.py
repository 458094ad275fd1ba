"""POST /smart-search and POST /extract/{node}/{stream_id}/{pipeline_id}: input
checks (the searches themselves: tests/events/test_text_search.py and
test_image_search.py; NFV4-SS pushes: test_smart_search_analytic.py)."""

from __future__ import annotations

import base64
import struct
import zlib

import cv2
import numpy as np
import pytest

from events.models import Event
from tests.events.conftest import ANALYTIC, pipeline_make, stream_make

SID = "5136c6c0916cd30c"
EXTRACT_OK = {
    "code": 200,
    "message": "payload successfully pushed to pipeline",
    "node_num": 0,
    "stream_id": SID,
    "pipeline_id": ANALYTIC,
}


def assert_error(response, status: int, message: str) -> None:
    assert (response.status_code, response.json()) == (status, {"code": status, "message": message})


def encoded(extension: str) -> str:
    ok, data = cv2.imencode(extension, np.full((20, 30, 3), 90, dtype=np.uint8))
    assert ok
    return base64.b64encode(data.tobytes()).decode()


def png_declaring(width: int, height: int) -> str:
    """A PNG whose header claims a size far bigger than its few bytes."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + header
    data = (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(header))
        + chunk
        + struct.pack(">I", zlib.crc32(chunk))
        + struct.pack(">I", 0)
        + b"IEND"
        + struct.pack(">I", zlib.crc32(b"IEND"))
    )
    return base64.b64encode(data).decode()


# --- /smart-search -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"type": "text", "query": "John"},
        {"type": "image", "query": encoded(".jpg")},
        {"type": "image", "query": encoded(".png")},
        {"type": "image", "query": "data:image/jpeg;base64," + encoded(".jpg")},
        {
            "type": "text",
            "query": "John",
            "limit": 1000,
            "min_similarity": 0.5,
            "stream_ids": [SID],
            "analytic_ids": ["NFV4-FR"],
            "from_ms": 0,
            "to_ms": 1736928000000,
        },
        {"type": "text", "query": "x", "limit": 1, "min_similarity": 1, "stream_ids": [], "analytic_ids": []},
    ],
)
def test_smart_search_valid_request_is_answered(api, db, body):
    """Without stored events a text search finds nothing; these images show no face."""
    response = api.post("/smart-search", body)
    if body["type"] == "text":
        assert (response.status_code, response.json()) == (
            200,
            {"code": 200, "message": "success", "results": []},
        )
    else:
        assert_error(response, 400, "no face found in the query image")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"type": "video", "query": "x"}, "invalid query type"),
        ({"query": "x"}, "invalid query type"),
        ({"type": None, "query": "x"}, "invalid query type"),
        ({"type": "text", "query": "x", "page": 2, "sort": "asc"}, "unknown field(s): page, sort"),
        ({"type": "text"}, "query: this field is required"),
        ({"type": "text", "query": "   "}, "query must not be empty"),
        ({"type": "text", "query": 42}, "query must be a string"),
        ({"type": "text", "query": "a" * 201}, "query must be at most 200 characters"),
        ({"type": "text", "query": "a\x00b"}, "query: must not contain NUL characters"),
        ({"type": "image", "query": ""}, "query must not be empty"),
        ({"type": "image", "query": ["x"]}, "query must be a base64 string"),
        ({"type": "image", "query": "not base64!"}, "query is not valid base64"),
        ({"type": "image", "query": "abc="}, "query is not a JPEG or PNG image"),
        ({"type": "image", "query": "ab$c"}, "query is not valid base64"),
        (
            {"type": "image", "query": base64.b64encode(b"hello world").decode()},
            "query is not a JPEG or PNG image",
        ),
        ({"type": "image", "query": png_declaring(30, 20)}, "query is not a decodable image"),
        ({"type": "text", "query": "x", "limit": 0}, "limit must be an integer between 1 and 1000"),
        ({"type": "text", "query": "x", "limit": 1001}, "limit must be an integer between 1 and 1000"),
        ({"type": "text", "query": "x", "limit": "5"}, "limit must be an integer between 1 and 1000"),
        ({"type": "text", "query": "x", "limit": True}, "limit must be an integer between 1 and 1000"),
        (
            {"type": "text", "query": "x", "min_similarity": 1.5},
            "min_similarity must be a number between 0 and 1",
        ),
        (
            {"type": "text", "query": "x", "min_similarity": -0.1},
            "min_similarity must be a number between 0 and 1",
        ),
        (
            {"type": "text", "query": "x", "min_similarity": "0.5"},
            "min_similarity must be a number between 0 and 1",
        ),
        (
            {"type": "text", "query": "x", "min_similarity": False},
            "min_similarity must be a number between 0 and 1",
        ),
        (
            {"type": "text", "query": "x", "stream_ids": SID},
            "stream_ids must be a list of stream ids (16 lowercase hex characters each)",
        ),
        (
            {"type": "text", "query": "x", "stream_ids": ["BAD"]},
            "stream_ids must be a list of stream ids (16 lowercase hex characters each)",
        ),
        (
            {"type": "text", "query": "x", "analytic_ids": [1]},
            "analytic_ids must be a list of analytic ids (strings of 1 to 40 characters)",
        ),
        (
            {"type": "text", "query": "x", "analytic_ids": ""},
            "analytic_ids must be a list of analytic ids (strings of 1 to 40 characters)",
        ),
        (
            {"type": "text", "query": "x", "from_ms": -1},
            "from_ms must be an integer between 0 and 253402300799999",
        ),
        (
            {"type": "text", "query": "x", "to_ms": 1.5},
            "to_ms must be an integer between 0 and 253402300799999",
        ),
        ({"type": "text", "query": "x", "from_ms": 10, "to_ms": 9}, "from_ms must not be after to_ms"),
    ],
)
def test_smart_search_bad_requests(api, db, body, message):
    assert_error(api.post("/smart-search", body), 400, message)


def test_smart_search_body_must_be_an_object(api, db):
    assert_error(api.post("/smart-search", [1, 2]), 400, "request body must be a JSON object")
    response = api.post("/smart-search", "{not json")
    assert response.status_code == 400
    assert set(response.json()) == {"code", "message"}


def test_smart_search_image_over_the_size_limit(api, db, settings):
    settings.SEARCH_MAX_IMAGE_BYTES = 1024
    big = base64.b64encode(bytes(1025)).decode()
    assert_error(
        api.post("/smart-search", {"type": "image", "query": big}),
        413,
        "query is too large (limit 1024 bytes)",
    )
    # At the limit the size passes and decoding decides.
    exact = base64.b64encode(bytes(1024)).decode()
    assert_error(
        api.post("/smart-search", {"type": "image", "query": exact}), 400, "query is not a JPEG or PNG image"
    )


def test_smart_search_image_declaring_too_many_pixels(api, db):
    assert_error(
        api.post("/smart-search", {"type": "image", "query": png_declaring(100_000, 100_000)}),
        413,
        "query is too large (100000x100000 pixels, limit 40000000 pixels)",
    )


def test_smart_search_wrong_method(api, db):
    assert_error(api.get("/smart-search"), 405, "method GET not allowed")


# --- /extract ------------------------------------------------------------------------------


@pytest.fixture
def stream(db):
    stream = stream_make(SID)
    pipeline_make(stream)
    return stream


def test_extract_into_a_pipeline_runs_its_analytic(api, stream):
    """TEST-BRIGHT has no extract hook: its processor sees the image as one frame.
    (NFV4-SS pushes: tests/events/test_smart_search_analytic.py.)"""
    dark = api.post(
        f"/extract/0/{SID}/{ANALYTIC}", {"image": encoded(".jpg"), "metadata": {"camera": "lobby"}}
    )
    assert (dark.status_code, dark.json()) == (200, EXTRACT_OK)
    assert Event.objects.count() == 0  # mean 90, under the threshold: nothing to report
    ok, bright = cv2.imencode(".png", np.full((20, 30, 3), 250, dtype=np.uint8))
    response = api.post(
        f"/extract/0/{SID}/{ANALYTIC}", {"image": base64.b64encode(bright.tobytes()).decode()}
    )
    assert (response.status_code, response.json()) == (200, EXTRACT_OK)
    event = Event.objects.get()
    assert (event.analytic_id, event.primary_text, event.pipeline_data["source"]) == (
        ANALYTIC,
        "bright",
        "extract",
    )


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        (f"/extract/x/{SID}/{ANALYTIC}", 400, "invalid node number 'x': it must be an integer"),
        (f"/extract/9/{SID}/{ANALYTIC}", 404, "node not found"),
        (
            f"/extract/0/XYZ/{ANALYTIC}",
            400,
            "invalid stream_id 'XYZ': it must be 16 lowercase hex characters",
        ),
        (f"/extract/0/ffffffffffffffff/{ANALYTIC}", 404, "stream not found"),
        (f"/extract/0/{SID}/NFV4-FR", 404, "pipeline not found"),
    ],
)
def test_extract_unknown_or_malformed_path(api, stream, path, status, message):
    assert_error(api.post(path, {"image": encoded(".jpg")}), status, message)


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({}, 400, "image: this field is required"),
        ({"image": encoded(".jpg"), "extra": 1}, 400, "unknown field(s): extra"),
        ({"image": encoded(".jpg"), "metadata": [1]}, 400, "metadata must be a JSON object"),
        ({"image": 5}, 400, "image must be a base64 string"),
        ({"image": "%%%"}, 400, "image is not valid base64"),
        ({"image": base64.b64encode(b"GIF89a....").decode()}, 400, "image is not a JPEG or PNG image"),
        (
            {"image": png_declaring(50_000, 50_000)},
            413,
            "image is too large (50000x50000 pixels, limit 40000000 pixels)",
        ),
    ],
)
def test_extract_bad_bodies(api, stream, body, status, message):
    assert_error(api.post(f"/extract/0/{SID}/{ANALYTIC}", body), status, message)


def test_extract_implausible_pipeline_ids_are_not_found(api, stream):
    assert_error(
        api.post(f"/extract/0/{SID}/{'A' * 41}", {"image": encoded(".jpg")}), 404, "pipeline not found"
    )


def test_extract_nul_in_the_path_is_refused(api, stream):
    assert_error(
        api.post(f"/extract/0/{SID}/a%00b", {"image": encoded(".jpg")}),
        400,
        "the path must not contain NUL characters",
    )
