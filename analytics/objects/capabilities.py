"""What the object analytics (people, vehicles) declare to the platform: the
object detector's batching runtime as one shared model of the process. Both
analytics, on every stream of a worker, send their frames to it."""

from __future__ import annotations

import numpy as np

from analytics.runtime import ModelInfoMetric, SharedModel

OBJECT_GPU_SERVICE = "visionaire::object_detection"


def _object_detector_warm() -> dict:
    import time

    from .batching import object_runtime

    runtime = object_runtime()
    started = time.monotonic()
    runtime.detect(np.zeros((416, 416, 3), dtype=np.uint8))
    return {
        "warm_up_seconds": round(time.monotonic() - started, 3),
        "batch_size": runtime.batch_size,
        **runtime.detector.describe(),
    }


OBJECT_DETECTOR = SharedModel(
    "object_detector",
    warm=_object_detector_warm,
    gpu_service=OBJECT_GPU_SERVICE,
    info_metric=ModelInfoMetric(
        "visionaire_object_detector_info",
        "1 for the object detector of the node's worker: its state, the model, its ONNX Runtime "
        "provider, run mode and the batch size of its runtime",
        ("state", "model", "provider", "run_mode", "batch_size"),
    ),
)
