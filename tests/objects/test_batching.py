"""The per-process batching runtime: concurrent streams each get their own
frame's detections, a full queue refuses at once, a stop is orderly."""

from __future__ import annotations

import threading
import time

import pytest

from analytics.objects import batching
from analytics.objects.batching import BatchingDetector, DetectorBusy, DetectorStopped
from analytics.objects.detector import object_detector

from .conftest import same_detections

WAIT = 120  # seconds: generous, the machine may be loaded


def await_condition(predicate, message: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, message
        time.sleep(0.01)


class GatedDetector:
    """The real detector, whose inference waits for `release` (and says when it started)."""

    def __init__(self, detector, *, fail: bool = False):
        self.detector = detector
        self.entered = threading.Event()
        self.release = threading.Event()
        self.fail = fail

    def __getattr__(self, name):
        return getattr(self.detector, name)

    def infer(self, tensors):
        self.entered.set()
        assert self.release.wait(WAIT), "the test never released the inference"
        if self.fail:
            raise RuntimeError("the model broke")
        return self.detector.infer(tensors)


class Caller(threading.Thread):
    """One stream's thread: detect(frame), keeping the result or the error."""

    def __init__(self, runtime, frame):
        super().__init__(daemon=True)
        self.runtime, self.frame = runtime, frame
        self.result = self.error = None

    def run(self):
        try:
            self.result = self.runtime.detect(self.frame, timeout=WAIT)
        except Exception as exc:
            self.error = exc


@pytest.mark.heavy
@pytest.mark.parametrize("batch_size", [8, 1])
def test_each_stream_gets_its_own_frames_detections(detector, street_frames, photos, batch_size):
    """Eight streams at once; at batch size 1 each runs its frame in its own thread."""
    frames = [*street_frames[:5], photos["messi"], photos["astronaut"], photos["coffee"]]
    expected = [detector.detect(frame) for frame in frames]
    runtime = BatchingDetector(detector, batch_size=batch_size, max_wait_ms=200, capacity=64)
    rounds = 3
    start = threading.Barrier(len(frames))
    results: dict[int, list] = {}
    errors = []

    def stream(index: int) -> None:
        try:
            start.wait(WAIT)
            results[index] = [runtime.detect(frames[index], timeout=WAIT) for _ in range(rounds)]
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=stream, args=(i,), daemon=True) for i in range(len(frames))]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT * rounds)
        assert not errors, errors
        for index, found in enumerate(expected):
            assert len(results[index]) == rounds
            for got in results[index]:
                same_detections(got, found, box_tolerance=0.01, score_tolerance=1e-5)
        stats = runtime.stats()
        assert stats["requests"] == stats["completed"] == len(frames) * rounds
        assert stats["busy"] == 0 and stats["failed"] == 0 and stats["queued"] == 0
        if batch_size > 1:  # frames shared inference calls
            assert stats["batches"] < len(frames) * rounds and stats["mean_batch_size"] > 1, stats
        else:
            assert stats["batches"] == len(frames) * rounds and stats["mean_batch_size"] == 1, stats
        assert stats["mean_latency_ms"] > 0 and stats["p95_latency_ms"] >= stats["mean_latency_ms"] * 0.5
        assert stats["mean_inference_ms"] > 0 and stats["provider"] == detector.provider
        assert stats["in_flight"] == 0
    finally:
        assert runtime.stop(WAIT)


def test_a_full_queue_refuses_at_once_and_counts(detector, street_frames):
    gated = GatedDetector(detector)
    runtime = BatchingDetector(gated, batch_size=2, max_wait_ms=0, capacity=2)
    try:
        first = Caller(runtime, street_frames[0])
        first.start()
        assert gated.entered.wait(WAIT), "the first frame never reached the model"
        queued = [Caller(runtime, frame) for frame in street_frames[1:3]]
        for caller in queued:
            caller.start()
        await_condition(lambda: runtime.stats()["queued"] == 2, "two frames should wait in the queue")

        # The model is busy and the queue full: the next frame is refused, without waiting.
        for _ in range(3):
            with pytest.raises(DetectorBusy, match="queue is full"):
                runtime.detect(street_frames[3], timeout=WAIT)
        assert runtime.stats()["busy"] == 3

        gated.release.set()
        for caller, frame in zip([first, *queued], street_frames[:3], strict=True):
            caller.join(WAIT)
            assert caller.error is None, caller.error
            same_detections(caller.result, detector.detect(frame), box_tolerance=0.01, score_tolerance=1e-5)
        stats = runtime.stats()
        # The first frame alone (nothing else was queued), then the two that waited.
        assert stats["completed"] == 3 and stats["requests"] == 6 and stats["batches"] == 2
    finally:
        gated.release.set()
        assert runtime.stop(WAIT)


def test_stop_finishes_the_batch_in_flight_and_refuses_the_rest(detector, street_frames):
    gated = GatedDetector(detector)
    runtime = BatchingDetector(gated, batch_size=2, max_wait_ms=0, capacity=4)
    in_flight = Caller(runtime, street_frames[0])
    in_flight.start()
    assert gated.entered.wait(WAIT)
    waiting = Caller(runtime, street_frames[1])
    waiting.start()
    await_condition(lambda: runtime.stats()["queued"] == 1, "the second frame should wait in the queue")

    assert runtime.stop(timeout=0) is False  # the inference thread is still busy
    with pytest.raises(DetectorStopped):
        runtime.detect(street_frames[2])
    gated.release.set()
    in_flight.join(WAIT)
    waiting.join(WAIT)
    assert runtime.stop(WAIT) is True and not runtime.running
    assert in_flight.error is None, in_flight.error
    same_detections(in_flight.result, detector.detect(street_frames[0]), box_tolerance=0.01)
    assert isinstance(waiting.error, DetectorStopped)


def test_at_batch_size_one_capacity_bounds_the_frames_running(detector, street_frames):
    gated = GatedDetector(detector)
    runtime = BatchingDetector(gated, batch_size=1, capacity=1)
    running = Caller(runtime, street_frames[0])
    running.start()
    assert gated.entered.wait(WAIT), "the first frame never reached the model"
    assert runtime.stats()["in_flight"] == 1
    with pytest.raises(DetectorBusy):
        runtime.detect(street_frames[1])
    assert runtime.stats()["busy"] == 1

    assert runtime.stop(timeout=0) is False  # a frame is still running in its caller's thread
    with pytest.raises(DetectorStopped):
        runtime.detect(street_frames[1])
    gated.release.set()
    running.join(WAIT)
    assert running.error is None, running.error
    same_detections(running.result, detector.detect(street_frames[0]), box_tolerance=0.01)
    assert runtime.stop(WAIT) is True and not runtime.running


@pytest.mark.parametrize("batch_size", [4, 1])
def test_a_model_error_reaches_its_callers_and_the_runtime_goes_on(detector, street_frames, batch_size):
    gated = GatedDetector(detector, fail=True)
    gated.release.set()
    runtime = BatchingDetector(gated, batch_size=batch_size, max_wait_ms=0, capacity=4)
    try:
        with pytest.raises(RuntimeError, match="the model broke"):
            runtime.detect(street_frames[0], timeout=WAIT)
        gated.fail = False
        same_detections(runtime.detect(street_frames[0], timeout=WAIT), detector.detect(street_frames[0]))
        stats = runtime.stats()
        assert stats["failed"] == 1 and stats["completed"] == 1
    finally:
        assert runtime.stop(WAIT)


def test_the_process_runtime_follows_settings(settings, detector, street_frames):
    settings.DETECT_BATCH_SIZE = 4
    settings.DETECT_BATCH_WAIT_MS = 2.5
    settings.DETECT_QUEUE_CAPACITY = 12
    batching.object_runtime_stop()
    try:
        runtime = batching.object_runtime()
        assert (runtime.batch_size, runtime.max_wait_s, runtime.capacity) == (4, 0.0025, 12)
        assert runtime.detector is object_detector()
        assert batching.object_runtime() is runtime
        same_detections(
            runtime.detect(street_frames[0]), detector.detect(street_frames[0]), box_tolerance=0.01
        )
    finally:
        assert batching.object_runtime_stop(WAIT)
    assert not runtime.running


def test_the_process_runtime_batches_on_a_gpu_only_by_default(settings, detector):
    settings.DETECT_BATCH_SIZE = 0
    batching.object_runtime_stop()
    try:
        runtime = batching.object_runtime()
        assert runtime.batch_size == (batching.GPU_BATCH_SIZE if detector.run_mode == "GPU" else 1)
        assert runtime.stats()["provider"] == detector.provider
    finally:
        assert batching.object_runtime_stop(WAIT)
