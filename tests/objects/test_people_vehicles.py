"""NFV4-MPA and NFV4-MVA processors on real decoded composite video (exact ground
truth, tests/support/composite.py), with the real detector behind the batching
runtime; and their config, rules and preset routes.

The stream runner end to end (events in the database and on /event_channel, the
counts route, the heatmap header) is tests/objects/test_object_analytics_e2e.py."""

from __future__ import annotations

import pytest

from analytics.objects.batching import BatchingDetector
from analytics.objects.people import PeopleConfig, PeopleProcessor
from analytics.objects.vehicles import VehicleConfig, VehicleProcessor
from analytics.plugins import Frame
from tests.support import composite

from .test_analytics_video import GATE

GATE_LINE = {"name": "gate", "points": [{"x": 0.5, "y": 0.95}, {"x": 0.5, "y": 0.25}], "in_side": "right"}


class Collected:
    """Stands in for the count writer: what the processor hands over, in order."""

    def __init__(self) -> None:
        self.rows = []

    def submit(self, rows) -> None:
        self.rows.extend(rows)


def run(processor, path, *, every: int = 2, start: float = 1_700_000_000.0):
    """Each analysed frame's result; frame times are `start` + the stream position."""
    results = []
    for index, (timestamp_ms, image) in enumerate(composite.decoded(path)):
        if index % every:
            continue
        frame = Frame(image, start + timestamp_ms / 1000, index, "00000000000000b1", 0)
        results.append(processor.process(frame))
    results.append(processor.close())
    return results


@pytest.fixture(scope="module")
def runtime(detector):
    runtime = BatchingDetector(detector, batch_size=1)
    yield runtime
    runtime.stop()


@pytest.mark.heavy
def test_people_line_counting_events_counts_and_overlay(people_video, runtime):
    path, movers = people_video
    writer = Collected()
    processor = PeopleProcessor(PeopleConfig(lines=[GATE_LINE]), runtime=runtime, writer=writer)
    results = run(processor, path)
    events = [e for r in results for e in r.events]
    truth = sorted(
        (t, "in" if m.position(t + 100)[0] > 384 else "out")
        for m in movers
        for t in composite.crossings(m, *GATE)
    )
    assert [e.pipeline_data["direction"] for e in events] == [d for _, d in truth]
    ins = outs = 0
    for event in events:
        data = event.pipeline_data
        ins, outs = ins + (data["direction"] == "in"), outs + (data["direction"] == "out")
        assert event.primary_text == "person" and event.secondary_text == data["direction"]
        assert data == {
            "area_name": "gate",
            "event_type": "line_crossing",
            "sub_analytic": "line_counting",
            "confidence": data["confidence"],
            "label": "person",
            "track_id": data["track_id"],
            "bounding_box": data["bounding_box"],
            "direction": data["direction"],
            "wrong_way": False,
            "totals": {"in": ins, "out": outs},
        }
        assert 0.25 <= data["confidence"] <= 1
        assert event.image_jpeg.startswith(b"\xff\xd8")
    # Counts handed to the writer every 5 s of stream time and at close add up to the crossings.
    summed = {}
    for row in writer.rows:
        key = (row.zone, row.label, row.direction)
        summed[key] = summed.get(key, 0) + row.value
    assert summed == {("gate", "person", "in"): 2, ("gate", "person", "out"): 3}
    assert len({id(r) for r in writer.rows}) == len(writer.rows)
    # Overlay: the line with its totals, a box per person with class and track id.
    overlay = results[-2].overlay
    assert overlay[0].kind == "line" and overlay[0].label == "gate: in 2 / out 3"
    assert all(item.kind == "box" and item.label.startswith("person #") for item in overlay[1:])
    assert processor.frames_refused == 0


@pytest.mark.heavy
def test_dwell_occupancy_limit_and_crowd_grid(street, runtime, tmp_path):
    p = street.people
    movers = [
        composite.Mover(p[0], ((0, 750, 450), (2000, 520, 450), (7000, 520, 450), (9000, 250, 450))),
        composite.Mover(p[1], ((3000, 300, 300), (6000, 760, 300))),
    ]
    path = composite.render(tmp_path / "dwell.avi", street.background, movers, 9500)
    bench = [{"x": 0.5, "y": 0.45}, {"x": 0.85, "y": 0.45}, {"x": 0.85, "y": 0.85}, {"x": 0.5, "y": 0.85}]
    config = PeopleConfig(
        areas=[{"name": "bench", "points": bench, "dwell_ms": 4000, "occupancy_limit": 1, "hold_ms": 400}],
        crowd={"enabled": True, "grid_rows": 3, "grid_cols": 4, "density_limit": 1, "hold_ms": 0},
    )
    writer = Collected()
    results = run(PeopleProcessor(config, runtime=runtime, writer=writer), path)
    events = [e for r in results for e in r.events]
    kinds = [e.pipeline_data["event_type"] for e in events]
    # Truth: the walker is inside the bench area from 3548 to 5302 ms while the stander is
    # there (over the limit of 1 for 1.75 s: one over, one clear); the stander has stayed
    # 4 s at 4843 ms. Two people never share a cell of the 3 x 4 grid: no density event.
    assert sorted(kinds) == ["dwell", "occupancy_clear", "occupancy_over"], kinds
    dwell = next(e for e in events if e.pipeline_data["event_type"] == "dwell")
    assert dwell.pipeline_data["dwell_ms"] >= 4000 and dwell.pipeline_data["sub_analytic"] == "dwell"
    over = next(e for e in events if e.pipeline_data["event_type"] == "occupancy_over")
    assert over.pipeline_data["occupancy"] == 2 and over.pipeline_data["occupancy_limit"] == 1
    assert over.pipeline_data["label"] == "person" and over.image_jpeg.startswith(b"\xff\xd8")
    # The heatmap grid of every analysed frame: the people on it, where the paths put them.
    for result in results[:-1]:
        grid = result.additional_data["data"]["data"]
        assert len(grid) == 3 and all(len(row) == 4 for row in grid) and sum(map(sum, grid)) <= 2
    at_5400 = results[27].additional_data  # frame 54: 5.4 s
    assert at_5400 == {"data": {"data": [[0, 0, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]]}}
    summed = {}
    for row in writer.rows:
        key = (row.label, row.direction)
        summed[key] = (
            max(summed.get(key, 0), row.value) if row.direction == "peak" else summed.get(key, 0) + row.value
        )
    assert summed == {("person", "enter"): 2, ("person", "dwell"): 1, ("person", "peak"): 2, ("*", "peak"): 2}


@pytest.mark.heavy
def test_vehicles_wrong_way_and_stopped(street, runtime, tmp_path):
    van = street.van
    movers = [
        composite.Mover(van, ((0, 60, 300), (5000, 720, 300))),
        composite.Mover(van, ((3000, 720, 460), (8000, 60, 460))),
        composite.Mover(van, ((9000, 60, 510), (10500, 170, 510), (16500, 170, 510), (18000, 60, 510))),
    ]
    path = composite.render(tmp_path / "vehicles.avi", street.background, movers, 18_500)
    lane = {
        "name": "lane",
        "points": [{"x": 0.5, "y": 0.95}, {"x": 0.5, "y": 0.3}],
        "in_side": "right",
        "expected_direction": "in",
    }
    no_parking = {
        "name": "no-parking",
        "points": [
            {"x": 0.05, "y": 0.55},
            {"x": 0.35, "y": 0.55},
            {"x": 0.35, "y": 0.95},
            {"x": 0.05, "y": 0.95},
        ],
        "stop_ms": 3000,
    }
    writer = Collected()
    config = VehicleConfig(lines=[lane], areas=[no_parking])
    events = [
        e for r in run(VehicleProcessor(config, runtime=runtime, writer=writer), path) for e in r.events
    ]
    assert [(e.pipeline_data["event_type"], e.pipeline_data.get("direction")) for e in events] == [
        ("line_crossing", "in"),
        ("wrong_way", "out"),
        ("stopped", None),
    ]
    wrong = events[1]
    assert wrong.pipeline_data["wrong_way"] is True and wrong.secondary_text == "wrong way (out)"
    assert (
        wrong.primary_text in {"car", "truck", "bus"} and wrong.pipeline_data["label"] == wrong.primary_text
    )
    stopped = events[2]
    assert stopped.pipeline_data["dwell_ms"] >= 3000 and stopped.pipeline_data["area_name"] == "no-parking"
    assert stopped.pipeline_data["sub_analytic"] == "stopped_vehicle"
    directions = {}
    for row in writer.rows:
        if row.direction != "peak":
            directions[row.direction] = directions.get(row.direction, 0) + row.value
    # Entries count identities: a van that reverses may be taken for a new one (2 by the paths).
    assert directions.pop("enter") >= 2
    assert directions == {"in": 1, "out": 1, "wrong_way": 1, "stopped": 1}


# --- routes -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_config_rules_and_presets_routes(api):
    schema = api.get("/config/pipeline/NFV4-MPA").json()
    assert set(schema["properties"]) == {"sampling_time_ms", "lines", "areas", "crowd", "rules"}
    assert schema["properties"]["sampling_time_ms"]["default"] == 200
    v2 = api.get("/v2/config/pipeline/NFV4-MVA").json()
    assert set(v2["sub_analytics"]) == {"line_counting", "wrong_way", "area_occupancy", "stopped_vehicle"}
    assert set(api.get("/v2/config/pipeline/NFV4-MPA").json()["sub_analytics"]) == {
        "line_counting",
        "area_occupancy",
        "dwell",
        "crowd_estimation",
    }
    rules = api.get("/rules/pipeline/NFV4-MPA").json()
    assert rules["properties"]["events"]["default"] == [
        "line_crossing",
        "occupancy_over",
        "occupancy_clear",
        "dwell",
        "crowd_density",
    ]
    assert api.get("/rules/pipeline/NFV4-MVA").json()["properties"]["events"]["default"] == [
        "line_crossing",
        "wrong_way",
        "occupancy_over",
        "occupancy_clear",
        "stopped",
    ]
    presets = api.get("/config/preset/NFV4-MPA").json()
    assert set(presets) == {"entrance-counting", "occupancy", "loitering", "crowd"}
    assert presets["entrance-counting"]["lines"][0]["name"] == "entrance"
    assert set(api.get("/config/preset/NFV4-MVA").json()) == {
        "traffic-counting",
        "one-way",
        "parking",
        "occupancy",
    }


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("analytic", "config", "message"),
    [
        ("NFV4-MPA", {"lines": [{"name": "a", "points": [{"x": 0.1, "y": 0.1}]}]}, "lines.0.points"),
        ("NFV4-MPA", {"crowd": {"grid_rows": 0}}, "crowd.grid_rows"),
        ("NFV4-MPA", {"bogus": 1}, "unknown config key 'bogus'"),
        ("NFV4-MPA", {"rules": {"events": ["wrong_way"]}}, "rules.events.0"),
        ("NFV4-MVA", {"classes": ["person"]}, "classes.0"),
        ("NFV4-MVA", {"areas": [{"name": "x", "points": [{"x": 0, "y": 0}] * 3, "stop_ms": 10}]}, "stop_ms"),
    ],
)
def test_invalid_configs_are_refused_naming_the_key(api, analytic, config, message):
    stream = api.post("/streams/0", {"stream_address": "rtsp://127.0.0.1:8554/cam"}).json()["stream_id"]
    response = api.post(f"/pipeline/0/{stream}/{analytic}", config)
    assert response.status_code == 400 and message in response.json()["message"], response.json()


@pytest.mark.django_db
def test_repeated_zone_names_are_refused(api):
    stream = api.post("/streams/0", {"stream_address": "rtsp://127.0.0.1:8554/cam"}).json()["stream_id"]
    line = {"name": "door", "points": [{"x": 0.1, "y": 0.5}, {"x": 0.9, "y": 0.5}]}
    area = {"name": "door", "points": [{"x": 0, "y": 0}, {"x": 1, "y": 0}, {"x": 1, "y": 1}]}
    response = api.post(f"/pipeline/0/{stream}/NFV4-MPA", {"lines": [line], "areas": [area]})
    assert response.json() == {
        "code": 400,
        "message": "invalid config value for 'config': Value error, line and area names must be unique: "
        "door repeated",
    }
