"""Visualization routes. The `fps` forms come first: `/mjpeg/fps/...` must not be
read as `/mjpeg/{node}/...` with node "fps"."""

from django.urls import path

from . import views

urlpatterns = [
    path(
        "mjpeg/fps/<seg:fps>/<node:node>/<seg:stream_id>/<seg:analytic_id>",
        views.MjpegFpsAnalyticView.as_view(),
        name="mjpeg-fps-analytic",
    ),
    path("mjpeg/fps/<seg:fps>/<node:node>/<seg:stream_id>", views.MjpegFpsView.as_view(), name="mjpeg-fps"),
    path(
        "mjpeg/<node:node>/<seg:stream_id>/<seg:analytic_id>",
        views.MjpegAnalyticView.as_view(),
        name="mjpeg-analytic",
    ),
    path("mjpeg/<node:node>/<seg:stream_id>", views.MjpegView.as_view(), name="mjpeg"),
    path("stream_jpeg/<node:node>/<seg:stream_id>", views.StreamJpegView.as_view(), name="stream-jpeg"),
    path(
        "visual/<node:node>/<seg:stream_id>/<seg:analytic_id>",
        views.VisualAnalyticView.as_view(),
        name="visual-analytic",
    ),
    path("visual/<node:node>/<seg:stream_id>", views.VisualView.as_view(), name="visual"),
]
