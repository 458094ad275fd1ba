"""Bad and composed images for the face route tests."""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np

from tests.support.face_photos import jpeg_bytes

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_bytes(image: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".png", image)
    assert ok
    return encoded.tobytes()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(width: int = 100_000, height: int = 100_000, rows: int = 32) -> bytes:
    """A valid PNG a few hundred KB long whose header declares width x height
    RGB pixels (30 GB decoded for the defaults); `rows` rows of data are present."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = zlib.compress((b"\x00" * (1 + width * 3)) * rows, 9)
    return PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")


def jpeg_bomb(width: int = 60_000, height: int = 60_000) -> bytes:
    """A small real JPEG whose frame header is rewritten to declare width x height."""
    data = bytearray(jpeg_bytes(np.full((16, 16, 3), 90, np.uint8)))
    position = data.index(b"\xff\xc0")
    data[position + 5 : position + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def side_by_side(*images: np.ndarray, height: int = 400) -> np.ndarray:
    """The images scaled to one height and put next to each other."""
    scaled = [
        cv2.resize(image, (round(image.shape[1] * height / image.shape[0]), height)) for image in images
    ]
    return np.hstack(scaled)


def blank(width: int = 320, height: int = 240, value: int = 127) -> np.ndarray:
    return np.full((height, width, 3), value, np.uint8)
