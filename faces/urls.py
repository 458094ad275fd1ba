from django.urls import path

from . import views

urlpatterns = [
    path("v1/face/keyspace", views.KeyspaceView.as_view(), name="face-keyspace"),
    path("v1/face/enrollment", views.EnrollmentView.as_view(), name="face-enrollment"),
    path("v1/face/recognition", views.RecognitionView.as_view(), name="face-recognition"),
    path("v1/face/delete-enrollment", views.DeleteEnrollmentView.as_view(), name="face-delete-enrollment"),
    path(
        "v1/face/delete-enrollment-variation",
        views.DeleteVariationView.as_view(),
        name="face-delete-enrollment-variation",
    ),
    path("v1/face/extract-embedding", views.ExtractEmbeddingView.as_view(), name="face-extract-embedding"),
    path("v1/face/match", views.MatchView.as_view(), name="face-match"),
    path("v1/healthcheck", views.HealthcheckView.as_view(), name="face-healthcheck"),
    path("v1/get-limit-usage", views.LimitUsageView.as_view(), name="face-limit-usage"),
]
