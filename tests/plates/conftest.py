"""Fixtures of the plate tests: street scenes of Debian's opencv-doc, a rendered set of
vehicle passes encoded to H.264, and the process's plate reader."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings

from tests.support.opencv_samples import opencv_samples_dir, video_frames
from tests.support.plates import PlatePass, VehicleBox, plate_set, plate_video

SCENE_FRAMES = [0, 200, 400, 600]  # of vtest.avi: a square with pedestrians and a parked van


@dataclass(frozen=True)
class RenderedSet:
    passes: list[PlatePass]
    video: Path
    boxes: list[VehicleBox]


@pytest.fixture(scope="session")
def scenes() -> list[np.ndarray]:
    samples = opencv_samples_dir(settings.DATA_DIR / "cache")
    return video_frames(samples / "vtest.avi", SCENE_FRAMES)


@pytest.fixture(scope="session")
def rendered(scenes, tmp_path_factory) -> RenderedSet:
    """12 passes (6 Indonesian, 6 UK, white and yellow), 3 frames each, 1280x720 H.264."""
    passes = plate_set(12)
    path = tmp_path_factory.mktemp("plates") / "passes.mp4"
    video, boxes = plate_video(path, passes, scenes, frames_per_pass=3)
    return RenderedSet(passes, video, boxes)


@pytest.fixture(scope="session")
def reader():
    from analytics.plates.reader import plate_reader

    return plate_reader()
