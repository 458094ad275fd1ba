"""NFV4-LPR3 (analytics/plates/plugin.py): its config as the routes serve and
validate it, the watch-list interface, and the analytic end to end through a real
stream runner.

The runner test plays an H.264 file made by tests/support/plates.py: eight
Indonesian plates rendered in DejaVu Sans Mono Bold on a photographed car's rear
(opencv-doc's licenseplate_motion.jpg), each car driving nearer over a street
scene of vtest.avi for 3 s, then 2 s of the bare street (10 frames a
second: a loaded machine analyses few frames of a pass). The pipeline reads
only two areas (a left and a right lane); three passes drive between them. A
watch list implemented here registers two of the plates (one exactly, one with a
confusable O for a 0).
"""

from __future__ import annotations

import base64
import contextlib
import os
import threading

import cv2
import numpy as np
import pytest
from django.conf import settings
from django.db import connections

from analytics.plates.matching import match_plate
from analytics.plates.watchlist import NULL_WATCHLIST, WatchlistMatch, set_watchlist, watchlist
from analytics.registry import get_plugin, validate_config
from core.errors import BadRequest
from events.models import Event
from live.keys import stream_stats_key
from tests.support.opencv_samples import opencv_samples_dir
from tests.support.plates import plate_set, plate_video
from tests.workers.conftest import wait_for
from workers.event_sink import event_sink_forget, event_sink_started
from workers.runner import StreamRunner

LPR = "NFV4-LPR3"


# --- config --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_config_schema_presets_and_rules_are_served(api):
    schema = api.get(f"/config/pipeline/{LPR}").json()
    properties = schema["properties"]
    for key in (
        "areas",
        "region",
        "min_plate_confidence",
        "sampling_time_ms",
        "read_interval_ms",
        "reads_per_track",
        "track_timeout_ms",
        "max_pass_ms",
        "watchlists",
    ):
        assert key in properties, key
    assert properties["region"]["default"] == "indonesia"
    assert api.get(f"/rules/pipeline/{LPR}").json() == {}
    presets = api.get(f"/config/preset/{LPR}").json()
    assert set(presets) == {"gate", "highway"}
    plugin = get_plugin(LPR)
    for preset in presets.values():
        validate_config(plugin, preset)  # every preset is a valid config


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"region": "[A-Z]+.[0-9]{3}"}, "invalid config value for 'region'"),
        ({"region": "[a-z"}, "invalid config value for 'region'"),
        ({"min_plate_confidence": 1.5}, "invalid config value for 'min_plate_confidence'"),
        ({"vehicle_classes": ["person"]}, "invalid config value for 'vehicle_classes.0'"),
        ({"areas": [{"name": "lane", "points": [{"x": 0, "y": 0}, {"x": 1, "y": 0}]}]}, "'areas.0.points'"),
        ({"watchlists": ["no spaces"]}, "invalid config value for 'watchlists'"),
        ({"plate_region": "uk"}, "unknown config key 'plate_region'"),
    ],
)
def test_invalid_configs_name_the_key(config, message):
    with pytest.raises(BadRequest) as error:
        validate_config(get_plugin(LPR), config)
    assert message in error.value.message


@pytest.mark.parametrize("region", ["indonesia", "UK", "generic", "([A-Z]{2})([0-9]{3})"])
def test_regions(region):
    assert validate_config(get_plugin(LPR), {"region": region}).region == region


@pytest.mark.django_db
def test_pipeline_with_an_invalid_config_is_refused(api):
    created = api.post("/streams/0", {"stream_address": "rtsp://127.0.0.1:8554/cam", "active": False})
    assert created.status_code == 200, created.json()
    stream_id = created.json()["stream_id"]
    response = api.post(f"/pipeline/0/{stream_id}/{LPR}", {"region": "B.[0-9]+"})
    assert response.status_code == 400
    assert "region" in response.json()["message"]


# --- the watch-list interface ----------------------------------------------------------------


class Fleet:
    """A watch list as the registered-vehicles app would give one: plates matched with
    OCR tolerance (analytics.plates.matching)."""

    def __init__(self, vehicles: dict[str, list[dict]]):
        self.vehicles = vehicles
        self.asked: list[tuple[str, str]] = []

    def match(self, list_name: str, plate: str) -> WatchlistMatch | None:
        self.asked.append((list_name, plate))
        vehicles = self.vehicles.get(list_name, [])
        found = match_plate(plate, [v["plate_number"] for v in vehicles])
        if found is None:
            return None
        vehicle = next(v for v in vehicles if v["plate_number"] == found.registered)
        return WatchlistMatch(
            vehicle["unique_id"], vehicle["name"], vehicle["status"], found.exact, found.registered
        )


def test_without_a_registered_watchlist_nothing_is_registered(monkeypatch):
    from analytics.plates import registered

    set_watchlist(None)
    monkeypatch.setattr(registered, "_directory", None)  # no registered-vehicles app either
    assert watchlist() is NULL_WATCHLIST
    assert watchlist().match("fleet", "B1234XYZ") is None
    fleet = Fleet({"fleet": [{"plate_number": "B 1234 XYZ", "unique_id": "7", "name": "A", "status": "x"}]})
    set_watchlist(fleet)
    try:
        assert watchlist() is fleet
        assert watchlist().match("fleet", "B1234XYZ") == WatchlistMatch("7", "A", "x", True, "B 1234 XYZ")
        assert watchlist().match("fleet", "B1234XY2").exact is False
    finally:
        set_watchlist(None)


# --- end to end through a stream runner ---------------------------------------------------------

# Lanes: the anchors (bottom centre) of passes 0, 3, 4 stay left of x 0.41 of the frame,
# those of 5 and 6 right of 0.63, those of 1, 2 and 7 between 0.44 and 0.56.
LEFT = [{"x": 0.0, "y": 0.3}, {"x": 0.42, "y": 0.3}, {"x": 0.42, "y": 1.0}, {"x": 0.0, "y": 1.0}]
RIGHT = [{"x": 0.6, "y": 0.3}, {"x": 1.0, "y": 0.3}, {"x": 1.0, "y": 1.0}, {"x": 0.6, "y": 1.0}]
IN_AREA = {0: "left", 3: "left", 4: "left", 5: "right", 6: "right"}
MIN_EXACT = 4  # of the 5 passes in the areas, plates read exactly (measured 5)


@pytest.fixture(scope="module")
def passes_video(scenes, tmp_path_factory):
    passes = [p for p in plate_set(16) if p.style == "id"]
    photo = cv2.imread(str(opencv_samples_dir(settings.DATA_DIR / "cache") / "licenseplate_motion.jpg"))
    folder = tmp_path_factory.mktemp("lpr")
    video, boxes = plate_video(
        folder / "passes.mp4",
        passes,
        scenes,
        frames_per_pass=30,
        gap_frames=20,
        fps=10,
        car_photo=photo,
    )
    return passes, video, boxes


@pytest.mark.heavy
def test_the_lanes_are_as_the_areas_expect(passes_video):
    passes, _, boxes = passes_video
    assert len(passes) == 8
    for index in range(len(passes)):
        xs = [(b.box[0] + b.box[2]) / 2 / 1280 for b in boxes if b.pass_index == index]
        side = "left" if max(xs) < 0.41 else "right" if min(xs) > 0.63 else "between"
        assert side == IN_AREA.get(index, "between"), (index, min(xs), max(xs))
        if side == "between":
            assert min(xs) > 0.44 and max(xs) < 0.56


@pytest.fixture
def fresh_event_sink():
    event_sink_forget()
    yield
    sink = event_sink_started()
    event_sink_forget()
    if sink is not None:
        assert sink.stop(timeout=10), "the event writer did not stop"


@pytest.fixture
def fleet(passes_video):
    passes, _, _ = passes_video
    registered = Fleet(
        {
            "fleet": [
                {"plate_number": passes[0].number, "unique_id": "V-1", "name": "Budi", "status": "blacklist"},
                # Registered with an O where the plate has a 0: a tolerated confusion, not exact.
                {
                    "plate_number": passes[5].plate.replace("0", "O"),
                    "unique_id": "V-2",
                    "name": "Sari",
                    "status": "whitelist",
                },
                {"plate_number": "D 1 ZZZ", "unique_id": "V-3", "name": "Nobody", "status": "whitelist"},
            ]
        }
    )
    set_watchlist(registered)
    yield registered
    set_watchlist(None)


@pytest.mark.e2e
@pytest.mark.timeout(900)
@pytest.mark.django_db(transaction=True)
def test_plates_of_passing_vehicles_through_the_runner(
    api, passes_video, fleet, fresh_event_sink, redis_client, tmp_path, settings
):
    passes, video, _ = passes_video
    videos = tmp_path / "videos"
    videos.mkdir()
    target = videos / "gate.mp4"
    target.write_bytes(video.read_bytes())
    settings.STREAM_MEDIA_ROOT = os.path.realpath(videos)
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.STREAM_LOOP_FILES = False
    # Every frame analysed, in video time: on a busy machine the file takes longer
    # instead of passes being seen on too few frames.
    settings.STREAM_EVERY_FILE_FRAME = True
    created = api.post("/streams/0", {"stream_address": os.path.realpath(target), "stream_name": "Gate"})
    assert created.status_code == 200, created.json()
    stream_id = created.json()["stream_id"]
    config = {
        "areas": [{"name": "left", "points": LEFT}, {"name": "right", "points": RIGHT}],
        "watchlists": ["fleet"],
    }
    assert api.post(f"/pipeline/0/{stream_id}/{LPR}", config).status_code == 200

    runner = StreamRunner(stream_id, node_num=0, worker_name="test")

    def body() -> None:
        try:
            runner.run()
        finally:
            connections.close_all()

    thread = threading.Thread(target=body, name=f"runner-{stream_id}", daemon=True)
    thread.start()
    try:
        # 40 s of video at its own pace at least; the last pass's event comes when the pipeline closes.
        wait_for(
            lambda: redis_client.hget(stream_stats_key(stream_id), "last_error_msg") == "End of file reached",
            timeout=300,
            what="the end of the file",
        )
    finally:
        runner.request_stop()
        thread.join(60)
    assert not thread.is_alive()
    # The event writer stores them in batches, off the runner's thread; on a timeout the
    # assertions below say what was stored.
    with contextlib.suppress(AssertionError):
        wait_for(
            lambda: Event.objects.filter(analytic_id=LPR).count() >= len(IN_AREA),
            timeout=60,
            what=f"{len(IN_AREA)} plate events",
        )
    events = list(Event.objects.filter(analytic_id=LPR).order_by("timestamp"))
    by_plate = {e.pipeline_data["plate_text"]: e for e in events}
    expected = {passes[i].plate: i for i in IN_AREA}
    # One event per pass in an area, none for the passes between them.
    assert len(events) == len(IN_AREA), [(e.secondary_text, e.pipeline_data["area_name"]) for e in events]
    exact = [plate for plate in by_plate if plate in expected]
    assert len(exact) >= MIN_EXACT, sorted(by_plate)
    assert not {passes[i].plate for i in range(len(passes)) if i not in IN_AREA} & set(by_plate)
    for event in events:
        data = event.pipeline_data
        assert (
            event.primary_text in ("car", "truck", "bus", "motorcycle")
            and data["label"] == event.primary_text
        )
        assert event.secondary_text == data["plate_number"]
        assert (
            0.6 <= data["plate_confidence"] <= 1
            and 1 <= data["plate_agreeing"] <= data["plate_readings"] <= 4
        )
        assert 0 < data["confidence"] <= 1
        box = data["bounding_box"]
        assert all(0 <= box[k] <= 1 for k in ("left", "top", "width", "height"))
        assert box["left"] + box["width"] <= 1.0001 and box["width"] > 0.05
        plate_crop = cv2.imdecode(np.frombuffer(base64.b64decode(data["plate_image_jpeg"]), np.uint8), 1)
        assert plate_crop is not None and plate_crop.shape[1] > plate_crop.shape[0]
        with event.image.open("rb") as image:
            vehicle = cv2.imdecode(np.frombuffer(image.read(), np.uint8), 1)
        # The plate picture is a strip of the vehicle's (widened by up to 1.5 plate heights
        # each side when the plate was read from a widened box, see analytics.plates.reader).
        assert vehicle is not None and vehicle.shape[1] > plate_crop.shape[1]
        assert vehicle.shape[0] > 2 * plate_crop.shape[0]
        if data["plate_text"] in expected:
            index = expected[data["plate_text"]]
            assert data["area_name"] == IN_AREA[index]
            assert event.secondary_text == passes[index].number  # displayed as written: "B 1234 XYZ"
    # Registered: exactly, and with a confusion; the others are not.
    budi = by_plate[passes[0].plate].pipeline_data
    assert (budi["registered"], budi["vehicle_id"], budi["name"], budi["status"], budi["match_exact"]) == (
        True,
        "V-1",
        "Budi",
        "blacklist",
        True,
    )
    sari = by_plate[passes[5].plate].pipeline_data
    assert (sari["registered"], sari["vehicle_id"], sari["name"], sari["status"], sari["match_exact"]) == (
        True,
        "V-2",
        "Sari",
        "whitelist",
        False,
    )
    assert "budi" in by_plate[passes[0].plate].search_text.lower()
    others = [
        e.pipeline_data for plate, e in by_plate.items() if plate not in (passes[0].plate, passes[5].plate)
    ]
    assert len(others) == 3
    assert all(data["registered"] is False and "vehicle_id" not in data for data in others)
    assert {name for name, _ in fleet.asked} == {"fleet"}
