"""The NFV4-FR processor on real photos (analytics/face/plugin.py): frames made
of the face_recognition test photos go through the real detector, tracker,
quality filters and embedder; matching uses an in-memory gallery of the same
embedder (the pgvector matcher is exercised end to end in test_e2e_fr.py)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from analytics.face import plugin as fr
from analytics.face.gallery import FaceMatch
from analytics.face.plugin import FaceRecognitionConfig, FaceRecognitionProcessor
from analytics.plugins import Frame

STEP = 0.05  # seconds between frames: the default sampling_time_ms
T0 = 1_736_928_000.0
OBAMA_ID = "f0b4a3a1c2d3e4f5"


def canvas(*people: tuple[np.ndarray, int], height: int = 600, jitter: int = 0) -> np.ndarray:
    """A 1280x720 frame with each photo scaled to `height` px tall at x = its offset."""
    frame = np.full((720, 1280, 3), 90, dtype=np.uint8)
    for photo, left in people:
        scale = height / photo.shape[0]
        image = cv2.resize(photo, (int(photo.shape[1] * scale), height), interpolation=cv2.INTER_AREA)
        left += jitter
        image = image[:, : max(0, min(image.shape[1], 1280 - left))]
        frame[60 : 60 + height, left : left + image.shape[1]] = image
    return frame


def frame_at(image: np.ndarray, t: float, index: int = 0) -> Frame:
    return Frame(image=image, timestamp=t, index=index, stream_id="5136c6c0916cd30c", node_num=0)


class Gallery:
    """Enrolled embeddings in memory, matched by the engine's similarity."""

    def __init__(self, engine):
        self.engine = engine
        self.people: list[tuple[str, str, str, np.ndarray]] = []
        self.calls = 0

    def enroll(self, face_id: str, name: str, secondary: str, image: np.ndarray) -> None:
        faces = self.engine.detector.detect(image)
        assert len(faces) == 1
        self.people.append((face_id, name, secondary, self.engine.embedder.embed(image, faces[0])))

    def __call__(self, embedding: np.ndarray, keyspace: str) -> FaceMatch | None:
        self.calls += 1
        assert keyspace == "default"
        scored = [
            FaceMatch(
                face_id=fid,
                name=name,
                secondary_text=sec,
                similarity=self.engine.similarity(embedding, e),
                gallery_size=len(self.people),
            )
            for fid, name, sec, e in self.people
        ]
        return max(scored, key=lambda m: m.similarity, default=None)


@pytest.fixture(scope="module")
def people(photos):
    return {name: photos.bgr(f"{name}.jpg") for name in ("obama", "obama2", "obama3", "biden")}


@pytest.fixture
def gallery(engine, photos):
    gallery = Gallery(engine)
    gallery.enroll(OBAMA_ID, "Barack Obama", "President", photos.bgr("obama.jpg"))
    return gallery


def processor(engine, gallery, **config) -> FaceRecognitionProcessor:
    return FaceRecognitionProcessor(FaceRecognitionConfig(**config), engine=engine, matcher=gallery)


def play(proc, images: list[np.ndarray], start: float):
    """Process `images` one STEP apart; (events, overlays per frame, next time)."""
    events, overlays = [], []
    t = start
    for i, image in enumerate(images):
        result = proc.process(frame_at(image, t, i))
        events += result.events
        overlays.append(result.overlay)
        t += STEP
    return events, overlays, t


def blank() -> np.ndarray:
    return np.full((720, 1280, 3), 90, dtype=np.uint8)


def assert_box_inside(box: dict, left: int, right: int) -> None:
    assert set(box) == {"left", "top", "width", "height"}
    assert left <= box["left"] and box["left"] + box["width"] <= right
    assert 60 <= box["top"] and 48 <= box["width"] and 48 <= box["height"]


def test_one_known_event_for_the_enrolled_person_one_unknown_for_the_other(engine, gallery, people):
    proc = processor(engine, gallery, dumping_interval=0)
    obama = [canvas((people["obama3"], 300), jitter=2 * i) for i in range(6)]
    events, _, t = play(proc, obama, T0)
    assert events == []  # the track is still open
    # 1.5 s later the track has ended; Biden arrives in the same frame.
    biden = [canvas((people["biden"], 420), jitter=-2 * i) for i in range(6)]
    ended, _, t = play(proc, biden, t + 1.5)
    assert len(ended) == 1
    known = ended[0]
    assert known.primary_text == "Barack Obama" and known.secondary_text == "President"
    data = known.pipeline_data
    assert data == {
        "face_id": OBAMA_ID,
        "status": "KNOWN",
        "similarity": data["similarity"],
        "false_match_probability": data["false_match_probability"],
        "threshold": 0.846,  # the score model's for 1 enrolled face at max_false_match_rate 0.01
        "confidence_detection": data["confidence_detection"],
        "bounding_box": data["bounding_box"],
    }
    assert 0.85 <= data["similarity"] <= 1.0 and 0.9 <= data["confidence_detection"] <= 1.0
    assert 0 < data["false_match_probability"] < 1e-3  # a stranger rarely scores this high
    assert_box_inside(data["bounding_box"], 300, 300 + 12 + 600)
    assert T0 <= known.timestamp <= T0 + 5 * STEP  # when the best face was seen
    assert len(known.embedding) == 128
    assert np.linalg.norm(known.embedding) == pytest.approx(1.0, abs=1e-4)
    crop = cv2.imdecode(np.frombuffer(known.image_jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert crop is not None and crop.shape[0] >= data["bounding_box"]["height"]

    closed = proc.close().events
    assert len(closed) == 1
    unknown = closed[0]
    assert (unknown.primary_text, unknown.secondary_text) == ("", "")
    data = unknown.pipeline_data
    assert data == {
        "face_id": "",
        "status": "UNKNOWN",
        "similarity": data["similarity"],
        "false_match_probability": data["false_match_probability"],
        "threshold": 0.846,
        "confidence_detection": data["confidence_detection"],
        "bounding_box": data["bounding_box"],
    }
    assert 0 <= data["similarity"] < 0.846 and data["false_match_probability"] > 0.01
    assert gallery.calls == 2  # one embedding and match per track, not per frame


@pytest.mark.parametrize("gap_s", [0.7, 10.0])
def test_the_next_person_at_the_same_place_is_a_new_track(engine, gallery, people, monkeypatch, gap_s):
    # Biden's face shows where Obama's was, 1 s after it: within fr_timeout_dump,
    # but past the tracker's gap (0.7 s), so it is not taken for Obama's. With
    # no such gap (10 s) the boxes alone would merge the two people.
    monkeypatch.setattr(fr, "MAX_TRACK_GAP_S", gap_s)
    if gap_s > 1.0:  # and no scene-cut check either: the boxes alone decide
        monkeypatch.setattr(fr, "SCENE_CUT_DIFFERENCE", 256.0)
    proc = processor(engine, gallery, dumping_interval=0)
    _, _, t = play(proc, [canvas((people["obama3"], 330))] * 3, T0)
    split, _, _ = play(proc, [canvas((people["biden"], 379))] * 3, t + 1.0)
    events = split + proc.close().events
    seen = [(e.pipeline_data["status"], e.primary_text) for e in events]
    if gap_s < 1.0:
        # Past the gap the face must also look the same: Biden's does not, so Obama's
        # track is split off (its event made at once) and Biden's starts.
        assert seen == [("KNOWN", "Barack Obama"), ("UNKNOWN", "")]
        assert [e.pipeline_data["status"] for e in split] == ["KNOWN"]
        assert proc.tracker.split == 1
    else:
        assert len(seen) == 1


def test_two_people_in_one_frame_get_their_own_tracks(engine, gallery, people):
    proc = processor(engine, gallery, dumping_interval=0)
    images = [canvas((people["obama3"], 40), (people["biden"], 700), height=560, jitter=i) for i in range(5)]
    play(proc, images, T0)
    events = proc.close().events
    by_status = {e.pipeline_data["status"]: e for e in events}
    assert sorted(by_status) == ["KNOWN", "UNKNOWN"]
    assert by_status["KNOWN"].pipeline_data["bounding_box"]["left"] < 640
    assert by_status["UNKNOWN"].pipeline_data["bounding_box"]["left"] >= 640


def test_a_face_that_stays_gets_its_event_at_the_dumping_interval_and_only_one(engine, gallery, people):
    proc = processor(engine, gallery, dumping_interval=300)
    images = [canvas((people["obama3"], 300), jitter=i) for i in range(12)]
    events, overlays, t = play(proc, images, T0)
    assert len(events) == 1 and events[0].pipeline_data["status"] == "KNOWN"
    # Before the decision the box has no name; after it, the name in green.
    assert [(o.kind, o.label, o.color) for o in overlays[0]] == [("box", "", fr.COLOR_PENDING)]
    assert [(o.label, o.color) for o in overlays[-1]] == [("Barack Obama", fr.COLOR_KNOWN)]
    (x0, y0), (x1, y1) = overlays[-1][0].points
    assert 300 < x0 < x1 < 960 and 60 < y0 < y1 < 660
    ended, _, _ = play(proc, [blank()], t + 2.0)
    assert ended == [] and proc.close().events == []


def test_unknown_faces_are_labelled_unknown_on_the_overlay(engine, gallery, people):
    proc = processor(engine, gallery, dumping_interval=100)
    _, overlays, _ = play(proc, [canvas((people["biden"], 420), jitter=i) for i in range(6)], T0)
    assert [(o.label, o.color) for o in overlays[-1]] == [("unknown", fr.COLOR_UNKNOWN)]


def test_close_flushes_open_tracks(engine, gallery, people):
    proc = processor(engine, gallery, dumping_interval=0)
    play(proc, [canvas((people["obama3"], 300))] * 3, T0)
    events = proc.close().events
    assert [e.primary_text for e in events] == ["Barack Obama"]
    assert proc.close().events == []


@pytest.mark.parametrize(
    ("config", "make", "rejected"),
    [
        ({"fr_min_face_size": 200}, lambda p: canvas((p["obama"], 300)), "size"),
        ({"dumping_confidence_threshold": 1.0}, lambda p: canvas((p["biden"], 420)), "confidence"),
        (
            # Blurred by ~10 % of the face's width: still found, too soft to recognise.
            {"fr_blur_filter_threshold": 4.0},
            lambda p: cv2.GaussianBlur(canvas((p["obama"], 300)), (0, 0), 12),
            "blur",
        ),
        (
            {
                "areas": [
                    {"name": "Poster", "points": [{"x": 0.2, "y": 0}, {"x": 0.8, "y": 0}, {"x": 0.5, "y": 1}]}
                ]
            },
            lambda p: canvas((p["obama"], 300)),
            "area",
        ),
    ],
)
def test_quality_filters_keep_faces_out_of_recognition(engine, gallery, people, config, make, rejected):
    proc = processor(engine, gallery, dumping_interval=0, **config)
    _, overlays, _ = play(proc, [make(people)] * 3, T0)
    assert proc.close().events == []
    assert proc.rejected[rejected] == 3
    assert gallery.calls == 0
    # Excluded areas hide the face altogether; other filters still show the box.
    assert [len(o) for o in overlays] == ([0, 0, 0] if rejected == "area" else [1, 1, 1])


def test_frontal_only_drops_profiles(engine, gallery, sdist_photos):
    # insightface's t1.jpg: six people; the one at the top right is turned ~58° (near
    # profile), the others 11-43°. Cut out on its own, the profile is refused under
    # frontal_only (pose from the landmarks) and used without it.
    t1 = cv2.imread(str(sdist_photos / "t1.jpg"))
    turned, facing = t1[0:260, 850:1060], t1[200:460, 1080:1280]
    strict = processor(engine, gallery, dumping_interval=0)
    play(strict, [canvas((turned, 300), height=500)] * 3, T0)
    assert strict.close().events == [] and strict.rejected["frontal"] == 3
    tolerant = processor(engine, gallery, dumping_interval=0, frontal_only=False)
    play(tolerant, [canvas((turned, 300), height=500)] * 3, T0)
    assert [e.pipeline_data["status"] for e in tolerant.close().events] == ["UNKNOWN"]
    # A face towards the camera passes frontal_only.
    facing_only = processor(engine, gallery, dumping_interval=0)
    play(facing_only, [canvas((facing, 300), height=500)] * 3, T0)
    assert len(facing_only.close().events) == 1 and facing_only.rejected["frontal"] == 0


def dimmed(frame: np.ndarray) -> np.ndarray:
    """`frame` at a quarter of the light, with sensor noise: the back of a dim hall."""
    noise = np.random.default_rng(0).normal(0, 3, frame.shape)
    return np.clip(frame.astype(np.float32) / 4 + noise, 0, 255).astype(np.uint8)


def test_small_dim_faces_in_focus_pass_the_blur_filter_and_are_named(engine, gallery, people):
    # The filter's default (4) judges sharpness at a fixed scale with contrast
    # normalised: a 60 px face at a quarter of the light is not "blurry".
    proc = processor(engine, gallery, dumping_interval=0)
    # obama3.jpg is 2333 px tall with a ~273 px face: 513 px tall puts the face at ~60 px.
    frames = [dimmed(canvas((people["obama3"], 500 + i), height=513)) for i in range(4)]
    play(proc, frames, T0)
    events = proc.close().events
    assert proc.rejected["blur"] == 0, proc.rejected
    assert [(e.primary_text, e.pipeline_data["status"]) for e in events] == [("Barack Obama", "KNOWN")]


def test_the_best_sample_is_the_sharpest_biggest_face(engine, gallery, people):
    proc = processor(engine, gallery, dumping_interval=0, fr_sampling_size=2)
    sharp = canvas((people["obama"], 300))
    soft = cv2.GaussianBlur(sharp, (0, 0), 4)  # ~3 % of the face: passes the filter (4), ranks lower
    play(proc, [soft, soft, sharp, soft], T0)
    track = proc.tracker.tracks[0]
    assert len(track.samples) == 2
    assert track.best.timestamp == T0 + 2 * STEP
    assert proc.close().events[0].timestamp == T0 + 2 * STEP


def test_a_failed_match_is_raised_and_the_other_events_are_kept(engine, gallery, people):
    failures = []

    def flaky(embedding, keyspace):
        if not failures:
            failures.append(1)
            raise RuntimeError("database unavailable")
        return gallery(embedding, keyspace)

    proc = FaceRecognitionProcessor(FaceRecognitionConfig(dumping_interval=0), engine=engine, matcher=flaky)
    images = [canvas((people["obama3"], 40), (people["biden"], 700), height=560)] * 2
    _, _, t = play(proc, images, T0)
    # Tracks end once unseen for fr_timeout_dump and END_FRAMES analysed frames.
    assert play(proc, [blank()] * (fr.END_FRAMES - 1), t)[0] == []
    with pytest.raises(RuntimeError, match="database unavailable"):
        proc.process(frame_at(blank(), t + 1.6))
    # The track whose match worked is reported with the next frame.
    carried = proc.process(frame_at(blank(), t + 1.7)).events
    assert len(carried) == 1
    assert proc.close().events == []
