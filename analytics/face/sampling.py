"""A face kept from a frame: both face analytics (NFV4-FR, NFV4-SS) sample the
faces of a track the same way, so the crop, the face's coordinates in it and
the event's crop JPEG are made here once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

# Samples are a crop of the frame around the face, this many face sizes on each
# side: enough for the embedder's alignment and the event's crop.
SAMPLE_MARGIN = 0.75


@dataclass
class FaceSample:
    """One face of a track: a crop of the frame around it and the face in the
    crop's coordinates (what the embedder and crop_jpeg take)."""

    quality: float
    timestamp: float
    score: float
    frame_box: tuple[int, int, int, int]
    crop: np.ndarray
    face: Any  # engine.DetectedFace, in crop coordinates

    @property
    def bounding_box(self) -> dict[str, int]:
        """The face's box in the frame, as events carry it."""
        x, y, w, h = self.frame_box
        return {"left": int(x), "top": int(y), "width": int(w), "height": int(h)}

    def embed(self, engine) -> np.ndarray:
        return engine.embedder.embed(self.crop, self.face)

    def crop_jpeg(self) -> bytes:
        from .engine import crop_jpeg

        return crop_jpeg(self.crop, self.face)


def face_sample(face, image: np.ndarray, *, quality: float, timestamp: float) -> FaceSample:
    """A copy of the frame around `face` (the capture may reuse the frame's buffer)
    with the face moved into the crop's coordinates."""
    from .engine import DetectedFace

    height, width = image.shape[:2]
    x, y, w, h = face.box
    x0, y0 = max(0, int(x - SAMPLE_MARGIN * w)), max(0, int(y - SAMPLE_MARGIN * h))
    x1, y1 = min(width, int(x + w + SAMPLE_MARGIN * w)), min(height, int(y + h + SAMPLE_MARGIN * h))
    local = DetectedFace(
        box=(x - x0, y - y0, w, h),
        score=face.score,
        landmarks=face.landmarks - np.array([x0, y0], dtype=np.float32),
    )
    crop = np.ascontiguousarray(image[y0:y1, x0:x1]).copy()
    return FaceSample(
        quality=quality,
        timestamp=timestamp,
        score=face.score,
        frame_box=tuple(face.box),
        crop=crop,
        face=local,
    )
