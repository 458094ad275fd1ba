"""Status parts for Nodeflux's browser client (spec/ANALYTICS.md, "MJPEG status
parts"): while a stream delivers no frames, a browser script's fetch gets each
placeholder followed, in the same write, by a header-only part; `<img>` requests
and players keep getting a plain MJPEG.

The real route's bytes (under a real uvicorn) are fed to a model of that client
(`nodeflux_client.Tile`) as they came off the socket, then again cut after every
byte and at random: the client must show the state's message, remove the tile
of a stopped stream, and show frames without a stale message once they come.
"""

from __future__ import annotations

import subprocess
import threading

import cv2
import numpy as np
import pytest

from tests.events.conftest import ANALYTIC, stream_make
from viewing.hub import reads_status_parts

from .nodeflux_client import Tile, byte_chunks, client_view, random_chunks
from .support import BodyRecorder, FramingError, MjpegReader, RunnerThread, parts_in, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

SID = "00000000000000b2"
# Request headers as Chromium sends them (Chromium 156, seen on the wire).
FETCH = {
    "Accept": "*/*",
    "Sec-Fetch-Dest": "empty",
    "Sec-Fetch-Mode": "cors",
    "Sec-Fetch-Site": "same-origin",
}
CROSS_ORIGIN_FETCH = {**FETCH, "Sec-Fetch-Site": "cross-site", "Origin": "http://dashboard.example:3000"}
IMG = {
    "Accept": "image/jxl,image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8",
    "Sec-Fetch-Dest": "image",
    "Sec-Fetch-Mode": "no-cors",
}
PLAYER = {"Accept": "*/*", "User-Agent": "Lavf/59.27.100"}  # FFmpeg, OpenCV; VLC and curl alike
INITIALIZING = "Stream is initializing: Waiting for node 0 to start the stream"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (FETCH, True),
        (CROSS_ORIGIN_FETCH, True),
        ({"Accept": "*/*", "Origin": "http://dashboard.example"}, True),  # a browser without Fetch Metadata
        (IMG, False),
        ({"Accept": "image/avif,image/webp,*/*", "Sec-Fetch-Dest": "image"}, False),  # Firefox's <img>
        ({**FETCH, "Accept": "image/jpeg"}, False),  # a script asking for pictures only
        ({"Accept": "text/html,image/avif,*/*;q=0.8", "Sec-Fetch-Dest": "document"}, False),  # a tab
        ({**CROSS_ORIGIN_FETCH, "Sec-Fetch-Dest": "iframe"}, False),
        (PLAYER, False),
        ({}, False),
    ],
)
def test_which_clients_read_status_parts(headers, expected):
    assert reads_status_parts(headers) is expected


def record_ticks(server, path: str, ticks: int, headers=FETCH) -> BodyRecorder:
    """The first `ticks` writes of a stream without frames, as a fetch gets them."""
    recorder = BodyRecorder(server.url(path), headers)
    try:
        assert recorder.status == 200
        recorder.receive_until(
            lambda: len(recorder.writes) >= ticks, timeout=20, what=f"{ticks} status ticks"
        )
    finally:
        recorder.close()
    return recorder


def chunkings(recorder: BodyRecorder) -> dict[str, list[bytes]]:
    body = recorder.body()
    return {
        "as received": recorder.pieces,
        "after every byte": byte_chunks(body),
        **{f"random {seed}": random_chunks(body, seed) for seed in (1, 2, 3)},
    }


@pytest.mark.parametrize("overlay", [False, True])
def test_a_tick_is_the_placeholder_then_a_header_only_part_in_one_write(asgi_server, overlay):
    from tests.events.conftest import pipeline_make

    pipeline_make(stream_make(SID))  # active, no node runs it
    path = f"/mjpeg/0/{SID}" + (f"/{ANALYTIC}" if overlay else "") + "?height=90"
    recorder = record_ticks(asgi_server, path, 3)
    assert recorder.headers["content-type"] == "multipart/x-mixed-replace; boundary=frame"
    for write in recorder.writes[:3]:
        placeholder, status = parts_in(write)  # exactly two parts per write, strictly framed
        assert cv2.imdecode(np.frombuffer(placeholder.body, np.uint8), cv2.IMREAD_COLOR).shape == (90, 160, 3)
        assert placeholder.headers["x-nf-message-data"] == INITIALIZING
        assert placeholder.headers["x-nf-stream-state"] == "INITIALIZING"
        assert ("x-nf-visual-data" in placeholder.headers) is overlay
        assert status.body == b""
        assert status.headers == {
            "content-type": "image/jpeg",
            "content-length": "0",
            "x-nf-message-data": INITIALIZING,
            "x-nf-stream-state": "INITIALIZING",
        }


def set_runtime_state(redis_client, state: str, message: str) -> None:
    from live.keys import stream_stats_key

    redis_client.hset(stream_stats_key(SID), mapping={"state": state, "last_error_msg": message})


@pytest.mark.parametrize(
    ("scenario", "message"),
    [
        ("initializing", INITIALIZING),
        ("reconnecting", "Stream is reconnecting in 1.0s: connection refused"),
        ("error", "Stream failed: no video stream in the source"),
        ("stopped", "Stream is stopped"),
    ],
)
def test_the_client_shows_the_state_or_removes_a_stopped_tile(asgi_server, redis_client, scenario, message):
    stream = stream_make(SID)
    if scenario == "stopped":
        stream.active = False
        stream.save()
    elif scenario == "reconnecting":
        set_runtime_state(redis_client, "RECONNECTING", "Reconnecting in 1.0s: connection refused")
    elif scenario == "error":
        set_runtime_state(redis_client, "ERROR", "no video stream in the source")
    recorder = record_ticks(asgi_server, f"/mjpeg/0/{SID}?height=120", 3)
    assert {part.headers["x-nf-message-data"] for part in parts_in(recorder.body())} == {message}
    for name, chunks in chunkings(recorder).items():
        tile = Tile().feed_all(chunks)
        assert tile.picture_sizes()[:2] == [(213, 120)] * 2, name  # it drew the placeholders
        if scenario == "stopped":
            assert tile.removed, name
        else:
            assert not tile.removed, name
            # The client shows the text up to its first colon (it splits header lines at every colon).
            assert tile.shown() == client_view(message), (name, tile.overlay)


def test_without_status_parts_the_client_shows_nothing(asgi_server):
    """What status parts are for: placeholders alone never leave the client with
    headers at a chunk's end, so it shows no message and keeps a stopped tile."""
    stream_make(SID, active=False)
    recorder = record_ticks(asgi_server, f"/mjpeg/0/{SID}?height=120", 3, headers=IMG)
    assert [len(parts_in(write)) for write in recorder.writes[:3]] == [1, 1, 1]
    tile = Tile().feed_all(recorder.pieces)
    assert len(tile.pictures) >= 2 and tile.overlay is None and not tile.removed


@pytest.mark.parametrize("headers", [IMG, PLAYER], ids=["img", "player"])
def test_img_and_players_get_no_header_only_parts(asgi_server, headers):
    stream_make(SID)
    with MjpegReader(asgi_server.url(f"/mjpeg/0/{SID}?height=60"), headers=headers) as reader:
        # Strict and without status parts allowed: an empty part fails here.
        parts = [reader.read_part() for _ in range(3)]
    assert all(part.headers["x-nf-stream-state"] == "INITIALIZING" for part in parts)
    assert parts[2].received - parts[0].received > 1.0  # two ticks apart: after a status part would be


@pytest.fixture
def file_stream(transactional_db, api, h264_small):
    """A stream of the small H.264 file (320x240, looping) with a TEST-BRIGHT
    pipeline; no runner yet."""
    stream = stream_make(SID, address=str(h264_small), name="Status test")
    response = api.post(f"/pipeline/0/{SID}/{ANALYTIC}", {"threshold": 255})  # no events to store
    assert response.status_code == 200, response.content
    return stream


def live_writes(recorder: BodyRecorder) -> int:
    return sum(b"X-NF-Frame-Ts: " in write for write in recorder.writes)


def test_the_client_through_initializing_running_and_stopped(asgi_server, file_stream):
    """One fetch watches the stream wait for its node, run, and stop: the client
    shows the waiting message, then frames with no message, then removes the tile."""
    tile = Tile()
    url = asgi_server.url(f"/mjpeg/0/{SID}?fps=10&height=120")
    with BodyRecorder(url, FETCH, on_piece=tile.feed) as recorder:
        recorder.receive_until(
            lambda: len(recorder.writes) >= 2 and tile.shown() == "Stream is initializing",
            timeout=20,
            what="two status ticks and the client showing them",
        )
        waiting = len(recorder.body())
        runner = RunnerThread(SID).start()
        try:
            # At a write's end (nothing of the next one read) the client's state is settled.
            recorder.receive_until(
                lambda: live_writes(recorder) >= 10 and recorder.at_write_end(),
                timeout=30,
                what="10 live frames",
            )
            running = len(recorder.body())
            assert tile.overlay is None and not tile.removed, tile.messages[-3:]
            assert tile.picture_sizes()[-1] == (160, 120)  # a live frame, the source's aspect
        finally:
            runner.stop()
        recorder.receive_until(
            lambda: tile.removed and recorder.at_write_end(), timeout=20, what="the client removing the tile"
        )
    body = recorder.body()
    assert b"X-NF-Message-Data: Stream is stopped\r\nX-NF-Stream-State: STOPPED\r\n\r\n\r\n" in body
    # Live frames come without header-only parts; everything is strictly framed.
    parts = parts_in(body)
    assert all(part.body for part in parts if "x-nf-frame-ts" in part.headers)
    # The same bytes cut after every byte, and at random: the same story.
    for name, cut in [("after every byte", byte_chunks), *[(f"random {s}", seed_cut(s)) for s in (1, 2, 3)]]:
        replay = Tile().feed_all(cut(body[:waiting]))
        assert replay.shown() == "Stream is initializing" and not replay.removed, name
        replay.feed_all(cut(body[waiting:running]))
        assert replay.overlay is None and not replay.removed, (name, replay.messages[-3:])
        assert replay.picture_sizes()[-1] == (160, 120), name
        replay.feed_all(cut(body[running:]))
        assert replay.removed, name


def seed_cut(seed: int):
    return lambda data: random_chunks(data, seed)


def colourful(frame: np.ndarray) -> bool:
    """A live frame of the test pattern (saturated colour bars), not a grey placeholder."""
    return cv2.cvtColor(frame, cv2.COLOR_BGR2HSV)[:, :, 1].mean() > 60


class OpenCvReader:
    """cv2.VideoCapture (OpenCV's FFmpeg) reading an MJPEG URL in a thread."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.frames: list[np.ndarray] = []
        self.ended = False
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._read, name="opencv-reader", daemon=True)
        self.thread.start()

    def _read(self) -> None:
        capture = cv2.VideoCapture(self.url, cv2.CAP_FFMPEG)
        try:
            while not self._stop.is_set():
                ok, frame = capture.read()
                if not ok:
                    break
                self.frames.append(frame)
        finally:
            self.ended = True
            capture.release()

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(10)


class FfmpegReader:
    """The ffmpeg command reading an MJPEG URL, sending `headers`; frames as
    32x24 RGB from its output, in a thread."""

    SIZE = 32 * 24 * 3

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        extra = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        command = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-headers", extra, "-i", url]
        command += [
            "-fps_mode",
            "passthrough",
            "-vf",
            "scale=32:24",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-",
        ]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.frames: list[np.ndarray] = []
        self.thread = threading.Thread(target=self._read, name="ffmpeg-reader", daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while True:
            data = self.process.stdout.read(self.SIZE)
            if len(data) < self.SIZE:
                return
            self.frames.append(np.frombuffer(data, np.uint8).reshape(24, 32, 3)[:, :, ::-1].copy())

    def stop(self) -> None:
        self.process.kill()
        self.process.wait(10)
        self.thread.join(10)


def test_players_read_the_frames_that_follow_placeholders(asgi_server, file_stream):
    """OpenCV (whose FFmpeg stops at an empty part, hence none for players) and the
    ffmpeg command, made to send a fetch's headers so it gets the header-only
    parts too, read the placeholders and then the live frames."""
    url = asgi_server.url(f"/mjpeg/0/{SID}?fps=10&height=120")
    opencv = OpenCvReader(url)
    ffmpeg = FfmpegReader(url, {"Sec-Fetch-Dest": "empty"})
    try:
        wait_for(lambda: len(opencv.frames) >= 2 and len(ffmpeg.frames) >= 2, timeout=30, what="placeholders")
        assert not any(colourful(frame) for frame in opencv.frames + ffmpeg.frames)
        with RunnerThread(SID):
            wait_for(
                lambda: sum(map(colourful, opencv.frames)) >= 10 and sum(map(colourful, ffmpeg.frames)) >= 10,
                timeout=45,
                what=lambda: (
                    f"live frames in both (opencv {sum(map(colourful, opencv.frames))} of "
                    f"{len(opencv.frames)}, ended={opencv.ended}; ffmpeg "
                    f"{sum(map(colourful, ffmpeg.frames))} of {len(ffmpeg.frames)})"
                ),
            )
    finally:
        opencv.stop()
        ffmpeg.stop()


def test_a_stray_empty_part_fails_the_strict_reader():
    """The strict reader used above does tell an empty part from a picture."""
    import io

    from .support import read_part_from

    empty = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: 0\r\n\r\n\r\n"
    with pytest.raises(FramingError, match="not a whole JPEG"):
        read_part_from(io.BytesIO(empty), b"frame")
    assert read_part_from(io.BytesIO(empty), b"frame", status_parts=True).body == b""
