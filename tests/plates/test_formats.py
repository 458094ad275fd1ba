"""Plate formats: presets, custom regular expressions, normalisation, display, and
correction of OCR confusions by slot (a letter slot takes the letter, a digit slot
the digit)."""

from __future__ import annotations

import re

import pytest

from analytics.plates.formats import PRESETS, FormatError, normalise, plate_format


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("b 1234-xyz", "B1234XYZ"),
        ("LS15 EBC", "LS15EBC"),
        (" ls15\tebc. ", "LS15EBC"),
        ("ＬＳ１５", "LS15"),  # full-width forms fold to ASCII
        ("", ""),
    ],
)
def test_normalise(text, expected):
    assert normalise(text) == expected


@pytest.mark.parametrize("name", ["indonesia", "Indonesia", "ID", "uk", "GB", "generic"])
def test_presets_by_name(name):
    assert plate_format(name) in PRESETS.values()


@pytest.mark.parametrize(
    ("text", "plate", "display"),
    [
        ("B 1234 XYZ", "B1234XYZ", "B 1234 XYZ"),
        ("b1234xyz", "B1234XYZ", "B 1234 XYZ"),
        ("D 1 A", "D1A", "D 1 A"),
        ("AB 12", "AB12", "AB 12"),  # no suffix: up to three letters, none is allowed
        ("DK 1234 ABC", "DK1234ABC", "DK 1234 ABC"),
    ],
)
def test_indonesia_plates_as_read(text, plate, display):
    parsed = plate_format("indonesia").parse(text)
    assert parsed is not None and parsed.corrections == 0
    assert (parsed.plate, parsed.display) == (plate, display)


@pytest.mark.parametrize("text", ["1234 XYZ", "ABC 1234 X", "B 12345 X", "B 1234 WXYZ", "BXYZ", "B"])
def test_not_indonesian(text):
    assert plate_format("indonesia").parse(text, max_corrections=0) is None


@pytest.mark.parametrize(
    ("text", "plate", "corrections"),
    [
        ("LS15 EBC", "LS15EBC", 0),
        ("LSI5 EBC", "LS15EBC", 1),  # I in a digit slot is a 1
        ("LS15 E8C", "LS15EBC", 1),  # 8 in a letter slot is a B
        ("L515 EBC", "LS15EBC", 1),  # 5 in a letter slot is an S
        ("ZG20 OBU", "ZG20OBU", 0),
        ("2620 0BU", "ZG20OBU", 3),  # every slot of the wrong kind, with a generous limit
    ],
)
def test_uk_corrections_by_slot(text, plate, corrections):
    parsed = plate_format("uk").parse(text, max_corrections=3)
    assert parsed is not None
    assert (parsed.plate, parsed.corrections) == (plate, corrections)
    assert parsed.display == f"{plate[:4]} {plate[4:]}"
    assert parsed.read == normalise(text)


@pytest.mark.parametrize(
    ("letter", "digit"), [("I", "1"), ("O", "0"), ("B", "8"), ("S", "5"), ("Z", "2"), ("G", "6")]
)
def test_each_confusable_pair_both_ways(letter, digit):
    uk = plate_format("uk")
    # The letter read in a digit slot (the age), and the digit read in a letter slot (the tail).
    assert uk.parse(f"AB{letter}5 CDE").plate == f"AB{digit}5CDE"
    assert uk.parse(f"AB15 C{digit}E").plate == f"AB15C{letter}E"
    indonesia = plate_format("indonesia")
    assert indonesia.parse(f"{digit} 12{letter}3 X").plate == f"{letter}12{digit}3X"
    # At the end of the digits a letter can open the suffix: no correction is needed there.
    assert indonesia.parse(f"A 123{letter} X").plate == f"A123{letter}X"


def test_corrections_are_limited():
    uk = plate_format("uk")
    # Four of seven characters of the wrong kind: more likely other text than a plate.
    assert uk.parse("2620 0BU") is None
    assert uk.parse("LSI5 EBC", max_corrections=0) is None
    assert uk.fits("LS15EBC") and not uk.fits("LSI5EBC")


def test_runner_up_beats_the_table():
    """When the recogniser's own second guess for a character is of the slot's kind,
    it wins over the look-alike table."""
    uk = plate_format("uk")
    confidences = [0.9, 0.9, 0.6, 0.9, 0.9, 0.9, 0.9]
    alternatives = [(), (), (("7", 0.3), ("1", 0.1)), (), (), (), ()]
    parsed = uk.parse("LSI5EBC", confidences, alternatives)
    assert parsed.plate == "LS75EBC"  # the runner-up 7, not the table's 1
    assert parsed.confidences == tuple(confidences)
    assert parsed.confidence == pytest.approx(sum(confidences) / 7)
    with pytest.raises(ValueError, match="one confidence"):
        uk.parse("LS15EBC", [0.9])


def test_the_layout_with_fewest_corrections_wins():
    """Indonesia's groups have ranges: the split that needs no correction is chosen."""
    indonesia = plate_format("indonesia")
    assert indonesia.parse("BE 123 XY").groups == ("BE", "123", "XY")
    assert indonesia.parse("B 8123 XY").groups == ("B", "8123", "XY")
    assert indonesia.parse("B I234 XY2").display == "BI 234 XYZ"


def test_generic_corrects_nothing():
    generic = plate_format("generic")
    parsed = generic.parse("LSI5 EBC")
    assert (parsed.plate, parsed.display, parsed.corrections) == ("LSI5EBC", "LSI5EBC", 0)
    assert generic.parse("A") is None
    assert generic.parse("ABCDEFGHIJK") is None


def test_custom_formats():
    dashed = plate_format(r"^[A-Z]{3}-\d{3}$")  # separators split the groups when none is captured
    assert dashed.name == "custom"
    assert dashed.parse("abc 123").display == "ABC 123"
    assert dashed.parse("A8C I23", max_corrections=2).plate == "ABC123"
    vietnam = plate_format(r"(\d{2})([A-Z])(\d{4,5})")
    assert vietnam.parse("51G12345").display == "51 G 12345"
    assert vietnam.parse("5IG 12345").plate == "51G12345"
    assert vietnam.display("51G1234") == "51 G 1234"
    assert vietnam.display("not a plate") == "NOTAPLATE"
    literal = plate_format(r"CD\d{3,4}")  # a fixed prefix: diplomatic plates
    assert literal.parse("cd I234").plate == "CD1234"
    assert literal.parse("XD 1234") is None


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        (".{3}", "alternation and wildcards"),
        ("AB|CD", "alternation and wildcards"),
        ("([A-Z]", "not a regular expression"),
        ("[^A-Z]{3}", "characters, ranges"),
        ("[a-z]{2}(?:[0-9]{2}){2}", "sequence of characters"),  # a count of a count
        ("", "matches no characters"),
        ("---", "matches no characters"),
        ("[#%]{3}", "letters (A-Z) or digits"),
    ],
)
def test_refused_formats(pattern, message):
    with pytest.raises(FormatError, match=re.escape(message)):
        plate_format(pattern)
