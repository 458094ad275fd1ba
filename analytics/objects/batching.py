"""One batching runtime per worker process for the object detector (the
generic runtime of analytics/batching.py, with frames as its items).

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

import numpy as np

from analytics.batching import BatchingRuntime, BatchStats, ModelBusy, ModelStopped

from .detector import Detection, ObjectDetector

logger = logging.getLogger(__name__)

GPU_BATCH_SIZE = 8  # batch size when the setting is 0 and the detector runs on a GPU

__all__ = ["BatchStats", "BatchingDetector", "DetectorBusy", "DetectorStopped", "object_runtime"]


class DetectorBusy(ModelBusy):
    """The detector's queue is full: this frame was not analysed."""


class DetectorStopped(ModelStopped):
    """The runtime was stopped before this frame was analysed."""


class BatchingDetector(BatchingRuntime[np.ndarray, np.ndarray]):
    """The object detector on the generic runtime (analytics/batching.py): one
    item per frame, its letterboxed tensor; the results are the frame's rows."""

    busy_error = DetectorBusy
    stopped_error = DetectorStopped

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
        super().__init__(
            lambda tensors: detector.infer(np.stack(tensors)),
            batch_size=batch_size,
            max_wait_ms=max_wait_ms,
            capacity=capacity,
            name=name,
            label="the object detector",
            unit="frames",
            provider=lambda: detector.provider,
        )

    def detect(self, frame: np.ndarray, *, timeout: float | None = 30.0) -> list[Detection]:
        """This frame's detections. Raises DetectorBusy at once when the queue is
        full, DetectorStopped after stop(), TimeoutError after `timeout` seconds
        (batched mode), or what the model raised."""
        # Checked before the letterbox too, so a refused frame costs nothing.
        started = self.begin(1)
        tensor, letterbox = self.detector.prepare(frame)
        (rows,) = self.complete([tensor], timeout=timeout)
        detections = self.detector.finish(rows, letterbox)
        self.record(started)
        return detections


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
