"""Lines and areas over tracked objects: crossings (with direction and wrong
way), occupancy (current and peak, per class), dwell, stopped objects, and the
crowd density grid of the heatmap header.

Geometry is given in fractions of the frame (0-1, x right, y down), so one
configuration fits any resolution; it is turned into pixels on the first frame
and again whenever the frame size changes. An object's position is one point
of its box, the *anchor*: by default the bottom centre (where a person stands,
where a vehicle touches the road), which is what a line drawn on the ground
means.

All times are stream timestamps in ms (the frame's position in the stream), not
the wall clock: a stream analysed slower than real time, or replayed from a
file, gives the same dwell and stop times.

Why not supervision's LineZone/PolygonZone: see tracking.py (its dependencies);
they also lack hysteresis, dwell and stop detection, which are most of this.
"""

from __future__ import annotations

import base64
import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from .tracking import TrackedObject, TrackUpdate

HEATMAP_HEADER = "X-NF-Additional-Data"
MAX_MEMBERS = 4096  # tracks remembered per line or area (the tracker keeps fewer)

Point = tuple[float, float]
Direction = Literal["in", "out"]
EventKind = Literal[
    "crossing",  # a line crossed; `direction`, `wrong_way`
    "enter",  # an area entered
    "exit",  # an area left (or the track ended inside); `dwell_ms`
    "dwell",  # in an area for the area's dwell_ms; once per visit; `dwell_ms`
    "stopped",  # barely moved in an area for the area's stop_ms; once per stop; `dwell_ms` = stopped for
    "occupancy_over",  # the area's count went above its limit (held for hold_ms); `occupancy`
    "occupancy_clear",  # back at or under the limit (held for hold_ms); `occupancy`
]


def _fraction(value: float, what: str) -> float:
    if not (isinstance(value, int | float) and math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ValueError(f"{what} must be a fraction of the frame between 0 and 1, not {value!r}")
    return float(value)


def _point(point: Sequence[float], what: str) -> Point:
    if len(point) != 2:
        raise ValueError(f"{what} must be [x, y], not {point!r}")
    return (_fraction(point[0], f"{what} x"), _fraction(point[1], f"{what} y"))


@dataclass(frozen=True)
class Line:
    """A counting line from `start` to `end`. `in_side` is the side an object is on
    after crossing "in", as seen on the picture by someone walking from start to end:
    for a line drawn left to right, "left" is above it and "right" below.
    `expected` names the one allowed direction ("both": any); a crossing the other
    way is flagged wrong way. `classes`: the labels it counts (empty: all)."""

    name: str
    start: Point
    end: Point
    in_side: Literal["left", "right"] = "left"
    expected: Literal["both", "in", "out"] = "both"
    classes: frozenset[str] = frozenset()

    def __post_init__(self):
        object.__setattr__(self, "start", _point(self.start, f"line {self.name!r} start"))
        object.__setattr__(self, "end", _point(self.end, f"line {self.name!r} end"))
        object.__setattr__(self, "classes", frozenset(self.classes))
        if self.start == self.end:
            raise ValueError(f"line {self.name!r} needs two different points")
        if self.in_side not in ("left", "right"):
            raise ValueError(f"line {self.name!r}: in_side must be 'left' or 'right'")
        if self.expected not in ("both", "in", "out"):
            raise ValueError(f"line {self.name!r}: expected must be 'both', 'in' or 'out'")


@dataclass(frozen=True)
class Area:
    """A named polygon (at least 3 points). `limit`: occupancy above it raises
    occupancy_over; `dwell_ms`: a visit that long raises dwell; `stop_ms`: an object
    whose anchor stays within `stop_radius` × its box height that long raises stopped.
    `classes`: the labels it counts (empty: all)."""

    name: str
    points: tuple[Point, ...]
    limit: int | None = None
    dwell_ms: float | None = None
    stop_ms: float | None = None
    stop_radius: float = 0.3
    hold_ms: float = 1000.0  # a limit crossed or cleared must stay so this long before it is told
    classes: frozenset[str] = frozenset()

    def __post_init__(self):
        points = tuple(_point(p, f"area {self.name!r} point") for p in self.points)
        if len(points) < 3:
            raise ValueError(f"area {self.name!r} needs at least 3 points")
        if abs(cv2.contourArea(np.array(points, dtype=np.float32))) < 1e-6:
            raise ValueError(f"area {self.name!r} encloses no surface")
        object.__setattr__(self, "points", points)
        object.__setattr__(self, "classes", frozenset(self.classes))
        for what in ("dwell_ms", "stop_ms"):
            value = getattr(self, what)
            if value is not None and not value > 0:
                raise ValueError(f"area {self.name!r}: {what} must be above 0")
        if self.limit is not None and self.limit < 0:
            raise ValueError(f"area {self.name!r}: limit must be 0 or more")
        if not self.stop_radius > 0:
            raise ValueError(f"area {self.name!r}: stop_radius must be above 0")


@dataclass(frozen=True)
class ZoneEvent:
    kind: EventKind
    zone: str  # the line's or area's name
    timestamp_ms: float
    track_id: int | None = None  # None for occupancy events
    label: str = ""
    confidence: float = 0.0
    box: tuple[float, float, float, float] | None = None  # frame pixels
    direction: Direction | None = None
    wrong_way: bool = False
    dwell_ms: float | None = None
    occupancy: int | None = None


def anchor_of(box: Sequence[float], anchor: str = "bottom") -> Point:
    x1, y1, x2, y2 = box
    return ((x1 + x2) / 2, y2 if anchor == "bottom" else (y1 + y2) / 2)


# --- lines ---------------------------------------------------------------------------------


@dataclass
class _LineSide:
    side: int  # -1 / +1: the last side the anchor was clearly on
    point: Point  # where it was then


class _LineState:
    def __init__(self, line: Line):
        self.line = line
        self.members: dict[int, _LineSide] = {}
        self.totals: Counter = Counter()  # (label, direction) -> crossings so far

    def place(self, width: int, height: int, margin: float) -> None:
        (x1, y1), (x2, y2) = self.line.start, self.line.end
        self.a = np.array([x1 * width, y1 * height])
        self.b = np.array([x2 * width, y2 * height])
        self.length = float(np.linalg.norm(self.b - self.a))
        self.margin = margin
        self.members.clear()  # positions in the old size mean nothing now

    def signed_distance(self, point: Point) -> float:
        """Pixels from the line; negative on the picture's left of start -> end (y runs down)."""
        d = self.b - self.a
        return float(d[0] * (point[1] - self.a[1]) - d[1] * (point[0] - self.a[0])) / self.length

    def within_segment(self, p: Point, q: Point) -> bool:
        """Whether the path p -> q meets the line between its ends (with the margin's slack)."""
        dp, dq = self.signed_distance(p), self.signed_distance(q)
        if dp == dq:
            return False
        t = dp / (dp - dq)
        crossing = np.array(p) + t * (np.array(q) - np.array(p))
        along = float(np.dot(crossing - self.a, self.b - self.a)) / self.length
        return -self.margin <= along <= self.length + self.margin

    def update(self, track: TrackedObject, point: Point, timestamp_ms: float) -> ZoneEvent | None:
        distance = self.signed_distance(point)
        # Hysteresis: inside the band around the line, the side stays what it was.
        side = -1 if distance <= -self.margin else 1 if distance >= self.margin else 0
        known = self.members.get(track.track_id)
        if side == 0:
            return None
        if known is None:
            if len(self.members) >= MAX_MEMBERS:
                self.members.pop(next(iter(self.members)))
            self.members[track.track_id] = _LineSide(side, point)
            return None
        if side == known.side:
            known.point = point
            return None
        crossed = self.within_segment(known.point, point)
        known.side, known.point = side, point
        if not crossed:
            return None  # went round the end of the line
        left_is_in = self.line.in_side == "left"
        direction: Direction = "in" if (side < 0) == left_is_in else "out"
        self.totals[(track.label, direction)] += 1
        return ZoneEvent(
            "crossing", self.line.name, timestamp_ms, track.track_id, track.label, track.confidence,
            track.box, direction=direction,
            wrong_way=self.line.expected != "both" and direction != self.line.expected,
        )  # fmt: skip


# --- areas ---------------------------------------------------------------------------------


@dataclass
class _Visit:
    entered_ms: float
    last_ms: float  # last sighting inside
    label: str
    stop_point: Point
    stop_since_ms: float
    dwell_told: bool = False
    stopped: bool = False


class _AreaState:
    def __init__(self, area: Area):
        self.area = area
        self.members: dict[int, _Visit] = {}
        self.peak: Counter = Counter()  # label -> highest count seen at once
        self.peak_total = 0
        self.over = False
        self.pending_since: float | None = None  # when the count first disagreed with `over`

    def place(self, width: int, height: int, margin: float) -> None:
        self.contour = np.array([(x * width, y * height) for x, y in self.area.points], dtype=np.float32)
        self.margin = margin
        self.members.clear()

    def inside(self, point: Point, was_inside: bool) -> bool:
        distance = cv2.pointPolygonTest(self.contour, (float(point[0]), float(point[1])), True)
        # Hysteresis: entering needs the margin inside, leaving the margin outside.
        return distance >= -self.margin if was_inside else distance >= self.margin

    def update(self, track: TrackedObject, point: Point, timestamp_ms: float) -> list[ZoneEvent]:
        visit = self.members.get(track.track_id)
        if not self.inside(point, visit is not None):
            if visit is None:
                return []
            del self.members[track.track_id]
            return [self._event("exit", track, timestamp_ms, dwell_ms=visit.last_ms - visit.entered_ms)]
        if visit is None:
            if len(self.members) >= MAX_MEMBERS:
                self.members.pop(next(iter(self.members)))
            self.members[track.track_id] = _Visit(
                timestamp_ms, timestamp_ms, track.label, point, timestamp_ms
            )
            return [self._event("enter", track, timestamp_ms)]
        visit.last_ms, visit.label = timestamp_ms, track.label
        events = []
        dwell = timestamp_ms - visit.entered_ms
        if self.area.dwell_ms is not None and not visit.dwell_told and dwell >= self.area.dwell_ms:
            visit.dwell_told = True
            events.append(self._event("dwell", track, timestamp_ms, dwell_ms=dwell))
        if self.area.stop_ms is not None:
            radius = self.area.stop_radius * max(track.box[3] - track.box[1], 1.0)
            if math.dist(point, visit.stop_point) > radius:
                visit.stop_point, visit.stop_since_ms, visit.stopped = point, timestamp_ms, False
            elif not visit.stopped and timestamp_ms - visit.stop_since_ms >= self.area.stop_ms:
                visit.stopped = True
                events.append(
                    self._event("stopped", track, timestamp_ms, dwell_ms=timestamp_ms - visit.stop_since_ms)
                )
        return events

    def end(self, track_id: int) -> ZoneEvent | None:
        visit = self.members.pop(track_id, None)
        if visit is None:
            return None
        return ZoneEvent(
            "exit", self.area.name, visit.last_ms, track_id, visit.label,
            dwell_ms=visit.last_ms - visit.entered_ms,
        )  # fmt: skip

    def count(self) -> Counter:
        return Counter(visit.label for visit in self.members.values())

    def settle(self, timestamp_ms: float) -> ZoneEvent | None:
        """Peaks, and the limit's over/clear events once a change has held for hold_ms."""
        counts = self.count()
        total = sum(counts.values())
        for label, n in counts.items():
            self.peak[label] = max(self.peak[label], n)
        self.peak_total = max(self.peak_total, total)
        if self.area.limit is None:
            return None
        now_over = total > self.area.limit
        if now_over == self.over:
            self.pending_since = None
            return None
        if self.pending_since is None:
            self.pending_since = timestamp_ms
        if timestamp_ms - self.pending_since < self.area.hold_ms:
            return None
        self.over, self.pending_since = now_over, None
        kind = "occupancy_over" if now_over else "occupancy_clear"
        return ZoneEvent(kind, self.area.name, timestamp_ms, occupancy=total)

    def _event(self, kind, track: TrackedObject, timestamp_ms: float, **extra) -> ZoneEvent:
        return ZoneEvent(
            kind, self.area.name, timestamp_ms, track.track_id, track.label, track.confidence,
            track.box, **extra,
        )  # fmt: skip


# --- the whole set ---------------------------------------------------------------------------


class Zones:
    """One stream's lines and areas over its tracker's updates. Not thread-safe (one
    stream, one thread). `hysteresis`: the band around each line and area edge, as a
    share of the frame's diagonal, inside which an object's side does not change."""

    def __init__(
        self,
        lines: Iterable[Line] = (),
        areas: Iterable[Area] = (),
        *,
        anchor: Literal["bottom", "center"] = "bottom",
        hysteresis: float = 0.01,
    ) -> None:
        self.lines = [_LineState(line) for line in lines]
        self.areas = [_AreaState(area) for area in areas]
        names = [s.line.name for s in self.lines] + [s.area.name for s in self.areas]
        duplicates = sorted(name for name, n in Counter(names).items() if n > 1)
        if duplicates:
            raise ValueError(f"line and area names must be unique: {', '.join(duplicates)} repeated")
        if anchor not in ("bottom", "center"):
            raise ValueError("anchor must be 'bottom' or 'center'")
        if not 0 <= hysteresis < 0.5:
            raise ValueError("hysteresis must be a share of the frame diagonal between 0 and 0.5")
        self.anchor = anchor
        self.hysteresis = hysteresis
        self.frame_size: tuple[int, int] | None = None

    def _place(self, width: int, height: int) -> None:
        margin = self.hysteresis * math.hypot(width, height)
        for state in [*self.lines, *self.areas]:
            state.place(width, height, margin)
        self.frame_size = (width, height)

    def update(self, update: TrackUpdate, frame_size: tuple[int, int]) -> list[ZoneEvent]:
        """Events of this frame, from the tracks observed in it (lost tracks keep their
        area visits as they were; ended tracks leave their areas). frame_size: (width, height)."""
        if frame_size != self.frame_size:
            self._place(*frame_size)
        now = update.timestamp_ms
        events: list[ZoneEvent] = []
        for track_id in update.ended:
            for area in self.areas:
                if (event := area.end(track_id)) is not None:
                    events.append(event)
            for line in self.lines:
                line.members.pop(track_id, None)
        for track in update.tracks:
            if not track.observed:
                continue
            point = anchor_of(track.box, self.anchor)
            for line in self.lines:
                if not line.line.classes or track.label in line.line.classes:
                    if (event := line.update(track, point, now)) is not None:
                        events.append(event)
            for area in self.areas:
                if not area.area.classes or track.label in area.area.classes:
                    events += area.update(track, point, now)
        for area in self.areas:
            if (event := area.settle(now)) is not None:
                events.append(event)
        return events

    # --- what overlays and counts read ---------------------------------------------------

    def line_totals(self) -> dict[str, dict[str, int]]:
        """Per line: crossings so far by direction ("in", "out") and by "label:direction"."""
        result = {}
        for state in self.lines:
            totals = {"in": 0, "out": 0}
            for (label, direction), n in sorted(state.totals.items()):
                totals[direction] += n
                totals[f"{label}:{direction}"] = n
            result[state.line.name] = totals
        return result

    def occupancy(self) -> dict[str, dict]:
        """Per area: current count and peak, in all and by label."""
        result = {}
        for state in self.areas:
            counts = state.count()
            result[state.area.name] = {
                "current": sum(counts.values()),
                "peak": state.peak_total,
                "by_label": dict(sorted(counts.items())),
                "peak_by_label": dict(sorted(state.peak.items())),
            }
        return result

    def reset_peaks(self) -> None:
        for state in self.areas:
            state.peak.clear()
            state.peak_total = sum(state.count().values())


# --- crowd density -------------------------------------------------------------------------


def density_grid(
    points: Iterable[Point], frame_size: tuple[int, int], rows: int, cols: int
) -> list[list[int]]:
    """How many points fall in each cell of a rows × cols grid over the frame, top row
    first, each count capped at 255 (the heatmap header's range)."""
    if rows < 1 or cols < 1:
        raise ValueError("a density grid needs at least one row and one column")
    width, height = frame_size
    grid = np.zeros((rows, cols), dtype=np.int64)
    for x, y in points:
        if 0 <= x <= width and 0 <= y <= height:
            grid[min(int(y * rows / height), rows - 1), min(int(x * cols / width), cols - 1)] += 1
    return np.minimum(grid, 255).tolist()


def heatmap_header(grid: Sequence[Sequence[int]]) -> str:
    """The value of the X-NF-Additional-Data part header (ANALYTICS.md): standard base64
    of the UTF-8 JSON {"data": {"data": grid}}, a grid of rows of integers 0-255."""
    rows = [[int(v) for v in row] for row in grid]
    if not rows or any(not row for row in rows) or len({len(row) for row in rows}) != 1:
        raise ValueError("the heatmap grid must be a non-empty rectangle of rows")
    if any(not 0 <= v <= 255 for row in rows for v in row):
        raise ValueError("heatmap cells must be integers 0-255")
    text = json.dumps({"data": {"data": rows}}, separators=(",", ":"))
    return base64.b64encode(text.encode("utf-8")).decode("ascii")
