"""Events in the admin: the crop and the stream's name in the list (the crop
served by the events image view behind the admin login), a bounded CSV export
with the fields of GET /events, and deletes that take the crops with them."""

from __future__ import annotations

import csv
import io
import json
import os
from datetime import UTC, datetime, timedelta

import cv2
import numpy as np
import pytest
from django.test import Client

from events import admin as events_admin
from events.models import Event
from events.services import event_create

LIST_URL = "/admin/events/event/"


@pytest.fixture
def crops_root(tmp_path, settings):
    """Crops go to a fresh folder per test, not the data folder."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return settings.MEDIA_ROOT


def _jpeg(shade: int) -> bytes:
    image = np.full((24, 16, 3), shade, dtype=np.uint8)
    ok, encoded = cv2.imencode(".jpg", image)
    assert ok
    return encoded.tobytes()


@pytest.fixture
def events(make_stream, crops_root) -> list[Event]:
    """Four events, oldest first; the third has no crop; texts CSV must quote."""
    lobby = make_stream(name="Camera Lobby")
    gate = make_stream(name="Gate, north")
    start = datetime(2025, 1, 15, 8, 0, tzinfo=UTC)
    made = []
    for index, (stream, image) in enumerate(
        [(lobby, _jpeg(40)), (gate, _jpeg(120)), (lobby, None), (gate, _jpeg(200))]
    ):
        made.append(
            event_create(
                stream=stream,
                analytic_id="TEST-BRIGHT",
                timestamp=start + timedelta(seconds=index, milliseconds=250),
                primary_text=f'bright "{index}", again',
                secondary_text="level\nhigh" if index == 1 else "",
                pipeline_data={"level": 100.5 + index, "areas": ["a", "b"]},
                image_jpeg=image,
            )
        )
    return made


def test_the_list_shows_each_crop_and_the_streams_name(admin_web, events):
    html = admin_web.get(LIST_URL).content.decode()
    for event in events:
        row = html[html.index(f'value="{event.event_id}"') :].split("</tr>", 1)[0]  # from its checkbox
        assert f">{event.stream_name}</td>" in row
        crop = f'<img src="/admin/events/event/{event.event_id}/crop.jpg"'
        assert (crop in row) is bool(event.image), row

    for event in events:
        response = admin_web.get(f"/admin/events/event/{event.event_id}/crop.jpg")
        if event.image:
            assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
            with event.image.open("rb") as handle:
                assert b"".join(response.streaming_content) == handle.read()
        else:
            assert response.status_code == 404
            assert response.json() == {"code": 404, "message": "event image not found"}


def test_the_crop_is_no_new_way_around_the_api_token(admin_web, api, events, settings):
    settings.API_TOKENS = ["s3cret-token"]
    event = events[0]
    assert api.get(f"/events/{event.event_id}/image.jpg").status_code == 401
    anonymous = Client().get(f"/admin/events/event/{event.event_id}/crop.jpg")
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/admin/login/")
    assert admin_web.get(f"/admin/events/event/{event.event_id}/crop.jpg").status_code == 200
    # The detail page shows the crop from the same place.
    page = admin_web.get(f"/admin/events/event/{event.event_id}/change/").content.decode()
    assert f'<img src="/admin/events/event/{event.event_id}/crop.jpg"' in page


def test_export_is_the_events_api_as_csv(admin_web, api, events, monkeypatch):
    monkeypatch.setattr(events_admin, "EXPORT_CHUNK", 2)  # rows are read in chunks: two here
    chosen = events[1:]  # three of the four, one without a crop
    listed = api.get("/events", {"limit": 10}).json()["events"]
    by_api = [item for item in listed if item["event_id"] in {str(e.event_id) for e in chosen}]
    assert len(by_api) == 3

    response = admin_web.post(
        LIST_URL, {"action": "export_csv", "_selected_action": [str(e.event_id) for e in chosen]}
    )
    assert response.status_code == 200
    # Asynchronous, so the ASGI server sends it as it is read; this synchronous client reads it whole.
    assert response.streaming and response.is_async
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="events-')
    with pytest.warns(Warning, match="must consume asynchronous iterators"):
        exported = b"".join(response).decode()

    fields = [
        "event_id",
        "stream_id",
        "analytic_id",
        "node_num",
        "timestamp_ms",
        "primary_text",
        "secondary_text",
        "pipeline_data",
        "image_url",
    ]
    expected = io.StringIO()
    writer = csv.writer(expected)
    writer.writerow(fields)
    for item in by_api:  # newest first, as the API lists them
        row = dict(
            item, pipeline_data=json.dumps(item["pipeline_data"], separators=(",", ":"), sort_keys=True)
        )
        writer.writerow([row[name] for name in fields])
    assert exported == expected.getvalue()
    # And it reads back to the API's values.
    parsed = list(csv.DictReader(io.StringIO(exported)))
    assert [json.loads(row["pipeline_data"]) for row in parsed] == [item["pipeline_data"] for item in by_api]
    assert [row["secondary_text"] for row in parsed] == [item["secondary_text"] for item in by_api]


def test_export_is_bounded(admin_web, events, monkeypatch):
    monkeypatch.setattr(events_admin, "EXPORT_MAX_EVENTS", 2)
    response = admin_web.post(
        LIST_URL, {"action": "export_csv", "_selected_action": [str(e.event_id) for e in events]}, follow=True
    )
    assert response.status_code == 200
    assert "4 events selected: an export holds at most 2." in response.content.decode()


def test_deleting_events_in_the_admin_removes_their_crops(admin_web, events, commits):
    paths = [event.image.path if event.image else None for event in events]
    assert all(os.path.exists(path) for path in paths if path)
    with commits():
        response = admin_web.post(f"/admin/events/event/{events[0].event_id}/delete/", {"post": "yes"})
    assert response.status_code == 302
    with commits():
        response = admin_web.post(
            LIST_URL,
            {
                "action": "delete_selected",
                "_selected_action": [str(events[1].event_id), str(events[2].event_id)],
                "post": "yes",
            },
        )
    assert response.status_code == 302
    assert list(Event.objects.values_list("event_id", flat=True)) == [events[3].event_id]
    assert [os.path.exists(path) for path in paths if path] == [False, False, True]
