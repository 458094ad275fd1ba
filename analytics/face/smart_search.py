"""NFV4-SS: indexes a stream for smart search, without enrollment.

Every face seen becomes searchable: faces are detected at most every
`sampling_time_ms` (the sampling rate), followed across frames by an IoU
tracker, and each track gives ONE event when it ends (`track_timeout_ms`
unseen) or, for a face that stays in view, once it is `max_track_ms` old. The
event carries the track's best face (by detection score, size and
frontality): its crop, its embedding (for POST /smart-search type image) and
the search text "face" (the event writer adds the stream's name, for type
text). With `tracking` off every detected face of every sampled frame is an
event (for sparse cameras where a person is seen in one frame or two).

Other object kinds join when their detectors arrive: an event's
`pipeline_data.object` says what it shows ("face", or "image" for a pushed
image without a face).

`extract_records` serves POST /extract/{node}/{stream}/{pipeline}: an external
image becomes one event per face found (crop + embedding), or a single event of
the whole image when it shows none, with the caller's metadata.
"""

from __future__ import annotations

import logging
from typing import Any

import cv2
import numpy as np
from pydantic import Field

from analytics.plugins import (
    AnalyticPlugin,
    EventRecord,
    Frame,
    OverlayItem,
    Processor,
    ProcessResult,
    StrictConfig,
)
from analytics.registry import register

from .capabilities import FACE_ENGINE, FACE_IMAGE_SEARCH
from .sampling import FaceSample, face_sample
from .tracker import IoUTracker, Track

logger = logging.getLogger(__name__)

ANALYTIC_ID = "NFV4-SS"
FACE_TEXT = "face"
IMAGE_TEXT = "image"
# Live tracks per pipeline; a crowd beyond this ends its oldest tracks early.
MAX_TRACKS = 64
# A pushed image without a face is stored whole, shrunk to this longest side.
STORED_IMAGE_MAX_SIDE = 640
COLOR_FACE = "#29b6f6"


class SmartSearchConfig(StrictConfig):
    sampling_time_ms: int = Field(
        default=200,
        ge=0,
        le=60_000,
        title="Sampling time",
        description="Milliseconds between frames that are analysed (0: every frame). 200 ms (5 per second) "
        "catches a person walking past; raise it to index more streams per CPU.",
    )
    min_face_size: int = Field(
        default=32,
        ge=16,
        le=4096,
        title="Minimum face size",
        description="Faces smaller than this (the smaller side of the box, in frame pixels) are not indexed.",
    )
    detection_threshold: float = Field(
        default=0.8,
        ge=0.05,
        le=1,
        title="Detection threshold",
        description="Detector confidence a face needs to be indexed.",
    )
    tracking: bool = Field(
        default=True,
        title="Track faces",
        description="One event per face track (true), or one per face per sampled frame (false).",
    )
    track_timeout_ms: int = Field(
        default=1500,
        ge=100,
        le=600_000,
        title="Track timeout",
        description="Milliseconds a face may stay unseen before its track ends and its event is made.",
    )
    max_track_ms: int = Field(
        default=10_000,
        ge=0,
        le=3_600_000,
        title="Longest track",
        description="A face that stays in view gets its event once its track is this old, instead of when "
        "it leaves; 0: only when it leaves.",
    )
    matching_iou_threshold: float = Field(
        default=0.3,
        gt=0,
        le=1,
        title="Matching IoU threshold",
        description="A face continues a track when its box overlaps the track's last box by at least this.",
    )


def _quality(face) -> float:
    """Bigger, surer and more frontal faces embed better."""
    from .engine import frontal_score

    return face.score * min(1.0, face.size / 112) * (0.5 + 0.5 * frontal_score(face))


def _sample(face, image: np.ndarray, timestamp: float) -> FaceSample:
    return face_sample(face, image, quality=_quality(face), timestamp=timestamp)


def _face_record(engine, sample: FaceSample, *, extra: dict[str, Any] | None = None) -> EventRecord:
    embedding = sample.embed(engine)
    return EventRecord(
        pipeline_data={
            "object": FACE_TEXT,
            "confidence_detection": round(float(sample.score), 4),
            "bounding_box": sample.bounding_box,
            **(extra or {}),
        },
        image_jpeg=sample.crop_jpeg(),
        embedding=[float(value) for value in embedding],
        search_text=FACE_TEXT,
        timestamp=sample.timestamp,
    )


class SmartSearchProcessor(Processor):
    def __init__(self, config: SmartSearchConfig, *, engine=None):
        from .engine import face_engine

        self.config = config
        self.engine = engine or face_engine()
        self.tracker = IoUTracker(
            iou_threshold=config.matching_iou_threshold,
            timeout_s=config.track_timeout_ms / 1000,
            start_score=config.detection_threshold,
            max_tracks=MAX_TRACKS,
        )
        # Events made before a failure in the same frame, handed out with the next one.
        self._carry: list[EventRecord] = []

    def _faces(self, image: np.ndarray) -> list:
        faces = self.engine.detector.detect(image, min_score=self.config.detection_threshold)
        return [face for face in faces if face.size >= self.config.min_face_size]

    def process(self, frame: Frame) -> ProcessResult:
        image, now = frame.image, frame.timestamp
        faces = self._faces(image)
        overlay = [
            OverlayItem(kind="box", points=((x, y), (x + w, y + h)), label=FACE_TEXT, color=COLOR_FACE)
            for x, y, w, h in (face.box for face in faces)
        ]
        if not self.config.tracking:
            samples = [_sample(face, image, now) for face in faces]
            return ProcessResult(overlay=overlay, events=self._records([(None, s) for s in samples]))
        update = self.tracker.update(faces, now)
        for face, track in zip(faces, update.assigned, strict=True):
            if track is None or track.decided:
                continue
            # Only the best face is embedded: one copy kept per track, made only when better.
            if not track.samples or _quality(face) > track.samples[0].quality:
                track.offer(_sample(face, image, now), keep=1)
        due = list(update.ended)
        if self.config.max_track_ms > 0:
            limit = self.config.max_track_ms / 1000
            due += [t for t in self.tracker.tracks if not t.decided and t.samples and t.age(now) >= limit]
        return ProcessResult(overlay=overlay, events=self._decide(due))

    def close(self) -> ProcessResult:
        if not self.config.tracking:
            return ProcessResult(events=self._carry_take())
        return ProcessResult(events=self._decide(self.tracker.flush()))

    def _carry_take(self) -> list[EventRecord]:
        events, self._carry = self._carry, []
        return events

    def _decide(self, tracks: list[Track]) -> list[EventRecord]:
        pending = []
        for track in tracks:
            if track.decided or not track.samples:
                continue
            track.decided = True  # one event per track, even if embedding it fails
            pending.append((track, track.best))
        return self._records(pending)

    def _records(self, pending: list[tuple[Track | None, FaceSample]]) -> list[EventRecord]:
        events = self._carry_take()
        failure: Exception | None = None
        for track, sample in pending:
            extra = {"track_id": track.track_id} if track is not None else {}
            try:
                events.append(_face_record(self.engine, sample, extra=extra))
            except Exception as exc:
                failure = failure or exc
        if failure is not None:
            # The pipeline host counts and shows the error; what was made is not lost.
            self._carry = events
            raise failure
        return events


# --- pushed images (POST /extract) ---------------------------------------------------


def _image_jpeg(image: np.ndarray) -> bytes:
    height, width = image.shape[:2]
    scale = STORED_IMAGE_MAX_SIDE / max(height, width)
    if scale < 1:
        image = cv2.resize(image, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise ValueError("the image could not be encoded as JPEG")
    return data.tobytes()


def extract_records(
    config: SmartSearchConfig, image: np.ndarray, *, timestamp: float, engine=None
) -> list[EventRecord]:
    """Events for an image pushed to the pipeline: one per face (detected with the
    pipeline's thresholds), or one of the whole image when it shows no face."""
    from .engine import face_engine

    engine = engine or face_engine()
    faces = [
        face
        for face in engine.detector.detect(image, min_score=config.detection_threshold)
        if face.size >= config.min_face_size
    ]
    if not faces:
        return [
            EventRecord(
                pipeline_data={"object": IMAGE_TEXT},
                image_jpeg=_image_jpeg(image),
                search_text=IMAGE_TEXT,
                timestamp=timestamp,
            )
        ]
    return [_face_record(engine, _sample(face, image, timestamp)) for face in faces]


@register
class SmartSearchAnalytic(AnalyticPlugin):
    id = ANALYTIC_ID
    name = "Smart Search"
    major_version = 1
    minor_version = 0
    publisher = "Nodeflux"
    description = "Indexes every face seen on a stream for search by photo and by text, without enrollment"
    type = "search"
    config_model = SmartSearchConfig
    models = (FACE_ENGINE,)
    image_search = FACE_IMAGE_SEARCH

    def create_processor(self, config: StrictConfig) -> Processor:
        assert isinstance(config, SmartSearchConfig)
        return SmartSearchProcessor(config)

    def extract_records(
        self, config: StrictConfig, image: np.ndarray, *, timestamp: float
    ) -> list[EventRecord]:
        assert isinstance(config, SmartSearchConfig)
        return extract_records(config, image, timestamp=timestamp)
