from django.urls import path

from . import views

urlpatterns = [
    path("events", views.EventListView.as_view(), name="events-list"),
    path("events/<seg:event_id>", views.EventDetailView.as_view(), name="events-detail"),
    path("events/<seg:event_id>/image.jpg", views.EventImageView.as_view(), name="events-image"),
]
