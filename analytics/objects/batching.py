"""One batching runtime per worker process for the object detector.

Every stream of a worker runs its analytics in its own thread; they all call
`detect(frame)` on the same runtime. Each caller letterboxes its frame in its
own thread, then queues the tensor; one inference thread takes up to
`batch_size` queued frames, waiting at most `max_wait_ms` after the oldest for
others to join, runs them in one `session.run`, and hands each caller its own
frame's rows, which the caller turns into detections.

Batches are what make many streams cheap on a GPU (not measured yet: no GPU
was at hand). On a 2-core CPU a batch of 8 cost 15-20% less CPU per frame than
single calls, yet streams calling the model side by side kept both cores as
busy: the batched runtime matched them on a quiet machine and trailed them
(0.62-0.82) on a loaded one (bench/README.md). So `batch_size` 1 is a mode of
its own for CPU-only hosts: no inference thread, each caller runs its own
frame in its own thread, at most `capacity` at once.

Either way the runtime is bounded. When `capacity` frames are queued (or, at
batch size 1, running), `detect` raises `DetectorBusy` at once (counted)
instead of waiting: the model is behind, and the caller drops the frame as the
stream runner drops frames it cannot analyse. A queued frame waits at most for
the batches ahead of it (capacity / batch_size inference calls).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import TypedDict

import numpy as np

from .detector import Detection, Letterbox, ObjectDetector

logger = logging.getLogger(__name__)

LATENCY_WINDOW = 1000  # recent requests kept for the latency percentile
GPU_BATCH_SIZE = 8  # batch size when the setting is 0 and the detector runs on a GPU


class DetectorBusy(RuntimeError):
    """The detector's queue is full: this frame was not analysed."""


class DetectorStopped(RuntimeError):
    """The runtime was stopped before this frame was analysed."""


class BatchStats(TypedDict):
    queued: int  # waiting for the inference thread now
    in_flight: int  # being inferred now
    capacity: int
    batch_size: int
    max_wait_ms: float
    requests: int  # detect() calls
    completed: int  # answered with detections
    busy: int  # refused at once because the queue was full
    failed: int  # the model raised (the callers got the error)
    batches: int  # inference calls
    mean_batch_size: float
    last_batch_size: int
    mean_inference_ms: float  # per inference call
    mean_latency_ms: float  # per request: detect() called -> detections returned
    p95_latency_ms: float  # over the last LATENCY_WINDOW requests
    provider: str


@dataclass
class _Request:
    tensor: np.ndarray
    future: Future
    enqueued: float


class BatchingDetector:
    def __init__(
        self,
        detector: ObjectDetector,
        *,
        batch_size: int = 8,
        max_wait_ms: float = 5.0,
        capacity: int = 32,
        name: str = "object-detector",
    ) -> None:
        self.detector = detector
        self.batch_size = max(1, batch_size)
        self.max_wait_s = max(0.0, max_wait_ms) / 1000
        self.capacity = max(1, capacity)
        self._queue: deque[_Request] = deque()
        self._cond = threading.Condition()
        self._stats_lock = threading.Lock()
        self._stopping = False
        self._in_flight = 0
        self.requests = self.completed = self.busy = self.failed = 0
        self.batches = self.frames_inferred = self.last_batch_size = 0
        self._inference_s = 0.0
        self._latency_s = 0.0
        self._latencies: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self._thread: threading.Thread | None = None
        if self.batch_size > 1:
            self._thread = threading.Thread(target=self._run, name=f"{name}-batcher", daemon=True)
            self._thread.start()

    # --- callers (one thread per stream) -------------------------------------------------

    def detect(self, frame: np.ndarray, *, timeout: float | None = 30.0) -> list[Detection]:
        """This frame's detections. Raises DetectorBusy at once when the queue is
        full, DetectorStopped after stop(), TimeoutError after `timeout` seconds
        (batched mode), or what the model raised."""
        started = time.monotonic()
        with self._stats_lock:
            self.requests += 1
        # Checked before the letterbox too, so a refused frame costs nothing.
        self._refuse_if_full()
        tensor, letterbox = self.detector.prepare(frame)
        if self._thread is None:
            return self._detect_here(tensor, letterbox, started)
        request = _Request(tensor, Future(), time.monotonic())
        with self._cond:
            self._refuse_if_full()
            self._queue.append(request)
            self._cond.notify()
        try:
            rows = request.future.result(timeout)
        except FutureTimeout:
            raise TimeoutError(f"no detections within {timeout} s") from None
        return self._finished(rows, letterbox, started)

    def _detect_here(self, tensor: np.ndarray, letterbox: Letterbox, started: float) -> list[Detection]:
        """Batch size 1: the caller's thread runs its own frame."""
        with self._cond:
            self._refuse_if_full()
            self._in_flight += 1
        try:
            rows = self._infer([tensor])[0]
        finally:
            with self._cond:
                self._in_flight -= 1
                self._cond.notify_all()
        return self._finished(rows, letterbox, started)

    def _finished(self, rows: np.ndarray, letterbox: Letterbox, started: float) -> list[Detection]:
        detections = self.detector.finish(rows, letterbox)
        elapsed = time.monotonic() - started
        with self._stats_lock:
            self.completed += 1
            self._latency_s += elapsed
            self._latencies.append(elapsed)
        return detections

    def _refuse_if_full(self) -> None:
        if self._stopping:
            raise DetectorStopped("the object detector runtime is stopped")
        if len(self._queue) + (self._in_flight if self._thread is None else 0) >= self.capacity:
            with self._stats_lock:
                self.busy += 1
                busy = self.busy
            if busy == 1 or busy % 100 == 0:
                logger.warning("object detector is behind: %d frames refused so far", busy)
            raise DetectorBusy(f"the object detector's queue is full ({self.capacity} frames)")

    # --- inference ----------------------------------------------------------------------------

    def _infer(self, tensors: list[np.ndarray]) -> np.ndarray:
        started = time.monotonic()
        try:
            rows = self.detector.infer(np.stack(tensors))
        except Exception:
            logger.exception("object detector failed on a batch of %d frames", len(tensors))
            with self._stats_lock:
                self.failed += len(tensors)
            raise
        with self._stats_lock:
            self.batches += 1
            self.frames_inferred += len(tensors)
            self.last_batch_size = len(tensors)
            self._inference_s += time.monotonic() - started
        return rows

    def _next_batch(self) -> list[_Request] | None:
        with self._cond:
            while not self._queue and not self._stopping:
                self._cond.wait()
            if self._stopping:
                return None
            # Frames that waited while the last batch ran go at once; a lone frame
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
                rows = self._infer([request.tensor for request in batch])
            except Exception as exc:
                for request in batch:
                    request.future.set_exception(exc)
            else:
                for index, request in enumerate(batch):
                    request.future.set_result(rows[index])
            with self._cond:
                self._in_flight = 0
        # Stopped: whatever is still queued will not be analysed.
        with self._cond:
            left, self._queue = list(self._queue), deque()
        for request in left:
            request.future.set_exception(DetectorStopped("the object detector runtime stopped"))

    # --- lifecycle and figures -----------------------------------------------------------

    @property
    def running(self) -> bool:
        if self._thread is None:
            return not self._stopping or self._in_flight > 0
        return self._thread.is_alive()

    def stop(self, timeout: float = 10.0) -> bool:
        """Refuse new frames, let the frames being inferred finish, fail the queued
        ones with DetectorStopped; True when all inference ended within `timeout`."""
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
                batches=self.batches,
                mean_batch_size=round(self.frames_inferred / self.batches, 3) if self.batches else 0.0,
                last_batch_size=self.last_batch_size,
                mean_inference_ms=round(1000 * self._inference_s / self.batches, 3) if self.batches else 0.0,
                mean_latency_ms=round(1000 * self._latency_s / self.completed, 3) if self.completed else 0.0,
                p95_latency_ms=round(1000 * p95, 3),
                provider=self.detector.provider,
            )


_runtime: BatchingDetector | None = None
_runtime_lock = threading.Lock()


def object_runtime() -> BatchingDetector:
    """The process's batching runtime over `object_detector()`, from settings;
    every stream of the worker shares it. Batch size 0 in settings: 8 on a GPU,
    1 (no inference thread) on a CPU."""
    global _runtime
    runtime = _runtime
    if runtime is not None and runtime.running:
        return runtime
    from django.conf import settings

    from .detector import object_detector

    with _runtime_lock:
        if _runtime is None or not _runtime.running:
            detector = object_detector()
            _runtime = BatchingDetector(
                detector,
                batch_size=settings.DETECT_BATCH_SIZE
                or (GPU_BATCH_SIZE if detector.run_mode == "GPU" else 1),
                max_wait_ms=settings.DETECT_BATCH_WAIT_MS,
                capacity=settings.DETECT_QUEUE_CAPACITY,
            )
        return _runtime


def object_runtime_stop(timeout: float = 10.0) -> bool:
    """Stop the process's runtime (worker shutdown); a later object_runtime() starts a new one."""
    global _runtime
    with _runtime_lock:
        runtime, _runtime = _runtime, None
    return runtime.stop(timeout) if runtime is not None else True
