"""Replays every example of the reference page (docs/contract/reference-page.txt)
against the server.

The examples are read from the page itself: each `curl` command with its body,
followed by its documented responses (success first, then errors). A success
response must have the same shape as the page's (same keys, same JSON types,
list items shaped like the page's first item); an error response must have
the same code and start with the same message.

The page's analytic ids (NFV4-FR, NFV4-SS) are replaced by the light test
analytic (TEST-BRIGHT), so replaying the pipeline examples loads no face model;
the face analytics have their own route tests.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from streams.models import Stream

SEED = Path(__file__).resolve().parents[2] / "docs" / "contract" / "reference-page.txt"
SEED_STREAM = "5136c6c0916cd30c"
ANALYTIC = "TEST-BRIGHT"

# Keys the server adds where the contract allows more (see docs/contract/API.md).
ALLOWED_EXTRA_KEYS = {
    "active",  # stream list items: "Clients also read `active`"
    "frames_dropped",
    "reconnects",
    "uptime_sec",  # stream_stats: live figures of ours
    "title",
    "additionalProperties",
    "$defs",
    "description",
    "required",  # JSON Schema documents
    "sub_analytics",  # /v2/config/pipeline
    "false_match_probability",  # /smart-search image results: how often a stranger scores as high
}
# Numbers the page prints as integers but that are measured fractions.
FRACTIONAL = {"swap_memory_percent", "cpu_percent", "ram_percent"}


@dataclass(frozen=True)
class Example:
    method: str
    path: str
    body: dict | None
    responses: tuple

    @property
    def name(self) -> str:
        return f"{self.method} {self.path or '/'}"


def load_examples() -> list[Example]:
    text = SEED.read_text()
    pattern = re.compile(
        r'curl -X (GET|POST|PUT|DELETE) "http://localhost:4004([^"]*)"'
        r'(?: \\ -H "Content-Type: application/json" \\ -d \'(.*?)\')?',
        re.S,
    )
    decoder = json.JSONDecoder()
    examples = []
    for match in pattern.finditer(text):
        position, responses = match.end(), []
        while True:
            while position < len(text) and text[position] in " \n":
                position += 1
            try:
                value, position = decoder.raw_decode(text, position)
            except ValueError:
                break
            responses.append(value)
        body = json.loads(match.group(3)) if match.group(3) else None
        examples.append(Example(match.group(1), match.group(2), body, tuple(responses)))
    return examples


EXAMPLES = load_examples()


def test_the_page_has_all_its_examples():
    assert len(EXAMPLES) == 32


def assert_same_shape(expected, actual, where="body"):
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{where}: expected an object, got {actual!r}"
        missing = set(expected) - set(actual)
        extra = set(actual) - set(expected) - ALLOWED_EXTRA_KEYS
        assert not missing, f"{where}: missing keys {sorted(missing)}"
        assert not extra, f"{where}: unexpected keys {sorted(extra)}"
        for key, value in expected.items():
            assert_same_shape(value, actual[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list), f"{where}: expected a list, got {actual!r}"
        if expected and actual:
            for index, item in enumerate(actual):
                assert_same_shape(expected[0], item, f"{where}[{index}]")
    elif isinstance(expected, bool):
        assert isinstance(actual, bool), f"{where}: expected a boolean, got {actual!r}"
    elif isinstance(expected, int):
        leaf = where.rsplit(".", 1)[-1]
        allowed = (int, float) if leaf in FRACTIONAL else (int,)
        assert isinstance(actual, allowed) and not isinstance(actual, bool), (
            f"{where}: expected an integer, got {actual!r}"
        )
    elif isinstance(expected, float):
        leaf = where.rsplit(".", 1)[-1]
        # A measured percentage that happens to be whole (100) is sent as the seed sends 0.
        allowed = (int, float) if leaf in FRACTIONAL else (float,)
        assert isinstance(actual, allowed) and not isinstance(actual, bool), (
            f"{where}: expected a float, got {actual!r}"
        )
    elif isinstance(expected, str):
        assert isinstance(actual, str), f"{where}: expected a string, got {actual!r}"
    else:
        assert actual is None, f"{where}: expected null, got {actual!r}"


def send(api, method: str, path: str, body=None):
    path = (path or "/").replace("NFV4-FR", ANALYTIC).replace("NFV4-SS", ANALYTIC)
    if body is not None:
        # The page's camera is on a private network; the test settings allow loopback only.
        body = json.loads(json.dumps(body).replace("rtsp://10.7.2.50:554/", "rtsp://127.0.0.1:8554/"))
    return (
        getattr(api, method.lower())(path, body) if body is not None else getattr(api, method.lower())(path)
    )


def assert_error(response, expected):
    assert response.status_code == expected["code"], response.content
    body = response.json()
    assert set(body) == {"code", "message"}
    assert body["code"] == expected["code"]
    assert body["message"].startswith(expected["message"]), body


@pytest.fixture
def seeded(db, api, settings, node_agent):
    """The state the page's examples assume: stream 5136c6c0916cd30c on node 0
    with a pipeline, and node 0's worker sending heartbeats."""
    Stream.objects.create(
        stream_id=SEED_STREAM,
        node_id=0,
        name="Camera Lobby",
        address="rtsp://10.7.2.50:554/VOD/stream.mp4",
        latitude=-6.261376,
        longitude=106.823648,
    )
    assert api.post(f"/pipeline/0/{SEED_STREAM}/{ANALYTIC}", {}).status_code == 200
    return api


JSON_SUCCESS = [e for e in EXAMPLES if isinstance(e.responses[0], dict)]
# The page documents these successes as "string": MJPEG, a JPEG, an HTML page.
VIEWING = [e for e in EXAMPLES if e.responses[0] == "string"]


@pytest.mark.parametrize("example", JSON_SUCCESS, ids=lambda e: e.name)
def test_success_example_has_the_page_shape(seeded, example, licence_credentials):
    body = example.body
    if example.path == "/config/checkin" and example.method == "POST":
        body = licence_credentials  # the page's keys are placeholders; real ones are signed
    if example.path == "/config/checkin" and example.method == "GET":
        assert seeded.post("/config/checkin", licence_credentials).status_code == 200
    if example.path == "/smart-search":
        body = {"type": "image", "query": face_event_seed()}  # the page's image is cut short
    if example.path.startswith("/extract/"):
        body = {"image": base64_jpeg(), "metadata": example.body["metadata"]}  # cut short too
    response = send(seeded, example.method, example.path, body)
    assert response.status_code == 200, response.content
    if example.path.startswith(SCHEMA_ROUTES):
        assert_schema_document(example.responses[0], response.json())
    else:
        assert_same_shape(example.responses[0], response.json())


# These answer a document about the analytic; its properties are the analytic's own.
SCHEMA_ROUTES = ("/config/pipeline/", "/v2/config/pipeline/", "/rules/pipeline/", "/config/preset/")


def assert_schema_document(expected: dict, actual: dict):
    assert isinstance(actual, dict)
    if expected:  # a JSON Schema: an object whose every property has a default
        assert actual["type"] == "object"
        assert actual["properties"] and all("default" in prop for prop in actual["properties"].values())


def test_metrics_example(seeded):
    response = seeded.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    expected = next(e for e in EXAMPLES if e.path == "/metrics").responses[0]
    for line in expected.splitlines()[:2]:  # HELP and TYPE lines; the value differs
        assert line in response.content.decode()
    assert "visionaire_streams_total 1.0" in response.content.decode()


# How to provoke each documented error: (method, path, body).
ERROR_REQUESTS = {
    "GET /streams/0": ("GET", "/streams/7", None),
    "POST /streams/0": ("POST", "/streams/0", {"stream_address": "file:///etc/passwd"}),
    f"GET /streams/0/{SEED_STREAM}": ("GET", "/streams/0/0123456789abcdef", None),
    f"PUT /streams/0/{SEED_STREAM}": ("PUT", "/streams/0/0123456789abcdef", {}),
    f"DELETE /streams/0/{SEED_STREAM}": ("DELETE", "/streams/0/0123456789abcdef", None),
    f"GET /mjpeg/0/{SEED_STREAM}?fps=10&height=480&jpeg_quality=70": (
        "GET",
        "/mjpeg/0/0123456789abcdef?fps=10&height=480&jpeg_quality=70",
        None,
    ),
    f"GET /mjpeg/0/{SEED_STREAM}/NFV4-FR?fps=10&height=480&jpeg_quality=70": (
        "GET",
        f"/mjpeg/0/{SEED_STREAM}/NFV4-LPR3?fps=10&height=480&jpeg_quality=70",
        None,
    ),
    f"GET /stream_jpeg/0/{SEED_STREAM}": ("GET", "/stream_jpeg/0/0123456789abcdef", None),
    "GET /config/pipeline/NFV4-FR": ("GET", "/config/pipeline/NOPE", None),
    "GET /v2/config/pipeline/NFV4-FR": ("GET", "/v2/config/pipeline/NOPE", None),
    "GET /rules/pipeline/NFV4-FR": ("GET", "/rules/pipeline/NOPE", None),
    "GET /config/preset/NFV4-FR": ("GET", "/config/preset/NOPE", None),
    "POST /smart-search": ("POST", "/smart-search", {"type": "video", "query": "x"}),
    f"POST /extract/0/{SEED_STREAM}/NFV4-SS": ("POST", f"/extract/0/{SEED_STREAM}/NOPE", {"image": "eA=="}),
    "POST /config/platform": ("POST", "/config/platform", {"max_streams_per_node": -1}),
    # The page's own placeholder credentials are not a signed licence.
    "POST /config/checkin": None,
}
ERROR_EXAMPLES = [e for e in EXAMPLES if len(e.responses) > 1]


def test_every_error_example_is_replayed():
    assert {e.name for e in ERROR_EXAMPLES} == set(ERROR_REQUESTS)


@pytest.mark.parametrize("example", ERROR_EXAMPLES, ids=lambda e: e.name)
def test_error_example(seeded, example, licence_issuer):
    method, path, body = ERROR_REQUESTS[example.name] or (example.method, example.path, example.body)
    assert_error(send(seeded, method, path, body), example.responses[1])


def test_the_page_has_its_viewing_examples():
    assert [e.path.split("/")[1] for e in VIEWING] == ["mjpeg", "mjpeg", "stream_jpeg", "visual", "visual"]


@pytest.mark.parametrize("example", VIEWING, ids=lambda e: e.name)
def test_viewing_example(seeded, example):
    """The seed stream is not running (its camera is not reachable from here):
    the MJPEG starts with a placeholder part, the snapshot is the placeholder."""
    from tests.viewing.support import first_part

    path = example.path.replace("NFV4-FR", ANALYTIC)
    response, chunk = first_part(path)
    assert response.status_code == 200
    content_type = response["Content-Type"]
    if example.path.startswith("/mjpeg/"):
        assert content_type == "multipart/x-mixed-replace; boundary=frame"
        head, _, body = chunk.partition(b"\r\n\r\n")
        assert head.startswith(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: ")
        assert body[:2] == b"\xff\xd8"
        assert b"\r\nX-NF-Message-Data: Stream is initializing: " in head
        assert (b"\r\nX-NF-Visual-Data: " in head) is (ANALYTIC in path)
    elif example.path.startswith("/stream_jpeg/"):
        assert content_type == "image/jpeg" and response.content[:2] == b"\xff\xd8"
    else:
        assert content_type == "text/html; charset=utf-8"
        assert b"<img" in response.content


def base64_jpeg() -> str:
    import base64

    import cv2
    import numpy as np

    ok, jpeg = cv2.imencode(".jpg", np.full((32, 32, 3), 128, np.uint8))
    assert ok
    return base64.b64encode(jpeg.tobytes()).decode()


def face_event_seed() -> str:
    """Store an event of the astronaut's face at the seed stream and return the
    photo as base64, so an image search has a result to shape-check."""
    import base64
    from datetime import UTC, datetime

    from analytics.face.engine import crop_jpeg, face_engine
    from events.services import event_create
    from tests.support.face_photos import astronaut_bgr, jpeg_bytes

    image = astronaut_bgr()
    faces, embeddings = face_engine().analyze(image)
    event_create(
        stream=Stream.objects.get(stream_id=SEED_STREAM),
        analytic_id=ANALYTIC,
        timestamp=datetime(2023, 1, 19, 10, 17, 36, 789000, tzinfo=UTC),
        primary_text="Eileen Collins",
        secondary_text="Astronaut",
        pipeline_data={},
        image_jpeg=crop_jpeg(image, faces[0]),
        embedding=[float(value) for value in embeddings[0]],
    )
    return base64.b64encode(jpeg_bytes(image)).decode()
