from django.urls import path

from . import views

urlpatterns = [
    path("streams", views.StreamListView.as_view(), name="stream-list"),
    path("streams/<node:node>", views.NodeStreamsView.as_view(), name="node-streams"),
    path("streams/<node:node>/<seg:stream_id>", views.StreamDetailView.as_view(), name="stream-detail"),
    path(
        "pipeline/<node:node>/<seg:stream_id>/<seg:analytic_id>",
        views.PipelineView.as_view(),
        name="pipeline",
    ),
    path(
        "analytics/<node:node>/<seg:stream_id>/<seg:analytic_id>/counts",
        views.StreamCountsView.as_view(),
        name="analytic-counts",
    ),
]
