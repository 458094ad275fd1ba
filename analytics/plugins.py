"""The analytic plugin interface.

An analytic is code: metadata for `/analytic_list`, a strict pydantic config
model (served as JSON Schema and used to validate and fill pipeline configs),
optional rules and presets, and a processor that turns frames into overlay
items and events. The stream runtime knows nothing about what an analytic
looks for.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict

from live.frames import OverlayItem

__all__ = [
    "AnalyticPlugin",
    "EventRecord",
    "Frame",
    "NoRules",
    "OverlayItem",
    "ProcessResult",
    "Processor",
    "StrictConfig",
    "SubAnalytic",
]


class StrictConfig(BaseModel):
    """Base for config models: unknown keys are refused, every field has a default."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class NoRules(StrictConfig):
    """An analytic without rules serves `{}` at /rules/pipeline."""


@dataclass(frozen=True)
class Frame:
    image: np.ndarray  # BGR, as OpenCV decodes it
    timestamp: float  # unix seconds of capture
    index: int
    stream_id: str
    node_num: int


@dataclass(frozen=True)
class EventRecord:
    primary_text: str = ""
    secondary_text: str = ""
    pipeline_data: dict[str, Any] = field(default_factory=dict)
    image_jpeg: bytes = b""
    embedding: list[float] | None = None
    search_text: str = ""
    # When what the event reports was seen (unix seconds), if earlier than the frame
    # that emits it (e.g. a face track's event is made once the track has ended).
    timestamp: float | None = None


@dataclass
class ProcessResult:
    overlay: list[OverlayItem] = field(default_factory=list)
    events: list[EventRecord] = field(default_factory=list)


class Processor(ABC):
    """Runs one pipeline: called from one thread, one frame at a time."""

    @abstractmethod
    def process(self, frame: Frame) -> ProcessResult: ...

    def close(self) -> ProcessResult:
        """Flush what is pending (e.g. tracks awaiting their best face) at stop."""
        return ProcessResult()


@dataclass(frozen=True)
class SubAnalytic:
    """A sub-analytic described by /v2/config/pipeline (e.g. counting, dwelling)."""

    id: str
    name: str
    description: str
    config_model: type[StrictConfig]


class AnalyticPlugin(ABC):
    id: ClassVar[str]
    name: ClassVar[str]
    major_version: ClassVar[int]
    minor_version: ClassVar[int]
    publisher: ClassVar[str]
    description: ClassVar[str]
    type: ClassVar[str]
    config_model: ClassVar[type[StrictConfig]]
    rules_model: ClassVar[type[StrictConfig]] = NoRules
    presets: ClassVar[dict[str, dict[str, Any]]] = {}
    sub_analytics: ClassVar[tuple[SubAnalytic, ...]] = ()
    # Milliseconds between frames handed to the processor, from the config key of this name.
    sampling_key: ClassVar[str | None] = "sampling_time_ms"

    @abstractmethod
    def create_processor(self, config: StrictConfig) -> Processor: ...
