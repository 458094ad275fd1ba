"""Whether a face is fit to enroll or to recognise: a quality measure that
depends little on the face's pixel size, brightness or JPEG softness.

Figures (`FaceQuality`):

- `sharpness`: the variance of the Laplacian of the face's centre (eyes to
  mouth) on the aligned chip, after the chip is shrunk to 24x24 and its contrast
  normalised (zero mean, unit variance). 24 px is about what a 40 px face holds,
  so a small sharp face and a large sharp face score alike, and so do a dim
  face and a bright one; what lowers it is detail missing at that scale: blur.
  Range 0 (flat) to 20 (white noise, the Laplacian's gain). Measured on real
  photos (the face_recognition test photos, scikit-image's astronaut, the
  group photos of @vladmandic/face-api's demo, insightface's t1.jpg and Tom
  Hanks photo: 33 faces of 75 px and more), each shrunk to 40, 60 and 100 px
  faces (97 copies of each kind), same-person similarity to the original in
  brackets: as they are 0.23-2.6, median 0.88 (0.91-1.00); JPEG quality 30:
  0.20-2.6 (0.86-1.00); darkened to a quarter with noise: 0.37-2.9
  (0.85-0.98); softened (sigma 0.6 px) and JPEG quality 50: 0.12-2.3
  (0.87-1.00). Gaussian blur of sigma 3 % of the face: 0.05-0.57, median 0.20
  (0.86-0.96); 4.5 %: median 0.10 (0.78-0.93); 6 %: median 0.07 (0.74-0.90);
  10 %: 0.01-0.14 (0.70-0.87). `MIN_SHARPNESS` = 0.15 refused 1 of the 388
  ordinary copies (a 40 px three-quarter face, softened) and 168 of the 193
  blurred copies that fell below the same-person p5 of 0.87 (all of the 10 %
  ones); every blurred copy it let through still scored >= 0.78. A small
  sharp face and a large blurred one can look alike at 24 px: that overlap
  (around 0.1-0.25) is where this measure cannot tell them apart.
- `detector_score`: RetinaFace's confidence.
- `yaw`, `pitch` (degrees, from the 5 landmarks; 0 = facing the camera). Yaw
  from where the nose tip projects between the eyes: with the nose tip 0.7
  half-eye-distances in front of the eyes, offset/half-distance = 0.7 tan(yaw);
  and from foreshortening (the eye distance shrinks against the eye-mouth
  height, cos(yaw) = ratio / 0.75, 0.75 being the low end of frontal faces):
  the larger of the two, since a profile's landmarks can put the nose between
  the eyes. Pitch from the nose's height between the eye line and the mouth line
  (0.55 when level). Approximate (a face's proportions vary by ~10°); on the 36
  faces of the photos above, faces towards the camera gave yaw 3-27°,
  three-quarter views 31-43°, and the two near-profiles (insightface's t1.jpg,
  face-api's sample2.jpg) 58° and 76°; pitch stayed within ±28° but for the
  second (36°, looking down).
- `size`: the smaller side of the detector's box, in pixels.

`FaceQuality.refusals(limits)` lists each failed limit with a code and a
message a person can act on; empty means fit. `score` in [0, 1] ranks samples
of one face (the best of a track), it is not a probability.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from .engine import DetectedFace

# See the module docstring for the measurements behind these.
MIN_SHARPNESS = 0.15
# NFV4-FR's `fr_blur_filter_threshold` (the contract's default 4) is sharpness on
# this scale, so its default refuses what enrollment refuses: 4 = MIN_SHARPNESS.
# Sharp faces score 40-80 on it, at any size and brightness (a 60 px face darkened
# to a quarter with noise: 50-65); blurred by 3.6 % of the face's width 7-11.
BLUR_FILTER_UNITS = 4.0 / MIN_SHARPNESS
# Sharper than this, a face's same-person similarity no longer improves (ordinary
# photos, 0.23-2.6, keep 0.85-1.00): quality scores saturate here.
SHARP_ENOUGH = 0.4
MIN_FACE_SIZE = 40
MIN_DETECTOR_SCORE = 0.8
# frontal_only: beyond ~45° dlib's embedding of a person drifts towards other people's.
FRONTAL_MAX_YAW = 45.0
FRONTAL_MAX_PITCH = 40.0

_SHARPNESS_SIZE = 24
# The face's centre (eyes to mouth) as fractions of an aligned chip: dlib's
# 150x150 chip (padding 0.25) and the ArcFace 112x112 template crop.
CHIP_CENTRE = {"dlib": (0.20, 0.233, 0.80, 0.833), "arcface": (0.25, 0.30, 0.75, 0.90)}
# Face proportions for the pose estimates (see the module docstring).
_NOSE_DEPTH = 0.7  # nose tip in front of the eyes, in half eye distances
_FRONTAL_EYE_MOUTH_RATIO = 0.75  # eye distance / eye-mouth height, low end of frontal faces
_LEVEL_NOSE_HEIGHT = 0.55  # nose tip between the eye line (0) and the mouth line (1)
_NOSE_FORWARD, _MOUTH_FORWARD = 0.45, 0.18  # in front of the eyes, in eye-mouth heights


@dataclass(frozen=True)
class QualityLimits:
    """What a face must reach. `max_yaw`/`max_pitch` None: any pose (set them
    for `frontal_only`, e.g. `QualityLimits.frontal()`)."""

    min_sharpness: float = MIN_SHARPNESS
    min_face_size: int = MIN_FACE_SIZE
    min_detector_score: float = MIN_DETECTOR_SCORE
    max_yaw: float | None = None
    max_pitch: float | None = None

    @classmethod
    def frontal(cls, **overrides) -> QualityLimits:
        return cls(**{"max_yaw": FRONTAL_MAX_YAW, "max_pitch": FRONTAL_MAX_PITCH, **overrides})


@dataclass(frozen=True)
class Refusal:
    code: str  # too_small, not_a_clear_face, too_blurry, turned_away, tilted
    message: str


@dataclass(frozen=True)
class FaceQuality:
    sharpness: float
    detector_score: float
    yaw: float
    pitch: float
    size: int

    @property
    def score(self) -> float:
        """Higher is better, in [0, 1]: for choosing among samples of one face."""
        sharp = min(1.0, self.sharpness / SHARP_ENOUGH)
        pose = max(0.0, math.cos(math.radians(self.yaw)) * math.cos(math.radians(self.pitch)))
        size = min(1.0, self.size / 80.0)
        return float(sharp * pose * size * min(1.0, max(0.0, self.detector_score)))

    def refusals(self, limits: QualityLimits | None = None) -> list[Refusal]:
        limits = limits or QualityLimits()
        found = []
        if self.size < limits.min_face_size:
            found.append(
                Refusal(
                    "too_small",
                    f"face too small ({self.size} px, minimum {limits.min_face_size} px): "
                    "use a photo where the face is larger",
                )
            )
        if self.detector_score < limits.min_detector_score:
            found.append(
                Refusal(
                    "not_a_clear_face",
                    f"the face is not clearly visible (detector confidence {self.detector_score:.2f}, "
                    f"minimum {limits.min_detector_score:g}): covered, cut off or very dark",
                )
            )
        if self.sharpness < limits.min_sharpness:
            found.append(
                Refusal(
                    "too_blurry",
                    f"face too blurry (sharpness {self.sharpness:.2f}, minimum {limits.min_sharpness:g}; "
                    "ordinary photos score 0.3-2): use a photo in focus, without motion blur",
                )
            )
        if limits.max_yaw is not None and self.yaw > limits.max_yaw:
            found.append(
                Refusal(
                    "turned_away",
                    f"face turned {self.yaw:.0f}° to the side (at most {limits.max_yaw:g}°): "
                    "use a photo facing the camera",
                )
            )
        if limits.max_pitch is not None and abs(self.pitch) > limits.max_pitch:
            found.append(
                Refusal(
                    "tilted",
                    f"face tilted {abs(self.pitch):.0f}° {'down' if self.pitch > 0 else 'up'} "
                    f"(at most {limits.max_pitch:g}°): use a photo facing the camera",
                )
            )
        return found

    def as_dict(self) -> dict:
        return {
            "sharpness": round(self.sharpness, 3),
            "detector_score": round(self.detector_score, 3),
            "yaw": round(self.yaw, 1),
            "pitch": round(self.pitch, 1),
            "size": self.size,
            "score": round(self.score, 3),
        }


def sharpness(chip_rgb: np.ndarray, *, kind: str = "dlib") -> float:
    """Blur measure of an aligned chip (see the module docstring); `kind`
    names the alignment (`CHIP_CENTRE`)."""
    chip = np.asarray(chip_rgb)
    grey = cv2.cvtColor(chip, cv2.COLOR_RGB2GRAY) if chip.ndim == 3 else chip
    height, width = grey.shape[:2]
    x0, y0, x1, y1 = CHIP_CENTRE[kind]
    centre = grey[round(y0 * height) : round(y1 * height), round(x0 * width) : round(x1 * width)]
    if centre.shape[0] < 2 or centre.shape[1] < 2:
        return 0.0
    small = cv2.resize(
        centre.astype(np.float32), (_SHARPNESS_SIZE, _SHARPNESS_SIZE), interpolation=cv2.INTER_AREA
    )
    spread = float(small.std())
    if spread < 1.0:  # a flat patch (one grey level ~ black, white or no face): no detail to measure
        return 0.0
    return float(cv2.Laplacian((small - small.mean()) / spread, cv2.CV_32F).var())


def blur_filter_score(sharpness_value: float) -> float:
    """`sharpness` on the scale of NFV4-FR's `fr_blur_filter_threshold`."""
    return sharpness_value * BLUR_FILTER_UNITS


def pose(landmarks: np.ndarray) -> tuple[float, float]:
    """(yaw, pitch) in degrees from the 5 landmarks (left eye, right eye, nose,
    mouth left, mouth right): yaw >= 0 either side, pitch > 0 looking down."""
    left_eye, right_eye, nose, mouth_left, mouth_right = np.asarray(landmarks, dtype=np.float64)
    axis = right_eye - left_eye
    eye_distance = float(np.hypot(*axis))
    mouth = (mouth_left + mouth_right) / 2.0
    if eye_distance < 1e-6:
        return 90.0, 0.0
    unit = axis / eye_distance
    normal = np.array([-unit[1], unit[0]])
    middle = (left_eye + right_eye) / 2.0
    height = float(np.dot(mouth - middle, normal))  # eye line to mouth line, rotation-free
    offset = abs(float(np.dot(nose - middle, unit))) / (eye_distance / 2.0)
    yaw = math.degrees(math.atan(offset / _NOSE_DEPTH))
    if height > 1e-6:
        ratio = eye_distance / height
        yaw = max(yaw, math.degrees(math.acos(min(1.0, ratio / _FRONTAL_EYE_MOUTH_RATIO))))
        # Nose height h between the lines as a function of t = tan(pitch):
        # h = (0.55 + NOSE_FORWARD t) / (1 + MOUTH_FORWARD t), solved for t.
        h = float(np.dot(nose - middle, normal)) / height
        denominator = _NOSE_FORWARD - _MOUTH_FORWARD * h
        pitch = (
            math.degrees(math.atan((h - _LEVEL_NOSE_HEIGHT) / denominator)) if denominator > 1e-6 else 90.0
        )
    else:  # mouth at or above the eyes: upside down or degenerate landmarks
        yaw, pitch = max(yaw, 90.0), 90.0
    return float(yaw), float(pitch)


def face_quality(chip_rgb: np.ndarray, face: DetectedFace, *, kind: str = "dlib") -> FaceQuality:
    """The quality figures of a detected face and its aligned chip."""
    yaw, pitch = pose(face.landmarks)
    return FaceQuality(
        sharpness=sharpness(chip_rgb, kind=kind),
        detector_score=float(face.score),
        yaw=yaw,
        pitch=pitch,
        size=int(face.size),
    )


def aligned_chip(embedder, image_bgr: np.ndarray, face: DetectedFace) -> tuple[np.ndarray, str]:
    """The face's aligned chip as the embedder sees it (RGB) and its kind: dlib's
    chip for the dlib embedders, the ArcFace-template crop for ONNX ones."""
    # ONNX embedders align to the ArcFace template (their `chips` are model tensors).
    if hasattr(embedder, "aligned"):
        return cv2.cvtColor(embedder.aligned(image_bgr, face), cv2.COLOR_BGR2RGB), "arcface"
    return embedder.chips(image_bgr, [face])[0], "dlib"


def assess(embedder, image_bgr: np.ndarray, face: DetectedFace) -> tuple[FaceQuality, np.ndarray]:
    """The face's quality and its aligned chip (reusable for the embedding)."""
    chip, kind = aligned_chip(embedder, image_bgr, face)
    return face_quality(chip, face, kind=kind), chip
