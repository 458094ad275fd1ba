"""The registered-vehicle routes: every route's success and errors with whole
bodies, and no change left behind by a refused request."""

from __future__ import annotations

import pytest

from vehicles.models import Vehicle, VehicleList

from .conftest import body, register, snapshot

pytestmark = pytest.mark.django_db

PLATE_RULE = (
    "plate_number: it must hold 2 to 15 letters (A-Z) or digits once spaces and punctuation are left out"
)
NAME_RULE = "1 to 64 letters, digits or _ . @ : - (starting with a letter or digit)"


# --- lists -------------------------------------------------------------------------


def test_list_create_list_and_delete(api):
    response = api.post("/vehicle-lists", {"list_name": "gate"})
    assert response.status_code == 200
    assert response.json() == {
        "code": 200,
        "message": "vehicle list successfully created",
        "list_name": "gate",
    }
    assert api.post("/vehicle-lists", {"list_name": "visitors"}).status_code == 200
    register(VehicleList.objects.get(name="gate"), "B 1234 XYZ")
    register(VehicleList.objects.get(name="gate"), "B 99 AB")

    response = api.get("/vehicle-lists")
    assert response.status_code == 200
    assert response.json() == {
        "code": 200,
        "message": "success",
        "lists": [{"list_name": "gate", "vehicle_count": 2}, {"list_name": "visitors", "vehicle_count": 0}],
    }

    response = api.delete("/vehicle-lists/gate")
    assert response.status_code == 200
    assert response.json() == {
        "code": 200,
        "message": "vehicle list successfully deleted",
        "list_name": "gate",
        "deleted_vehicles": 2,
    }
    assert snapshot() == (["visitors"], [])


@pytest.mark.parametrize(
    ("payload", "status", "message"),
    [
        ({"list_name": "gate"}, 409, "vehicle list already exists"),
        ({}, 400, "list_name: This field is required."),
        ({"list_name": 5}, 400, "list_name: it must be a string"),
        ({"list_name": "no spaces"}, 400, f"list_name: it must be {NAME_RULE}"),
        ({"list_name": ""}, 400, "list_name: This field may not be blank."),
        ({"list_name": "x" * 65}, 400, f"list_name: it must be {NAME_RULE}"),
        ({"list_name": "x", "extra": 1}, 400, "unknown field 'extra'"),
        ([1, 2], 400, "request body must be a JSON object"),
        ({"list_name": "a\u0000b"}, 400, "list_name: must not contain NUL characters"),
    ],
)
def test_list_create_errors(api, gate, payload, status, message):
    before = snapshot()
    response = api.post("/vehicle-lists", payload)
    assert (response.status_code, response.json()) == (status, {"code": status, "message": message})
    assert snapshot() == before


def test_list_limit(api, gate, settings):
    settings.VEHICLE_MAX_LISTS = 1
    response = api.post("/vehicle-lists", {"list_name": "other"})
    assert response.json() == {"code": 409, "message": "vehicle list limit reached (1 lists)"}


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/vehicle-lists/nothere", 404, "vehicle list not found"),
        ("/vehicle-lists/-bad", 400, f"invalid list_name '-bad': it must be {NAME_RULE}"),
    ],
)
def test_list_delete_errors(api, gate, path, status, message):
    response = api.delete(path)
    assert (response.status_code, response.json()) == (status, {"code": status, "message": message})
    assert snapshot() == (["gate"], [])


# --- vehicles ----------------------------------------------------------------------


def test_vehicle_create_get_update_delete(api, gate):
    response = api.post(
        "/vehicle-lists/gate/vehicles",
        {
            "plate_number": "  B  1234   XYZ ",
            "unique_id": "V-001",
            "name": " Budi Santoso ",
            "type": "car",
            "brand": "Toyota",
            "color": "black",
            "status": "whitelist",
        },
    )
    assert response.status_code == 200, response.content
    vehicle = Vehicle.objects.get()
    expected = {
        "vehicle_id": vehicle.pk,
        "list_name": "gate",
        "plate_number": "B 1234 XYZ",
        "unique_id": "V-001",
        "name": "Budi Santoso",
        "type": "car",
        "brand": "Toyota",
        "color": "black",
        "status": "whitelist",
    }
    assert response.json() == {"code": 200, "message": "vehicle successfully created", "vehicle": expected}
    assert (vehicle.plate, vehicle.search_key) == ("B1234XYZ", "81234XY2")
    assert sorted(vehicle.deletion_keys) == sorted(
        {"1234XY2", "8234XY2", "8134XY2", "8124XY2", "8123XY2", "81234Y2", "81234X2", "81234XY"}
    )

    response = api.get(f"/vehicle-lists/gate/vehicles/{vehicle.pk}")
    assert response.json() == {"code": 200, "message": "success", "vehicle": expected}

    response = api.put(
        f"/vehicle-lists/gate/vehicles/{vehicle.pk}", {"status": "blacklist", "plate_number": "B 1234 XZ"}
    )
    assert response.status_code == 200, response.content
    updated = {**expected, "status": "blacklist", "plate_number": "B 1234 XZ"}
    assert response.json() == {"code": 200, "message": "vehicle successfully updated", "vehicle": updated}
    vehicle.refresh_from_db()
    assert (vehicle.plate, vehicle.search_key) == ("B1234XZ", "81234X2")

    response = api.put(f"/vehicle-lists/gate/vehicles/{vehicle.pk}", {})
    assert response.json() == {"code": 200, "message": "vehicle successfully updated", "vehicle": updated}

    response = api.delete(f"/vehicle-lists/gate/vehicles/{vehicle.pk}")
    assert response.json() == {
        "code": 200,
        "message": "vehicle successfully deleted",
        "vehicle_id": vehicle.pk,
    }
    assert snapshot() == (["gate"], [])
    response = api.get(f"/vehicle-lists/gate/vehicles/{vehicle.pk}")
    assert (response.status_code, response.json()) == (404, {"code": 404, "message": "vehicle not found"})


@pytest.mark.parametrize(
    ("payload", "status", "message"),
    [
        ({"plate_number": "b-1234-xyz"}, 409, "plate B1234XYZ is already registered in list 'gate'"),
        ({}, 400, "plate_number: This field is required."),
        ({"plate_number": 1234}, 400, "plate_number: it must be a string"),
        (
            {"plate_number": "B"},
            400,
            PLATE_RULE,
        ),
        (
            {"plate_number": "- . -"},
            400,
            PLATE_RULE,
        ),
        ({"plate_number": "B" * 33}, 400, "plate_number: Ensure this field has no more than 32 characters."),
        ({"plate_number": "B 12\t34"}, 400, "plate_number: it must not contain control characters"),
        (
            {"plate_number": "B 1", "name": "x" * 201},
            400,
            "name: Ensure this field has no more than 200 characters.",
        ),
        ({"plate_number": "B 1", "status": "a\nb"}, 400, "status: it must not contain control characters"),
        ({"plate_number": "B 1", "color": None}, 400, "color: This field may not be null."),
        ({"plate_number": "B 1", "owner": "x"}, 400, "unknown field 'owner'"),
        ("[]", 400, "request body must be a JSON object"),
        ("null", 400, "request body must be a JSON object, not null"),
        (
            "{",
            400,
            "malformed JSON body: JSON parse error - "
            "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
        ),
    ],
)
def test_vehicle_create_errors(api, gate, payload, status, message):
    register(gate, "B 1234 XYZ")
    before = snapshot()
    response = api.post("/vehicle-lists/gate/vehicles", payload)
    assert (response.status_code, response.json()) == (status, {"code": status, "message": message})
    assert snapshot() == before


def test_vehicle_limit(api, gate, settings):
    settings.VEHICLE_MAX_VEHICLES = 1
    register(gate, "B 1")
    response = api.post("/vehicle-lists/gate/vehicles", {"plate_number": "B 2"})
    assert response.json() == {"code": 409, "message": "registered vehicle limit reached (1 vehicles)"}


def test_vehicle_update_conflict_and_errors(api, gate):
    first = register(gate, "B 1234 XYZ")
    second = register(gate, "D 1 A")
    before = snapshot()
    path = f"/vehicle-lists/gate/vehicles/{second.pk}"
    for payload, status, message in [
        ({"plate_number": "B1234XYZ"}, 409, "plate B1234XYZ is already registered in list 'gate'"),
        ({"plate_number": ""}, 400, "plate_number: This field may not be blank."),
        ({"vehicle_id": 3}, 400, "unknown field 'vehicle_id'"),
        ({"name": 3}, 400, "name: it must be a string"),
    ]:
        response = api.put(path, payload)
        assert (response.status_code, response.json()) == (status, {"code": status, "message": message})
    assert snapshot() == before
    # Its own plate, written another way, is not a conflict.
    response = api.put(f"/vehicle-lists/gate/vehicles/{first.pk}", {"plate_number": "b1234 xyz"})
    assert response.json()["vehicle"]["plate_number"] == "b1234 xyz"


@pytest.mark.parametrize("method", ["get", "put", "delete"])
@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/vehicle-lists/other/vehicles/{id}", 404, "vehicle list not found"),
        ("/vehicle-lists/gate/vehicles/999999", 404, "vehicle not found"),
        ("/vehicle-lists/visitors/vehicles/{id}", 404, "vehicle not found"),
        ("/vehicle-lists/gate/vehicles/0", 400, "invalid vehicle_id '0': it must be a positive integer"),
        ("/vehicle-lists/gate/vehicles/x1", 400, "invalid vehicle_id 'x1': it must be a positive integer"),
        (
            "/vehicle-lists/gate/vehicles/9223372036854775808",
            400,
            "invalid vehicle_id '9223372036854775808': it must be a positive integer",
        ),
        ("/vehicle-lists/a%20b/vehicles/1", 400, f"invalid list_name 'a b': it must be {NAME_RULE}"),
    ],
)
def test_vehicle_path_errors(api, gate, method, path, status, message):
    from vehicles import services

    services.list_create(name="visitors")
    vehicle = register(gate, "B 1234 XYZ")
    before = snapshot()
    response = getattr(api, method)(path.format(id=vehicle.pk), **({"data": {}} if method == "put" else {}))
    assert (response.status_code, response.json()) == (status, {"code": status, "message": message})
    assert snapshot() == before


# --- listing and search --------------------------------------------------------------


@pytest.fixture
def fleet(gate):
    from vehicles import services

    other = services.list_create(name="visitors")
    return {
        "ls15": register(gate, "LS15 EBC", name="Alice Walker", status="whitelist"),
        "b1234": register(gate, "B 1234 XYZ", name="Budi Santoso", status="Blacklist"),
        "b123": register(gate, "B 123 XY", name="Budi Hartono", status="whitelist"),
        "d1": register(gate, "D 1 A", name="", status=""),
        "other": register(other, "LS15 EBC", name="Someone Else", status="blacklist"),
    }


def page(api, query: str = "", list_name: str = "gate") -> dict:
    response = api.get(f"/vehicle-lists/{list_name}/vehicles{query}")
    assert response.status_code == 200, response.content
    return response.json()


def test_list_pages_by_plate(api, fleet):
    first = page(api, "?limit=2")
    assert first == {
        "code": 200,
        "message": "success",
        "vehicles": [body(fleet["b1234"], match=None), body(fleet["b123"], match=None)],
        "next_cursor": "B123XY",
    }
    second = page(api, "?limit=1&cursor=B123XY")
    assert second == {
        "code": 200,
        "message": "success",
        "vehicles": [body(fleet["d1"], match=None)],
        "next_cursor": "D1A",
    }
    last = page(api, "?limit=2&cursor=D1A")
    assert last == {
        "code": 200,
        "message": "success",
        "vehicles": [body(fleet["ls15"], match=None)],
        "next_cursor": None,
    }
    whole = page(api)
    assert [v["plate_number"] for v in whole["vehicles"]] == ["B 1234 XYZ", "B 123 XY", "D 1 A", "LS15 EBC"]
    assert whole["next_cursor"] is None


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # Spacing, case and OCR confusions aside; exact first.
        ("?plate=LS15EBC", [("ls15", "exact")]),
        ("?plate=ls15%20ebc", [("ls15", "exact")]),
        ("?plate=LSI5EBC", [("ls15", "confusable")]),
        ("?plate=L515E8C", [("ls15", "confusable")]),
        # One character missing (and confusions besides).
        ("?plate=LS15EB", [("ls15", "missing")]),
        ("?plate=LSI5E8", [("ls15", "missing")]),
        ("?plate=B%201234%20XY", [("b1234", "missing")]),
        # A reading with a character too many is no match.
        ("?plate=B1234XYZA", []),
        ("?plate=B123XY", [("b123", "exact")]),
        ("?plate=8123XY", [("b123", "confusable")]),
        ("?plate=B1234XYZ", [("b1234", "exact")]),
        ("?plate=ZZ99", []),
        ("?plate=-", []),
        # Owner (contains, case aside) and status (case aside).
        ("?name=budi", [("b1234", None), ("b123", None)]),
        ("?name=SANTOSO", [("b1234", None)]),
        ("?status=blacklist", [("b1234", None)]),
        ("?status=WHITELIST", [("b123", None), ("ls15", None)]),
        ("?status=whitelist&name=alice", [("ls15", None)]),
        ("?plate=B123XY&status=whitelist", [("b123", "exact")]),
        ("?plate=B123XY&status=blacklist", []),
        ("?name=.*", []),
        ("?plate=B123X&limit=1", [("b123", "missing")]),
        ("?plate=8123XY&limit=1", [("b123", "confusable")]),
    ],
)
def test_search(api, fleet, query, expected):
    found = page(api, query)
    assert found == {
        "code": 200,
        "message": "success",
        "vehicles": [body(fleet[key], match=match) for key, match in expected],
        "next_cursor": None,
    }


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("?limit=0", "limit: Ensure this value is greater than or equal to 1."),
        ("?limit=1001", "limit: Ensure this value is less than or equal to 1000."),
        ("?limit=x", "limit: A valid integer is required."),
        ("?cursor=b12", "invalid cursor: pass the next_cursor of a previous page unchanged"),
        ("?plate=B1&cursor=B12", "cursor: a plate search answers in one page"),
        ("?name=a%00b", "name: must not contain NUL characters"),
        ("?status=a%01b", "status: it must not contain control characters"),
        ("?plate=" + "B" * 33, "plate: Ensure this field has no more than 32 characters."),
        ("?owner=x", "unknown query parameter(s): owner"),
        ("?limit=1&limit=2", "query parameter(s) given more than once: limit"),
    ],
)
def test_search_errors(api, fleet, query, message):
    response = api.get(f"/vehicle-lists/gate/vehicles{query}")
    assert (response.status_code, response.json()) == (400, {"code": 400, "message": message})


def test_search_unknown_list(api, fleet):
    response = api.get("/vehicle-lists/nothere/vehicles?plate=B1")
    assert (response.status_code, response.json()) == (
        404,
        {"code": 404, "message": "vehicle list not found"},
    )


def test_deep_huge_and_nul_bodies(api, gate):
    before = snapshot()
    deep: object = "x"
    for _ in range(100):
        deep = {"a": deep}
    for payload, status, message in [
        (
            {"plate_number": "B 1", "name": deep},
            400,
            "the JSON body is nested too deeply (more than 64 levels of arrays and objects)",
        ),
        (
            {"plate_number": "B 1", "name": "x" * 100_000},
            400,
            "name: Ensure this field has no more than 200 characters.",
        ),
        ({"plate_number": "B\u00001"}, 400, "plate_number: must not contain NUL characters"),
        (
            {"plate_number": "B 1", "brand": "\ud800"},
            400,
            "brand: must not contain unpaired surrogates (it is not valid Unicode)",
        ),
        ({"plate_number": ["B 1"]}, 400, "plate_number: it must be a string"),
        ({"plate_number": {"a": 1}}, 400, "plate_number: it must be a string"),
        ({"plate_number": True}, 400, "plate_number: it must be a string"),
    ]:
        response = api.post("/vehicle-lists/gate/vehicles", payload)
        assert (response.status_code, response.json()) == (status, {"code": status, "message": message})
    response = api.post("/vehicle-lists/gate/vehicles", "[" * 5000 + "]" * 5000)
    assert response.status_code == 400
    assert snapshot() == before


def test_wrong_methods(api, gate):
    for method, path in [
        ("put", "/vehicle-lists"),
        ("post", "/vehicle-lists/gate"),
        ("delete", "/vehicle-lists/gate/vehicles"),
    ]:
        response = getattr(api, method)(path)
        assert (response.status_code, response.json()) == (
            405,
            {"code": 405, "message": f"method {method.upper()} not allowed"},
        )
