"""The platform configuration in the admin changes through the services behind
/config/platform and /config/database: the same limits, the same messages."""

from __future__ import annotations

import logging

import pytest

from platform_config.models import PlatformConfig
from platform_config.selectors import platform_config_get

from .conftest import field_errors


def _form(config: PlatformConfig, **fields) -> dict:
    form = {
        "max_streams_per_node": str(config.max_streams_per_node),
        "event_retention_days": str(config.event_retention_days),
        "max_events_per_stream": str(config.max_events_per_stream),
        "enable_cors": "on" if config.enable_cors else None,
        "log_level": config.log_level,
    }
    form.update(fields)
    return {name: value for name, value in form.items() if value is not None}


def test_the_admin_refuses_what_the_config_routes_refuse(admin_web, api):
    config = platform_config_get()
    url = f"/admin/platform_config/platformconfig/{config.pk}/change/"
    before = api.get("/config/platform").json()
    cases = [
        ("max_streams_per_node", "0", "/config/platform", "post", {"max_streams_per_node": 0}),
        ("max_streams_per_node", "5000", "/config/platform", "post", {"max_streams_per_node": 5000}),
        ("event_retention_days", "0", "/config/platform", "post", {"event_retention_days": 0}),
        ("max_events_per_stream", "0", "/config/database", "put", {"max_events_per_stream": 0}),
    ]
    for field, value, route, method, body in cases:
        by_api = getattr(api, method)(route, body)
        assert by_api.status_code == 400, body
        response = admin_web.post(url, _form(config, **{field: value}))
        assert response.status_code == 200, field
        assert field_errors(response, field) == [by_api.json()["message"]], field
    assert api.get("/config/platform").json() == before


@pytest.fixture
def root_log_level():
    """The log level a test changes through the configuration is put back after it."""
    level = logging.getLogger().level
    yield
    logging.getLogger().setLevel(level)


def test_a_change_in_the_admin_is_the_one_the_routes_serve(
    admin_web, api, django_capture_on_commit_callbacks, root_log_level
):
    config = platform_config_get()
    url = f"/admin/platform_config/platformconfig/{config.pk}/change/"
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_web.post(
            url, _form(config, max_streams_per_node="3", max_events_per_stream="777", log_level="error")
        )
    assert response.status_code == 302, response.content[:3000]
    platform = api.get("/config/platform").json()["config"]
    assert (platform["max_streams_per_node"], platform["log_level"]) == (3, "error")
    assert api.get("/config/database").json()["config"]["max_events_per_stream"] == 777
    # The change reached this process's copy (the services invalidate it on commit).
    assert platform_config_get().max_streams_per_node == 3
    assert logging.getLogger().level == logging.ERROR


def test_the_configuration_is_neither_added_nor_deleted(admin_web):
    config = platform_config_get()
    assert admin_web.get("/admin/platform_config/platformconfig/add/").status_code == 403
    assert admin_web.post(f"/admin/platform_config/platformconfig/{config.pk}/delete/").status_code == 403
    assert admin_web.get("/admin/platform_config/platformconfig/").status_code == 200
    assert PlatformConfig.objects.count() == 1
