"""GET /events, /events/{event_id}, /events/{event_id}/image.jpg and event_create."""

from __future__ import annotations

import base64
import json
import os
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.core.files.storage import default_storage
from django.db import DataError, connection

from events.models import Event
from events.services import event_create

from .conftest import ANALYTIC, stream_make

T0 = datetime(2025, 1, 15, 8, 0, 0, tzinfo=UTC)
T0_MS = 1736928000000


def body_of(event: Event) -> dict:
    return {
        "event_id": str(event.event_id),
        "stream_id": event.stream_id,
        "analytic_id": event.analytic_id,
        "node_num": event.node_num,
        "timestamp_ms": int((event.timestamp - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(milliseconds=1)),
        "primary_text": event.primary_text,
        "secondary_text": event.secondary_text,
        "pipeline_data": event.pipeline_data,
        "image_url": f"/events/{event.event_id}/image.jpg" if event.image else None,
    }


def events_make(count: int, *, stream_id: str = "5136c6c0916cd30c", analytic_id: str = ANALYTIC, **fields):
    """Rows without crops, one millisecond apart from T0, oldest first."""
    rows = [
        Event(
            stream_id=stream_id,
            node_num=0,
            analytic_id=analytic_id,
            timestamp=T0 + timedelta(milliseconds=index),
            primary_text=f"person {index}",
            pipeline_data={"index": index},
            **fields,
        )
        for index in range(count)
    ]
    return Event.objects.bulk_create(rows)


@pytest.fixture
def stream(db):
    return stream_make()


# --- event_create --------------------------------------------------------------------------


def test_event_create_stores_row_and_crop(stream, media_root, jpeg):
    event = event_create(
        stream=stream,
        analytic_id=ANALYTIC,
        timestamp=T0,
        primary_text="John Doe",
        secondary_text="Employee",
        pipeline_data={"status": "KNOWN", "similarity": 0.92},
        image_jpeg=jpeg,
        search_text="john doe employee camera lobby",
    )
    stored = Event.objects.get(event_id=event.event_id)
    assert stored.stream_name == "Camera Lobby"
    assert stored.node_num == 0
    assert stored.pipeline_data == {"event_id": str(event.event_id), "status": "KNOWN", "similarity": 0.92}
    assert stored.image.name.endswith(f"{event.event_id.hex}.jpg")
    with default_storage.open(stored.image.name, "rb") as handle:
        assert handle.read() == jpeg


def test_event_create_keeps_an_analytic_event_id(stream, media_root):
    event = event_create(
        stream=stream,
        analytic_id=ANALYTIC,
        timestamp=T0,
        pipeline_data={"event_id": "track-7"},
        image_jpeg=None,
    )
    assert Event.objects.get().pipeline_data == {"event_id": "track-7"}
    assert not event.image


def test_event_create_failure_leaves_no_row_and_no_crop(stream, media_root, jpeg):
    with pytest.raises(DataError):
        event_create(
            stream=stream, analytic_id="X" * 41, timestamp=T0, pipeline_data={}, image_jpeg=jpeg
        )  # analytic_id is at most 40 characters
    assert Event.objects.count() == 0
    assert [name for _, _, names in os.walk(media_root) for name in names] == []


# --- GET /events ---------------------------------------------------------------------------


def test_list_empty(api, db):
    response = api.get("/events")
    assert response.status_code == 200
    assert response.json() == {"code": 200, "message": "success", "events": [], "next_cursor": None}


def test_list_whole_body_newest_first_with_image_url(api, stream, media_root, jpeg):
    older = event_create(
        stream=stream,
        analytic_id=ANALYTIC,
        timestamp=T0,
        primary_text="John Doe",
        secondary_text="Employee",
        pipeline_data={"status": "KNOWN"},
        image_jpeg=jpeg,
    )
    newer = event_create(
        stream=stream,
        analytic_id=ANALYTIC,
        timestamp=T0 + timedelta(seconds=1),
        pipeline_data={},
        image_jpeg=None,
    )
    response = api.get("/events")
    assert response.status_code == 200
    assert response.json() == {
        "code": 200,
        "message": "success",
        "events": [
            {
                "event_id": str(newer.event_id),
                "stream_id": "5136c6c0916cd30c",
                "analytic_id": ANALYTIC,
                "node_num": 0,
                "timestamp_ms": T0_MS + 1000,
                "primary_text": "",
                "secondary_text": "",
                "pipeline_data": {"event_id": str(newer.event_id)},
                "image_url": None,
            },
            {
                "event_id": str(older.event_id),
                "stream_id": "5136c6c0916cd30c",
                "analytic_id": ANALYTIC,
                "node_num": 0,
                "timestamp_ms": T0_MS,
                "primary_text": "John Doe",
                "secondary_text": "Employee",
                "pipeline_data": {"event_id": str(older.event_id), "status": "KNOWN"},
                "image_url": f"/events/{older.event_id}/image.jpg",
            },
        ],
        "next_cursor": None,
    }


def test_cursor_pages_cover_every_event_once_in_order_even_with_equal_timestamps(api, db):
    rows = Event.objects.bulk_create(
        [
            Event(
                stream_id="5136c6c0916cd30c",
                node_num=0,
                analytic_id=ANALYTIC,
                timestamp=T0 + timedelta(seconds=n // 3),
            )
            for n in range(7)
        ]
    )
    expected = sorted(rows, key=lambda event: (event.timestamp, event.event_id), reverse=True)
    pages, cursor = [], None
    while True:
        response = api.get("/events", {"limit": 3, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200
        body = response.json()
        pages.append([event["event_id"] for event in body["events"]])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert [len(page) for page in pages] == [3, 3, 1]
    assert [event_id for page in pages for event_id in page] == [str(event.event_id) for event in expected]


def test_cursor_on_exact_page_boundary_ends_with_null(api, db):
    events_make(4)
    first = api.get("/events?limit=2").json()
    second = api.get(f"/events?limit=2&cursor={first['next_cursor']}").json()
    assert len(second["events"]) == 2
    assert second["next_cursor"] is None


def test_default_limit_is_50(api, db):
    events_make(51)
    body = api.get("/events").json()
    assert len(body["events"]) == 50
    assert body["next_cursor"] is not None


def test_filters(api, db):
    events_make(3, stream_id="5136c6c0916cd30c", analytic_id="NFV4-FR")
    other_stream = events_make(2, stream_id="0000000000000001", analytic_id="NFV4-FR")
    other_analytic = events_make(1, stream_id="5136c6c0916cd30c", analytic_id="NFV4-PC")

    def ids(query: str) -> set[str]:
        response = api.get(f"/events?{query}")
        assert response.status_code == 200, response.json()
        return {event["event_id"] for event in response.json()["events"]}

    assert ids("stream_id=0000000000000001") == {str(event.event_id) for event in other_stream}
    assert ids("analytic_id=NFV4-PC") == {str(event.event_id) for event in other_analytic}
    assert len(ids("stream_id=5136c6c0916cd30c&analytic_id=NFV4-FR")) == 3
    # from_ms and to_ms are inclusive: T0+1 and T0+2 ms are kept, T0 is not.
    assert len(ids(f"from_ms={T0_MS + 1}&to_ms={T0_MS + 1}")) == 2
    assert len(ids(f"from_ms={T0_MS + 2}")) == 1
    assert len(ids(f"to_ms={T0_MS}")) == 3


def test_q_matches_search_text_case_insensitively(api, db):
    matching = Event.objects.create(
        stream_id="5136c6c0916cd30c",
        node_num=0,
        analytic_id=ANALYTIC,
        timestamp=T0,
        search_text="John Doe employee Camera Lobby",
    )
    Event.objects.create(
        stream_id="5136c6c0916cd30c", node_num=0, analytic_id=ANALYTIC, timestamp=T0, search_text="Jane Roe"
    )
    # Regex characters are taken literally.
    literal = Event.objects.create(
        stream_id="5136c6c0916cd30c", node_num=0, analytic_id=ANALYTIC, timestamp=T0, search_text="j.hn"
    )
    body = api.get("/events", {"q": "JOHN d"}).json()
    assert [event["event_id"] for event in body["events"]] == [str(matching.event_id)]
    body = api.get("/events", {"q": "J.HN"}).json()
    assert [event["event_id"] for event in body["events"]] == [str(literal.event_id)]
    assert api.get("/events", {"q": "(*"}).json()["events"] == []


def test_q_can_use_the_trigram_index(db):
    # The filter event_list builds for `q`.
    queryset = Event.objects.filter(search_text__iregex="john")
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        # Nor a walk of the timestamp index for the ordering, which the planner may
        # prefer on a table its statistics say is tiny (after other tests' commits).
        cursor.execute("SET LOCAL enable_indexscan = off")
        plan = queryset.explain()
    assert "event_search_trgm" in plan


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("limit=0", "limit: Ensure this value is greater than or equal to 1."),
        ("limit=501", "limit: Ensure this value is less than or equal to 500."),
        ("limit=ten", "limit: A valid integer is required."),
        ("from_ms=yesterday", "from_ms: A valid integer is required."),
        ("to_ms=1.5", "to_ms: A valid integer is required."),
        ("from_ms=-1", "from_ms: Ensure this value is greater than or equal to 0."),
        ("to_ms=999999999999999999", "to_ms: Ensure this value is less than or equal to 253402300799999."),
        (f"from_ms={T0_MS + 1}&to_ms={T0_MS}", "from_ms: it must not be after to_ms"),
        ("stream_id=XYZ", "stream_id: it must be 16 lowercase hex characters"),
        ("stream_id=5136C6C0916CD30C", "stream_id: it must be 16 lowercase hex characters"),
        ("analytic_id=" + "A" * 41, "analytic_id: Ensure this field has no more than 40 characters."),
        ("q=a%00b", "q: must not contain NUL characters"),
        ("q=a%01b", "q: it must not contain control characters"),
        ("q=" + "a" * 201, "q: Ensure this field has no more than 200 characters."),
        ("page=2&sort=asc", "unknown query parameter(s): page, sort"),
        ("limit=1&limit=2", "query parameter(s) given more than once: limit"),
    ],
)
def test_list_bad_parameters(api, db, query, message):
    response = api.get(f"/events?{query}")
    assert response.status_code == 400
    assert response.json() == {"code": 400, "message": message}


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "not-a-cursor!",
        "abc",
        _b64(b"not json"),
        _b64(b"[1, 2]"),
        _b64(json.dumps({"ts": 1, "id": "nope"}).encode()),
        _b64(json.dumps({"ts": "1", "id": "7c0e2b9a-6f4d-4b8e-9d3a-2f1e5c7b8a90"}).encode()),
        _b64(json.dumps({"ts": -5, "id": "7c0e2b9a-6f4d-4b8e-9d3a-2f1e5c7b8a90"}).encode()),
        _b64(json.dumps({"ts": 1, "id": "7c0e2b9a-6f4d-4b8e-9d3a-2f1e5c7b8a90", "extra": 1}).encode()),
        _b64(json.dumps({"ts": 10**30, "id": "7c0e2b9a-6f4d-4b8e-9d3a-2f1e5c7b8a90"}).encode()),
        _b64(b"\xff\xfe"),
    ],
)
def test_list_tampered_cursor(api, db, cursor):
    response = api.get("/events", {"cursor": cursor})
    assert response.status_code == 400
    assert response.json() == {
        "code": 400,
        "message": "invalid cursor: pass the next_cursor of a previous page unchanged",
    }


@pytest.mark.parametrize("count", [1, 200])
def test_list_query_count_is_constant(api, db, count, django_assert_num_queries):
    events_make(count)
    with django_assert_num_queries(1):
        response = api.get("/events?limit=500")
    assert len(response.json()["events"]) == count


# --- GET /events/{event_id} ----------------------------------------------------------------


def test_detail(api, stream, media_root, jpeg):
    event = event_create(
        stream=stream,
        analytic_id=ANALYTIC,
        timestamp=T0,
        primary_text="John Doe",
        pipeline_data={},
        image_jpeg=jpeg,
    )
    response = api.get(f"/events/{event.event_id}")
    assert response.status_code == 200
    assert response.json() == {
        "code": 200,
        "message": "success",
        "event": {
            "event_id": str(event.event_id),
            "stream_id": "5136c6c0916cd30c",
            "analytic_id": ANALYTIC,
            "node_num": 0,
            "timestamp_ms": T0_MS,
            "primary_text": "John Doe",
            "secondary_text": "",
            "pipeline_data": {"event_id": str(event.event_id)},
            "image_url": f"/events/{event.event_id}/image.jpg",
        },
    }
    assert response.json()["event"] == body_of(Event.objects.get())


def test_detail_malformed_and_unknown(api, db):
    response = api.get("/events/not-a-uuid")
    assert response.status_code == 400
    assert response.json() == {"code": 400, "message": "invalid event_id 'not-a-uuid': it must be a UUID"}
    response = api.get(f"/events/{uuid.UUID(int=1)}")
    assert response.status_code == 404
    assert response.json() == {"code": 404, "message": "event not found"}


def test_detail_wrong_method(api, db):
    response = api.delete(f"/events/{uuid.UUID(int=1)}")
    assert response.status_code == 405
    assert response.json() == {"code": 405, "message": "method DELETE not allowed"}


# --- GET /events/{event_id}/image.jpg ------------------------------------------------------


def test_image(api, stream, media_root, jpeg):
    event = event_create(stream=stream, analytic_id=ANALYTIC, timestamp=T0, pipeline_data={}, image_jpeg=jpeg)
    response = api.get(f"/events/{event.event_id}/image.jpg", HTTP_ACCEPT="image/jpeg")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    assert b"".join(response.streaming_content) == jpeg


def test_image_errors(api, stream, media_root, jpeg):
    without = event_create(
        stream=stream, analytic_id=ANALYTIC, timestamp=T0, pipeline_data={}, image_jpeg=None
    )
    # An <img> asks for images; the error still comes as the contract's JSON, not a 406.
    response = api.get(f"/events/{without.event_id}/image.jpg", HTTP_ACCEPT="image/avif,image/webp")
    assert response.status_code == 404
    assert response.json() == {"code": 404, "message": "event image not found"}

    response = api.get(f"/events/{uuid.UUID(int=1)}/image.jpg")
    assert response.status_code == 404
    assert response.json() == {"code": 404, "message": "event not found"}

    response = api.get("/events/123/image.jpg")
    assert response.status_code == 400
    assert response.json() == {"code": 400, "message": "invalid event_id '123': it must be a UUID"}

    # The row outlived its file.
    gone = event_create(stream=stream, analytic_id=ANALYTIC, timestamp=T0, pipeline_data={}, image_jpeg=jpeg)
    default_storage.delete(gone.image.name)
    response = api.get(f"/events/{gone.event_id}/image.jpg")
    assert response.status_code == 404
    assert response.json() == {"code": 404, "message": "event image not found"}


# --- admin ---------------------------------------------------------------------------------


def test_admin_lists_and_shows_events_read_only(admin_client, stream, media_root, jpeg):
    event = event_create(
        stream=stream,
        analytic_id=ANALYTIC,
        timestamp=T0,
        primary_text="John Doe",
        pipeline_data={},
        image_jpeg=jpeg,
    )
    response = admin_client.get("/admin/events/event/", {"q": "John"})
    assert response.status_code == 200
    assert b"John Doe" in response.content
    response = admin_client.get(f"/admin/events/event/{event.event_id}/change/")
    assert response.status_code == 200
    # The crop, served by the image view behind the admin's login.
    assert f'<img src="/admin/events/event/{event.event_id}/crop.jpg"'.encode() in response.content
    assert (
        b"".join(admin_client.get(f"/admin/events/event/{event.event_id}/crop.jpg").streaming_content) == jpeg
    )
    assert b'name="primary_text"' not in response.content  # nothing editable
    assert admin_client.get("/admin/events/event/add/").status_code == 403
