"""Retention (events.retention): retention_days and max_events_per_stream enforced
in batches, crops removed with their rows, /database/stats and /config/database."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from django.conf import settings as django_settings
from django.core.files.storage import default_storage
from django.utils import timezone

from events.models import Event
from events.retention import events_retention_run
from events.services import event_create
from events.tasks import retention_run
from live.keys import RETENTION_LOCK_KEY

from .conftest import ANALYTIC, stream_make

pytestmark = pytest.mark.django_db

OTHER = "0123456789abcdef"


@pytest.fixture
def streams(media_root):
    return stream_make(), stream_make(OTHER, name="Camera Gate")


def stored(stream, timestamp: datetime, jpeg: bytes, text: str = "") -> Event:
    return event_create(
        stream=stream,
        analytic_id=ANALYTIC,
        timestamp=timestamp,
        primary_text=text,
        pipeline_data={},
        image_jpeg=jpeg,
    )


def crop_exists(event: Event) -> bool:
    return default_storage.exists(event.image.name)


def remaining() -> set:
    return set(Event.objects.values_list("event_id", flat=True))


def config_put(api, **values) -> None:
    response = api.put("/config/database", values)
    assert response.status_code == 200, response.content


def test_expired_events_and_their_crops_are_removed(api, streams, jpeg):
    lobby, gate = streams
    now = timezone.now()
    config_put(api, retention_days=7, max_events_per_stream=1000)
    old = [stored(lobby, now - timedelta(days=8), jpeg), stored(gate, now - timedelta(days=30), jpeg)]
    # Just inside the window, and one a second past it.
    kept = [stored(lobby, now - timedelta(days=7) + timedelta(seconds=5), jpeg), stored(gate, now, jpeg)]
    edge = stored(lobby, now - timedelta(days=7, seconds=1), jpeg)
    assert api.get("/database/stats").json()["event_count"] == 5

    report = events_retention_run(now=now)

    assert (report.expired, report.over_cap, report.files_removed, report.complete) == (3, 0, 3, True)
    assert remaining() == {event.event_id for event in kept}
    assert not any(crop_exists(event) for event in [*old, edge])
    assert all(crop_exists(event) for event in kept)
    assert api.get("/database/stats").json()["event_count"] == 2


def test_events_over_the_per_stream_cap_go_oldest_first(api, streams, jpeg):
    lobby, gate = streams
    now = timezone.now()
    config_put(api, retention_days=30, max_events_per_stream=3)
    lobby_events = [stored(lobby, now - timedelta(minutes=10 - i), jpeg) for i in range(5)]
    gate_events = [stored(gate, now - timedelta(minutes=5 - i), jpeg) for i in range(3)]

    report = events_retention_run(now=now)

    assert (report.expired, report.over_cap, report.files_removed) == (0, 2, 2)
    assert remaining() == {e.event_id for e in lobby_events[2:] + gate_events}
    assert [crop_exists(e) for e in lobby_events] == [False, False, True, True, True]
    assert all(crop_exists(e) for e in gate_events)
    assert api.get("/database/stats").json()["event_count"] == 6


def test_cap_ranks_events_of_the_same_instant_by_id(api, streams, jpeg):
    """Several events at one timestamp: exactly `cap` stay, whatever the tie."""
    lobby, _ = streams
    now = timezone.now()
    config_put(api, max_events_per_stream=2)
    same = [stored(lobby, now, jpeg) for _ in range(4)]
    events_retention_run(now=now)
    kept = sorted(same, key=lambda e: e.event_id.hex)[-2:]
    assert remaining() == {e.event_id for e in kept}


def test_a_config_change_applies_on_the_next_run(api, streams, jpeg):
    lobby, _ = streams
    now = timezone.now()
    events = [stored(lobby, now - timedelta(days=days), jpeg) for days in (20, 10, 5, 1)]
    config_put(api, retention_days=30, max_events_per_stream=100)
    assert events_retention_run(now=now).removed == 0
    assert len(remaining()) == 4

    config_put(api, retention_days=8)
    report = events_retention_run(now=now)
    assert (report.expired, report.over_cap) == (2, 0)
    assert remaining() == {e.event_id for e in events[2:]}

    # /config/platform's event_retention_days is the same setting.
    assert api.post("/config/platform", {"event_retention_days": 2}).status_code == 200
    assert events_retention_run(now=now).expired == 1

    config_put(api, max_events_per_stream=1)
    assert events_retention_run(now=now).over_cap == 0  # one left already
    assert remaining() == {events[3].event_id}


def test_many_batches_remove_everything_expired(api, streams, jpeg):
    lobby, gate = streams
    now = timezone.now()
    config_put(api, retention_days=1, max_events_per_stream=4)
    for index in range(23):
        stored(lobby if index % 2 else gate, now - timedelta(days=2, minutes=index), jpeg)
    fresh = [stored(lobby, now - timedelta(minutes=i), jpeg) for i in range(7)]

    report = events_retention_run(now=now, batch_size=5)

    assert (report.expired, report.over_cap, report.files_removed, report.complete) == (23, 3, 26, True)
    assert remaining() == {e.event_id for e in fresh[:4]}


def test_a_spent_time_budget_stops_after_a_batch_and_the_next_run_continues(api, streams, jpeg):
    lobby, _ = streams
    now = timezone.now()
    config_put(api, retention_days=1)
    for index in range(12):
        stored(lobby, now - timedelta(days=3, seconds=index), jpeg)

    first = events_retention_run(now=now, batch_size=5, time_budget_seconds=0)
    assert (first.expired, first.complete) == (5, False)
    assert Event.objects.count() == 7

    second = events_retention_run(now=now, batch_size=5)
    assert (second.expired, second.complete) == (7, True)
    assert Event.objects.count() == 0


def test_a_run_is_skipped_while_another_holds_the_lock(api, streams, jpeg, redis_client):
    lobby, _ = streams
    config_put(api, retention_days=1)
    stored(lobby, timezone.now() - timedelta(days=5), jpeg)
    redis_client.set(RETENTION_LOCK_KEY, "someone-else", ex=60)

    report = events_retention_run()
    assert (report.skipped, report.removed, Event.objects.count()) == (True, 0, 1)
    assert redis_client.get(RETENTION_LOCK_KEY) == "someone-else"  # not released by this run

    redis_client.delete(RETENTION_LOCK_KEY)
    assert events_retention_run().expired == 1
    assert redis_client.get(RETENTION_LOCK_KEY) is None  # released after the run


def test_events_without_crops_are_removed_too(api, streams):
    lobby, _ = streams
    config_put(api, retention_days=1)
    event = event_create(
        stream=lobby,
        analytic_id=ANALYTIC,
        timestamp=timezone.now() - timedelta(days=2),
        pipeline_data={},
        image_jpeg=None,
    )
    report = events_retention_run()
    assert (report.expired, report.files_removed) == (1, 0)
    assert not Event.objects.filter(pk=event.pk).exists()


def test_orphaned_crops_in_old_day_folders_are_swept(api, streams, jpeg, media_root):
    """Crops no row names (a crash between a batch's commit and the file deletion)
    go once their day folder is past retention; named crops and recent folders stay."""
    lobby, _ = streams
    config_put(api, retention_days=10)
    root = Path(media_root) / "events"
    old_folder = root / "2020" / "01" / "02"
    old_folder.mkdir(parents=True)
    (old_folder / "orphan.jpg").write_bytes(jpeg)
    named = old_folder / "named.jpg"
    named.write_bytes(jpeg)
    event = stored(lobby, timezone.now(), jpeg)
    Event.objects.filter(pk=event.pk).update(image="events/2020/01/02/named.jpg")
    emptied = root / "2019" / "12" / "31"
    emptied.mkdir(parents=True)
    (emptied / "gone.jpg").write_bytes(jpeg)
    recent = root / f"{timezone.now():%Y/%m/%d}"
    (recent / "not-yet-named.jpg").write_bytes(jpeg)

    report = events_retention_run()

    assert report.orphan_files_removed == 2
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) == sorted(
        ["2020/01/02/named.jpg", f"{timezone.now():%Y/%m/%d}/not-yet-named.jpg", event.image.name[7:]]
    )
    assert not (root / "2019").exists()  # emptied year, month and day folders are pruned
    assert old_folder.is_dir()


def test_the_beat_job_runs_the_retention(api, streams, jpeg):
    lobby, _ = streams
    config_put(api, retention_days=1)
    stored(lobby, datetime(2020, 1, 1, tzinfo=UTC), jpeg)
    assert retention_run() == {"expired": 1, "over_cap": 0, "complete": True}
    entry = django_settings.CELERY_BEAT_SCHEDULE["events-retention"]
    assert entry["task"] == retention_run.name == "events.retention_run"


@pytest.mark.django_db(transaction=True)
def test_a_batch_does_not_wait_for_rows_another_transaction_holds(streams, jpeg):
    """SKIP LOCKED: a row locked elsewhere (e.g. being updated) is left for a later
    run instead of blocking the job; the others go at once."""
    lobby, _ = streams
    old = [stored(lobby, timezone.now() - timedelta(days=400), jpeg) for _ in range(3)]
    holder = psycopg.connect(connection_url())
    try:
        holder.execute("SELECT 1 FROM events_event WHERE event_id = %s FOR UPDATE", [old[0].event_id])
        started = time.monotonic()
        report = events_retention_run()
        assert time.monotonic() - started < 2
        assert (report.expired, remaining()) == (2, {old[0].event_id})
        assert [crop_exists(event) for event in old] == [True, False, False]
    finally:
        holder.rollback()
        holder.close()
    assert events_retention_run().expired == 1
    assert not crop_exists(old[0])


def connection_url() -> str:
    from django.db import connection

    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    return psycopg.conninfo.make_conninfo(**{k: v for k, v in params.items() if v is not None})
