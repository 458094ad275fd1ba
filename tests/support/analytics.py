"""A small analytic that really runs, registered only by the test settings, so
the registry, seats and pipeline routes can be exercised before the face
recognition analytic exists."""

from __future__ import annotations

from pydantic import Field

from analytics.plugins import (
    AnalyticPlugin,
    EventRecord,
    Frame,
    OverlayItem,
    Processor,
    ProcessResult,
    StrictConfig,
    SubAnalytic,
)
from analytics.registry import register


class Point(StrictConfig):
    x: float = Field(ge=0, le=1, description="Fraction of the frame width.")
    y: float = Field(ge=0, le=1, description="Fraction of the frame height.")


class Area(StrictConfig):
    name: str = Field(default="Area", description="Label shown on the overlay.")
    points: list[Point] = Field(min_length=2, description="Polygon (or line) points.")


class BrightnessConfig(StrictConfig):
    threshold: float = Field(default=128.0, ge=0, le=255, title="Threshold", description="Mean brightness.")
    sampling_time_ms: int = Field(default=100, ge=0, le=60_000, description="Time between frames used.")
    areas: list[Area] = Field(default_factory=list, description="Areas drawn on the overlay.")


class BrightnessRules(StrictConfig):
    min_duration_ms: int = Field(default=0, ge=0, description="How long the level must hold.")


class DwellConfig(StrictConfig):
    dwell_ms: int = Field(default=1000, ge=0, description="Time above threshold before an event.")


class BrightnessProcessor(Processor):
    def __init__(self, config: BrightnessConfig):
        self.config = config
        self.above = False

    def process(self, frame: Frame) -> ProcessResult:
        level = float(frame.image.mean())
        height, width = frame.image.shape[:2]
        overlay = [OverlayItem(kind="box", points=((0, 0), (width, height)), label=f"{level:.0f}")]
        events = []
        above = level >= self.config.threshold
        if above and not self.above:
            events.append(EventRecord(primary_text="bright", pipeline_data={"level": level}))
        self.above = above
        return ProcessResult(overlay=overlay, events=events)


@register
class BrightnessAnalytic(AnalyticPlugin):
    id = "TEST-BRIGHT"
    name = "Brightness"
    major_version = 1
    minor_version = 0
    publisher = "Tests"
    description = "Emits an event when the frame's mean brightness crosses a threshold"
    type = "detection"
    config_model = BrightnessConfig
    rules_model = BrightnessRules
    presets = {"dark-room": {"threshold": 40.0}}
    sub_analytics = (
        SubAnalytic(id="dwell", name="Dwell", description="Time above.", config_model=DwellConfig),
    )

    def create_processor(self, config: StrictConfig) -> Processor:
        assert isinstance(config, BrightnessConfig)
        return BrightnessProcessor(config)
