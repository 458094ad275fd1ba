"""Drive the real RTSP server (tests/support/rtsp_server.py) from the tests.

    with RtspServer() as server:              # live 320x240 25 fps test pattern
        cap = cv2.VideoCapture(server.url, cv2.CAP_FFMPEG)
        server.stop()                          # fault: the camera goes away
        server.restart()                       # ... and comes back on the same port
        with server.paused(): ...              # fault: the camera hangs, connections open

OpenCV reads it over TCP when OPENCV_FFMPEG_CAPTURE_OPTIONS=rtsp_transport;tcp is
set in the reading process's environment before the capture is opened (see
`RTSP_TCP_CAPTURE_OPTIONS` and the `opencv_rtsp_tcp` fixture).

The server runs under Debian's /usr/bin/python3 (it has `gi`); `.ci/system-deps`
installs it and the GStreamer packages.

Measured on the 2-core test machine (OpenCV 4.14 headless, its bundled FFmpeg):
- start() until READY: about 0.05-0.07 s; stop(): about 0.02 s; restart() on the same port: 0.05 s.
- cv2.VideoCapture(url, cv2.CAP_FFMPEG) returns after about 1.2 s on the live pattern
  (0.9 s for a file): FFmpeg's stream probing reads ~20 frames to estimate the frame
  rate. The first read() is then immediate. Adding `|analyzeduration;100000|probesize;32`
  to OPENCV_FFMPEG_CAPTURE_OPTIONS cuts the open to about 0.15 s (fps and size still right).
- After stop() or kill(), reads return the frames already buffered (up to ~1 s), then
  fail at once (the TCP connection closes).
- A served file that ends sends nothing more but keeps the session open: reads fail only
  at the reader's read timeout (CAP_PROP_READ_TIMEOUT_MSEC; OpenCV's default is 30 s).
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import tempfile
import time
from pathlib import Path

SYSTEM_PYTHON = "/usr/bin/python3"
SCRIPT = Path(__file__).with_name("rtsp_server.py")
RTSP_TCP_CAPTURE_OPTIONS = "rtsp_transport;tcp"

# Variables that would point Debian's interpreter at the project's virtualenv.
_FOREIGN_ENV = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")


class RtspServerError(RuntimeError):
    pass


class RtspServer:
    """One gst-rtsp-server process serving rtsp://127.0.0.1:<port><mount>.

    `file` serves an H.264 MP4 (played once per client, in real time); otherwise a
    live x264 test pattern of `width`x`height` at `fps`. `port=0` lets the first
    start pick a free port; restart() keeps it.
    """

    def __init__(
        self,
        *,
        file: str | os.PathLike | None = None,
        pattern: str = "ball",
        width: int = 320,
        height: int = 240,
        fps: int = 25,
        port: int = 0,
        mount: str = "/test",
        shared: bool = False,
        ready_timeout: float = 20.0,
    ):
        self.file = Path(file) if file else None
        self.pattern = pattern
        self.width = width
        self.height = height
        self.fps = fps
        self.port = port
        self.mount = mount
        self.shared = shared
        self.ready_timeout = ready_timeout
        self.starts = 0
        self._proc: subprocess.Popen | None = None
        self._log = tempfile.TemporaryFile(prefix="rtsp-server-")

    @property
    def url(self) -> str:
        if not self.port:
            raise RtspServerError("the server has no port until it has started")
        return f"rtsp://127.0.0.1:{self.port}{self.mount}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def _command(self) -> list[str]:
        cmd = [SYSTEM_PYTHON, str(SCRIPT), "--port", str(self.port), "--mount", self.mount]
        if self.file:
            cmd += ["--file", str(self.file)]
        else:
            cmd += ["--pattern", self.pattern, "--width", str(self.width), "--height", str(self.height)]
            cmd += ["--fps", str(self.fps)]
        if self.shared:
            cmd.append("--shared")
        return cmd

    def log_tail(self, size: int = 4000) -> str:
        self._log.seek(0, os.SEEK_END)
        end = self._log.tell()
        self._log.seek(max(0, end - size))
        return self._log.read().decode(errors="replace")

    def start(self) -> RtspServer:
        """Start the server and return once it prints READY (or raise within ready_timeout)."""
        if self.running:
            raise RtspServerError("the RTSP server is already running")
        if not os.path.exists(SYSTEM_PYTHON):
            raise RtspServerError(f"{SYSTEM_PYTHON} is missing: run `bash .ci/system-deps`")
        env = {k: v for k, v in os.environ.items() if k not in _FOREIGN_ENV}
        deadline = time.monotonic() + self.ready_timeout
        # A restart can race the old socket's release for a moment; try again until the deadline.
        while True:
            proc = subprocess.Popen(
                self._command(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=self._log,
                env=env,
                start_new_session=True,  # a Ctrl-C in the terminal does not reach it first
            )
            port = self._await_ready(proc, deadline)
            if port is not None:
                break
            if time.monotonic() >= deadline:
                raise RtspServerError(
                    f"the RTSP server did not become ready within {self.ready_timeout}s: {self.log_tail()}"
                )
            time.sleep(0.05)  # retry pacing after a failed bind, not synchronisation
        self._proc = proc
        self.port = port
        self.starts += 1
        return self

    def _await_ready(self, proc: subprocess.Popen, deadline: float) -> int | None:
        """The port from the READY line, or None after the process failed (it is reaped)."""
        buffer = b""
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            while b"\n" not in buffer:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._terminate(proc)
                    return None
                if not sel.select(timeout=remaining):
                    continue
                chunk = os.read(proc.stdout.fileno(), 4096)
                if not chunk:  # exited before READY (e.g. the port is still taken)
                    proc.wait(timeout=5)
                    proc.stdout.close()
                    return None
                buffer += chunk
        line = buffer.split(b"\n", 1)[0].decode()
        if not line.startswith("READY "):
            self._terminate(proc)
            raise RtspServerError(f"unexpected output from the RTSP server: {line!r}")
        return int(line.split()[1])

    @staticmethod
    def _terminate(proc: subprocess.Popen, timeout: float = 5.0) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout)
        if proc.stdout:
            proc.stdout.close()

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after `timeout`; returns once the process is gone. Idempotent."""
        if self._proc is not None:
            self._terminate(self._proc, timeout)
            self._proc = None

    def kill(self) -> None:
        """SIGKILL at once (a crash rather than a clean shutdown)."""
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait(timeout=5)
            self._proc.stdout.close()
            self._proc = None

    @contextlib.contextmanager
    def paused(self):
        """Freeze the server (SIGSTOP) for the `with` block, then let it go on
        (SIGCONT): its connections stay open but nothing is sent, as from a camera
        that hangs; new connections are accepted by the kernel but never answered."""
        if not self.running:
            raise RtspServerError("the RTSP server is not running")
        self._proc.send_signal(signal.SIGSTOP)
        try:
            yield self
        finally:
            if self.running:
                self._proc.send_signal(signal.SIGCONT)

    def restart(self) -> RtspServer:
        """Stop (if running) and start again on the same port: the camera came back."""
        self.stop()
        return self.start()

    def close(self) -> None:
        self.stop()
        self._log.close()

    def __enter__(self) -> RtspServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<RtspServer {self.url if self.port else '(no port)'} {state}>"
