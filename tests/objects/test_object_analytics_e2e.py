"""NFV4-MPA and NFV4-MVA through the real stream runner (in a thread of this
process, as tests/workers/test_runner.py runs it): composite videos with exact
ground truth (tests/support/composite.py) played at their own pace as file
streams, pipelines made through the API, events stored by the event writer and
pushed on /event_channel, counts stored by the count writer and served by
`/analytics/{node}/{stream_id}/{analytic_id}/counts` and /metrics, and the crowd
heatmap header on the overlay MJPEG route of a real uvicorn."""

from __future__ import annotations

import base64
import json
import os
import time

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from prometheus_client.parser import text_string_to_metric_families

from analytics.counts import count_writer, count_writer_stop
from events.models import Event
from tests.events.websocket import WebsocketCommunicator
from tests.support import composite
from tests.viewing.support import AsgiServer, MjpegReader, RunnerThread, is_live
from tests.workers.conftest import wait_for
from visionaire_site.asgi import application
from workers.event_sink import event_sink_forget, event_sink_started

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.timeout(900)]

GATE_LINE = {"name": "gate", "points": [{"x": 0.5, "y": 0.95}, {"x": 0.5, "y": 0.25}], "in_side": "right"}
EVENT_DEADLINE = 300.0  # a played video on a busy machine


@pytest.fixture(autouse=True)
def fresh_writers():
    """Each test's events and counts go through writers of their own, stopped afterwards
    (their threads close their database connections)."""

    def stop() -> None:
        sink = event_sink_started()
        event_sink_forget()
        if sink is not None:
            assert sink.stop(timeout=10), "the event writer did not stop"
        assert count_writer_stop(timeout=10), "the count writer did not stop"

    stop()
    yield
    stop()


@pytest.fixture
def videos(tmp_path, settings):
    root = tmp_path / "videos"
    root.mkdir()
    settings.STREAM_MEDIA_ROOT = os.path.realpath(root)
    # Every frame reaches the analytics, stamped with its time in the video: what
    # they see is the same on a busy machine (the file just takes longer to play).
    settings.STREAM_EVERY_FILE_FRAME = True
    return root


def make_stream(api, path) -> str:
    response = api.post("/streams/0", {"stream_address": str(path), "stream_name": "Square"})
    assert response.status_code == 200, response.json()
    return response.json()["stream_id"]


def add_pipeline(api, stream_id: str, analytic: str, config: dict) -> None:
    response = api.post(f"/pipeline/0/{stream_id}/{analytic}", config)
    assert response.status_code == 200, response.json()


def counted(api) -> dict:
    text = api.get("/metrics").content.decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith(("visionaire_people_counted", "visionaire_vehicles_counted"))
    }


def test_people_crossing_a_line_events_channel_counts_route_and_metrics(
    api, street, people_video, videos, settings
):
    settings.STREAM_LOOP_FILES = False  # played once: the ground truth is one pass
    _, movers = people_video  # the scene of tests/objects/test_analytics_video.py
    wall = composite.Occluder(street.wall(120, 200), 150, 70)
    path = composite.render(videos / "people.avi", street.background, movers, 17_500, occluders=[wall])
    stream_id = make_stream(api, path)
    add_pipeline(api, stream_id, "NFV4-MPA", {"lines": [GATE_LINE]})
    started_ms = int(time.time() * 1000)

    async def body() -> list[dict]:
        client = WebsocketCommunicator(application, f"/event_channel/0/{stream_id}?analytic_id=NFV4-MPA")
        assert (await client.connect(timeout=10))[0]
        runner = await sync_to_async(RunnerThread(stream_id).start)()
        received: list[dict] = []
        try:
            while len(received) < 5:
                received.append(await client.receive_json_from(timeout=EVENT_DEADLINE))
            return received
        except TimeoutError:
            stats = await sync_to_async(lambda: runner.runner.host.stats())()
            raise AssertionError(
                f"{len(received)} events: {[m['pipeline_data']['direction'] for m in received]}; {stats}"
            ) from None
        finally:
            await client.disconnect()
            await sync_to_async(runner.stop)()  # closes the pipeline: its counts are handed over

    messages = async_to_sync(body)()
    assert count_writer().flush(timeout=30), "the counts were not stored"
    # Ground truth from the paths: in, out, in, out, out (tests/objects/test_analytics_video.py).
    assert [m["pipeline_data"]["direction"] for m in messages] == ["in", "out", "in", "out", "out"]
    ins = outs = 0
    for message in messages:
        data = message["pipeline_data"]
        ins, outs = ins + (data["direction"] == "in"), outs + (data["direction"] == "out")
        assert message == {
            "analytic_id": "NFV4-MPA",
            "node_num": 0,
            "stream_id": stream_id,
            "stream_name": "Square",
            "stream_address": str(videos / "people.avi"),
            "stream_latitude": 0.0,
            "stream_longitude": 0.0,
            "timestamp": message["timestamp"],
            "primary_text": "person",
            "secondary_text": data["direction"],
            "image_jpeg": message["image_jpeg"],
            "pipeline_data": {
                "event_id": data["event_id"],
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
            },
        }
        assert base64.b64decode(message["image_jpeg"]).startswith(b"\xff\xd8")
        assert started_ms // 1000 <= message["timestamp"] <= time.time()
    assert Event.objects.filter(stream_id=stream_id, analytic_id="NFV4-MPA").count() == 5

    # The counts route: per minute, exactly the crossings, in the minutes they happened.
    expected: dict[tuple, int] = {}
    for message in messages:
        minute = message["timestamp"] * 1000 // 60_000 * 60_000
        key = (minute, "gate", "person", message["pipeline_data"]["direction"])
        expected[key] = expected.get(key, 0) + 1
    to_ms = int(time.time() * 1000) + 60_000
    from_ms = started_ms - 60_000
    response = api.get(f"/analytics/0/{stream_id}/NFV4-MPA/counts?from_ms={from_ms}&to_ms={to_ms}")
    assert response.status_code == 200
    assert response.json() == {
        "code": 200,
        "message": "success",
        "node_num": 0,
        "stream_id": stream_id,
        "analytic_id": "NFV4-MPA",
        "bucket": "minute",
        "from_ms": from_ms,
        "to_ms": to_ms,
        "counts": [
            {"bucket_ms": minute, "zone": zone, "label": label, "direction": direction, "value": value}
            for (minute, zone, label, direction), value in sorted(expected.items())
        ],
    }
    day = api.get(
        f"/analytics/0/{stream_id}/NFV4-MPA/counts?from_ms={from_ms}&to_ms={to_ms}&bucket=day"
    ).json()
    by_direction: dict[str, int] = {}
    for row in day["counts"]:  # one day, or two when the test ran across midnight UTC
        by_direction[row["direction"]] = by_direction.get(row["direction"], 0) + row["value"]
    assert by_direction == {"in": 2, "out": 3}
    assert all(r["bucket_ms"] % 86_400_000 == 0 for r in day["counts"])

    metrics = counted(api)
    series = {"stream_id": stream_id, "zone": "gate", "label": "person"}
    assert (
        metrics[("visionaire_people_counted_total", tuple(sorted({**series, "direction": "in"}.items())))]
        == 2
    )
    assert (
        metrics[("visionaire_people_counted_total", tuple(sorted({**series, "direction": "out"}.items())))]
        == 3
    )


def test_vehicles_wrong_way_and_stopped_through_the_runner(api, street, videos, settings):
    settings.STREAM_LOOP_FILES = False
    van = street.van
    movers = [
        composite.Mover(van, ((0, 60, 300), (5000, 720, 300))),  # the allowed way
        composite.Mover(van, ((3000, 720, 460), (8000, 60, 460))),  # wrong way
        composite.Mover(van, ((9000, 60, 510), (10500, 170, 510), (16500, 170, 510), (18000, 60, 510))),
    ]
    path = composite.render(videos / "vehicles.avi", street.background, movers, 18_500)
    stream_id = make_stream(api, path)
    corners = [(0.05, 0.55), (0.35, 0.55), (0.35, 0.95), (0.05, 0.95)]
    add_pipeline(
        api,
        stream_id,
        "NFV4-MVA",
        {
            "lines": [{**GATE_LINE, "name": "lane", "expected_direction": "in"}],
            "areas": [
                {"name": "no-parking", "points": [{"x": x, "y": y} for x, y in corners], "stop_ms": 3000}
            ],
        },
    )
    with RunnerThread(stream_id):

        def three():
            found = list(Event.objects.filter(stream_id=stream_id).order_by("timestamp"))
            return found if len(found) >= 3 else None

        events = wait_for(three, timeout=EVENT_DEADLINE, what="three vehicle events")
    assert count_writer().flush(timeout=30)
    assert [(e.pipeline_data["event_type"], e.secondary_text) for e in events] == [
        ("line_crossing", "in"),
        ("wrong_way", "wrong way (out)"),
        ("stopped", f"stopped {events[2].pipeline_data['dwell_ms'] / 1000:.0f} s"),
    ]
    assert all(e.primary_text in {"car", "truck", "bus"} for e in events)
    assert events[2].pipeline_data["dwell_ms"] >= 3000
    rows = api.get(f"/analytics/0/{stream_id}/NFV4-MVA/counts?bucket=hour").json()["counts"]
    totals: dict[str, int] = {}
    for row in rows:
        if row["direction"] != "peak":
            totals[row["direction"]] = totals.get(row["direction"], 0) + row["value"]
    assert totals.pop("enter") >= 2  # identities: a reversing van may be taken for a new one
    assert totals == {"in": 1, "out": 1, "wrong_way": 1, "stopped": 1}


def test_crowd_heatmap_header_on_the_overlay_mjpeg_route(api, street, videos, settings):
    settings.VIEWING_GRACE_SECONDS = 0.2
    p = street.people
    movers = [
        composite.Mover(p[0], ((0, 520, 450), (6000, 520, 450))),  # stands: row 2, column 2 of 3 x 4
        composite.Mover(p[3], ((0, 120, 250), (6000, 120, 250))),  # stands: row 1, column 0
    ]
    path = composite.render(videos / "crowd.avi", street.background, movers, 6000)  # looped
    stream_id = make_stream(api, path)
    add_pipeline(api, stream_id, "NFV4-MPA", {"crowd": {"enabled": True, "grid_rows": 3, "grid_cols": 4}})
    truth = {"data": {"data": [[0, 0, 0, 0], [1, 0, 0, 0], [0, 0, 1, 0]]}}
    with AsgiServer() as server, RunnerThread(stream_id):
        with MjpegReader(server.url(f"/mjpeg/0/{stream_id}/NFV4-MPA?fps=5&height=240")) as reader:
            part = reader.read_until(
                lambda part: (
                    is_live(part)
                    and "x-nf-additional-data" in part.headers
                    and json.loads(base64.b64decode(part.headers["x-nf-additional-data"])) == truth
                ),
                timeout=120,
                what="a part with the heatmap of both people",
            )
            svg = base64.b64decode(part.headers["x-nf-visual-data"]).decode()
            assert "person #" in svg
        with MjpegReader(server.url(f"/mjpeg/0/{stream_id}?fps=5&height=240")) as plain:
            live = plain.read_until(is_live, timeout=60, what="a live frame")
            assert "x-nf-additional-data" not in live.headers  # only on the analytic's overlay route


def test_vtest_counted_through_the_runner_within_ten_percent_of_a_count_by_eye(
    api, samples, videos, settings
):
    # The street of vtest.avi (795 frames at 10 fps) as a file stream read as fast as it is
    # analysed, every frame reaching the pipeline: the count of the processor-level test
    # (tests/objects/test_analytics_video.py), now from the runner's events and stored counts.
    settings.STREAM_LOOP_FILES = False
    settings.STREAM_PACE_FILES = False
    path = videos / "vtest.avi"
    path.write_bytes((samples / "vtest.avi").read_bytes())
    stream_id = make_stream(api, path)
    x = 540 / 768
    line = {"name": "walk", "points": [{"x": x, "y": 0.2}, {"x": x, "y": 0.8}], "in_side": "right"}
    add_pipeline(api, stream_id, "NFV4-MPA", {"lines": [line]})
    with RunnerThread(stream_id) as running:
        wait_for(
            lambda: running.runner.source is not None and running.runner.source.state.value == "ENDED",
            timeout=EVENT_DEADLINE,
            what="the end of vtest.avi",
        )
    analysed = running.runner.host.slots[0].processed
    assert count_writer().flush(timeout=30), "the counts were not stored"
    assert event_sink_started().flush(timeout=30), "the events were not stored"
    crossings = Event.objects.filter(stream_id=stream_id, pipeline_data__event_type="line_crossing")
    directions = list(crossings.values_list("secondary_text", flat=True))
    by_eye = 32  # tests/objects/test_analytics_video.py says how it was counted
    assert abs(len(directions) - by_eye) <= 0.1 * by_eye, (len(directions), analysed)
    assert set(directions) == {"in", "out"}
    assert 395 <= analysed <= 400  # every other frame of 795: video time, not the machine's pace
    # Read faster than it plays, the file's minutes run ahead of the clock: ask up to an hour on.
    to_ms = int(time.time() * 1000) + 3_600_000
    rows = api.get(f"/analytics/0/{stream_id}/NFV4-MPA/counts?bucket=day&from_ms=0&to_ms={to_ms}").json()[
        "counts"
    ]
    stored = {d: sum(r["value"] for r in rows if r["direction"] == d) for d in ("in", "out")}
    assert stored == {d: directions.count(d) for d in ("in", "out")}
