"""Fixtures of the object detection tests: real street video and photos, and
the process's detector (the bundled YOLOv3-tiny, converted once into the test
data folder)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from django.conf import settings

from tests.support import composite
from tests.support.face_photos import astronaut_bgr
from tests.support.opencv_samples import opencv_samples_dir, video_frames

# Frames of vtest.avi spread over its 795 frames (32 s): different people in each.
STREET_FRAMES = [0, 100, 200, 300, 400, 500, 600, 700]


@pytest.fixture(scope="session")
def samples():
    """vtest.avi and messi5.jpg from Debian's opencv-doc (fetched once into the data dir's cache)."""
    return opencv_samples_dir(settings.DATA_DIR / "cache")


@pytest.fixture(scope="session")
def street_frames(samples) -> list[np.ndarray]:
    return video_frames(samples / "vtest.avi", STREET_FRAMES)


@pytest.fixture(scope="session")
def photos(samples) -> dict[str, np.ndarray]:
    """Real photos of other sizes and contents (BGR)."""
    from skimage import data

    return {
        "messi": cv2.imread(str(samples / "messi5.jpg"), cv2.IMREAD_COLOR),
        "astronaut": astronaut_bgr(),
        "coffee": cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR),
        "chelsea": cv2.cvtColor(data.chelsea(), cv2.COLOR_RGB2BGR),
    }


@pytest.fixture(scope="session")
def detector():
    from analytics.objects.detector import object_detector

    return object_detector()


def same_detections(got, expected, *, box_tolerance: float = 0.5, score_tolerance: float = 1e-3) -> None:
    """The same detections (any order): each expected one has its own match of the same
    label, with box corners and confidence within tolerance."""
    assert len(got) == len(expected), (got, expected)
    left = list(got)
    for want in expected:
        candidates = [d for d in left if d.label == want.label]
        assert candidates, f"no {want.label} in {got}"
        best = min(candidates, key=lambda d: np.abs(np.subtract(d.box, want.box)).max())
        assert np.abs(np.subtract(best.box, want.box)).max() <= box_tolerance, (best, want)
        assert abs(best.confidence - want.confidence) <= score_tolerance, (best, want)
        left.remove(best)


@pytest.fixture(scope="session")
def street(samples, detector):
    """Background, people and the van cut from vtest.avi (tests/support/composite.py)."""
    return composite.street(samples / "vtest.avi", detector)


@pytest.fixture(scope="session")
def people_video(street, tmp_path_factory):
    p = street.people
    movers = [
        # Left to right behind a wall (x 150-270) before the line: hidden ~0.5 s, partly ~1.7 s.
        composite.Mover(p[0], ((0, 60, 260), (6000, 700, 260))),
        composite.Mover(p[1], ((3500, 700, 380), (9500, 60, 380))),
        # Across, then turns and comes back: in, then out.
        composite.Mover(p[2], ((5000, 80, 500), (10000, 600, 500), (15000, 80, 500))),
        composite.Mover(p[3], ((11000, 720, 300), (17000, 60, 300))),
    ]
    wall = composite.Occluder(street.wall(120, 200), 150, 70)
    path = tmp_path_factory.mktemp("composite") / "people.avi"
    composite.render(path, street.background, movers, 17_500, occluders=[wall])
    return path, movers
