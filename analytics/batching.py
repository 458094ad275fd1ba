"""A model-agnostic batching runtime: one per model per worker process.

Every stream of a worker runs its analytics in its own thread; they all call
the same runtime with the items they want inferred (a frame's tensor for the
object detector, the aligned chips of a frame's faces for the face embedder).
Each caller prepares its items in its own thread, then queues them; one
inference thread takes up to `batch_size` queued items (of any callers),
waiting at most `max_wait_ms` after the oldest for others to join, runs them in
one call of the model, and hands each caller its own items' results. A call's
items may share a batch with other callers' items or span several batches.

`batch_size` 1 is a mode of its own: no inference thread, each caller runs its
own items in its own thread (one model call per caller), at most `capacity`
items at once. On a 2-core CPU the object detector gained nothing from batches
(bench/README.md), while the face embedder does (a batch of 8 costs about half
the CPU per face of single faces), so each model picks its own default.

Either way the runtime is bounded. When a call's items do not fit beside the
`capacity` items queued (or, at batch size 1, running), the call raises the
runtime's `busy_error` at once (counted) instead of waiting: the model is
behind, and the caller drops or defers its work; a slow model makes callers
skip work, it never makes them (or the capture feeding them) wait for room. A
call of more items than `capacity` runs in parts of at most `capacity` items.
When the model raises, every caller whose items were in that batch gets the
error, and the inference thread goes on with the next batch.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypedDict, TypeVar

logger = logging.getLogger(__name__)

LATENCY_WINDOW = 1000  # recent calls kept for the latency percentile

Item = TypeVar("Item")
Result = TypeVar("Result")


class ModelBusy(RuntimeError):
    """The model's queue is full: these items were not inferred."""


class ModelStopped(RuntimeError):
    """The runtime was stopped before these items were inferred."""


class BatchStats(TypedDict):
    queued: int  # items waiting for the inference thread now
    in_flight: int  # items being inferred now
    capacity: int
    batch_size: int
    max_wait_ms: float
    requests: int  # calls
    completed: int  # calls answered with results
    busy: int  # calls refused at once because the queue was full
    failed: int  # calls that got the model's error
    items: int  # items inferred
    batches: int  # inference calls
    mean_batch_size: float  # items per inference call
    last_batch_size: int
    mean_inference_ms: float  # per inference call
    mean_latency_ms: float  # per call: called -> results returned
    p95_latency_ms: float  # over the last LATENCY_WINDOW calls
    provider: str


class _Call:
    """One caller's items: their results fill in as their batches finish."""

    __slots__ = ("results", "remaining", "error", "done")

    def __init__(self, count: int) -> None:
        self.results: list[Any] = [None] * count
        self.remaining = count
        self.error: BaseException | None = None
        self.done = threading.Event()


@dataclass
class _Entry:
    call: _Call
    index: int
    item: Any
    enqueued: float = field(default_factory=time.monotonic)


class BatchingRuntime(Generic[Item, Result]):
    """Runs `infer(items) -> results` (one result per item, in order) for many
    callers. `label` names the model in messages ("the face embedder"),
    `unit` its items ("faces"); `provider` says where the model runs."""

    busy_error: type[ModelBusy] = ModelBusy
    stopped_error: type[ModelStopped] = ModelStopped

    def __init__(
        self,
        infer: Callable[[list[Item]], Sequence[Result]],
        *,
        batch_size: int = 8,
        max_wait_ms: float = 5.0,
        capacity: int = 32,
        name: str = "model",
        label: str = "the model",
        unit: str = "items",
        provider: Callable[[], str] | None = None,
    ) -> None:
        self._infer_batch = infer
        self.batch_size = max(1, batch_size)
        self.max_wait_s = max(0.0, max_wait_ms) / 1000
        self.capacity = max(1, capacity)
        self.label, self.unit = label, unit
        self._provider = provider or (lambda: "")
        self._queue: deque[_Entry] = deque()
        self._cond = threading.Condition()
        self._stats_lock = threading.Lock()
        self._stopping = False
        self._in_flight = 0
        self.requests = self.completed = self.busy = self.failed = 0
        self.batches = self.items_inferred = self.last_batch_size = 0
        self._inference_s = 0.0
        self._latency_s = 0.0
        self._latencies: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self._thread: threading.Thread | None = None
        if self.batch_size > 1:
            self._thread = threading.Thread(target=self._run, name=f"{name}-batcher", daemon=True)
            self._thread.start()

    # --- callers -------------------------------------------------------------------------

    def call(self, items: Sequence[Item], *, timeout: float | None = 30.0) -> list[Result]:
        """The results of `items`, in order. Raises `busy_error` at once when they
        do not fit in the queue, `stopped_error` after stop(), TimeoutError after
        `timeout` seconds (batched mode), or what the model raised."""
        started = self.begin(len(items))
        results = self.complete(items, timeout=timeout)
        self.record(started)
        return results

    def begin(self, count: int = 1) -> float:
        """Count a call of `count` items and refuse it now if they cannot fit, so a
        caller can check before preparing them; returns its start time for `record`."""
        started = time.monotonic()
        with self._stats_lock:
            self.requests += 1
        self._refuse_if_full(min(count, self.capacity))
        return started

    def complete(self, items: Sequence[Item], *, timeout: float | None = 30.0) -> list[Result]:
        """The inference half of `call`, after `begin`."""
        items = list(items)
        if not items:
            return []
        try:
            results: list[Result] = []
            for start in range(0, len(items), self.capacity):
                part = items[start : start + self.capacity]
                if self._thread is None:
                    results.extend(self._run_here(part))
                else:
                    results.extend(self._run_queued(part, timeout))
            return results
        except (ModelBusy, ModelStopped, TimeoutError):
            raise
        except Exception:
            with self._stats_lock:
                self.failed += 1
            raise

    def record(self, started: float) -> None:
        """A call answered: count it and its latency from `started`."""
        elapsed = time.monotonic() - started
        with self._stats_lock:
            self.completed += 1
            self._latency_s += elapsed
            self._latencies.append(elapsed)

    def _run_queued(self, items: list[Item], timeout: float | None) -> list[Result]:
        call = _Call(len(items))
        with self._cond:
            self._refuse_if_full(len(items))
            self._queue.extend(_Entry(call, index, item) for index, item in enumerate(items))
            self._cond.notify()
        if not call.done.wait(timeout):
            raise TimeoutError(f"{self.label} gave no answer within {timeout} s")
        if call.error is not None:
            raise call.error
        return call.results

    def _run_here(self, items: list[Item]) -> list[Result]:
        """Batch size 1: the caller's thread runs its own items."""
        with self._cond:
            self._refuse_if_full(len(items))
            self._in_flight += len(items)
        try:
            return self._infer(items)
        finally:
            with self._cond:
                self._in_flight -= len(items)
                self._cond.notify_all()

    def _refuse_if_full(self, count: int) -> None:
        if self._stopping:
            raise self.stopped_error(f"{self.label} runtime is stopped")
        load = len(self._queue) if self._thread is not None else self._in_flight
        if load + count > self.capacity:
            with self._stats_lock:
                self.busy += 1
                busy = self.busy
            if busy == 1 or busy % 100 == 0:
                logger.warning("%s is behind: %d calls refused so far", self.label, busy)
            raise self.busy_error(f"{self.label}'s queue is full ({self.capacity} {self.unit})")

    # --- inference ----------------------------------------------------------------------------

    def _infer(self, items: list[Item]) -> list[Result]:
        started = time.monotonic()
        try:
            results = self._infer_batch(items)
        except Exception:
            logger.exception("%s failed on a batch of %d %s", self.label, len(items), self.unit)
            raise
        if len(results) != len(items):
            raise RuntimeError(f"{self.label} answered {len(results)} results for {len(items)} {self.unit}")
        with self._stats_lock:
            self.batches += 1
            self.items_inferred += len(items)
            self.last_batch_size = len(items)
            self._inference_s += time.monotonic() - started
        return [results[index] for index in range(len(items))]

    def _next_batch(self) -> list[_Entry] | None:
        with self._cond:
            while not self._queue and not self._stopping:
                self._cond.wait()
            if self._stopping:
                return None
            # Items that waited while the last batch ran go at once; a lone item
            # waits at most max_wait for company.
            deadline = self._queue[0].enqueued + self.max_wait_s
            while len(self._queue) < self.batch_size and not self._stopping:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            if self._stopping:
                return None
            batch = [self._queue.popleft() for _ in range(min(self.batch_size, len(self._queue)))]
            self._in_flight = len(batch)
            return batch

    def _run(self) -> None:
        while (batch := self._next_batch()) is not None:
            try:
                results = self._infer([entry.item for entry in batch])
            except Exception as exc:
                for entry in batch:
                    _fail(entry.call, exc)
            else:
                for entry, result in zip(batch, results, strict=True):
                    call = entry.call
                    call.results[entry.index] = result
                    call.remaining -= 1  # only this thread touches `remaining`
                    if call.remaining == 0:
                        call.done.set()
            with self._cond:
                self._in_flight = 0
        # Stopped: whatever is still queued will not be inferred.
        with self._cond:
            left, self._queue = list(self._queue), deque()
        for entry in left:
            _fail(entry.call, self.stopped_error(f"{self.label} runtime stopped"))

    # --- lifecycle and figures -----------------------------------------------------------

    @property
    def running(self) -> bool:
        if self._thread is None:
            return not self._stopping or self._in_flight > 0
        return self._thread.is_alive()

    def stop(self, timeout: float = 10.0) -> bool:
        """Refuse new calls, let the items being inferred finish, fail the queued
        ones with `stopped_error`; True when all inference ended within `timeout`."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            if self._thread is None:
                return self._cond.wait_for(lambda: self._in_flight == 0, timeout)
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def stats(self) -> BatchStats:
        with self._stats_lock:
            latencies = sorted(self._latencies)
            p95 = latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))] if latencies else 0.0
            return BatchStats(
                queued=len(self._queue),
                in_flight=self._in_flight,
                capacity=self.capacity,
                batch_size=self.batch_size,
                max_wait_ms=self.max_wait_s * 1000,
                requests=self.requests,
                completed=self.completed,
                busy=self.busy,
                failed=self.failed,
                items=self.items_inferred,
                batches=self.batches,
                mean_batch_size=round(self.items_inferred / self.batches, 3) if self.batches else 0.0,
                last_batch_size=self.last_batch_size,
                mean_inference_ms=round(1000 * self._inference_s / self.batches, 3) if self.batches else 0.0,
                mean_latency_ms=round(1000 * self._latency_s / self.completed, 3) if self.completed else 0.0,
                p95_latency_ms=round(1000 * p95, 3),
                provider=self._provider(),
            )


def _fail(call: _Call, error: BaseException) -> None:
    if call.error is None:
        call.error = error
    call.done.set()
