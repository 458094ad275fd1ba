"""NFV4-FR: realtime face detection and face recognition on a stream.

Per sampled frame: detect faces (RetinaFace, at most every `sampling_time_ms`),
drop faces inside excluded `areas`, follow each face across frames with an IoU
tracker, and keep the best `fr_sampling_size` samples of each track (a quality
score from detection confidence, size, frontality and sharpness; samples that
fail `fr_min_face_size`, `frontal_only`, `fr_blur_filter_threshold` or
`dumping_confidence_threshold` are not kept). A track's one event is made when
it ends (`fr_timeout_dump` ms unseen) or, for a face that stays in view, once
it is `dumping_interval` ms old: the best sample is embedded (dlib's network on
ONNX Runtime by default) and matched against the pipeline's `keyspace`; `KNOWN`
with the person's name when the similarity reaches the threshold in force
(calibration.decide: the one that names a stranger with probability
`max_false_match_rate` at the keyspace's number of enrolled faces, or an explicit
`similarity_threshold`), else `UNKNOWN`. The tracks due at a frame are embedded in
one call of the worker's embedding runtime (batching.py), which at a batch size
above 1 batches them with the faces of the worker's other streams; when its queue
is full, they wait for a later frame instead of holding this one up.

Embedding once per track, not per frame, is what keeps the CPU cost near the
detector's: the embedder is ~5x slower per face than detection per frame.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
from pydantic import Field, field_validator

from analytics.batching import ModelBusy
from analytics.plugins import (
    AnalyticPlugin,
    EventRecord,
    Frame,
    OverlayItem,
    Point,
    Processor,
    ProcessResult,
    StrictConfig,
)
from analytics.registry import register
from core.db import connection_release

from . import quality
from .calibration import DEFAULT_MAX_FALSE_MATCH_RATE, decide
from .capabilities import FACE_ENGINE, FACE_IMAGE_SEARCH
from .gallery import FaceMatch, KeyspaceMissing, gallery_get
from .sampling import face_sample
from .tracker import IoUTracker, Track

logger = logging.getLogger(__name__)

ANALYTIC_ID = "NFV4-FR"
KNOWN, UNKNOWN = "KNOWN", "UNKNOWN"
# frontal_only: the widest turn and tilt used (analytics.face.quality's pose from the
# 5 landmarks; beyond ~45° dlib's embedding of a person drifts towards other people's).
FRONTAL_MAX_YAW, FRONTAL_MAX_PITCH = quality.FRONTAL_MAX_YAW, quality.FRONTAL_MAX_PITCH
# Live tracks per pipeline; a crowd beyond this ends its oldest tracks early.
MAX_TRACKS = 64
# A face unseen for longer than this continues its track only when it also looks the
# same (SAME_FACE_SIMILARITY): boxes alone cannot tell the next person at a door from the last.
MAX_TRACK_GAP_S = 0.7
# Analysed frames a face must also be missing from before its track ends: on a busy machine
# (seconds between analysed frames) fr_timeout_dump alone would end a face that never left.
END_FRAMES = 4
# Same face across frames: strangers photographed together (same camera, same light)
# reached 0.88 (docs/face-accuracy.md); the same face in consecutive frames scores ~0.95+.
SAME_FACE_SIMILARITY = 0.9
# A scene cut (or a large change): the mean absolute difference of two analysed frames at 32x18
# grey, out of 255 (one face replaced by another in a 1280x720 frame: 11). Low on purpose: a false
# cut costs only embeddings, the same face still agrees.
SCENE_CUT_DIFFERENCE = 8.0
# The enrollment API's keyspace names (faces.services.NAME_RE; a test keeps them equal).
KEYSPACE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@:-]{0,63}$")

COLOR_PENDING = "#ffd600"
COLOR_KNOWN = "#00e676"
COLOR_UNKNOWN = "#ff1744"


# --- configuration -------------------------------------------------------------


class Area(StrictConfig):
    name: str = Field(default="Area", max_length=100, title="Name", description="Label shown on the overlay.")
    points: list[Point] = Field(
        min_length=3,
        max_length=64,
        title="Points",
        description="Polygon corners in order, as fractions of the frame; faces whose centre is inside are "
        "ignored.",
    )


class FaceRecognitionConfig(StrictConfig):
    similarity_threshold: float | None = Field(
        default=None,
        ge=0,
        le=1,
        title="Similarity threshold",
        description="A fixed similarity at or above which a face is KNOWN. Unset (null, the default): the "
        "threshold follows the keyspace's size so that a stranger is named with probability at most "
        "max_false_match_rate. Set it only to override that.",
    )
    max_false_match_rate: float = Field(
        default=DEFAULT_MAX_FALSE_MATCH_RATE,
        gt=0,
        lt=1,
        title="Maximum false-match rate",
        description="The chance of naming a person who is not enrolled that the pipeline accepts; the "
        "similarity needed grows with the enrolled faces (0.846 for 1 face, 0.877 for 10, 0.901 for 100, "
        "0.909 for 1,000 at 0.01). Not used when similarity_threshold is set.",
    )
    fr_min_face_size: int = Field(
        default=48,
        ge=16,
        le=4096,
        title="Minimum face size",
        description="Faces smaller than this (the smaller side of the box, in frame pixels) are tracked but "
        "never used for recognition.",
    )
    frontal_only: bool = Field(
        default=True,
        title="Frontal faces only",
        description="Use only faces turned at most 45 degrees to the side and tilted at most 40 degrees "
        "(pose from the face's landmarks): profiles are not recognised.",
    )
    sampling_time_ms: int = Field(
        default=50,
        ge=0,
        le=60_000,
        title="Sampling time",
        description="Milliseconds between frames that are analysed (0: every frame).",
    )
    fr_timeout_dump: int = Field(
        default=1500,
        ge=100,
        le=600_000,
        title="Track timeout",
        description="Milliseconds a face may stay unseen before its track ends and its event is made.",
    )
    fr_sampling_size: int = Field(
        default=8,
        ge=1,
        le=64,
        title="Samples per track",
        description="How many of a track's best faces are kept; the best of them is recognised.",
    )
    fr_blur_filter_threshold: float = Field(
        default=4.0,
        ge=0,
        le=1000,
        title="Blur filter threshold",
        description="Faces less sharp than this are not used; 0 turns the filter off. The scale is "
        "enrollment's sharpness x 26.7, so the default 4 refuses what enrollment refuses: faces in focus "
        "score 40-80 whatever their size and brightness, faces blurred by 10 % of their width 2-3.",
    )
    areas: list[Area] = Field(
        default_factory=list,
        max_length=32,
        title="Excluded areas",
        description="Zones of the frame where faces are ignored (posters, screens, reflections).",
    )
    dumping_interval: int = Field(
        default=3000,
        ge=0,
        le=600_000,
        title="Dumping interval",
        description="A face that stays in view gets its event once its track is this many milliseconds old, "
        "instead of when it leaves; 0: only when it leaves. Each track has one event either way.",
    )
    dumping_confidence_threshold: float = Field(
        default=0.9,
        ge=0,
        le=1,
        title="Dumping confidence threshold",
        description="Faces detected with less confidence than this are tracked but not used for recognition.",
    )
    matching_iou_threshold: float = Field(
        default=0.3,
        gt=0,
        le=1,
        title="Matching IoU threshold",
        description="A face continues a track when its box overlaps the track's last box by at least this "
        "(intersection over union).",
    )
    fr_primary_threshold: float = Field(
        default=0.8,
        ge=0,
        le=1,
        title="Primary detection threshold",
        description="Detection confidence a face needs to start a track.",
    )
    fr_secondary_threshold: float = Field(
        default=0.4,
        ge=0.05,
        le=1,
        title="Secondary detection threshold",
        description="Detection confidence a face needs to continue a track (not above the primary "
        "threshold).",
    )
    keyspace: str = Field(
        default="default",
        min_length=1,
        max_length=64,
        pattern=KEYSPACE_RE.pattern,
        title="Keyspace",
        description="The enrollment keyspace faces are matched against (POST /v1/face/keyspace).",
    )

    @field_validator("fr_secondary_threshold")
    @classmethod
    def _secondary_not_above_primary(cls, value: float, info) -> float:
        primary = info.data.get("fr_primary_threshold")
        if primary is not None and value > primary:
            raise ValueError(f"must not exceed fr_primary_threshold ({primary})")
        return value


PRESETS: dict[str, dict[str, Any]] = {
    # A door or turnstile: one person at a time, close to the camera; a fast, strict answer.
    "access-control": {
        "max_false_match_rate": 0.001,
        "fr_min_face_size": 80,
        "frontal_only": True,
        "sampling_time_ms": 50,
        "fr_timeout_dump": 1000,
        "dumping_interval": 1000,
        "fr_sampling_size": 8,
    },
    # A hall or a street: many small faces at any angle; fewer frames, longer tracks.
    "crowd": {
        "max_false_match_rate": 0.01,
        "fr_min_face_size": 32,
        "frontal_only": False,
        "sampling_time_ms": 100,
        "fr_timeout_dump": 2000,
        "dumping_interval": 0,
        "fr_sampling_size": 4,
        "fr_blur_filter_threshold": 2.0,
    },
    # Alerts on a watch list: tolerant of angle, strict on the name.
    "watchlist": {
        "max_false_match_rate": 0.001,
        "fr_min_face_size": 40,
        "frontal_only": False,
        "dumping_interval": 2000,
    },
}


# --- matching -----------------------------------------------------------------


Matcher = Callable[[np.ndarray, str], FaceMatch | None]


_missing_keyspaces: set[str] = set()


def enrolled_match(embedding: np.ndarray, keyspace: str) -> FaceMatch | None:
    """The best match among the faces enrolled in `keyspace` (the registered
    gallery); None when nobody is enrolled there. A keyspace that does not exist
    (yet) has nobody in it: its faces are UNKNOWN, and the log says why once."""
    gallery = gallery_get()
    if gallery is None:
        return None
    try:
        match = gallery.match(keyspace, embedding)
    except KeyspaceMissing:
        if keyspace not in _missing_keyspaces:
            _missing_keyspaces.add(keyspace)
            logger.warning(
                "%s: keyspace '%s' does not exist (POST /v1/face/keyspace); every face is UNKNOWN",
                ANALYTIC_ID,
                keyspace,
            )
        return None
    finally:
        connection_release()  # the stream's thread holds no connection between tracks
    _missing_keyspaces.discard(keyspace)
    return match


# --- the processor ----------------------------------------------------------------


def _inside(x: float, y: float, polygon: np.ndarray) -> bool:
    """Even-odd ray casting; `polygon` is an (n, 2) array in the same units."""
    inside = False
    n = len(polygon)
    for i in range(n):
        x0, y0 = polygon[i]
        x1, y1 = polygon[(i + 1) % n]
        if (y0 > y) != (y1 > y) and x < x0 + (y - y0) * (x1 - x0) / (y1 - y0):
            inside = not inside
    return inside


class FaceRecognitionProcessor(Processor):
    def __init__(
        self, config: FaceRecognitionConfig, *, engine=None, matcher: Matcher | None = None, embedder=None
    ):
        from .batching import face_embed_runtime
        from .engine import face_engine

        self.config = config
        self.engine = engine or face_engine()
        # The worker's batching runtime by default; an engine given (tests) brings its own embedder.
        self.embedder = embedder or (self.engine.embedder if engine is not None else face_embed_runtime())
        self.matcher = matcher or enrolled_match
        self.tracker = IoUTracker(
            iou_threshold=config.matching_iou_threshold,
            timeout_s=config.fr_timeout_dump / 1000,
            start_score=config.fr_primary_threshold,
            max_tracks=MAX_TRACKS,
            max_gap_s=MAX_TRACK_GAP_S,
            end_frames=END_FRAMES,
            verify=self._same_face,
            same_face_similarity=SAME_FACE_SIMILARITY,
        )
        # The frame being analysed and its faces' embeddings (computed only when the
        # tracker asks: after a gap or a cut), for `_same_face`.
        self._image: np.ndarray | None = None
        self._faces: list = []
        self._embedded: dict[int, np.ndarray] = {}
        self._thumbnail: np.ndarray | None = None
        self.cuts = 0
        self.areas = [np.array([(p.x, p.y) for p in area.points], dtype=np.float64) for area in config.areas]
        self.matches = 0  # embeddings matched (one per track with a usable face)
        self.rejected: dict[str, int] = {"size": 0, "confidence": 0, "frontal": 0, "blur": 0, "area": 0}
        # Events made before a failure in the same frame, handed out with the next one.
        self._carry: list[EventRecord] = []
        # Ended tracks whose faces the embedder refused (busy): tried again at the next frame.
        self._deferred: list[Track] = []
        self.deferred = 0  # times tracks were put off because the embedder was busy
        self.lost = 0  # tracks that never got their event: put off beyond MAX_TRACKS, or at close

    # -- the frame loop --------------------------------------------------------------
    def process(self, frame: Frame) -> ProcessResult:
        image, now = frame.image, frame.timestamp
        height, width = image.shape[:2]
        faces = [
            face
            for face in self.engine.detector.detect(image, min_score=self.config.fr_secondary_threshold)
            if not self._excluded(face, width, height)
        ]
        cut = self._scene_cut(image)
        self._image, self._faces, self._embedded = image, faces, {}
        try:
            update = self.tracker.update(faces, now, cut=cut)
        finally:
            self._image, self._faces, self._embedded = None, [], {}
        overlay = []
        for face, track in zip(faces, update.assigned, strict=True):
            if track is None:
                continue
            if not track.decided:
                self._sample(track, face, image, now)
            overlay.append(self._overlay_item(track))
        due = list(update.ended)
        if self.config.dumping_interval > 0:
            limit = self.config.dumping_interval / 1000
            due += [t for t in self.tracker.tracks if not t.decided and t.samples and t.age(now) >= limit]
        return ProcessResult(overlay=overlay, events=self._decide_all(due))

    def close(self) -> ProcessResult:
        events = self._decide_all(self.tracker.flush())
        if self._deferred:
            self.lost += len(self._deferred)
            logger.warning(
                "%s: %d faces not recognised at close: the face embedder was busy",
                ANALYTIC_ID,
                len(self._deferred),
            )
            self._deferred = []
        return ProcessResult(events=events)

    # -- continuity -------------------------------------------------------------------
    def _scene_cut(self, image: np.ndarray) -> bool:
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
        small = cv2.resize(grey, (32, 18), interpolation=cv2.INTER_AREA).astype(np.float32)
        previous, self._thumbnail = self._thumbnail, small
        if previous is None:
            return False
        cut = float(np.abs(small - previous).mean()) > SCENE_CUT_DIFFERENCE
        self.cuts += cut
        return cut

    def _reference(self, track: Track) -> np.ndarray | None:
        """The embedding of the track's best sample (kept while that sample stays the best)."""
        best = track.best
        if best is None:
            return None
        if track.reference is None or track.reference[0] is not best:
            track.reference = (best, self.engine.embedder.embed(best.crop, best.face))
        return track.reference[1]

    def _same_face(self, track: Track, index: int) -> float | None:
        """Similarity of the frame's face `index` to the track's face; None when either
        cannot be embedded usefully (no usable sample yet, a face too small)."""
        face = self._faces[index]
        if self._image is None or face.size < self.config.fr_min_face_size:
            return None
        reference = self._reference(track)
        if reference is None:
            return None
        if index not in self._embedded:
            self._embedded[index] = self.engine.embedder.embed(self._image, face)
        return float(self.engine.similarity(self._embedded[index], reference))

    # -- per face ---------------------------------------------------------------------
    def _excluded(self, face, width: int, height: int) -> bool:
        if not self.areas:
            return False
        x, y, w, h = face.box
        cx, cy = (x + w / 2) / width, (y + h / 2) / height
        if any(_inside(cx, cy, polygon) for polygon in self.areas):
            self.rejected["area"] += 1
            return True
        return False

    def _sample(self, track: Track, face, image: np.ndarray, now: float) -> None:
        config = self.config
        if face.size < config.fr_min_face_size:
            self.rejected["size"] += 1
            return
        if face.score < config.dumping_confidence_threshold:
            self.rejected["confidence"] += 1
            return
        # Pose from the landmarks' geometry: a profile's nose leaves the eyes' middle
        # and its eyes close up against the mouth (analytics.face.quality.pose).
        yaw, pitch = quality.pose(face.landmarks)
        if config.frontal_only and (yaw > FRONTAL_MAX_YAW or abs(pitch) > FRONTAL_MAX_PITCH):
            self.rejected["frontal"] += 1
            return
        frontal = max(0.0, math.cos(math.radians(yaw)))
        # Sharpness of the aligned face at a fixed small scale, contrast-normalised
        # (quality.sharpness): a small or dim face in focus passes, a blurred one does not.
        chip, kind = quality.aligned_chip(self.engine.embedder, image, face)
        blur = quality.blur_filter_score(quality.sharpness(chip, kind=kind))
        if config.fr_blur_filter_threshold > 0 and blur < config.fr_blur_filter_threshold:
            self.rejected["blur"] += 1
            return
        # Bigger, sharper, more frontal and surer faces first; each factor saturates
        # where the embedder stops gaining from it.
        quality_score = (
            face.score
            * (0.5 + 0.5 * frontal)
            * min(1.0, face.size / 112)
            * min(1.0, blur / quality.blur_filter_score(quality.SHARP_ENOUGH))
        )
        if len(track.samples) >= config.fr_sampling_size and quality_score <= track.samples[-1].quality:
            return  # not among the best: skip the copy
        sample = face_sample(face, image, quality=quality_score, timestamp=now)
        track.offer(sample, config.fr_sampling_size)

    # -- per track ----------------------------------------------------------------------
    def _decide_all(self, tracks: list[Track]) -> list[EventRecord]:
        from .batching import faces_embed

        events, self._carry = self._carry, []
        # Not yet reported and with a usable face; each track once.
        pending = list({id(t): t for t in [*self._deferred, *tracks] if not t.decided and t.samples}.values())
        self._deferred = []
        if not pending:
            return events
        try:
            embeddings = faces_embed(self.embedder, [(t.best.crop, t.best.face) for t in pending])
        except ModelBusy:
            # The embedder is behind: live tracks are due again at the next frame,
            # ended ones are kept (the newest MAX_TRACKS) and tried with it.
            self.deferred += 1
            live = {id(t) for t in self.tracker.tracks}
            ended = [t for t in pending if id(t) not in live]
            self.lost += max(0, len(ended) - MAX_TRACKS)
            self._deferred = ended[-MAX_TRACKS:]
            return events
        except Exception:
            for track in pending:
                track.decided = True  # one failure, not one per frame
            self._carry = events
            raise
        failure: Exception | None = None
        for track, embedding in zip(pending, embeddings, strict=True):
            try:
                events.append(self._decide(track, embedding))
            except Exception as exc:
                track.decided = True  # one failure, not one per frame
                failure = failure or exc
        if failure is not None:
            # The pipeline host counts and shows the error; what was made is not lost.
            self._carry = events
            raise failure
        return events

    def _decide(self, track: Track, embedding: np.ndarray) -> EventRecord:
        best = track.best
        track.reference = (best, embedding)  # the track's face, for continuing it later
        match = self.matcher(embedding, self.config.keyspace)
        self.matches += 1
        similarity = float(match.similarity) if match is not None else 0.0
        decision = decide(
            similarity,
            gallery_size=max(1, match.gallery_size if match is not None else 1),
            embedder_name=self.engine.embedder.name,
            max_false_match_rate=self.config.max_false_match_rate,
            similarity_threshold=self.config.similarity_threshold,
        )
        known = match is not None and decision.accepted
        track.decided = True
        track.status = KNOWN if known else UNKNOWN
        track.label = (match.name or match.face_id) if known else "unknown"
        return EventRecord(
            primary_text=match.name if known else "",
            secondary_text=match.secondary_text if known else "",
            pipeline_data={
                "face_id": match.face_id if known else "",
                "status": track.status,
                "similarity": round(similarity, 4),
                # P(a stranger scores this high against one of the keyspace's faces),
                # and the similarity that was needed to be KNOWN.
                "false_match_probability": None
                if match is None or decision.false_match_probability is None
                else float(f"{decision.false_match_probability:.3g}"),
                "threshold": round(decision.threshold, 4),
                "confidence_detection": round(float(best.score), 4),
                "bounding_box": best.bounding_box,
            },
            image_jpeg=best.crop_jpeg(),
            embedding=[float(v) for v in embedding],
            search_text=" ".join(p for p in (match.name if known else "", track.status.lower()) if p),
            timestamp=best.timestamp,
        )

    def _overlay_item(self, track: Track) -> OverlayItem:
        x, y, w, h = track.box
        if not track.decided:
            label, color = "", COLOR_PENDING
        elif track.status == KNOWN:
            label, color = track.label, COLOR_KNOWN
        else:
            label, color = "unknown", COLOR_UNKNOWN
        return OverlayItem(kind="box", points=((x, y), (x + w, y + h)), label=label, color=color)


@register
class FaceRecognitionAnalytic(AnalyticPlugin):
    id = ANALYTIC_ID
    name = "Face Recognition"
    major_version = 2
    minor_version = 0
    publisher = "Nodeflux"
    description = "Realtime face detection and face recognition"
    type = "recognition"
    config_model = FaceRecognitionConfig
    presets = PRESETS
    models = (FACE_ENGINE,)
    image_search = FACE_IMAGE_SEARCH

    def create_processor(self, config: StrictConfig) -> Processor:
        assert isinstance(config, FaceRecognitionConfig)
        return FaceRecognitionProcessor(config)
