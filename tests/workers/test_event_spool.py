"""The event writer through a database outage (workers/event_sink.py): events
are kept in memory, then in the spool file, stored in the order they were
submitted once the database answers, each exactly once with its crop; past the
spool's bound they are dropped and counted; a stop during the outage leaves them
in the spool for the next writer.

The outage is the store raising what Django raises when PostgreSQL is gone
(`django.db.OperationalError`); the launcher test kills the real server
(tests/site/test_outage_e2e.py). The writer has its own connection: transactional_db.
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pytest
from django.db import OperationalError

from analytics.plugins import EventRecord
from events import services as event_services
from events.models import Event
from workers import event_sink as sink_module
from workers.desired import DesiredStream
from workers.event_sink import EventSink

from .conftest import wait_for

transactional = pytest.mark.django_db(transaction=True)

DESIRED = DesiredStream(
    stream_id="5136c6c0916cd30c",
    node_num=0,
    name="Camera Lobby",
    address="rtsp://10.7.2.50:554/lobby",
    latitude=-6.261376,
    longitude=106.823648,
    active=True,
    pipelines=(),
)
SEEN_AT = datetime(2025, 1, 15, 8, 0, 0, tzinfo=UTC).timestamp()


def jpeg(n: int) -> bytes:
    ok, encoded = cv2.imencode(".jpg", np.full((24, 16, 3), (7 * n) % 256, dtype=np.uint8))
    assert ok
    return encoded.tobytes()


def submit(sink: EventSink, n: int) -> bool:
    record = EventRecord(primary_text=f"event {n}", pipeline_data={"n": n}, image_jpeg=jpeg(n))
    return sink.submit(record.for_stream(DESIRED, analytic_id="TEST-BRIGHT", emitted_at=SEEN_AT + n))


class FlakyStore:
    """events_create_batch as the writer calls it, with the database switched off
    and on by the test; records the order in which events were really stored."""

    def __init__(self):
        self.down = threading.Event()
        self.lose_next_commit = False
        self.stored: list[int] = []
        self.attempts = 0

    def __call__(self, *, records):
        self.attempts += 1
        if self.down.is_set():
            raise OperationalError('connection failed: connection to server on socket ".s.PGSQL.5432" failed')
        events = event_services.events_create_batch(records=records)
        self.stored.extend(event.pipeline_data["n"] for event in events)
        if self.lose_next_commit:
            # The COMMIT went through, but the connection died before its answer.
            self.lose_next_commit = False
            raise OperationalError("server closed the connection unexpectedly")
        return events


@pytest.fixture
def store(monkeypatch) -> FlakyStore:
    flaky = FlakyStore()
    monkeypatch.setattr(sink_module, "events_create_batch", flaky)
    return flaky


@pytest.fixture
def media_root(tmp_path, settings) -> Path:
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return Path(settings.MEDIA_ROOT)


@pytest.fixture
def sinks(tmp_path):
    made: list[EventSink] = []

    def make(**kwargs) -> EventSink:
        kwargs.setdefault("capacity", 10)
        kwargs.setdefault("batch_size", 4)
        kwargs.setdefault("batch_wait_s", 0)
        kwargs.setdefault("spool_dir", tmp_path / "spool")
        kwargs.setdefault("spool_max_bytes", 10 * 1024 * 1024)
        kwargs.setdefault("retry_initial_s", 0.05)
        kwargs.setdefault("retry_max_s", 0.2)
        sink = EventSink(**kwargs)
        made.append(sink)
        return sink

    yield make
    for sink in made:
        sink.stop(timeout=10)


def stored_crops_match(media_root: Path, count: int) -> None:
    files = sorted(media_root.rglob("*.jpg"))
    assert len(files) == count, "one crop per event, no copies, none orphaned"
    for event in Event.objects.all():
        with event.image.open("rb") as handle:
            assert handle.read() == jpeg(event.pipeline_data["n"])


@transactional
def test_an_outage_keeps_events_in_memory_then_the_spool_and_stores_them_in_order_once(
    store, sinks, media_root
):
    sink = sinks()
    store.down.set()
    assert submit(sink, 0)
    wait_for(lambda: sink.stats()["retries"] >= 1, what="the writer retrying event 0")
    assert all(submit(sink, n) for n in range(1, 40))

    stats = sink.stats()
    # Event 0 in the writer's hand, 1-10 in memory, 11-39 in the spool file.
    assert (stats["queued"], stats["spilled"], stats["spooled"], stats["dropped"]) == (10, 29, 29, 0)
    assert stats["written"] == 0 and stats["database_up"] is False
    assert len(sink.spool.path.read_bytes().splitlines()) == 29

    store.down.clear()
    # Events arriving while the spool is replayed go behind it.
    assert all(submit(sink, n) for n in range(40, 50))
    assert sink.flush(timeout=30)

    assert store.stored == list(range(50))
    assert sorted(Event.objects.values_list("pipeline_data__n", flat=True)) == list(range(50))
    stats = sink.stats()
    assert (stats["written"], stats["dropped"], stats["failed"], stats["spooled"]) == (50, 0, 0, 0)
    assert stats["replayed"] == stats["spilled"] >= 29
    assert stats["spool_bytes"] == 0 and sink.spool.path.stat().st_size == 0
    assert stats["database_up"] is True
    stored_crops_match(media_root, 50)


@transactional
def test_a_batch_whose_commit_answer_was_lost_is_stored_once(store, sinks, media_root):
    store.lose_next_commit = True
    sink = sinks(batch_wait_s=0.5)
    for n in range(6):
        submit(sink, n)
    assert sink.flush(timeout=30)
    assert store.attempts >= 2  # the batch was tried again
    assert Event.objects.count() == 6
    assert sorted(store.stored) == list(range(6))  # the retry stored nothing twice
    stats = sink.stats()
    assert (stats["written"], stats["failed"], stats["retries"]) == (6, 0, 1)
    stored_crops_match(media_root, 6)


@transactional
def test_past_the_spool_bound_events_are_dropped_and_counted(store, sinks, media_root):
    # The size of one spooled event, measured on a writer of its own.
    probe = sinks(spool_dir=media_root.parent / "probe-spool")
    store.down.set()
    submit(probe, 0)
    wait_for(lambda: probe.stats()["retries"] >= 1, what="the writer retrying")
    for n in range(1, 12):
        submit(probe, n)
    one_line = probe.stats()["spool_bytes"]
    assert one_line > 0
    probe.stop(timeout=10)

    sink = sinks(spool_max_bytes=int(one_line * 2.5))
    submit(sink, 0)
    wait_for(lambda: sink.stats()["retries"] >= 1, what="the writer retrying")
    accepted = [submit(sink, n) for n in range(1, 20)]
    # 1-10 in memory, 11-12 in the spool, 13-19 past its bound.
    assert accepted == [True] * 12 + [False] * 7
    assert (sink.stats()["dropped"], sink.stats()["spooled"]) == (7, 2)

    store.down.clear()
    assert sink.flush(timeout=30)
    stats = sink.stats()
    assert (stats["submitted"], stats["written"], stats["dropped"]) == (20, 13, 7)
    assert Event.objects.filter(pipeline_data__n__lte=12).count() == 13


@transactional
def test_a_stop_during_an_outage_leaves_the_events_to_the_next_writer(store, sinks, media_root, tmp_path):
    first = sinks()
    store.down.set()
    submit(first, 0)
    wait_for(lambda: first.stats()["retries"] >= 1, what="the writer retrying")
    for n in range(1, 16):
        submit(first, n)
    assert first.stop(timeout=10)
    assert first.stats()["dropped"] == 0
    spool = first.spool.path
    assert len(spool.read_bytes().splitlines()) == 16
    with spool.open("ab") as handle:
        handle.write(b'{"event_id": "cut short by a crash')

    store.down.clear()
    second = sinks()
    assert second.spool.path == spool
    assert second.flush(timeout=30)
    assert store.stored == list(range(16))
    assert Event.objects.count() == 16
    assert second.stats()["replayed"] == 16
    stored_crops_match(media_root, 16)


@transactional
def test_a_bad_event_during_replay_costs_only_itself(store, sinks, media_root):
    sink = sinks()
    store.down.set()
    submit(sink, 0)
    wait_for(lambda: sink.stats()["retries"] >= 1, what="the writer retrying")
    for n in range(1, 14):
        record = EventRecord(primary_text=f"event {n}", pipeline_data={"n": n}, image_jpeg=jpeg(n))
        if n == 12:  # in the spool: an embedding of the wrong size is refused by the database
            record = EventRecord(primary_text="bad", pipeline_data={"n": n}, embedding=[1.0, 2.0])
        sink.submit(record.for_stream(DESIRED, analytic_id="TEST-BRIGHT", emitted_at=SEEN_AT + n))
    store.down.clear()
    assert sink.flush(timeout=30)
    stats = sink.stats()
    assert (stats["written"], stats["failed"], stats["dropped"]) == (13, 1, 0)
    assert store.stored == [n for n in range(14) if n != 12]


@transactional
def test_a_spool_of_the_earlier_line_layout_is_replayed(store, sinks, media_root, tmp_path):
    """Lines written before events carried their stream (a worker upgraded during an
    outage): the analytic's record, its stream and the emitting frame's time beside them."""
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    lines = []
    for n in (1, 2):
        lines.append(
            json.dumps(
                {
                    "event_id": uuid.UUID(int=n).hex,
                    "image_name": "",
                    "analytic_id": "TEST-BRIGHT",
                    "timestamp": SEEN_AT + n,
                    "stream": {
                        "stream_id": DESIRED.stream_id,
                        "node_num": 0,
                        "name": "Camera Lobby",
                        "address": DESIRED.address,
                        "latitude": DESIRED.latitude,
                        "longitude": DESIRED.longitude,
                    },
                    "record": {
                        "primary_text": f"event {n}",
                        "secondary_text": "",
                        "pipeline_data": {"n": n},
                        "image_jpeg": base64.b64encode(jpeg(n)).decode(),
                        "embedding": None,
                        "search_text": "",
                        "timestamp": None if n == 1 else SEEN_AT - 5,
                    },
                }
            )
        )
    (spool_dir / "events.jsonl").write_text("\n".join(lines) + "\n")
    sink = sinks()
    assert sink.flush(timeout=30)
    assert sink.stats()["replayed"] == 2
    events = {event.pipeline_data["n"]: event for event in Event.objects.all()}
    assert events[1].event_id == uuid.UUID(int=1) and events[1].timestamp.timestamp() == SEEN_AT + 1
    assert events[2].timestamp.timestamp() == SEEN_AT - 5  # the record's own time wins
    assert {event.stream_name for event in events.values()} == {"Camera Lobby"}
    stored_crops_match(media_root, 2)
