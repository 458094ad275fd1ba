"""Registered vehicles in the admin: added, changed and deleted through the
services behind the API, refused with the API's messages; the search box finds
plates as the API does."""

from __future__ import annotations

import pytest

from vehicles import services
from vehicles.models import Vehicle, VehicleList

from .conftest import field_errors

ADD_URL = "/admin/vehicles/vehicle/add/"
LIST_URL = "/admin/vehicles/vehicle/"


@pytest.fixture
def gate(db) -> VehicleList:
    return services.list_create(name="gate")


def form(vehicle_list: VehicleList, **fields) -> dict:
    return {
        "vehicle_list": vehicle_list.pk,
        "plate_number": "",
        **{name: "" for name in ("unique_id", "name", "type", "brand", "color", "status")},
        **fields,
    }


def test_a_list_is_added_and_refused_as_the_api_does(admin_web, api):
    response = admin_web.post("/admin/vehicles/vehiclelist/add/", {"name": "gate"})
    assert response.status_code == 302, response.content[:2000]
    for name in ("bad name", "gate", "-lead"):
        by_api = api.post("/vehicle-lists", {"list_name": name}).json()["message"]
        response = admin_web.post("/admin/vehicles/vehiclelist/add/", {"name": name})
        assert response.status_code == 200
        assert field_errors(response, "name") == [by_api], name
    assert list(VehicleList.objects.values_list("name", flat=True)) == ["gate"]


def test_a_vehicle_is_added_changed_and_refused_as_the_api_does(admin_web, api, gate):
    response = admin_web.post(
        ADD_URL, form(gate, plate_number=" LS15  EBC ", name="Alice Walker", status="blacklist")
    )
    assert response.status_code == 302, response.content[:3000]
    vehicle = Vehicle.objects.get()
    assert (vehicle.plate_number, vehicle.plate, vehicle.search_key, vehicle.name, vehicle.status) == (
        "LS15 EBC",
        "LS15EBC",
        "L515E8C",
        "Alice Walker",
        "blacklist",
    )
    for plate_number in ("ls15-ebc", "X"):
        by_api = api.post("/vehicle-lists/gate/vehicles", {"plate_number": plate_number}).json()["message"]
        response = admin_web.post(ADD_URL, form(gate, plate_number=plate_number))
        assert response.status_code == 200
        assert field_errors(response, "plate_number") == [by_api]
    assert Vehicle.objects.count() == 1

    response = admin_web.post(
        f"/admin/vehicles/vehicle/{vehicle.pk}/change/",
        form(gate, plate_number="LS15 EBD", name="Alice Walker", status="whitelist"),
    )
    assert response.status_code == 302, response.content[:3000]
    vehicle.refresh_from_db()
    assert (vehicle.plate, vehicle.search_key, vehicle.status) == ("LS15EBD", "L515E8D", "whitelist")


@pytest.fixture
def fleet(gate):
    visitors = services.list_create(name="visitors")
    return {
        "ls15": services.vehicle_create(
            vehicle_list=gate, plate_number="LS15 EBC", name="Alice", status="blacklist"
        ),
        "b1234": services.vehicle_create(
            vehicle_list=gate, plate_number="B 1234 XYZ", name="Budi", status="whitelist"
        ),
        "other": services.vehicle_create(vehicle_list=visitors, plate_number="LS15 EBC", name="Carol"),
    }


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("?q=LSI5EBC", {"ls15", "other"}),
        ("?q=ls15%20eb", {"ls15", "other"}),
        ("?q=budi", {"b1234"}),
        ("?q=B1234XYZ&status=whitelist", {"b1234"}),
        ("?status=blacklist", {"ls15"}),
        ("?q=nothing", set()),
        ("?q=a%01b", set()),
    ],
)
def test_search_and_filters(admin_web, fleet, query, expected):
    response = admin_web.get(LIST_URL + query)
    assert response.status_code == 200
    shown = {vehicle.pk for vehicle in response.context["cl"].result_list}
    assert shown == {fleet[key].pk for key in expected}


def test_deleting_goes_through_the_service(admin_web, fleet):
    response = admin_web.post(
        LIST_URL,
        {
            "action": "delete_selected",
            "_selected_action": [fleet["ls15"].pk, fleet["b1234"].pk],
            "post": "yes",
        },
    )
    assert response.status_code == 302
    assert list(Vehicle.objects.values_list("plate", flat=True)) == ["LS15EBC"]
    response = admin_web.post(
        "/admin/vehicles/vehiclelist/",
        {
            "action": "delete_selected",
            "_selected_action": [VehicleList.objects.get(name="visitors").pk],
            "post": "yes",
        },
    )
    assert response.status_code == 302
    assert Vehicle.objects.count() == 0
