"""Live viewing in an API process: frames from the runners, fanned out to browsers.

One `LiveHub` per event loop (the ASGI server's) holds:

- a `StreamFeed` per watched stream: one Redis pub/sub subscription to the frames
  its runner publishes (live.frames), shared by every viewer of the stream,
  and a keeper task that keeps the stream's watch key alive at the highest rate
  asked for here and reads the stream's live state for placeholders;
- a `Variant` per (stream, overlay analytic, height, quality, fps): one task that
  resizes, draws the overlay and encodes each frame once, and keeps only the
  newest part; every client of the variant sends that same part.

Nothing here queues per client: a client that is slow to read simply gets the
newest part when it is ready again (it skips frames) and never holds up others.
Clients are counted: the last client of a variant stops it after a short grace,
the last variant of a stream ends its subscription and its watch key.
CPU work (decode, resize, draw, encode) runs in worker threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import threading
import time
from collections.abc import AsyncIterator, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import redis
import redis.asyncio as aioredis
from django.conf import settings

from core.errors import ApiError
from live.frames import WATCH_REFRESH_SECONDS, WATCH_SCRIPT, WATCH_TTL_MS, RateGate, decode_live_message
from live.keys import live_channel, watch_key
from live.redis import LiveStateUnavailable
from live.states import RUNNING_MESSAGE, StreamState
from streams.models import Stream
from streams.selectors import stream_stats_get

from . import render

logger = logging.getLogger(__name__)
# Longest wait for a Redis connection to close when a feed or the hub lets go.
CLOSE_TIMEOUT_SECONDS = 3.0

PLACEHOLDER_INTERVAL_SECONDS = 1.0


class ViewingBusy(ApiError):
    """This process serves as many viewers or variants as it is configured for."""

    status = 503


@dataclass(frozen=True)
class VariantKey:
    stream_id: str
    analytic_id: str | None  # overlay of this analytic, or a plain picture
    height: int
    jpeg_quality: int
    fps: int  # 0 = every frame the stream publishes


@dataclass(frozen=True)
class Part:
    """One picture of a variant, ready to send."""

    seq: int
    jpeg: bytes
    wire: bytes  # the multipart part (boundary, headers, JPEG)
    message: str  # X-NF-Message-Data
    state: str  # the stream's state; RUNNING for live frames
    placeholder: bool
    frame_ts: float | None = None  # capture time of a live frame (unix seconds)
    # A placeholder's header-only part (Content-Length: 0), sent right after `wire`
    # to clients that read status parts (see `reads_status_parts`); empty otherwise.
    status: bytes = b""


@dataclass
class SourceFrame:
    """A frame as the runner published it, decoded at most once per scale."""

    seq: int
    size: tuple[int, int]  # width, height
    ts: float  # capture time, unix seconds
    overlays: dict[str, Any]  # by analytic: {"ts", "items"}
    jpeg: bytes
    received: float  # monotonic
    decoded: dict[int, asyncio.Future] = field(default_factory=dict)


def source_frame(seq: int, payload: bytes) -> SourceFrame:
    """A published frame from its wire form; ValueError when it is not one."""
    try:
        header, jpeg = decode_live_message(payload)
        size = (int(header["width"]), int(header["height"]))
        ts = float(header.get("ts") or 0.0)
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"bad header: {exc!r}") from None
    if size[0] <= 0 or size[1] <= 0 or not jpeg:
        raise ValueError(f"no picture ({size[0]}x{size[1]}, {len(jpeg)} bytes)")
    overlays = header.get("overlays")
    return SourceFrame(seq, size, ts, overlays if isinstance(overlays, dict) else {}, jpeg, time.monotonic())


def _ms(unix_seconds: float) -> str:
    return str(round(unix_seconds * 1000))


def placeholder_status(state: str, message: str) -> tuple[str, str]:
    """(state, X-NF-Message-Data) for a stream that delivers no frames."""
    message = " ".join(message.split())
    if state == StreamState.RUNNING:
        # Running by its last figures, yet no frame arrives (a runner cut off from Redis).
        return "WAITING", "Stream is waiting for frames"
    if message.lower().startswith("stream is"):
        return state, message
    if state == "ERROR":
        return state, f"Stream failed: {message}" if message else "Stream failed"
    if message.lower().startswith(state.lower()):  # "Reconnecting in 1.0s: refused"
        return state, f"Stream is {state.lower()}{message[len(state) :]}"
    return state, f"Stream is {state.lower()}: {message}" if message else f"Stream is {state.lower()}"


class Variant:
    """One way of showing a stream; encodes each frame once for all its clients."""

    def __init__(self, feed: StreamFeed, key: VariantKey) -> None:
        self.feed = feed
        self.key = key
        self.clients = 0
        self.latest: Part | None = None
        self.parts_made = 0
        self._changed = asyncio.Event()
        self._gate = RateGate(key.fps)
        self._last_problem = ""
        self._retire_handle: asyncio.TimerHandle | None = None
        self.task: asyncio.Task | None = None

    # -- clients ------------------------------------------------------------------
    async def next_part(self, after: int) -> Part:
        """The newest part with seq > `after`, waiting for one if needed."""
        while True:
            changed = self._changed
            part = self.latest
            if part is not None and part.seq > after:
                return part
            await changed.wait()

    def _publish(self, part: Part) -> None:
        self.latest = part
        self.parts_made += 1
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    # -- the encoder task -------------------------------------------------------------
    async def run(self) -> None:
        feed = self.feed
        await feed.ready.wait()
        seen = 0
        next_placeholder = 0.0
        while True:
            now = time.monotonic()
            frame = feed.frame
            if frame is not None and frame.seq > seen:
                seen = frame.seq
                if self._gate.ready(now):
                    await self._guarded(self._render_frame(frame))
                continue
            if feed.silent(now):
                if now >= next_placeholder:
                    await self._guarded(self._render_placeholder())
                    next_placeholder = time.monotonic() + PLACEHOLDER_INTERVAL_SECONDS
                wait = next_placeholder - time.monotonic()
            else:
                wait = feed.time_to_silence(now)
            await feed.wait_frame(after=seen, timeout=max(0.01, min(wait, PLACEHOLDER_INTERVAL_SECONDS)))

    async def _guarded(self, work: Coroutine) -> None:
        """Run one picture's work: a failure costs that picture, not the variant
        (its viewers would wait forever); each new kind of failure is logged once."""
        try:
            await work
        except Exception as exc:  # any bug in making one picture
            problem = f"{type(exc).__name__}: {exc}"
            if problem != self._last_problem:
                self._last_problem = problem
                logger.exception("stream %s: picture not made (%s)", self.key.stream_id, problem)

    def _overlay_of(self, frame: SourceFrame) -> dict[str, Any]:
        overlay = frame.overlays.get(self.key.analytic_id) if self.key.analytic_id else None
        return overlay if isinstance(overlay, dict) else {}

    async def _render_frame(self, frame: SourceFrame) -> None:
        size = render.target_size(*frame.size, self.key.height)
        image = await self.feed.image(frame, render.decode_reduction(frame.size[1], self.key.height))
        if image is None:
            return  # not a decodable JPEG: the next frame will do
        overlay = self._overlay_of(frame)
        rendered = await asyncio.to_thread(
            render.render_frame,
            image,
            size=size,
            source_size=frame.size,
            quality=self.key.jpeg_quality,
            overlay=render.overlay_shapes(overlay.get("items")) if self.key.analytic_id else None,
        )
        headers = [
            ("X-NF-Message-Data", RUNNING_MESSAGE),
            ("X-NF-Stream-State", StreamState.RUNNING.value),
            ("X-NF-Frame-Ts", _ms(frame.ts)),
        ]
        if rendered.svg is not None:
            headers.append(("X-NF-Visual-Data", render.svg_header(rendered.svg)))
            if isinstance(overlay.get("ts"), int | float):
                headers.append(("X-NF-Visual-Data-Ts", _ms(overlay["ts"])))
            additional = render.additional_data_header(overlay.get("data"))
            if additional is not None:
                headers.append(("X-NF-Additional-Data", additional))
        self._publish(
            Part(
                seq=self.parts_made + 1,
                jpeg=rendered.jpeg,
                wire=render.multipart_part(rendered.jpeg, headers),
                message=RUNNING_MESSAGE,
                state=StreamState.RUNNING.value,
                placeholder=False,
                frame_ts=frame.ts,
            )
        )

    async def _render_placeholder(self) -> None:
        state, text = placeholder_status(*self.feed.state)
        text = render.header_text(text)
        size = render.target_size(*self.feed.known_size, self.key.height)
        jpeg = await asyncio.to_thread(
            render.render_placeholder, size=size, state=state, message=text, quality=self.key.jpeg_quality
        )
        status = [("X-NF-Message-Data", text), ("X-NF-Stream-State", render.header_text(state, 40))]
        headers = list(status)
        if self.key.analytic_id is not None:
            headers.append(("X-NF-Visual-Data", render.svg_header(render.overlay_svg([], (1.0, 1.0), size))))
        self._publish(
            Part(
                seq=self.parts_made + 1,
                jpeg=jpeg,
                wire=render.multipart_part(jpeg, headers),
                message=text,
                state=state,
                placeholder=True,
                status=render.multipart_part(b"", status),
            )
        )


class StreamFeed:
    """The frames of one stream as its runner publishes them, for all its variants."""

    def __init__(self, hub: LiveHub, stream: Stream) -> None:
        self.hub = hub
        self.stream = stream
        self.stream_id = stream.stream_id
        self.variants: dict[VariantKey, Variant] = {}
        self.frame: SourceFrame | None = None
        self.frames_received = 0
        self.started = time.monotonic()
        self.state: tuple[str, str] = (StreamState.INITIALIZING.value, "Waiting for the stream's first frame")
        self.known_size: tuple[int, int] = (0, 0)
        self.subscribed = False
        self.ready = asyncio.Event()  # the live state was read once
        self._frame_changed = asyncio.Event()
        self._watch_changed = asyncio.Event()
        self.tasks: list[asyncio.Task] = []

    def start(self) -> None:
        self.tasks = [
            self.hub.spawn(self._read(), f"live-read-{self.stream_id}"),
            self.hub.spawn(self._keep(), f"live-keep-{self.stream_id}"),
        ]

    def stop(self) -> None:
        for task in self.tasks:
            task.cancel()

    # -- for variants -----------------------------------------------------------------
    def silent(self, now: float) -> bool:
        """Whether the stream delivers no frames: none for the stale time, or
        none yet while its state says it is not running."""
        last = self.frame.received if self.frame is not None else self.started
        if now - last >= settings.VIEWING_STALE_SECONDS:
            return True
        return self.frame is None and self.state[0] != StreamState.RUNNING

    def time_to_silence(self, now: float) -> float:
        last = self.frame.received if self.frame is not None else self.started
        return last + settings.VIEWING_STALE_SECONDS - now

    async def wait_frame(self, *, after: int, timeout: float) -> None:
        changed = self._frame_changed
        if self.frame is not None and self.frame.seq > after:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await changed.wait()

    async def image(self, frame: SourceFrame, reduction: int) -> np.ndarray | None:
        """`frame` decoded at 1/`reduction` scale; decoded once for all variants."""
        future = frame.decoded.get(reduction)
        if future is None:
            future = asyncio.ensure_future(asyncio.to_thread(render.decode, frame.jpeg, reduction))
            frame.decoded[reduction] = future
        # Shielded: a variant stopped mid-decode must not cancel it for the others.
        return await asyncio.shield(future)

    def watch_fps(self) -> int:
        rates = [variant.key.fps for variant in self.variants.values()]
        return 0 if not rates or 0 in rates else max(rates)

    def watch_changed(self) -> None:
        self._watch_changed.set()

    # -- tasks ----------------------------------------------------------------------
    def _on_message(self, payload: bytes) -> None:
        try:
            frame = source_frame(self.frames_received + 1, payload)
        except ValueError as exc:
            logger.warning("stream %s: unreadable live message: %s", self.stream_id, exc)
            return
        self.frames_received = frame.seq
        self.frame = frame
        self.known_size = frame.size
        changed, self._frame_changed = self._frame_changed, asyncio.Event()
        changed.set()

    async def _read(self) -> None:
        backoff = 0.5
        while True:
            pubsub = self.hub.redis.pubsub()
            try:
                await pubsub.subscribe(live_channel(self.stream_id))
                self.subscribed = True
                backoff = 0.5
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        self._on_message(message["data"])
            except (redis.RedisError, OSError) as exc:
                logger.warning("stream %s: live frames unavailable (%s); retrying", self.stream_id, exc)
            finally:
                self.subscribed = False
                # Bounded: a connection that does not close in time is dropped,
                # never left holding this task (and the hub's task count) open.
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(CLOSE_TIMEOUT_SECONDS):
                        await pubsub.aclose()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    async def _keep(self) -> None:
        """Keep the watch key alive (the runner publishes while it exists) and
        the stream's live state fresh, every second and when the rate changes."""
        while True:
            self._watch_changed.clear()
            try:
                await self.hub.watch(self.stream_id, self.watch_fps())
            except (redis.RedisError, OSError) as exc:
                logger.warning("stream %s: watch key not refreshed (%s)", self.stream_id, exc)
            self.state = await self._read_state()
            self.ready.set()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(WATCH_REFRESH_SECONDS):
                    await self._watch_changed.wait()

    async def _read_state(self) -> tuple[str, str]:
        try:
            stats = await asyncio.to_thread(stream_stats_get, stream=self.stream)
        except LiveStateUnavailable as exc:
            return "UNKNOWN", exc.message
        if stats["frame_width"] > 0 and stats["frame_height"] > 0 and self.frame is None:
            self.known_size = (stats["frame_width"], stats["frame_height"])
        return stats["state"], stats["last_error_msg"]


def reads_status_parts(headers: Mapping[str, str]) -> bool:
    """Whether an MJPEG client (by its request headers) is a browser script that
    reads header-only status parts, as Nodeflux's browser client does: it shows a
    placeholder's message only from a part without a picture.

    Others must not get them: an `<img>` (its Accept names image types) turns into
    a broken image at an empty part, and OpenCV's FFmpeg reader stops at one. A
    browser's fetch says what it is with `Sec-Fetch-Dest: empty`; browsers from
    before Fetch Metadata still send Origin on a cross-origin fetch. Players and
    tools (VLC, FFmpeg, OpenCV, curl) send neither.
    """
    if "image/" in headers.get("Accept", "").lower():
        return False
    dest = headers.get("Sec-Fetch-Dest")
    if dest is not None:
        return dest.strip().lower() == "empty"
    return "Origin" in headers


class Viewer:
    """One client of a variant. It holds nothing until it starts: iterating it
    (the MJPEG response being sent) or `hold()` (a snapshot) takes its place in
    the variant; `release()` (idempotent) gives it back.

    Taking the place only when the response is sent matters: a client that
    leaves while Django is still passing the response through its middleware
    has its request cancelled and the response dropped, never sent nor closed.
    """

    def __init__(self, hub: LiveHub, key: VariantKey, stream: Stream, *, status_parts: bool = False) -> None:
        self.hub = hub
        self.key = key
        self.stream = stream
        self.status_parts = status_parts  # send placeholders' header-only parts too
        self.variant: Variant | None = None
        self.released = False

    def hold(self) -> Variant:
        if self.released:
            raise ViewingBusy("this viewer was closed")
        if self.variant is None:
            self.variant = self.hub.attach(self.key, self.stream)
        return self.variant

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._parts()

    async def _parts(self) -> AsyncIterator[bytes]:
        try:
            try:
                variant = self.hold()
            except ViewingBusy as exc:
                # Full since the view checked: nothing to show; the client may retry.
                logger.info("stream %s: viewer not served: %s", self.key.stream_id, exc.message)
                return
            seen = 0
            while True:
                part = await variant.next_part(seen)
                seen = part.seq
                # One write: a client that reads status parts finds the chunk ending
                # with the header-only part's headers, which is when it shows them.
                yield part.wire + part.status if self.status_parts else part.wire
        finally:
            self.release()

    async def snapshot(self, timeout: float) -> Part | None:
        """The current frame: the variant's latest live part if it is under a
        second old, else the next part it makes (a live frame, or a placeholder
        once the stream is known not to deliver); None if none comes in `timeout`."""
        variant = self.hold()
        latest = variant.latest
        if latest is not None and not latest.placeholder and time.time() - (latest.frame_ts or 0) < 1.0:
            return latest
        after = latest.seq if latest is not None else 0
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                return await variant.next_part(after)
        return None

    def release(self) -> None:
        if not self.released:
            self.released = True
            if self.variant is not None:
                self.hub.detach(self.variant)

    def close(self) -> None:
        """Django closes a response from a worker thread; release on the loop."""
        if self.released:
            return
        if threading.get_ident() == self.hub.thread_id:
            self.release()
            return
        with contextlib.suppress(RuntimeError):  # the loop is gone, and the hub with it
            self.hub.loop.call_soon_threadsafe(self.release)


class LiveHub:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.thread_id = threading.get_ident()
        self.feeds: dict[str, StreamFeed] = {}
        self.clients = 0
        self.tasks: set[asyncio.Task] = set()
        # Bounds the ORM work of viewing requests (one PostgreSQL connection each)
        # when hundreds of viewers connect at once.
        self.db_slots = asyncio.Semaphore(8)
        self._redis: aioredis.Redis | None = None
        self._watch_script = None

    # -- resources --------------------------------------------------------------------
    @property
    def redis(self) -> aioredis.Redis:
        if self._redis is None:
            # Explicit timeouts (settings.REDIS_CLIENT_OPTIONS); the pub/sub read waits
            # 1 s at a time (_read), less than the socket timeout.
            self._redis = aioredis.Redis.from_url(settings.REDIS_URL, **settings.REDIS_CLIENT_OPTIONS)
            self._watch_script = self._redis.register_script(WATCH_SCRIPT)
        return self._redis

    async def watch(self, stream_id: str, fps: int) -> None:
        client = self.redis
        await self._watch_script(
            keys=[watch_key(stream_id)], args=[fps, WATCH_TTL_MS, WATCH_TTL_MS // 2], client=client
        )

    def spawn(self, coro: Coroutine, name: str) -> asyncio.Task:
        # A fresh context: the hub's tasks outlive the request that started them
        # and must not carry its context (request id, thread-sensitive executor).
        task = self.loop.create_task(coro, name=name, context=contextvars.Context())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    # -- clients ------------------------------------------------------------------------
    def admit_check(self, key: VariantKey | None = None) -> None:
        """Refuse (503) a viewer beyond the process's limits: its viewers, and
        the different variants of one stream when `key` would add one."""
        limit = settings.VIEWING_MAX_CLIENTS
        if self.clients >= limit:
            raise ViewingBusy(f"too many viewers on this server (limit {limit}): try again later")
        feed = self.feeds.get(key.stream_id) if key is not None else None
        if feed is not None and key not in feed.variants:
            limit = settings.VIEWING_MAX_VARIANTS_PER_STREAM
            if len(feed.variants) >= limit:
                raise ViewingBusy(
                    f"too many different views of this stream (limit {limit}): "
                    "ask for a height, quality, fps and overlay that others already watch"
                )

    def viewer(self, key: VariantKey, stream: Stream, *, status_parts: bool = False) -> Viewer:
        """A viewer of variant `key` of `stream` (503 now if it could not be served);
        `status_parts`: it also gets placeholders' header-only parts."""
        self.admit_check(key)
        return Viewer(self, key, stream, status_parts=status_parts)

    def attach(self, key: VariantKey, stream: Stream) -> Variant:
        """Take a place in variant `key` of `stream`, starting what it needs."""
        self.admit_check(key)
        feed = self.feeds.get(key.stream_id)
        variant = feed.variants.get(key) if feed is not None else None
        if variant is None:
            if feed is None:
                feed = self.feeds[key.stream_id] = StreamFeed(self, stream)
                feed.start()
            variant = feed.variants[key] = Variant(feed, key)
            variant.task = self.spawn(variant.run(), f"live-variant-{key.stream_id}")
            feed.watch_changed()
        feed.stream = stream  # the newest view of the row (active, node) for placeholders
        if variant._retire_handle is not None:
            variant._retire_handle.cancel()
            variant._retire_handle = None
        variant.clients += 1
        self.clients += 1
        return variant

    def detach(self, variant: Variant) -> None:
        variant.clients -= 1
        self.clients -= 1
        if variant.clients == 0:
            variant._retire_handle = self.loop.call_later(
                settings.VIEWING_GRACE_SECONDS, self._retire, variant
            )

    def _retire(self, variant: Variant) -> None:
        variant._retire_handle = None
        if variant.clients:
            return
        feed = variant.feed
        if variant.task is not None:
            variant.task.cancel()
        feed.variants.pop(variant.key, None)
        feed.watch_changed()
        if not feed.variants:
            feed.stop()
            self.feeds.pop(feed.stream_id, None)
            if not self.feeds and self._redis is not None:
                # Nothing watched: give the Redis connections back too.
                client, self._redis = self._redis, None
                self.spawn(self._close_client(client, feed), "live-close")

    @staticmethod
    async def _close_client(client: aioredis.Redis, feed: StreamFeed) -> None:
        # After the feed's tasks, which may still be closing their connections;
        # bounded, so a stuck connection cannot keep this task alive.
        with contextlib.suppress(Exception):
            async with asyncio.timeout(CLOSE_TIMEOUT_SECONDS):
                await asyncio.gather(*feed.tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(CLOSE_TIMEOUT_SECONDS):
                await client.aclose()

    def stats(self) -> dict[str, int]:
        return {
            "clients": self.clients,
            "feeds": len(self.feeds),
            "variants": sum(len(feed.variants) for feed in self.feeds.values()),
            "tasks": len(self.tasks),
            "subscriptions": sum(1 for feed in self.feeds.values() if feed.subscribed),
        }


_HUBS: dict[int, LiveHub] = {}
_HUBS_LOCK = threading.Lock()


def live_hub() -> LiveHub:
    """The hub of the running event loop (one per ASGI server process)."""
    loop = asyncio.get_running_loop()
    with _HUBS_LOCK:
        hub = _HUBS.get(id(loop))
        if hub is None or hub.loop is not loop:
            # Loops that are gone (the test client runs each request in its own) leave.
            for loop_id in [i for i, h in _HUBS.items() if h.loop.is_closed()]:
                del _HUBS[loop_id]
            hub = _HUBS[id(loop)] = LiveHub(loop)
        return hub


def hubs() -> list[LiveHub]:
    with _HUBS_LOCK:
        return [hub for hub in _HUBS.values() if not hub.loop.is_closed()]
