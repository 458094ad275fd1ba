"""The pieces of live viewing that need no server: pictures (variants, overlay
drawing and SVG, placeholders), multipart parts, the rate gate, the placeholder
text, and the watch-key script shared by API processes."""

from __future__ import annotations

import base64
import time

import cv2
import numpy as np
import pytest

from live.frames import WATCH_SCRIPT, WATCH_TTL_MS, RateGate
from live.keys import watch_key
from viewing import hub as viewing_hub
from viewing import render


def decoded(jpeg: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image


def source_jpeg(width=1280, height=720) -> bytes:
    image = np.zeros((height, width, 3), np.uint8)
    image[:, : width // 2] = (255, 255, 255)
    return render.encode(image, 90)


@pytest.mark.parametrize(
    ("source", "height", "size"),
    [
        ((1280, 720), 320, (569, 320)),
        ((320, 240), 120, (160, 120)),
        ((320, 240), 480, (640, 480)),
        ((0, 0), 90, (160, 90)),
    ],
)
def test_target_size_keeps_the_aspect(source, height, size):
    assert render.target_size(*source, height) == size


@pytest.mark.parametrize(
    ("source_height", "height", "factor"),
    [(720, 320, 2), (720, 90, 8), (720, 180, 4), (720, 720, 1), (240, 320, 1)],
)
def test_decode_reduction(source_height, height, factor):
    assert render.decode_reduction(source_height, height) == factor


def test_reduced_decode_gives_the_scaled_picture():
    image = render.decode(source_jpeg(), 4)
    assert image.shape == (180, 320, 3)
    assert render.decode(b"not a jpeg", 1) is None


def test_render_frame_plain_and_with_overlay():
    image = render.decode(source_jpeg(), 2)
    plain = render.render_frame(image, size=(569, 320), source_size=(1280, 720), quality=60, overlay=None)
    assert plain.svg is None
    assert decoded(plain.jpeg).shape == (320, 569, 3)
    shapes = render.overlay_shapes(
        [
            {"kind": "box", "points": [[640, 360], [1280, 720]], "label": "Jane <Doe>", "color": "#f00"},
            {"kind": "line", "points": [[0, 700], [1280, 700]], "label": "", "color": "bogus"},
            {"kind": "area", "points": [[0, 0], [600, 0], [600, 300]], "label": "Zone"},
            {"kind": "circle", "points": [[0, 0], [1, 1]]},  # unknown kind
            {"kind": "box", "points": [[0, 0]]},  # too few points
            {"kind": "box", "points": [["x", 0], [1, 1]]},  # not numbers
            "garbage",
        ]
    )
    assert [(s.kind, s.color) for s in shapes] == [
        ("box", "#ff0000"),
        ("line", "#00e676"),
        ("area", "#00e676"),
    ]
    drawn = render.render_frame(image, size=(569, 320), source_size=(1280, 720), quality=90, overlay=shapes)
    picture = decoded(drawn.jpeg)
    blue, green, red = picture[161:300, 284:286].reshape(-1, 3).mean(axis=0)  # the box's left edge
    assert red > 180 and green < 90 and blue < 90
    assert drawn.svg == (
        '<svg xmlns="http://www.w3.org/2000/svg" width="569" height="320" viewBox="0 0 569 320">'
        '<rect x="284.5" y="160.0" width="284.5" height="160.0" fill="none" stroke="#ff0000" '
        'stroke-width="2"/>'
        '<text x="284.5" y="157.0" fill="#ff0000" font-family="sans-serif" font-size="13">'
        "Jane &lt;Doe&gt;</text>"
        '<polyline points="0.0,311.1 569.0,311.1" fill="none" stroke="#00e676" stroke-width="2"/>'
        '<polygon points="0.0,0.0 266.7,0.0 266.7,133.3" fill="#00e676" fill-opacity="0.25" stroke="#00e676" '
        'stroke-width="2"/>'
        '<text x="0.0" y="13.0" fill="#00e676" font-family="sans-serif" font-size="13">Zone</text></svg>'
    )


def test_empty_overlay_is_an_empty_svg_of_the_frame_size():
    assert render.overlay_svg([], (1, 1), (160, 90)) == (
        '<svg xmlns="http://www.w3.org/2000/svg" width="160" height="90" viewBox="0 0 160 90"></svg>'
    )
    assert render.overlay_shapes(None) == [] and render.overlay_shapes({"kind": "box"}) == []


def test_placeholder_shows_the_state_and_changes_every_second():
    first = render.render_placeholder(
        size=(427, 240),
        state="RECONNECTING",
        message="Stream is reconnecting: refused",
        quality=70,
        now=1000.0,
    )
    same = render.render_placeholder(
        size=(427, 240),
        state="RECONNECTING",
        message="Stream is reconnecting: refused",
        quality=70,
        now=1000.2,
    )
    later = render.render_placeholder(
        size=(427, 240),
        state="RECONNECTING",
        message="Stream is reconnecting: refused",
        quality=70,
        now=1001.0,
    )
    picture = decoded(first)
    assert picture.shape == (240, 427, 3)
    assert picture.std() > 5  # text on the background, not a blank frame
    assert first == same and first != later
    tiny = decoded(render.render_placeholder(size=(28, 16), state="STOPPED", message="x " * 200, quality=10))
    assert tiny.shape == (16, 28, 3)


def test_multipart_part_and_header_text():
    part = render.multipart_part(b"JPEG", [("X-NF-Message-Data", "Stream is running..")])
    assert part == (
        b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: 4\r\n"
        b"X-NF-Message-Data: Stream is running..\r\n\r\nJPEG\r\n"
    )
    assert render.header_text("bad\r\nX-Injected: 1\tcaf\u00e9") == "bad X-Injected: 1 caf"
    assert base64.b64decode(render.svg_header("<svg/>")) == b"<svg/>"


@pytest.mark.parametrize(
    ("state", "message", "expected"),
    [
        ("STOPPED", "Stream is stopped", ("STOPPED", "Stream is stopped")),
        (
            "RECONNECTING",
            "Reconnecting in 1.0s: connection refused",
            ("RECONNECTING", "Stream is reconnecting in 1.0s: connection refused"),
        ),
        (
            "INITIALIZING",
            "Waiting for node 0 to start the stream",
            ("INITIALIZING", "Stream is initializing: Waiting for node 0 to start the stream"),
        ),
        ("ERROR", "", ("ERROR", "Stream failed")),
        ("ERROR", "runner error: KeyError: 'x'", ("ERROR", "Stream failed: runner error: KeyError: 'x'")),
        ("TERMINATING", "Stream is stopping", ("TERMINATING", "Stream is stopping")),
        ("RUNNING", "Stream is running..", ("WAITING", "Stream is waiting for frames")),
    ],
)
def test_placeholder_status(state, message, expected):
    assert viewing_hub.placeholder_status(state, message) == expected


def test_rate_gate_keeps_the_average_rate_of_a_faster_source():
    gate = RateGate(10)
    passed = [t for t in (i / 25 for i in range(250)) if gate.ready(t)]  # 10 s of a 25 fps source
    assert len(passed) == 100
    gaps = np.diff(passed)
    assert gaps.min() >= 0.079 and gaps.max() <= 0.121
    everything = RateGate(0)
    assert all(everything.ready(i / 25) for i in range(50))


def test_rate_gate_restarts_after_a_gap_instead_of_bursting():
    gate = RateGate(5)
    assert gate.ready(0.0) and not gate.ready(0.1)
    assert gate.ready(10.0)  # after a silence
    assert not gate.ready(10.04) and not gate.ready(10.08)
    assert gate.ready(10.2)


@pytest.fixture
def watch(redis_client):
    from asgiref.sync import async_to_sync

    def call(fps: int, *, key="viewing-test") -> None:
        async def run():
            import redis.asyncio as aioredis
            from django.conf import settings

            client = aioredis.Redis.from_url(settings.REDIS_URL)
            try:
                await client.register_script(WATCH_SCRIPT)(
                    keys=[watch_key(key)], args=[fps, WATCH_TTL_MS, WATCH_TTL_MS // 2]
                )
            finally:
                await client.aclose()

        async_to_sync(run)()

    return call


def test_watch_key_keeps_the_highest_rate_of_all_processes(watch, redis_client):
    key = watch_key("viewing-test")
    watch(5)
    assert redis_client.get(key) == "5" and 2900 < redis_client.pttl(key) <= 3000
    watch(10)  # another process, faster viewers
    assert redis_client.get(key) == "10"
    watch(5)  # the first one refreshing: 10 stays while it is fresh
    assert redis_client.get(key) == "10"
    watch(0)  # unlimited is the highest of all
    assert redis_client.get(key) == "0"
    watch(10)
    assert redis_client.get(key) == "0"
    # Once the faster process stopped refreshing for half the TTL, the slower rate takes over.
    redis_client.pexpire(key, 1400)
    watch(5)
    assert redis_client.get(key) == "5" and redis_client.pttl(key) > 2900


def test_viewing_timestamps_are_milliseconds():
    assert viewing_hub._ms(1674123456.7894) == "1674123456789"
    assert abs(int(viewing_hub._ms(time.time())) - time.time() * 1000) < 1000
