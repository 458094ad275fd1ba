"""NFV4-MVA: vehicle analytics on a stream.

Sub-analytics (described by /v2/config/pipeline/NFV4-MVA), on one tracker of
cars, motorcycles, buses, trucks and bicycles (`classes`):
- line counting by class: `lines`; one event per vehicle crossing, with the
  direction and the line's running totals; a line with `expected_direction`
  flags crossings the other way (wrong way: its own event type and count);
- area occupancy by class: `areas` with `occupancy_limit`;
- stopped vehicle (illegal parking): `areas` with `stop_ms`; an event when a
  vehicle barely moves there for that long, with how long in `dwell_ms`.

A vehicle's class is the most frequent of its track's recent labels (the
detector often flips between car and truck on one vehicle).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from analytics.plugins import AnalyticPlugin, Processor, StrictConfig, SubAnalytic
from analytics.registry import register

from .analytic import (
    WHOLE_FRAME,
    AreaOccupancyPart,
    CountingLine,
    ObjectConfigBase,
    ObjectProcessor,
    ZoneArea,
    sampling_field,
)
from .capabilities import OBJECT_DETECTOR
from .zones import Area, ZoneEvent

ANALYTIC_ID = "NFV4-MVA"
VehicleClass = Literal["car", "motorcycle", "bus", "truck", "bicycle"]
VEHICLE_CLASSES: list[str] = ["car", "motorcycle", "bus", "truck", "bicycle"]
VehicleEvent = Literal["line_crossing", "wrong_way", "occupancy_over", "occupancy_clear", "stopped"]
VEHICLE_EVENTS: list[str] = ["line_crossing", "wrong_way", "occupancy_over", "occupancy_clear", "stopped"]


class VehicleLine(CountingLine):
    expected_direction: Literal["both", "in", "out"] = Field(
        default="both",
        title="Expected direction",
        description="The one direction traffic may cross in; a crossing the other way is a wrong-way "
        "event. both: no wrong way.",
    )


class VehicleArea(ZoneArea):
    stop_ms: int | None = Field(
        default=None,
        ge=1000,
        le=86_400_000,
        title="Stop time",
        description="An event when a vehicle stays (moves less than about a third of its height) this "
        "many milliseconds in the area: illegal parking; null: no such events.",
    )


class VehicleRules(StrictConfig):
    events: list[VehicleEvent] = Field(
        default_factory=lambda: list(VEHICLE_EVENTS),
        title="Events",
        description="Which alerts become events (counts are kept either way).",
    )


class VehicleConfig(ObjectConfigBase):
    sampling_time_ms: int = sampling_field()
    classes: list[VehicleClass] = Field(
        default_factory=lambda: list(VEHICLE_CLASSES),
        min_length=1,
        title="Classes",
        description="The vehicle classes analysed.",
    )
    lines: list[VehicleLine] = Field(
        default_factory=list, max_length=16, title="Counting lines", description="Line counting, wrong way."
    )
    areas: list[VehicleArea] = Field(
        default_factory=list,
        max_length=16,
        title="Areas",
        description="Area occupancy (occupancy_limit) and stopped vehicles (stop_ms).",
    )
    rules: VehicleRules = Field(default_factory=VehicleRules, title="Rules")


class LineCountingPart(StrictConfig):
    lines: list[VehicleLine] = Field(default_factory=list, max_length=16, title="Counting lines")


class StoppedPart(StrictConfig):
    areas: list[VehicleArea] = Field(default_factory=list, max_length=16, title="Areas with a stop time")


MIDDLE_LINE = [{"x": 0.05, "y": 0.6}, {"x": 0.95, "y": 0.6}]

PRESETS: dict[str, dict[str, Any]] = {
    # A road: one line across it, both directions counted by class.
    "traffic-counting": {"lines": [{"name": "road", "points": MIDDLE_LINE, "in_side": "right"}]},
    # A one-way street: crossings upwards are wrong way.
    "one-way": {
        "lines": [{"name": "one-way", "points": MIDDLE_LINE, "in_side": "right", "expected_direction": "in"}]
    },
    # A no-parking zone: a vehicle standing there for two minutes.
    "parking": {
        "sampling_time_ms": 500,
        "areas": [{"name": "no-parking", "points": WHOLE_FRAME, "stop_ms": 120_000}],
    },
    # A car park: how many vehicles, an event above 50.
    "occupancy": {
        "sampling_time_ms": 1000,
        "areas": [{"name": "car park", "points": WHOLE_FRAME, "occupancy_limit": 50, "hold_ms": 5000}],
    },
}


class VehicleProcessor(ObjectProcessor):
    analytic_id = ANALYTIC_ID
    default_label = "car"
    sub_analytic_of = {
        "line_crossing": "line_counting",
        "wrong_way": "wrong_way",
        "occupancy_over": "area_occupancy",
        "occupancy_clear": "area_occupancy",
        "stopped": "stopped_vehicle",
    }

    def __init__(self, config: VehicleConfig, **kwargs) -> None:
        super().__init__(config, labels=frozenset(config.classes), **kwargs)

    def area(self, area) -> Area:
        return Area(
            area.name,
            [(p.x, p.y) for p in area.points],
            limit=area.occupancy_limit,
            stop_ms=float(area.stop_ms) if area.stop_ms else None,
            hold_ms=float(area.hold_ms),
        )

    def event_type(self, event: ZoneEvent) -> str | None:
        if event.kind == "crossing" and event.wrong_way:
            return "wrong_way"
        return super().event_type(event)


@register
class VehicleAnalytic(AnalyticPlugin):
    id = ANALYTIC_ID
    name = "Vehicle Analytics"
    major_version = 1
    minor_version = 0
    publisher = "Nodeflux"
    description = "Vehicle counting by class across lines, area occupancy, stopped vehicles and wrong way"
    type = "counting"
    config_model = VehicleConfig
    rules_model = VehicleRules
    presets = PRESETS
    models = (OBJECT_DETECTOR,)
    count_metric = (
        "visionaire_vehicles_counted",
        "Vehicles counted by NFV4-MVA: line crossings (in, out, wrong_way), area entries (enter) and "
        "stopped vehicles",
    )
    sub_analytics = (
        SubAnalytic(
            "line_counting",
            "Line counting",
            "One event per vehicle crossing a line, by class, with the direction and running totals.",
            LineCountingPart,
        ),
        SubAnalytic(
            "wrong_way",
            "Wrong way",
            "An event when a vehicle crosses a line against its expected_direction.",
            LineCountingPart,
        ),
        SubAnalytic(
            "area_occupancy",
            "Area occupancy",
            "Current and peak count per area and class; an event when occupancy_limit is exceeded and "
            "when it clears.",
            AreaOccupancyPart,
        ),
        SubAnalytic(
            "stopped_vehicle",
            "Stopped vehicle",
            "An event when a vehicle stays in an area for stop_ms (illegal parking).",
            StoppedPart,
        ),
    )

    def create_processor(self, config: StrictConfig) -> Processor:
        assert isinstance(config, VehicleConfig)
        return VehicleProcessor(config)
