"""GET /database/stats: storage used by the database and the stored media, what
is left (a quota's rest or the volume's free space), and the number of events."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from events import stats
from events.models import Event

pytestmark = pytest.mark.django_db


def make_event(**overrides) -> Event:
    fields = {
        "stream_id": "5136c6c0916cd30c",
        "node_num": 0,
        "analytic_id": "TEST-BRIGHT",
        "timestamp": datetime(2025, 1, 15, 8, 0, tzinfo=UTC),
    }
    return Event.objects.create(**{**fields, **overrides})


def test_database_stats_with_a_quota(api, settings, tmp_path, monkeypatch):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.STORAGE_QUOTA_BYTES = 1_000_000
    monkeypatch.setattr(stats, "database_size_bytes", lambda: 40_000)
    (tmp_path / "media" / "events" / "2025").mkdir(parents=True)
    (tmp_path / "media" / "events" / "2025" / "a.jpg").write_bytes(b"x" * 1000)
    (tmp_path / "media" / "b.jpg").write_bytes(b"x" * 234)
    make_event()
    make_event(primary_text="second")

    response = api.get("/database/stats")
    assert response.status_code == 200
    assert response.json() == {
        "code": 200,
        "message": "success",
        "total_size_bytes": 1_000_000,
        "used_size_bytes": 41_234,
        "free_size_bytes": 1_000_000 - 41_234,
        "event_count": 2,
    }


def test_database_stats_over_quota_has_nothing_free(api, settings, tmp_path, monkeypatch):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.STORAGE_QUOTA_BYTES = 100
    monkeypatch.setattr(stats, "database_size_bytes", lambda: 5_000)
    assert api.get("/database/stats").json() == {
        "code": 200,
        "message": "success",
        "total_size_bytes": 5_000,
        "used_size_bytes": 5_000,
        "free_size_bytes": 0,
        "event_count": 0,
    }


def test_database_stats_are_measured(api, settings, tmp_path):
    """Without a quota: the real database size, the volume's free space, the real count."""
    settings.MEDIA_ROOT = str(tmp_path / "media-not-yet-created")
    settings.STORAGE_QUOTA_BYTES = 0
    make_event()
    body = api.get("/database/stats").json()
    assert set(body) == {
        "code",
        "message",
        "total_size_bytes",
        "used_size_bytes",
        "free_size_bytes",
        "event_count",
    }
    assert (body["code"], body["message"], body["event_count"]) == (200, "success", 1)
    assert body["used_size_bytes"] >= stats.database_size_bytes() > 0
    assert body["used_size_bytes"] + body["free_size_bytes"] == body["total_size_bytes"]
    assert body["free_size_bytes"] > 0
    assert (tmp_path / "media-not-yet-created").is_dir()


def test_media_size_ignores_symlinks_and_stops_at_the_cap(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_bytes(b"1234")
    (tmp_path / "g").write_bytes(b"12")
    (tmp_path / "link").symlink_to(tmp_path / "d")
    assert stats.media_size_bytes(tmp_path) == 6
    assert stats.media_size_bytes(tmp_path / "missing") == 0
    assert stats.media_size_bytes(tmp_path, max_entries=1) <= 4
