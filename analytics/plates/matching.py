"""Plates matched with OCR tolerance, and the search key.

A read plate matches a registered one when, both normalised (upper case, letters
and digits), they are equal (`exact`), or differ in one character that is a
confusable pair (I/1, O/0, B/8, S/5, Z/2, G/6: `confusable`), or the reading lacks
one character of the registered plate (`missing`: a character lost at the plate's
edge or to a bolt). Only one such difference is tolerated: two would let a short
plate match many others.

The search key maps each confusable pair to one character (the digit), so every
spelling OCR or a person may give of one plate shares a key: `LS15EBC`,
`ls15 ebc` and `LSI5EBC` all have the key `L515E8C`. A store keeps the key of each
plate to find them by equality; `deletion_keys` are the keys of a registered plate
with one character left out, which find readings that miss one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from analytics.plates.formats import CONFUSABLE_PAIRS, normalise

_TO_KEY = str.maketrans({letter: digit for letter, digit in CONFUSABLE_PAIRS})


def search_key(text: str) -> str:
    """The plate's key: normalised, each confusable letter replaced by its digit."""
    return normalise(text).translate(_TO_KEY)


def deletion_keys(text: str) -> frozenset[str]:
    """The search keys of the plate with one character left out (at most its length)."""
    key = search_key(text)
    return frozenset(key[:i] + key[i + 1 :] for i in range(len(key))) if len(key) > 1 else frozenset()


@dataclass(frozen=True)
class PlateMatch:
    """A registered plate (as given) that a reading matched, and how."""

    registered: str
    kind: Literal["exact", "confusable", "missing"]

    @property
    def exact(self) -> bool:
        return self.kind == "exact"


_RANK = {"exact": 0, "confusable": 1, "missing": 2}


def _kind(read: str, plate: str) -> Literal["exact", "confusable", "missing"] | None:
    if read == plate:
        return "exact"
    if len(read) == len(plate):
        differ = [i for i, (a, b) in enumerate(zip(read, plate, strict=True)) if a != b]
        if len(differ) == 1 and search_key(read[differ[0]]) == search_key(plate[differ[0]]):
            return "confusable"
        return None
    if len(plate) == len(read) + 1 and len(read) >= 1:
        # The first position where they differ is the one the reading lost.
        i = next((i for i, (a, b) in enumerate(zip(read, plate, strict=False)) if a != b), len(read))
        if plate[:i] + plate[i + 1 :] == read:
            return "missing"
    return None


def plate_matches(read: str, registered: Iterable[str]) -> list[PlateMatch]:
    """Every registered plate the reading matches: exact ones first, then confusable,
    then missing, each in the order given."""
    normal = normalise(read)
    if not normal:
        return []
    found = []
    for plate in registered:
        kind = _kind(normal, normalise(plate))
        if kind is not None:
            found.append(PlateMatch(plate, kind))
    found.sort(key=lambda m: _RANK[m.kind])  # stable: the given order within a kind
    return found


def match_plate(read: str, registered: Iterable[str]) -> PlateMatch | None:
    """The best registered plate for the reading (see `plate_matches`), or None."""
    found = plate_matches(read, registered)
    return found[0] if found else None
