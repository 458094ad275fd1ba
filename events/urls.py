from django.urls import path

from . import search_views, views

urlpatterns = [
    path("events", views.EventListView.as_view(), name="events-list"),
    path("events/<seg:event_id>", views.EventDetailView.as_view(), name="events-detail"),
    path("events/<seg:event_id>/image.jpg", views.EventImageView.as_view(), name="events-image"),
    path("database/stats", views.DatabaseStatsView.as_view(), name="database-stats"),
    path("smart-search", search_views.SmartSearchView.as_view(), name="smart-search"),
    path(
        "extract/<node:node>/<seg:stream_id>/<seg:pipeline_id>",
        search_views.ExtractView.as_view(),
        name="extract",
    ),
]
