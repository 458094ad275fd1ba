"""Registered plates matched with OCR tolerance; the search key."""

from __future__ import annotations

import pytest

from analytics.plates.matching import deletion_keys, match_plate, plate_matches, search_key

REGISTERED = ["LS15 EBC", "B 1234 XYZ", "B 1284 XYZ", "AB12CDE", "D 1 A"]


@pytest.mark.parametrize("text", ["LS15EBC", "ls15 ebc", "LSI5EBC", "L5I5 E8C", "LS15-EBC"])
def test_one_key_for_every_spelling(text):
    assert search_key(text) == search_key("LS15 EBC") == "L515E8C"


def test_keys_keep_other_characters_apart():
    assert search_key("LS15EBC") != search_key("LS15EBD")
    assert search_key("B1234XYZ") != search_key("B1284XYZ")
    assert search_key("") == ""


@pytest.mark.parametrize(
    ("read", "registered", "kind"),
    [
        ("LS15EBC", "LS15 EBC", "exact"),
        ("ls15 ebc", "LS15 EBC", "exact"),
        ("LSI5EBC", "LS15 EBC", "confusable"),
        ("LS15E8C", "LS15 EBC", "confusable"),
        ("S15EBC", "LS15 EBC", "missing"),  # first character lost
        ("LS5EBC", "LS15 EBC", "missing"),
        ("LS15EB", "LS15 EBC", "missing"),  # last one lost
        ("D1", "D 1 A", "missing"),
    ],
)
def test_tolerated_differences(read, registered, kind):
    found = match_plate(read, [registered])
    assert found is not None and found.registered == registered
    assert found.kind == kind and found.exact == (kind == "exact")


@pytest.mark.parametrize(
    ("read", "registered"),
    [
        ("LSI5E8C", "LS15 EBC"),  # two confusables
        ("LS16EBC", "LS15 EBC"),  # 6 and 5 are not confusable
        ("LS15EBCX", "LS15 EBC"),  # an extra character is not a missing one
        ("S5EBC", "LS15 EBC"),  # two missing
        ("L515EBC", "LS15 EBC".replace("1", "7")),  # a confusable and another difference
        ("", "LS15 EBC"),
        ("D", "D 1 A"),  # a short plate tolerates nothing more
    ],
)
def test_refused_differences(read, registered):
    assert match_plate(read, [registered]) is None


def test_best_match_first():
    assert [m.registered for m in plate_matches("B1234XYZ", REGISTERED)] == ["B 1234 XYZ"]
    # 8 could be the registered 8 (exact) or a B; the exact one comes first.
    found = plate_matches("B1284XYZ", REGISTERED)
    assert [(m.registered, m.kind) for m in found] == [("B 1284 XYZ", "exact")]
    found = plate_matches("B12B4XYZ", REGISTERED)
    assert [(m.registered, m.kind) for m in found] == [("B 1284 XYZ", "confusable")]
    assert match_plate("ZZ99ZZZ", REGISTERED) is None


def test_deletion_keys_find_readings_that_miss_a_character():
    keys = deletion_keys("LS15 EBC")
    assert len(keys) == 7
    for read in ("S15EBC", "LSI5EB", "LS5EBC"):
        assert search_key(read) in keys
    assert search_key("LS15EBC") not in keys
    assert deletion_keys("A") == frozenset()
