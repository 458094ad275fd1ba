"""The IoU face tracker (analytics/face/tracker.py): association, track start and
end, the bound on live tracks, and the best-samples buffer. Real photos go
through it in tests/face/test_fr_processor.py."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from analytics.face.tracker import IoUTracker, Track, iou


@dataclass
class Det:
    box: tuple[int, int, int, int]
    score: float = 0.99


@dataclass
class Sample:
    quality: float


def tracker(**kwargs) -> IoUTracker:
    kwargs.setdefault("iou_threshold", 0.3)
    kwargs.setdefault("timeout_s", 1.5)
    kwargs.setdefault("start_score", 0.8)
    return IoUTracker(**kwargs)


def test_iou():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 10, 10), (10, 10, 5, 5)) == 0.0
    assert iou((0, 0, 0, 0), (0, 0, 0, 0)) == 0.0


def test_a_moving_face_keeps_its_track_and_a_new_face_gets_another():
    t = tracker()
    first = t.update([Det((100, 100, 50, 50))], 0.0).assigned[0]
    assert isinstance(first, Track) and first.track_id == 1
    # Moved 10 px: IoU 0.67, the same track.
    again = t.update([Det((110, 100, 50, 50)), Det((400, 100, 50, 50))], 0.05)
    assert again.assigned[0] is first
    assert again.assigned[1].track_id == 2
    assert first.box == (110, 100, 50, 50) and first.hits == 2 and first.last_seen == 0.05
    assert again.ended == []


def test_each_track_takes_one_detection_best_overlap_first():
    t = tracker()
    track = t.update([Det((100, 100, 50, 50))], 0.0).assigned[0]
    update = t.update([Det((120, 100, 50, 50)), Det((102, 100, 50, 50))], 0.05)
    assert update.assigned[1] is track
    assert update.assigned[0] is not track and update.assigned[0].track_id == 2


def test_weak_detections_continue_tracks_but_never_start_one():
    t = tracker(start_score=0.8)
    assert t.update([Det((100, 100, 50, 50), score=0.5)], 0.0).assigned == [None]
    assert t.tracks == []
    track = t.update([Det((100, 100, 50, 50), score=0.9)], 0.1).assigned[0]
    assert t.update([Det((102, 100, 50, 50), score=0.5)], 0.2).assigned == [track]
    assert track.score == 0.5


def test_a_track_ends_after_the_timeout_unseen():
    t = tracker(timeout_s=1.5)
    track = t.update([Det((100, 100, 50, 50))], 10.0).assigned[0]
    assert t.update([], 11.4).ended == []
    update = t.update([Det((100, 100, 50, 50))], 11.5)
    assert update.ended == [track]
    # The face seen again after the timeout is a new track.
    assert update.assigned[0] is not track and update.assigned[0].track_id == 2
    assert t.expire(20.0) == [update.assigned[0]]
    assert t.tracks == []


def test_a_face_after_a_long_gap_starts_a_new_track_at_the_same_place():
    t = tracker(timeout_s=1.5, max_gap_s=0.7)
    first = t.update([Det((100, 100, 50, 50))], 0.0).assigned[0]
    assert t.update([Det((100, 100, 50, 50))], 0.7).assigned == [first]
    update = t.update([Det((100, 100, 50, 50))], 1.5)  # unseen for 0.8 s
    assert update.assigned[0] is not first and update.ended == []
    # The old track still ends only at its timeout.
    assert t.update([], 2.2).ended == [first]


def test_a_full_tracker_ends_its_least_recently_seen_track():
    t = tracker(max_tracks=2)
    a = t.update([Det((0, 0, 50, 50))], 0.0).assigned[0]
    b = t.update([Det((0, 0, 50, 50)), Det((200, 0, 50, 50))], 0.1).assigned[1]
    update = t.update([Det((0, 0, 50, 50)), Det((400, 0, 50, 50))], 0.2)
    assert update.ended == [b]
    assert update.assigned[0] is a
    assert [track.box for track in t.tracks] == [(0, 0, 50, 50), (400, 0, 50, 50)]
    assert t.evicted == 1


def test_flush_ends_every_track():
    t = tracker()
    tracks = t.update([Det((0, 0, 50, 50)), Det((200, 0, 50, 50))], 0.0).assigned
    assert t.flush() == tracks
    assert t.tracks == []


def test_a_track_keeps_its_best_samples():
    track = Track(track_id=1, box=(0, 0, 1, 1), score=1.0, first_seen=0.0, last_seen=0.0)
    kept = [track.offer(Sample(q), keep=3) for q in (0.5, 0.9, 0.1, 0.7, 0.8, 0.2)]
    assert kept == [True, True, True, True, True, False]
    assert [s.quality for s in track.samples] == [0.9, 0.8, 0.7]
    assert track.best.quality == 0.9
    assert Track(track_id=2, box=(0, 0, 1, 1), score=1.0, first_seen=0, last_seen=0).best is None


def test_max_tracks_must_be_positive():
    with pytest.raises(ValueError, match="max_tracks"):
        tracker(max_tracks=0)


def test_slow_frames_continue_a_face_that_looks_the_same_and_split_one_that_does_not():
    looks = {"same": 0.95}
    t = tracker(timeout_s=1.5, max_gap_s=0.7, end_frames=4, verify=lambda track, d: looks["same"])
    first = t.update([Det((100, 100, 50, 50))], 0.0).assigned[0]
    for now in (1.6, 3.2, 4.8):  # 1.6 s per analysed frame: past the gap and the timeout
        update = t.update([Det((102, 100, 50, 50))], now)
        assert update.assigned == [first] and update.ended == []
    looks["same"] = 0.7  # another face where this one was: the track is split
    update = t.update([Det((102, 100, 50, 50))], 6.4)
    assert update.ended == [first] and update.assigned[0] is not first and t.split == 1


def test_a_track_ends_after_the_timeout_and_enough_analysed_frames():
    t = tracker(timeout_s=1.5, end_frames=3)
    track = t.update([Det((100, 100, 50, 50))], 0.0).assigned[0]
    assert t.update([], 2.0).ended == []  # past the timeout, but the 1st analysed frame without it
    assert t.update([], 2.1).ended == []
    assert t.update([], 2.2).ended == [track]  # the 3rd


def test_a_face_elsewhere_rejoins_a_track_unseen_for_a_few_frames_when_it_looks_the_same():
    t = tracker(verify=lambda track, d: 0.97 if track.track_id == 1 else 0.5)
    first = t.update([Det((100, 100, 50, 50))], 0.0).assigned[0]
    t.update([], 0.05)
    update = t.update([Det((600, 300, 50, 50))], 0.1)
    assert update.assigned == [first] and first.box == (600, 300, 50, 50) and t.rejoined == 1
