"""Face models shared by the face-recognition analytic and the enrollment API.

`engine.face_engine()` gives the process-wide detector + embedder; see
`engine` for the quality helpers and the similarity mapping.
"""

from .engine import (
    DetectedFace,
    DlibAligner,
    DlibEmbedder,
    DlibOnnxEmbedder,
    DlibResnetEmbedder,
    FaceDetector,
    FaceEmbedder,
    FaceEngine,
    OnnxEmbedder,
    crop_jpeg,
    face_engine,
    frontal_score,
    similarity,
    similarity_from_distance,
)

__all__ = [
    "DetectedFace",
    "DlibAligner",
    "DlibEmbedder",
    "DlibOnnxEmbedder",
    "DlibResnetEmbedder",
    "FaceDetector",
    "FaceEmbedder",
    "FaceEngine",
    "OnnxEmbedder",
    "crop_jpeg",
    "face_engine",
    "frontal_score",
    "similarity",
    "similarity_from_distance",
]
