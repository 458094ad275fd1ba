"""Live viewing end to end: a real stream runner publishes frames of a real
H.264 file, the platform's ASGI application serves them under a real uvicorn,
and a strict multipart reader checks what a browser would get."""

from __future__ import annotations

import base64
import re
import time

import cv2
import numpy as np
import pytest

from live.keys import live_channel, watch_key

from .conftest import LIVE_SID
from .support import MjpegPart, MjpegReader, RunnerThread, is_live, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

ANALYTIC = "TEST-BRIGHT"


def live_parts(reader: MjpegReader, count: int, *, timeout: float = 15.0):
    """The first `count` live parts (placeholders before the first frame are skipped)."""
    reader.read_until(is_live, timeout=timeout, what="a live frame")
    return [reader.read_part() for _ in range(count)]


def test_mjpeg_framing_size_rate_and_headers(asgi_server, live_stream):
    with MjpegReader(asgi_server.url(f"/mjpeg/0/{LIVE_SID}?fps=5&height=120&jpeg_quality=70")) as reader:
        assert reader.status == 200
        assert reader.content_type == "multipart/x-mixed-replace; boundary=frame"
        reader.read_until(is_live, timeout=15, what="a live frame")
        start = time.monotonic()
        parts = []
        while time.monotonic() - start < 4.0:
            parts.append(reader.read_part())
        elapsed = parts[-1].received - parts[0].received
    assert all(is_live(part) for part in parts)
    rate = (len(parts) - 1) / elapsed
    assert 4.0 <= rate <= 6.0, f"{len(parts)} parts in {elapsed:.2f}s: {rate:.2f} fps for fps=5"
    for part in parts:
        assert part.image().shape == (120, 160, 3)  # 320x240 source, aspect kept
        assert part.headers["x-nf-message-data"] == "Stream is running.."
        assert part.headers["x-nf-stream-state"] == "RUNNING"
        assert "x-nf-visual-data" not in part.headers  # no overlay asked for
        captured_ms = int(part.headers["x-nf-frame-ts"])
        assert 0 <= part.received * 1000 - captured_ms < 2000
    # Frames of a file with a frame counter: consecutive parts differ.
    assert all(a.body != b.body for a, b in zip(parts, parts[1:], strict=False))


def test_fps_in_the_path_and_every_frame(asgi_server, live_stream):
    with MjpegReader(asgi_server.url(f"/mjpeg/fps/2/0/{LIVE_SID}?height=60")) as slow:
        parts = live_parts(slow, 5)
        rate = 4 / (parts[-1].received - parts[0].received)
        assert 1.5 <= rate <= 2.6, rate
        assert parts[0].image().shape == (60, 80, 3)
    # fps=0: every frame the stream delivers, no cap. Compared with the frames the
    # capture handed on over the same parts (a busy machine decodes below 25 fps).
    source = live_stream[1].runner.source
    with MjpegReader(asgi_server.url(f"/mjpeg/0/{LIVE_SID}?fps=0")) as fast:
        live_parts(fast, 1)
        delivered = source.frames_decoded - source.frames_dropped
        parts = live_parts(fast, 25)
        delivered = source.frames_decoded - source.frames_dropped - delivered
        assert delivered > 0 and len(parts) >= 0.8 * delivered, (len(parts), delivered)
        rate = 24 / (parts[-1].received - parts[0].received)
        assert rate > 6, f"fps=0 is not capped at the default 5 fps, got {rate:.1f}"
        assert parts[0].image().shape == (320, 427, 3)  # the default height


def test_overlay_variant_carries_the_svg(asgi_server, live_stream):
    path = f"/mjpeg/0/{LIVE_SID}/{ANALYTIC}?fps=5&height=240"
    with MjpegReader(asgi_server.url(path)) as reader:

        def with_box(part) -> bool:
            return is_live(part) and b"<rect" in base64.b64decode(part.headers["x-nf-visual-data"])

        part = reader.read_until(with_box, timeout=15, what="a frame with TEST-BRIGHT's box")
    svg = base64.b64decode(part.headers["x-nf-visual-data"]).decode()
    assert svg.startswith('<svg xmlns="http://www.w3.org/2000/svg" width="320" height="240" ')
    # TEST-BRIGHT boxes the whole frame and labels it with the mean brightness.
    assert re.search(r'<rect x="0.0" y="0.0" width="320.0" height="240.0" fill="none" stroke="#00e676"', svg)
    assert re.search(r"<text [^>]*>\d+</text>", svg)
    overlay_ms, frame_ms = int(part.headers["x-nf-visual-data-ts"]), int(part.headers["x-nf-frame-ts"])
    assert abs(frame_ms - overlay_ms) < 2000
    image = part.image()
    assert image.shape == (240, 320, 3)
    # The box is drawn on the picture too: the frame's left edge is the overlay's green.
    blue, green, red = image[:, :2].reshape(-1, 3).mean(axis=0).tolist()
    assert green > 150 and green - max(blue, red) > 60, (blue, green, red)


def test_placeholder_when_the_stream_stops_and_frames_when_it_comes_back(asgi_server, live_stream):
    _stream, runner = live_stream
    with MjpegReader(asgi_server.url(f"/mjpeg/0/{LIVE_SID}?height=90")) as reader:
        reader.read_until(is_live, timeout=15, what="a live frame")
        runner.stop()
        placeholder = reader.read_until(lambda p: not is_live(p), timeout=8, what="a placeholder")
        assert placeholder.headers["x-nf-stream-state"] == "STOPPED"
        assert placeholder.headers["x-nf-message-data"] == "Stream is stopped"
        assert placeholder.image().shape == (90, 120, 3)  # the stream's aspect, known from its frames
        second = reader.read_part()
        assert not is_live(second)
        assert 0.7 < second.received - placeholder.received < 1.5  # one a second
        assert second.body != placeholder.body  # its clock moves
        with RunnerThread(LIVE_SID):
            reader.read_until(is_live, timeout=15, what="frames again after the runner restarted")


def test_placeholder_names_an_unreachable_source(asgi_server, transactional_db, api, refused_port):
    from tests.events.conftest import stream_make

    stream_make(LIVE_SID, address=f"rtsp://127.0.0.1:{refused_port}/cam")
    with RunnerThread(LIVE_SID), MjpegReader(asgi_server.url(f"/mjpeg/0/{LIVE_SID}")) as reader:
        part = reader.read_until(
            lambda p: p.headers["x-nf-stream-state"] == "RECONNECTING", timeout=15, what="RECONNECTING"
        )
        assert re.fullmatch(r"Stream is reconnecting.*refused.*", part.headers["x-nf-message-data"], re.I), (
            part.headers
        )
        assert part.image().shape[0] == 320


def snapshot(server, path: str):
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response, response.read()
    finally:
        connection.close()


def test_stream_jpeg_of_a_running_stream(asgi_server, live_stream):
    _stream, runner = live_stream
    wait_for(lambda: runner.runner.state == "RUNNING", timeout=15, what="the stream running")
    # Nobody watches yet: the request starts the frames and waits for the first.
    started = time.monotonic()
    response, body = snapshot(asgi_server, f"/stream_jpeg/0/{LIVE_SID}?height=200&jpeg_quality=80")
    assert time.monotonic() - started < 3
    assert response.status == 200
    assert response.getheader("Content-Type") == "image/jpeg"
    assert response.getheader("X-NF-Stream-State") == "RUNNING"
    assert response.getheader("X-NF-Message-Data") == "Stream is running.."
    assert abs(time.time() * 1000 - int(response.getheader("X-NF-Frame-Ts"))) < 2000
    assert MjpegPart({}, body, 0).image().shape == (200, 267, 3)
    # While the same variant is watched, the snapshot is its newest frame.
    with MjpegReader(asgi_server.url(f"/mjpeg/0/{LIVE_SID}?height=200&jpeg_quality=80")) as reader:
        reader.read_until(is_live, timeout=15, what="a live frame")
        response, body = snapshot(asgi_server, f"/stream_jpeg/0/{LIVE_SID}?height=200&jpeg_quality=80")
    assert response.getheader("X-NF-Stream-State") == "RUNNING"
    assert MjpegPart({}, body, 0).image().shape == (200, 267, 3)


def test_frames_are_published_only_while_watched(asgi_server, live_stream, redis_client):
    _stream, runner = live_stream
    wait_for(lambda: runner.runner.state == "RUNNING", timeout=15, what="the stream running")
    assert redis_client.get(watch_key(LIVE_SID)) is None
    assert runner.runner.publisher.published == 0
    with (
        MjpegReader(asgi_server.url(f"/mjpeg/0/{LIVE_SID}?fps=3")) as slow,
        MjpegReader(asgi_server.url(f"/mjpeg/0/{LIVE_SID}?fps=7&height=100")) as fast,
    ):
        live_parts(slow, 1)
        live_parts(fast, 1)
        # One subscription for the stream, the highest rate asked for.
        assert redis_client.pubsub_numsub(live_channel(LIVE_SID)) == [(live_channel(LIVE_SID), 1)]
        assert redis_client.get(watch_key(LIVE_SID)) == "7"
        assert 0 < redis_client.pttl(watch_key(LIVE_SID)) <= 3000
        stats = asgi_server.hub_stats()
        assert stats == {"clients": 2, "feeds": 1, "variants": 2, "tasks": 4, "subscriptions": 1}
    # Both gone: after the grace, nothing left and the key lapses.
    # The grace is 0.2 s; the rest is cancelled renders and Redis connections closing,
    # which a loaded machine (the whole suite) can stretch to seconds.
    wait_for(
        lambda: asgi_server.hub_stats()["tasks"] == 0,
        timeout=15,
        what=lambda: f"the hub to let go (tasks alive: {asgi_server.loop_tasks()})",
    )
    idle = dict.fromkeys(("clients", "feeds", "variants", "tasks", "subscriptions"), 0)
    assert asgi_server.hub_stats() == idle
    assert redis_client.pubsub_numsub(live_channel(LIVE_SID)) == [(live_channel(LIVE_SID), 0)]
    wait_for(lambda: redis_client.get(watch_key(LIVE_SID)) is None, timeout=4, what="the watch key to lapse")
    # The runner looks at the key every WATCH_CHECK_SECONDS; once it saw it gone it publishes nothing.
    wait_for(lambda: runner.runner.publisher._fps == 0, timeout=2, what="the runner to notice")
    published = runner.runner.publisher.published
    time.sleep(1.0)  # nothing to wait for: the runner must stay quiet
    assert runner.runner.publisher.published == published


def test_viewer_and_variant_limits(asgi_server, live_stream, settings):
    settings.VIEWING_MAX_CLIENTS = 2
    settings.VIEWING_MAX_VARIANTS_PER_STREAM = 1
    import http.client

    def get(path):
        connection = http.client.HTTPConnection("127.0.0.1", asgi_server.port, timeout=10)
        connection.request("GET", path)
        response = connection.getresponse()
        return response, connection

    with MjpegReader(asgi_server.url(f"/mjpeg/0/{LIVE_SID}?fps=2")) as first:
        first.read_part()
        response, connection = get(f"/mjpeg/0/{LIVE_SID}?fps=3")
        assert response.status == 503
        assert response.read() == (
            b'{"code": 503, "message": "too many different views of this stream (limit 1): ask for a height, '
            b'quality, fps and overlay that others already watch"}'
        )
        connection.close()
        with MjpegReader(asgi_server.url(f"/mjpeg/0/{LIVE_SID}?fps=2")) as second:
            second.read_part()
            response, connection = get(f"/mjpeg/0/{LIVE_SID}?fps=2")
            assert response.status == 503
            assert response.read() == (
                b'{"code": 503, "message": "too many viewers on this server (limit 2): try again later"}'
            )
            connection.close()
    assert settings.VIEWING_GRACE_SECONDS == 0.2


def test_malformed_frames_cost_only_themselves(asgi_server, transactional_db, redis_client):
    from live.frames import encode_live_message
    from live.redis import get_redis_binary
    from tests.events.conftest import pipeline_make, stream_make

    pipeline_make(stream_make(LIVE_SID))  # no runner: this test publishes the frames itself
    publish = get_redis_binary().publish
    channel = live_channel(LIVE_SID)
    with MjpegReader(asgi_server.url(f"/mjpeg/0/{LIVE_SID}/{ANALYTIC}?height=48")) as reader:
        reader.read_part()  # a placeholder: nobody runs the stream
        wait_for(lambda: asgi_server.hub_stats()["subscriptions"] == 1, what="the subscription")
        ok, jpeg = cv2.imencode(".jpg", np.full((48, 64, 3), 90, np.uint8))
        header = {"seq": 1, "ts": time.time(), "width": 64, "height": 48, "overlays": {}}
        for payload in (
            b"no header line",
            b"{not json}\n" + jpeg.tobytes(),
            encode_live_message({**header, "width": "wide"}, jpeg.tobytes()),
            encode_live_message({**header, "height": 0}, jpeg.tobytes()),
            encode_live_message(header, b"not a jpeg"),
            b"[1, 2]\n" + jpeg.tobytes(),  # a header that is JSON but not an object
        ):
            publish(channel, payload)
        weird_overlay = {ANALYTIC: {"ts": "x", "items": [{"kind": "box", "points": "bad"}, 7]}}
        publish(channel, encode_live_message({**header, "overlays": weird_overlay}, jpeg.tobytes()))
        good = reader.read_until(is_live, timeout=10, what="the good frame")
    assert good.image().shape == (48, 64, 3)
    svg = base64.b64decode(good.headers["x-nf-visual-data"]).decode()
    assert svg == '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="48" viewBox="0 0 64 48"></svg>'
    assert "x-nf-visual-data-ts" not in good.headers
