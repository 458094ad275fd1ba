"""The object detector slot: one ONNX detector per process, run on ONNX Runtime
through `analytics.runtime.SESSIONS` (CUDA when it really works, else CPU).

By default the slot holds the bundled YOLOv3-tiny (see `darknet.py`), which is
weak on small and distant objects. A deployment gets better results without
code changes by pointing `VISIONAIRE_OBJECT_DETECTOR_MODEL` at another ONNX
detector that follows this contract:

Input: one tensor [N, 3, H, W], float32 (or float16), RGB scaled to 0-1, the
frame letterboxed into H×W (scaled to fit, aspect kept, centred, padded with
grey 114). H and W come from the model's input shape when it is fixed, else
from `VISIONAIRE_OBJECT_DETECTOR_INPUT_SIZE` (square). A dynamic N lets the
batching runtime run several frames in one call; a model exported with N = 1
still works, one frame per call.

Output: the first output, in one of these layouts (`VISIONAIRE_OBJECT_DETECTOR_LAYOUT`;
`auto` picks by the output's shape and the number of class names):

- `boxes_scores` [N, B, 4 + C]: cx, cy, w, h in input pixels, then C class
  scores (final confidences). The bundled YOLOv3-tiny emits this.
- `yolov5` [N, B, 5 + C]: cx, cy, w, h, objectness, C class probabilities;
  confidence = objectness × probability (YOLOv5/YOLOv7 exports).
- `yolov8` [N, 4 + C, B]: cx, cy, w, h, C class scores, box-last (YOLOv8, v9
  and 11 exports).

Models with NMS inside the graph (end-to-end exports) do not fit. Class names
come from `VISIONAIRE_OBJECT_DETECTOR_CLASSES` (a file, one name a line), else
from the model's `names` metadata (written by Ultralytics' exporter), else the
80 COCO names. Postprocessing: the best class of each box, a confidence floor,
class-aware NMS (`cv2.dnn.NMSBoxesBatched`), boxes mapped back to frame pixels.
"""

from __future__ import annotations

import ast
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from django.core.exceptions import ImproperlyConfigured

from core.images import as_bgr

from . import darknet

logger = logging.getLogger(__name__)

LAYOUTS = ("auto", "boxes_scores", "yolov5", "yolov8")
PAD_VALUE = 114  # grey of the letterbox bars, as Ultralytics' exports were trained with
MAX_DETECTIONS = 300  # per frame, after NMS
_GPU_PROVIDERS = {"CUDAExecutionProvider", "TensorrtExecutionProvider", "ROCMExecutionProvider"}


@dataclass(frozen=True)
class Detection:
    """One object in a frame: box (x1, y1, x2, y2) in frame pixels."""

    label: str
    class_id: int
    confidence: float
    box: tuple[float, float, float, float]


@dataclass(frozen=True)
class Letterbox:
    """How a frame was fitted into the model's input: input = frame × scale + pad."""

    scale: float
    pad_x: float
    pad_y: float
    width: int
    height: int


@dataclass(frozen=True)
class DetectorConfig:
    model: str = ""  # ONNX file; "" = the bundled YOLOv3-tiny
    input_size: int = 0  # 0: the model's own (the bundled model: its cfg's 416)
    classes: str = ""  # names file; "" = the model's metadata, else COCO
    layout: str = "auto"
    min_score: float = 0.25
    nms_iou: float = 0.45
    cache_dir: Path = Path("data/models")

    @classmethod
    def from_settings(cls) -> DetectorConfig:
        from django.conf import settings

        return cls(
            model=settings.OBJECT_DETECTOR_MODEL,
            input_size=settings.OBJECT_DETECTOR_INPUT_SIZE,
            classes=settings.OBJECT_DETECTOR_CLASSES,
            layout=settings.OBJECT_DETECTOR_LAYOUT,
            min_score=settings.OBJECT_DETECTOR_MIN_SCORE,
            nms_iou=settings.OBJECT_DETECTOR_NMS_IOU,
            cache_dir=Path(settings.DATA_DIR) / "models",
        )


def _names_from_metadata(session) -> list[str] | None:
    text = session.get_modelmeta().custom_metadata_map.get("names")
    if not text:
        return None
    try:
        names = ast.literal_eval(text)  # Ultralytics writes a dict literal {0: 'person', ...}
    except (ValueError, SyntaxError):
        return None
    if isinstance(names, dict):
        return [str(names[key]) for key in sorted(names)]
    if isinstance(names, list):
        return [str(name) for name in names]
    return None


def _coco_names() -> list[str]:
    try:
        return darknet.class_names(darknet.bundled_files().names)
    except darknet.DarknetError:
        raise ImproperlyConfigured(
            "the detector carries no class names and the COCO names (from the "
            f"{darknet.PACKAGE} package) are not installed: set VISIONAIRE_OBJECT_DETECTOR_CLASSES"
        ) from None


def _infer_layout(shape: tuple[int, ...], classes: int) -> str | None:
    if len(shape) != 3:
        return None
    if shape[2] == 4 + classes:
        return "boxes_scores"
    if shape[2] == 5 + classes:
        return "yolov5"
    if shape[1] == 4 + classes:
        return "yolov8"
    return None


class ObjectDetector:
    """A COCO-style ONNX detector. Thread-safe: ONNX Runtime's `run` is, and the
    rest keeps no state. `detect_batch` runs N frames in one inference call."""

    def __init__(self, config: DetectorConfig):
        from analytics.runtime import SESSIONS

        self.config = config
        if not 0.0 <= config.min_score <= 1.0:
            raise ImproperlyConfigured("VISIONAIRE_OBJECT_DETECTOR_MIN_SCORE must be between 0 and 1")
        if not 0.0 < config.nms_iou <= 1.0:
            raise ImproperlyConfigured("VISIONAIRE_OBJECT_DETECTOR_NMS_IOU must be above 0 and at most 1")
        if config.layout not in LAYOUTS:
            raise ImproperlyConfigured(
                f"VISIONAIRE_OBJECT_DETECTOR_LAYOUT must be one of {', '.join(LAYOUTS)}"
            )
        if config.model:
            path = Path(config.model).expanduser().resolve()
            if not path.is_file():
                raise ImproperlyConfigured(f"VISIONAIRE_OBJECT_DETECTOR_MODEL: no file at {path}")
            stat = path.stat()
            self.name = path.name
            key = f"object-detector:{path}:{stat.st_size}:{stat.st_mtime_ns}"
            default_names = None
        else:
            if config.input_size and config.input_size % 32:
                raise ImproperlyConfigured(
                    "VISIONAIRE_OBJECT_DETECTOR_INPUT_SIZE must be a multiple of 32 for the bundled "
                    f"YOLOv3-tiny (got {config.input_size})"
                )
            files = darknet.bundled_files()
            path = darknet.cached_model(config.cache_dir, input_size=config.input_size, files=files)
            self.name = "yolov3-tiny"
            key = f"object-detector:{path.name}"
            default_names = darknet.class_names(files.names)
        self.model_path = path
        try:
            self.session = SESSIONS.get(key, lambda: str(path))
        except Exception as exc:  # ONNX Runtime raises its own types for unreadable models
            raise ImproperlyConfigured(f"ONNX Runtime cannot load the object detector {path}: {exc}") from exc

        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        if len(model_input.shape) != 4 or model_input.shape[1] not in (3, "3"):
            raise ImproperlyConfigured(
                f"{self.name}: the detector's input must be [N, 3, H, W], not {model_input.shape}"
            )
        self.input_dtype = np.float16 if model_input.type == "tensor(float16)" else np.float32
        batch, _, height, width = model_input.shape
        self.max_batch = batch if isinstance(batch, int) and batch > 0 else None
        if isinstance(height, int) and isinstance(width, int):
            if config.input_size and (height, width) != (config.input_size, config.input_size):
                raise ImproperlyConfigured(
                    f"VISIONAIRE_OBJECT_DETECTOR_INPUT_SIZE is {config.input_size} but {self.name} "
                    f"takes {width}x{height}: leave it empty for a model with a fixed input"
                )
            self.input_size = (width, height)
        elif config.input_size:
            self.input_size = (config.input_size, config.input_size)
        else:
            raise ImproperlyConfigured(
                f"{self.name} takes any input size: set VISIONAIRE_OBJECT_DETECTOR_INPUT_SIZE"
            )

        if config.classes:
            names_path = Path(config.classes).expanduser()
            if not names_path.is_file():
                raise ImproperlyConfigured(f"VISIONAIRE_OBJECT_DETECTOR_CLASSES: no file at {names_path}")
            self.class_names = darknet.class_names(names_path)
        else:
            self.class_names = default_names or _names_from_metadata(self.session) or _coco_names()

        # One inference on a grey frame: proves the model runs here, warms it up,
        # and gives the real output shape (exports often leave it symbolic).
        probe = np.full((1, 3, self.input_size[1], self.input_size[0]), PAD_VALUE / 255, self.input_dtype)
        try:
            shape = tuple(self.session.run(None, {self.input_name: probe})[0].shape)
        except Exception as exc:
            raise ImproperlyConfigured(f"{self.name} failed on a test frame: {exc}") from exc
        classes = len(self.class_names)
        layout = config.layout if config.layout != "auto" else _infer_layout(shape, classes)
        expected = {"boxes_scores": (2, 4), "yolov5": (2, 5), "yolov8": (1, 4)}.get(layout or "")
        if expected is None or len(shape) != 3 or shape[expected[0]] != expected[1] + classes:
            raise ImproperlyConfigured(
                f"{self.name}'s output has shape {list(shape)}, which fits "
                f"{'no layout' if layout is None else f'not the {layout} layout'} for {classes} class names: "
                "check VISIONAIRE_OBJECT_DETECTOR_CLASSES and VISIONAIRE_OBJECT_DETECTOR_LAYOUT"
            )
        self.layout = layout

    # --- what it runs on -------------------------------------------------------------

    @property
    def provider(self) -> str:
        return self.session.get_providers()[0]

    @property
    def run_mode(self) -> str:
        return "GPU" if self.provider in _GPU_PROVIDERS else "CPU"

    def describe(self) -> dict:
        return {
            "model": self.name,
            "input_size": list(self.input_size),
            "classes": len(self.class_names),
            "layout": self.layout,
            "provider": self.provider,
            "run_mode": self.run_mode,
        }

    # --- the three steps ----------------------------------------------------------------

    def prepare(self, frame: np.ndarray) -> tuple[np.ndarray, Letterbox]:
        """The frame letterboxed into the input: a [3, H, W] tensor and how it was fitted."""
        image = as_bgr(frame)
        height, width = image.shape[:2]
        if height < 1 or width < 1:
            raise ValueError(f"expected a BGR frame, got an empty array of shape {frame.shape}")
        in_w, in_h = self.input_size
        scale = min(in_w / width, in_h / height)
        new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
        if (new_w, new_h) != (width, height):
            image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
        left, top = (in_w - new_w) // 2, (in_h - new_h) // 2
        image = cv2.copyMakeBorder(
            image, top, in_h - new_h - top, left, in_w - new_w - left, cv2.BORDER_CONSTANT,
            value=(PAD_VALUE, PAD_VALUE, PAD_VALUE),
        )  # fmt: skip
        tensor = cv2.dnn.blobFromImage(image, 1 / 255, swapRB=True)[0]
        return tensor, Letterbox(scale, left, top, width, height)

    def infer(self, tensors: np.ndarray) -> np.ndarray:
        """[N, 3, H, W] -> [N, B, 4 + C] (boxes_scores), in chunks the model accepts."""
        step = self.max_batch or len(tensors)
        outputs = []
        for start in range(0, len(tensors), step):
            chunk = np.ascontiguousarray(tensors[start : start + step], dtype=self.input_dtype)
            outputs.append(self.session.run(None, {self.input_name: chunk})[0])
        raw = np.concatenate(outputs) if len(outputs) > 1 else outputs[0]
        raw = raw.astype(np.float32, copy=False)
        if self.layout == "yolov8":
            return raw.transpose(0, 2, 1)
        if self.layout == "yolov5":
            return np.concatenate([raw[..., :4], raw[..., 4:5] * raw[..., 5:]], axis=-1)
        return raw

    def finish(self, rows: np.ndarray, letterbox: Letterbox) -> list[Detection]:
        """One frame's rows [B, 4 + C] -> its detections, highest confidence first."""
        scores = rows[:, 4:]
        class_ids = scores.argmax(axis=1)
        confidences = scores[np.arange(len(scores)), class_ids]
        keep = confidences >= self.config.min_score
        if not keep.any():
            return []
        boxes, class_ids, confidences = rows[keep, :4], class_ids[keep], confidences[keep]
        xywh = np.column_stack([boxes[:, 0] - boxes[:, 2] / 2, boxes[:, 1] - boxes[:, 3] / 2, boxes[:, 2:4]])
        chosen = cv2.dnn.NMSBoxesBatched(
            xywh.astype(np.float64), confidences, class_ids.astype(np.int32),
            self.config.min_score, self.config.nms_iou,
        )  # fmt: skip
        chosen = sorted(np.asarray(chosen, dtype=int).reshape(-1), key=lambda i: -confidences[i])
        detections = []
        for i in chosen[:MAX_DETECTIONS]:
            x, y, w, h = xywh[i]
            x1 = min(max((x - letterbox.pad_x) / letterbox.scale, 0.0), letterbox.width)
            y1 = min(max((y - letterbox.pad_y) / letterbox.scale, 0.0), letterbox.height)
            x2 = min(max((x + w - letterbox.pad_x) / letterbox.scale, 0.0), letterbox.width)
            y2 = min(max((y + h - letterbox.pad_y) / letterbox.scale, 0.0), letterbox.height)
            if x2 - x1 < 1 or y2 - y1 < 1:
                continue
            class_id = int(class_ids[i])
            label = self.class_names[class_id] if class_id < len(self.class_names) else str(class_id)
            detections.append(
                Detection(
                    label, class_id, float(confidences[i]), (float(x1), float(y1), float(x2), float(y2))
                )
            )
        return detections

    # --- whole frames --------------------------------------------------------------------

    def detect(self, frame: np.ndarray) -> list[Detection]:
        return self.detect_batch([frame])[0]

    def detect_batch(self, frames: Sequence[np.ndarray]) -> list[list[Detection]]:
        """Each frame's detections, from one inference call for all of them."""
        if not frames:
            return []
        prepared = [self.prepare(frame) for frame in frames]
        rows = self.infer(np.stack([tensor for tensor, _ in prepared]))
        return [self.finish(rows[i], letterbox) for i, (_, letterbox) in enumerate(prepared)]


_detector: ObjectDetector | None = None
_detector_lock = threading.Lock()


def object_detector() -> ObjectDetector:
    """The process-wide detector from settings, created on first use (thread-safe)."""
    global _detector
    detector = _detector
    if detector is not None:
        return detector
    with _detector_lock:
        if _detector is None:
            _detector = ObjectDetector(DetectorConfig.from_settings())
            logger.info("object detector loaded: %s", _detector.describe())
        return _detector


def object_detector_reset() -> None:
    """Forget the detector (tests that change its settings)."""
    global _detector
    with _detector_lock:
        _detector = None
