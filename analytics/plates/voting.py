"""One plate per vehicle pass from the readings of its track.

A track is read on several frames; single readings disagree where a character is
blurred or half hidden. Readings are grouped by length and layout (how many
characters fall in each slot of the format, so that position i means the same slot
in every reading of a group); the group with the most confidence wins, and inside
it each position takes the character with the most confidence summed over the
readings. The result's confidence per character is that winning sum divided by the
number of all readings (a reading that disagrees, or has another layout, adds
nothing), so a plate read alike on every frame keeps its recogniser's confidence
and a contested one loses it.

A reading that is the start or the end of a longer one, short by a character or
two, is taken for that plate with characters lost at its edge (where the frame's
edge, a bumper or glare takes them; a recogniser drops characters far more often
than it invents them): it supports the longer group on the characters it has, and
the lost ones count as not read. Without this, two full readings and two cut ones
of the same plate would leave it contested at half confidence.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from analytics.plates.formats import Parsed, normalise

MAX_READINGS = 32  # per track; beyond it the least confident reading is dropped
MAX_LOST = 2  # characters a reading may have lost at the plate's edge and still support it
MIN_SUPPORT = 3  # ... when it has at least this many characters left


@dataclass(frozen=True)
class Reading:
    """One frame's reading: the plate (normalised, corrected), one confidence per
    character, and its layout over the format's slots (empty: grouped by length only)."""

    plate: str
    confidences: tuple[float, ...]
    layout: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not self.plate or normalise(self.plate) != self.plate:
            raise ValueError(f"a reading's plate is upper-case letters and digits only, got {self.plate!r}")
        if len(self.confidences) != len(self.plate):
            raise ValueError("one confidence per character of the plate")
        if any(not 0.0 <= c <= 1.0 for c in self.confidences):
            raise ValueError("confidences are between 0 and 1")
        if self.layout and sum(self.layout) != len(self.plate):
            raise ValueError("the layout's counts add up to the plate's length")

    @classmethod
    def from_parsed(cls, parsed: Parsed) -> Reading:
        return cls(parsed.plate, tuple(parsed.confidences), tuple(parsed.layout))

    @property
    def confidence(self) -> float:
        return sum(self.confidences) / len(self.confidences)


@dataclass(frozen=True)
class Vote:
    """The track's plate: its confidence (0-1) and per character, how many readings
    gave exactly this plate (`agreeing`) out of how many were voted (`readings`)."""

    plate: str
    confidence: float
    char_confidences: tuple[float, ...]
    agreeing: int
    readings: int
    layout: tuple[int, ...] = ()


def edge_offset(short: str, long: str) -> int | None:
    """Where `short` sits in `long` when it is `long` with up to MAX_LOST characters
    lost at its start or its end (0: the start kept); None otherwise."""
    lost = len(long) - len(short)
    if not 0 < lost <= MAX_LOST or len(short) < MIN_SUPPORT:
        return None
    if long.startswith(short):
        return 0
    if long.endswith(short):
        return lost
    return None


def vote(readings: Iterable[Reading]) -> Vote | None:
    """The plate voted from these readings (see the module's doc); None without any."""
    readings = list(readings)
    if not readings:
        return None
    groups: dict[tuple[int, tuple[int, ...]], list[Reading]] = defaultdict(list)
    for reading in readings:
        groups[(len(reading.plate), reading.layout)].append(reading)

    def supporters(key: tuple[int, tuple[int, ...]]) -> list[tuple[Reading, int]]:
        """Shorter readings that are a member of this group cut at an edge, with their offset."""
        found = []
        for reading in readings:
            for member in groups[key]:
                offset = edge_offset(reading.plate, member.plate)
                if offset is not None:
                    found.append((reading, offset))
                    break
        return found

    def weight(key: tuple[int, tuple[int, ...]]) -> float:
        cut = sum(r.confidence * len(r.plate) / key[0] for r, _ in supporters(key))
        return sum(r.confidence for r in groups[key]) + cut

    # Most summed confidence wins; on a tie, more readings, then the first seen (max keeps it).
    key = max(groups, key=lambda k: (weight(k), len(groups[k])))
    # The most confident reading first: on a tie at a position, its character wins.
    members = [(r, 0) for r in sorted(groups[key], key=lambda r: -r.confidence)] + supporters(key)
    chars, weights = [], []
    for position in range(key[0]):
        totals: dict[str, float] = {}  # insertion order: the most confident reading's first
        for reading, offset in members:
            if 0 <= position - offset < len(reading.plate):
                char = reading.plate[position - offset]
                totals[char] = totals.get(char, 0.0) + reading.confidences[position - offset]
        char = max(totals, key=totals.__getitem__)  # max keeps the first of equals
        chars.append(char)
        weights.append(totals[char] / len(readings))
    plate = "".join(chars)
    return Vote(
        plate=plate,
        confidence=sum(weights) / len(weights),
        char_confidences=tuple(weights),
        agreeing=sum(r.plate == plate for r in readings),
        readings=len(readings),
        layout=key[1],
    )


class TrackVote:
    """The readings of one vehicle track, at most `max_readings` of them (the most
    confident are kept), and their vote."""

    def __init__(self, max_readings: int = MAX_READINGS):
        if max_readings < 1:
            raise ValueError("max_readings must be at least 1")
        self.max_readings = max_readings
        self._readings: list[Reading] = []

    def __len__(self) -> int:
        return len(self._readings)

    def add(self, reading: Reading) -> None:
        self._readings.append(reading)
        if len(self._readings) > self.max_readings:
            weakest = min(range(len(self._readings)), key=lambda i: self._readings[i].confidence)
            del self._readings[weakest]

    def result(self) -> Vote | None:
        return vote(self._readings)
