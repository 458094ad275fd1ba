"""URL map. Paths follow the contract (no trailing slashes); each app owns its routes."""

from django.contrib import admin
from django.urls import include, path, register_converter
from drf_spectacular.views import SpectacularJSONAPIView, SpectacularSwaggerView

from core import errors

from . import converters

register_converter(converters.NodeConverter, "node")
register_converter(converters.SegmentConverter, "seg")

urlpatterns = [
    path("admin/", admin.site.urls),
    path("openapi.json", SpectacularJSONAPIView.as_view(), name="openapi"),
    path("docs", SpectacularSwaggerView.as_view(url_name="openapi"), name="docs"),
    path("", include("platform_config.urls")),
    path("", include("analytics.urls")),
    path("", include("streams.urls")),
    path("", include("events.urls")),
    path("", include("viewing.urls")),
    path("", include("faces.urls")),
    path("", include("vehicles.urls")),
]

handler400 = errors.handler400
handler403 = errors.handler403
handler404 = errors.handler404
handler500 = errors.handler500
