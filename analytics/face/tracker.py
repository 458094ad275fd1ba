"""Face tracks across frames, by box overlap (IoU) and, where position alone
cannot tell, by appearance.

A track is one face seen in consecutive samples of a stream. It keeps the best
few face samples (by a quality score) so that, when it ends, the analytic
embeds one good face instead of every face of every frame. The tracker knows
nothing about models: detections are anything with a `box` (x, y, w, h) and a
`score`, samples are opaque objects with a `quality`; appearance is asked of
the owner's `verify(track, detection_index)`, which answers a similarity (or
None when it cannot tell).

Continuity is counted in analysed frames as well as in wall time, so that a
busy machine (seconds between analysed frames) does not cut a face that stays
in view into several tracks:

- a track ends only when unseen for `timeout_s` AND for `end_frames` analysed
  frames (counting the one that ends it);
- position (IoU) alone continues a track seen within `max_gap_s`; after a
  longer gap, or across a scene cut, the face must also look the same
  (`verify` >= `same_face_similarity`); one that looks different splits the
  track (it ends now, the detection starts a new one);
- a detection no box continues may continue a track unseen for a few frames,
  anywhere in the frame, when it looks the same.

Bounded: at most `max_tracks` live tracks; when a new face arrives at a full
tracker, the track seen least recently is ended early (and reported as ended)
rather than dropped silently.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable, Sequence
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
    # Analysed frames since the track was last seen (0: seen in the latest one).
    missed: int = 0
    # The owner's appearance reference (e.g. the embedding of the best sample).
    reference: Any = None

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


Verify = Callable[[Track, int], float | None]


class IoUTracker:
    """Greedy IoU association of detections to live tracks, checked by
    appearance where position alone is not enough (see the module docstring).

    - A detection continues the live track it overlaps most (IoU at least
      `iou_threshold`), best pairs first; one detection per track per frame.
    - A track unseen for more than `max_gap_s`, or any track across a scene cut
      (`update(..., cut=True)`), is continued by position only when `verify`
      says the face is the same; one verified different is split. Without
      `verify` such a face starts a new track (at a door, the next person
      often stands where the last one stood).
    - An unmatched detection continues a track unseen since the last frame or
      longer when `verify` finds the same face, else starts a track if its
      score is at least `start_score` (weaker detections may continue a track,
      never start one).
    - A track not seen for `timeout_s` and `end_frames` analysed frames ends.
    """

    def __init__(
        self,
        *,
        iou_threshold: float,
        timeout_s: float,
        start_score: float = 0.0,
        max_tracks: int = 64,
        max_gap_s: float | None = None,
        end_frames: int = 1,
        verify: Verify | None = None,
        same_face_similarity: float = 0.9,
    ) -> None:
        if max_tracks < 1:
            raise ValueError("max_tracks must be at least 1")
        self.iou_threshold = iou_threshold
        self.timeout_s = timeout_s
        self.max_gap_s = timeout_s if max_gap_s is None else min(max_gap_s, timeout_s)
        self.start_score = start_score
        self.max_tracks = max_tracks
        self.end_frames = max(1, end_frames)
        self.verify = verify
        self.same_face_similarity = same_face_similarity
        self.tracks: list[Track] = []
        self.evicted = 0  # tracks ended early because the tracker was full
        self.split = 0  # tracks ended because another face took their place
        self.rejoined = 0  # tracks continued by appearance alone
        self._ids = itertools.count(1)

    def _same_face(self, track: Track, d: int) -> float | None:
        return None if self.verify is None else self.verify(track, d)

    def update(self, detections: Sequence[Detection], now: float, *, cut: bool = False) -> TrackUpdate:
        ended = self.expire(now)
        assigned: list[Track | None] = [None] * len(detections)
        pairs = sorted(
            (
                (iou(track.box, det.box), t, d)
                for t, track in enumerate(self.tracks)
                for d, det in enumerate(detections)
            ),
            key=lambda pair: pair[0],
            reverse=True,
        )
        used_tracks: set[int] = set()
        doomed: set[int] = set()  # tracks split: another face is where they were
        for overlap, t, d in pairs:
            if overlap < self.iou_threshold:
                break
            if t in used_tracks or t in doomed or assigned[d] is not None:
                continue
            track = self.tracks[t]
            if cut or now - track.last_seen > self.max_gap_s:
                similarity = self._same_face(track, d)
                if similarity is None:
                    continue  # cannot tell: the face may start its own track
                if similarity < self.same_face_similarity:
                    doomed.add(t)
                    continue
            used_tracks.add(t)
            self._continue(track, detections[d], now)
            assigned[d] = track
        # Faces no box continued: the same face as a track unseen since the last frame?
        stale = [t for t, track in enumerate(self.tracks) if t not in used_tracks and t not in doomed]
        if self.verify is not None and stale:
            for d in range(len(detections)):
                if assigned[d] is not None or not stale:
                    continue
                scored = [(self._same_face(self.tracks[t], d), t) for t in stale]
                scored = [(similarity, t) for similarity, t in scored if similarity is not None]
                best = max(scored, default=None)
                if best is not None and best[0] >= self.same_face_similarity:
                    track = self.tracks[best[1]]
                    stale.remove(best[1])
                    used_tracks.add(best[1])
                    self._continue(track, detections[d], now)
                    self.rejoined += 1
                    assigned[d] = track
        if doomed:
            for t in sorted(doomed):
                ended.append(self.tracks[t])
            self.split += len(doomed)
            kept = [track for t, track in enumerate(self.tracks) if t not in doomed]
            self.tracks = kept
        for track in self.tracks:
            if not any(track is a for a in assigned):
                track.missed += 1
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

    @staticmethod
    def _continue(track: Track, det: Detection, now: float) -> None:
        track.box, track.score, track.last_seen = tuple(det.box), float(det.score), now
        track.hits += 1
        track.missed = 0

    def expire(self, now: float) -> list[Track]:
        """End and return the tracks not seen for `timeout_s`, nor in the last
        `end_frames - 1` analysed frames (the frame at `now` being the last of `end_frames`)."""

        def over(track: Track) -> bool:
            return now - track.last_seen >= self.timeout_s and track.missed >= self.end_frames - 1

        ended = [track for track in self.tracks if over(track)]
        if ended:
            self.tracks = [track for track in self.tracks if not over(track)]
        return ended

    def flush(self) -> list[Track]:
        """End every live track (the stream stops)."""
        ended, self.tracks = self.tracks, []
        return ended
