"""/analytic_list and the per-analytic schema, rules and preset routes."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from analytics import registry
from analytics.models import Analytic, Seat, SeatSource
from analytics.plugins import AnalyticPlugin, NoRules, StrictConfig
from platform_config.models import PlatformConfig
from platform_config.selectors import platform_config_get, platform_config_invalidate

pytestmark = pytest.mark.django_db

ANALYTIC = "TEST-BRIGHT"
COMMUNITY = [f"COMMUNITY-{ANALYTIC}-{i:04d}" for i in range(1, 5)]
# The platform's own analytic (analytics/face/plugin.py), registered in code; listed first by id.
FACE_RECOGNITION = {
    "id": "NFV4-FR",
    "name": "Face Recognition",
    "major_version": 2,
    "minor_version": 0,
    "publisher": "Nodeflux",
    "description": "Realtime face detection and face recognition",
    "type": "recognition",
    "seats": [{"serial_number": f"COMMUNITY-NFV4-FR-{i:04d}", "active_status": True} for i in range(1, 5)],
}
# The platform's smart search indexer (analytics/face/smart_search.py).
SMART_SEARCH = {
    "id": "NFV4-SS",
    "name": "Smart Search",
    "major_version": 1,
    "minor_version": 0,
    "publisher": "Nodeflux",
    "description": "Indexes every face seen on a stream for search by photo and by text, without enrollment",
    "type": "search",
    "seats": [{"serial_number": f"COMMUNITY-NFV4-SS-{i:04d}", "active_status": True} for i in range(1, 5)],
}
# People and vehicle analytics (analytics/objects/people.py, vehicles.py).
PEOPLE = {
    "id": "NFV4-MPA",
    "name": "People Analytics",
    "major_version": 1,
    "minor_version": 0,
    "publisher": "Nodeflux",
    "description": "People counting across lines, area occupancy, dwell (loitering) and crowd estimation",
    "type": "counting",
    "seats": [{"serial_number": f"COMMUNITY-NFV4-MPA-{i:04d}", "active_status": True} for i in range(1, 5)],
}
VEHICLES = {
    "id": "NFV4-MVA",
    "name": "Vehicle Analytics",
    "major_version": 1,
    "minor_version": 0,
    "publisher": "Nodeflux",
    "description": "Vehicle counting by class across lines, area occupancy, stopped vehicles and wrong way",
    "type": "counting",
    "seats": [{"serial_number": f"COMMUNITY-NFV4-MVA-{i:04d}", "active_status": True} for i in range(1, 5)],
}
# Licence plates (analytics/plates/plugin.py).
PLATES = {
    "id": "NFV4-LPR3",
    "name": "License Plate Recognition",
    "major_version": 3,
    "minor_version": 0,
    "publisher": "Nodeflux",
    "description": "Reads the licence plates of passing vehicles, one event per vehicle, with watch lists",
    "type": "recognition",
    "seats": [{"serial_number": f"COMMUNITY-NFV4-LPR3-{i:04d}", "active_status": True} for i in range(1, 5)],
}
NOT_FOUND = {"code": 404, "message": "analytic not found"}

POINT = {
    "additionalProperties": False,
    "properties": {
        "x": {
            "description": "Fraction of the frame width.",
            "maximum": 1,
            "minimum": 0,
            "title": "X",
            "type": "number",
        },
        "y": {
            "description": "Fraction of the frame height.",
            "maximum": 1,
            "minimum": 0,
            "title": "Y",
            "type": "number",
        },
    },
    "required": ["x", "y"],
    "title": "Point",
    "type": "object",
}
AREA = {
    "additionalProperties": False,
    "properties": {
        "name": {
            "default": "Area",
            "description": "Label shown on the overlay.",
            "title": "Name",
            "type": "string",
        },
        "points": {
            "description": "Polygon (or line) points.",
            "items": {"$ref": "#/$defs/Point"},
            "minItems": 2,
            "title": "Points",
            "type": "array",
        },
    },
    "required": ["points"],
    "title": "Area",
    "type": "object",
}
CONFIG_SCHEMA = {
    "$defs": {"Area": AREA, "Point": POINT},
    "additionalProperties": False,
    "properties": {
        "threshold": {
            "default": 128.0,
            "description": "Mean brightness.",
            "maximum": 255,
            "minimum": 0,
            "title": "Threshold",
            "type": "number",
        },
        "sampling_time_ms": {
            "default": 100,
            "description": "Time between frames used.",
            "maximum": 60000,
            "minimum": 0,
            "title": "Sampling Time Ms",
            "type": "integer",
        },
        "areas": {
            "default": [],
            "description": "Areas drawn on the overlay.",
            "items": {"$ref": "#/$defs/Area"},
            "title": "Areas",
            "type": "array",
        },
    },
    "title": "BrightnessConfig",
    "type": "object",
}


@pytest.fixture
def deployment_key() -> str:
    platform_config_get()
    PlatformConfig.objects.filter(pk=1).update(deployment_key="my-deployment")
    platform_config_invalidate()
    return "my-deployment"


def test_analytic_list_on_a_fresh_install(api, deployment_key):
    response = api.get("/analytic_list")
    assert response.status_code == 200
    assert response.json() == {
        "code": 200,
        "message": "success",
        "analytic_num": 6,
        "deployment_key": "my-deployment",
        "version": {"major": 4, "minor": 50, "patch": 0},
        "analytics": [
            FACE_RECOGNITION,
            PLATES,
            PEOPLE,
            VEHICLES,
            SMART_SEARCH,
            {
                "id": ANALYTIC,
                "name": "Brightness",
                "major_version": 1,
                "minor_version": 0,
                "publisher": "Tests",
                "description": "Emits an event when the frame's mean brightness crosses a threshold",
                "type": "detection",
                "seats": [{"serial_number": serial, "active_status": True} for serial in COMMUNITY],
            },
        ],
    }


def test_analytic_list_leaves_out_analytics_that_do_not_run(api, deployment_key):
    Analytic.objects.create(
        id="OLD-ONE", name="Old", major_version=1, minor_version=0, publisher="x", type="y", installed=False
    )
    Analytic.objects.create(  # a row with no plugin behind it (e.g. before the registry sync)
        id="GHOST", name="Ghost", major_version=1, minor_version=0, publisher="x", type="y", installed=True
    )
    body = api.get("/analytic_list").json()
    assert (body["analytic_num"], [a["id"] for a in body["analytics"]]) == (
        6,
        ["NFV4-FR", "NFV4-LPR3", "NFV4-MPA", "NFV4-MVA", "NFV4-SS", ANALYTIC],
    )


def test_analytic_list_hides_community_seats_out_of_force(api, deployment_key):
    Seat.objects.filter(source=SeatSource.COMMUNITY).update(active=False)
    Seat.objects.create(
        analytic_id=ANALYTIC, serial_number="TEST-BRIGHT01-AAAA-0001", source=SeatSource.LICENCE
    )
    Seat.objects.create(
        analytic_id=ANALYTIC, serial_number="TEST-BRIGHT02-AAAA-0002", source=SeatSource.LICENCE, active=False
    )
    listed = {a["id"]: a for a in api.get("/analytic_list").json()["analytics"]}
    assert listed[ANALYTIC]["seats"] == [
        {"serial_number": "TEST-BRIGHT01-AAAA-0001", "active_status": True},
        {"serial_number": "TEST-BRIGHT02-AAAA-0002", "active_status": False},
    ]


class _Empty(StrictConfig):
    pass


def _plugin(plugin_id: str) -> type[AnalyticPlugin]:
    class Plugin(AnalyticPlugin):
        id = plugin_id
        name = plugin_id
        major_version = 1
        minor_version = 0
        publisher = "Tests"
        description = ""
        type = "detection"
        config_model = _Empty
        rules_model = NoRules

        def create_processor(self, config):
            raise NotImplementedError

    return Plugin


@pytest.fixture
def more_plugins(monkeypatch):
    """Extra registered analytics for the duration of a test."""
    added = {}
    monkeypatch.setattr(registry, "_REGISTRY", {**registry._REGISTRY})

    def add(plugin_id: str) -> None:
        registry.register(_plugin(plugin_id))
        Analytic.objects.create(
            id=plugin_id,
            name=plugin_id,
            major_version=1,
            minor_version=0,
            publisher="Tests",
            type="detection",
        )
        for index in range(3):
            Seat.objects.create(
                analytic_id=plugin_id, serial_number=f"{plugin_id}-{index}", source="community"
            )
        added[plugin_id] = True

    return add


def test_analytic_list_query_count_does_not_grow(api, deployment_key, more_plugins):
    api.get("/analytic_list")  # warm the configuration cache
    with CaptureQueriesContext(connection) as one:
        api.get("/analytic_list")
    for plugin_id in ("EXTRA-A", "EXTRA-B", "EXTRA-C"):
        more_plugins(plugin_id)
    with CaptureQueriesContext(connection) as four:
        body = api.get("/analytic_list").json()
    assert body["analytic_num"] == 9
    assert len(four) == len(one)


def test_analytic_without_rules_or_presets(api, more_plugins):
    more_plugins("EXTRA-A")
    assert api.get("/rules/pipeline/EXTRA-A").json() == {}
    assert api.get("/config/preset/EXTRA-A").json() == {}
    assert api.get("/v2/config/pipeline/EXTRA-A").json() == {
        "additionalProperties": False,
        "properties": {},
        "title": "_Empty",
        "type": "object",
        "sub_analytics": {},
    }


def test_config_schema(api):
    response = api.get(f"/config/pipeline/{ANALYTIC}")
    assert response.status_code == 200
    assert response.json() == CONFIG_SCHEMA


def test_config_schema_v2_describes_sub_analytics(api):
    response = api.get(f"/v2/config/pipeline/{ANALYTIC}")
    assert response.status_code == 200
    assert response.json() == {
        **CONFIG_SCHEMA,
        "sub_analytics": {
            "dwell": {
                "name": "Dwell",
                "description": "Time above.",
                "config": {
                    "additionalProperties": False,
                    "properties": {
                        "dwell_ms": {
                            "default": 1000,
                            "description": "Time above threshold before an event.",
                            "minimum": 0,
                            "title": "Dwell Ms",
                            "type": "integer",
                        }
                    },
                    "title": "DwellConfig",
                    "type": "object",
                },
            }
        },
    }


def test_rules_schema(api):
    response = api.get(f"/rules/pipeline/{ANALYTIC}")
    assert response.status_code == 200
    assert response.json() == {
        "additionalProperties": False,
        "properties": {
            "min_duration_ms": {
                "default": 0,
                "description": "How long the level must hold.",
                "minimum": 0,
                "title": "Min Duration Ms",
                "type": "integer",
            }
        },
        "title": "BrightnessRules",
        "type": "object",
    }


def test_presets_are_complete_configs(api):
    response = api.get(f"/config/preset/{ANALYTIC}")
    assert response.status_code == 200
    assert response.json() == {"dark-room": {"threshold": 40.0, "sampling_time_ms": 100, "areas": []}}


def test_every_registered_preset_is_valid():
    from analytics.selectors import plugin_presets

    for plugin in registry.all_plugins():
        assert set(plugin_presets(plugin)) == set(plugin.presets)


@pytest.mark.parametrize(
    "path",
    ["/config/pipeline/{}", "/v2/config/pipeline/{}", "/rules/pipeline/{}", "/config/preset/{}"],
)
@pytest.mark.parametrize("analytic_id", ["NFV4-CE", "nope", "%2e%2e", "x" * 300])
def test_unknown_analytic(api, path, analytic_id):
    response = api.get(path.format(analytic_id))
    assert response.status_code == 404
    assert response.json() == NOT_FOUND


@pytest.mark.parametrize(
    "path", ["/analytic_list", f"/config/pipeline/{ANALYTIC}", f"/config/preset/{ANALYTIC}"]
)
def test_registry_routes_are_read_only(api, path):
    response = api.post(path, {})
    assert response.status_code == 405
    assert response.json() == {"code": 405, "message": "method POST not allowed"}
