"""One event per appearance (analytics/face/tracker.py through the NFV4-FR
processor): a real H.264 video made of the face_recognition test photos, decoded
frame by frame and analysed as a busy machine does it (0.4-1.6 s per analysed
frame, the frames in between dropped, as a live source drops them); a face
that changes in place (a cut) splits its track; a face that comes back
elsewhere after a short absence rejoins its track by appearance."""

from __future__ import annotations

import cv2
import pytest

from analytics.face import plugin as fr
from tests.face.test_fr_processor import (
    OBAMA_ID,
    T0,
    Gallery,
    blank,
    canvas,
    frame_at,
    play,
    processor,
)
from tests.support.face_video import Segment, face_video

pytestmark = pytest.mark.heavy  # the face models over rendered clips

FPS = 25
# Seconds each analysed frame takes on the loaded machine (cycled): 1.6 s is more than
# fr_timeout_dump (1.5 s), which used to end a face that never left.
DELAYS = (0.4, 1.6, 1.0, 1.6, 0.7, 1.3, 0.5, 1.6)


@pytest.fixture(scope="module")
def appearances_video(photos, tmp_path_factory):
    """Obama in view for 6 s, the empty scene 2.5 s, Biden 5 s, the empty scene 2.5 s."""
    return face_video(
        tmp_path_factory.mktemp("videos") / "appearances.mp4",
        [
            Segment(1.0),
            Segment(6.0, photos.bgr("obama3.jpg"), height=620, left=330),
            Segment(2.5),
            Segment(5.0, photos.bgr("biden.jpg"), height=620, left=440),
            Segment(2.5),
        ],
        fps=FPS,
    )


@pytest.fixture(scope="module")
def people(photos):
    return {name: photos.bgr(f"{name}.jpg") for name in ("obama3", "biden")}


@pytest.fixture
def gallery(engine, photos):
    gallery = Gallery(engine)
    gallery.enroll(OBAMA_ID, "Barack Obama", "President", photos.bgr("obama.jpg"))
    return gallery


def play_loaded(proc, path, delays=DELAYS) -> tuple[list, int]:
    """Decode the whole video; analyse a frame, then skip the frames that arrive while
    it 'takes' the next delay. (events, frames analysed)."""
    capture = cv2.VideoCapture(str(path))
    events, analysed, due, index = [], 0, 0.0, 0
    try:
        while True:
            ok, image = capture.read()
            if not ok:
                break
            t = index / FPS
            if t >= due:
                events += proc.process(frame_at(image, T0 + t, index)).events
                due = t + delays[analysed % len(delays)]
                analysed += 1
            index += 1
    finally:
        capture.release()
    assert index >= 16.9 * FPS  # every frame of the real video was decoded
    return events + proc.close().events, analysed


def test_a_face_in_view_gets_one_event_on_a_loaded_machine(engine, gallery, appearances_video):
    proc = processor(engine, gallery)  # defaults: dumping_interval 3 s, fr_timeout_dump 1.5 s
    events, analysed = play_loaded(proc, appearances_video)
    assert 12 <= analysed <= 25
    assert [(e.pipeline_data["status"], e.primary_text) for e in events] == [
        ("KNOWN", "Barack Obama"),
        ("UNKNOWN", ""),
    ]
    # Each stamped with its best face's time, within the face's appearance.
    assert 1.0 <= events[0].timestamp - T0 < 7.0
    assert 9.5 <= events[1].timestamp - T0 < 14.5
    assert proc.tracker.split == 0


def test_counting_wall_time_alone_would_cut_the_appearances(engine, gallery, appearances_video, monkeypatch):
    # What the frame count prevents: with tracks ended by fr_timeout_dump alone, every
    # 1.6 s frame ends the face's track and the next frame starts another.
    monkeypatch.setattr(fr, "END_FRAMES", 1)
    events, _ = play_loaded(processor(engine, gallery), appearances_video)
    assert len(events) > 2


def test_a_face_replaced_in_place_splits_its_track(engine, gallery, people):
    # Obama, then at once (the next frame, 50 ms later) Biden where Obama was: the
    # boxes overlap, but the frame changed and the faces differ.
    proc = processor(engine, gallery, dumping_interval=0)
    _, _, t = play(proc, [canvas((people["obama3"], 330))] * 4, T0)
    split, _, _ = play(proc, [canvas((people["biden"], 379))] * 4, t)
    assert [(e.pipeline_data["status"], e.primary_text) for e in split] == [("KNOWN", "Barack Obama")]
    assert [e.pipeline_data["status"] for e in proc.close().events] == ["UNKNOWN"]
    assert proc.tracker.split == 1 and proc.cuts >= 1


def test_a_face_back_elsewhere_after_a_short_absence_keeps_its_track(engine, gallery, people):
    proc = processor(engine, gallery, dumping_interval=0)
    _, _, t = play(proc, [canvas((people["obama3"], 100))] * 4, T0)
    _, _, t = play(proc, [blank()] * 20, t)  # 1 s unseen: past the 0.7 s position gap
    events, _, _ = play(proc, [canvas((people["obama3"], 700))] * 4, t)
    assert events == []
    # One track, the one that began with the first part, not a new one.
    assert [track.first_seen for track in proc.tracker.tracks] == [T0]
    closed = proc.close().events
    assert [e.primary_text for e in closed] == ["Barack Obama"]
    assert proc.tracker.rejoined == 1
