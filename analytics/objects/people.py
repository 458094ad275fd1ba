"""NFV4-MPA: people analytics on a stream.

Sub-analytics (described by /v2/config/pipeline/NFV4-MPA), all on one tracker:
- line counting: `lines`; one event per person crossing, with the direction and
  the line's running totals;
- area occupancy: `areas` with `occupancy_limit`; current and peak count per
  area (overlay, counts), an event when the limit is exceeded and when it clears;
- dwell (loitering): `areas` with `dwell_ms`; an event when a person has stayed
  that long, with `dwell_ms`;
- crowd estimation: `crowd`; a density grid of where people stand, sent as the
  crowd heatmap header on the overlay MJPEG route, and an event when more people
  than `density_limit` stand in one cell of it.
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
    CrowdState,
    ObjectConfigBase,
    ObjectProcessor,
    ZoneArea,
    sampling_field,
)
from .capabilities import OBJECT_DETECTOR
from .zones import Area

ANALYTIC_ID = "NFV4-MPA"
PEOPLE = frozenset({"person"})
PeopleEvent = Literal["line_crossing", "occupancy_over", "occupancy_clear", "dwell", "crowd_density"]
PEOPLE_EVENTS: list[str] = ["line_crossing", "occupancy_over", "occupancy_clear", "dwell", "crowd_density"]


class PeopleArea(ZoneArea):
    dwell_ms: int | None = Field(
        default=None,
        ge=1000,
        le=86_400_000,
        title="Dwell time",
        description="An event when a person has been in the area this many milliseconds (loitering), "
        "once per visit; null: no dwell events.",
    )


class CrowdConfig(StrictConfig):
    enabled: bool = Field(
        default=False,
        title="Crowd estimation",
        description="Send the density grid as the heatmap header (X-NF-Additional-Data) of the overlay "
        "MJPEG route.",
    )
    grid_rows: int = Field(default=9, ge=1, le=64, title="Grid rows", description="Rows of the density grid.")
    grid_cols: int = Field(
        default=16, ge=1, le=64, title="Grid columns", description="Columns of the density grid."
    )
    density_limit: int | None = Field(
        default=None,
        ge=0,
        le=255,
        title="Density limit",
        description="An event when more people than this stand in one cell of the grid (held for "
        "hold_ms); null: no event.",
    )
    hold_ms: int = Field(
        default=2000, ge=0, le=600_000, title="Hold time", description="How long a density must hold."
    )


class PeopleRules(StrictConfig):
    events: list[PeopleEvent] = Field(
        default_factory=lambda: list(PEOPLE_EVENTS),
        title="Events",
        description="Which alerts become events (counts are kept either way).",
    )


class PeopleConfig(ObjectConfigBase):
    sampling_time_ms: int = sampling_field()
    lines: list[CountingLine] = Field(
        default_factory=list, max_length=16, title="Counting lines", description="Line counting."
    )
    areas: list[PeopleArea] = Field(
        default_factory=list,
        max_length=16,
        title="Areas",
        description="Area occupancy (occupancy_limit) and dwell (dwell_ms).",
    )
    crowd: CrowdConfig = Field(default_factory=CrowdConfig, title="Crowd estimation")
    rules: PeopleRules = Field(default_factory=PeopleRules, title="Rules")


class LineCountingPart(StrictConfig):
    lines: list[CountingLine] = Field(default_factory=list, max_length=16, title="Counting lines")


class DwellPart(StrictConfig):
    areas: list[PeopleArea] = Field(default_factory=list, max_length=16, title="Areas with a dwell time")


class CrowdPart(StrictConfig):
    crowd: CrowdConfig = Field(default_factory=CrowdConfig, title="Crowd estimation")


def _line(name: str, y: float) -> dict[str, Any]:
    return {"name": name, "points": [{"x": 0.05, "y": y}, {"x": 0.95, "y": y}], "in_side": "right"}


PRESETS: dict[str, dict[str, Any]] = {
    # A door seen from above or in front: one line across the middle; "in" is downwards.
    "entrance-counting": {"sampling_time_ms": 200, "lines": [_line("entrance", 0.5)]},
    # A room: how many people are in view, an event above 20.
    "occupancy": {
        "sampling_time_ms": 500,
        "areas": [{"name": "room", "points": WHOLE_FRAME, "occupancy_limit": 20, "hold_ms": 3000}],
    },
    # Loitering: anyone who stays two minutes anywhere in view.
    "loitering": {
        "sampling_time_ms": 500,
        "areas": [{"name": "watched", "points": WHOLE_FRAME, "dwell_ms": 120_000}],
    },
    # A square or a platform: heatmap, an event when 5 people stand in one cell.
    "crowd": {"sampling_time_ms": 500, "crowd": {"enabled": True, "density_limit": 5}},
}


class PeopleProcessor(ObjectProcessor):
    analytic_id = ANALYTIC_ID
    default_label = "person"
    sub_analytic_of = {
        "line_crossing": "line_counting",
        "occupancy_over": "area_occupancy",
        "occupancy_clear": "area_occupancy",
        "dwell": "dwell",
        "crowd_density": "crowd_estimation",
    }

    def __init__(self, config: PeopleConfig, **kwargs) -> None:
        super().__init__(config, labels=PEOPLE, **kwargs)
        crowd = config.crowd
        self._crowd = (
            CrowdState(crowd.grid_rows, crowd.grid_cols, crowd.density_limit, float(crowd.hold_ms))
            if crowd.enabled
            else None
        )

    def area(self, area) -> Area:
        return Area(
            area.name,
            [(p.x, p.y) for p in area.points],
            limit=area.occupancy_limit,
            dwell_ms=float(area.dwell_ms) if area.dwell_ms else None,
            hold_ms=float(area.hold_ms),
        )

    def crowd(self, frame_size, tracks, now_ms):
        if self._crowd is None:
            return None, []
        return self._crowd.update(frame_size, tracks, now_ms)


@register
class PeopleAnalytic(AnalyticPlugin):
    id = ANALYTIC_ID
    name = "People Analytics"
    major_version = 1
    minor_version = 0
    publisher = "Nodeflux"
    description = "People counting across lines, area occupancy, dwell (loitering) and crowd estimation"
    type = "counting"
    config_model = PeopleConfig
    rules_model = PeopleRules
    presets = PRESETS
    models = (OBJECT_DETECTOR,)
    count_metric = (
        "visionaire_people_counted",
        "People counted by NFV4-MPA: line crossings (in, out), area entries (enter) and dwell alerts",
    )
    sub_analytics = (
        SubAnalytic(
            "line_counting",
            "Line counting",
            "One event per person crossing a line, with the direction and the line's running totals.",
            LineCountingPart,
        ),
        SubAnalytic(
            "area_occupancy",
            "Area occupancy",
            "Current and peak count per area; an event when occupancy_limit is exceeded and when it clears.",
            AreaOccupancyPart,
        ),
        SubAnalytic(
            "dwell",
            "Dwell (loitering)",
            "An event when a person stays in an area for dwell_ms, with dwell_ms.",
            DwellPart,
        ),
        SubAnalytic(
            "crowd_estimation",
            "Crowd estimation",
            "A density grid sent as the crowd heatmap header of the overlay MJPEG route; an event when "
            "more than density_limit people stand in one cell.",
            CrowdPart,
        ),
    )

    def create_processor(self, config: StrictConfig) -> Processor:
        assert isinstance(config, PeopleConfig)
        return PeopleProcessor(config)
