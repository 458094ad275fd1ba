"""Runner-side live frames: published only while someone watches (see
live.frames for the watch key and the wire format)."""

from __future__ import annotations

import time

import cv2
import redis

from live.frames import (
    WATCH_CHECK_SECONDS,
    FrameHeader,
    Overlay,
    OverlayItem,
    RateGate,
    encode_live_message,
    overlay_payload,
    watch_fps,
)
from live.keys import live_channel, watch_key

from .runtime_redis import RedisBackoff, runtime_redis_binary

# Quality of the frames the runner publishes; API processes re-encode each
# variant at the quality its viewers asked for.
SOURCE_JPEG_QUALITY = 90


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
        self._overlays: dict[str, Overlay] = {}
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
        self._fps = watch_fps(raw)
        if not self._fps:
            self._overlays.clear()
            return
        self._gate.fps = self._fps

    def overlay(
        self, analytic_id: str, items: list[OverlayItem], timestamp: float, data: dict | None = None
    ) -> None:
        """Remember a pipeline's latest overlay and additional data (only while watched)."""
        if self._fps > 0:
            overlay = Overlay(ts=timestamp, items=overlay_payload(items))
            if data is not None:
                overlay["data"] = data
            self._overlays[analytic_id] = overlay

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
        header = FrameHeader(seq=index, ts=timestamp, width=width, height=height, overlays=self._overlays)
        try:
            self.client.publish(live_channel(self.stream_id), encode_live_message(header, jpeg.tobytes()))
        except redis.RedisError as exc:
            self._backoff.failed(exc)
            self._fps = 0.0  # nobody is known to watch until the watch key is read again
            return False
        self.published += 1
        return True
