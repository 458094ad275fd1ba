"""Real pieces for the live viewing tests: the ASGI application served by a real
uvicorn in a thread of the test process (so a test can look at the live hub
itself), a stream runner in a thread, a strict MJPEG (multipart) reader, and a
recorder of a response body as it came off the socket.

    with AsgiServer() as server:                     # http://127.0.0.1:<port>
        with RunnerThread(stream_id):                # the runner publishes while watched
            with MjpegReader(server.url(f"/mjpeg/0/{sid}?fps=5")) as reader:
                part = reader.read_part()           # headers, JPEG, receive time
    with BodyRecorder(server.url(path), {"Sec-Fetch-Dest": "empty"}) as body:
        body.receive_until(lambda: len(body.writes) >= 3, timeout=20, what="3 writes")

Rows the server and the runner read must be committed: use `transactional_db`.
"""

from __future__ import annotations

import asyncio
import http.client
import io
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import urlsplit

import cv2
import numpy as np
import uvicorn
from asgiref.sync import async_to_sync
from django.db import connections
from django.test import AsyncClient

from viewing import hub as viewing_hub


def first_part(path: str, **extra):
    """GET `path` through Django's async test client: (response, its first chunk
    or None when it does not stream). For MJPEG the first chunk is one whole part."""

    async def run():
        response = await AsyncClient().get(path, **extra)
        if not response.streaming:
            return response, None
        chunks = response.streaming_content
        try:
            async with asyncio.timeout(10):
                chunk = await anext(chunks)
        finally:
            await chunks.aclose()
        return response, chunk

    return async_to_sync(run)()


def wait_for(predicate: Callable[[], object], *, timeout: float = 10.0, what="condition"):
    """Poll `predicate` until it returns something truthy; fail after `timeout`.
    `what` may be a callable, called only on failure (to describe the state then)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            described = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout}s waiting for {described}")
        time.sleep(0.02)


class AsgiServer:
    """visionaire_site.asgi:application under uvicorn (as `visionaire.py up` runs
    it: default event loop and HTTP implementation, no lifespan) in a thread."""

    def __init__(self, port: int = 0) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(("127.0.0.1", port))
        self.port = self.socket.getsockname()[1]
        config = uvicorn.Config(
            "visionaire_site.asgi:application",
            lifespan="off",
            access_log=False,
            log_level="warning",
            timeout_graceful_shutdown=2,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._serve, name="asgi-server", daemon=True)

    def _serve(self) -> None:
        try:
            self.server.run(sockets=[self.socket])
        finally:
            connections.close_all()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> AsgiServer:
        self.thread.start()
        wait_for(lambda: self.server.started, what="uvicorn to start")
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)
        self.socket.close()
        assert not self.thread.is_alive(), "uvicorn did not stop within 15 s"

    def restart_after_stop(self) -> None:
        """Serve again on the same port after `stop()`."""
        self.__init__(self.port)
        self.start()

    def hub(self) -> viewing_hub.LiveHub:
        """The live hub of the server's event loop (made by the first viewing request)."""
        ident = self.thread.ident
        return wait_for(
            lambda: next((hub for hub in viewing_hub.hubs() if hub.thread_id == ident), None),
            what="the server's live hub",
        )

    def call(self, coroutine_function, timeout: float = 10.0):
        """Run `coroutine_function()` on the server's event loop; its result."""
        hub = self.hub()
        return asyncio.run_coroutine_threadsafe(coroutine_function(), hub.loop).result(timeout)

    def hub_stats(self) -> dict[str, int]:
        hub = self.hub()

        async def read():
            return hub.stats()

        return self.call(read)

    def loop_tasks(self) -> list[str]:
        """Names of the tasks alive on the server's loop, apart from the server's own."""

        async def names():
            current = asyncio.current_task()
            return sorted(task.get_name() for task in asyncio.all_tasks() if task is not current)

        return self.call(names)

    def __enter__(self) -> AsgiServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class RunnerThread:
    """A StreamRunner (what a node's worker runs for a stream) in a thread."""

    def __init__(self, stream_id: str, node_num: int = 0) -> None:
        from workers.runner import StreamRunner

        self.runner = StreamRunner(stream_id, node_num=node_num, worker_name="viewing-test")
        self.thread = threading.Thread(target=self._run, name=f"runner-{stream_id}", daemon=True)

    def _run(self) -> None:
        try:
            self.runner.run()
        finally:
            connections.close_all()

    def start(self) -> RunnerThread:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.runner.request_stop()
        assert self.runner.finished.wait(15), "the runner did not stop within 15 s"
        self.thread.join(5)

    def __enter__(self) -> RunnerThread:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@dataclass
class MjpegPart:
    headers: dict[str, str]  # lower-case names
    body: bytes
    received: float  # unix seconds when its last byte arrived

    def image(self) -> np.ndarray:
        image = cv2.imdecode(np.frombuffer(self.body, np.uint8), cv2.IMREAD_COLOR)
        assert image is not None, "the part's body is not a decodable JPEG"
        return image


class FramingError(AssertionError):
    pass


def read_part_from(stream: BinaryIO, boundary: bytes, *, status_parts: bool = False) -> MjpegPart:
    """The next part of a multipart/x-mixed-replace body, strictly: it must start
    with the boundary line, carry Content-Type: image/jpeg and Content-Length, and
    its body must be exactly Content-Length bytes followed by CRLF, a whole JPEG;
    with `status_parts`, a header-only part (Content-Length: 0) too."""
    line = stream.readline()
    while line == b"\r\n":  # the CRLF that may end the previous part
        line = stream.readline()
    if line != b"--" + boundary + b"\r\n":
        raise FramingError(f"expected the boundary line, got {line[:80]!r}")
    headers: dict[str, str] = {}
    while True:
        line = stream.readline()
        if not line:
            raise FramingError("the connection ended inside a part's headers")
        if line == b"\r\n":
            break
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep or not line.endswith(b"\r\n"):
            raise FramingError(f"malformed header line {line[:80]!r}")
        headers[name.strip().lower()] = value.strip()
    if headers.get("content-type") != "image/jpeg":
        raise FramingError(f"part Content-Type is {headers.get('content-type')!r}")
    length = int(headers["content-length"])
    body = stream.read(length)
    if len(body) != length:
        raise FramingError(f"the part ended after {len(body)} of {length} bytes")
    if stream.read(2) != b"\r\n":
        raise FramingError("the part's body is longer than its Content-Length")
    whole_jpeg = body.startswith(b"\xff\xd8") and body.endswith(b"\xff\xd9")
    if not whole_jpeg and not (status_parts and length == 0):
        raise FramingError("the part's body is not a whole JPEG")
    return MjpegPart(headers, body, time.time())


def parts_in(body: bytes, *, boundary: bytes = b"frame") -> list[MjpegPart]:
    """All parts of a recorded body (status parts allowed), strictly framed."""
    stream = io.BytesIO(body)
    parts = []
    while stream.tell() < len(body):
        parts.append(read_part_from(stream, boundary, status_parts=True))
    return parts


class MjpegReader:
    """A strict reader of a multipart/x-mixed-replace response (`read_part_from`),
    as a client sending `headers` gets it; `status_parts` allows header-only parts."""

    def __init__(
        self, url: str, *, timeout: float = 10.0, headers: dict[str, str] | None = None, status_parts=False
    ) -> None:
        parts = urlsplit(url)
        self.status_parts = status_parts
        self.connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        self.connection.request("GET", path, headers=headers or {})
        self.response = self.connection.getresponse()
        self.status = self.response.status
        self.content_type = self.response.getheader("Content-Type", "")
        match = re.fullmatch(r"multipart/x-mixed-replace;\s*boundary=(\S+)", self.content_type)
        self.boundary = match.group(1).encode() if match else None

    def read_part(self) -> MjpegPart:
        if self.boundary is None:
            raise FramingError(f"not an MJPEG response: {self.status} {self.content_type}")
        return read_part_from(self.response, self.boundary, status_parts=self.status_parts)

    def read_until(self, predicate: Callable[[MjpegPart], bool], *, timeout: float, what: str) -> MjpegPart:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            part = self.read_part()
            if predicate(part):
                return part
        raise AssertionError(f"no part within {timeout}s: {what}")

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> MjpegReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class BodyRecorder:
    """GET `url` with `headers` over a plain socket and keep the response body as
    it came: `writes`, one per HTTP chunk (the server sends each write of a
    streaming response as one), and `pieces`, the body bytes each recv() brought
    (what a browser's fetch reader hands over, at most one recv at a time).
    Bytes come only when asked for: `receive()`, `receive_until()`."""

    def __init__(
        self,
        url: str,
        headers: dict[str, str],
        *,
        timeout: float = 10.0,
        on_piece: Callable[[bytes], object] | None = None,
    ) -> None:
        self.on_piece = on_piece  # called with each piece as it comes
        parts = urlsplit(url)
        self.socket = socket.create_connection((parts.hostname, parts.port), timeout=timeout)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        lines = [f"GET {path} HTTP/1.1", f"Host: {parts.netloc}"] + [f"{k}: {v}" for k, v in headers.items()]
        self.socket.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        self._raw = b""
        while b"\r\n\r\n" not in self._raw:
            self._recv()
        head, self._raw = self._raw.split(b"\r\n\r\n", 1)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        self.status = int(status_line.split()[1])
        self.headers = {n.strip().lower(): v.strip() for n, _, v in (h.partition(":") for h in header_lines)}
        assert self.headers.get("transfer-encoding") == "chunked", self.headers
        self.writes: list[bytes] = []
        self.pieces: list[bytes] = []
        self._write = bytearray()
        self._left = -1  # bytes left in the current HTTP chunk; -1: a size line comes
        self._decode()

    def _recv(self) -> None:
        data = self.socket.recv(1 << 16)
        if not data:
            raise AssertionError("the server closed the connection")
        self._raw += data

    def _decode(self) -> None:
        piece = bytearray()
        while True:
            if self._left == -1:  # a size line
                line, sep, rest = self._raw.partition(b"\r\n")
                if not sep:
                    break
                self._left, self._raw = int(line, 16), rest
                assert self._left > 0, "the response ended"
            elif self._left == 0:  # the CRLF that ends a chunk
                if len(self._raw) < 2:
                    break
                assert self._raw.startswith(b"\r\n"), "an HTTP chunk longer than its size"
                self._raw = self._raw[2:]
                self.writes.append(bytes(self._write))
                self._write.clear()
                self._left = -1
            elif self._raw:
                take = self._raw[: self._left]
                self._raw = self._raw[len(take) :]
                piece += take
                self._write += take
                self._left -= len(take)
            else:
                break
        if piece:
            self.pieces.append(bytes(piece))
            if self.on_piece is not None:
                self.on_piece(self.pieces[-1])

    def at_write_end(self) -> bool:
        """Whether all that came so far are whole writes (nothing of the next one)."""
        return self._left == -1 and not self._raw and not self._write

    def receive(self) -> None:
        """What the next recv() brings."""
        self._recv()
        self._decode()

    def receive_until(self, predicate: Callable[[], object], *, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            self.receive()

    def body(self) -> bytes:
        return b"".join(self.writes)

    def close(self) -> None:
        self.socket.close()

    def __enter__(self) -> BodyRecorder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def is_live(part: MjpegPart) -> bool:
    return "x-nf-frame-ts" in part.headers
