"""TEST-MOTION: a frame-difference motion detector, written as a third party
would write an analytic: this module alone, registered by naming it in
VISIONAIRE_ANALYTIC_MODULES (the registry's public entry point). Nothing in the
platform's own packages names it (tests/analytics/test_motion_plugin.py checks).

Per sampled frame: grey, blurred, compared with the previous sampled frame; the
pixels that changed by more than `pixel_threshold` form the motion. When they
cover at least `min_area` of the frame, the overlay boxes them and, at most once
every `cooldown_ms`, an event is made (`pipeline_data.area`: the share that moved).
"""

from __future__ import annotations

import time

import cv2
import numpy as np
from pydantic import Field

from analytics.plugins import (
    AnalyticPlugin,
    EventRecord,
    Frame,
    OverlayItem,
    Processor,
    ProcessResult,
    StrictConfig,
)
from analytics.registry import register
from analytics.runtime import SharedModel

ANALYTIC_ID = "TEST-MOTION"
COLOR_MOTION = "#ff9100"
# Frames are compared at this width: motion needs no detail, and it bounds the cost.
WORK_WIDTH = 160


def _warm() -> dict:
    """The "model" is the difference kernel: run it once, as a real model is."""
    started = time.perf_counter()
    blank = np.zeros((120, WORK_WIDTH), dtype=np.uint8)
    cv2.absdiff(cv2.GaussianBlur(blank, (5, 5), 0), blank)
    return {"warm_up_seconds": round(time.perf_counter() - started, 4), "provider": "opencv"}


FRAME_DIFFERENCE = SharedModel("motion-frame-difference", warm=_warm)


class MotionConfig(StrictConfig):
    sampling_time_ms: int = Field(
        default=100,
        ge=0,
        le=60_000,
        title="Sampling time",
        description="Milliseconds between frames compared.",
    )
    pixel_threshold: int = Field(
        default=25,
        ge=1,
        le=255,
        title="Pixel threshold",
        description="Grey-level change that counts as motion.",
    )
    min_area: float = Field(
        default=0.01, gt=0, le=1, title="Minimum area", description="Share of the frame that must move."
    )
    cooldown_ms: int = Field(
        default=5000, ge=0, le=3_600_000, title="Cooldown", description="Milliseconds between two events."
    )


class MotionProcessor(Processor):
    def __init__(self, config: MotionConfig):
        self.config = config
        self.previous: np.ndarray | None = None
        self.last_event_at: float | None = None

    def _small_grey(self, image: np.ndarray) -> np.ndarray:
        height, width = image.shape[:2]
        scale = WORK_WIDTH / width
        small = cv2.resize(image, (WORK_WIDTH, max(1, round(height * scale))), interpolation=cv2.INTER_AREA)
        return cv2.GaussianBlur(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY), (5, 5), 0)

    def process(self, frame: Frame) -> ProcessResult:
        grey = self._small_grey(frame.image)
        previous, self.previous = self.previous, grey
        if previous is None or previous.shape != grey.shape:
            return ProcessResult()
        moved = cv2.absdiff(grey, previous) > self.config.pixel_threshold
        area = float(moved.mean())
        if area < self.config.min_area:
            return ProcessResult()
        ys, xs = np.nonzero(moved)
        scale = frame.image.shape[1] / WORK_WIDTH
        box = (
            (float(xs.min() * scale), float(ys.min() * scale)),
            (float(xs.max() * scale), float(ys.max() * scale)),
        )
        overlay = [OverlayItem(kind="box", points=box, label="motion", color=COLOR_MOTION)]
        cooldown = self.config.cooldown_ms / 1000
        if self.last_event_at is not None and frame.timestamp - self.last_event_at < cooldown:
            return ProcessResult(overlay=overlay)
        self.last_event_at = frame.timestamp
        event = EventRecord(
            primary_text="motion",
            pipeline_data={"area": round(area, 4)},
            search_text="motion",
            timestamp=frame.timestamp,
        )
        return ProcessResult(overlay=overlay, events=[event])


@register
class MotionAnalytic(AnalyticPlugin):
    id = ANALYTIC_ID
    name = "Motion"
    major_version = 1
    minor_version = 0
    publisher = "Tests"
    description = "Frame-difference motion detection"
    type = "detection"
    config_model = MotionConfig
    models = (FRAME_DIFFERENCE,)

    def create_processor(self, config: StrictConfig) -> Processor:
        assert isinstance(config, MotionConfig)
        return MotionProcessor(config)
