"""Video capture: one thread per stream decodes frames into a one-slot buffer.

The capture thread never waits for the consumer: when processing is slower
than the source, the unread frame is replaced and counted as dropped (the
Frigate way), so memory stays flat whatever the consumer does. Faults (refused
connection, end of stream, decode errors, a source that stops sending) end the
current connection, put the source in RECONNECTING with a message naming the
cause, and a new connection is tried after a capped exponential backoff, for
as long as the source is wanted. A stall is told by the clock, not by the
native read (see FrameSource).
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import cv2
import numpy as np

from live.addresses import Address, address_parse
from live.states import RUNNING_MESSAGE

logger = logging.getLogger(__name__)

# How long the TCP probe that words an open failure may take.
PROBE_TIMEOUT_S = 3.0
# Declared frame rates above this are clock rates or garbage, not frame rates.
MAX_DECLARED_FPS = 240.0
# Abandoned readers of one source still blocked in FFmpeg before no new
# connection is opened: a decoder that never returns must not pile up threads.
MAX_STUCK_READERS = 2


class CaptureState(StrEnum):
    CONNECTING = "CONNECTING"
    RUNNING = "RUNNING"
    RECONNECTING = "RECONNECTING"
    ENDED = "ENDED"  # a file source that does not loop reached its end
    STOPPED = "STOPPED"


@dataclass(frozen=True)
class CaptureOptions:
    open_timeout_s: float = 10.0
    # No frame for this long on an open source counts as a stall and reconnects.
    stall_timeout_s: float = 10.0
    loop_files: bool = True
    # Files are read at their own frame rate, as a camera would deliver them;
    # benchmarks turn this off to measure raw decode throughput.
    pace_files: bool = True
    # Files hand every frame to the consumer: decoding waits until the last frame
    # was taken instead of replacing it, and frames are stamped with their time in
    # the video (from the moment it opened), so what the analytics measure in
    # time (tracks, dwell, a stopped vehicle) is the footage's time whatever the
    # processing rate. For analysing recorded footage completely; network sources
    # are never held back (a camera does not wait).
    every_file_frame: bool = False
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    rtsp_transport: str = "tcp"
    # Asked before each connection to a network source: why (host, port) may not
    # be reached, or None (live.address_policy.address_refusal in the runtime).
    address_check: Callable[[str, int], str | None] | None = None


@dataclass(frozen=True)
class CapturedFrame:
    image: np.ndarray
    timestamp: float  # unix seconds when it was decoded
    index: int  # frames decoded by this source so far (1-based)


class LatestFrame:
    """A one-slot buffer: `put` replaces, `get` waits for a frame newer than the last taken."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._frame: CapturedFrame | None = None
        self._taken = 0  # index of the last frame handed out

    def put(self, frame: CapturedFrame) -> bool:
        """Store `frame`; True when an unread frame was replaced (a drop)."""
        with self._cond:
            dropped = self._frame is not None and self._frame.index > self._taken
            self._frame = frame
            self._cond.notify_all()
            return dropped

    def get(self, timeout: float) -> CapturedFrame | None:
        with self._cond:
            if not self._cond.wait_for(
                lambda: self._frame is not None and self._frame.index > self._taken, timeout
            ):
                return None
            frame = self._frame
            assert frame is not None
            self._taken = frame.index
            self._cond.notify_all()  # a reader waiting for its frame to be taken
            return frame

    def wait_taken(self, timeout: float) -> bool:
        """Wait until the stored frame was handed out; False on timeout."""
        with self._cond:
            return self._cond.wait_for(
                lambda: self._frame is None or self._frame.index <= self._taken, timeout
            )

    def peek(self) -> CapturedFrame | None:
        with self._cond:
            return self._frame

    def reset(self) -> None:
        with self._cond:
            self._frame, self._taken = None, 0


class RateMeter:
    """Events per second, from the intervals between the recent ticks.

    The rate is measured between ticks, not against the whole window: counting
    "ticks in the window / time since the oldest" reads a steady 2/s as anything
    from 1.3 to 1.9 depending on when it is asked, and a steady 1/s as 0.5 to 1.
    The last two ticks are kept even when older than the window, so a slow rate
    (a pipeline sampling every few seconds) still has an interval to measure.
    When ticks stop, the rate falls as the silence grows, and is 0 once the
    silence is longer than both the window and two intervals.
    """

    def __init__(self, window_s: float = 2.0, maxlen: int = 1024) -> None:
        self.window_s = window_s
        self._times: deque[float] = deque(maxlen=maxlen)
        self._lock = threading.Lock()

    def tick(self, now: float) -> None:
        with self._lock:
            self._times.append(now)

    def reset(self) -> None:
        with self._lock:
            self._times.clear()

    def rate(self, now: float) -> float:
        with self._lock:
            times = self._times
            while len(times) > 2 and now - times[0] > self.window_s:
                times.popleft()
            if len(times) < 2:
                return 0.0
            count, first, last = len(times), times[0], times[-1]
            interval = max((last - first) / (count - 1), 1e-6)
            silent = now - last
            if silent > max(self.window_s, 2 * interval):
                return 0.0
            if silent <= interval:
                return 1.0 / interval
            # Overdue: as if a tick came now, so the rate falls while nothing comes.
            return count / (now - first)


def _seconds(value: float) -> str:
    """Seconds in a message: whole ones, tenths below one."""
    return f"{value:.0f}" if value >= 0.95 else f"{value:.1f}"


@dataclass(eq=False)
class _Connection:
    """One connection attempt, read on its own thread (see FrameSource)."""

    number: int
    started_at: float  # unix seconds
    thread: threading.Thread | None = None
    reading_since: float = 0.0  # opened at (unix seconds); 0 while opening
    last_frame_at: float = 0.0
    delivered: int = 0
    held: bool = False  # waiting for the consumer to take a file's frame (not a stall)
    cause: str | None = None  # why it ended; None: stopped, abandoned or a file's end
    ended: bool = False  # a file that does not loop reached its end
    stale: bool = False  # abandoned: it must not touch the source any more (under the lock)
    done: threading.Event = field(default_factory=threading.Event)
    cancel: threading.Event = field(default_factory=threading.Event)


def probe_failure(source: Address, timeout: float = 3.0) -> str:
    """Why a source could not be opened, in words an operator can act on.

    OpenCV only says "not opened"; a TCP connect to the host and a look at the
    file tell a refused port, an unknown host or a missing file apart from a
    source that answers but is not video.
    """
    if source.kind == "file":
        path = Path(str(source.target))
        if not path.exists():
            return f"file not found: {path}"
        if not os.access(path, os.R_OK):
            return f"file is not readable: {path}"
        return f"file is not a readable video: {path}"
    if source.kind == "device":
        device = source.target
        return f"video device {device} not found" if not Path(device).exists() else f"cannot open {device}"
    try:
        with socket.create_connection((source.host, source.port), timeout=timeout):
            pass
    except socket.gaierror:
        return f"unknown host {source.host}"
    except ConnectionRefusedError:
        return f"connection refused by {source.host}:{source.port}"
    except TimeoutError:
        return f"no answer from {source.host}:{source.port} within {timeout:.0f}s"
    except OSError as exc:
        return f"cannot connect to {source.host}:{source.port}: {exc.strerror or exc}"
    return f"{source.host}:{source.port} answered but sent no readable video"


class _VideoClock:
    """Frame timestamps in video time for a file read frame by frame: the moment
    it opened plus each frame's position, running on across rewinds of a looped
    file. Position from the container where it is known, else counted frames."""

    def __init__(self, opened_at: float, fps: float) -> None:
        self.opened_at = opened_at
        self.period = 1.0 / fps if 0 < fps < 1000 else 1.0 / 25
        self.offset = 0.0  # seconds of video before the current loop
        self.last = -self.period  # the current loop's last position (s)

    def stamp(self, position_ms: float) -> float:
        position = position_ms / 1000 if position_ms and position_ms > 0 else self.last + self.period
        if position <= self.last:  # a container without usable positions
            position = self.last + self.period
        self.last = position
        return self.opened_at + self.offset + position

    def rewound(self) -> None:
        self.offset += self.last + self.period
        self.last = -self.period


class FrameSource:
    """Decodes one stream address into a LatestFrame.

    Two threads: a reader per connection (open, then a blocking native read per
    frame) and a supervisor that owns the state. The supervisor notices a stall
    by the clock, not by the read: a native read can outlast its read timeout
    (FFmpeg may even hand back a damaged frame when it times out), so a source
    that keeps the connection open but sends nothing is RECONNECTING at
    `stall_timeout_s` after its last frame whatever the read does. The stalled
    reader is then abandoned: it may stay blocked a while longer (it is a daemon
    and ends when its read returns), but it can no longer change the source's
    state, figures or buffer. While MAX_STUCK_READERS of them are still blocked,
    no new connection is opened.

    States and figures are read by the stream runner from any thread.
    `reconnects` counts recoveries (frames again after a fault, however many
    attempts it took), `reconnect_attempts` every attempt after the first.
    """

    def __init__(self, address: str, options: CaptureOptions | None = None, *, name: str = "") -> None:
        self.address = address
        self.source = address_parse(address)
        self.options = options or CaptureOptions()
        self.buffer = LatestFrame()
        self.name = name or address
        self._stop = threading.Event()
        self._wake = threading.Event()  # the supervisor looks again: a reader ended, or stop()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # the supervisor against the current reader
        self._meter = RateMeter()
        self._connection: _Connection | None = None
        self._abandoned: list[_Connection] = []  # stalled readers cut off (supervisor only)
        # Figures (read without the lock: each is one attribute assignment).
        self.state = CaptureState.CONNECTING
        self.message = "Connecting to the source"
        self.frames_decoded = 0
        self.frames_dropped = 0
        self.reconnects = 0
        self.reconnect_attempts = 0
        self.width = 0
        self.height = 0
        self.nominal_fps = 0.0  # the rate the source declares, when it can be trusted; 0: unknown
        self.running_since: float | None = None
        self.last_frame_at = 0.0

    # -- control ----------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"capture-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> bool:
        """Ask the source to stop; True when its supervisor ended within `timeout`.
        A reader stuck inside a native read is left to end by itself (a daemon
        that can no longer touch this source)."""
        self._stop.set()
        self._wake.set()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        alive = self._thread.is_alive()
        if alive:
            logger.warning("capture thread of %s did not stop within %.1fs", self.name, timeout)
        self.state = CaptureState.STOPPED
        return not alive

    @property
    def reader_thread(self) -> threading.Thread | None:
        """The thread decoding the current connection (benchmarks time it)."""
        connection = self._connection
        return connection.thread if connection else None

    def fps(self) -> float:
        """Frames per second delivered lately, never above the declared rate:
        right after a connect FFmpeg hands over the frames it buffered while
        probing in one burst, which a meter alone reads as a much higher rate."""
        rate = self._meter.rate(time.time())
        nominal = self.nominal_fps
        return min(rate, nominal) if nominal else rate

    def fps_figure(self) -> int:
        """fps() as the whole number the API reports: never above the declared
        rate either (29.97 fps shows 29, not 30)."""
        rate = round(self.fps())
        nominal = self.nominal_fps
        return min(rate, math.floor(nominal)) if nominal >= 1 else rate

    def read(self, timeout: float) -> CapturedFrame | None:
        return self.buffer.get(timeout)

    # -- supervisor -------------------------------------------------------------
    def _set(self, state: CaptureState, message: str) -> None:
        if state is CaptureState.RUNNING and self.state is not CaptureState.RUNNING:
            self.running_since = time.time()
        elif state is not CaptureState.RUNNING:
            self.running_since = None
        if (state, message) != (self.state, self.message):
            logger.info("source %s: %s (%s)", self.name, state, message)
        self.state, self.message = state, message

    def _run(self) -> None:
        backoff = self.options.backoff_initial_s
        first = True
        while not self._stop.is_set():
            if not first:
                self.reconnect_attempts += 1
            first = False
            stuck = self._stuck_readers()
            refusal = self._address_refusal()
            if refusal:
                cause = refusal
            elif len(stuck) >= MAX_STUCK_READERS:
                # Each would hold a thread and a decoder: wait for one to return.
                cause = f"{len(stuck)} earlier reads of the source have not returned yet"
            else:
                connection = self._connect()
                cause = self._watch(connection)
                if connection.delivered:
                    backoff = self.options.backoff_initial_s  # it worked for a while: retry soon
                if cause is None:  # stopped, or a file that ended without looping
                    if connection.ended:
                        self._set(CaptureState.ENDED, "End of file reached")
                    break
            if self._stop.is_set():
                break
            self._set(CaptureState.RECONNECTING, f"Reconnecting in {backoff:.1f}s: {cause}")
            if self._stop.wait(backoff):
                break
            backoff = min(backoff * 2, self.options.backoff_max_s)
            self._set(CaptureState.RECONNECTING, f"Reconnecting: {cause}")
        if self.state is not CaptureState.ENDED:
            self._set(CaptureState.STOPPED, "Stream is stopped")

    def _address_refusal(self) -> str | None:
        check = self.options.address_check
        if check is None or self.source.kind != "network":
            return None
        refusal = check(self.source.host, self.source.port)
        return f"address refused: {refusal}" if refusal else None

    def _connect(self) -> _Connection:
        number = self._connection.number + 1 if self._connection else 1
        connection = _Connection(number=number, started_at=time.time())
        connection.thread = threading.Thread(
            target=self._read_connection,
            args=(connection,),
            name=f"capture-{self.name}-{number}",
            daemon=True,
        )
        with self._lock:
            self._connection = connection
        self._meter.reset()  # the rate of this connection only
        connection.thread.start()
        return connection

    def _watch(self, connection: _Connection) -> str | None:
        """Wait until the reader ends (its cause), the source stalls (the reader
        is abandoned) or a stop (None)."""
        stall = self.options.stall_timeout_s
        # A native open that outlives its own timeout and the probe that follows it.
        open_limit = self.options.open_timeout_s + PROBE_TIMEOUT_S + stall
        while True:
            self._wake.clear()
            if connection.done.is_set():
                return connection.cause
            if self._stop.is_set():
                self._abandon(connection)
                return None
            now = time.time()
            if connection.held:
                deadline = now + stall  # the consumer is slow, not the source
            elif connection.reading_since:
                since = max(connection.reading_since, connection.last_frame_at)
                deadline = since + stall
                if now >= deadline and self._abandon(connection):
                    silent = _seconds(now - since)
                    if connection.delivered:
                        return f"no frame for {silent}s (stalled source)"
                    return f"no frame for {silent}s after connecting (stalled source)"
            else:
                deadline = connection.started_at + open_limit
                if now >= deadline and self._abandon(connection):
                    return f"no answer within {_seconds(now - connection.started_at)}s while connecting"
            # Woken early by the reader's end or stop(); a frame moves the deadline on.
            self._wake.wait(max(0.01, deadline - now))

    def _abandon(self, connection: _Connection) -> bool:
        """Cut the reader off from the source; False when it ended meanwhile."""
        with self._lock:
            if connection.done.is_set():
                return False
            connection.stale = True
        connection.cancel.set()
        self._abandoned.append(connection)
        return True

    def _stuck_readers(self) -> list[_Connection]:
        """Abandoned readers still inside a native call."""
        self._abandoned = [c for c in self._abandoned if c.thread is not None and c.thread.is_alive()]
        return self._abandoned

    # -- reader -----------------------------------------------------------------
    def _open(self) -> cv2.VideoCapture | None:
        timeout_ms = int(self.options.open_timeout_s * 1000)
        # The supervisor decides a stall at stall_timeout_s; the native read times
        # out later, only to free an abandoned reader (and never to race the supervisor).
        read_ms = int((self.options.stall_timeout_s + max(1.0, self.options.stall_timeout_s / 2)) * 1000)
        # OpenCV passes FFmpeg options only through this variable, read at each
        # open; every stream of a worker uses the same transport setting.
        os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = f"rtsp_transport;{self.options.rtsp_transport}"
        if self.source.kind == "device":
            capture = cv2.VideoCapture(self.source.device_index, cv2.CAP_V4L2)
        else:
            capture = cv2.VideoCapture(
                self.source.target,
                cv2.CAP_FFMPEG,
                [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, timeout_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, read_ms],
            )
        if capture.isOpened():
            return capture
        capture.release()
        return None

    def _declared_fps(self, capture: cv2.VideoCapture) -> float:
        """The frame rate the stream declares, or 0 where it is missing, absurd
        (an RTP clock rate) or a guess: FFmpeg says 25 for any MJPEG over HTTP."""
        fps = capture.get(cv2.CAP_PROP_FPS) or 0.0
        if not 0 < fps <= MAX_DECLARED_FPS:
            return 0.0
        fourcc = int(capture.get(cv2.CAP_PROP_FOURCC) or 0).to_bytes(4, "little").decode("latin-1")
        if self.source.scheme in ("http", "https") and fourcc.upper() == "MJPG":
            return 0.0
        return fps

    def _read_connection(self, connection: _Connection) -> None:
        try:
            capture = self._open()
            if capture is None:
                connection.cause = probe_failure(self.source, PROBE_TIMEOUT_S)
                return
            try:
                declared = self._declared_fps(capture)
                with self._lock:
                    if connection.stale:
                        return
                    connection.reading_since = time.time()
                    self.nominal_fps = declared
                self._wake.set()  # the supervisor's deadline is now the stall limit
                connection.cause = self._read_until_fault(connection, capture)
            finally:
                capture.release()
        except Exception as exc:  # an OpenCV error must not leave the supervisor waiting
            logger.exception("capture of %s failed", self.name)
            connection.cause = f"capture error: {type(exc).__name__}: {exc}"[:300]
        finally:
            connection.done.set()
            self._wake.set()

    def _read_until_fault(self, connection: _Connection, capture: cv2.VideoCapture) -> str | None:
        """Read frames until a fault (returns its cause), or a stop or an
        abandonment (returns None)."""
        is_file = self.source.kind == "file"
        every_frame = is_file and self.options.every_file_frame
        source_fps = capture.get(cv2.CAP_PROP_FPS) or 0.0
        frame_period = (
            1.0 / source_fps if is_file and self.options.pace_files and 0 < source_fps < 1000 else 0.0
        )
        next_due = time.monotonic()
        clock = _VideoClock(time.time(), source_fps) if every_frame else None
        while not connection.cancel.is_set():
            if every_frame and connection.delivered and not self._wait_taken(connection):
                return None
            ok, image = capture.read()
            now = time.time()
            if connection.cancel.is_set():
                return None
            if not ok or image is None:
                if is_file and connection.delivered:
                    if not self.options.loop_files:
                        connection.ended = True
                        return None
                    # Loop: rewind in place, which keeps the decoder and is not a reconnect.
                    if capture.set(cv2.CAP_PROP_POS_FRAMES, 0):
                        if clock:
                            clock.rewound()
                        continue
                    return "end of file (rewind failed)"
                if connection.delivered:
                    silent = now - connection.last_frame_at
                    if silent >= self.options.stall_timeout_s * 0.9:
                        return f"no frame for {_seconds(silent)}s (stalled source)"
                    return "end of stream or decode error"
                if is_file:
                    return f"file is not a readable video: {self.source.target}"
                return probe_failure(self.source, PROBE_TIMEOUT_S)
            stamp = clock.stamp(capture.get(cv2.CAP_PROP_POS_MSEC)) if clock else now
            if not self._deliver(connection, image, now, stamp):
                return None
            if frame_period:
                next_due += frame_period
                delay = next_due - time.monotonic()
                if delay > 0:
                    if connection.cancel.wait(delay):
                        return None
                elif delay < -1.0:
                    next_due = time.monotonic()  # fell behind by a second: do not burst to catch up
        return None

    def _wait_taken(self, connection: _Connection) -> bool:
        """Hold a file's reader until its last frame was taken; False when it was
        cancelled meanwhile. The supervisor does not count the wait as a stall."""
        # No wake-up of the supervisor either way (this runs once per frame): at its
        # next deadline it sees the hold, or the stall clock restarted below.
        connection.held = True
        try:
            while not self.buffer.wait_taken(0.2):
                if connection.cancel.is_set():
                    return False
        finally:
            with self._lock:
                # The stall clock starts again from here: the source is read again.
                connection.reading_since = time.time()
                connection.held = False
        return not connection.cancel.is_set()

    def _deliver(self, connection: _Connection, image: np.ndarray, now: float, stamp: float) -> bool:
        """Hand a decoded frame over; False when the reader was abandoned."""
        with self._lock:
            if connection.stale:
                return False
            connection.delivered += 1
            connection.last_frame_at = now
            self.frames_decoded += 1
            self.last_frame_at = now
            self.height, self.width = image.shape[:2]
            self._meter.tick(now)
            if self.buffer.put(CapturedFrame(image=image, timestamp=stamp, index=self.frames_decoded)):
                self.frames_dropped += 1
            if connection.delivered == 1:
                if self.state is CaptureState.RECONNECTING:
                    self.reconnects += 1  # back after a fault: one recovery, however many attempts
                self._set(CaptureState.RUNNING, RUNNING_MESSAGE)
        return True
