"""Face tracks across frames, by box overlap (IoU).

A track is one face seen in consecutive samples of a stream. It keeps the best
few face samples (by a quality score) so that, when it ends, the analytic
embeds one good face instead of every face of every frame. The tracker knows
nothing about models: detections are anything with a `box` (x, y, w, h) and a
`score`, samples are opaque objects with a `quality`.

Bounded: at most `max_tracks` live tracks; when a new face arrives at a full
tracker, the track seen least recently is ended early (and reported as ended)
rather than dropped silently.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

Box = tuple[int, int, int, int]  # x, y, width, height in frame pixels


class Detection(Protocol):
    box: Box
    score: float


class Sample(Protocol):
    quality: float


def iou(a: Box, b: Box) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    left, top = max(ax, bx), max(ay, by)
    right, bottom = min(ax + aw, bx + bw), min(ay + ah, by + bh)
    inter = max(0, right - left) * max(0, bottom - top)
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


@dataclass(eq=False)
class Track:
    track_id: int
    box: Box
    score: float
    first_seen: float
    last_seen: float
    hits: int = 1
    # Best samples first; at most `keep` of them (see `offer`).
    samples: list[Any] = field(default_factory=list)
    # Set once the track's event was made (early dump or end); a decided track emits nothing more.
    decided: bool = False
    label: str = ""
    status: str = ""
    # Whatever the owner wants to remember about the track (e.g. the match).
    result: Any = None

    def offer(self, sample: Sample, keep: int) -> bool:
        """Keep `sample` if it is among the `keep` best so far; True when kept."""
        if len(self.samples) >= keep and sample.quality <= self.samples[-1].quality:
            return False
        # Sorted by descending quality: bisect on the negated key.
        keys = [-s.quality for s in self.samples]
        self.samples.insert(bisect.bisect_right(keys, -sample.quality), sample)
        del self.samples[keep:]
        return True

    @property
    def best(self) -> Any | None:
        return self.samples[0] if self.samples else None

    def age(self, now: float) -> float:
        return now - self.first_seen


@dataclass
class TrackUpdate:
    """What one `update` did: each detection's track (None when the detection
    started no track), and the tracks that ended."""

    assigned: list[Track | None]
    ended: list[Track]


class IoUTracker:
    """Greedy IoU association of detections to live tracks.

    - A detection continues the live track it overlaps most (IoU at least
      `iou_threshold`), best pairs first; one detection per track per frame.
    - A track unseen for more than `max_gap_s` is not continued any more (a
      face at the same place after such a gap is a new track: at a door, the
      next person often stands where the last one stood).
    - An unmatched detection starts a track only if its score is at least
      `start_score` (weaker detections may continue a track, never start one).
    - A track not seen for `timeout_s` ends.
    """

    def __init__(
        self,
        *,
        iou_threshold: float,
        timeout_s: float,
        start_score: float = 0.0,
        max_tracks: int = 64,
        max_gap_s: float | None = None,
    ) -> None:
        if max_tracks < 1:
            raise ValueError("max_tracks must be at least 1")
        self.iou_threshold = iou_threshold
        self.timeout_s = timeout_s
        self.max_gap_s = timeout_s if max_gap_s is None else min(max_gap_s, timeout_s)
        self.start_score = start_score
        self.max_tracks = max_tracks
        self.tracks: list[Track] = []
        self.evicted = 0  # tracks ended early because the tracker was full
        self._ids = itertools.count(1)

    def update(self, detections: Sequence[Detection], now: float) -> TrackUpdate:
        ended = self.expire(now)
        assigned: list[Track | None] = [None] * len(detections)
        pairs = sorted(
            (
                (iou(track.box, det.box), t, d)
                for t, track in enumerate(self.tracks)
                if now - track.last_seen <= self.max_gap_s
                for d, det in enumerate(detections)
            ),
            key=lambda pair: pair[0],
            reverse=True,
        )
        used_tracks: set[int] = set()
        for overlap, t, d in pairs:
            if overlap < self.iou_threshold:
                break
            if t in used_tracks or assigned[d] is not None:
                continue
            used_tracks.add(t)
            track = self.tracks[t]
            det = detections[d]
            track.box, track.score, track.last_seen = tuple(det.box), float(det.score), now
            track.hits += 1
            assigned[d] = track
        for d, det in enumerate(detections):
            if assigned[d] is not None or det.score < self.start_score:
                continue
            if len(self.tracks) >= self.max_tracks:
                oldest = min(self.tracks, key=lambda track: track.last_seen)
                self.tracks.remove(oldest)
                ended.append(oldest)
                self.evicted += 1
            track = Track(
                track_id=next(self._ids),
                box=tuple(det.box),
                score=float(det.score),
                first_seen=now,
                last_seen=now,
            )
            self.tracks.append(track)
            assigned[d] = track
        return TrackUpdate(assigned=assigned, ended=ended)

    def expire(self, now: float) -> list[Track]:
        """End and return the tracks not seen for `timeout_s`."""
        ended = [track for track in self.tracks if now - track.last_seen >= self.timeout_s]
        if ended:
            self.tracks = [track for track in self.tracks if now - track.last_seen < self.timeout_s]
        return ended

    def flush(self) -> list[Track]:
        """End every live track (the stream stops)."""
        ended, self.tracks = self.tracks, []
        return ended
