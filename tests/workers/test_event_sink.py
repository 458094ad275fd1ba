"""The batched event writer (workers/event_sink.py): events from runner threads
are stored in batches (one transaction each), published live after commit,
dropped and counted when the queue is full, and a bad event costs only itself.

The writer runs in its own thread with its own database connection, so these
tests commit (transactional_db)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pytest
from asgiref.sync import async_to_sync

from analytics.plugins import EventRecord
from events import services as event_services
from events.models import Event
from tests.events.websocket import WebsocketCommunicator
from visionaire_site.asgi import application
from workers import event_sink as sink_module
from workers.desired import DesiredStream
from workers.event_sink import EventSink

from .conftest import wait_for

transactional = pytest.mark.django_db(transaction=True)

LOBBY = "5136c6c0916cd30c"
DESIRED = DesiredStream(
    stream_id=LOBBY,
    node_num=0,
    name="Camera Lobby",
    address="rtsp://10.7.2.50:554/lobby",
    latitude=-6.261376,
    longitude=106.823648,
    active=True,
    pipelines=(),
)
SEEN_AT = datetime(2025, 1, 15, 8, 0, 0, tzinfo=UTC).timestamp()


@pytest.fixture
def media_root(tmp_path, settings) -> Path:
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return Path(settings.MEDIA_ROOT)


@pytest.fixture
def sinks():
    """Sinks made here are flushed after the test (their threads are daemons)."""
    made: list[EventSink] = []

    def make(**kwargs) -> EventSink:
        sink = EventSink(**kwargs)
        made.append(sink)
        return sink

    yield make
    for sink in made:
        assert sink.stop(timeout=10)


def jpeg(shade: int) -> bytes:
    ok, encoded = cv2.imencode(".jpg", np.full((24, 16, 3), shade, dtype=np.uint8))
    assert ok
    return encoded.tobytes()


def record(n: int, **fields) -> EventRecord:
    fields.setdefault("primary_text", f"Person {n}")
    fields.setdefault("secondary_text", "Employee")
    fields.setdefault("pipeline_data", {"status": "KNOWN", "n": n})
    fields.setdefault("image_jpeg", jpeg(10 * n))
    fields.setdefault("embedding", [float(n)] + [0.0] * 127)
    return EventRecord(**fields)


def submit(sink: EventSink, rec: EventRecord, timestamp: float = SEEN_AT) -> bool:
    return sink.submit(rec.for_stream(DESIRED, analytic_id="NFV4-FR", emitted_at=timestamp))


@transactional
def test_events_are_stored_in_batches_with_crops_embedding_and_search_text(sinks, media_root):
    # A long wait gathers the five quick submissions into batches of at most three.
    sink = sinks(capacity=100, batch_size=3, batch_wait_s=1.0)
    for n in range(1, 6):
        assert submit(sink, record(n), timestamp=SEEN_AT + n)
    assert sink.flush(timeout=10)
    stats = sink.stats()
    assert stats == {
        "queued": 0,
        "capacity": 100,
        "submitted": 5,
        "written": 5,
        "dropped": 0,
        "failed": 0,
        "batches": 2,
        "last_batch_size": 2,
        "last_batch_ms": stats["last_batch_ms"],
        "spilled": 0,
        "replayed": 0,
        "spooled": 0,
        "spool_bytes": 0,
        "retries": 0,
        "database_up": True,
    }
    events = list(Event.objects.order_by("timestamp"))
    assert [(e.primary_text, e.search_text, e.timestamp.timestamp()) for e in events] == [
        (f"Person {n}", f"Person {n} Employee Camera Lobby", SEEN_AT + n) for n in range(1, 6)
    ]
    for n, event in enumerate(events, start=1):
        assert event.pipeline_data == {"event_id": str(event.event_id), "status": "KNOWN", "n": n}
        assert (event.stream_id, event.stream_name, event.node_num) == (LOBBY, "Camera Lobby", 0)
        assert list(event.embedding) == [float(n)] + [0.0] * 127
        with event.image.open("rb") as handle:
            assert handle.read() == jpeg(10 * n)


@transactional
def test_the_record_timestamp_wins_over_the_emitting_frame(sinks, media_root):
    sink = sinks(capacity=10, batch_size=10, batch_wait_s=0)
    submit(sink, record(1, timestamp=SEEN_AT - 1.5, image_jpeg=b""), timestamp=SEEN_AT)
    assert sink.flush(timeout=10)
    event = Event.objects.get()
    assert event.timestamp.timestamp() == SEEN_AT - 1.5
    assert not event.image


@transactional
def test_numpy_numbers_in_an_analytics_data_are_stored_as_json_numbers(sinks, media_root):
    # As an analytic's arithmetic leaves them (a polygon's corners in float32, a count in int64).
    data = {"box": {"left": np.float32(0.25)}, "counts": (np.int64(3), 4), "grid": np.zeros((2, 2), np.int32)}
    sink = sinks(capacity=10, batch_size=10, batch_wait_s=0)
    assert submit(sink, record(1, pipeline_data=data))
    assert sink.flush(timeout=10)
    assert sink.stats()["failed"] == 0
    event = Event.objects.get()
    expected = {"box": {"left": 0.25}, "counts": [3, 4], "grid": [[0, 0], [0, 0]]}
    assert event.pipeline_data == {"event_id": str(event.event_id), **expected}
    assert all(type(v) is int for v in event.pipeline_data["counts"])


@transactional
def test_a_full_queue_drops_and_counts(sinks, media_root, monkeypatch):
    entered, release = threading.Event(), threading.Event()
    real = event_services.events_create_batch

    def slow_store(*, records):
        entered.set()
        release.wait(10)
        return real(records=records)

    monkeypatch.setattr(sink_module, "events_create_batch", slow_store)
    sink = sinks(capacity=10, batch_size=1, batch_wait_s=0)
    assert submit(sink, record(0))
    assert entered.wait(10)  # the writer holds event 0; the queue is empty again
    accepted = [submit(sink, record(n)) for n in range(1, 13)]
    assert accepted == [True] * 10 + [False] * 2
    assert sink.stats()["dropped"] == 2
    assert sink.stats()["queued"] == 10
    release.set()
    assert sink.flush(timeout=20)
    stats = sink.stats()
    assert (stats["written"], stats["dropped"], stats["failed"], stats["queued"]) == (11, 2, 0, 0)
    assert Event.objects.count() == 11


@transactional
def test_a_bad_event_costs_only_itself_and_leaves_no_crop(sinks, media_root):
    sink = sinks(capacity=10, batch_size=10, batch_wait_s=1.0)
    submit(sink, record(1))
    submit(sink, record(2, embedding=[1.0, 2.0, 3.0]))  # not 128 dimensions: the row is refused
    submit(sink, record(3))
    assert sink.flush(timeout=10)
    stats = sink.stats()
    assert (stats["written"], stats["failed"], stats["batches"]) == (2, 1, 1)
    assert sorted(Event.objects.values_list("primary_text", flat=True)) == ["Person 1", "Person 3"]
    stored = sorted(path.name for path in media_root.rglob("*.jpg"))
    assert stored == sorted(Path(e.image.name).name for e in Event.objects.all())


@transactional
def test_a_batch_is_published_live_in_order_after_commit(sinks, media_root):
    async def body():
        client = WebsocketCommunicator(application, "/event_channel?include_image=false")
        connected, _ = await client.connect(timeout=5)
        assert connected
        sink = sinks(capacity=10, batch_size=10, batch_wait_s=0.5)
        for n in (1, 2, 3):
            submit(sink, record(n))
        received = [await client.receive_json_from(timeout=10) for _ in range(3)]
        events = {str(e.event_id): e for e in await _all_events()}
        assert [m["primary_text"] for m in received] == ["Person 1", "Person 2", "Person 3"]
        for message in received:
            # Every message names a row that was committed before it was sent.
            assert message["pipeline_data"]["event_id"] in events
            assert message == {
                "analytic_id": "NFV4-FR",
                "node_num": 0,
                "stream_id": LOBBY,
                "stream_name": "Camera Lobby",
                "stream_address": "rtsp://10.7.2.50:554/lobby",
                "stream_latitude": -6.261376,
                "stream_longitude": 106.823648,
                "timestamp": int(SEEN_AT),
                "primary_text": message["primary_text"],
                "secondary_text": "Employee",
                "pipeline_data": message["pipeline_data"],
            }
        await client.disconnect()

    async_to_sync(body)()
    assert wait_for(lambda: Event.objects.count() == 3, what="three stored events")


@transactional
def test_stop_stores_what_is_queued_then_refuses(media_root):
    sink = EventSink(capacity=10, batch_size=2, batch_wait_s=0.5)
    for n in (1, 2, 3):
        submit(sink, record(n))
    assert sink.stop(timeout=10)
    assert Event.objects.count() == 3
    assert submit(sink, record(4)) is False
    assert (sink.stats()["written"], sink.stats()["dropped"]) == (3, 1)


async def _all_events() -> list[Event]:
    from channels.db import database_sync_to_async

    return await database_sync_to_async(lambda: list(Event.objects.all()))()


def test_settings_shape_the_process_sink(settings):
    settings.EVENT_QUEUE_CAPACITY = 37
    settings.EVENT_BATCH_SIZE = 7
    settings.EVENT_BATCH_WAIT_MS = 20
    sink_module.event_sink_forget()
    try:
        assert sink_module.event_sink_started() is None
        sink = sink_module.event_sink()
        assert (sink.capacity, sink.batch_size, sink.batch_wait_s) == (37, 7, 0.02)
        assert sink_module.event_sink_started() is sink
        assert sink.stop(timeout=5)
    finally:
        sink_module.event_sink_forget()
