"""What the face analytics declare to the platform (analytics.plugins): the face
engine as a shared model, and search by a face photo.

Both face analytics use the one engine of the process (detector + embedder), so
a worker warms it once, reports it as `face_engine` and /metrics shows it as
`visionaire_face_engine_info`; their events' embeddings share one space, so one
image search serves both.
"""

from __future__ import annotations

import functools

import numpy as np
from django.conf import settings

from analytics.plugins import ImageSearch, NothingToSearch, QueryEmbeddings
from analytics.runtime import ModelInfoMetric, SharedModel

from . import calibration, engine

FACE_GPU_SERVICE = "visionaire::face_recognition"


def _face_engine_warm() -> dict:
    face = engine.face_engine()
    return {"warm_up_seconds": round(face.warm_up(), 3), **face.describe()}


def _face_embedding_figures() -> dict | None:
    from .batching import face_embed_runtime_started

    runtime = face_embed_runtime_started()
    return dict(runtime.stats()) if runtime is not None else None


def _face_embedding_stop(timeout: float) -> None:
    from .batching import face_embed_runtime_stop

    face_embed_runtime_stop(timeout=timeout)


FACE_ENGINE = SharedModel(
    "face_engine",
    warm=_face_engine_warm,
    gpu_service=FACE_GPU_SERVICE,
    # The batching runtime that embeds the faces of this worker's streams.
    figures=_face_embedding_figures,
    stop=_face_embedding_stop,
    info_metric=ModelInfoMetric(
        "visionaire_face_engine_info",
        "1 for the face engine of the node's worker: its state, the detector's ONNX Runtime provider, "
        "the embedder, what runs it (onnxruntime or dlib) and on which provider",
        ("state", "provider", "embedder", "embedder_runtime", "embedder_provider"),
    ),
)


class FaceImageSearch(ImageSearch):
    """The faces of a query photo (up to SEARCH_MAX_QUERY_FACES, the most
    confident), embedded as the face analytics embed the faces they see."""

    def query_embeddings(self, image_bgr: np.ndarray) -> QueryEmbeddings:
        face = engine.face_engine()
        faces = face.detector.detect(image_bgr, min_score=settings.SEARCH_FACE_MIN_SCORE)
        if not faces:
            raise NothingToSearch("no face found in the query image")
        faces = faces[: settings.SEARCH_MAX_QUERY_FACES]
        scale = face.embedder.similarity_scale
        model = calibration.score_model(face.embedder.name)  # None: an embedder never measured
        return QueryEmbeddings(
            vectors=face.embedder.embed_many(image_bgr, faces),
            similarity=functools.partial(engine.similarity_from_distance, scale=scale),
            false_accept=model.false_accept if model is not None else None,
        )


FACE_IMAGE_SEARCH = FaceImageSearch()
