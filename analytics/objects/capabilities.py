"""What the object analytics declare to the platform (analytics.plugins): the
process's object detector (`detector.object_detector()`) as a shared model.

Every analytic that detects vehicles or people declares this one SharedModel, so a
worker warms the detector once, reports it as `object_detector`, and /metrics
shows it as `visionaire_object_detector_info`.
"""

from __future__ import annotations

import time

from analytics.runtime import ModelInfoMetric, SharedModel

OBJECT_GPU_SERVICE = "visionaire::object_detection"


def _object_detector_warm() -> dict:
    from .batching import object_runtime

    started = time.perf_counter()
    runtime = object_runtime()  # loads the detector (it runs a probe frame on load)
    return {"warm_up_seconds": round(time.perf_counter() - started, 3), **runtime.detector.describe()}


OBJECT_DETECTOR = SharedModel(
    "object_detector",
    warm=_object_detector_warm,
    gpu_service=OBJECT_GPU_SERVICE,
    info_metric=ModelInfoMetric(
        "visionaire_object_detector_info",
        "1 for the object detector of the node's worker: its state, model and ONNX Runtime provider",
        ("state", "model", "provider"),
    ),
)
