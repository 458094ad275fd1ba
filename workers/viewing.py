"""Frames for viewers, produced only while someone watches.

API processes that serve viewers of a stream keep a "watch" key alive in Redis
with the highest frame rate any of their viewers asked for. While that key
exists, the stream's runner encodes its frames as JPEG at that rate (at most)
and publishes them, with the latest overlay of each pipeline, on the stream's
Redis channel; API processes resize and re-encode each viewing variant once and
fan it out. With nobody watching, a stream spends nothing on viewing.

Wire format on `visionaire:live:<stream_id>` (binary pub/sub payload):
one JSON header line, a newline, then the JPEG bytes. The header carries the
frame's sequence number, capture time, size, and the overlays by analytic.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from typing import Any

import cv2
import redis

from analytics.plugins import OverlayItem
from visionaire_site.redis import key

from .runtime_redis import RedisBackoff, runtime_redis_binary

# Quality of the frames the runner publishes; API processes re-encode each
# variant at the quality its viewers asked for.
SOURCE_JPEG_QUALITY = 90
WATCH_CHECK_SECONDS = 0.5
# Viewers asking for "unlimited" (fps=0) get the source rate, capped here.
MAX_VIEW_FPS = 60


def watch_key(stream_id: str) -> str:
    return key("watch", stream_id)


def live_channel(stream_id: str) -> str:
    return key("live", stream_id)


def overlay_payload(items: list[OverlayItem]) -> list[dict[str, Any]]:
    return [{**asdict(item), "points": [list(point) for point in item.points]} for item in items]


def encode_live_message(header: dict[str, Any], jpeg: bytes) -> bytes:
    return json.dumps(header, separators=(",", ":")).encode() + b"\n" + jpeg


def decode_live_message(payload: bytes) -> tuple[dict[str, Any], bytes]:
    head, _, jpeg = payload.partition(b"\n")
    return json.loads(head), jpeg


class RateGate:
    """Lets events through at about `fps` per second on average.

    A frame that comes a little early (within a quarter of the interval) still
    passes and the schedule keeps its phase, so a 25 fps source thinned to 10 fps
    gives 10, not the 8.3 that "next = now + interval" gives (every third frame).
    After a gap the schedule restarts from now instead of bursting to catch up.
    """

    def __init__(self, fps: float = 0.0) -> None:
        self.fps = fps
        self._due = 0.0

    def ready(self, now: float) -> bool:
        """Whether an event at `now` (monotonic seconds) passes; fps <= 0 lets everything through."""
        if self.fps <= 0:
            return True
        interval = 1.0 / self.fps
        if now < self._due - interval / 4:
            return False
        self._due = (self._due if now - self._due < interval else now) + interval
        return True


class FramePublisher:
    """Runner-side: publishes frames and overlays of one stream while watched."""

    def __init__(
        self, stream_id: str, client: redis.Redis | None = None, *, backoff: RedisBackoff | None = None
    ) -> None:
        self.stream_id = stream_id
        self.client = client or runtime_redis_binary()
        self._fps = 0.0  # 0: nobody watches
        self._next_check = 0.0
        self._gate = RateGate()
        self._overlays: dict[str, dict[str, Any]] = {}
        self.published = 0
        # Called from the frame loop: a Redis that is away must not cost it a timeout
        # per frame. The runner shares its own, so one failure pauses all its Redis work.
        self._backoff = backoff or RedisBackoff(f"live frames of {stream_id}")

    @property
    def watched(self) -> bool:
        self._refresh_watch()
        return self._fps > 0

    def _refresh_watch(self) -> None:
        now = time.monotonic()
        if now < self._next_check:
            return
        self._next_check = now + WATCH_CHECK_SECONDS
        raw = None
        if self._backoff.ready():
            try:
                raw = self.client.get(watch_key(self.stream_id))
            except redis.RedisError as exc:
                self._backoff.failed(exc)
            else:
                self._backoff.succeeded()
        if raw is None:
            self._fps = 0.0
            self._overlays.clear()
            return
        requested = float(raw)
        self._fps = float(MAX_VIEW_FPS) if requested <= 0 else min(requested, MAX_VIEW_FPS)
        self._gate.fps = self._fps

    def overlay(self, analytic_id: str, items: list[OverlayItem], timestamp: float) -> None:
        """Remember a pipeline's latest overlay (only while watched)."""
        if self._fps > 0:
            self._overlays[analytic_id] = {"ts": timestamp, "items": overlay_payload(items)}

    def offer(self, image, *, index: int, timestamp: float) -> bool:
        """Publish `image` if someone watches and the rate allows; True if published."""
        if not self.watched:
            return False
        if not self._gate.ready(time.monotonic()):
            return False
        ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, SOURCE_JPEG_QUALITY])
        if not ok:
            return False
        height, width = image.shape[:2]
        header = {
            "seq": index,
            "ts": timestamp,
            "width": width,
            "height": height,
            "overlays": self._overlays,
        }
        try:
            self.client.publish(live_channel(self.stream_id), encode_live_message(header, jpeg.tobytes()))
        except redis.RedisError as exc:
            self._backoff.failed(exc)
            self._fps = 0.0  # nobody is known to watch until the watch key is read again
            return False
        self.published += 1
        return True
