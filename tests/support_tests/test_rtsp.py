"""The real RTSP server (GStreamer) is readable by OpenCV over TCP, stops and comes back."""

from __future__ import annotations

import socket
import time

import pytest

from tests.support.rtsp import RtspServer, RtspServerError
from tests.support_tests.capture import open_capture, opens_or_reads, read_frames, reads_until_failure

pytestmark = pytest.mark.usefixtures("opencv_rtsp_tcp")


def test_opencv_reads_the_live_pattern(rtsp_server):
    assert rtsp_server.url == f"rtsp://127.0.0.1:{rtsp_server.port}/test"
    started = time.monotonic()
    cap = open_capture(rtsp_server.url)
    assert cap.isOpened()
    frames = read_frames(cap, 10)
    first_frames_s = time.monotonic() - started
    cap.release()
    assert {f.shape for f in frames} == {(240, 320, 3)}
    # About 1.2 s here: FFmpeg probes ~20 frames at 25 fps for the frame rate before open returns.
    assert first_frames_s < 8


def test_reads_fail_after_stop_and_a_new_capture_reads_after_restart(rtsp_server):
    port = rtsp_server.port
    cap = open_capture(rtsp_server.url)
    read_frames(cap, 3)

    rtsp_server.stop()
    assert not rtsp_server.running
    reads_until_failure(cap, timeout=5)  # frames already buffered may still come first
    cap.release()
    assert not opens_or_reads(rtsp_server.url)

    rtsp_server.restart()
    assert rtsp_server.port == port
    assert rtsp_server.starts == 2
    cap = open_capture(rtsp_server.url)
    assert cap.isOpened()
    read_frames(cap, 3)
    cap.release()


def test_opencv_reads_a_served_file(rtsp_file_server):
    cap = open_capture(rtsp_file_server.url)
    assert cap.isOpened()
    frames = read_frames(cap, 5)
    assert {f.shape for f in frames} == {(240, 320, 3)}
    cap.release()


def test_a_served_file_ends_with_silence_then_reads_time_out(media):
    # The server keeps the session open after the file's last frame: only the reader's
    # read timeout (OpenCV's default is 30 s) turns the end into a failed read.
    with RtspServer(file=media.small_h264(seconds=1)) as server:
        cap = open_capture(server.url, read_ms=700)
        assert cap.isOpened()
        assert reads_until_failure(cap, timeout=6) == 25
        cap.release()


def test_a_refused_rtsp_port_does_not_open(refused_port):
    assert not opens_or_reads(f"rtsp://127.0.0.1:{refused_port}/test")


def test_start_on_a_taken_port_fails_within_its_deadline():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = RtspServer(port=taken.getsockname()[1], ready_timeout=1.5)
        started = time.monotonic()
        with pytest.raises(RtspServerError, match="did not become ready"):
            server.start()
        assert time.monotonic() - started < 5
        assert not server.running
        server.close()


def test_kill_is_a_crash_the_reader_notices(rtsp_server):
    cap = open_capture(rtsp_server.url)
    read_frames(cap, 2)
    rtsp_server.kill()
    reads_until_failure(cap, timeout=5)
    cap.release()
    rtsp_server.restart()
    assert opens_or_reads(rtsp_server.url)
