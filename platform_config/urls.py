from django.urls import include, path

from . import views

urlpatterns = [
    path("", views.RootView.as_view(), name="root"),
    path("config/platform", views.PlatformConfigView.as_view(), name="config-platform"),
    path("config/database", views.DatabaseConfigView.as_view(), name="config-database"),
    path("config/checkin", views.CheckinView.as_view(), name="config-checkin"),
    # Node and system routes (/node_status, /resource_stats, /system/restart, /metrics).
    path("", include("platform_config.system_urls")),
]
