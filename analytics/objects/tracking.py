"""Multi-object tracking for the people and vehicle analytics: ByteTrack
(Zhang et al., ECCV 2022) with time-aware motion and buffered IoU.

Written here rather than taken from a library, after checking the kept ones:
- `supervision` 0.31 no longer ships ByteTrack (it moved to `trackers`), and its
  line and polygon zones would bring av, matplotlib, scipy, pillow, requests and
  tqdm into every worker while doing neither dwell, stop detection nor hysteresis;
- `trackers` 2.6 (where ByteTrack lives now) declares `opencv-python`, the GUI
  build that must not sit beside our `opencv-python-headless`, plus supervision;
- `norfair` 2.3 requires numpy < 2 (we lock numpy 2.x).
The algorithm is short; numpy is all it needs.

Per update, with the frame's detections and its stream timestamp:
1. every kept track's Kalman state is predicted to this timestamp (constant
   velocity over the real interval, so dropped frames do not confuse it);
2. high-confidence detections (>= `high_score`) are matched to tracked and lost
   tracks by IoU of the predicted boxes;
3. the low-confidence ones (the rest) are matched to tracked tracks left over:
   an object half hidden keeps its identity on a weak box (ByteTrack's idea);
4. tracks born on the previous frame are matched to high detections left over;
   unmatched they die (a single-frame false positive never gets an id);
5. left-over high detections scoring >= `new_track_score` start tracks;
6. unmatched tracks are "lost": kept with predicted boxes for `lost_ttl_ms` of
   stream time, so an object that reappears after a short occlusion near where
   its motion predicted keeps its id; then they end.

IoU is computed on boxes widened on each side by `iou_buffer` × their longer
side (after C-BIoU, Yang et al., 2023, which widens by width and height): at a
few analysed frames per second a walking person moves more than their narrow
box's width between frames, and plain IoU would be 0 (on vtest.avi at 5 fps,
widening by the longer side instead of width and height cut the identities
given from 71 to 43, and brought a line's count from 27 to 31 of the 32
crossings counted by eye).
Matching is greedy, best pair first: scipy (linear_sum_assignment) is not a
runtime dependency (only a test one). Greedy and optimal assignment differ only
where overlapping objects compete for boxes: on vtest.avi scipy's gave the same
line crossings at 5 and 10 fps (and 40 identities instead of 43 at 10 fps).

Ids are given when a track is confirmed (its second sighting, or on the very
first frame), counting from 1 per tracker (one tracker per stream). Detections
are matched whatever their class: the detector often flips between car and
truck on one vehicle; a track's label is the most frequent of its last
`LABEL_VOTES` labels. State is bounded: at most `max_tracks` tracks; when full,
the longest-lost go first, then new objects are refused (counted).
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .detector import Detection

LABEL_VOTES = 15  # last labels kept per track for its majority label
REFERENCE_STEP_MS = 40.0  # ByteTrack's noise weights were tuned per frame at 25-30 fps
_STD_POSITION = 1 / 20  # ByteTrack's weights, relative to the box height
_STD_VELOCITY = 1 / 160


@dataclass(frozen=True)
class TrackerConfig:
    high_score: float = 0.5  # detections at or above: first association
    new_track_score: float = 0.6  # a left-over detection at or above starts a track
    match_iou: float = 0.2  # first association (high detections, all kept tracks)
    low_match_iou: float = 0.5  # second association (low detections, tracked tracks)
    unconfirmed_match_iou: float = 0.3  # tracks born on the previous frame
    iou_buffer: float = 0.3  # boxes widened on each side by this share of their longer side
    lost_ttl_ms: float = 1500.0  # a lost track ends after this much stream time unseen
    max_tracks: int = 512
    # Of two detections of one label where one lies this much inside the other, the less
    # confident is dropped: the detector often gives one object a whole and a part box.
    max_containment: float = 0.8


@dataclass(frozen=True)
class TrackedObject:
    """A confirmed track as of one update. `box` (x1, y1, x2, y2, frame pixels) is the
    Kalman estimate: corrected by this frame's detection when `observed`, predicted
    when lost. `confidence` is the last matched detection's."""

    track_id: int
    label: str
    confidence: float
    box: tuple[float, float, float, float]
    observed: bool
    first_ms: float  # first sighting
    last_ms: float  # last sighting
    hits: int  # sightings so far


@dataclass(frozen=True)
class TrackUpdate:
    """What one update gives: the confirmed tracks kept (observed now or lost, within
    `lost_ttl_ms`) and the ids of tracks that ended in this update."""

    timestamp_ms: float
    tracks: list[TrackedObject]
    ended: list[int]


# --- Kalman filter on (cx, cy, aspect, height) and their velocities ------------------------


def _xyah(box: Sequence[float]) -> np.ndarray:
    x1, y1, x2, y2 = box
    w, h = max(x2 - x1, 1e-3), max(y2 - y1, 1e-3)
    return np.array([x1 + w / 2, y1 + h / 2, w / h, h])


def _box(mean: np.ndarray) -> tuple[float, float, float, float]:
    cx, cy, a, h = mean[:4]
    w = a * h
    return (float(cx - w / 2), float(cy - h / 2), float(cx + w / 2), float(cy + h / 2))


_H = np.eye(4, 8)


def _initiate(measurement: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h = measurement[3]
    std = [
        2 * _STD_POSITION * h, 2 * _STD_POSITION * h, 1e-2, 2 * _STD_POSITION * h,
        10 * _STD_VELOCITY * h, 10 * _STD_VELOCITY * h, 1e-5, 10 * _STD_VELOCITY * h,
    ]  # fmt: skip
    return np.r_[measurement, np.zeros(4)], np.diag(np.square(std))


def _predict(means: np.ndarray, covs: np.ndarray, steps: float) -> tuple[np.ndarray, np.ndarray]:
    """All tracks at once; `steps` = elapsed time in reference frame intervals."""
    motion = np.eye(8)
    motion[range(4), range(4, 8)] = steps
    h = means[:, 3]
    ones = np.ones_like(h)
    std = np.stack(
        [
            _STD_POSITION * h, _STD_POSITION * h, 1e-2 * ones, _STD_POSITION * h,
            _STD_VELOCITY * h, _STD_VELOCITY * h, 1e-5 * ones, _STD_VELOCITY * h,
        ],
        axis=1,
    )  # fmt: skip
    noise = np.einsum("ni,ij->nij", np.square(std) * max(steps, 0.0), np.eye(8))
    means = means @ motion.T
    covs = motion @ covs @ motion.T + noise
    means[:, 3] = np.maximum(means[:, 3], 1.0)  # a shrinking box never turns inside out
    return means, covs


def _correct(mean: np.ndarray, cov: np.ndarray, measurement: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h = mean[3]
    std = [_STD_POSITION * h, _STD_POSITION * h, 1e-1, _STD_POSITION * h]
    projected_cov = _H @ cov @ _H.T + np.diag(np.square(std))
    gain = np.linalg.solve(projected_cov, (cov @ _H.T).T).T
    mean = mean + gain @ (measurement - _H @ mean)
    cov = cov - gain @ projected_cov @ gain.T
    return mean, cov


# --- association ---------------------------------------------------------------------------


def buffered_iou(a: np.ndarray, b: np.ndarray, buffer: float) -> np.ndarray:
    """IoU of every box of `a` [N, 4] with every box of `b` [M, 4], each widened by
    `buffer` of its width and height on each side."""
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))

    def widen(boxes):
        # By the longer side on all four: a walking person moves sideways by a good part
        # of their height per second, far more than their narrow box's width.
        pad = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) * buffer
        return np.stack([boxes[:, 0] - pad, boxes[:, 1] - pad, boxes[:, 2] + pad, boxes[:, 3] + pad], axis=1)

    a, b = widen(a), widen(b)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def greedy_match(similarity: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """Pairs (row, column), best similarity first, each row and column used once,
    none below `threshold`."""
    rows, cols = np.nonzero(similarity >= threshold)
    order = np.argsort(-similarity[rows, cols], kind="stable")
    used_rows, used_cols, pairs = set(), set(), []
    for k in order:
        r, c = int(rows[k]), int(cols[k])
        if r not in used_rows and c not in used_cols:
            used_rows.add(r)
            used_cols.add(c)
            pairs.append((r, c))
    return pairs


def _without_nested(detections: Sequence[Detection], max_containment: float) -> list[Detection]:
    if len(detections) < 2 or max_containment >= 1.0:
        return list(detections)
    ordered = sorted(detections, key=lambda d: -d.confidence)
    boxes = np.array([d.box for d in ordered])
    x1 = np.maximum(boxes[:, None, 0], boxes[None, :, 0])
    y1 = np.maximum(boxes[:, None, 1], boxes[None, :, 1])
    x2 = np.minimum(boxes[:, None, 2], boxes[None, :, 2])
    y2 = np.minimum(boxes[:, None, 3], boxes[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    inside = inter / np.maximum(area[:, None], 1e-9)  # [i, j]: share of box i inside box j
    kept: list[int] = []
    for i, detection in enumerate(ordered):
        if not any(
            ordered[j].label == detection.label and max(inside[i, j], inside[j, i]) >= max_containment
            for j in kept
        ):
            kept.append(i)
    return [ordered[i] for i in kept]


# --- tracks --------------------------------------------------------------------------------

_NEW, _TRACKED, _LOST = "new", "tracked", "lost"


@dataclass
class _Track:
    mean: np.ndarray
    cov: np.ndarray
    confidence: float
    first_ms: float
    last_ms: float
    state: str = _NEW
    track_id: int = 0
    hits: int = 1
    labels: deque = field(default_factory=lambda: deque(maxlen=LABEL_VOTES))

    @property
    def label(self) -> str:
        return Counter(self.labels).most_common(1)[0][0]

    def seen(self, detection: Detection, timestamp_ms: float) -> None:
        self.mean, self.cov = _correct(self.mean, self.cov, _xyah(detection.box))
        self.confidence = detection.confidence
        self.labels.append(detection.label)
        self.last_ms = timestamp_ms
        self.hits += 1

    def public(self, observed: bool) -> TrackedObject:
        return TrackedObject(
            self.track_id, self.label, self.confidence, _box(self.mean), observed,
            self.first_ms, self.last_ms, self.hits,
        )  # fmt: skip


class ByteTracker:
    """One stream's tracker. Not thread-safe: a stream's frames come in order from one thread."""

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.config = config or TrackerConfig()
        self._tracks: list[_Track] = []
        self._next_id = 1
        self._last_ms: float | None = None
        self.refused = 0  # new objects not tracked because max_tracks were kept

    def __len__(self) -> int:
        return len(self._tracks)

    def reset(self) -> list[int]:
        """Forget all tracks (ids keep counting up); the ids of the confirmed ones."""
        ended = [t.track_id for t in self._tracks if t.track_id]
        self._tracks = []
        self._last_ms = None
        return ended

    def update(self, detections: Sequence[Detection], timestamp_ms: float) -> TrackUpdate:
        """One frame's detections at its stream timestamp (ms). A timestamp earlier than
        the last one (the stream restarted) ends every track first."""
        cfg = self.config
        ended: list[int] = []
        if self._last_ms is not None and timestamp_ms < self._last_ms:
            ended += self.reset()
        first_frame = self._last_ms is None
        steps = 0.0 if first_frame else (timestamp_ms - self._last_ms) / REFERENCE_STEP_MS
        self._last_ms = timestamp_ms

        if self._tracks:
            means = np.stack([t.mean for t in self._tracks])
            # As ByteTrack: a track not seen last frame keeps its size (a growing box
            # would otherwise swell without a measurement to stop it).
            means[[t.state != _TRACKED for t in self._tracks], 7] = 0.0
            means, covs = _predict(means, np.stack([t.cov for t in self._tracks]), steps)
            for track, mean, cov in zip(self._tracks, means, covs, strict=True):
                track.mean, track.cov = mean, cov

        detections = _without_nested(detections, cfg.max_containment)
        high = [d for d in detections if d.confidence >= cfg.high_score]
        low = [d for d in detections if d.confidence < cfg.high_score]
        confirmed = [t for t in self._tracks if t.state != _NEW]
        unconfirmed = [t for t in self._tracks if t.state == _NEW]
        matched: set[int] = set()  # id() of the tracks seen in this frame

        def associate(tracks: list[_Track], dets: list[Detection], threshold: float):
            if not tracks or not dets:
                return tracks, dets
            similarity = buffered_iou(
                np.array([_box(t.mean) for t in tracks]), np.array([d.box for d in dets]), cfg.iou_buffer
            )
            pairs = greedy_match(similarity, threshold)
            for r, c in pairs:
                tracks[r].seen(dets[c], timestamp_ms)
                matched.add(id(tracks[r]))
            used_r, used_c = {r for r, _ in pairs}, {c for _, c in pairs}
            return (
                [t for i, t in enumerate(tracks) if i not in used_r],
                [d for i, d in enumerate(dets) if i not in used_c],
            )

        # Tracked tracks before lost ones when they compete for one box: stable pairs first.
        confirmed.sort(key=lambda t: t.state != _TRACKED)
        left_tracks, left_high = associate(confirmed, high, cfg.match_iou)
        left_tracked = [t for t in left_tracks if t.state == _TRACKED]
        associate(left_tracked, low, cfg.low_match_iou)
        _, left_high = associate(unconfirmed, left_high, cfg.unconfirmed_match_iou)

        kept: list[_Track] = []
        for track in self._tracks:
            if id(track) in matched:
                if track.state != _TRACKED:
                    if not track.track_id:
                        track.track_id = self._new_id()
                    track.state = _TRACKED
                kept.append(track)
            elif track.state == _NEW:
                continue  # seen once, then not again: never confirmed, never given an id
            elif timestamp_ms - track.last_ms > cfg.lost_ttl_ms:
                ended.append(track.track_id)
            else:
                track.state = _LOST
                kept.append(track)

        for detection in left_high:
            if detection.confidence < cfg.new_track_score:
                continue
            if len(kept) >= cfg.max_tracks and not self._make_room(kept, ended):
                self.refused += 1
                continue
            mean, cov = _initiate(_xyah(detection.box))
            track = _Track(mean, cov, detection.confidence, timestamp_ms, timestamp_ms)
            track.labels.append(detection.label)
            if first_frame:
                track.state, track.track_id = _TRACKED, self._new_id()
            kept.append(track)
        self._tracks = kept

        tracks = [t.public(id(t) in matched or t.hits == 1) for t in kept if t.track_id]
        return TrackUpdate(timestamp_ms, tracks, ended)

    def _new_id(self) -> int:
        track_id, self._next_id = self._next_id, self._next_id + 1
        return track_id

    @staticmethod
    def _make_room(kept: list[_Track], ended: list[int]) -> bool:
        lost = [t for t in kept if t.state == _LOST]
        if not lost:
            return False
        oldest = min(lost, key=lambda t: t.last_ms)
        kept.remove(oldest)
        ended.append(oldest.track_id)
        return True
