from django.urls import path

from . import search_views as views

urlpatterns = [
    path("smart-search", views.SmartSearchView.as_view(), name="smart-search"),
    path(
        "extract/<node:node>/<seg:stream_id>/<seg:pipeline_id>", views.ExtractView.as_view(), name="extract"
    ),
]
