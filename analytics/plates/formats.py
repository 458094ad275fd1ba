"""Plate formats of a region: what a plate number may look like, as data.

A format is a regular expression over the plate's characters without spaces,
made of character classes with counts, e.g. Indonesia's
`([A-Z]{1,2})([0-9]{1,4})([A-Z]{0,3})`. Its capturing groups are the groups a
person reads, shown with a space between them ("B 1234 XYZ"); a pattern with
none is shown as one word. Supported: literals, classes (`[A-Z]`, `[0-9]`, `\\d`,
ranges), counts (`{m,n}`, `?`, `*`, `+`; open counts stop at 12), groups, `^` and
`$`; separators in the pattern (`-`, a space) are ignored, since a normalised
plate has none; alternation and wildcards are refused, because every character
must fall in a slot whose class is known.

Reading under a format: the recognised text is normalised (upper case, letters
and digits only), then laid out over the format's slots: each character goes
into a letter slot or a digit slot. A character of the wrong kind is corrected:
first to one of the recogniser's runners-up of the right kind, else through the
table of look-alikes (I↔1, O↔0, B↔8, S↔5, Z↔2, G↔6, and the one-way D, Q, U → 0,
L, J → 1, T → 7, A → 4). Among all layouts the one with the fewest (and most
likely) corrections wins; text that fits no layout is not a plate of this format.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

try:  # the standard library's own regular expression parser (private, stable since Python 2)
    import re._parser as _sre
except ImportError:  # pragma: no cover - Python < 3.11
    import sre_parse as _sre  # type: ignore[no-redef]

LETTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
DIGITS = frozenset("0123456789")
PLATE_CHARS = LETTERS | DIGITS
MAX_OPEN_COUNT = 12  # `+`/`*`/`{m,}` in a format: no plate group is longer

# The look-alikes OCR confuses both ways (letter, digit): the correction table's core,
# and what plate matching and search keys tolerate (`matching`).
CONFUSABLE_PAIRS = (("I", "1"), ("O", "0"), ("B", "8"), ("S", "5"), ("Z", "2"), ("G", "6"))
# What a character read in a slot of the other kind most likely is. Two-way pairs
# first (the list), then look-alikes seen one way only: a D, Q or U read
# where a digit must be is a 0, but a 0 in a letter slot is an O.
AS_DIGIT = {"O": "0", "I": "1", "B": "8", "S": "5", "Z": "2", "G": "6",
            "D": "0", "Q": "0", "U": "0", "L": "1", "J": "1", "T": "7", "A": "4"}  # fmt: skip
AS_LETTER = {"0": "O", "1": "I", "8": "B", "5": "S", "2": "Z", "6": "G", "7": "T", "4": "A"}
RUNNER_UP_COST = 0.5  # the recogniser's own second guess is likelier than a table look-alike
TABLE_COST = 1.0


def normalise(text: str) -> str:
    """Upper case, letters and digits only: "b 1234-xyz" -> "B1234XYZ"."""
    folded = unicodedata.normalize("NFKC", text).upper()
    return "".join(c for c in folded if c in PLATE_CHARS)


@dataclass(frozen=True)
class Slot:
    allowed: frozenset[str]
    low: int
    high: int
    group: int  # index of the display group


@dataclass(frozen=True)
class Parsed:
    """A reading laid out over a format: the corrected plate (no spaces), its display
    groups, the characters per slot (`layout`), one confidence per character."""

    plate: str
    groups: tuple[str, ...]
    layout: tuple[int, ...]
    confidences: tuple[float, ...]
    corrections: int
    read: str  # the normalised text before correction

    @property
    def display(self) -> str:
        return " ".join(g for g in self.groups if g)

    @property
    def confidence(self) -> float:
        return sum(self.confidences) / len(self.confidences) if self.confidences else 0.0


class FormatError(ValueError):
    pass


def _class_chars(items) -> frozenset[str]:
    chars: set[str] = set()
    for op, value in items:
        if op is _sre.LITERAL:
            chars.add(chr(value).upper())
        elif op is _sre.RANGE:
            chars.update(chr(c).upper() for c in range(value[0], value[1] + 1))
        elif op is _sre.CATEGORY and value is _sre.CATEGORY_DIGIT:
            chars.update(DIGITS)
        else:
            raise FormatError("a character class may hold characters, ranges and \\d only")
    return frozenset(chars & PLATE_CHARS)


def _slots(pattern: str) -> list[Slot]:
    try:
        re.compile(pattern)
        parsed = _sre.parse(pattern)
    except re.error as exc:
        raise FormatError(f"not a regular expression: {exc}") from None
    slots: list[tuple[frozenset[str], int, int, int | None]] = []
    breaks: set[int] = set()  # slot indexes after a separator of the pattern

    def single(op, value) -> frozenset[str]:
        if op is _sre.LITERAL:
            return frozenset({chr(value).upper()}) & PLATE_CHARS  # empty for a separator: skipped
        if op is _sre.IN:
            return _class_chars(value)
        if op is _sre.CATEGORY and value is _sre.CATEGORY_DIGIT:
            return DIGITS
        raise FormatError(
            "a plate format is a sequence of characters or character classes with counts "
            "(e.g. ([A-Z]{1,2})([0-9]{1,4})([A-Z]{0,3})); alternation and wildcards are not supported"
        )

    def walk(items, group: int | None) -> None:
        for op, value in items:
            if op is _sre.AT:
                continue
            if op is _sre.SUBPATTERN:
                number, _, _, inner = value
                walk(inner, group if group is not None or number is None else number)
            elif op in (_sre.MAX_REPEAT, _sre.MIN_REPEAT):
                low, high, inner = value
                inner = list(inner)
                if len(inner) != 1:
                    raise FormatError("counts apply to one character or class, e.g. [A-Z]{1,3}")
                high = MAX_OPEN_COUNT if high is _sre.MAXREPEAT else min(high, MAX_OPEN_COUNT)
                allowed = single(*inner[0])
                if allowed or inner[0][0] is not _sre.LITERAL:
                    slots.append((allowed, low, high, group))
                else:
                    breaks.add(len(slots))
            else:
                allowed = single(op, value)
                if allowed or op is not _sre.LITERAL:
                    slots.append((allowed, 1, 1, group))
                else:
                    breaks.add(len(slots))

    walk(parsed, None)
    if not slots:
        raise FormatError("the format matches no characters")
    for allowed, _, _, _ in slots:
        if not allowed:
            raise FormatError("every class of a plate format must allow letters (A-Z) or digits (0-9)")
    # Display groups: capturing groups in order, slots outside one joining the group
    # before; without capturing groups, the pattern's separators split the groups.
    numbers = sorted({g for *_, g in slots if g is not None})
    result, current = [], 0
    for index, (allowed, low, high, group) in enumerate(slots):
        if group is not None:
            current = numbers.index(group)
        elif not numbers and index in breaks and index > 0:
            current += 1
        result.append(Slot(allowed, low, high, current))
    return result


class PlateFormat:
    """A region's plate format; `parse` lays a reading over it (see the module's doc)."""

    def __init__(self, name: str, pattern: str):
        self.name = name
        self.pattern = pattern
        self.slots = _slots(pattern)
        self.groups = max(slot.group for slot in self.slots) + 1
        self.min_length = sum(slot.low for slot in self.slots)
        self.max_length = sum(slot.high for slot in self.slots)

    def __repr__(self) -> str:
        return f"PlateFormat({self.name!r}, {self.pattern!r})"

    def _options(self, char: str, alternatives: Sequence[tuple[str, float]], allowed: frozenset[str]):
        """(character, cost) for putting this read character in a slot of `allowed`."""
        if char in allowed:
            return char, 0.0
        for other, _ in alternatives:
            other = normalise(other)
            if other and other in allowed:
                return other, RUNNER_UP_COST
        swapped = AS_DIGIT.get(char) or AS_LETTER.get(char)
        if swapped and swapped in allowed:
            return swapped, TABLE_COST
        return None

    def parse(
        self,
        text: str,
        confidences: Sequence[float] | None = None,
        alternatives: Sequence[Sequence[tuple[str, float]]] | None = None,
        *,
        max_corrections: int | None = None,
    ) -> Parsed | None:
        """`text` (normalised here) laid over the format with the fewest corrections,
        or None when it fits no layout. `confidences` and `alternatives` (the
        recogniser's runners-up) are per character of the normalised text."""
        read = normalise(text)
        n = len(read)
        if not self.min_length <= n <= self.max_length:
            return None
        confidences = list(confidences) if confidences is not None else [1.0] * n
        alternatives = list(alternatives) if alternatives is not None else [()] * n
        if len(confidences) != n or len(alternatives) != n:
            raise ValueError("one confidence and one list of alternatives per letter or digit of the text")
        if max_corrections is None:
            max_corrections = max(1, n // 3)
        # best[j][i]: (cost, corrections, layout, chars) placing read[:i] in slots[:j].
        inf = (float("inf"), 0, (), "")
        best = [[inf] * (n + 1) for _ in range(len(self.slots) + 1)]
        best[0][0] = (0.0, 0, (), "")
        for j, slot in enumerate(self.slots):
            for i in range(n + 1):
                cost, fixes, layout, chars = best[j][i]
                if cost == float("inf"):
                    continue
                added, extra, changed = "", 0.0, 0
                for k in range(slot.high + 1):
                    if k >= slot.low:
                        candidate = (cost + extra, fixes + changed, (*layout, k), chars + added)
                        if candidate[:2] < best[j + 1][i + k][:2]:
                            best[j + 1][i + k] = candidate
                    if i + k >= n:
                        break
                    option = self._options(read[i + k], alternatives[i + k], slot.allowed)
                    if option is None:
                        break
                    added += option[0]
                    extra += option[1]
                    changed += option[0] != read[i + k]
        cost, fixes, layout, plate = best[len(self.slots)][n]
        if cost == float("inf") or fixes > max_corrections:
            return None
        groups = [""] * self.groups
        position = 0
        for slot, k in zip(self.slots, layout, strict=True):
            groups[slot.group] += plate[position : position + k]
            position += k
        return Parsed(plate, tuple(groups), layout, tuple(confidences), fixes, read)

    def parse_line(self, chars, **kwargs) -> Parsed | None:
        """Parse a reader's characters (`reader.CharRead`s), with their confidences and runners-up."""
        kept = [c for c in chars if normalise(c.char)]
        text = "".join(normalise(c.char) for c in kept)
        if len(text) != len(kept):  # a character that normalises to two: no per-character data
            return self.parse(text, **kwargs)
        return self.parse(text, [c.confidence for c in kept], [c.alternatives for c in kept], **kwargs)

    def fits(self, plate: str) -> bool:
        """The text is a plate of this format as it is, without corrections."""
        return self.parse(plate, max_corrections=0) is not None

    def display(self, plate: str) -> str:
        """The plate as people write it ("B1234XYZ" -> "B 1234 XYZ"); unchanged when
        it does not fit the format."""
        parsed = self.parse(plate, max_corrections=0)
        return parsed.display if parsed else normalise(plate)


PRESETS: dict[str, PlateFormat] = {
    # Indonesia: region code (1-2 letters), number (1-4 digits), suffix (up to 3 letters).
    "indonesia": PlateFormat("indonesia", r"^([A-Z]{1,2})([0-9]{1,4})([A-Z]{0,3})$"),
    # Great Britain since 2001: area (2 letters), age (2 digits), 3 random letters.
    "uk": PlateFormat("uk", r"^([A-Z]{2}[0-9]{2})([A-Z]{3})$"),
    # Anywhere: 2 to 10 letters or digits, nothing corrected.
    "generic": PlateFormat("generic", r"^([A-Z0-9]{2,10})$"),
}
ALIASES = {"id": "indonesia", "gb": "uk"}


def plate_format(spec: str) -> PlateFormat:
    """A preset by name (indonesia, uk, generic; any case; `id` and `gb` as aliases) or a
    custom regular expression."""
    name = spec.strip().lower()
    name = ALIASES.get(name, name)
    if name in PRESETS:
        return PRESETS[name]
    return PlateFormat("custom", spec)
