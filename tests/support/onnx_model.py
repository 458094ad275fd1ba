"""A tiny ONNX face "embedder" written without the onnx package, for testing the
ONNX embedder option: input [N, 3, S, S] float -> AveragePool to 4x4 -> Flatten
-> MatMul with a fixed random matrix -> [N, dim]. It embeds pixels, not
identities; it proves the plumbing (alignment, normalisation, batching, sizes).

The ModelProto is encoded by hand (field numbers from onnx/onnx.proto3).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _varint(value: int) -> bytes:
    out = bytearray()
    value &= (1 << 64) - 1
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _key(field: int, wire: int) -> bytes:
    return _varint((field << 3) | wire)


def _int(field: int, value: int) -> bytes:
    return _key(field, 0) + _varint(value)


def _bytes(field: int, value: bytes | str) -> bytes:
    data = value.encode() if isinstance(value, str) else value
    return _key(field, 2) + _varint(len(data)) + data


def _value_info(name: str, dims: list[int | str]) -> bytes:
    shape = b"".join(_bytes(1, _bytes(2, dim) if isinstance(dim, str) else _int(1, dim)) for dim in dims)
    tensor_type = _int(1, 1) + _bytes(2, shape)  # elem_type FLOAT
    return _bytes(1, name) + _bytes(2, _bytes(1, tensor_type))


def _ints_attribute(name: str, values: list[int]) -> bytes:
    return _bytes(1, name) + b"".join(_int(8, v) for v in values) + _int(20, 7)  # type INTS


def _int_attribute(name: str, value: int) -> bytes:
    return _bytes(1, name) + _int(3, value) + _int(20, 2)  # type INT


def _node(op: str, inputs: list[str], outputs: list[str], attributes: list[bytes] = ()) -> bytes:
    body = b"".join(_bytes(1, i) for i in inputs) + b"".join(_bytes(2, o) for o in outputs)
    return body + _bytes(4, op) + b"".join(_bytes(5, a) for a in attributes)


def _float_tensor(name: str, array: np.ndarray) -> bytes:
    dims = b"".join(_int(1, d) for d in array.shape)
    return dims + _int(2, 1) + _bytes(8, name) + _bytes(9, np.ascontiguousarray(array, "<f4").tobytes())


def embedder_model(
    *, dim: int = 128, input_size: int = 112, batch: int | None = None, seed: int = 5
) -> bytes:
    """The model's bytes; `batch=None` gives a dynamic batch dimension."""
    cell = input_size // 4
    weights = np.random.default_rng(seed).standard_normal((3 * 4 * 4, dim)).astype(np.float32)
    nodes = [
        _node(
            "AveragePool",
            ["input"],
            ["pooled"],
            [_ints_attribute("kernel_shape", [cell, cell]), _ints_attribute("strides", [cell, cell])],
        ),
        _node("Flatten", ["pooled"], ["flat"], [_int_attribute("axis", 1)]),
        _node("MatMul", ["flat", "weights"], ["embedding"]),
    ]
    batch_dim: int | str = "N" if batch is None else batch
    graph = (
        b"".join(_bytes(1, n) for n in nodes)
        + _bytes(2, "test-embedder")
        + _bytes(5, _float_tensor("weights", weights))
        + _bytes(11, _value_info("input", [batch_dim, 3, input_size, input_size]))
        + _bytes(12, _value_info("embedding", [batch_dim, dim]))
    )
    opset = _bytes(1, "") + _int(2, 13)
    return _int(1, 7) + _bytes(2, "visionaire-tests") + _bytes(7, graph) + _bytes(8, opset)


def write_embedder_model(path: Path, **kwargs) -> Path:
    path.write_bytes(embedder_model(**kwargs))
    return path


__all__ = ["embedder_model", "write_embedder_model"]
