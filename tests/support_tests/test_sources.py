"""The fault-injection sources: MJPEG over HTTP (with stalls), an HTML page, a refused port."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from tests.support.sources import MjpegServer, refused_url
from tests.support_tests.capture import open_capture, opens_or_reads, read_frames, reads_until_failure


def wait_for(predicate, *, timeout: float = 5.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.01)


def test_opencv_reads_mjpeg_at_the_served_rate(mjpeg_server):
    cap = open_capture(mjpeg_server.url)
    assert cap.isOpened()
    read_frames(cap, 1)
    started = time.monotonic()
    frames = read_frames(cap, 12)
    elapsed = time.monotonic() - started
    cap.release()
    assert {f.shape for f in frames} == {(240, 320, 3)}
    assert 0.3 < elapsed < 1.5  # 12 frames at 25 fps is 0.48 s
    assert mjpeg_server.requests == 1


def test_a_stalled_mjpeg_source_keeps_the_connection_but_sends_nothing(mjpeg_server):
    cap = open_capture(mjpeg_server.url, read_ms=600)
    read_frames(cap, 2)
    mjpeg_server.stall()
    sent = mjpeg_server.frames_sent
    started = time.monotonic()
    reads_until_failure(cap, timeout=5)
    assert time.monotonic() - started >= 0.5  # failed by the read timeout, not a closed socket
    assert mjpeg_server.clients == 1
    assert mjpeg_server.frames_sent == sent
    cap.release()

    mjpeg_server.resume()
    cap = open_capture(mjpeg_server.url)
    read_frames(cap, 3)
    cap.release()


def test_disconnect_drops_clients_and_new_ones_are_served(mjpeg_server):
    cap = open_capture(mjpeg_server.url)
    read_frames(cap, 2)
    mjpeg_server.disconnect()
    reads_until_failure(cap, timeout=5)
    cap.release()
    wait_for(lambda: mjpeg_server.clients == 0, what="the handler to end")
    assert opens_or_reads(mjpeg_server.url)


def test_stop_ends_streaming_handlers_and_frees_the_port(mjpeg_jpegs):
    server = MjpegServer(mjpeg_jpegs, fps=25).start()
    cap = open_capture(server.url)
    read_frames(cap, 2)
    server.stall()  # a stalled handler must end too
    port = server.port
    before = threading.active_count()
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 2
    assert threading.active_count() < before
    cap.release()
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port)):
        pass


def test_an_html_page_is_not_video(html_server):
    assert not opens_or_reads(html_server.url)
    assert html_server.requests >= 1


def test_a_refused_http_port_does_not_open():
    assert not opens_or_reads(refused_url("http", "/video.mjpg"))
