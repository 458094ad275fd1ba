"""What the people (NFV4-MPA) and vehicle (NFV4-MVA) analytics share: config
pieces, and one processor that runs detector -> tracker -> lines and areas ->
events, overlay, crowd grid and counts over time.

Per analysed frame:
1. the frame goes to the worker's batching runtime of the object detector (one
   per process, shared by every stream); when the model is behind, the runtime
   refuses the frame at once and it is dropped and counted, so a slow model never
   holds up the stream (its capture drops frames the same way);
2. detections of the analytic's classes feed a ByteTrack tracker; tracked
   objects feed the lines and areas (analytics.objects.zones);
3. each crossing and alert becomes one event with the object's crop; counts go
   to per-minute totals (analytics.objects.counting), handed to the process's
   count writer (analytics.counts) every COUNTS_FLUSH_MS of stream time and when
   the pipeline stops.

Times are the frames' capture times (unix ms), so counts fall in the minutes
they happened in and the counts route reads them by unix time.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, ClassVar, Literal

import cv2
import numpy as np
from pydantic import Field, model_validator

from analytics.counts import StoredCount, count_writer
from analytics.plugins import EventRecord, Frame, OverlayItem, Point, Processor, ProcessResult, StrictConfig

from .batching import DetectorBusy, DetectorStopped, object_runtime
from .counting import MinuteCounts
from .tracking import ByteTracker, TrackedObject
from .zones import Area, Line, ZoneEvent, Zones, anchor_of, density_grid

logger = logging.getLogger(__name__)

COUNTS_FLUSH_MS = 5_000
CROP_MARGIN = 0.1  # share of the box added on each side of an event's crop
CROP_MAX_SIDE = 320  # crops are scaled down to this longest side
CROP_QUALITY = 85
MAX_ZONES = 16
COLOR_LINE = "#ffd600"
COLOR_AREA = "#2979ff"
COLOR_ALERT = "#ff1744"
CLASS_COLORS = {
    "person": "#00e676",
    "car": "#00b0ff",
    "motorcycle": "#ff9100",
    "bus": "#d500f9",
    "truck": "#ffea00",
    "bicycle": "#76ff03",
}


# --- configuration pieces --------------------------------------------------------------


class CountingLine(StrictConfig):
    name: str = Field(min_length=1, max_length=100, title="Name", description="Named in events and counts.")
    points: list[Point] = Field(
        min_length=2,
        max_length=2,
        title="Points",
        description="The line's start and end, as fractions of the frame. An object crosses when its "
        "anchor (the bottom centre of its box) passes from one side to the other between the ends.",
    )
    in_side: Literal["left", "right"] = Field(
        default="left",
        title="In side",
        description='The side an object is on after crossing "in", as seen on the picture walking from '
        "the first point to the second: for a line drawn left to right, left is above it.",
    )
    bidirection: bool = Field(
        default=True,
        title="Both directions",
        description='Count and report crossings both ways; false: only "in" crossings.',
    )


class ZoneArea(StrictConfig):
    name: str = Field(min_length=1, max_length=100, title="Name", description="Named in events and counts.")
    points: list[Point] = Field(
        min_length=3,
        max_length=64,
        title="Points",
        description="Polygon corners in order, as fractions of the frame; an object is in the area when "
        "its anchor (the bottom centre of its box) is.",
    )
    occupancy_limit: int | None = Field(
        default=None,
        ge=0,
        le=10_000,
        title="Occupancy limit",
        description="An event when more objects than this are in the area, and another when it clears "
        "(each after the change held for hold_ms); null: no limit.",
    )
    hold_ms: int = Field(
        default=1000,
        ge=0,
        le=600_000,
        title="Hold time",
        description="How long an occupancy change must hold before its event.",
    )


class AreaOccupancyPart(StrictConfig):
    """The area-occupancy sub-analytic's part of a config (both analytics have it)."""

    areas: list[ZoneArea] = Field(default_factory=list, max_length=16, title="Areas with an occupancy limit")


# An area that covers the whole frame (the presets' occupancy areas).
WHOLE_FRAME = [{"x": 0.0, "y": 0.0}, {"x": 1.0, "y": 0.0}, {"x": 1.0, "y": 1.0}, {"x": 0.0, "y": 1.0}]


def unique_names(lines: Iterable, areas: Iterable) -> None:
    names = [item.name for item in [*lines, *areas]]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"line and area names must be unique: {', '.join(repeated)} repeated")


def sampling_field(default: int = 200):
    return Field(
        default=default,
        ge=0,
        le=60_000,
        title="Sampling time",
        description="Milliseconds between analysed frames (0: every frame). 200 (5 per second) keeps "
        "tracks of walking people and of traffic.",
    )


class ObjectConfigBase(StrictConfig):
    """Checks shared by both analytics' configs."""

    @model_validator(mode="after")
    def _names_unique(self):
        unique_names(getattr(self, "lines", []), getattr(self, "areas", []))
        return self


# --- the processor ---------------------------------------------------------------------


def box_crop_jpeg(image: np.ndarray, box: tuple[float, float, float, float]) -> bytes:
    """The object's box (with a margin) as a JPEG no larger than CROP_MAX_SIDE."""
    height, width = image.shape[:2]
    x1, y1, x2, y2 = box
    mx, my = CROP_MARGIN * (x2 - x1), CROP_MARGIN * (y2 - y1)
    left, top = max(0, int(x1 - mx)), max(0, int(y1 - my))
    right, bottom = min(width, int(np.ceil(x2 + mx))), min(height, int(np.ceil(y2 + my)))
    if right <= left or bottom <= top:
        left, top, right, bottom = 0, 0, width, height
    crop = image[top:bottom, left:right]
    longest = max(crop.shape[:2])
    if longest > CROP_MAX_SIDE:
        scale = CROP_MAX_SIDE / longest
        crop = cv2.resize(
            crop, (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale))), cv2.INTER_AREA
        )
    ok, jpeg = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, CROP_QUALITY])
    return jpeg.tobytes() if ok else b""


def box_fractions(box, width: int, height: int) -> dict[str, float]:
    x1, y1, x2, y2 = (float(v) for v in box)  # numpy scalars would reach the event's JSON
    return {
        "left": round(max(0.0, x1) / width, 4),
        "top": round(max(0.0, y1) / height, 4),
        "width": round((min(x2, width) - max(0.0, x1)) / width, 4),
        "height": round((min(y2, height) - max(0.0, y1)) / height, 4),
    }


class ObjectProcessor(Processor):
    """One pipeline of an object analytic on one stream (one thread)."""

    # Set by the subclass: what it analyses and which events it may emit.
    analytic_id: ClassVar[str]
    sub_analytic_of: ClassVar[dict[str, str]]  # event type -> sub-analytic id

    def __init__(self, config, *, labels: frozenset[str], runtime=None, writer=None) -> None:
        self.config = config
        self.labels = labels
        self._runtime = runtime
        self._writer = writer
        self.tracker = ByteTracker()
        self.zones = Zones(self.lines(), self.areas())
        self.counts = MinuteCounts()
        self.one_way = {line.name for line in getattr(config, "lines", []) if not line.bidirection}
        self.limits = {area.name: area.occupancy_limit for area in getattr(config, "areas", [])}
        self.emitting = set(config.rules.events)
        self.frames_refused = 0
        self.frames_analysed = 0
        self._last = ProcessResult()
        self._flushed_at: float | None = None
        self._stream_id = ""

    # -- what the subclass says -------------------------------------------------------------
    def lines(self) -> list[Line]:
        return [
            Line(line.name, (line.points[0].x, line.points[0].y), (line.points[1].x, line.points[1].y),
                 in_side=line.in_side, expected=getattr(line, "expected_direction", "both"))
            for line in getattr(self.config, "lines", [])
        ]  # fmt: skip

    def areas(self) -> list[Area]:
        return [self.area(area) for area in getattr(self.config, "areas", [])]

    def area(self, area) -> Area:
        return Area(area.name, [(p.x, p.y) for p in area.points], limit=area.occupancy_limit,
                    hold_ms=float(area.hold_ms))  # fmt: skip

    def crowd(self, frame_size, tracks: list[TrackedObject], now_ms: float) -> tuple[dict | None, list]:
        """(additional data for viewers, events) of the crowd estimation; none by default."""
        return None, []

    # -- the frame loop ------------------------------------------------------------------------
    @property
    def runtime(self):
        return self._runtime or object_runtime()

    @property
    def writer(self):
        return self._writer or count_writer()

    def process(self, frame: Frame) -> ProcessResult:
        self._stream_id = frame.stream_id
        try:
            detections = self.runtime.detect(frame.image)
        except (DetectorBusy, DetectorStopped):
            # The model is behind (or stopping): this frame is dropped, the stream goes on.
            self.frames_refused += 1
            return ProcessResult(overlay=self._last.overlay, additional_data=self._last.additional_data)
        self.frames_analysed += 1
        image = frame.image
        height, width = image.shape[:2]
        now_ms = frame.timestamp * 1000
        update = self.tracker.update([d for d in detections if d.label in self.labels], now_ms)
        found = [e for e in self.zones.update(update, (width, height)) if not self._one_way_out(e)]
        self.counts.record(found)
        occupancy = self.zones.occupancy()
        self.counts.record_occupancy(now_ms, occupancy)
        events = [record for e in found if (record := self._record(e, image, occupancy)) is not None]
        observed = [t for t in update.tracks if t.observed]
        data, crowd_events = self.crowd((width, height), observed, now_ms)
        events += [
            self._crowd_record(event, image, frame.timestamp)
            for event in crowd_events
            if event["event_type"] in self.emitting
        ]
        self._last = ProcessResult(
            overlay=self._overlay(observed, occupancy, width, height), events=events, additional_data=data
        )
        if self._flushed_at is None:
            self._flushed_at = now_ms
        elif now_ms - self._flushed_at >= COUNTS_FLUSH_MS:
            self._flush_counts(now_ms)
        return self._last

    def close(self) -> ProcessResult:
        self._flush_counts(None)
        return ProcessResult()

    def _flush_counts(self, now_ms: float | None) -> None:
        self._flushed_at = now_ms
        rows = self.counts.flush()
        if rows and self._stream_id:
            self.writer.submit(
                StoredCount(
                    self._stream_id, self.analytic_id, r.minute_ms, r.zone, r.label, r.direction, r.value
                )
                for r in rows
            )

    def _one_way_out(self, event: ZoneEvent) -> bool:
        return event.kind == "crossing" and event.zone in self.one_way and event.direction == "out"

    # -- events ------------------------------------------------------------------------------
    def event_type(self, event: ZoneEvent) -> str | None:
        """The event type a zone event becomes (None: counted, not an event)."""
        return {
            "crossing": "line_crossing",
            "dwell": "dwell",
            "stopped": "stopped",
            "occupancy_over": "occupancy_over",
            "occupancy_clear": "occupancy_clear",
        }.get(event.kind)

    def _record(self, event: ZoneEvent, image: np.ndarray, occupancy: dict) -> EventRecord | None:
        kind = self.event_type(event)
        if kind is None or kind not in self.emitting:
            return None
        height, width = image.shape[:2]
        data: dict[str, Any] = {
            "area_name": event.zone,
            "event_type": kind,
            "sub_analytic": self.sub_analytic_of[kind],
        }
        secondary = ""
        if event.track_id is not None:
            data |= {
                "confidence": round(float(event.confidence), 4),
                "label": event.label,
                "track_id": event.track_id,
                "bounding_box": box_fractions(event.box, width, height),
            }
            jpeg = box_crop_jpeg(image, event.box)
            primary = event.label
        else:  # an area's occupancy: the area's picture, the labels of what is in it
            figures = occupancy.get(event.zone, {})
            by_label = figures.get("by_label", {})
            label = self.default_label if not by_label else max(by_label, key=by_label.get)
            area = next(a for a in self.zones.areas if a.area.name == event.zone)
            x1, y1 = area.contour.min(axis=0)
            x2, y2 = area.contour.max(axis=0)
            data |= {
                "confidence": 1.0,
                "label": label,
                "occupancy": event.occupancy,
                "occupancy_limit": self.limits.get(event.zone),
                "occupancy_by_label": by_label,
                "bounding_box": box_fractions((x1, y1, x2, y2), width, height),
            }
            jpeg = box_crop_jpeg(image, (x1, y1, x2, y2))
            primary = label
            secondary = f"occupancy {event.occupancy} {'over' if kind == 'occupancy_over' else 'within'} " \
                        f"limit {self.limits.get(event.zone)}"  # fmt: skip
        if event.kind == "crossing":
            totals = self.zones.line_totals()[event.zone]
            data |= {
                "direction": event.direction,
                "wrong_way": event.wrong_way,
                "totals": {"in": totals["in"], "out": totals["out"]},
            }
            secondary = event.direction or ""
            if event.wrong_way:
                secondary = f"wrong way ({event.direction})"
        if event.dwell_ms is not None and event.kind in ("dwell", "stopped"):
            data["dwell_ms"] = int(round(event.dwell_ms))
            secondary = f"{event.kind} {event.dwell_ms / 1000:.0f} s"
        search = " ".join(part for part in (primary, event.zone, kind.replace("_", " "), secondary) if part)
        return EventRecord(
            primary_text=primary,
            secondary_text=secondary,
            pipeline_data=data,
            image_jpeg=jpeg,
            search_text=search,
            timestamp=event.timestamp_ms / 1000,
        )

    default_label: ClassVar[str] = "person"

    def _crowd_record(self, event: dict, image: np.ndarray, timestamp: float) -> EventRecord:
        height, width = image.shape[:2]
        return EventRecord(
            primary_text=self.default_label,
            secondary_text=f"crowd density {event['max_cell']} in one cell, limit {event['density_limit']}",
            pipeline_data={
                "area_name": "crowd",
                "confidence": 1.0,
                "label": self.default_label,
                "sub_analytic": "crowd_estimation",
                **event,
            },
            image_jpeg=box_crop_jpeg(image, (0, 0, width, height)),
            search_text=f"{self.default_label} crowd density",
            timestamp=timestamp,
        )

    # -- overlay -------------------------------------------------------------------------------
    def _overlay(
        self, tracks: list[TrackedObject], occupancy: dict, width: int, height: int
    ) -> list[OverlayItem]:
        items = []
        totals = self.zones.line_totals()
        for state in self.zones.lines:
            line = state.line
            counted = totals.get(line.name, {})
            label = f"{line.name}: in {counted.get('in', 0)}"
            if line.name not in self.one_way:
                label += f" / out {counted.get('out', 0)}"
            points = (
                (line.start[0] * width, line.start[1] * height),
                (line.end[0] * width, line.end[1] * height),
            )
            items.append(OverlayItem(kind="line", points=points, label=label, color=COLOR_LINE))
        for state in self.zones.areas:
            area = state.area
            figures = occupancy.get(area.name, {})
            current = figures.get("current", 0)
            limit = self.limits.get(area.name)
            label = f"{area.name}: {current}" + (f"/{limit}" if limit is not None else "")
            points = tuple((x * width, y * height) for x, y in area.points)
            color = COLOR_ALERT if state.over else COLOR_AREA
            items.append(OverlayItem(kind="area", points=points, label=label, color=color))
        for track in tracks:
            x1, y1, x2, y2 = track.box
            items.append(
                OverlayItem(
                    kind="box",
                    points=((x1, y1), (x2, y2)),
                    label=f"{track.label} #{track.track_id}",
                    color=CLASS_COLORS.get(track.label, "#ffffff"),
                )
            )
        return items


class CrowdState:
    """The crowd estimation of one stream: a density grid per frame (the heatmap header's)
    and the density limit's over/clear state, told once a change has held for hold_ms."""

    def __init__(self, rows: int, cols: int, limit: int | None, hold_ms: float) -> None:
        self.rows, self.cols, self.limit, self.hold_ms = rows, cols, limit, hold_ms
        self.over = False
        self._pending_since: float | None = None

    def update(self, frame_size, tracks: list[TrackedObject], now_ms: float) -> tuple[dict, list[dict]]:
        points = [anchor_of(t.box) for t in tracks]
        grid = density_grid(points, frame_size, self.rows, self.cols)
        data = {"data": {"data": grid}}
        if self.limit is None:
            return data, []
        peak = max(max(row) for row in grid)
        now_over = peak > self.limit
        if now_over == self.over:
            self._pending_since = None
            return data, []
        if self._pending_since is None:
            self._pending_since = now_ms
        if now_ms - self._pending_since < self.hold_ms:
            return data, []
        self.over, self._pending_since = now_over, None
        if not now_over:
            return data, []
        row = next(i for i, cells in enumerate(grid) if max(cells) == peak)
        event = {
            "event_type": "crowd_density",
            "people": len(points),
            "max_cell": peak,
            "cell": {"row": row, "col": grid[row].index(peak), "rows": self.rows, "cols": self.cols},
            "density_limit": self.limit,
        }
        return data, [event]
