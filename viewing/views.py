"""Visualization routes (spec/API.md, "Visualization"): live MJPEG with or
without an analytic's overlay, the current frame as JPEG, and an HTML page that
shows the stream.

The views are asynchronous (an MJPEG response lasts as long as its viewer
watches) and share the frames through the process's live hub (viewing/hub.py).
Their classes are DRF views only for the OpenAPI description: requests are
served by `_ViewingView.as_view`'s async view, with the contract's JSON errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection
from django.http import HttpResponse, StreamingHttpResponse
from django.template.loader import render_to_string
from django.utils.cache import patch_vary_headers
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema

from core.api import ApiView
from core.errors import ApiError, NotFound, error_response
from core.openapi import ErrorSerializer
from core.validation import query_validated
from platform_config.selectors import node_get
from streams.models import Pipeline, Stream
from streams.selectors import stream_get

from .hub import VariantKey, live_hub, reads_status_parts
from .render import BOUNDARY
from .serializers import FrameQuerySerializer, ViewingQuerySerializer

NO_CACHE = {"Cache-Control": "no-cache, no-store, must-revalidate", "Pragma": "no-cache", "Expires": "0"}


@dataclass(frozen=True)
class ViewingRequest:
    """A checked request to watch a stream, with the variant asked for."""

    stream: Stream
    analytic_id: str | None
    fps: int  # 0 = as fast as the stream delivers
    height: int
    jpeg_quality: int

    @property
    def variant(self) -> VariantKey:
        return VariantKey(
            stream_id=self.stream.stream_id,
            analytic_id=self.analytic_id,
            height=self.height,
            jpeg_quality=self.jpeg_quality,
            fps=self.fps,
        )


def analytic_id_plausible(value: str) -> bool:
    """Whether `value` could be an analytic id; others (NUL bytes above all, which
    PostgreSQL refuses) are answered 404 without a query."""
    return 0 < len(value) <= 40 and all(ord(char) >= 32 for char in value)


def viewing_request_parse(
    query,
    *,
    node: str,
    stream_id: str,
    analytic_id: str | None = None,
    path_fps: str | None = None,
    fps_allowed: bool = True,
) -> ViewingRequest:
    """Check path and query of a visualization route: 400 for malformed input
    (the message names it), 404 for an unknown node, stream or pipeline."""
    stream = stream_get(node=node_get(node), stream_id=stream_id)
    if analytic_id is not None:
        if not (
            analytic_id_plausible(analytic_id)
            and Pipeline.objects.filter(stream=stream, analytic_id=analytic_id).exists()
        ):
            raise NotFound("stream or analytic not found")

    serializer = ViewingQuerySerializer if fps_allowed else FrameQuerySerializer
    params = query_validated(serializer, query, path_fps=path_fps)
    return ViewingRequest(
        stream=stream,
        analytic_id=analytic_id,
        fps=params.get("fps", 0),
        height=params["height"],
        jpeg_quality=params["jpeg_quality"],
    )


# --- OpenAPI description -----------------------------------------------------

_PATH = OpenApiParameter.PATH
NODE = OpenApiParameter("node", OpenApiTypes.INT, _PATH, description="Node number, from 0.")
STREAM_ID = OpenApiParameter("stream_id", OpenApiTypes.STR, _PATH, description="16 lowercase hex characters.")
ANALYTIC_ID = OpenApiParameter(
    "analytic_id", OpenApiTypes.STR, _PATH, description="Analytic whose overlay to draw."
)
PATH_FPS = OpenApiParameter("fps", OpenApiTypes.INT, _PATH, description="Frame-rate cap; 0 = unlimited.")
ERRORS = {
    400: OpenApiResponse(ErrorSerializer, description="Malformed node, stream id or query parameter."),
    404: OpenApiResponse(ErrorSerializer, description="Unknown node, stream or pipeline."),
}
BUSY = {
    503: OpenApiResponse(
        ErrorSerializer,
        description="This server has as many viewers, or as many different views of the stream, "
        "as it is configured for (VISIONAIRE_VIEWING_MAX_CLIENTS, ..._MAX_VARIANTS_PER_STREAM).",
    )
}
MJPEG = {
    (200, "multipart/x-mixed-replace"): OpenApiResponse(
        OpenApiTypes.BINARY,
        description="MJPEG: one part per frame, each with Content-Type: image/jpeg, Content-Length, "
        "X-NF-Message-Data (status text), X-NF-Stream-State and, for live frames, X-NF-Frame-Ts "
        "(capture time, unix ms); overlay routes add X-NF-Visual-Data (base64 SVG of the overlay, "
        "the frame's size) and X-NF-Visual-Data-Ts (unix ms). While the stream delivers no frames, "
        "a placeholder part showing its state comes every second; a browser script's fetch "
        "(Sec-Fetch-Dest: empty, or an Origin header; Accept not naming image types) gets it followed "
        "in the same write by a header-only status part: Content-Length: 0, X-NF-Message-Data "
        "(containing 'Stream is stopped' for a stopped stream) and X-NF-Stream-State.",
    ),
    **ERRORS,
    **BUSY,
}
JPEG = {
    (200, "image/jpeg"): OpenApiResponse(
        OpenApiTypes.BINARY,
        description="The current frame; a placeholder showing the stream's state (X-NF-Stream-State "
        "not RUNNING, no X-NF-Frame-Ts) when the stream delivers no frames.",
    ),
    **ERRORS,
    **BUSY,
}
HTML = {(200, "text/html"): OpenApiResponse(OpenApiTypes.STR, description="Live viewing page."), **ERRORS}


class _ViewingView(ApiView):
    """A visualization route. The DRF class describes the route in the OpenAPI
    document; `as_view` serves it with an async view (DRF views are synchronous,
    and an MJPEG response must not hold a thread for as long as it is watched)."""

    http_method_names = ["get"]

    @classmethod
    def as_view(cls, **initkwargs):
        async def view(request, *args, **kwargs):
            if request.method != "GET":
                response = error_response(405, f"method {request.method} not allowed")
                response["Allow"] = "GET"
                return response
            try:
                return await cls(**initkwargs).get(request, **kwargs)
            except ApiError as exc:
                return error_response(exc.status, exc.message)

        # What DRF's as_view leaves for schema generators, and no CSRF check: no
        # route here changes anything.
        view.cls = cls
        view.initkwargs = initkwargs
        view.csrf_exempt = True
        return view


async def _viewing_request(query, **kwargs) -> ViewingRequest:
    """The checked request (database reads in a thread, a few at a time)."""
    hub = live_hub()
    async with hub.db_slots:
        return await sync_to_async(_viewing_request_sync)(query, **kwargs)


def _viewing_request_sync(query, **kwargs) -> ViewingRequest:
    try:
        return viewing_request_parse(query, **kwargs)
    finally:
        # A viewer may watch for hours: its request must not hold a PostgreSQL
        # connection that long (inside a test's transaction it is left alone).
        if not connection.in_atomic_block:
            connection.close()


async def mjpeg_response(request, **kwargs) -> StreamingHttpResponse:
    hub = live_hub()
    hub.admit_check()  # refuse early, before any database work, when full
    viewing = await _viewing_request(request.GET, **kwargs)
    viewer = hub.viewer(viewing.variant, viewing.stream, status_parts=reads_status_parts(request.headers))
    # The viewer takes its place when the response is sent, and gives it back when
    # its iterator ends (the client went away and the server cancelled it) or, at
    # the latest, when Django closes the response.
    response = StreamingHttpResponse(viewer, content_type=f"multipart/x-mixed-replace; boundary={BOUNDARY}")
    for name, value in NO_CACHE.items():
        response[name] = value
    response["X-Accel-Buffering"] = "no"  # a proxy must pass each part on at once
    patch_vary_headers(response, ("Accept", "Sec-Fetch-Dest", "Origin"))  # what reads_status_parts reads
    return response


class MjpegView(_ViewingView):
    @extend_schema(
        operation_id="mjpeg",
        summary="Live MJPEG of a stream",
        parameters=[NODE, STREAM_ID, ViewingQuerySerializer],
        responses=MJPEG,
        tags=["visualization"],
    )
    async def get(self, request, node: str, stream_id: str):
        """Live MJPEG of the stream (usable as an `<img>` source): frames `height` px tall
        at most `fps` a second, each encoded once per process for all who watch the same."""
        return await mjpeg_response(request, node=node, stream_id=stream_id)


class MjpegAnalyticView(_ViewingView):
    @extend_schema(
        operation_id="mjpeg_analytic",
        summary="Live MJPEG of a stream with an analytic's overlay",
        parameters=[NODE, STREAM_ID, ANALYTIC_ID, ViewingQuerySerializer],
        responses=MJPEG,
        tags=["visualization"],
    )
    async def get(self, request, node: str, stream_id: str, analytic_id: str):
        """Live MJPEG with the overlay of the stream's `analytic_id` pipeline drawn on the
        frames (boxes with labels, lines, areas) and sent as SVG in X-NF-Visual-Data."""
        return await mjpeg_response(request, node=node, stream_id=stream_id, analytic_id=analytic_id)


class MjpegFpsView(_ViewingView):
    @extend_schema(
        operation_id="mjpeg_fps",
        summary="Live MJPEG of a stream, frame-rate cap in the path",
        parameters=[PATH_FPS, NODE, STREAM_ID, FrameQuerySerializer],
        responses=MJPEG,
        tags=["visualization"],
    )
    async def get(self, request, fps: str, node: str, stream_id: str):
        """Live MJPEG, the frame-rate cap in the path (`fps` may not be given in the query too)."""
        return await mjpeg_response(request, node=node, stream_id=stream_id, path_fps=fps)


class MjpegFpsAnalyticView(_ViewingView):
    @extend_schema(
        operation_id="mjpeg_fps_analytic",
        summary="Live MJPEG with an analytic's overlay, frame-rate cap in the path",
        parameters=[PATH_FPS, NODE, STREAM_ID, ANALYTIC_ID, FrameQuerySerializer],
        responses=MJPEG,
        tags=["visualization"],
    )
    async def get(self, request, fps: str, node: str, stream_id: str, analytic_id: str):
        """Live MJPEG with an analytic's overlay, the frame-rate cap in the path."""
        return await mjpeg_response(
            request, node=node, stream_id=stream_id, analytic_id=analytic_id, path_fps=fps
        )


class StreamJpegView(_ViewingView):
    @extend_schema(
        operation_id="stream_jpeg",
        summary="The current frame of a stream",
        parameters=[NODE, STREAM_ID, FrameQuerySerializer],
        responses=JPEG,
        tags=["visualization"],
    )
    async def get(self, request, node: str, stream_id: str):
        """The current frame as one JPEG: the newest frame under a second old, or the next
        one (waited for up to a few seconds); a placeholder showing the stream's state when
        it delivers no frames."""
        hub = live_hub()
        hub.admit_check()
        # One frame has no rate: fps is not a parameter here.
        viewing = await _viewing_request(request.GET, node=node, stream_id=stream_id, fps_allowed=False)
        viewer = hub.viewer(viewing.variant, viewing.stream)
        try:
            wait = settings.VIEWING_SNAPSHOT_WAIT_SECONDS
            part = await viewer.snapshot(timeout=wait)
        finally:
            viewer.release()
        if part is None:
            raise ApiError(f"the stream delivered no frame within {wait:g}s", status=503)
        response = HttpResponse(part.jpeg, content_type="image/jpeg")
        for name, value in NO_CACHE.items():
            response[name] = value
        response["X-NF-Message-Data"] = part.message
        response["X-NF-Stream-State"] = part.state
        if part.frame_ts is not None:
            response["X-NF-Frame-Ts"] = str(round(part.frame_ts * 1000))
        return response


async def visual_response(request, **kwargs) -> HttpResponse:
    viewing = await _viewing_request(request.GET, **kwargs)
    stream = viewing.stream
    path = f"/mjpeg/{stream.node_id}/{stream.stream_id}"
    if viewing.analytic_id is not None:
        path += f"/{viewing.analytic_id}"
    # The page asks for what it was asked for (a token included: an <img> or a
    # fetch from an iframe cannot send an Authorization header).
    query = {
        name: request.GET[name] for name in ("fps", "height", "jpeg_quality", "token") if name in request.GET
    }
    config = {"mjpeg_url": f"{path}?{urlencode(query)}" if query else path}
    title = stream.name or stream.stream_id
    if viewing.analytic_id is not None:
        title = f"{title} - {viewing.analytic_id}"
    html = render_to_string("viewing/visual.html", {"title": title, "config": config})
    response = HttpResponse(html, content_type="text/html; charset=utf-8")
    response["Cache-Control"] = "no-store"
    response.xframe_options_exempt = True  # made to be embedded in other pages
    return response


class VisualView(_ViewingView):
    @extend_schema(
        operation_id="visual",
        summary="HTML page showing a stream live",
        parameters=[NODE, STREAM_ID, ViewingQuerySerializer],
        responses=HTML,
        tags=["visualization"],
    )
    async def get(self, request, node: str, stream_id: str):
        """A small HTML page showing the stream; it reconnects by itself when the connection
        drops, can be embedded in an iframe, and passes `token` on to the MJPEG it loads."""
        return await visual_response(request, node=node, stream_id=stream_id)


class VisualAnalyticView(_ViewingView):
    @extend_schema(
        operation_id="visual_analytic",
        summary="HTML page showing a stream live with an analytic's overlay",
        parameters=[NODE, STREAM_ID, ANALYTIC_ID, ViewingQuerySerializer],
        responses=HTML,
        tags=["visualization"],
    )
    async def get(self, request, node: str, stream_id: str, analytic_id: str):
        """The HTML page with the analytic's overlay."""
        return await visual_response(request, node=node, stream_id=stream_id, analytic_id=analytic_id)
