from __future__ import annotations

import pytest

from vehicles import services
from vehicles.models import Vehicle, VehicleList


@pytest.fixture
def gate(db) -> VehicleList:
    return services.list_create(name="gate")


def register(vehicle_list: VehicleList, plate_number: str, **details: str) -> Vehicle:
    return services.vehicle_create(vehicle_list=vehicle_list, plate_number=plate_number, **details)


def body(vehicle: Vehicle, **extra) -> dict:
    """A vehicle as the routes answer it."""
    vehicle.refresh_from_db()
    return {
        "vehicle_id": vehicle.pk,
        "list_name": vehicle.vehicle_list.name,
        "plate_number": vehicle.plate_number,
        "unique_id": vehicle.unique_id,
        "name": vehicle.name,
        "type": vehicle.type,
        "brand": vehicle.brand,
        "color": vehicle.color,
        "status": vehicle.status,
        **extra,
    }


def snapshot() -> tuple:
    """Everything a refused request must leave as it was."""
    return (
        list(VehicleList.objects.order_by("name").values_list("name", flat=True)),
        list(
            Vehicle.objects.order_by("pk").values_list(
                "vehicle_list__name", "plate_number", "plate", "search_key", "name", "status"
            )
        ),
    )
