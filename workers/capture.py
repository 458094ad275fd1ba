"""Video capture: one thread per stream decodes frames into a one-slot buffer.

The capture thread never waits for the consumer: when processing is slower
than the source, the unread frame is replaced and counted as dropped (the
Frigate way), so memory stays flat whatever the consumer does. Faults (refused
connection, end of stream, decode errors, a source that stops sending) end the
current connection, put the source in RECONNECTING with a message naming the
cause, and a new connection is tried after a capped exponential backoff, for
as long as the source is wanted.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from urllib.parse import unquote, urlsplit

import cv2
import numpy as np

logger = logging.getLogger(__name__)


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
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    rtsp_transport: str = "tcp"
    # Asked before each connection to a network source: why (host, port) may not
    # be reached, or None (streams.address_policy.address_refusal in the runtime).
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
            return frame

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


@dataclass(frozen=True)
class Source:
    """A parsed stream address: what to hand OpenCV, and how to describe faults."""

    kind: str  # "network", "file" or "device"
    target: str | int  # URL, file path or V4L2 device index
    host: str = ""
    port: int = 0


def parse_source(address: str) -> Source:
    if address.startswith("/dev/video"):
        return Source(kind="device", target=int(address[len("/dev/video") :]))
    if address.startswith("v4l2://"):
        return Source(kind="device", target=int(urlsplit(address).path[len("/dev/video") :]))
    if address.startswith("file://"):
        return Source(kind="file", target=unquote(urlsplit(address).path))
    if address.startswith("/"):
        return Source(kind="file", target=address)
    parts = urlsplit(address)
    default_port = {"rtsp": 554, "rtsps": 322, "http": 80, "https": 443}.get(parts.scheme, 0)
    return Source(kind="network", target=address, host=parts.hostname or "", port=parts.port or default_port)


def probe_failure(source: Source, timeout: float = 3.0) -> str:
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
        device = f"/dev/video{source.target}"
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


class FrameSource:
    """Decodes one stream address on its own thread into a LatestFrame.

    States and figures are read by the stream runner from any thread.
    """

    def __init__(self, address: str, options: CaptureOptions | None = None, *, name: str = "") -> None:
        self.address = address
        self.source = parse_source(address)
        self.options = options or CaptureOptions()
        self.buffer = LatestFrame()
        self.name = name or address
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._meter = RateMeter()
        # Figures (read without the lock: each is one attribute assignment).
        self.state = CaptureState.CONNECTING
        self.message = "Connecting to the source"
        self.frames_decoded = 0
        self.frames_dropped = 0
        self.reconnects = 0
        self.width = 0
        self.height = 0
        self.running_since: float | None = None
        self.last_frame_at = 0.0

    # -- control ----------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"capture-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> bool:
        """Ask the thread to end; True when it did within `timeout`. A thread
        stuck inside a native read is left to end by itself (it is a daemon)."""
        self._stop.set()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        alive = self._thread.is_alive()
        if alive:
            logger.warning("capture thread of %s did not stop within %.1fs", self.name, timeout)
        self.state = CaptureState.STOPPED
        return not alive

    def fps(self) -> float:
        return self._meter.rate(time.time())

    def read(self, timeout: float) -> CapturedFrame | None:
        return self.buffer.get(timeout)

    # -- thread -----------------------------------------------------------------
    def _set(self, state: CaptureState, message: str) -> None:
        if state is CaptureState.RUNNING and self.state is not CaptureState.RUNNING:
            self.running_since = time.time()
        elif state is not CaptureState.RUNNING:
            self.running_since = None
        if (state, message) != (self.state, self.message):
            logger.info("source %s: %s (%s)", self.name, state, message)
        self.state, self.message = state, message

    def _address_refusal(self) -> str | None:
        check = self.options.address_check
        if check is None or self.source.kind != "network":
            return None
        refusal = check(self.source.host, self.source.port)
        return f"address refused: {refusal}" if refusal else None

    def _open(self) -> cv2.VideoCapture | None:
        timeout_ms = int(self.options.open_timeout_s * 1000)
        read_ms = int(self.options.stall_timeout_s * 1000)
        # OpenCV passes FFmpeg options only through this variable, read at each
        # open; every stream of a worker uses the same transport setting.
        os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = f"rtsp_transport;{self.options.rtsp_transport}"
        if self.source.kind == "device":
            capture = cv2.VideoCapture(int(self.source.target), cv2.CAP_V4L2)
        else:
            capture = cv2.VideoCapture(
                str(self.source.target),
                cv2.CAP_FFMPEG,
                [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, timeout_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, read_ms],
            )
        if capture.isOpened():
            return capture
        capture.release()
        return None

    def _run(self) -> None:
        backoff = self.options.backoff_initial_s
        first = True
        while not self._stop.is_set():
            if not first:
                self.reconnects += 1
            first = False
            refusal = self._address_refusal()
            capture = None if refusal else self._open()
            if capture is None:
                cause = refusal or probe_failure(self.source)
            else:
                cause, delivered = self._read_until_fault(capture)
                capture.release()
                if delivered:
                    backoff = self.options.backoff_initial_s  # it worked for a while: retry soon
                if cause is None:  # stopped, or a file that ended without looping
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

    def _read_until_fault(self, capture: cv2.VideoCapture) -> tuple[str | None, bool]:
        """Read frames until a fault (returns its cause) or a stop (returns None)."""
        is_file = self.source.kind == "file"
        source_fps = capture.get(cv2.CAP_PROP_FPS) or 0.0
        frame_period = (
            1.0 / source_fps if is_file and self.options.pace_files and 0 < source_fps < 1000 else 0.0
        )
        next_due = time.monotonic()
        delivered = 0
        while not self._stop.is_set():
            ok, image = capture.read()
            now = time.time()
            if not ok or image is None:
                if is_file and delivered:
                    if not self.options.loop_files:
                        self._set(CaptureState.ENDED, "End of file reached")
                        return None, True
                    # Loop: rewind in place, which keeps the decoder and is not a reconnect.
                    if capture.set(cv2.CAP_PROP_POS_FRAMES, 0):
                        continue
                    return "end of file (rewind failed)", True
                if delivered:
                    silent = now - self.last_frame_at
                    if silent >= self.options.stall_timeout_s * 0.9:
                        return f"no frame for {silent:.0f}s (stalled source)", True
                    return "end of stream or decode error", True
                return probe_failure(
                    self.source
                ) if not is_file else f"file is not a readable video: {self.source.target}", False
            delivered += 1
            self.frames_decoded += 1
            self.last_frame_at = now
            self.height, self.width = image.shape[:2]
            self._meter.tick(now)
            if self.buffer.put(CapturedFrame(image=image, timestamp=now, index=self.frames_decoded)):
                self.frames_dropped += 1
            if delivered == 1:
                self._set(CaptureState.RUNNING, "Stream is running..")
            if frame_period:
                next_due += frame_period
                delay = next_due - time.monotonic()
                if delay > 0:
                    if self._stop.wait(delay):
                        break
                elif delay < -1.0:
                    next_due = time.monotonic()  # fell behind by a second: do not burst to catch up
        return None, delivered > 0
