"""An analytic that numbers its events: one per processed frame, carrying
`{"run": <id of the processor>, "seq": 0, 1, 2, ...}` in pipeline_data. Stored
events then show whether any was lost (a gap) or stored twice (a repeat).

Registered only where VISIONAIRE_ANALYTIC_MODULES names this module (the outage
test's platform and bench/api_load.py), so the registry tests see no change.
"""

from __future__ import annotations

import uuid

from pydantic import Field

from analytics.plugins import AnalyticPlugin, EventRecord, Frame, Processor, ProcessResult, StrictConfig
from analytics.registry import register

ANALYTIC_ID = "TEST-SEQ"


class SequenceConfig(StrictConfig):
    sampling_time_ms: int = Field(default=0, ge=0, le=60_000, description="Time between frames used.")


class SequenceProcessor(Processor):
    def __init__(self) -> None:
        self.run = uuid.uuid4().hex  # a new processor (a stream restart) numbers from 0 again
        self.seq = 0

    def process(self, frame: Frame) -> ProcessResult:
        record = EventRecord(
            primary_text=f"seq {self.seq}",
            pipeline_data={"run": self.run, "seq": self.seq, "frame": frame.index},
        )
        self.seq += 1
        return ProcessResult(events=[record])


@register
class SequenceAnalytic(AnalyticPlugin):
    id = ANALYTIC_ID
    name = "Sequence"
    major_version = 1
    minor_version = 0
    publisher = "Tests"
    description = "Emits one numbered event per processed frame"
    type = "detection"
    config_model = SequenceConfig

    def create_processor(self, config: StrictConfig) -> Processor:
        return SequenceProcessor()
