"""Runs a stream's pipelines on its frames: each at its own sampling rate, each
isolated from the others (an analytic that raises is counted and shown in its
stats; the stream and the other pipelines go on)."""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from analytics.plugins import AnalyticPlugin, Frame, Processor, ProcessResult
from analytics.registry import get_plugin, validate_config
from core.errors import ApiError
from live.messages import PipelineFigures
from live.states import PipelineState

from .capture import RateMeter

logger = logging.getLogger(__name__)

LATENCY_SAMPLES = 200  # p95 over the last this many frames


@dataclass(frozen=True)
class PipelineSpec:
    """What the desired state says about one pipeline."""

    analytic_id: str
    config: dict[str, Any]
    seat_active: bool


@dataclass
class PipelineSlot:
    spec: PipelineSpec
    plugin: AnalyticPlugin | None = None
    processor: Processor | None = None
    interval_s: float = 0.0
    next_due: float = 0.0
    state: PipelineState = PipelineState.RUNNING
    last_error: str = ""
    errors: int = 0
    events_emitted: int = 0
    processed: int = 0  # frames handed to the processor (benchmarks count analysed frames)
    latencies_ms: deque = field(default_factory=lambda: deque(maxlen=LATENCY_SAMPLES))
    meter: RateMeter = field(default_factory=RateMeter)

    def stats(self, now: float) -> PipelineFigures:
        samples = sorted(self.latencies_ms)
        p95 = samples[min(len(samples) - 1, int(0.95 * len(samples)))] if samples else 0.0
        return PipelineFigures(
            processed_fps=round(self.meter.rate(now), 2),
            last_latency_ms=round(self.latencies_ms[-1], 2) if self.latencies_ms else 0.0,
            p95_latency_ms=round(p95, 2),
            events_emitted=self.events_emitted,
            errors=self.errors,
            state=self.state.value,
            last_error=self.last_error,
        )


def _build(spec: PipelineSpec) -> PipelineSlot:
    slot = PipelineSlot(spec=spec)
    if not spec.seat_active:
        slot.state, slot.last_error = (
            PipelineState.NO_SEAT,
            "no active seat: check in a licence with more seats",
        )
        return slot
    try:
        slot.plugin = get_plugin(spec.analytic_id)
        config = validate_config(slot.plugin, spec.config)
        slot.processor = slot.plugin.create_processor(config)
        key = slot.plugin.sampling_key
        interval_ms = getattr(config, key, 0) if key else 0
        slot.interval_s = max(0.0, float(interval_ms or 0) / 1000.0)
    except ApiError as exc:
        slot.state, slot.last_error = PipelineState.ERROR, exc.message
    except Exception as exc:  # a plugin that fails to set up must not take the stream down
        logger.exception("pipeline %s could not be set up", spec.analytic_id)
        slot.state, slot.last_error = PipelineState.ERROR, f"setup failed: {exc!r}"[:500]
    return slot


class PipelineHost:
    def __init__(self, specs: list[PipelineSpec]) -> None:
        self.slots = [_build(spec) for spec in specs]
        self._last_stamp: float | None = None  # the last frame's timestamp

    def process(self, frame: Frame) -> list[tuple[str, ProcessResult]]:
        """Hand `frame` to every pipeline whose sampling interval has passed."""
        results = []
        # The stream's own time (a file read frame by frame runs on video time), so a
        # pipeline samples the same frames however fast they are processed.
        now = frame.timestamp
        # A frame a little early still counts when it is nearer the due time than the
        # next frame will be (half the frame interval seen last): 200 ms on a 25 fps
        # source then takes every fifth frame, 5 a second, not every sixth (4.2, as
        # "next = now + interval" gives) nor every fourth (6.25).
        gap = now - self._last_stamp if self._last_stamp is not None else 0.0
        self._last_stamp = now
        for slot in self.slots:
            if slot.processor is None:
                continue
            early = slot.next_due - now
            slack = min(slot.interval_s / 4, gap / 2) if gap > 0 else slot.interval_s / 4
            if slack < early <= 2 * slot.interval_s:
                continue  # not due yet (much earlier than due: the clock was set back)
            # The schedule keeps its phase. After a gap (a slow pipeline, a stalled
            # source) or a clock set back it restarts from now: a slow pipeline skips
            # frames instead of bursting to catch up.
            restart = -early >= slot.interval_s or early > slack
            slot.next_due = (now if restart else slot.next_due) + slot.interval_s
            started = time.perf_counter()
            try:
                result = slot.processor.process(frame)
            except Exception as exc:
                slot.errors += 1
                slot.last_error = f"{type(exc).__name__}: {exc}"[:500]
                if slot.errors == 1 or slot.errors % 100 == 0:
                    logger.exception(
                        "pipeline %s on %s raised (%d errors)",
                        slot.spec.analytic_id,
                        frame.stream_id,
                        slot.errors,
                    )
                continue
            slot.latencies_ms.append((time.perf_counter() - started) * 1000)
            slot.meter.tick(time.time())
            slot.processed += 1
            slot.events_emitted += len(result.events)
            results.append((slot.spec.analytic_id, result))
        return results

    def stats(self) -> dict[str, PipelineFigures]:
        now = time.time()
        return {slot.spec.analytic_id: slot.stats(now) for slot in self.slots}

    def update(self, specs: list[PipelineSpec]) -> list[tuple[str, ProcessResult]]:
        """Follow a change of the stream's pipelines: a pipeline whose spec did not
        change keeps its processor (and its state, e.g. face tracks); removed or
        changed ones are closed, and what they flush is returned."""
        kept = {slot.spec.analytic_id: slot for slot in self.slots if slot.spec in specs}
        flushed = self._close([slot for slot in self.slots if slot.spec.analytic_id not in kept])
        self.slots = [kept.get(spec.analytic_id) or _build(spec) for spec in specs]
        return flushed

    def close(self) -> list[tuple[str, ProcessResult]]:
        """Flush every processor (pending events) and mark the pipelines stopped."""
        return self._close(self.slots)

    @staticmethod
    def _close(slots: list[PipelineSlot]) -> list[tuple[str, ProcessResult]]:
        results = []
        for slot in slots:
            if slot.processor is not None:
                try:
                    result = slot.processor.close()
                    slot.events_emitted += len(result.events)
                    results.append((slot.spec.analytic_id, result))
                except Exception:
                    logger.exception("pipeline %s failed to close", slot.spec.analytic_id)
            slot.state = PipelineState.STOPPED
        return results
