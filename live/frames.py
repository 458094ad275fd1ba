"""Frames for viewers: what a runner publishes while someone watches, and how
API processes ask for them.

API processes that serve viewers of a stream keep its watch key
(`live.keys.watch_key`) alive with the highest frame rate any of their viewers
asked for (WATCH_SCRIPT). While that key exists, the stream's runner encodes its
frames as JPEG at that rate (at most MAX_VIEW_FPS) and publishes them, with the
latest overlay of each pipeline, on the stream's channel
(`live.keys.live_channel`). With nobody watching, a stream spends nothing on viewing.

Wire format of a published frame (binary pub/sub payload): one JSON header line
(`FrameHeader`), a newline, then the JPEG bytes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Literal, TypedDict

# Viewers asking for "unlimited" (fps=0) get the source rate, capped here.
MAX_VIEW_FPS = 60
# How often a runner looks at the watch key (it costs one GET).
WATCH_CHECK_SECONDS = 0.5
# An API process refreshes its watch every WATCH_REFRESH_SECONDS; the key lives
# WATCH_TTL_MS, so a process that dies stops asking within a few seconds.
WATCH_TTL_MS = 3000
WATCH_REFRESH_SECONDS = 1.0

# Keeps the watch key at the highest rate any API process asks for (0 = every
# frame, the highest of all): a lower rate replaces a higher one only once the
# process that asked for the higher one has stopped refreshing it for a while.
# KEYS[1]: the watch key; ARGV: fps asked for, TTL in ms, PTTL below which a
# higher rate is given up.
WATCH_SCRIPT = """
local want = tonumber(ARGV[1])
local current = redis.call('GET', KEYS[1])
if current then
  local have = tonumber(current)
  local higher = have ~= nil and want ~= 0 and (have == 0 or have > want)
  if higher and redis.call('PTTL', KEYS[1]) > tonumber(ARGV[3]) then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""


def watch_fps(raw: str | bytes | None) -> float:
    """The rate a runner publishes at for a watch key's value: 0 when nobody
    watches, MAX_VIEW_FPS for "every frame" (0), else the rate asked for, capped."""
    if raw is None:
        return 0.0
    try:
        requested = float(raw)
    except ValueError:
        return 0.0
    return float(MAX_VIEW_FPS) if requested <= 0 else min(requested, MAX_VIEW_FPS)


@dataclass(frozen=True)
class OverlayItem:
    """Something to draw on the viewing routes; points are in frame pixels."""

    kind: Literal["box", "line", "area"]
    points: tuple[tuple[float, float], ...]
    label: str = ""
    color: str = "#00e676"


def overlay_payload(items: list[OverlayItem]) -> list[dict[str, Any]]:
    return [{**asdict(item), "points": [list(point) for point in item.points]} for item in items]


class Overlay(TypedDict, total=False):
    ts: float  # capture time of the frame the analytic saw
    items: list[dict[str, Any]]  # overlay_payload()
    data: dict[str, Any]  # the analytic's additional data (X-NF-Additional-Data), when it has any


class FrameHeader(TypedDict, total=False):
    v: int
    seq: int  # frames decoded by the source so far
    ts: float  # capture time, unix seconds
    width: int
    height: int
    overlays: dict[str, Overlay]  # by analytic id


FRAME_VERSION = 1


def encode_live_message(header: FrameHeader, jpeg: bytes) -> bytes:
    body = {"v": FRAME_VERSION, **header}
    return json.dumps(body, separators=(",", ":")).encode() + b"\n" + jpeg


def decode_live_message(payload: bytes) -> tuple[dict[str, Any], bytes]:
    """(header, JPEG); the header as sent (read its fields with .get: an older
    writer may leave some out). ValueError when the header is not JSON."""
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
