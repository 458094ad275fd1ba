"""The capture thread (workers.capture.FrameSource) on real sources: H.264 files,
the GStreamer RTSP server, an MJPEG server that stalls, an HTML page, a refused
port, a missing host and files that are not video.

Each source is started with short timeouts; `RecordingSource` keeps every state
change the source makes (with the count of reconnection attempts at that
moment), so a test sees short-lived states such as one backoff message without
racing for them.
"""

from __future__ import annotations

import gc
import re
import shutil
import threading
import time
import weakref
from dataclasses import replace

import numpy as np
import pytest

from workers.capture import CapturedFrame, CaptureOptions, CaptureState, FrameSource, LatestFrame, RateMeter

from .conftest import wait_for

RUNNING = (CaptureState.RUNNING, "Stream is running..")
STOPPED = (CaptureState.STOPPED, "Stream is stopped")
OPTIONS = CaptureOptions(open_timeout_s=2.0, stall_timeout_s=1.0, backoff_initial_s=0.1, backoff_max_s=0.4)


class RecordingSource(FrameSource):
    """A FrameSource that records each state it sets: (time, state, message,
    reconnection attempts so far), and the unix time of each in `wall_times`."""

    def __init__(self, *args, **kwargs) -> None:
        self.changes: list[tuple[float, CaptureState, str, int]] = []
        self.wall_times: list[float] = []
        super().__init__(*args, **kwargs)

    def _set(self, state: CaptureState, message: str) -> None:
        self.changes.append((time.monotonic(), state, message, self.reconnect_attempts))
        self.wall_times.append(time.time())
        super()._set(state, message)

    def states(self) -> list[tuple[CaptureState, str]]:
        return [(state, message) for _, state, message, _ in list(self.changes)]


@pytest.fixture
def sources():
    """Start a RecordingSource with OPTIONS (overridable); every one is stopped after the test."""
    started: list[RecordingSource] = []

    def start(address, **options) -> RecordingSource:
        source = RecordingSource(str(address), replace(OPTIONS, **options))
        started.append(source)
        source.start()
        return source

    yield start
    for source in started:
        assert source.stop(timeout=5), f"capture thread of {source.address} did not stop"


@pytest.fixture(scope="module")
def one_second_file(media):
    """320x240 H.264, 25 fps, 1 s (25 frames): loops quickly."""
    return media.small_h264(seconds=1)


def running(source: FrameSource, timeout: float = 10.0) -> None:
    wait_for(lambda: source.state is CaptureState.RUNNING, timeout=timeout, what=f"{source.address} RUNNING")


def reconnecting(cause: str, backoff: float = 0.1) -> list[tuple[CaptureState, str]]:
    """The two states of one failed attempt: the wait before the next, then the next attempt."""
    return [
        (CaptureState.RECONNECTING, f"Reconnecting in {backoff:.1f}s: {cause}"),
        (CaptureState.RECONNECTING, f"Reconnecting: {cause}"),
    ]


# --- files --------------------------------------------------------------------------


def test_a_file_is_read_at_its_frame_rate_and_loops(sources, one_second_file):
    started = time.monotonic()
    source = sources(one_second_file)
    running(source)
    assert (source.width, source.height) == (320, 240)
    # 60 frames of a 25-frame file: it looped twice without a reconnect.
    wait_for(lambda: source.frames_decoded >= 60, timeout=10, what="60 frames")
    elapsed = time.monotonic() - started
    assert 59 / 25 * 0.9 <= elapsed <= 59 / 25 + 2.0, elapsed  # paced at 25 fps, not as fast as decoding
    # Measured: 25 (a loaded machine may read outside the range for a moment).
    wait_for(lambda: 22 <= source.fps() <= 28, timeout=5, what="25 fps measured")
    assert source.state is CaptureState.RUNNING
    assert (source.reconnects, source.reconnect_attempts) == (0, 0)
    assert source.states() == [RUNNING]
    assert source.nominal_fps == 25.0  # the container's rate


def test_a_file_that_does_not_loop_ends(sources, one_second_file):
    started = time.monotonic()
    source = sources(one_second_file, loop_files=False)
    wait_for(lambda: source.state is CaptureState.ENDED, timeout=10, what="the end of the file")
    assert time.monotonic() - started >= 0.9  # 25 frames at 25 fps
    wait_for(lambda: not source._thread.is_alive(), timeout=5, what="the capture thread to end by itself")
    assert source.states() == [RUNNING, (CaptureState.ENDED, "End of file reached")]
    assert (source.frames_decoded, source.reconnects) == (25, 0)
    assert source.message == "End of file reached"


def test_without_pacing_a_file_decodes_faster_than_real_time(sources, h264_small):
    started = time.monotonic()
    source = sources(h264_small, pace_files=False, loop_files=False)
    wait_for(lambda: source.state is CaptureState.ENDED, timeout=10, what="the end of the file")
    # 100 frames (4 s of video at 25 fps), decoded faster than they play.
    assert time.monotonic() - started < 4.0
    assert (source.frames_decoded, source.width, source.height) == (100, 320, 240)
    assert source.states() == [RUNNING, (CaptureState.ENDED, "End of file reached")]


def test_every_file_frame_waits_for_a_slow_consumer_and_keeps_video_time(sources, one_second_file):
    # A consumer far slower than the file, with one frame that takes longer than
    # the stall limit (1 s): nothing dropped, no stall, and every frame stamped
    # with its place in the video, across two loops of the 25-frame file.
    source = sources(one_second_file, every_file_frame=True, pace_files=False)
    frames: list[CapturedFrame] = []
    while len(frames) < 60:
        frame = source.read(timeout=10)
        assert frame is not None, f"no frame {len(frames) + 1} within 10 s"
        frames.append(frame)
        time.sleep(1.5 if len(frames) == 10 else 0.01)  # the analytics' work, not synchronisation
    assert [f.index for f in frames] == list(range(1, 61))
    assert source.frames_dropped == 0 and source.reconnect_attempts == 0
    assert source.states() == [RUNNING]
    steps = np.diff([f.timestamp for f in frames])
    assert np.allclose(steps, 0.04, atol=1e-3), steps  # 25 fps video time, whatever the wall clock did
    assert source.frames_decoded <= 61  # decoding waited: at most the next frame is ready


def test_every_file_frame_ends_a_file_that_does_not_loop(sources, h264_small):
    source = sources(h264_small, every_file_frame=True, pace_files=False, loop_files=False)
    taken, deadline = 0, time.monotonic() + 60
    while not (source.state is CaptureState.ENDED and source.buffer.wait_taken(0)):
        assert time.monotonic() < deadline, f"{taken} frames read, the file did not end"
        if source.read(timeout=0.2) is not None:
            taken += 1
    assert taken == source.frames_decoded == 100 and source.frames_dropped == 0


def test_a_missing_file(sources, tmp_path):
    missing = tmp_path / "gone.mp4"
    source = sources(missing)
    wait_for(lambda: source.reconnect_attempts >= 2, what="two retries")
    cause = f"file not found: {missing}"
    assert source.states()[:4] == reconnecting(cause) + reconnecting(cause, 0.2)
    assert source.frames_decoded == 0


@pytest.mark.parametrize("fixture", ["not_a_video_file", "text_as_video_file"])
def test_a_file_that_is_not_video(sources, request, fixture):
    path = request.getfixturevalue(fixture)
    source = sources(path)
    wait_for(lambda: source.reconnect_attempts >= 2, what="two retries")
    cause = f"file is not a readable video: {path}"
    assert source.states()[:4] == reconnecting(cause) + reconnecting(cause, 0.2)
    assert source.state is CaptureState.RECONNECTING


def test_a_file_that_appears_is_picked_up(sources, tmp_path, one_second_file):
    # Retries go on for as long as the source is wanted: a file copied in later is read.
    path = tmp_path / "later.mp4"
    source = sources(path)
    wait_for(lambda: source.reconnect_attempts >= 1, what="a retry")
    shutil.copy(one_second_file, path)
    running(source)
    assert source.states()[:2] == reconnecting(f"file not found: {path}")
    assert source.states()[-1] == RUNNING
    assert source.reconnects == 1  # it came back once, after however many attempts


# --- the one-slot buffer ------------------------------------------------------------


def test_a_consumer_that_does_not_read_makes_drops_not_a_queue(sources, one_second_file):
    source = sources(one_second_file, pace_files=False)
    seen: list[weakref.ref] = []
    # Sample the buffer while the thread decodes as fast as it can.
    deadline = time.monotonic() + 10
    while source.frames_decoded < 300:
        frame = source.buffer.peek()
        if frame is not None and (not seen or seen[-1]() is not frame):
            seen.append(weakref.ref(frame))
        del frame
        assert time.monotonic() < deadline, "300 frames were not decoded within 10 s"
        time.sleep(0.002)
    assert source.stop(timeout=5)
    seen.append(weakref.ref(source.buffer.peek()))
    # Nothing was read: every frame but the last one was replaced unread.
    assert source.frames_dropped == source.frames_decoded - 1
    assert len(seen) >= 5
    # Memory stays flat: of all the frames seen in the buffer, only the one still there is alive.
    gc.collect()
    alive = [ref() for ref in seen if ref() is not None]
    assert alive == [source.buffer.peek()]
    # The consumer gets the newest frame, once.
    latest = source.read(timeout=1.0)
    assert latest is not None and latest.index == source.frames_decoded
    assert latest.image.shape == (240, 320, 3)
    assert source.read(timeout=0.05) is None


def test_a_consumer_that_keeps_up_drops_nothing(sources, media):
    # 10 fps leaves the reader 100 ms per frame, plenty even on a loaded machine.
    source = sources(media.h264(width=320, height=240, fps=10, seconds=1))
    indexes = []
    deadline = time.monotonic() + 10
    while len(indexes) < 15:
        frame = source.read(timeout=1.0)
        assert frame is not None, "no frame within 1 s from a 10 fps file"
        indexes.append(frame.index)
        assert time.monotonic() < deadline
    assert indexes == list(range(1, 16))  # every frame, in order, across the loop
    assert source.frames_dropped == 0


def frame(index: int) -> CapturedFrame:
    return CapturedFrame(image=np.zeros((2, 2, 3), np.uint8), timestamp=float(index), index=index)


def test_latest_frame_replaces_and_counts_unread_frames():
    buffer = LatestFrame()
    assert buffer.get(timeout=0.01) is None
    assert buffer.put(frame(1)) is False  # nothing was there
    assert buffer.get(timeout=0.01).index == 1
    assert buffer.get(timeout=0.01) is None  # nothing newer than the one taken
    assert buffer.put(frame(2)) is False  # the previous one was read
    assert buffer.put(frame(3)) is True  # 2 was never read: a drop
    assert buffer.peek().index == 3  # peek does not take it
    assert buffer.get(timeout=0.01).index == 3
    assert buffer.peek().index == 3
    buffer.reset()
    assert buffer.peek() is None
    assert buffer.put(frame(1)) is False  # a new source counts from 1 again
    assert buffer.get(timeout=0.01).index == 1


def test_latest_frame_get_wakes_up_on_put():
    buffer = LatestFrame()
    putter = threading.Timer(0.05, lambda: buffer.put(frame(1)))
    started = time.monotonic()
    putter.start()
    got = buffer.get(timeout=5.0)
    putter.join()
    assert got is not None and got.index == 1
    assert time.monotonic() - started < 2.0  # woken by the put, not by the timeout


def test_rate_meter():
    meter = RateMeter(window_s=2.0)
    assert meter.rate(100.0) == 0.0
    meter.tick(100.0)
    assert meter.rate(100.0) == 0.0  # one tick is no rate yet
    for i in range(1, 26):
        meter.tick(100.0 + i * 0.04)  # 25 per second for 1 s
    assert meter.rate(101.0) == pytest.approx(25.0)
    assert meter.rate(101.03) == pytest.approx(25.0)  # whenever it is asked
    # Silence: the rate falls, then is 0 once longer than the window.
    assert 0 < meter.rate(102.0) < meter.rate(101.5) < 25.0
    assert meter.rate(103.5) == 0.0


@pytest.mark.parametrize("interval", [0.2, 0.5, 1.0, 5.0])
def test_rate_meter_reads_a_steady_slow_rate_at_any_moment(interval):
    meter = RateMeter(window_s=2.0)
    for i in range(20):
        meter.tick(1000.0 + i * interval)
    last = 1000.0 + 19 * interval
    for phase in (0.0, 0.25, 0.5, 0.75, 0.99):
        assert meter.rate(last + phase * interval) == pytest.approx(1 / interval)
    assert meter.rate(last + 2 * interval + 2.0) == 0.0


# --- network sources ----------------------------------------------------------------


def test_a_refused_port_backs_off_to_the_cap(sources, refused_port):
    source = sources(f"rtsp://127.0.0.1:{refused_port}/test")
    wait_for(lambda: source.reconnect_attempts >= 5, timeout=10, what="five retries")
    cause = f"connection refused by 127.0.0.1:{refused_port}"
    # Backoff 0.1 → 0.2 → 0.4, then capped at 0.4.
    assert source.states()[:10] == (
        reconnecting(cause, 0.1)
        + reconnecting(cause, 0.2)
        + reconnecting(cause, 0.4)
        + reconnecting(cause, 0.4)
        + reconnecting(cause, 0.4)
    )
    times = [at for at, _, message, _ in source.changes[:10]]
    waits = [after - before for before, after in zip(times[0::2], times[1::2], strict=True)]
    for waited, backoff in zip(waits, [0.1, 0.2, 0.4, 0.4, 0.4], strict=True):
        assert backoff * 0.9 <= waited <= backoff + 0.5, (waits, backoff)
    # Each attempt after the first counts as a reconnection attempt; none came back.
    assert [attempts for _, _, _, attempts in source.changes[:10]] == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert (source.state, source.frames_decoded, source.fps()) == (CaptureState.RECONNECTING, 0, 0.0)
    assert source.reconnects == 0


def test_an_unknown_host(sources):
    source = sources("http://camera.invalid/video.mjpg")
    # Instant where DNS answers NXDOMAIN for .invalid; generous for a slow resolver.
    wait_for(lambda: source.reconnect_attempts >= 1, timeout=30, what="a retry")
    assert source.states()[:2] == reconnecting("unknown host camera.invalid")


def test_a_url_that_is_not_video(sources, html_server):
    source = sources(html_server.url)
    wait_for(lambda: source.reconnect_attempts >= 1, what="a retry")
    assert source.states()[:2] == reconnecting(
        f"127.0.0.1:{html_server.port} answered but sent no readable video"
    )
    assert html_server.requests >= 1  # FFmpeg really asked it


def test_rtsp_runs_reconnects_while_the_server_is_down_and_recovers(sources, rtsp_server):
    source = sources(rtsp_server.url)
    running(source)
    assert (source.width, source.height) == (320, 240)
    wait_for(lambda: source.frames_decoded >= 40, what="40 frames")
    assert source.states() == [RUNNING]

    rtsp_server.stop()
    refused = f"connection refused by 127.0.0.1:{rtsp_server.port}"
    wait_for(lambda: len(source.states()) >= 5, what="the refused reconnection")
    assert source.state is CaptureState.RECONNECTING
    # The read fails as the connection closes; the next attempt finds the port closed.
    assert source.states()[1:5] == reconnecting("end of stream or decode error", 0.1) + reconnecting(
        refused, 0.2
    )
    attempts_while_down = source.reconnect_attempts
    assert attempts_while_down >= 1 and source.reconnects == 0

    rtsp_server.start()  # same port
    decoded = source.frames_decoded
    running(source)
    wait_for(lambda: source.frames_decoded >= decoded + 10, what="frames after the restart")
    assert source.reconnect_attempts > attempts_while_down
    assert source.reconnects == 1  # one outage, one recovery
    assert source.states()[-1] == RUNNING
    assert (source.width, source.height) == (320, 240)


def test_a_stalled_mjpeg_source_reconnects_and_recovers(sources, mjpeg_server):
    source = sources(mjpeg_server.url, open_timeout_s=1.0)
    running(source)
    wait_for(lambda: source.frames_decoded >= 10, what="10 frames")

    mjpeg_server.stall()
    wait_for(lambda: len(source.states()) >= 3, timeout=5, what="the stall to be noticed")
    assert source.states()[:3] == [RUNNING] + reconnecting("no frame for 1s (stalled source)")
    assert time.time() - source.last_frame_at >= 0.9

    mjpeg_server.resume()
    wait_for(lambda: len(source.states()) > 3 and source.state is CaptureState.RUNNING, what="RUNNING again")
    assert source.reconnects == 1
    assert source.states()[-1] == RUNNING
    # FFmpeg declares 25 fps for any MJPEG over HTTP: a guess, not used as a cap.
    assert source.nominal_fps == 0.0


# --- stopping -----------------------------------------------------------------------


def stops_in_time(source: FrameSource, timeout: float) -> float:
    started = time.monotonic()
    assert source.stop(timeout=timeout) is True
    elapsed = time.monotonic() - started
    assert not source._thread.is_alive()
    assert (source.state, source.message) == STOPPED
    return elapsed


def test_stop_while_running(sources, one_second_file):
    source = sources(one_second_file)
    running(source)
    assert stops_in_time(source, timeout=2.0) < 1.0
    assert source.states()[-1] == STOPPED


def test_stop_during_a_long_backoff(sources, refused_port):
    source = sources(f"rtsp://127.0.0.1:{refused_port}/test", backoff_initial_s=30.0, backoff_max_s=30.0)
    wait_for(lambda: source.state is CaptureState.RECONNECTING, what="the first backoff")
    assert stops_in_time(source, timeout=2.0) < 1.0  # the backoff wait is interrupted


def test_stop_while_a_read_blocks_on_a_stalled_source(sources, mjpeg_server):
    source = sources(mjpeg_server.url, stall_timeout_s=1.0)
    running(source)
    mjpeg_server.stall()
    wait_for(lambda: time.time() - source.last_frame_at > 0.2, what="the stall to begin")
    # The native read returns at its read timeout (1 s), then the thread ends.
    assert stops_in_time(source, timeout=3.0) < 2.0


def test_stop_before_start():
    source = FrameSource("rtsp://127.0.0.1:9/test", OPTIONS)
    assert source.stop(timeout=0.1) is True


# --- addresses ----------------------------------------------------------------------


def test_a_missing_video_device(sources):
    source = sources("/dev/video97")
    wait_for(lambda: source.reconnect_attempts >= 1, what="a retry")
    assert source.states()[:2] == reconnecting("video device /dev/video97 not found")


# --- stalls the native read does not report --------------------------------------------


def test_a_paused_rtsp_server_is_a_stall_at_the_stall_limit(sources, rtsp_server):
    # A frozen camera: the RTSP connection stays open, nothing comes. FFmpeg's
    # read does not fail at the stall limit (it may even hand back a damaged
    # frame when its timeout fires), so the stall is told by the clock.
    stall = 2.0
    source = sources(rtsp_server.url, stall_timeout_s=stall, open_timeout_s=2.0)
    running(source)
    wait_for(lambda: source.frames_decoded >= 30, what="30 frames")

    with rtsp_server.paused():
        wait_for(
            lambda: source.state is CaptureState.RECONNECTING, timeout=stall + 10, what="the stall noticed"
        )
        last_frame_at, decoded = source.last_frame_at, source.frames_decoded
        index = [state for state, _ in source.states()].index(CaptureState.RECONNECTING)
        noticed_after = source.wall_times[index] - last_frame_at
        assert stall <= noticed_after <= stall + 2.0, noticed_after
        message = source.states()[index][1]
        said = re.fullmatch(r"Reconnecting in 0\.1s: no frame for (\d+)s \(stalled source\)", message)
        assert said and abs(int(said[1]) - noticed_after) <= 0.6, (message, noticed_after)
        # Paused past the native read timeout: the abandoned reader's read returns
        # meanwhile, and nothing it read reaches the source.
        wait_for(
            lambda: time.time() - last_frame_at > 2 * stall + 1 and source.reconnect_attempts >= 2,
            timeout=30,
            what="the pause to outlast the native read timeout",
        )
        assert (source.frames_decoded, source.last_frame_at) == (decoded, last_frame_at)
        assert source.state is CaptureState.RECONNECTING and source.fps() == 0.0

    resumed = time.monotonic()
    wait_for(lambda: source.frames_decoded > decoded + 10, timeout=15, what="frames again")
    assert time.monotonic() - resumed < 10
    assert source.state is CaptureState.RUNNING
    assert source.reconnects == 1  # one outage, however many attempts
    assert source.reconnect_attempts >= 2


class FakeCapture:
    """Stands in for cv2.VideoCapture: `frames` reads of a uniform image of
    `value`, then reads that block until `release_read` is set (a hung camera),
    after which they return one more frame of value 255."""

    def __init__(self, value: int, frames: int) -> None:
        self.value, self.frames = value, frames
        self.release_read = threading.Event()
        self.reads = 0
        self.released = threading.Event()

    def read(self):
        self.reads += 1
        if self.reads <= self.frames:
            time.sleep(0.02)  # a 50 fps camera
            return True, np.full((4, 4, 3), self.value, np.uint8)
        self.release_read.wait(30)
        return True, np.full((4, 4, 3), 255, np.uint8)

    def get(self, prop):
        return 0.0

    def set(self, prop, value):
        return False

    def release(self):
        self.released.set()


class RecordingBuffer(LatestFrame):
    def __init__(self) -> None:
        super().__init__()
        self.values: list[int] = []

    def put(self, frame: CapturedFrame) -> bool:
        self.values.append(int(frame.image[0, 0, 0]))
        return super().put(frame)


def test_an_abandoned_reader_never_touches_the_source(monkeypatch):
    hung = FakeCapture(value=1, frames=5)
    healthy = FakeCapture(value=2, frames=10_000)
    captures = iter([hung, healthy])
    monkeypatch.setattr(FrameSource, "_open", lambda self: next(captures))
    source = RecordingSource("rtsp://camera.test/hangs", replace(OPTIONS, stall_timeout_s=0.5), name="hangs")
    source.buffer = buffer = RecordingBuffer()
    source.start()
    try:
        wait_for(lambda: healthy.reads >= 20, what="the second connection's frames")
        assert (source.reconnects, source.reconnect_attempts) == (1, 1)
        assert source.states()[0] == RUNNING and source.states()[-1] == RUNNING
        assert re.fullmatch(
            r"Reconnecting in 0\.1s: no frame for 0\.[5-9]s \(stalled source\)", source.states()[1][1]
        ), source.states()
        [hung_reader] = [thread for thread in threading.enumerate() if thread.name == "capture-hangs-1"]
        decoded = source.frames_decoded
        hung.release_read.set()  # the hung read returns a frame, long after it was abandoned
        hung_reader.join(5)
        assert not hung_reader.is_alive() and hung.released.is_set()  # it released its capture
        wait_for(lambda: source.frames_decoded >= decoded + 5, what="frames flowing on")
    finally:
        assert source.stop(timeout=5)
        healthy.release_read.set()
    assert 255 not in buffer.values
    assert buffer.values[:5] == [1] * 5 and set(buffer.values[5:]) == {2}
    assert source.frames_decoded == len(buffer.values)


def test_readers_stuck_in_the_decoder_do_not_pile_up(monkeypatch):
    # A decoder that never returns from its read: each stall leaves a thread
    # behind. Two at most per source; then it waits for one to return.
    hung = [FakeCapture(value=1, frames=2), FakeCapture(value=2, frames=2)]
    healthy = FakeCapture(value=3, frames=10_000)
    opened: list[FakeCapture] = []

    def open_next(self):
        opened.append(([*hung, healthy])[len(opened)])
        return opened[-1]

    monkeypatch.setattr(FrameSource, "_open", open_next)
    source = RecordingSource("rtsp://camera.test/hangs", replace(OPTIONS, stall_timeout_s=0.3), name="stuck")
    source.start()
    try:
        blocked = "Reconnecting: 2 earlier reads of the source have not returned yet"
        wait_for(
            lambda: (CaptureState.RECONNECTING, blocked) in source.states(), what="the third open held back"
        )
        attempts = source.reconnect_attempts
        wait_for(lambda: source.reconnect_attempts >= attempts + 2, what="two more rounds")
        assert opened == hung  # no third decoder while both are stuck

        hung[0].release_read.set()  # one returns (its frame is dropped): a connection may open again
        wait_for(lambda: healthy.reads >= 5, what="the healthy connection")
        # Two outages came back: the second hung camera's frames, then the healthy one's.
        assert source.state is CaptureState.RUNNING and source.reconnects == 2
        assert opened == [*hung, healthy]
    finally:
        assert source.stop(timeout=5)
        for capture in [*hung, healthy]:
            capture.release_read.set()


# --- the reported frame rate --------------------------------------------------------------


def test_the_rate_never_exceeds_the_declared_one_after_a_connect_burst(sources, rtsp_server):
    # FFmpeg hands over the ~20 frames it read while probing in one burst right
    # after the connect; a meter alone reads that as far more than 25 fps.
    source = sources(rtsp_server.url)
    running(source)
    rates, raw = [], []
    end = time.monotonic() + 3
    while time.monotonic() < end:
        rates.append(source.fps())
        raw.append(source._meter.rate(time.time()))
        time.sleep(0.01)  # sampling
    assert source.nominal_fps == 25.0
    assert max(rates) <= 25.0, max(rates)
    assert max(raw) > 25.0  # the burst happened: without the cap the rate would read high
    wait_for(lambda: 22 <= source.fps() <= 25 and source.fps_figure() <= 25, what="about 25 fps")


def test_the_reported_figure_never_rounds_above_the_declared_rate():
    source = FrameSource("rtsp://camera.test/ntsc")
    now = time.time()
    for i in range(50):
        source._meter.tick(now - 1 + i * 0.02)  # delivered at 50 per second
    assert source.fps() == pytest.approx(50.0, rel=0.05) and source.fps_figure() in (49, 50, 51)
    source.nominal_fps = 29.97  # declared by the stream
    assert source.fps() == 29.97
    assert source.fps_figure() == 29  # 30 would be more than the source sends
