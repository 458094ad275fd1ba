"""Visualization routes (spec/API.md, "Visualization"): their input checks.

Live viewing itself arrives with a later issue; until then a valid request is
answered 501 rather than with made-up frames.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.negotiation import BaseContentNegotiation

from platform_config.selectors import node_get
from visionaire_site.api import ApiView
from visionaire_site.errors import ApiError, BadRequest, NotFound
from visionaire_site.openapi import ErrorSerializer

from .models import Pipeline, Stream

STREAM_ID_RE = re.compile(r"^[0-9a-f]{16}$")
HEIGHT_RANGE = (16, 4320)
QUALITY_RANGE = (1, 100)
DEFAULT_HEIGHT = 320
DEFAULT_JPEG_QUALITY = 60
NOT_AVAILABLE = "live viewing is not available yet in this version"


class IgnoreAcceptNegotiation(BaseContentNegotiation):
    """Answer JSON errors whatever `Accept` says: an `<img>` asks for image/*, and a
    406 would hide the reason the stream cannot be shown."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


@dataclass(frozen=True)
class ViewingRequest:
    """A checked request to watch a stream, with the variant asked for."""

    stream: Stream
    analytic_id: str | None
    fps: int  # 0 = as fast as the stream delivers
    height: int
    jpeg_quality: int


def analytic_id_plausible(value: str) -> bool:
    """Whether `value` could be an analytic id; others (NUL bytes above all, which
    PostgreSQL refuses) are answered 404 without a query."""
    return 0 < len(value) <= 40 and all(ord(char) >= 32 for char in value)


def _int_param(name: str, raw: str, low: int, high: int | None) -> int:
    bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"invalid {name} '{raw[:40]}': it must be an integer {bounds}") from None
    if value < low or (high is not None and value > high):
        raise BadRequest(f"invalid {name} {value}: it must be {bounds}")
    return value


def viewing_request_parse(
    request,
    *,
    node: str,
    stream_id: str,
    analytic_id: str | None = None,
    path_fps: str | None = None,
    fps_allowed: bool = True,
) -> ViewingRequest:
    """Check path and query of a visualization route: 400 for malformed input
    (the message names it), 404 for an unknown node, stream or pipeline."""
    node_row = node_get(node)
    if not STREAM_ID_RE.match(stream_id):
        raise BadRequest(f"invalid stream_id '{stream_id[:40]}': it must be 16 lowercase hex characters")
    stream = Stream.objects.filter(stream_id=stream_id, node=node_row).first()
    if stream is None:
        raise NotFound("stream not found")
    if analytic_id is not None:
        if not (
            analytic_id_plausible(analytic_id)
            and Pipeline.objects.filter(stream=stream, analytic_id=analytic_id).exists()
        ):
            raise NotFound("stream or analytic not found")

    allowed = {"height", "jpeg_quality", "token"} | ({"fps"} if fps_allowed else set())
    query = request.query_params
    unknown = sorted(set(query) - allowed)
    if unknown:
        raise BadRequest(f"unknown query parameter(s): {', '.join(unknown)}")
    repeated = sorted(name for name, values in query.lists() if len(values) > 1)
    if repeated:
        raise BadRequest(f"query parameter(s) given more than once: {', '.join(repeated)}")
    if path_fps is not None and "fps" in query:
        raise BadRequest("fps: give it in the path or in the query, not both")
    fps_raw = path_fps if path_fps is not None else query.get("fps")
    return ViewingRequest(
        stream=stream,
        analytic_id=analytic_id,
        fps=_int_param("fps", fps_raw, 0, None) if fps_raw is not None else 0,
        height=_int_param("height", query["height"], *HEIGHT_RANGE) if "height" in query else DEFAULT_HEIGHT,
        jpeg_quality=(
            _int_param("jpeg_quality", query["jpeg_quality"], *QUALITY_RANGE)
            if "jpeg_quality" in query
            else DEFAULT_JPEG_QUALITY
        ),
    )


# --- OpenAPI description -----------------------------------------------------

_PATH = OpenApiParameter.PATH
_QUERY = OpenApiParameter.QUERY
NODE = OpenApiParameter("node", OpenApiTypes.INT, _PATH, description="Node number, from 0.")
STREAM_ID = OpenApiParameter("stream_id", OpenApiTypes.STR, _PATH, description="16 lowercase hex characters.")
ANALYTIC_ID = OpenApiParameter(
    "analytic_id", OpenApiTypes.STR, _PATH, description="Analytic whose overlay to draw."
)
PATH_FPS = OpenApiParameter("fps", OpenApiTypes.INT, _PATH, description="Frame-rate cap; 0 = unlimited.")
QUERY_FPS = OpenApiParameter(
    "fps",
    OpenApiTypes.INT,
    _QUERY,
    required=False,
    description="Frame-rate cap, >= 0; 0 = unlimited (default).",
)
HEIGHT = OpenApiParameter(
    "height",
    OpenApiTypes.INT,
    _QUERY,
    required=False,
    description="Frame height in px, 16-4320 (default 320).",
)
JPEG_QUALITY = OpenApiParameter(
    "jpeg_quality", OpenApiTypes.INT, _QUERY, required=False, description="JPEG quality, 1-100 (default 60)."
)
TOKEN = OpenApiParameter(
    "token", OpenApiTypes.STR, _QUERY, required=False, description="API token, when tokens are configured."
)
ERRORS = {
    400: OpenApiResponse(ErrorSerializer, description="Malformed node, stream id or query parameter."),
    404: OpenApiResponse(ErrorSerializer, description="Unknown node, stream or pipeline."),
    501: OpenApiResponse(ErrorSerializer, description="Live viewing is not available in this version."),
}
MJPEG = {
    (200, "multipart/x-mixed-replace"): OpenApiResponse(OpenApiTypes.BINARY, description="MJPEG stream."),
    **ERRORS,
}
JPEG = {(200, "image/jpeg"): OpenApiResponse(OpenApiTypes.BINARY, description="The current frame."), **ERRORS}
HTML = {(200, "text/html"): OpenApiResponse(OpenApiTypes.STR, description="Live viewing page."), **ERRORS}


class _ViewingView(ApiView):
    content_negotiation_class = IgnoreAcceptNegotiation

    def not_available(self, viewing: ViewingRequest):
        raise ApiError(NOT_AVAILABLE, status=501)


class MjpegView(_ViewingView):
    @extend_schema(
        operation_id="mjpeg",
        summary="Live MJPEG of a stream",
        parameters=[NODE, STREAM_ID, QUERY_FPS, HEIGHT, JPEG_QUALITY, TOKEN],
        responses=MJPEG,
        tags=["visualization"],
    )
    def get(self, request, node: str, stream_id: str):
        self.not_available(viewing_request_parse(request, node=node, stream_id=stream_id))


class MjpegAnalyticView(_ViewingView):
    @extend_schema(
        operation_id="mjpeg_analytic",
        summary="Live MJPEG of a stream with an analytic's overlay",
        parameters=[NODE, STREAM_ID, ANALYTIC_ID, QUERY_FPS, HEIGHT, JPEG_QUALITY, TOKEN],
        responses=MJPEG,
        tags=["visualization"],
    )
    def get(self, request, node: str, stream_id: str, analytic_id: str):
        self.not_available(
            viewing_request_parse(request, node=node, stream_id=stream_id, analytic_id=analytic_id)
        )


class MjpegFpsView(_ViewingView):
    @extend_schema(
        operation_id="mjpeg_fps",
        summary="Live MJPEG of a stream, frame-rate cap in the path",
        parameters=[PATH_FPS, NODE, STREAM_ID, HEIGHT, JPEG_QUALITY, TOKEN],
        responses=MJPEG,
        tags=["visualization"],
    )
    def get(self, request, fps: str, node: str, stream_id: str):
        self.not_available(viewing_request_parse(request, node=node, stream_id=stream_id, path_fps=fps))


class MjpegFpsAnalyticView(_ViewingView):
    @extend_schema(
        operation_id="mjpeg_fps_analytic",
        summary="Live MJPEG with an analytic's overlay, frame-rate cap in the path",
        parameters=[PATH_FPS, NODE, STREAM_ID, ANALYTIC_ID, HEIGHT, JPEG_QUALITY, TOKEN],
        responses=MJPEG,
        tags=["visualization"],
    )
    def get(self, request, fps: str, node: str, stream_id: str, analytic_id: str):
        self.not_available(
            viewing_request_parse(
                request, node=node, stream_id=stream_id, analytic_id=analytic_id, path_fps=fps
            )
        )


class StreamJpegView(_ViewingView):
    @extend_schema(
        operation_id="stream_jpeg",
        summary="The current frame of a stream",
        parameters=[NODE, STREAM_ID, HEIGHT, JPEG_QUALITY, TOKEN],
        responses=JPEG,
        tags=["visualization"],
    )
    def get(self, request, node: str, stream_id: str):
        # One frame has no rate: fps is not a parameter here.
        self.not_available(viewing_request_parse(request, node=node, stream_id=stream_id, fps_allowed=False))


class VisualView(_ViewingView):
    @extend_schema(
        operation_id="visual",
        summary="HTML page showing a stream live",
        parameters=[NODE, STREAM_ID, QUERY_FPS, HEIGHT, JPEG_QUALITY, TOKEN],
        responses=HTML,
        tags=["visualization"],
    )
    def get(self, request, node: str, stream_id: str):
        self.not_available(viewing_request_parse(request, node=node, stream_id=stream_id))


class VisualAnalyticView(_ViewingView):
    @extend_schema(
        operation_id="visual_analytic",
        summary="HTML page showing a stream live with an analytic's overlay",
        parameters=[NODE, STREAM_ID, ANALYTIC_ID, QUERY_FPS, HEIGHT, JPEG_QUALITY, TOKEN],
        responses=HTML,
        tags=["visualization"],
    )
    def get(self, request, node: str, stream_id: str, analytic_id: str):
        self.not_available(
            viewing_request_parse(request, node=node, stream_id=stream_id, analytic_id=analytic_id)
        )
