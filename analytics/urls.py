from django.urls import path

from . import views

urlpatterns = [
    path("analytic_list", views.AnalyticListView.as_view(), name="analytic-list"),
    path(
        "config/pipeline/<seg:analytic_id>", views.ConfigSchemaView.as_view(), name="analytic-config-schema"
    ),
    path(
        "v2/config/pipeline/<seg:analytic_id>",
        views.ConfigSchemaV2View.as_view(),
        name="analytic-config-schema-v2",
    ),
    path("rules/pipeline/<seg:analytic_id>", views.RulesSchemaView.as_view(), name="analytic-rules-schema"),
    path("config/preset/<seg:analytic_id>", views.PresetsView.as_view(), name="analytic-presets"),
]
