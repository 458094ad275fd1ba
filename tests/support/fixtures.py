"""Fixtures for real media and sources, registered in tests/conftest.py through
`pytest_plugins = ["tests.support.fixtures"]`.

Media (session-scoped, made once by ffmpeg): `media` (a MediaCache for any variant),
`h264_720p`, `h264_small`, `mjpeg_jpegs`, `not_a_video_file`, `text_as_video_file`.
Sources (one per test, stopped afterwards): `rtsp_server` (live pattern),
`rtsp_file_server`, `mjpeg_server`, `html_server`, `refused_port`.
`opencv_rtsp_tcp` sets OPENCV_FFMPEG_CAPTURE_OPTIONS for captures opened in this process.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.media import MediaCache
from tests.support.rtsp import RTSP_TCP_CAPTURE_OPTIONS, RtspServer
from tests.support.sources import HtmlServer, MjpegServer
from tests.support.sources import refused_port as _refused_port


@pytest.fixture(scope="session")
def media(tmp_path_factory) -> MediaCache:
    """Makes (once per session) and caches test media: media.h264(width=..., seconds=...), etc."""
    return MediaCache(tmp_path_factory.mktemp("media"))


@pytest.fixture(scope="session")
def h264_720p(media) -> Path:
    """1280x720 H.264 MP4, 25 fps, 4 s (100 frames), a keyframe every second."""
    return media.h264()


@pytest.fixture(scope="session")
def h264_small(media) -> Path:
    """320x240 H.264 MP4, 25 fps, 4 s (100 frames): fast to decode and stream."""
    return media.small_h264()


@pytest.fixture(scope="session")
def mjpeg_jpegs(media) -> list[bytes]:
    """25 distinct 320x240 JPEG frames."""
    return media.mjpeg_frames()


@pytest.fixture(scope="session")
def not_a_video_file(media) -> Path:
    """Random bytes in a file named .mp4."""
    return media.not_a_video()


@pytest.fixture(scope="session")
def text_as_video_file(media) -> Path:
    """A text file named .mp4."""
    return media.not_a_video(text=True)


@pytest.fixture
def opencv_rtsp_tcp(monkeypatch) -> str:
    """OpenCV's FFmpeg backend reads RTSP over TCP in this process (read when a capture opens)."""
    monkeypatch.setenv("OPENCV_FFMPEG_CAPTURE_OPTIONS", RTSP_TCP_CAPTURE_OPTIONS)
    return RTSP_TCP_CAPTURE_OPTIONS


@pytest.fixture
def rtsp_server():
    """A started RTSP server with a live 320x240 25 fps pattern; stop()/restart() for faults."""
    with RtspServer() as server:
        yield server


@pytest.fixture
def rtsp_file_server(h264_small):
    """A started RTSP server playing `h264_small` once per client (4 s, then no more data)."""
    with RtspServer(file=h264_small) as server:
        yield server


@pytest.fixture
def mjpeg_server(mjpeg_jpegs):
    """A started HTTP MJPEG server at 25 fps (url ends in /video.mjpg); stall()/resume()/disconnect()."""
    with MjpegServer(mjpeg_jpegs, fps=25) as server:
        yield server


@pytest.fixture
def html_server():
    """A started HTTP server that answers an HTML page on every path."""
    with HtmlServer() as server:
        yield server


@pytest.fixture
def refused_port() -> int:
    """A 127.0.0.1 port with nothing listening."""
    return _refused_port()
