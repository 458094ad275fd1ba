"""Node and system routes (included at the root by platform_config.urls)."""

from django.urls import path

from . import system_views

urlpatterns = [
    path("node_status", system_views.NodeStatusView.as_view(), name="node-status"),
    path("resource_stats", system_views.ResourceStatsView.as_view(), name="resource-stats"),
    path("v2/resource_stats", system_views.ResourceStatsV2View.as_view(), name="resource-stats-v2"),
    path("system/restart", system_views.SystemRestartView.as_view(), name="system-restart"),
    # No trailing slash: Prometheus scrape configs name /metrics.
    path("metrics", system_views.MetricsView.as_view(), name="metrics"),
]
