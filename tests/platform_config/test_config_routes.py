"""GET /, /config/platform and /config/database."""

from __future__ import annotations

import logging

import pytest

from platform_config import services
from platform_config.models import PlatformConfig
from platform_config.selectors import platform_config_get, platform_config_invalidate

pytestmark = pytest.mark.django_db

DEFAULT_PLATFORM = {
    "max_streams_per_node": 16,
    "event_retention_days": 30,
    "enable_cors": True,
    "log_level": "info",
}
DEFAULT_DATABASE = {"retention_days": 30, "max_events_per_stream": 100000}


@pytest.fixture
def deployment_key() -> str:
    platform_config_get()
    PlatformConfig.objects.filter(pk=1).update(deployment_key="my-deployment-abc123")
    platform_config_invalidate()
    return "my-deployment-abc123"


@pytest.fixture
def root_logger_level():
    level = logging.getLogger().level
    yield
    logging.getLogger().setLevel(level)


def error(message: str, code: int = 400) -> dict:
    return {"code": code, "message": message}


# --- GET / --------------------------------------------------------------------------


def test_root_names_the_platform(api, deployment_key):
    response = api.get("/")
    assert response.status_code == 200
    assert response.json() == {
        "name": "Visionaire4",
        "version": {"major": 4, "minor": 50, "patch": 0},
        "deployment_key": "my-deployment-abc123",
    }


def test_root_creates_the_configuration_on_a_fresh_install(api):
    PlatformConfig.objects.all().delete()
    body = api.get("/").json()
    assert body["deployment_key"] == PlatformConfig.objects.get(pk=1).deployment_key
    assert body["deployment_key"].startswith("visionaire-")


def test_root_refuses_other_methods(api):
    response = api.post("/", {})
    assert response.status_code == 405
    assert response.json() == error("method POST not allowed", 405)


# --- /config/platform ------------------------------------------------------------------


def test_platform_config_defaults(api):
    response = api.get("/config/platform")
    assert response.status_code == 200
    assert response.json() == {"code": 200, "message": "success", "config": DEFAULT_PLATFORM}


def test_platform_config_seed_example_round_trips(api):
    response = api.post("/config/platform", DEFAULT_PLATFORM)
    assert response.status_code == 200
    assert response.json() == {"code": 200, "message": "success", "config": DEFAULT_PLATFORM}


def test_platform_config_accepts_a_subset_and_keeps_the_rest(api, root_logger_level):
    response = api.post("/config/platform", {"max_streams_per_node": 4, "log_level": "warning"})
    assert response.status_code == 200
    expected = {**DEFAULT_PLATFORM, "max_streams_per_node": 4, "log_level": "warning"}
    assert response.json() == {"code": 200, "message": "success", "config": expected}
    assert api.get("/config/platform").json() == {"code": 200, "message": "success", "config": expected}
    row = PlatformConfig.objects.get(pk=1)
    assert (row.max_streams_per_node, row.log_level) == (4, "warning")


def test_platform_config_empty_body_changes_nothing(api):
    response = api.generic("POST", "/config/platform", b"", content_type="application/json")
    assert response.status_code == 200
    assert response.json() == {"code": 200, "message": "success", "config": DEFAULT_PLATFORM}


PLATFORM_KEYS = "enable_cors, event_retention_days, log_level, max_streams_per_node"
BAD_PLATFORM = [
    ({"max_streams_per_node": "16"}, "max_streams_per_node must be an integer between 1 and 1024"),
    ({"max_streams_per_node": True}, "max_streams_per_node must be an integer between 1 and 1024"),
    ({"max_streams_per_node": 16.0}, "max_streams_per_node must be an integer between 1 and 1024"),
    ({"max_streams_per_node": 0}, "max_streams_per_node must be an integer between 1 and 1024"),
    ({"max_streams_per_node": 1025}, "max_streams_per_node must be an integer between 1 and 1024"),
    ({"max_streams_per_node": None}, "max_streams_per_node must be an integer between 1 and 1024"),
    ({"event_retention_days": -1}, "event_retention_days must be an integer between 1 and 36500"),
    ({"event_retention_days": 36501}, "event_retention_days must be an integer between 1 and 36500"),
    ({"event_retention_days": False}, "event_retention_days must be an integer between 1 and 36500"),
    ({"enable_cors": 1}, "enable_cors must be a boolean (true or false)"),
    ({"enable_cors": "true"}, "enable_cors must be a boolean (true or false)"),
    ({"log_level": "verbose"}, "log_level must be one of debug, info, warning, error, critical"),
    ({"log_level": "INFO"}, "log_level must be one of debug, info, warning, error, critical"),
    ({"log_level": 20}, "log_level must be one of debug, info, warning, error, critical"),
    (
        {"max_streams": 4},
        f"unknown key 'max_streams' (allowed: {PLATFORM_KEYS})",
    ),
    (
        {"retention_days": 4},
        f"unknown key 'retention_days' (allowed: {PLATFORM_KEYS})",
    ),
]


@pytest.mark.parametrize(("body", "message"), BAD_PLATFORM, ids=[repr(b) for b, _ in BAD_PLATFORM])
def test_platform_config_refuses_bad_values(api, body, message):
    response = api.post("/config/platform", body)
    assert response.status_code == 400
    assert response.json() == error(f"invalid configuration value: {message}")
    assert api.get("/config/platform").json()["config"] == DEFAULT_PLATFORM


def test_platform_config_saves_nothing_when_one_key_is_bad(api):
    response = api.post("/config/platform", {"max_streams_per_node": 8, "log_level": "loud"})
    assert response.status_code == 400
    assert response.json() == error(
        "invalid configuration value: log_level must be one of debug, info, warning, error, critical"
    )
    assert services.platform_config_current().max_streams_per_node == 16


@pytest.mark.parametrize("body", ["[1, 2]", '"text"', "16"])
@pytest.mark.parametrize(("method", "path"), [("post", "/config/platform"), ("put", "/config/database")])
def test_config_body_must_be_an_object(api, method, path, body):
    response = getattr(api, method)(path, body)
    assert response.status_code == 400
    assert response.json() == error("request body must be a JSON object")


def test_platform_config_refuses_malformed_json(api):
    response = api.post("/config/platform", '{"max_streams_per_node": ')
    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"code", "message"} and body["code"] == 400
    assert body["message"].startswith("malformed JSON body")


def test_platform_config_refuses_other_methods(api):
    response = api.put("/config/platform", {})
    assert response.status_code == 405
    assert response.json() == error("method PUT not allowed", 405)


def test_change_reaches_every_process_after_commit(api, django_capture_on_commit_callbacks):
    assert platform_config_get().max_streams_per_node == 16  # this process caches the row
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert api.post("/config/platform", {"max_streams_per_node": 3}).status_code == 200
    assert len(callbacks) == 1
    assert platform_config_get().max_streams_per_node == 3


def test_version_bump_makes_a_process_reload(api, redis_client, django_capture_on_commit_callbacks):
    from platform_config import selectors

    platform_config_get()
    version_before = redis_client.get(selectors.CONFIG_VERSION_KEY)
    with django_capture_on_commit_callbacks(execute=True):
        api.post("/config/platform", {"event_retention_days": 9})
    assert redis_client.get(selectors.CONFIG_VERSION_KEY) != version_before


def test_log_level_applies_at_once(api, root_logger_level):
    assert api.post("/config/platform", {"log_level": "debug"}).status_code == 200
    assert logging.getLogger().level == logging.DEBUG
    assert api.post("/config/platform", {"log_level": "critical"}).status_code == 200
    assert logging.getLogger().level == logging.CRITICAL


def test_cors_follows_enable_cors_without_restart(api, django_capture_on_commit_callbacks):
    origin = {"HTTP_ORIGIN": "https://dashboard.example"}
    assert api.get("/config/platform", **origin)["Access-Control-Allow-Origin"] == "https://dashboard.example"
    with django_capture_on_commit_callbacks(execute=True):
        assert api.post("/config/platform", {"enable_cors": False}).status_code == 200
    assert "Access-Control-Allow-Origin" not in api.get("/config/platform", **origin)
    with django_capture_on_commit_callbacks(execute=True):
        assert api.post("/config/platform", {"enable_cors": True}).status_code == 200
    assert api.get("/", **origin)["Access-Control-Allow-Origin"] == "https://dashboard.example"


# --- /config/database ------------------------------------------------------------------


def test_database_config_defaults(api):
    response = api.get("/config/database")
    assert response.status_code == 200
    assert response.json() == {"code": 200, "message": "success", "config": DEFAULT_DATABASE}


def test_database_config_seed_example(api):
    response = api.put("/config/database", {"retention_days": 30})
    assert response.status_code == 200
    assert response.json() == {"code": 200, "message": "success", "config": DEFAULT_DATABASE}


def test_database_config_update(api):
    response = api.put("/config/database", {"retention_days": 7, "max_events_per_stream": 500})
    assert response.status_code == 200
    expected = {"retention_days": 7, "max_events_per_stream": 500}
    assert response.json() == {"code": 200, "message": "success", "config": expected}
    assert api.get("/config/database").json() == {"code": 200, "message": "success", "config": expected}


def test_retention_is_one_setting_seen_through_two_routes(api):
    assert api.put("/config/database", {"retention_days": 12}).status_code == 200
    assert api.get("/config/platform").json()["config"]["event_retention_days"] == 12
    assert api.post("/config/platform", {"event_retention_days": 45}).status_code == 200
    assert api.get("/config/database").json() == {
        "code": 200,
        "message": "success",
        "config": {"retention_days": 45, "max_events_per_stream": 100000},
    }


BAD_DATABASE = [
    ({"retention_days": "30"}, "retention_days must be an integer between 1 and 36500"),
    ({"retention_days": True}, "retention_days must be an integer between 1 and 36500"),
    ({"retention_days": 0}, "retention_days must be an integer between 1 and 36500"),
    ({"max_events_per_stream": 0}, "max_events_per_stream must be an integer between 1 and 100000000"),
    ({"max_events_per_stream": 10**9}, "max_events_per_stream must be an integer between 1 and 100000000"),
    ({"max_events_per_stream": 1.5}, "max_events_per_stream must be an integer between 1 and 100000000"),
    (
        {"event_retention_days": 3},
        "unknown key 'event_retention_days' (allowed: max_events_per_stream, retention_days)",
    ),
]


@pytest.mark.parametrize(("body", "message"), BAD_DATABASE, ids=[repr(b) for b, _ in BAD_DATABASE])
def test_database_config_refuses_bad_values(api, body, message):
    response = api.put("/config/database", body)
    assert response.status_code == 400
    assert response.json() == error(f"invalid configuration value: {message}")
    assert api.get("/config/database").json()["config"] == DEFAULT_DATABASE


def test_database_config_saves_nothing_when_one_key_is_bad(api):
    response = api.put("/config/database", {"retention_days": 3, "max_events_per_stream": -1})
    assert response.status_code == 400
    assert services.platform_config_current().event_retention_days == 30


def test_database_config_refuses_post(api):
    response = api.post("/config/database", {})
    assert response.status_code == 405
    assert response.json() == error("method POST not allowed", 405)
