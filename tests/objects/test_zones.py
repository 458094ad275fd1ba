"""Lines, areas, the density grid and per-minute counts on tracks given by hand:
the geometry and bookkeeping that the video tests rely on, case by case."""

from __future__ import annotations

import base64
import json

import pytest

from analytics.objects.counting import CountRow, MinuteCounts
from analytics.objects.detector import Detection
from analytics.objects.tracking import ByteTracker, TrackedObject, TrackUpdate
from analytics.objects.zones import (
    HEATMAP_HEADER,
    Area,
    Line,
    Zones,
    density_grid,
    heatmap_header,
)

SIZE = (1000, 500)


def _track(track_id, x, y, *, label="person", observed=True, height=80.0):
    """A track whose anchor (bottom centre) is at x, y."""
    return TrackedObject(track_id, label, 0.9, (x - 15, y - height, x + 15, y), observed, 0, 0, 1)


def _walk(zones, path, *, track_id=1, label="person", step_ms=100, start_ms=0, ended_after=False):
    events = []
    for i, (x, y) in enumerate(path):
        t = start_ms + i * step_ms
        events += zones.update(TrackUpdate(t, [_track(track_id, x, y, label=label)], []), SIZE)
    if ended_after:
        events += zones.update(TrackUpdate(start_ms + len(path) * step_ms, [], [track_id]), SIZE)
    return events


def test_line_direction_follows_the_in_side():
    # Drawn left to right at y = 250: "left" of it is above on the picture.
    for in_side, downwards in (("left", "out"), ("right", "in")):
        zones = Zones([Line("door", (0.1, 0.5), (0.9, 0.5), in_side=in_side)])
        events = _walk(zones, [(500, y) for y in range(150, 360, 20)])
        assert [(e.kind, e.direction) for e in events] == [("crossing", downwards)]
        assert events[0].zone == "door" and events[0].track_id == 1 and events[0].label == "person"


def test_jitter_on_the_line_counts_once_and_a_return_counts_out():
    zones = Zones([Line("door", (0.1, 0.5), (0.9, 0.5), in_side="right")], hysteresis=0.01)  # ±11 px
    # Up to the line, wobbling within the band around it, then across, then back.
    path = [(500, 200), (500, 240), (500, 246), (500, 255), (500, 244), (500, 258), (500, 253)]
    path += [(500, 280), (500, 300), (500, 270), (500, 240), (500, 220)]
    events = _walk(zones, path)
    assert [e.direction for e in events] == ["in", "out"]
    assert zones.line_totals() == {"door": {"in": 1, "out": 1, "person:in": 1, "person:out": 1}}


def test_passing_round_the_end_of_a_line_is_no_crossing():
    zones = Zones([Line("door", (0.4, 0.5), (0.6, 0.5))])
    assert _walk(zones, [(200, y) for y in range(150, 360, 20)]) == []
    assert len(_walk(zones, [(450, y) for y in range(150, 360, 20)], track_id=2)) == 1


def test_wrong_way_and_classes():
    zones = Zones([Line("lane", (0.5, 0.9), (0.5, 0.1), in_side="right", expected="in", classes={"car"})])
    # Drawn upwards: "right" of it is the picture's right, so left-to-right is "in".
    right = _walk(zones, [(x, 300) for x in range(300, 700, 40)], track_id=1, label="car")
    left = _walk(zones, [(x, 300) for x in range(700, 300, -40)], track_id=2, label="car")
    person = _walk(zones, [(x, 300) for x in range(700, 300, -40)], track_id=3, label="person")
    assert [(e.direction, e.wrong_way) for e in right] == [("in", False)]
    assert [(e.direction, e.wrong_way) for e in left] == [("out", True)]
    assert person == []


def test_dwell_stop_and_exit_by_stream_time():
    area = Area("bench", [(0.4, 0.4), (0.6, 0.4), (0.6, 0.8), (0.4, 0.8)], dwell_ms=3000, stop_ms=2000)
    zones = Zones(areas=[area])
    # Walks in (x 400 + margin), stays about the same spot for 4 s, walks out.
    path = [(x, 300) for x in range(300, 500, 25)] + [(500 + (i % 2), 300) for i in range(40)]
    path += [(x, 300) for x in range(525, 700, 25)]
    events = _walk(zones, path, step_ms=100, start_ms=50_000)
    kinds = [e.kind for e in events]
    assert kinds == ["enter", "stopped", "dwell", "exit"], kinds
    enter, stopped, dwell, left = events
    assert stopped.timestamp_ms - enter.timestamp_ms >= 2000 and stopped.dwell_ms >= 2000
    assert dwell.dwell_ms == 3000
    # In from x = 425 (the first point past the 11 px margin) to x = 575, 100 ms apart.
    assert left.dwell_ms == left.timestamp_ms - enter.timestamp_ms - 100


def test_a_track_that_ends_inside_leaves_with_its_last_sighting():
    zones = Zones(areas=[Area("room", [(0, 0), (1, 0), (1, 1), (0, 1)])])
    events = _walk(zones, [(500, 300)] * 5, ended_after=True)
    assert [(e.kind, e.dwell_ms) for e in events] == [("enter", None), ("exit", 400)]
    assert zones.occupancy()["room"]["current"] == 0


def test_occupancy_limit_holds_before_it_is_told():
    zones = Zones(areas=[Area("hall", [(0, 0), (1, 0), (1, 1), (0, 1)], limit=2, hold_ms=500)])
    events = []
    for t in range(0, 2000, 100):
        people = 3 if 300 <= t < 1300 else 1
        tracks = [_track(i, 100 + 100 * i, 300) for i in range(1, people + 1)]
        ended = [2, 3] if t == 1300 else []
        events += [(t, e) for e in zones.update(TrackUpdate(t, tracks, ended), SIZE)]
    told = [(t, e.kind, e.occupancy) for t, e in events if e.kind.startswith("occupancy")]
    assert told == [(800, "occupancy_over", 3), (1800, "occupancy_clear", 1)]
    occupancy = zones.occupancy()["hall"]
    assert occupancy["current"] == 1 and occupancy["peak"] == 3
    assert occupancy["by_label"] == {"person": 1} and occupancy["peak_by_label"] == {"person": 3}


def test_lost_tracks_keep_their_visit():
    zones = Zones(areas=[Area("hall", [(0, 0), (1, 0), (1, 1), (0, 1)])])
    zones.update(TrackUpdate(0, [_track(1, 500, 300)], []), SIZE)
    zones.update(TrackUpdate(100, [_track(1, 900, 300, observed=False)], []), SIZE)
    assert zones.occupancy()["hall"]["current"] == 1


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: Line("a", (0.1, 0.1), (0.1, 0.1)), "two different points"),
        (lambda: Line("a", (0.1, 0.1), (1.2, 0.1)), "between 0 and 1"),
        (lambda: Line("a", (0.1, 0.1), (0.2, 0.1), in_side="up"), "in_side"),
        (lambda: Area("a", [(0, 0), (1, 1)]), "at least 3 points"),
        (lambda: Area("a", [(0, 0), (0.5, 0.5), (1, 1)]), "encloses no surface"),
        (lambda: Area("a", [(0, 0), (1, 0), (1, 1)], dwell_ms=0), "dwell_ms must be above 0"),
        (lambda: Zones([Line("a", (0, 0), (1, 1))], [Area("a", [(0, 0), (1, 0), (1, 1)])]), "unique"),
    ],
)
def test_what_zones_refuse(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_density_grid_and_heatmap_header():
    points = [(10, 10), (20, 20), (990, 490), (500, 250), (1000, 500), (-5, 3)]
    grid = density_grid(points, SIZE, rows=2, cols=4)
    assert grid == [[2, 0, 0, 0], [0, 0, 1, 2]]
    assert density_grid([(1, 1)] * 300, SIZE, 1, 1) == [[255]]
    value = heatmap_header(grid)
    # ANALYTICS.md: standard base64 of UTF-8 JSON {"data": {"data": [[v, ...], ...]}}.
    assert json.loads(base64.b64decode(value, validate=True).decode("utf-8")) == {"data": {"data": grid}}
    assert HEATMAP_HEADER == "X-NF-Additional-Data"
    with pytest.raises(ValueError, match="0-255"):
        heatmap_header([[256]])
    with pytest.raises(ValueError, match="rectangle"):
        heatmap_header([[1, 2], [3]])


def test_minute_counts_flush_and_stay_bounded():
    counts = MinuteCounts()
    zones = Zones([Line("door", (0.1, 0.5), (0.9, 0.5), in_side="right", expected="in")])
    events = _walk(zones, [(500, y) for y in range(150, 360, 20)], start_ms=60_000)
    events += _walk(zones, [(500, y) for y in range(360, 150, -20)], track_id=2, start_ms=125_000)
    counts.record(events)
    counts.record_occupancy(61_000, {"hall": {"current": 2, "by_label": {"person": 2}}})
    counts.record_occupancy(62_000, {"hall": {"current": 1, "by_label": {"person": 1}}})
    rows = counts.flush(before_ms=120_000)
    assert rows == [
        CountRow(60_000, "door", "person", "in", 1),
        CountRow(60_000, "hall", "*", "peak", 2),
        CountRow(60_000, "hall", "person", "peak", 2),
    ]
    assert counts.flush() == [
        CountRow(120_000, "door", "person", "out", 1),
        CountRow(120_000, "door", "person", "wrong_way", 1),
    ]
    bounded = MinuteCounts(max_rows=4)
    for minute in range(6):
        bounded.add(minute * 60_000, "door", "person", "in")
    assert len(bounded) == 4 and bounded.dropped_rows == 2
    assert [row.minute_ms for row in bounded.flush()] == [120_000, 180_000, 240_000, 300_000]


def test_tracker_keeps_ids_through_a_gap_and_ends_them_later():
    tracker = ByteTracker()
    ids, ended = [], []
    for i in range(60):
        x = 100 + 15 * i
        hidden = 10 <= i < 18  # 0.8 s unseen
        found = [] if hidden or i >= 40 else [Detection("person", 0, 0.9, (x, 200, x + 30, 280))]
        update = tracker.update(found, i * 100)
        ids += [t.track_id for t in update.tracks if t.observed]
        ended += update.ended
    assert set(ids) == {1} and len(ids) == 32
    assert ended == [1]  # 1.5 s after its last sighting
    assert len(tracker) == 0


def test_tracker_low_score_boxes_keep_a_track_but_never_start_one():
    tracker = ByteTracker()
    for i in range(10):
        score = 0.9 if i < 3 else 0.3
        update = tracker.update(
            [Detection("person", 0, score, (100 + 5 * i, 100, 130 + 5 * i, 180))], i * 100
        )
        assert [t.track_id for t in update.tracks if t.observed] == [1]
    assert tracker.update([Detection("person", 0, 0.3, (600, 100, 630, 180))], 1000).tracks[-1].track_id == 1
    for i in range(11, 14):
        update = tracker.update([Detection("person", 0, 0.3, (600, 100, 630, 180))], i * 100)
        assert all(t.track_id == 1 for t in update.tracks)


def test_tracker_is_bounded_and_a_stream_restart_ends_tracks():
    from analytics.objects.tracking import TrackerConfig

    tracker = ByteTracker(TrackerConfig(max_tracks=3))
    boxes = [Detection("car", 2, 0.9, (100 * i, 10, 100 * i + 50, 60)) for i in range(5)]
    tracker.update(boxes, 0)
    assert len(tracker) == 3 and tracker.refused == 2
    update = tracker.update(boxes[:1], 10_000 - 20_000 + 5_000)  # earlier than the last frame
    assert sorted(update.ended) == [1, 2, 3] and [t.track_id for t in update.tracks] == [4]
