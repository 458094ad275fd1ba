"""The analytic plugin interface.

An analytic is code: metadata for `/analytic_list`, a strict pydantic config
model (served as JSON Schema and used to validate and fill pipeline configs),
optional rules and presets, and a processor that turns frames into overlay
items and events. The stream runtime knows nothing about what an analytic
looks for.

A plugin also declares what the platform does for it, driven by the registry:

- `models`: the shared models its processors use (analytics.runtime.SharedModel):
  warmed when a worker starts if the analytic is installed, their state in the
  worker's runtime report, counted as a GPU service while on CUDA, and the info
  series they declare on /metrics;
- `image_search` (optional): embeds a query image for search by image
  (POST /smart-search type image), in the space of the embeddings its events carry;
- `count_metric` (optional): the counter /metrics shows its stored counts over
  time as (analytics.counts);
- `extract_records` (optional): reads an image pushed to a pipeline
  (POST /extract) into events; without it the processor runs on the image as
  on a one-frame stream.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from live.events import EventRecord
from live.frames import OverlayItem

from .runtime import SharedModel

__all__ = [
    "AnalyticPlugin",
    "EventRecord",
    "Frame",
    "ImageSearch",
    "NoRules",
    "NothingToSearch",
    "OverlayItem",
    "ProcessResult",
    "Processor",
    "QueryEmbeddings",
    "Point",
    "SharedModel",
    "StrictConfig",
    "SubAnalytic",
]


class StrictConfig(BaseModel):
    """Base for config models: unknown keys are refused, every field has a default."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# A point of a line or an area in an analytic's config (a comment, not a docstring:
# a docstring would change every config's JSON Schema).
class Point(StrictConfig):
    x: float = Field(ge=0, le=1, title="X", description="Fraction of the frame width, from the left.")
    y: float = Field(ge=0, le=1, title="Y", description="Fraction of the frame height, from the top.")


class NoRules(StrictConfig):
    """An analytic without rules serves `{}` at /rules/pipeline."""


@dataclass(frozen=True)
class Frame:
    image: np.ndarray  # BGR, as OpenCV decodes it
    timestamp: float  # unix seconds of capture
    index: int
    stream_id: str
    node_num: int


class NothingToSearch(Exception):
    """The query image shows nothing an image search can look for; the message
    says so (the route answers 400 with it)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class QueryEmbeddings:
    """What a query image is searched by: one vector per thing found in it, how a
    cosine distance between such vectors reads as a similarity in [0, 1], and,
    where the embedder's scores were measured, the probability that something
    else (a stranger's face) reaches a similarity against one stored event."""

    vectors: np.ndarray
    similarity: Callable[[float], float]
    false_accept: Callable[[float], float] | None = None


class ImageSearch(ABC):
    """A capability: embeds a query image in the space of the embeddings that the
    declaring analytics store with their events."""

    @abstractmethod
    def query_embeddings(self, image_bgr: np.ndarray) -> QueryEmbeddings:
        """The query's vectors; NothingToSearch when the image shows nothing to search for."""


@dataclass
class ProcessResult:
    overlay: list[OverlayItem] = field(default_factory=list)
    events: list[EventRecord] = field(default_factory=list)
    # JSON sent with the overlay to viewers of this analytic's overlay route, as the
    # MJPEG part header X-NF-Additional-Data (base64 JSON; e.g. a crowd heatmap grid).
    # None: no such header.
    additional_data: dict[str, Any] | None = None


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
    # The shared models its processors use (see the module docstring).
    models: ClassVar[tuple[SharedModel, ...]] = ()
    # Optional capability: search by image over the embeddings its events carry.
    image_search: ClassVar[ImageSearch | None] = None
    # For an analytic that stores counts over time (analytics.counts): the name and
    # help of the Prometheus counter /metrics shows them as (per stream, zone, label,
    # direction); None: it counts nothing.
    count_metric: ClassVar[tuple[str, str] | None] = None

    @abstractmethod
    def create_processor(self, config: StrictConfig) -> Processor: ...

    def extract_records(
        self, config: StrictConfig, image: np.ndarray, *, timestamp: float
    ) -> list[EventRecord] | None:
        """Optional capability: the events for an image pushed to a pipeline with
        this config; None (the default) runs the processor on it instead."""
        return None
