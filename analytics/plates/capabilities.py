"""What the plate analytic declares to the platform (analytics.plugins): the plate
reader (PP-OCRv6 text detector and recogniser of the rapidocr wheel) as a shared
model, beside the object detector it finds vehicles with.
"""

from __future__ import annotations

import time

import numpy as np

from analytics.runtime import ModelInfoMetric, SharedModel

PLATE_GPU_SERVICE = "visionaire::plate_recognition"


def _plate_reader_warm() -> dict:
    from .reader import DET_MODEL, REC_MODEL, plate_reader

    started = time.perf_counter()
    reader = plate_reader()
    # One read of a blank vehicle-sized crop: both sessions allocate what they need.
    reader.read_vehicle(np.full((160, 320, 3), 128, np.uint8))
    return {
        "warm_up_seconds": round(time.perf_counter() - started, 3),
        "detector": DET_MODEL,
        "recogniser": REC_MODEL,
        "provider": reader.providers[0],
    }


PLATE_READER = SharedModel(
    "plate_reader",
    warm=_plate_reader_warm,
    gpu_service=PLATE_GPU_SERVICE,
    info_metric=ModelInfoMetric(
        "visionaire_plate_reader_info",
        "1 for the plate reader of the node's worker: its state and ONNX Runtime provider",
        ("state", "provider"),
    ),
)
