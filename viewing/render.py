"""Pictures for the viewing routes: a published frame turned into a variant
(resized, the analytic's overlay drawn, re-encoded), the overlay as SVG, and the
placeholder shown while a stream delivers no frames.

Pure functions on numpy images and bytes, run in worker threads by the live hub
(viewing/hub.py): OpenCV releases the GIL while it decodes, resizes and encodes.
"""

from __future__ import annotations

import base64
import json
import re
import time
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import cv2
import numpy as np

BOUNDARY = "frame"
DEFAULT_COLOR = "#00e676"
_COLOR_RE = re.compile(r"^#(?:[0-9a-fA-F]{6}|[0-9a-fA-F]{3})$")
# Decoding at 1/2, 1/4 or 1/8 scale is done inside libjpeg (DCT scaling): a
# 720p source watched at 320 px costs a quarter of a full decode.
_REDUCED = ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4), (2, cv2.IMREAD_REDUCED_COLOR_2))
PLACEHOLDER_ASPECT = 16 / 9
_FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass(frozen=True)
class OverlayShape:
    """One overlay item, checked and ready to draw (points in source pixels)."""

    kind: str  # box | line | area
    points: tuple[tuple[float, float], ...]
    label: str
    color: str  # "#rrggbb"


def target_size(source_width: int, source_height: int, height: int) -> tuple[int, int]:
    """(width, height) of a variant `height` px tall that keeps the source's aspect."""
    if source_width <= 0 or source_height <= 0:
        return max(1, round(height * PLACEHOLDER_ASPECT)), height
    return max(1, round(source_width * height / source_height)), height


def decode_reduction(source_height: int, height: int) -> int:
    """The largest libjpeg scale-down (1, 2, 4, 8) that still leaves `height` px."""
    for factor, _flag in _REDUCED:
        if source_height // factor >= height:
            return factor
    return 1


def decode(jpeg: bytes, reduction: int = 1) -> np.ndarray | None:
    flag = dict(_REDUCED).get(reduction, cv2.IMREAD_COLOR)
    image = cv2.imdecode(np.frombuffer(jpeg, dtype=np.uint8), flag)
    return image if image is not None and image.size else None


def encode(image: np.ndarray, quality: int) -> bytes:
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return jpeg.tobytes()


def resized(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`image` at `size` (a new array, safe to draw on)."""
    height, width = image.shape[:2]
    if (width, height) == size:
        return image.copy()
    shrinking = size[0] * size[1] < width * height
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


# --- overlay -------------------------------------------------------------------


def normalized_color(value: Any) -> str:
    if isinstance(value, str) and _COLOR_RE.match(value):
        if len(value) == 4:
            value = "#" + "".join(char * 2 for char in value[1:])
        return value.lower()
    return DEFAULT_COLOR


def _bgr(color: str) -> tuple[int, int, int]:
    return int(color[5:7], 16), int(color[3:5], 16), int(color[1:3], 16)


def overlay_shapes(items: Any) -> list[OverlayShape]:
    """The drawable items of an overlay as the runner published it; malformed
    items (an analytic's bug) are skipped rather than failing the frame."""
    shapes = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict) or item.get("kind") not in ("box", "line", "area"):
            continue
        try:
            points = tuple((float(point[0]), float(point[1])) for point in item.get("points") or ())
        except (TypeError, ValueError, IndexError):
            continue
        if len(points) < 2 or not all(np.isfinite(points).flat):
            continue
        label = item.get("label")
        shapes.append(
            OverlayShape(
                kind=item["kind"],
                points=points,
                label=label if isinstance(label, str) else "",
                color=normalized_color(item.get("color")),
            )
        )
    return shapes


def _scaled(points, scale: tuple[float, float]) -> np.ndarray:
    return np.array([(x * scale[0], y * scale[1]) for x, y in points], dtype=np.float64)


def _ascii(text: str) -> str:
    # OpenCV's Hershey fonts draw ASCII only.
    return text.encode("ascii", "replace").decode()


def _font_scale(height: int) -> float:
    return max(0.35, height / 720 * 0.7)


def _label(image: np.ndarray, text: str, origin: tuple[int, int], color: tuple[int, int, int]) -> None:
    if not text:
        return
    text = _ascii(text)[:80]
    scale = _font_scale(image.shape[0])
    thickness = 1 if scale < 0.8 else 2
    (width, height), baseline = cv2.getTextSize(text, _FONT, scale, thickness)
    x = int(min(max(origin[0], 0), max(0, image.shape[1] - width - 4)))
    y = int(min(max(origin[1], height + baseline + 2), image.shape[0] - 1))
    cv2.rectangle(image, (x, y - height - baseline - 2), (x + width + 4, y), color, cv2.FILLED)
    luminance = 0.114 * color[0] + 0.587 * color[1] + 0.299 * color[2]
    ink = (0, 0, 0) if luminance > 140 else (255, 255, 255)
    cv2.putText(image, text, (x + 2, y - baseline), _FONT, scale, ink, thickness, cv2.LINE_AA)


def draw_overlay(image: np.ndarray, shapes: list[OverlayShape], scale: tuple[float, float]) -> None:
    """Draw `shapes` (in source pixels, `scale` to this image) on `image` in place."""
    thickness = max(2, round(image.shape[0] / 240))
    for shape in shapes:
        color = _bgr(shape.color)
        points = _scaled(shape.points, scale)
        if shape.kind == "box":
            (x1, y1), (x2, y2) = points.min(axis=0), points.max(axis=0)
            top_left = (int(round(x1)), int(round(y1)))
            cv2.rectangle(image, top_left, (int(round(x2)), int(round(y2))), color, thickness)
            _label(image, shape.label, top_left, color)
            continue
        polygon = np.round(points).astype(np.int32).reshape(-1, 1, 2)
        if shape.kind == "area" and len(points) >= 3:
            # A translucent fill shows the zone without hiding what is in it.
            layer = image.copy()
            cv2.fillPoly(layer, [polygon], color)
            cv2.addWeighted(layer, 0.25, image, 0.75, 0, dst=image)
        closed = shape.kind == "area"
        cv2.polylines(image, [polygon], closed, color, thickness, cv2.LINE_AA)
        first = polygon[0, 0]
        _label(image, shape.label, (int(first[0]), int(first[1])), color)


def _svg_points(points: np.ndarray) -> str:
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in points)


def overlay_svg(shapes: list[OverlayShape], scale: tuple[float, float], size: tuple[int, int]) -> str:
    """The overlay as an SVG document of the frame's size (X-NF-Visual-Data)."""
    width, height = size
    font_size = max(10, round(height / 24))
    body = []
    for shape in shapes:
        color = quoteattr(shape.color)
        points = _scaled(shape.points, scale)
        if shape.kind == "box":
            (x1, y1), (x2, y2) = points.min(axis=0), points.max(axis=0)
            body.append(
                f'<rect x="{x1:.1f}" y="{y1:.1f}" width="{x2 - x1:.1f}" height="{y2 - y1:.1f}" '
                f'fill="none" stroke={color} stroke-width="2"/>'
            )
            anchor = (x1, y1)
        elif shape.kind == "area":
            body.append(
                f'<polygon points="{_svg_points(points)}" fill={color} fill-opacity="0.25" '
                f'stroke={color} stroke-width="2"/>'
            )
            anchor = tuple(points[0])
        else:
            body.append(
                f'<polyline points="{_svg_points(points)}" fill="none" stroke={color} stroke-width="2"/>'
            )
            anchor = tuple(points[0])
        if shape.label:
            body.append(
                f'<text x="{anchor[0]:.1f}" y="{max(anchor[1] - 3, font_size):.1f}" fill={color} '
                f'font-family="sans-serif" font-size="{font_size}">{escape(shape.label[:80])}</text>'
            )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">{"".join(body)}</svg>'
    )


# --- frames and placeholders ---------------------------------------------------------


@dataclass(frozen=True)
class Rendered:
    jpeg: bytes
    svg: str | None  # overlay variants only


def render_frame(
    image: np.ndarray,
    *,
    size: tuple[int, int],
    source_size: tuple[int, int],
    quality: int,
    overlay: list[OverlayShape] | None,
) -> Rendered:
    """A variant of a decoded source frame: resized, overlay drawn when asked for
    (`overlay` is None for plain variants), encoded."""
    frame = resized(image, size)
    svg = None
    if overlay is not None:
        scale = (size[0] / source_size[0], size[1] / source_size[1])
        draw_overlay(frame, overlay, scale)
        svg = overlay_svg(overlay, scale, size)
    return Rendered(encode(frame, quality), svg)


def _wrapped(text: str, width: int, scale: float, thickness: int) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        candidate = f"{line} {word}".strip()
        if line and cv2.getTextSize(candidate, _FONT, scale, thickness)[0][0] > width:
            lines.append(line)
            line = word
        else:
            line = candidate
    if line:
        lines.append(line)
    return lines[:4]


_STATE_COLORS = {"RUNNING": (118, 230, 0), "STOPPED": (160, 160, 160), "ERROR": (80, 80, 255)}


def render_placeholder(
    *, size: tuple[int, int], state: str, message: str, quality: int, now: float | None = None
) -> bytes:
    """A status frame: the stream's state, its message and the time (so the
    picture visibly changes every second and a viewer can tell it is live)."""
    width, height = size
    image = np.full((height, width, 3), 32, dtype=np.uint8)
    cv2.rectangle(image, (0, 0), (width - 1, height - 1), (70, 70, 70), max(1, height // 120))
    scale = _font_scale(height) * 1.3
    thickness = 1 if scale < 0.8 else 2
    margin = max(4, width // 20)
    color = _STATE_COLORS.get(state, (0, 171, 255))  # amber for "not delivering"
    lines = [(_ascii(state)[:40], color, scale * 1.2)]
    for line in _wrapped(_ascii(message), width - 2 * margin, scale * 0.8, thickness):
        lines.append((line, (230, 230, 230), scale * 0.8))
    clock = time.strftime("%H:%M:%S", time.localtime(now if now is not None else time.time()))
    lines.append((clock, (150, 150, 150), scale * 0.7))
    heights = [cv2.getTextSize(text, _FONT, s, thickness)[0][1] for text, _c, s in lines]
    gap = max(4, height // 30)
    y = max(0, (height - sum(heights) - gap * (len(lines) - 1)) // 2)
    for (text, ink, s), line_height in zip(lines, heights, strict=True):
        y += line_height
        cv2.putText(image, text, (margin, y), _FONT, s, ink, thickness, cv2.LINE_AA)
        y += gap
    return encode(image, quality)


# --- multipart ---------------------------------------------------------------------


def header_text(value: str, limit: int = 500) -> str:
    """A value safe for an HTTP header line: printable ASCII, one line."""
    text = "".join(char if 32 <= ord(char) < 127 else " " for char in value)
    return " ".join(text.split())[:limit]


def multipart_part(jpeg: bytes, headers: list[tuple[str, str]]) -> bytes:
    """One part of the multipart/x-mixed-replace body, boundary line first. An
    empty `jpeg` makes a header-only status part; it still says image/jpeg like
    every part of the stream (FFmpeg's reader, for one, refuses other types)."""
    lines = [f"--{BOUNDARY}", "Content-Type: image/jpeg", f"Content-Length: {len(jpeg)}"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + jpeg + b"\r\n"


def svg_header(svg: str) -> str:
    return base64.b64encode(svg.encode()).decode("ascii")


# Larger additional data is left out of the part (a header line of this size is
# already far beyond a heatmap grid of 64 x 64 cells).
MAX_ADDITIONAL_DATA_BYTES = 32 * 1024


def additional_data_header(data: Any) -> str | None:
    """X-NF-Additional-Data for an analytic's additional data: standard base64 of its
    UTF-8 JSON; None when there is none, it is not a JSON object, or it is too large."""
    if not isinstance(data, dict):
        return None
    try:
        text = json.dumps(data, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError):
        return None
    encoded = base64.b64encode(text.encode("utf-8")).decode("ascii")
    return encoded if len(encoded) <= MAX_ADDITIONAL_DATA_BYTES else None
