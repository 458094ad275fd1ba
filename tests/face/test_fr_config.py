"""NFV4-FR in the registry: listed, its config schema with the contract's keys
and defaults, its presets, and pipeline configs refused with the key named."""

from __future__ import annotations

import pytest

from analytics.face.plugin import FaceRecognitionConfig
from analytics.services import analytics_sync_registry
from platform_config.models import Node
from streams import services as stream_services
from streams.models import Pipeline

pytestmark = pytest.mark.django_db

DEFAULTS = {
    "similarity_threshold": None,
    "max_false_match_rate": 0.01,
    "fr_min_face_size": 48,
    "frontal_only": True,
    "sampling_time_ms": 50,
    "fr_timeout_dump": 1500,
    "fr_sampling_size": 8,
    "fr_blur_filter_threshold": 4.0,
    "areas": [],
    "dumping_interval": 3000,
    "dumping_confidence_threshold": 0.9,
    "matching_iou_threshold": 0.3,
    "fr_primary_threshold": 0.8,
    "fr_secondary_threshold": 0.4,
    "keyspace": "default",
}


@pytest.fixture
def stream(db):
    analytics_sync_registry()
    return stream_services.stream_create(node=Node.objects.get(num=0), address="rtsp://127.0.0.1:8554/lobby")


def url(stream) -> str:
    return f"/pipeline/0/{stream.stream_id}/NFV4-FR"


def test_listed_with_the_contract_metadata(api):
    listed = {a["id"]: a for a in api.get("/analytic_list").json()["analytics"]}
    entry = listed["NFV4-FR"]
    assert {k: v for k, v in entry.items() if k != "seats"} == {
        "id": "NFV4-FR",
        "name": "Face Recognition",
        "major_version": 2,
        "minor_version": 0,
        "publisher": "Nodeflux",
        "description": "Realtime face detection and face recognition",
        "type": "recognition",
    }
    assert entry["seats"] and all(seat["active_status"] for seat in entry["seats"])


def test_schema_has_every_key_with_its_default_title_description_and_bounds(api):
    schema = api.get("/config/pipeline/NFV4-FR").json()
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    properties = schema["properties"]
    assert {key: spec["default"] for key, spec in properties.items()} == DEFAULTS
    for key, spec in properties.items():
        assert spec["title"] and spec["description"], key
        for kind in spec.get("anyOf", [spec]):  # an optional number: anyOf number / null
            if kind.get("type") in ("integer", "number"):
                assert "minimum" in kind or "exclusiveMinimum" in kind, key
                assert "maximum" in kind or "exclusiveMaximum" in kind, key
    assert properties["similarity_threshold"]["anyOf"] == [
        {"maximum": 1, "minimum": 0, "type": "number"},
        {"type": "null"},
    ]
    area = schema["$defs"]["Area"]["properties"]
    assert area["points"]["minItems"] == 3
    assert schema["$defs"]["Point"]["properties"]["x"] == {
        "description": "Fraction of the frame width, from the left.",
        "maximum": 1,
        "minimum": 0,
        "title": "X",
        "type": "number",
    }
    assert api.get("/rules/pipeline/NFV4-FR").json() == {}


def test_presets_are_complete_valid_configs(api):
    presets = api.get("/config/preset/NFV4-FR").json()
    assert sorted(presets) == ["access-control", "crowd", "watchlist"]
    for name, config in presets.items():
        assert set(config) == set(DEFAULTS), name
        assert FaceRecognitionConfig.model_validate(config).model_dump(mode="json") == config
    assert presets["access-control"]["fr_min_face_size"] == 80
    assert presets["crowd"]["frontal_only"] is False
    # Presets choose a false-match rate, not a fixed similarity: the threshold follows the keyspace.
    assert {name: config["similarity_threshold"] for name, config in presets.items()} == dict.fromkeys(
        presets
    )
    assert presets["watchlist"]["max_false_match_rate"] == 0.001


def test_a_pipeline_with_defaults_and_a_keyspace(api, stream):
    response = api.post(url(stream), {"keyspace": "employees", "areas": [{"name": "Poster", "points": [
        {"x": 0.1, "y": 0.1}, {"x": 0.3, "y": 0.1}, {"x": 0.3, "y": 0.4}]}]})  # fmt: skip
    assert response.json() == {
        "code": 200,
        "message": "pipeline successfully created",
        "node_num": 0,
        "stream_id": stream.stream_id,
        "analytic_id": "NFV4-FR",
    }
    config = Pipeline.objects.get().config
    assert config == {
        **DEFAULTS,
        "keyspace": "employees",
        "areas": [
            {
                "name": "Poster",
                "points": [{"x": 0.1, "y": 0.1}, {"x": 0.3, "y": 0.1}, {"x": 0.3, "y": 0.4}],
            }
        ],
    }


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"similarity": 0.9}, "unknown config key 'similarity'"),
        (
            {"similarity_threshold": 1.5},
            "invalid config value for 'similarity_threshold': Input should be less than or equal to 1",
        ),
        (
            {"max_false_match_rate": 1},
            "invalid config value for 'max_false_match_rate': Input should be less than 1",
        ),
        (
            {"fr_min_face_size": 4},
            "invalid config value for 'fr_min_face_size': Input should be greater than or equal to 16",
        ),
        (
            {"fr_primary_threshold": 0.5, "fr_secondary_threshold": 0.6},
            "invalid config value for 'fr_secondary_threshold': Value error, "
            "must not exceed fr_primary_threshold (0.5)",
        ),
        (
            {"areas": [{"points": [{"x": 0, "y": 0}, {"x": 1, "y": 1}]}]},
            "invalid config value for 'areas.0.points': "
            "List should have at least 3 items after validation, not 2",
        ),
        (
            {"areas": [{"points": [{"x": 0, "y": 0}, {"x": 1, "y": 1}, {"x": 2, "y": 0}]}]},
            "invalid config value for 'areas.0.points.2.x': Input should be less than or equal to 1",
        ),
        (
            {"keyspace": "no spaces"},
            "invalid config value for 'keyspace': "
            "String should match pattern '^[A-Za-z0-9][A-Za-z0-9_.@:-]{0,63}$'",
        ),
        (
            {"frontal_only": "yes please"},
            "invalid config value for 'frontal_only': "
            "Input should be a valid boolean, unable to interpret input",
        ),
    ],
)
def test_invalid_configs_are_refused_naming_the_key(api, stream, payload, message):
    response = api.post(url(stream), payload)
    assert (response.status_code, response.json()) == (400, {"code": 400, "message": message})
    assert Pipeline.objects.count() == 0


def test_keyspace_names_follow_the_enrollment_api():
    from analytics.face.plugin import KEYSPACE_RE
    from faces.services import NAME_RE

    assert KEYSPACE_RE.pattern == NAME_RE.pattern
