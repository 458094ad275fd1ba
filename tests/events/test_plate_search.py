"""POST /smart-search with type text finds plate events by plate number (spacing,
case and OCR confusions aside) and by the owner or status of registered vehicles.
Plate events are stored as the plate analytic stores them (ANALYTICS.md shapes)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest

from events.models import Event
from events.search import plate_query_key
from events.services import event_create, search_text_compose
from vehicles import services as vehicle_services

from .conftest import stream_make

pytestmark = pytest.mark.django_db

PLATES = "NFV4-LPR3"
GATE = "0123456789abcdef"
LOBBY = "5136c6c0916cd30c"
T0 = datetime(2025, 1, 15, 8, 0, tzinfo=UTC)
T0_MS = 1736928000000


def plate_event(stream, minute: int, read: str, jpeg: bytes, label: str = "car") -> Event:
    return event_create(
        stream=stream,
        analytic_id=PLATES,
        timestamp=T0 + timedelta(minutes=minute),
        primary_text=label,
        secondary_text=read,
        pipeline_data={
            "area_name": "Entrance",
            "bounding_box": {"left": 0.25, "top": 0.4, "width": 0.3, "height": 0.35},
            "confidence": 0.91,
            "label": label,
            "plate_number": read,
        },
        image_jpeg=jpeg,
        search_text=label,
    )


@pytest.fixture
def passes(media_root, jpeg):
    gate = stream_make(GATE, name="Camera Gate")
    lobby = stream_make(LOBBY, name="Camera Lobby")
    return {
        "ls15": plate_event(gate, 0, "LS15 EBC", jpeg),
        "lsi5": plate_event(lobby, 1, "LSI5EBC", jpeg),  # the same plate, read with a confusion
        "b1234": plate_event(gate, 2, "B 1234 XYZ", jpeg, label="truck"),
        "k99": plate_event(lobby, 3, "K 99 AB", jpeg),
    }


def result(event: Event, similarity: float, jpeg: bytes) -> dict:
    return {
        "stream_id": event.stream_id,
        "analytic_id": PLATES,
        "node_num": 0,
        "timestamp_ms": T0_MS + 60_000 * int((event.timestamp - T0).total_seconds() // 60),
        "similarity": similarity,
        "image_jpeg": base64.b64encode(jpeg).decode(),
        "primary_text": event.primary_text,
        "secondary_text": event.secondary_text,
    }


def search(api, query: str, **options) -> list[dict]:
    response = api.post("/smart-search", {"type": "text", "query": query, **options})
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["code"], body["message"]) == (200, "success")
    return body["results"]


def test_plate_events_carry_the_plate_key(passes):
    texts = {key: Event.objects.get(pk=event.pk).search_text for key, event in passes.items()}
    assert texts == {
        "ls15": "car LS15 EBC Camera Gate L515E8C",
        "lsi5": "car LSI5EBC Camera Lobby L515E8C",
        "b1234": "truck B 1234 XYZ Camera Gate 81234XY2",
        "k99": "car K 99 AB Camera Lobby K99A8",
    }


def test_search_text_compose():
    assert search_text_compose("car", "car", "LS15 EBC", "Gate", plate_number="LS15 EBC") == (
        "car LS15 EBC Gate L515E8C"
    )
    # Written once, as a word of its own; no plate, no key.
    assert search_text_compose("L515E8C", plate_number="ls15ebc") == "L515E8C"
    assert search_text_compose("XL515E8C", plate_number="ls15ebc") == "XL515E8C L515E8C"
    assert search_text_compose("face", "John", plate_number=None) == "face John"
    assert search_text_compose("face", plate_number=12) == "face"
    assert search_text_compose("", plate_number="--") == ""


@pytest.mark.parametrize("query", ["LS15EBC", "ls15 ebc", "LSI5EBC", "LS15-EBC", "l5i5 e8c"])
def test_a_plate_is_found_whatever_its_spelling(api, passes, jpeg, query):
    # Both passes of the plate, at full similarity, newest first; no other plate.
    assert search(api, query) == [result(passes["lsi5"], 1.0, jpeg), result(passes["ls15"], 1.0, jpeg)]


def test_a_plate_missing_its_last_character_is_still_found(api, passes, jpeg):
    found = search(api, "LS15EB")
    assert [hit["secondary_text"] for hit in found] == ["LSI5EBC", "LS15 EBC"]
    assert all(0.5 < hit["similarity"] < 1.0 for hit in found)


def test_plate_search_keeps_the_filters(api, passes, jpeg):
    assert search(api, "LSI5EBC", stream_ids=[GATE]) == [result(passes["ls15"], 1.0, jpeg)]
    assert search(api, "LSI5EBC", analytic_ids=["NFV4-FR"]) == []
    assert search(api, "B1234XYZ", to_ms=T0_MS + 60_000) == []
    assert search(api, "b 1234 xyz", limit=1) == [result(passes["b1234"], 1.0, jpeg)]


@pytest.fixture
def registered(db):
    gate = vehicle_services.list_create(name="gate")
    vehicle_services.vehicle_create(
        vehicle_list=gate, plate_number="LS15 EBC", name="Alice Walker", status="blacklist"
    )
    vehicle_services.vehicle_create(
        vehicle_list=gate, plate_number="B 1234 XYZ", name="Budi Santoso", status="whitelist"
    )
    vehicle_services.vehicle_create(
        vehicle_list=gate, plate_number="Z 777 ZZ", name="Alice Cooper", status="whitelist"
    )


def test_events_of_registered_vehicles_are_found_by_owner_and_status(api, passes, registered, jpeg):
    both_ls15 = [result(passes["lsi5"], 1.0, jpeg), result(passes["ls15"], 1.0, jpeg)]
    assert search(api, "Alice Walker") == both_ls15
    assert search(api, "walker") == both_ls15
    assert search(api, "BLACKLIST") == both_ls15
    assert search(api, "whitelist") == [result(passes["b1234"], 1.0, jpeg)]
    assert search(api, "Budi Santoso", stream_ids=[LOBBY]) == []
    # A misspelt owner: found, less similar.
    found = search(api, "Alice Walkr")
    assert [hit["secondary_text"] for hit in found] == ["LSI5EBC", "LS15 EBC"]
    assert all(0.5 < hit["similarity"] < 1.0 for hit in found)
    assert search(api, "Nobody Registered") == []


@pytest.mark.parametrize(
    ("query", "key"),
    [
        ("LS15EBC", "l515e8c"),
        ("ls15 ebc", "l515e8c"),
        ("B 1234 XYZ", "81234xy2"),
        ("b-1234-xyz", "81234xy2"),
        ("1234", "1234"),
        ("John Doe", None),  # no digit
        ("Camera 2 at the gate", None),  # more words than a plate has
        ("B", None),
        ("1234567890123456", None),  # longer than any plate
    ],
)
def test_which_queries_may_be_plates(query, key):
    assert plate_query_key(query) == key
