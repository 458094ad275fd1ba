"""Face embeddings in batches: the faces of a frame, and of every stream of a
worker, go through the face embedder together.

`BatchingEmbedder` is the generic batching runtime (analytics/batching.py)
over a face embedder, with aligned chips as its items: each caller aligns its
faces in its own thread (dlib's 5-point alignment, or the ArcFace warp), then
the chips of all callers are embedded in batches of up to `batch_size` by one
inference thread. The vectors are the embedder's own: batching changes which
chips share a model call, not what comes out (tests/face/test_embed_batching.py
checks them against the unbatched path).

It is itself a face embedder (`embed`, `embed_many`, and `embed_faces` for
faces of several images at once), so the NFV4-FR processor and the enrollment
pipeline use it where they would use the engine's embedder. When its queue is
full it refuses at once (`EmbedderBusy`): a stream whose faces are refused
embeds them at a later frame, so a slow model delays events, never the capture
or the frames of other streams.

Where batches pay was measured (bench/face_batching.py, bench/README.md "Face
embeddings in batches"). One thread embedding a batch of 8 chips spends about
half the time per face of single chips, so bulk enrollment, where one thread
embeds, always batches. Across streams on a 2-core CPU, though, streams each
running their own faces side by side embedded 1.04-1.5 times more faces per
second than one inference thread taking their faces in batches (the streams'
own model calls keep both cores busy; the batcher waits for company), as for
the object detector. So a CPU-only worker runs batch size 1 by default: each
stream embeds its own faces, all the faces of a frame in one model call; a GPU
worker batches across streams (one call for 32 chips costs little more than one).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

import numpy as np

from analytics.batching import BatchingRuntime, ModelBusy, ModelStopped

from .engine import DetectedFace, FaceEmbedder

logger = logging.getLogger(__name__)

# Batch sizes across streams when the setting is 0: measured on a 2-core CPU
# (bench/face_batching.py: batching across streams trailed each stream's own calls);
# on a GPU a batch of 32 chips of 150x150 costs little more than one.
CPU_BATCH_SIZE = 1
GPU_BATCH_SIZE = 32
# Bulk enrollment's batches (one embedding thread, no other callers): 8 chips per call
# took about half the time per face of one on a CPU (bench/README.md).
BULK_CPU_BATCH_SIZE = 8
GPU_PROVIDERS = {"CUDAExecutionProvider", "TensorrtExecutionProvider", "dlib-cuda"}

FacesOfImages = Sequence[tuple[np.ndarray, DetectedFace]]


class EmbedderBusy(ModelBusy):
    """The face embedder's queue is full: these faces were not embedded."""


class EmbedderStopped(ModelStopped):
    """The runtime was stopped before these faces were embedded."""


def _chips_of(embedder: FaceEmbedder, faces: FacesOfImages) -> list[np.ndarray]:
    """The chips of (image, face) pairs; faces of the same image are aligned together."""
    chips: list[np.ndarray] = []
    start = 0
    while start < len(faces):
        image = faces[start][0]
        end = start + 1
        while end < len(faces) and faces[end][0] is image:
            end += 1
        chips.extend(embedder.chips(image, [face for _, face in faces[start:end]]))
        start = end
    return chips


def faces_embed(embedder: FaceEmbedder, faces: FacesOfImages) -> np.ndarray:
    """Embeddings of (image, face) pairs, one row each, in as few model calls as
    the embedder allows: through the batching runtime when `embedder` is one,
    else one call for all the chips."""
    if isinstance(embedder, BatchingEmbedder):
        return embedder.embed_faces(faces)
    if not faces:
        return np.zeros((0, embedder.dim), dtype=np.float32)
    return embedder.embed_chips(np.stack(_chips_of(embedder, faces)))


class BatchingEmbedder(BatchingRuntime[np.ndarray, np.ndarray]):
    busy_error = EmbedderBusy
    stopped_error = EmbedderStopped

    def __init__(
        self,
        embedder: FaceEmbedder,
        *,
        batch_size: int = 8,
        max_wait_ms: float = 5.0,
        capacity: int = 128,
        name: str = "face-embedder",
    ) -> None:
        self.embedder = embedder
        super().__init__(
            lambda chips: embedder.embed_chips(np.stack(chips)),
            batch_size=batch_size,
            max_wait_ms=max_wait_ms,
            capacity=capacity,
            name=name,
            label="the face embedder",
            unit="faces",
            provider=lambda: embedder.provider,
        )

    # --- the FaceEmbedder protocol, as the wrapped embedder --------------------------------

    @property
    def dim(self) -> int:
        return self.embedder.dim

    @property
    def name(self) -> str:
        return self.embedder.name

    @property
    def runtime(self) -> str:
        return self.embedder.runtime

    @property
    def provider(self) -> str:
        return self.embedder.provider

    @property
    def similarity_scale(self) -> float:
        return self.embedder.similarity_scale

    def embed_faces(self, faces: FacesOfImages, *, timeout: float | None = 30.0) -> np.ndarray:
        """Embeddings of (image, face) pairs, one row each. Raises EmbedderBusy at
        once when the faces do not fit in the queue (nothing is aligned then)."""
        if not faces:
            return np.zeros((0, self.dim), dtype=np.float32)
        started = self.begin(len(faces))
        vectors = self.complete(_chips_of(self.embedder, faces), timeout=timeout)
        self.record(started)
        return np.stack(vectors)

    def embed_many(self, image_bgr: np.ndarray, faces: list[DetectedFace]) -> np.ndarray:
        return self.embed_faces([(image_bgr, face) for face in faces])

    def embed(self, image_bgr: np.ndarray, face: DetectedFace) -> np.ndarray:
        return self.embed_many(image_bgr, [face])[0]


def default_batch_size(embedder: FaceEmbedder, *, bulk: bool = False) -> int:
    """The batch size when the setting is 0: across a worker's streams, or for one
    thread embedding many faces (`bulk`: enrollment)."""
    if embedder.provider in GPU_PROVIDERS:
        return GPU_BATCH_SIZE
    return BULK_CPU_BATCH_SIZE if bulk else CPU_BATCH_SIZE


_runtime: BatchingEmbedder | None = None
_runtime_lock = threading.Lock()


def face_embed_runtime() -> BatchingEmbedder:
    """The process's batching runtime over the face engine's embedder, from
    settings; every stream of the worker shares it. A new one starts when the
    engine changed (face_engine_reset) or the last one was stopped."""
    from django.conf import settings

    from .engine import face_engine

    embedder = face_engine().embedder
    global _runtime
    with _runtime_lock:
        if _runtime is None or not _runtime.running or _runtime.embedder is not embedder:
            if _runtime is not None:
                _runtime.stop(0)
            _runtime = BatchingEmbedder(
                embedder,
                batch_size=settings.FACE_EMBED_BATCH_SIZE or default_batch_size(embedder),
                max_wait_ms=settings.FACE_EMBED_BATCH_WAIT_MS,
                capacity=settings.FACE_EMBED_QUEUE_CAPACITY,
            )
            logger.info(
                "face embedder batching: batch %d, wait %.1f ms, capacity %d, on %s",
                _runtime.batch_size,
                _runtime.max_wait_s * 1000,
                _runtime.capacity,
                embedder.provider,
            )
        return _runtime


def face_embed_runtime_started() -> BatchingEmbedder | None:
    """The process's runtime if one runs (for reports), without starting one."""
    runtime = _runtime
    return runtime if runtime is not None and runtime.running else None


def face_embed_runtime_stop(timeout: float = 10.0) -> bool:
    """Stop the process's runtime (worker shutdown); a later face_embed_runtime() starts a new one."""
    global _runtime
    with _runtime_lock:
        runtime, _runtime = _runtime, None
    return runtime.stop(timeout) if runtime is not None else True
