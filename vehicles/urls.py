from django.urls import path

from . import views

urlpatterns = [
    path("vehicle-lists", views.VehicleListsView.as_view(), name="vehicle-lists"),
    path("vehicle-lists/<seg:list_name>", views.VehicleListDetailView.as_view(), name="vehicle-list"),
    path("vehicle-lists/<seg:list_name>/vehicles", views.VehiclesView.as_view(), name="vehicles"),
    path(
        "vehicle-lists/<seg:list_name>/vehicles/<seg:vehicle_id>",
        views.VehicleDetailView.as_view(),
        name="vehicle",
    ),
]
