"""Counts over time: per-minute totals per line or area, class and direction,
kept in memory until the caller flushes them to storage.

Rows are plain data (`CountRow`); the minute is the stream timestamp's minute,
so a replayed or late stream counts in the minutes its frames belong to.
`direction` says what was counted:

- "in" / "out": crossings of a line; "wrong_way": crossings against the line's
  expected direction (also counted under their own direction);
- "enter": visits that began in an area; "dwell": visits that lasted the area's
  dwell time; "stopped": objects that stopped in it;
- "peak": the highest number in the area at once during the minute. Peaks are
  maxima: rolling minutes up into hours or days takes their maximum, not their sum.

Memory is bounded by `max_rows`: when a new row would exceed it, the oldest
minute is dropped whole (counted in `dropped_rows`). A caller that flushes
closed minutes every minute never reaches it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .zones import ZoneEvent

MINUTE_MS = 60_000
PEAK = "peak"
_EVENT_DIRECTIONS = {"enter": "enter", "dwell": "dwell", "stopped": "stopped"}


@dataclass(frozen=True)
class CountRow:
    minute_ms: int  # start of the minute, stream time in ms
    zone: str  # the line's or area's name
    label: str  # the object's class
    direction: str
    value: int  # a count, or the peak for direction "peak"


class MinuteCounts:
    """One stream's (and analytic's) counts. Not thread-safe: one stream, one thread."""

    def __init__(self, max_rows: int = 20_000) -> None:
        if max_rows < 1:
            raise ValueError("max_rows must be at least 1")
        self.max_rows = max_rows
        self._rows: dict[tuple[int, str, str, str], int] = {}
        self.dropped_rows = 0

    def __len__(self) -> int:
        return len(self._rows)

    @staticmethod
    def minute_of(timestamp_ms: float) -> int:
        return int(timestamp_ms // MINUTE_MS) * MINUTE_MS

    def add(self, timestamp_ms: float, zone: str, label: str, direction: str, n: int = 1) -> None:
        key = (self.minute_of(timestamp_ms), zone, label, direction)
        if key not in self._rows:
            self._make_room()
        self._rows[key] = self._rows.get(key, 0) + n

    def peak(self, timestamp_ms: float, zone: str, label: str, value: int) -> None:
        key = (self.minute_of(timestamp_ms), zone, label, PEAK)
        if key not in self._rows:
            self._make_room()
        self._rows[key] = max(self._rows.get(key, 0), value)

    def record(self, events: Iterable[ZoneEvent]) -> None:
        """Counts what the zones reported in one frame."""
        for event in events:
            if event.kind == "crossing" and event.direction:
                self.add(event.timestamp_ms, event.zone, event.label, event.direction)
                if event.wrong_way:
                    self.add(event.timestamp_ms, event.zone, event.label, "wrong_way")
            elif event.kind in _EVENT_DIRECTIONS:
                self.add(event.timestamp_ms, event.zone, event.label, _EVENT_DIRECTIONS[event.kind])

    def record_occupancy(self, timestamp_ms: float, occupancy: dict[str, dict]) -> None:
        """Peaks per area and label from `Zones.occupancy()` of one frame ("*": all labels)."""
        for zone, figures in occupancy.items():
            self.peak(timestamp_ms, zone, "*", figures["current"])
            for label, n in figures["by_label"].items():
                self.peak(timestamp_ms, zone, label, n)

    def flush(self, before_ms: float | None = None) -> list[CountRow]:
        """Removes and returns the rows of minutes that ended at or before `before_ms`
        (all rows when None), oldest first."""
        cutoff = None if before_ms is None else self.minute_of(before_ms)
        taken = [key for key in self._rows if cutoff is None or key[0] < cutoff]
        taken.sort()
        return [CountRow(*key, self._rows.pop(key)) for key in taken]

    def _make_room(self) -> None:
        while len(self._rows) >= self.max_rows:
            oldest = min(key[0] for key in self._rows)
            doomed = [key for key in self._rows if key[0] == oldest]
            for key in doomed:
                del self._rows[key]
            self.dropped_rows += len(doomed)
