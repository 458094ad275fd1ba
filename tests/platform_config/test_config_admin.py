"""Admin pages for the platform configuration, licence check-in and nodes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.contrib.admin.sites import site

from platform_config.models import LicenceCheckin, Node, PlatformConfig
from platform_config.selectors import platform_config_get

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "url",
    [
        "/admin/platform_config/platformconfig/",
        "/admin/platform_config/platformconfig/1/change/",
        "/admin/platform_config/licencecheckin/",
        "/admin/platform_config/node/",
        "/admin/platform_config/node/0/change/",
    ],
)
def test_admin_pages_render(admin_client, url):
    platform_config_get()
    assert admin_client.get(url).status_code == 200


def test_platform_config_is_a_singleton(rf, admin_user, admin_client):
    admin = site._registry[PlatformConfig]
    request = rf.get("/admin/")
    request.user = admin_user
    PlatformConfig.objects.all().delete()
    # Never added by hand: the list makes the row, as the API's first read does.
    assert admin.has_add_permission(request) is False
    assert admin_client.get("/admin/platform_config/platformconfig/").status_code == 200
    assert PlatformConfig.objects.count() == 1
    assert admin.has_add_permission(request) is False
    assert admin.has_delete_permission(request, PlatformConfig.objects.get()) is False


def test_admin_change_reaches_the_running_config(admin_client, django_capture_on_commit_callbacks):
    platform_config_get()
    form = {
        "max_streams_per_node": 5,
        "event_retention_days": 30,
        "max_events_per_stream": 100000,
        "enable_cors": "on",
        "log_level": "info",
    }
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post("/admin/platform_config/platformconfig/1/change/", form)
    assert response.status_code == 302
    assert platform_config_get().max_streams_per_node == 5


def test_licence_checkin_is_read_only(rf, admin_user):
    admin = site._registry[LicenceCheckin]
    request = rf.get("/admin/")
    request.user = admin_user
    assert admin.has_add_permission(request) is False
    checkin = LicenceCheckin.objects.create(
        access_key="AKID-1",
        secret_key="sk-x.y",
        deployment_key="d",
        issued_at=datetime(2025, 1, 1, tzinfo=UTC),
        expires_at=datetime(2026, 1, 1, tzinfo=UTC),
        last_checkin_at=datetime(2025, 1, 1, tzinfo=UTC),
    )
    editable = {f.name for f in LicenceCheckin._meta.fields} - set(
        admin.get_readonly_fields(request, checkin)
    )
    assert editable == {"id"}


def test_node_runtime_fields_are_read_only(rf, admin_user):
    admin = site._registry[Node]
    request = rf.get("/admin/")
    request.user = admin_user
    assert set(admin.get_readonly_fields(request, Node.objects.get(num=0))) == {
        "ip_address",
        "registered_at",
        "last_started_at",
    }
