"""Small local sources for fault injection, each on a free 127.0.0.1 port.

- `MjpegServer`: HTTP MJPEG (multipart/x-mixed-replace) at a given fps, with
  stall()/resume() (connection kept open, no frames) and disconnect() (drop clients).
- `HtmlServer`: answers an HTML page to every GET (a URL that is not video).
- `refused_port()` / `refused_url()`: a port nothing listens on.

With OpenCV's FFmpeg backend, a stalled MJPEG source makes read() fail after the
capture's CAP_PROP_READ_TIMEOUT_MSEC (default 30 s), and that capture stays failed
after resume(): a reader has to open a new one. disconnect() makes reads fail at once.

Servers are context managers; each client is served by its own thread, every wait
is bounded, and stop() returns only after all handler threads have finished.
"""

from __future__ import annotations

import itertools
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BOUNDARY = "visionaireframe"
_POLL = 0.05  # longest a handler waits before looking at the stop flag again


class _Server(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True  # server_close() joins the handler threads
    allow_reuse_address = True


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    server: _Server

    def log_message(self, format, *args):  # keep test output quiet
        pass


class _LocalServer:
    """A threaded HTTP server on 127.0.0.1:<free port>, started and stopped as a context manager."""

    handler_class: type[_Handler]

    def __init__(self, *, port: int = 0):
        self._port = port
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self.stopping = threading.Event()
        self.requests = 0
        self._lock = threading.Lock()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the server is not running")
        return self._httpd.server_address[1]

    def url_for(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def url(self) -> str:
        return self.url_for("/")

    def _count_request(self) -> None:
        with self._lock:
            self.requests += 1

    def start(self):
        self.stopping.clear()
        httpd = _Server(("127.0.0.1", self._port), self.handler_class)
        httpd.owner = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": _POLL}, name=type(self).__name__, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()  # joins handler threads; they see `stopping` within _POLL
        self._thread.join(timeout=5)
        self._httpd = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class _MjpegHandler(_Handler):
    def do_GET(self):
        owner: MjpegServer = self.server.owner
        owner._count_request()
        self.send_response(200)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        owner._serve(self.connection, self.wfile)


class MjpegServer(_LocalServer):
    """Serves `frames` (JPEG bytes, cycled) as an MJPEG stream at `fps` to each client, on any path."""

    handler_class = _MjpegHandler

    def __init__(self, frames: list[bytes], *, fps: float = 25, port: int = 0):
        super().__init__(port=port)
        if not frames:
            raise ValueError("frames must not be empty")
        self.frames = frames
        self.fps = fps
        self.frames_sent = 0
        self._flowing = threading.Event()
        self._flowing.set()
        self._generation = 0  # bumped by disconnect(); handlers of older generations end
        self._connections: set[socket.socket] = set()
        self._sending = 0  # frames being written right now (under self._lock)
        self._sent = threading.Condition(self._lock)

    @property
    def url(self) -> str:
        return self.url_for("/video.mjpg")

    @property
    def stalled(self) -> bool:
        return not self._flowing.is_set()

    @property
    def clients(self) -> int:
        with self._lock:
            return len(self._connections)

    def stall(self) -> None:
        """Keep every connection open but send no more frames (a frozen camera).
        Returns once no frame is being written: `frames_sent` stays as it is."""
        with self._lock:
            self._flowing.clear()
            self._sent.wait_for(lambda: self._sending == 0, timeout=5)

    def resume(self) -> None:
        self._flowing.set()

    def disconnect(self) -> None:
        """Close every client connection now (the camera drops its streams); new ones are served."""
        with self._lock:
            self._generation += 1
            for conn in list(self._connections):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _serve(self, conn: socket.socket, wfile) -> None:
        with self._lock:
            generation = self._generation
            self._connections.add(conn)
        interval = 1.0 / self.fps
        next_at = time.monotonic()
        try:
            for frame in itertools.cycle(self.frames):
                # Paced by an Event wait: returns early when stop() is called.
                while not self._flowing.is_set():
                    if self.stopping.is_set() or generation != self._generation:
                        return
                    self._flowing.wait(_POLL)
                    next_at = time.monotonic()
                if self.stopping.is_set() or generation != self._generation:
                    return
                with self._lock:
                    if not self._flowing.is_set():
                        continue  # stalled since the check above: this frame is not sent
                    self._sending += 1
                head = (
                    f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(frame)}\r\n\r\n"
                ).encode()
                written = False
                try:
                    wfile.write(head + frame + b"\r\n")
                    wfile.flush()
                    written = True
                finally:
                    with self._lock:
                        self._sending -= 1
                        self.frames_sent += written
                        self._sent.notify_all()
                # Paced against a schedule so the rate stays at `fps` whatever the write took.
                next_at += interval
                if self.stopping.wait(max(0.0, next_at - time.monotonic())):
                    return
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, OSError):
            return  # the client went away
        finally:
            with self._lock:
                self._connections.discard(conn)


HTML_PAGE = b"""<!doctype html>
<html><head><title>Camera admin</title></head>
<body><h1>Camera admin</h1><p>This page is not a video stream.</p></body></html>
"""


class _HtmlHandler(_Handler):
    def do_GET(self):
        self.server.owner._count_request()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(HTML_PAGE)))
        self.end_headers()
        self.wfile.write(HTML_PAGE)

    def do_HEAD(self):
        self.server.owner._count_request()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(HTML_PAGE)))
        self.end_headers()


class HtmlServer(_LocalServer):
    """Answers an HTML page (200, text/html) on every path: a URL that is not video."""

    handler_class = _HtmlHandler

    @property
    def url(self) -> str:
        return self.url_for("/stream.mjpg")  # looks like a video URL, is not one


def refused_port() -> int:
    """A 127.0.0.1 TCP port with nothing listening (bound, then closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def refused_url(scheme: str = "rtsp", path: str = "/test") -> str:
    return f"{scheme}://127.0.0.1:{refused_port()}{path}"
