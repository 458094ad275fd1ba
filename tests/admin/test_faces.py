"""Keyspaces added in the admin are created by the service behind
POST /v1/face/keyspace: its name rule, its limit, its messages."""

from __future__ import annotations

from faces.models import Keyspace

from .conftest import field_errors

ADD_URL = "/admin/faces/keyspace/add/"


def test_a_keyspace_is_added_and_refused_as_the_api_does(admin_web, api, settings):
    settings.FACE_MAX_KEYSPACE = 2
    response = admin_web.post(ADD_URL, {"name": "employees"})
    assert response.status_code == 302, response.content[:2000]
    assert list(Keyspace.objects.values_list("name", flat=True)) == ["employees"]

    for name in ("bad name!", "employees", "-lead"):
        by_api = api.post("/v1/face/keyspace", {"keyspace": name})
        assert by_api.status_code in (400, 409), name
        response = admin_web.post(ADD_URL, {"name": name})
        assert response.status_code == 200, name
        assert field_errors(response, "name") == [by_api.json()["message"]], name

    assert api.post("/v1/face/keyspace", {"keyspace": "visitors"}).status_code == 200
    full = api.post("/v1/face/keyspace", {"keyspace": "guests"}).json()["message"]
    assert full == "keyspace limit reached (2 keyspaces)"
    response = admin_web.post(ADD_URL, {"name": "guests"})
    assert field_errors(response, "name") == [full]
    assert Keyspace.objects.count() == 2


def test_a_keyspace_is_not_renamed(admin_web, api):
    assert api.post("/v1/face/keyspace", {"keyspace": "employees"}).status_code == 200
    keyspace = Keyspace.objects.get()
    response = admin_web.post(f"/admin/faces/keyspace/{keyspace.pk}/change/", {"name": "renamed"})
    assert response.status_code == 302
    keyspace.refresh_from_db()
    assert keyspace.name == "employees"
