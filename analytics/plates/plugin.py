"""NFV4-LPR3: licence plates of the vehicles passing a camera, one event per pass.

Per analysed frame (at most every `sampling_time_ms`): vehicles (car, motorcycle,
bus, truck) from the process's shared object detector, followed across frames by
ByteTrack (analytics.objects.tracking). A vehicle whose anchor (the bottom centre
of its box, where it touches the road) is in one of the configured `areas` (any
where none are configured) is a candidate for reading: of the frames since its
last reading, the best one (largest box, most confident, not cut by the frame's
edge) is kept, and read every `read_interval_ms`, at most `reads_per_track` times
(fewer once `agree_to_stop` readings gave the same plate). Reading is the plate
reader's localiser and recogniser on the vehicle's box under the region's format
(analytics.plates.reader), at most `MAX_READS_PER_FRAME` per frame so one frame's
work stays bounded. When the track ends (`track_timeout_ms` unseen) or has been in
view for `max_pass_ms`, the last kept frame is read too and the readings are voted
(analytics.plates.voting: per character, weighted by confidence); a plate voted
with at least `min_plate_confidence` makes the pass's one event, checked against
the configured watch lists (analytics.plates.watchlist).

Reading only the best frames, not every frame, is what keeps the cost near the
detector's: one read costs about as much as 3-5 detector frames on a CPU.
"""

from __future__ import annotations

import base64
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import cv2
import numpy as np
from pydantic import Field, field_validator

from analytics.objects.capabilities import OBJECT_DETECTOR
from analytics.objects.tracking import ByteTracker, TrackerConfig, TrackUpdate
from analytics.plugins import (
    AnalyticPlugin,
    EventRecord,
    Frame,
    OverlayItem,
    Point,
    Processor,
    ProcessResult,
    StrictConfig,
)
from analytics.registry import register
from core.db import connection_release

from .capabilities import PLATE_READER
from .formats import FormatError, PlateFormat, plate_format
from .matching import search_key
from .voting import TrackVote, Vote
from .watchlist import PlateWatchlist, WatchlistMatch, watchlist

logger = logging.getLogger(__name__)

ANALYTIC_ID = "NFV4-LPR3"
VEHICLE_CLASSES = ("car", "motorcycle", "bus", "truck")
# Reads per analysed frame, over all tracks (the ones waiting longest first): bounds
# one frame's work when many vehicles pass at once.
MAX_READS_PER_FRAME = 2
MAX_TRACKS = 64  # live vehicle tracks per pipeline
CROP_MARGIN = 0.04  # the vehicle crop read is the detector's box widened by this share
EDGE_MARGIN_PX = 2  # a box this close to the frame's edge is cut by it
JPEG_QUALITY = 85
LIST_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@:-]{0,63}$")

COLOR_PENDING = "#ffd600"
COLOR_READ = "#00e676"
COLOR_REGISTERED = "#ff1744"
COLOR_AREA = "#40c4ff"


# --- configuration -------------------------------------------------------------


class Area(StrictConfig):
    name: str = Field(default="Area", max_length=100, title="Name", description="The area's name in events.")
    points: list[Point] = Field(
        min_length=3,
        max_length=64,
        title="Points",
        description="Polygon corners in order, as fractions of the frame; only vehicles whose bottom "
        "centre is inside are read.",
    )


class PlateConfig(StrictConfig):
    areas: list[Area] = Field(
        default_factory=list,
        max_length=32,
        title="Areas",
        description="Zones of the frame (e.g. a gate's lane) where plates are read; vehicles elsewhere are "
        "tracked but not read. None: the whole frame.",
    )
    region: str = Field(
        default="indonesia",
        min_length=2,
        max_length=200,
        title="Plate format",
        description="The region's plate format: 'indonesia' (B 1234 XYZ), 'uk' (LS15 EBC), 'generic' "
        "(2-10 letters or digits), or a regular expression of character classes with counts, e.g. "
        "'([A-Z]{1,2})([0-9]{1,4})([A-Z]{0,3})' (each capturing group is one group of the displayed "
        "plate). Letters read in a digit's place and digits in a letter's are corrected (O/0, I/1, B/8, "
        "S/5, Z/2, G/6).",
    )
    min_plate_confidence: float = Field(
        default=0.6,
        ge=0,
        le=1,
        title="Minimum plate confidence",
        description="A pass whose voted plate has less confidence than this (the mean over its characters "
        "of the agreeing readings' confidence) makes no event.",
    )
    min_vehicle_confidence: float = Field(
        default=0.3,
        ge=0.05,
        le=1,
        title="Minimum vehicle confidence",
        description="Detections of vehicles less confident than this are ignored.",
    )
    vehicle_classes: list[Literal["car", "motorcycle", "bus", "truck"]] = Field(
        default_factory=lambda: list(VEHICLE_CLASSES),
        min_length=1,
        max_length=4,
        title="Vehicle classes",
        description="The detector's classes that are vehicles to read.",
    )
    min_vehicle_width: int = Field(
        default=80,
        ge=16,
        le=4096,
        title="Minimum vehicle width",
        description="Vehicles narrower than this (frame pixels) are tracked but not read: their plate is "
        "too small to read.",
    )
    sampling_time_ms: int = Field(
        default=100,
        ge=0,
        le=60_000,
        title="Sampling time",
        description="Milliseconds between frames that are analysed (0: every frame).",
    )
    read_interval_ms: int = Field(
        default=250,
        ge=0,
        le=60_000,
        title="Read interval",
        description="A vehicle's plate is read at most this often (milliseconds), on the best frame since "
        "its last reading.",
    )
    reads_per_track: int = Field(
        default=4,
        ge=1,
        le=32,
        title="Readings per vehicle",
        description="The most readings of one vehicle pass that are voted.",
    )
    agree_to_stop: int = Field(
        default=3,
        ge=0,
        le=32,
        title="Agreeing readings to stop",
        description="Once this many readings of a vehicle gave the same plate, it is not read again "
        "(0: read it reads_per_track times).",
    )
    track_timeout_ms: int = Field(
        default=1000,
        ge=100,
        le=60_000,
        title="Track timeout",
        description="Milliseconds a vehicle may stay unseen before its pass ends and its event is made.",
    )
    max_pass_ms: int = Field(
        default=10_000,
        ge=0,
        le=600_000,
        title="Longest pass",
        description="A vehicle in view this long (milliseconds; e.g. waiting at a barrier) gets its event "
        "then instead of when it leaves; 0: only when it leaves. One event per pass either way.",
    )
    watchlists: list[str] = Field(
        default_factory=list,
        max_length=16,
        title="Watch lists",
        description="Registered-vehicle lists each plate is checked against, in order; an event of a "
        "registered plate carries the vehicle's name, status and id.",
    )

    @field_validator("region")
    @classmethod
    def _region_is_a_format(cls, value: str) -> str:
        try:
            plate_format(value)
        except FormatError as exc:
            raise ValueError(f"not a plate format: {exc}") from None
        return value

    @field_validator("watchlists")
    @classmethod
    def _list_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not LIST_NAME_RE.match(name):
                raise ValueError(
                    f"'{name}' is not a list name (1-64 letters, digits and _ . @ : -, "
                    "starting with a letter or digit)"
                )
        return value


PRESETS: dict[str, dict[str, Any]] = {
    # A gate or barrier: one vehicle at a time, near and slow, often stopping; more and
    # surer readings, an event while it waits.
    "gate": {
        "sampling_time_ms": 100,
        "read_interval_ms": 300,
        "reads_per_track": 6,
        "agree_to_stop": 3,
        "track_timeout_ms": 2000,
        "max_pass_ms": 5000,
        "min_vehicle_width": 120,
        "min_plate_confidence": 0.7,
    },
    # A road: vehicles in view for a second or less, smaller; read early and often.
    "highway": {
        "sampling_time_ms": 40,
        "read_interval_ms": 80,
        "reads_per_track": 4,
        "agree_to_stop": 2,
        "track_timeout_ms": 700,
        "max_pass_ms": 8000,
        "min_vehicle_width": 60,
        "min_plate_confidence": 0.6,
    },
}


# --- the processor ----------------------------------------------------------------


@dataclass
class Sample:
    """A frame of a vehicle kept for reading: its crop (a copy) and where it was."""

    quality: float
    timestamp: float
    crop: np.ndarray
    origin: tuple[int, int]  # the crop's top-left corner in the frame
    box: tuple[float, float, float, float]  # the vehicle's box (x1, y1, x2, y2), frame pixels
    confidence: float
    area: str
    frame_size: tuple[int, int]  # width, height


@dataclass
class Reading:
    """A sample that was read: the plate found on it."""

    sample: Sample
    plate: str
    confidence: float
    plate_box: np.ndarray  # four corners, in the crop's pixels


@dataclass
class VehiclePass:
    track_id: int
    first_ms: float
    label: str = ""
    last_read_ms: float = 0.0
    pending: Sample | None = None  # the best frame since the last reading
    reads: int = 0
    readings: list[Reading] = field(default_factory=list)
    vote: TrackVote = field(default_factory=TrackVote)
    best: Vote | None = None
    done: bool = False  # its event was made (or it had none to make)
    match: WatchlistMatch | None = None


@dataclass
class PlateStats:
    frames: int = 0
    frames_skipped: int = 0  # the detector was busy
    detect_ms: float = 0.0
    reads: int = 0
    read_ms: float = 0.0
    plates_read: int = 0  # reads that found a plate of the format
    passes: int = 0  # events made
    passes_unread: int = 0  # passes read at least once without a confident plate
    watchlist_errors: int = 0


def _inside(point: tuple[float, float], polygon: np.ndarray) -> bool:
    return cv2.pointPolygonTest(polygon, (float(point[0]), float(point[1])), False) >= 0


def outermost(detections: list, max_containment: float = 0.8) -> list:
    """The detections without those lying mostly inside a larger one: the detector often
    gives a vehicle a whole box and a box of its back, either one the surer; the tracker
    would keep the surer one and its box would jump between the two (ending the track),
    while the plate reader wants the whole vehicle."""
    if len(detections) < 2:
        return list(detections)
    ordered = sorted(detections, key=lambda d: -(d.box[2] - d.box[0]) * (d.box[3] - d.box[1]))
    kept: list = []
    for detection in ordered:
        x1, y1, x2, y2 = detection.box
        area = max((x2 - x1) * (y2 - y1), 1e-9)
        if not any(
            max(0.0, min(x2, k.box[2]) - max(x1, k.box[0])) * max(0.0, min(y2, k.box[3]) - max(y1, k.box[1]))
            >= max_containment * area
            for k in kept
        ):
            kept.append(detection)
    return kept


def _jpeg(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    return data.tobytes() if ok else b""


class PlateProcessor(Processor):
    def __init__(
        self,
        config: PlateConfig,
        *,
        detect=None,
        reader=None,
        watchlist_impl: PlateWatchlist | None = None,
    ):
        self.config = config
        self.format: PlateFormat = plate_format(config.region)
        if detect is None:
            from analytics.objects.batching import object_runtime

            runtime = object_runtime()
            detect = runtime.detect
        if reader is None:
            from .reader import plate_reader

            reader = plate_reader()
        self._detect = detect
        self.reader = reader
        self._watchlist = watchlist_impl
        self.tracker = ByteTracker(
            TrackerConfig(
                high_score=max(config.min_vehicle_confidence, 0.5),
                new_track_score=max(config.min_vehicle_confidence, 0.5),
                lost_ttl_ms=float(config.track_timeout_ms),
                max_tracks=MAX_TRACKS,
            )
        )
        self.classes = frozenset(config.vehicle_classes)
        self.area_specs = [
            (area.name, np.float32([(p.x, p.y) for p in area.points])) for area in config.areas
        ]
        self._areas_px: list[tuple[str, np.ndarray]] = []
        self._size: tuple[int, int] | None = None
        self.passes: dict[int, VehiclePass] = {}
        self.stats = PlateStats()
        self._overlay: list[OverlayItem] = []

    # -- the frame loop --------------------------------------------------------------
    def process(self, frame: Frame) -> ProcessResult:
        from analytics.objects.batching import DetectorBusy

        image = frame.image
        now_ms = frame.timestamp * 1000
        height, width = image.shape[:2]
        if self._size != (width, height):
            self._size = (width, height)
            self._areas_px = [
                (name, points * np.float32([width, height])) for name, points in self.area_specs
            ]
        started = time.perf_counter()
        try:
            detections = self._detect(image)
        except DetectorBusy:
            self.stats.frames_skipped += 1
            return ProcessResult(overlay=self._overlay)
        self.stats.detect_ms += 1000 * (time.perf_counter() - started)
        self.stats.frames += 1
        minimum = self.config.min_vehicle_confidence
        vehicles = outermost([d for d in detections if d.label in self.classes and d.confidence >= minimum])
        update = self.tracker.update(vehicles, now_ms)
        self._observe(update, image, frame.timestamp)
        events: list[EventRecord] = []
        for track_id in update.ended:
            state = self.passes.pop(track_id, None)
            if state is not None:
                events += self._finish(state)
        if self.config.max_pass_ms > 0:
            for state in self.passes.values():
                if not state.done and now_ms - state.first_ms >= self.config.max_pass_ms:
                    events += self._finish(state)
        self._read_due(now_ms)
        self._overlay = self._overlay_items(update)
        return ProcessResult(overlay=self._overlay, events=events)

    def close(self) -> ProcessResult:
        events: list[EventRecord] = []
        for state in list(self.passes.values()):
            events += self._finish(state)
        self.passes.clear()
        logger.info("%s: pipeline closed: %s", ANALYTIC_ID, self.stats)
        return ProcessResult(events=events)

    # -- per vehicle --------------------------------------------------------------------
    def _area_of(self, box: tuple[float, float, float, float]) -> str | None:
        """The name of the area the vehicle is in ("" with no areas configured), or None."""
        if not self._areas_px:
            return ""
        anchor = ((box[0] + box[2]) / 2, box[3])
        for name, polygon in self._areas_px:
            if _inside(anchor, polygon):
                return name
        return None

    def _observe(self, update: TrackUpdate, image: np.ndarray, timestamp: float) -> None:
        height, width = image.shape[:2]
        for track in update.tracks:
            state = self.passes.get(track.track_id)
            if state is None:
                if len(self.passes) >= MAX_TRACKS:
                    continue
                state = VehiclePass(track.track_id, first_ms=track.first_ms, last_read_ms=track.first_ms)
                self.passes[track.track_id] = state
            state.label = track.label
            if not track.observed or state.done or state.reads >= self.config.reads_per_track:
                continue
            x1, y1, x2, y2 = track.box
            if x2 - x1 < self.config.min_vehicle_width:
                continue
            area = self._area_of(track.box)
            if area is None:
                continue
            # Bigger (nearer: larger characters) and surer boxes first; a box cut by the
            # frame's edge may have lost its plate.
            cut = x1 <= EDGE_MARGIN_PX or y1 <= EDGE_MARGIN_PX or x2 >= width - EDGE_MARGIN_PX
            cut = cut or y2 >= height - EDGE_MARGIN_PX
            quality = float(np.sqrt((x2 - x1) * (y2 - y1))) * track.confidence * (0.5 if cut else 1.0)
            if state.pending is not None and quality <= state.pending.quality:
                continue
            mx, my = (x2 - x1) * CROP_MARGIN, (y2 - y1) * CROP_MARGIN
            cx1, cy1 = max(0, int(x1 - mx)), max(0, int(y1 - my))
            cx2, cy2 = min(width, int(np.ceil(x2 + mx))), min(height, int(np.ceil(y2 + my)))
            if cx2 - cx1 < 8 or cy2 - cy1 < 8:
                continue
            # A copy: the capture may reuse the frame's buffer.
            crop = np.ascontiguousarray(image[cy1:cy2, cx1:cx2]).copy()
            state.pending = Sample(
                quality, timestamp, crop, (cx1, cy1), track.box, track.confidence, area, (width, height)
            )

    def _read_due(self, now_ms: float) -> None:
        interval = self.config.read_interval_ms
        due = [
            s
            for s in self.passes.values()
            if s.pending is not None and not s.done and now_ms - s.last_read_ms >= interval
        ]
        due.sort(key=lambda s: s.last_read_ms)
        for state in due[:MAX_READS_PER_FRAME]:
            self._read(state, now_ms)

    def _read(self, state: VehiclePass, now_ms: float | None = None) -> None:
        sample, state.pending = state.pending, None
        if sample is None or state.reads >= self.config.reads_per_track:
            return
        state.reads += 1
        if now_ms is not None:
            state.last_read_ms = now_ms
        started = time.perf_counter()
        found = self.reader.read_plate(sample.crop, self.format)
        self.stats.read_ms += 1000 * (time.perf_counter() - started)
        self.stats.reads += 1
        if found is None:
            return
        self.stats.plates_read += 1
        state.readings.append(Reading(sample, found.plate, found.confidence, found.box))
        state.vote.add(found.reading())
        state.best = state.vote.result()
        agreeing = state.best.agreeing if state.best is not None else 0
        if self.config.agree_to_stop and agreeing >= self.config.agree_to_stop:
            state.reads = self.config.reads_per_track  # sure enough: no more readings

    # -- per pass -----------------------------------------------------------------------
    def _finish(self, state: VehiclePass) -> list[EventRecord]:
        if state.done:
            return []
        if state.pending is not None:
            self._read(state)  # the best frame since the last reading
        state.done = True
        state.pending = None
        vote = state.best
        if vote is None or vote.confidence < self.config.min_plate_confidence:
            if state.reads:
                self.stats.passes_unread += 1
            return []
        self.stats.passes += 1
        return [self._event(state, vote)]

    def _registered(self, plate: str) -> tuple[str, WatchlistMatch] | None:
        if not self.config.watchlists:
            return None
        impl = self._watchlist or watchlist()
        found: tuple[str, WatchlistMatch] | None = None
        try:
            for list_name in self.config.watchlists:
                match = impl.match(list_name, plate)
                if match is not None and (found is None or (match.exact and not found[1].exact)):
                    found = (list_name, match)
                    if match.exact:
                        break
        except Exception:
            # The pass is still reported, as unregistered; the log says why.
            self.stats.watchlist_errors += 1
            logger.exception("%s: checking plate %s against the watch lists failed", ANALYTIC_ID, plate)
            return None
        finally:
            connection_release()  # the stream's thread holds no connection between passes
        return found

    def _event(self, state: VehiclePass, vote: Vote) -> EventRecord:
        agreeing = [r for r in state.readings if r.plate == vote.plate]
        # The pictures: of the readings that gave the voted plate, the best view of the
        # vehicle (largest, surest, not cut by the frame's edge; their confidences
        # differ by noise); without one, the most confident reading.
        if agreeing:
            best = max(agreeing, key=lambda r: (r.sample.quality, r.confidence))
        else:
            best = max(state.readings, key=lambda r: (r.confidence, r.sample.quality))
        sample = best.sample
        width, height = sample.frame_size
        x1, y1, x2, y2 = sample.box
        display = self.format.display(vote.plate)
        px1, py1 = np.floor(best.plate_box.min(axis=0)).astype(int)
        px2, py2 = np.ceil(best.plate_box.max(axis=0)).astype(int)
        pad = max(2, int(0.15 * (py2 - py1)))
        crop_h, crop_w = sample.crop.shape[:2]
        plate_crop = sample.crop[
            max(0, py1 - pad) : min(crop_h, py2 + pad), max(0, px1 - pad) : min(crop_w, px2 + pad)
        ]
        registered = self._registered(vote.plate)
        state.match = registered[1] if registered else None
        data: dict[str, Any] = {
            "area_name": sample.area,
            "bounding_box": {
                "left": round(max(0.0, x1) / width, 4),
                "top": round(max(0.0, y1) / height, 4),
                "width": round((min(x2, width) - max(0.0, x1)) / width, 4),
                "height": round((min(y2, height) - max(0.0, y1)) / height, 4),
            },
            "confidence": round(float(sample.confidence), 4),
            "label": state.label,
            "plate_number": display,
            "plate_text": vote.plate,
            "plate_confidence": round(float(vote.confidence), 4),
            "plate_readings": vote.readings,
            "plate_agreeing": vote.agreeing,
            "plate_format": self.format.name,
            "plate_image_jpeg": base64.b64encode(_jpeg(plate_crop)).decode("ascii")
            if plate_crop.size
            else "",
            "track_id": state.track_id,
            "registered": registered is not None,
        }
        words = [display, vote.plate, search_key(vote.plate), state.label]
        if registered is not None:
            list_name, match = registered
            data.update(
                vehicle_id=match.vehicle_id,
                name=match.name,
                status=match.status,
                match_exact=match.exact,
                watchlist=list_name,
                registered_plate=match.plate_number,
            )
            words += [match.name, match.status]
        return EventRecord(
            primary_text=state.label,
            secondary_text=display,
            pipeline_data=data,
            image_jpeg=_jpeg(sample.crop),
            search_text=" ".join(w for w in words if w),
            timestamp=sample.timestamp,
        )

    # -- overlay ---------------------------------------------------------------------------
    def _overlay_items(self, update: TrackUpdate) -> list[OverlayItem]:
        items = [
            OverlayItem(
                kind="area",
                points=tuple((float(x), float(y)) for x, y in polygon),
                label=name,
                color=COLOR_AREA,
            )
            for name, polygon in self._areas_px
        ]
        for track in update.tracks:
            if not track.observed:
                continue
            state = self.passes.get(track.track_id)
            x1, y1, x2, y2 = track.box
            label, color = f"#{track.track_id}", COLOR_PENDING
            if state is not None and state.best is not None:
                label = f"#{track.track_id} {self.format.display(state.best.plate)}"
                color = COLOR_REGISTERED if state.match is not None else COLOR_READ
            items.append(OverlayItem(kind="box", points=((x1, y1), (x2, y2)), label=label, color=color))
        return items


@register
class PlateRecognitionAnalytic(AnalyticPlugin):
    id = ANALYTIC_ID
    name = "License Plate Recognition"
    major_version = 3
    minor_version = 0
    publisher = "Nodeflux"
    description = "Reads the licence plates of passing vehicles, one event per vehicle, with watch lists"
    type = "recognition"
    config_model = PlateConfig
    presets = PRESETS
    models = (OBJECT_DETECTOR, PLATE_READER)

    def create_processor(self, config: StrictConfig) -> Processor:
        assert isinstance(config, PlateConfig)
        return PlateProcessor(config)
