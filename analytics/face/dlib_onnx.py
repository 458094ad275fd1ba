"""dlib's face descriptor ResNet, converted to ONNX so ONNX Runtime runs it.

The shipped model (`dlib_face_recognition_resnet_model_v1.dat`, CC0, from the
`face-recognition-models` package) is a plain ResNet stored in dlib's own
serialization format. This module reads that format with numpy, writes the same
network as an ONNX graph, and checks the result against dlib itself: the
converted model is used only when, on real face chips, every ONNX Runtime
embedding has a cosine of at least `MIN_COSINE` to dlib's. The vectors are the
same, so enrollments stored with dlib stay valid.

dlib's format, as its source defines it (dlib/serialize.h, dlib/dnn/*.h):

- Integers: a control byte (bit 7 = negative, bits 0-3 = byte count), then the
  magnitude in that many little-endian bytes. Floats: mantissa then exponent,
  each such an integer (value = mantissa * 2**exponent; exponents 32000-32002
  mean inf, -inf, NaN). Strings: a length, then the bytes. Bools: ASCII '1'/'0'.
- Tensors: version (2: raw little-endian float32; 1: one dlib float each), then
  num_samples, k, nr, nc and the values in NCHW order. An "alias tensor" (a
  view into a layer's flat parameter tensor) stores only a version and a shape.
- A network nests: `loss<layer<layer<...<input>>>>`. Every wrapper writes its
  version and then its inner network before its own layer, so the file holds
  the loss, then the versions of all wrappers from the outside in, then the
  input layer, then each layer's parameters from the input outwards (each
  followed by three bools and the empty training buffers). Tag and skip
  wrappers (residual connections) write only a version: where they sit comes
  from the network's type, which is why the architecture is spelt out below.

The network (dlib's `anet_type`, from the Python binding's face_recognition.cpp):
input 150x150 RGB, (pixel - channel mean) / 256; conv 7x7/2 (32) + affine +
relu; max pool 3x3/2; residual blocks of two 3x3 convs each followed by an
affine (batch norm folded at training's end), at 32, 64, 128, 256, 256
filters, the first block of each level after the first striding by 2 with a
2x2/2 average pool on its shortcut (dlib pads stride-1 layers by half the
window, strided ones not at all); global average pool; 256x128 matrix (no bias). dlib adds two
tensors of different shapes by padding the smaller with zeros after the last
channel, row and column (the branch has more channels than its shortcut; at the
256 levels the strided branch comes out 3x3 against a 4x4 shortcut, then 1x1
against 2x2), so the graph pads the same way.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

# Every ONNX embedding must be at least this close to dlib's (cosine).
MIN_COSINE = 0.9999
# Bumped whenever the graph this module writes changes, so cached files are rebuilt.
CONVERTER_VERSION = 1
CHIP_SIZE = 150
INPUT_NAME = "chips"
OUTPUT_NAME = "descriptors"
OPSET = 17
# The oldest IR version that carries opset 17, so older ONNX Runtime builds load the file.
IR_VERSION = 8

_REFERENCE_CHIP = Path(__file__).with_name("reference") / "astronaut_chip.png"


class DlibFormatError(ValueError):
    """The file is not the dlib network this converter knows."""


class ConversionRejected(RuntimeError):
    """The converted model does not reproduce dlib's embeddings closely enough."""


# --- reading dlib's serialization format ---------------------------------------------


class _Reader:
    def __init__(self, data: bytes):
        self.data = memoryview(data)
        self.pos = 0

    def _take(self, count: int) -> memoryview:
        if count < 0 or self.pos + count > len(self.data):
            raise DlibFormatError(f"the file ends early (wanted {count} bytes at offset {self.pos})")
        chunk = self.data[self.pos : self.pos + count]
        self.pos += count
        return chunk

    def integer(self) -> int:
        control = self._take(1)[0]
        size = control & 0x0F
        if size > 8 or control & 0x70:
            raise DlibFormatError(f"not a dlib integer at offset {self.pos - 1} (control byte {control:#x})")
        value = int.from_bytes(self._take(size), "little")
        return -value if control & 0x80 else value

    def real(self) -> float:
        if self.pos < len(self.data) and self.data[self.pos] & 0x70:
            # dlib's older text format for floats; no model of this network uses it.
            raise DlibFormatError(f"a float in dlib's old text format at offset {self.pos}")
        mantissa = self.integer()
        exponent = self.integer()
        special = {32000: math.inf, 32001: -math.inf, 32002: math.nan}
        if exponent in special:
            return special[exponent]
        return math.ldexp(mantissa, exponent)

    def string(self) -> str:
        length = self.integer()
        return bytes(self._take(length)).decode("latin-1")

    def boolean(self) -> bool:
        value = self._take(1)[0]
        if value not in (ord("0"), ord("1")):
            raise DlibFormatError(f"not a dlib bool at offset {self.pos - 1}")
        return value == ord("1")

    def tensor(self) -> np.ndarray:
        version = self.integer()
        shape = tuple(self.integer() for _ in range(4))
        count = math.prod(shape)
        if version == 2:
            values = np.frombuffer(self._take(4 * count), dtype="<f4").astype(np.float32)
        elif version == 1:
            values = np.array([self.real() for _ in range(count)], dtype=np.float32)
        else:
            raise DlibFormatError(f"unknown tensor version {version} at offset {self.pos}")
        return values.reshape(shape)

    def alias_shape(self) -> tuple[int, int, int, int]:
        version = self.integer()
        if version != 1:
            raise DlibFormatError(f"unknown alias tensor version {version}")
        return tuple(self.integer() for _ in range(4))  # type: ignore[return-value]

    def expect_version(self, allowed: tuple[int, ...], what: str) -> int:
        version = self.integer()
        if version not in allowed:
            raise DlibFormatError(f"{what}: version {version}, expected one of {allowed}")
        return version


# --- the network -----------------------------------------------------------------------


@dataclass
class Step:
    """One wrapper of the network, from the input outwards: a computational layer
    (`kind` = con, affine, relu, max_pool, avg_pool, add_prev, fc), a tag or a skip."""

    kind: str
    args: dict[str, int] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def is_layer(self) -> bool:
        return self.kind not in ("tag", "skip")


def _block(filters: int, stride: int) -> list[Step]:
    return [
        Step("con", {"filters": filters, "size": 3, "stride": stride}),
        Step("affine"),
        Step("relu"),
        Step("con", {"filters": filters, "size": 3, "stride": 1}),
        Step("affine"),
    ]


def _ares(filters: int) -> list[Step]:
    """relu<add_prev1<block<filters, stride 1, tag1<...>>>>"""
    return [Step("tag", {"id": 1}), *_block(filters, 1), Step("add_prev", {"tag": 1}), Step("relu")]


def _ares_down(filters: int) -> list[Step]:
    """relu<add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<filters, stride 2, tag1<...>>>>>>>"""
    return [
        Step("tag", {"id": 1}),
        *_block(filters, 2),
        Step("tag", {"id": 2}),
        Step("skip", {"id": 1}),
        Step("avg_pool", {"size": 2, "stride": 2}),
        Step("add_prev", {"tag": 2}),
        Step("relu"),
    ]


def architecture() -> list[Step]:
    """dlib's anet_type from the input outwards (the input and loss layers apart)."""
    steps = [
        Step("con", {"filters": 32, "size": 7, "stride": 2}),
        Step("affine"),
        Step("relu"),
        Step("max_pool", {"size": 3, "stride": 2}),
    ]
    levels = [(32, 3, False), (64, 3, True), (128, 2, True), (256, 2, True), (256, 0, True)]
    for filters, plain, down in levels:
        if down:
            steps += _ares_down(filters)
        for _ in range(plain):
            steps += _ares(filters)
    steps += [Step("avg_pool", {"size": 0, "stride": 1}), Step("fc", {"outputs": 128})]
    return steps


@dataclass
class DlibNetwork:
    channel_means: tuple[float, float, float]  # red, green, blue
    size: int
    steps: list[Step]


def _read_layer(reader: _Reader, step: Step) -> None:
    name = reader.string()
    args = step.args
    if step.kind == "con":
        if name != "con_4":
            raise DlibFormatError(f"expected a convolution (con_4), found {name!r}")
        params = reader.tensor().ravel()
        filters, rows, cols = reader.integer(), reader.integer(), reader.integer()
        stride = (reader.integer(), reader.integer())
        padding = (reader.integer(), reader.integer())
        weights_shape = reader.alias_shape()
        bias_shape = reader.alias_shape()
        for _ in range(4):  # learning-rate and weight-decay multipliers
            reader.real()
        if (filters, rows, cols, stride) != (
            args["filters"],
            args["size"],
            args["size"],
            (args["stride"],) * 2,
        ):
            raise DlibFormatError(f"unexpected convolution {filters}x{rows}x{cols}/{stride} for {args}")
        count = math.prod(weights_shape)
        if weights_shape[0] != filters or count + filters != params.size or math.prod(bias_shape) != filters:
            raise DlibFormatError("convolution parameters of an unexpected size")
        step.params = {
            "weights": params[:count].reshape(weights_shape),
            "bias": params[count : count + filters],
            "padding": padding,
        }
    elif step.kind == "affine":
        if name != "affine_":
            raise DlibFormatError(f"expected an affine layer, found {name!r}")
        params = reader.tensor().ravel()
        gamma_shape, beta_shape = reader.alias_shape(), reader.alias_shape()
        mode = reader.integer()
        channels = math.prod(gamma_shape)
        if mode != 0 or gamma_shape != beta_shape or params.size != 2 * channels:
            raise DlibFormatError("expected a per-channel (CONV mode) affine layer")
        step.params = {"gamma": params[:channels], "beta": params[channels:]}
    elif step.kind in ("relu", "add_prev"):
        expected = {"relu": "relu_", "add_prev": "add_prev_"}[step.kind]
        if name != expected:
            raise DlibFormatError(f"expected {expected}, found {name!r}")
    elif step.kind in ("max_pool", "avg_pool"):
        expected = f"{step.kind}_2"
        if name != expected:
            raise DlibFormatError(f"expected {expected}, found {name!r}")
        rows, cols = reader.integer(), reader.integer()
        stride = (reader.integer(), reader.integer())
        padding = (reader.integer(), reader.integer())
        if (rows, cols, stride) != (args["size"], args["size"], (args["stride"],) * 2):
            raise DlibFormatError(f"unexpected pooling {rows}x{cols}/{stride} for {args}")
        step.params = {"padding": padding}
    elif step.kind == "fc":
        if name != "fc_2":
            raise DlibFormatError(f"expected a fully connected layer (fc_2), found {name!r}")
        outputs, inputs = reader.integer(), reader.integer()
        params = reader.tensor().ravel()
        weights_shape = reader.alias_shape()
        reader.alias_shape()  # biases: unused without a bias
        bias_mode = reader.integer()
        for _ in range(4):
            reader.real()
        if outputs != args["outputs"] or bias_mode != 1 or params.size != inputs * outputs:
            raise DlibFormatError("expected a 128-output fully connected layer without bias")
        if math.prod(weights_shape) != inputs * outputs:
            raise DlibFormatError("fully connected weights of an unexpected size")
        step.params = {"weights": params.reshape(inputs, outputs)}
    else:  # pragma: no cover - the architecture has no other kinds
        raise DlibFormatError(f"unknown step {step.kind}")


def read_dlib_network(data: bytes) -> DlibNetwork:
    """The parameters of dlib's face descriptor network from the .dat file's bytes."""
    reader = _Reader(data)
    steps = architecture()
    reader.expect_version((1,), "loss layer")
    loss = reader.string()
    if not loss.startswith("loss_metric_"):
        raise DlibFormatError(f"expected dlib's metric loss, found {loss!r}: not the face descriptor model")
    if loss == "loss_metric_2":
        reader.real()  # margin
        reader.real()  # distance threshold
    # The wrappers' versions, from the outside in; the innermost layer sits on the input.
    for step in reversed(steps[1:]):
        if step.is_layer:
            reader.expect_version((2,), f"{step.kind} layer")
        else:
            reader.expect_version((1,), f"{step.kind} layer")
    first_version = reader.expect_version((2, 3), "first layer")
    if reader.string() != "input_rgb_image_sized":
        raise DlibFormatError("expected an input_rgb_image_sized input layer")
    means = (reader.real(), reader.real(), reader.real())
    rows, cols = reader.integer(), reader.integer()
    if rows != cols:
        raise DlibFormatError(f"expected a square input, found {rows}x{cols}")
    for index, step in enumerate(steps):
        if not step.is_layer:
            continue
        _read_layer(reader, step)
        for _ in range(3):  # setup called, gradient stale, getters disabled
            reader.boolean()
        reader.tensor()  # training buffers: the gradient input and the cached output
        reader.tensor()
        reader.tensor()  # parameter gradient, or, on the input's layer, the data gradient
        if index == 0 and first_version == 3:
            reader.integer()  # sample expansion factor
    if reader.pos != len(reader.data):
        raise DlibFormatError(f"{len(reader.data) - reader.pos} bytes left after the network")
    return DlibNetwork(channel_means=means, size=rows, steps=steps)


# --- writing the ONNX graph ------------------------------------------------------------


class _Graph:
    def __init__(self) -> None:
        self.nodes: list = []
        self.initializers: list = []
        self._names: dict[str, int] = {}

    def name(self, prefix: str) -> str:
        self._names[prefix] = self._names.get(prefix, 0) + 1
        return f"{prefix}_{self._names[prefix]}"

    def constant(self, prefix: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        name = self.name(prefix)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], **attributes) -> str:
        from onnx import helper

        output = self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [output], name=output, **attributes))
        return output


def _output_size(size: int, window: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - window) // stride + 1


def build_onnx(network: DlibNetwork):
    """The ONNX model (onnx.ModelProto) computing dlib's descriptor for a batch of
    RGB chips: input uint8 [N, size, size, 3], output float32 [N, 128]."""
    from onnx import TensorProto, helper

    graph = _Graph()
    size = network.size
    # (pixel - channel mean) / 256, as dlib's input layer, then NHWC -> NCHW.
    pixels = graph.node("Cast", [INPUT_NAME], to=TensorProto.FLOAT)
    means = np.array(network.channel_means, dtype=np.float32).reshape(1, 1, 1, 3)
    centred = graph.node("Sub", [pixels, graph.constant("channel_means", means)])
    scaled = graph.node("Mul", [centred, graph.constant("scale", np.array(1 / 256, dtype=np.float32))])
    current = graph.node("Transpose", [scaled], perm=[0, 3, 1, 2])
    shape = (3, size, size)  # channels, rows, cols of `current`
    tags: dict[int, tuple[str, tuple[int, int, int]]] = {}

    steps = network.steps
    index = 0
    while index < len(steps):
        step = steps[index]
        if step.kind == "con":
            weights = step.params["weights"].astype(np.float64)
            bias = step.params["bias"].astype(np.float64)
            following = steps[index + 1] if index + 1 < len(steps) else None
            if following is not None and following.kind == "affine":
                # An affine right after a convolution scales each filter: fold it in.
                gamma = following.params["gamma"].astype(np.float64)
                weights = weights * gamma[:, None, None, None]
                bias = bias * gamma + following.params["beta"]
                index += 1
            pad_y, pad_x = step.params["padding"]
            window, stride = step.args["size"], step.args["stride"]
            current = graph.node(
                "Conv",
                [
                    current,
                    graph.constant("conv_weights", weights.astype(np.float32)),
                    graph.constant("conv_bias", bias.astype(np.float32)),
                ],
                kernel_shape=[window, window],
                strides=[stride, stride],
                pads=[pad_y, pad_x, pad_y, pad_x],
            )
            shape = (
                step.args["filters"],
                _output_size(shape[1], window, stride, pad_y),
                _output_size(shape[2], window, stride, pad_x),
            )
        elif step.kind == "affine":
            gamma = step.params["gamma"].astype(np.float32).reshape(1, -1, 1, 1)
            beta = step.params["beta"].astype(np.float32).reshape(1, -1, 1, 1)
            current = graph.node("Mul", [current, graph.constant("gamma", gamma)])
            current = graph.node("Add", [current, graph.constant("beta", beta)])
        elif step.kind == "relu":
            current = graph.node("Relu", [current])
        elif step.kind in ("max_pool", "avg_pool"):
            window, stride = step.args["size"], step.args["stride"]
            if window == 0:  # dlib's "everything" pooling: one window over the whole map
                current = graph.node(
                    "GlobalAveragePool" if step.kind == "avg_pool" else "GlobalMaxPool", [current]
                )
                shape = (shape[0], 1, 1)
            else:
                pad_y, pad_x = step.params["padding"]
                attributes = {"count_include_pad": 0} if step.kind == "avg_pool" else {}
                current = graph.node(
                    "AveragePool" if step.kind == "avg_pool" else "MaxPool",
                    [current],
                    kernel_shape=[window, window],
                    strides=[stride, stride],
                    pads=[pad_y, pad_x, pad_y, pad_x],
                    **attributes,
                )
                shape = (
                    shape[0],
                    _output_size(shape[1], window, stride, pad_y),
                    _output_size(shape[2], window, stride, pad_x),
                )
        elif step.kind == "tag":
            tags[step.args["id"]] = (current, shape)
        elif step.kind == "skip":
            current, shape = tags[step.args["id"]]
        elif step.kind == "add_prev":
            other, other_shape = tags[step.args["tag"]]
            target = tuple(max(a, b) for a, b in zip(shape, other_shape, strict=True))
            current = graph.node(
                "Add", [_pad_to(graph, current, shape, target), _pad_to(graph, other, other_shape, target)]
            )
            shape = target
        elif step.kind == "fc":
            flat = graph.node("Flatten", [current], axis=1)
            weights = step.params["weights"].astype(np.float32)
            if weights.shape[0] != math.prod(shape):
                raise DlibFormatError(
                    f"the last layer expects {weights.shape[0]} inputs, the network gives {shape}"
                )
            current = graph.node("MatMul", [flat, graph.constant("fc_weights", weights)])
            shape = (weights.shape[1],)
        index += 1

    graph.nodes[-1].output[0] = OUTPUT_NAME
    batch = "batch"
    model = helper.make_model(
        helper.make_graph(
            graph.nodes,
            "dlib_face_recognition_resnet_model_v1",
            [helper.make_tensor_value_info(INPUT_NAME, TensorProto.UINT8, [batch, size, size, 3])],
            [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [batch, shape[0]])],
            graph.initializers,
        ),
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="visionaire analytics.face.dlib_onnx",
        producer_version=str(CONVERTER_VERSION),
    )
    model.ir_version = IR_VERSION
    return model


def _pad_to(graph: _Graph, value: str, shape: tuple[int, ...], target: tuple[int, ...]) -> str:
    """Zeros after the last channel, row and column: how dlib adds tensors of different shapes."""
    if shape == target:
        return value
    extra = [t - s for s, t in zip(shape, target, strict=True)]
    pads = np.array([0, 0, 0, 0, 0, *extra], dtype=np.int64)
    return graph.node("Pad", [value, graph.constant("pads", pads)], mode="constant")


def convert(dat_path: str | os.PathLike, onnx_path: str | os.PathLike) -> Path:
    """Read dlib's .dat file and write the equivalent ONNX model to `onnx_path`."""
    import onnx

    network = read_dlib_network(Path(dat_path).read_bytes())
    model = build_onnx(network)
    onnx.checker.check_model(model)
    target = Path(onnx_path)
    target.write_bytes(model.SerializeToString())
    return target


# --- checking against dlib ---------------------------------------------------------------


def reference_chips() -> np.ndarray:
    """Real face chips the conversion is checked on, [N, 150, 150, 3] uint8 RGB:
    the shipped aligned chip of a public-domain photo and variants of it made
    with numpy only (so they are the same bytes on every machine): mirrored,
    lighter, darker and flatter, grey, blurred, noisy, shifted, colour-swapped."""
    import cv2

    bgr = cv2.imread(str(_REFERENCE_CHIP), cv2.IMREAD_COLOR)
    if bgr is None or bgr.shape != (CHIP_SIZE, CHIP_SIZE, 3):
        raise FileNotFoundError(f"the reference face chip {_REFERENCE_CHIP} is missing or damaged")
    chip = np.ascontiguousarray(bgr[..., ::-1])
    pixels = chip.astype(np.float32)
    grey = pixels @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    padded = np.pad(pixels, ((1, 1), (1, 1), (0, 0)), mode="edge")
    blurred = sum(padded[y : y + CHIP_SIZE, x : x + CHIP_SIZE] for y in range(3) for x in range(3)) / 9
    noise = np.random.default_rng(20240101).normal(0.0, 8.0, chip.shape).astype(np.float32)
    shifted = np.pad(chip, ((4, 0), (0, 6), (0, 0)), mode="edge")[:CHIP_SIZE, 6:]
    variants = [
        pixels,
        pixels[:, ::-1],
        pixels * 1.25 + 10,
        pixels * 0.6,
        (pixels - 128) * 0.7 + 128,
        np.repeat(grey[..., None], 3, axis=2),
        blurred,
        pixels + noise,
        shifted.astype(np.float32),
        pixels[..., ::-1],
    ]
    return np.stack([np.clip(np.rint(v), 0, 255).astype(np.uint8) for v in variants])


def dlib_descriptors(chips: np.ndarray, dat_path: str | os.PathLike) -> np.ndarray:
    """dlib's own descriptors of aligned chips, [N, 128] float64 (not normalised)."""
    import dlib

    model = dlib.face_recognition_model_v1(str(dat_path))
    descriptors = model.compute_face_descriptor([np.ascontiguousarray(chip) for chip in chips])
    return np.array([np.array(d) for d in descriptors], dtype=np.float64)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two [N, D] arrays."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    norms = np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
    return (a * b).sum(axis=1) / norms


def run_session(session, chips: np.ndarray) -> np.ndarray:
    """The converted model's raw descriptors of [N, 150, 150, 3] uint8 RGB chips."""
    chips = np.ascontiguousarray(chips, dtype=np.uint8)
    return np.asarray(session.run([OUTPUT_NAME], {INPUT_NAME: chips})[0], dtype=np.float32)


# --- the cached conversion ---------------------------------------------------------------


@dataclass(frozen=True)
class ConvertedModel:
    """A converted model that passed the check, and what it was checked with."""

    path: Path
    source_sha256: str
    reference_descriptors: np.ndarray  # dlib's descriptors of reference_chips()
    min_cosine: float  # the worst agreement found at conversion, on the CPU
    converted_now: bool  # False when the cached file was used

    def check_session(self, session) -> float:
        """The lowest cosine between `session`'s descriptors of the reference
        chips and dlib's: proves the provider the session runs on (a GPU's
        arithmetic differs from the CPU's) without loading dlib's model."""
        return float(cosines(run_session(session, reference_chips()), self.reference_descriptors).min())


def default_model_path() -> Path:
    from .engine import DLIB_RESNET_FILE, face_model_file

    return face_model_file(DLIB_RESNET_FILE)


def default_cache_dir() -> Path:
    from django.conf import settings

    return Path(settings.DATA_DIR) / "models"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        for block in iter(lambda: source.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_paths(cache_dir: Path, source_sha256: str) -> tuple[Path, Path]:
    """The model and its manifest (what it was checked with) for a source file's hash."""
    stem = f"dlib_resnet_{source_sha256[:16]}"
    return cache_dir / f"{stem}.onnx", cache_dir / f"{stem}.json"


_process_lock = threading.Lock()


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """One converter at a time, among threads and among the processes sharing the data folder."""
    with _process_lock, open(lock_path, "a+b") as handle:
        try:
            import fcntl
        except ImportError:  # not POSIX: the atomic renames below still keep the files whole
            yield
            return
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _atomic_write(target: Path, data: bytes) -> None:
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o644)  # mkstemp makes it private; the model is no secret
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _chips_sha256(chips: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(chips).tobytes()).hexdigest()


def _cached(model_path: Path, manifest_path: Path, source_sha256: str, chips_sha256: str):
    """The cached model when its manifest vouches for it, else the reason it is not used."""
    if not model_path.is_file() or not manifest_path.is_file():
        return None, "no converted model yet"
    try:
        manifest = json.loads(manifest_path.read_text())
        descriptors = np.array(manifest["dlib_descriptors"], dtype=np.float64)
        expected = (
            manifest["converter_version"],
            manifest["source_sha256"],
            manifest["reference_chips_sha256"],
        )
        onnx_sha256 = manifest["onnx_sha256"]
        min_cosine = float(manifest["min_cosine"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return None, f"its manifest is unreadable ({exc})"
    if expected != (CONVERTER_VERSION, source_sha256, chips_sha256):
        return None, "it was made by another converter version, from another file or checked on other chips"
    if file_sha256(model_path) != onnx_sha256:
        return None, "the cached file is not the one that was checked (changed or damaged)"
    if min_cosine < MIN_COSINE:
        return None, f"its recorded agreement {min_cosine:.6f} is under {MIN_COSINE}"
    model = ConvertedModel(model_path, source_sha256, descriptors, min_cosine, converted_now=False)
    return model, ""


def converted_model(
    *, dat_path: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None
) -> ConvertedModel:
    """dlib's face descriptor model as ONNX, converted on first use and cached
    under the data folder, keyed by the source file's sha256. A cached file is
    used only if it is byte for byte the one that passed the check; otherwise
    (missing, changed, older converter) it is converted again and checked: on
    the reference chips, every ONNX Runtime descriptor (CPU) must have a cosine
    of at least MIN_COSINE to dlib's own. Raises ConversionRejected when it does
    not, DlibFormatError when the file is not the network this module knows."""
    source = Path(dat_path) if dat_path is not None else default_model_path()
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    source_sha256 = file_sha256(source)
    model_path, manifest_path = cache_paths(folder, source_sha256)
    chips = reference_chips()
    chips_sha256 = _chips_sha256(chips)
    with _exclusive(folder / f".{model_path.stem}.lock"):
        model, reason = _cached(model_path, manifest_path, source_sha256, chips_sha256)
        if model is not None:
            return model
        logger.info("converting %s to ONNX: %s", source.name, reason)
        return _convert_and_check(source, source_sha256, model_path, manifest_path, chips, chips_sha256)


def _convert_and_check(
    source: Path,
    source_sha256: str,
    model_path: Path,
    manifest_path: Path,
    chips: np.ndarray,
    chips_sha256: str,
) -> ConvertedModel:
    import onnx
    import onnxruntime as ort

    started = time.perf_counter()
    model = build_onnx(read_dlib_network(source.read_bytes()))
    onnx.checker.check_model(model)
    data = model.SerializeToString()
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    expected = dlib_descriptors(chips, source)
    agreement = cosines(run_session(session, chips), expected)
    min_cosine = float(agreement.min())
    if not min_cosine >= MIN_COSINE:  # also refuses NaN
        raise ConversionRejected(
            f"the ONNX conversion of {source.name} disagrees with dlib: cosine {min_cosine:.6f} "
            f"on a reference chip, {MIN_COSINE} needed"
        )
    # The model first, then the manifest that vouches for it: a crash in between
    # leaves a model without a matching manifest, which is converted again.
    _atomic_write(model_path, data)
    manifest = {
        "converter_version": CONVERTER_VERSION,
        "source": str(source),
        "source_sha256": source_sha256,
        "onnx_sha256": hashlib.sha256(data).hexdigest(),
        "reference_chips_sha256": chips_sha256,
        "min_cosine": min_cosine,
        "median_cosine": float(np.median(agreement)),
        "dlib_descriptors": expected.tolist(),
        "onnxruntime": ort.__version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    _atomic_write(manifest_path, json.dumps(manifest, indent=1).encode())
    _remove_other_conversions(model_path)
    logger.info(
        "converted %s to %s in %.1f s; agreement with dlib on %d reference chips: min cosine %.9f",
        source.name,
        model_path,
        time.perf_counter() - started,
        len(chips),
        min_cosine,
    )
    return ConvertedModel(model_path, source_sha256, expected, min_cosine, converted_now=True)


def _remove_other_conversions(kept: Path) -> None:
    """Conversions of other source files (an older model package): one cached
    model at a time, so the folder does not grow with every upgrade."""
    for path in kept.parent.glob("dlib_resnet_*"):
        if path.suffix in (".onnx", ".json") and path.stem != kept.stem:
            with contextlib.suppress(OSError):
                path.unlink()
                logger.info("removed %s, converted from another model file", path.name)
