"""Voting a track's readings into one plate: per character, weighted by confidence."""

from __future__ import annotations

import pytest

from analytics.plates.formats import plate_format
from analytics.plates.voting import Reading, TrackVote, vote


def reading(plate: str, confidence: float = 0.9, layout=()) -> Reading:
    return Reading(plate, (confidence,) * len(plate), tuple(layout))


def test_unanimous_readings_keep_their_confidence():
    result = vote([reading("LS15EBC", 0.9)] * 5)
    assert result.plate == "LS15EBC"
    assert result.confidence == pytest.approx(0.9)
    assert (result.agreeing, result.readings) == (5, 5)


def test_each_character_is_voted_apart():
    """No single reading is right, yet every character is right in most of them."""
    readings = [reading("LS15EBC"[:i] + "X" + "LS15EBC"[i + 1 :]) for i in range(3)] + [
        reading("LS15EBC"[:i] + "Y" + "LS15EBC"[i + 1 :]) for i in range(3, 6)
    ]
    result = vote(readings)
    assert result.plate == "LS15EBC"
    assert result.agreeing == 0 and result.readings == 6
    # Each position was contested by one reading of six.
    assert result.char_confidences[:6] == pytest.approx([0.9 * 5 / 6] * 6)
    assert result.char_confidences[6] == pytest.approx(0.9)


def test_confidence_outweighs_count():
    """Two unsure readings of a character lose to one sure reading of another."""
    readings = [
        Reading("B1234XYZ", (0.9, 0.9, 0.9, 0.9, 0.3, 0.9, 0.9, 0.9)),
        Reading("B1238XYZ", (0.9, 0.9, 0.9, 0.9, 0.35, 0.9, 0.9, 0.9)),
        Reading("B1234XYZ", (0.9, 0.9, 0.9, 0.9, 0.95, 0.9, 0.9, 0.9)),
    ]
    assert vote(readings).plate == "B1234XYZ"
    readings[2] = Reading("B1238XYZ", readings[2].confidences)
    assert vote(readings).plate == "B1238XYZ"
    readings = [
        Reading("AB12", (0.9, 0.9, 0.9, 0.2)),
        Reading("AB12", (0.9, 0.9, 0.9, 0.2)),
        reading("AB17", 0.9),
    ]
    assert vote(readings).plate == "AB17"  # 0.9 against 0.2 + 0.2
    assert vote(readings).agreeing == 1


def test_lengths_and_layouts_vote_apart():
    indonesia = plate_format("indonesia")
    parsed = [indonesia.parse(t) for t in ("B 1234 XY", "B 1234 XY", "BE 123 XY", "B 123 XY")]
    readings = [Reading.from_parsed(p) for p in parsed]
    assert [r.layout for r in readings] == [(1, 4, 2), (1, 4, 2), (2, 3, 2), (1, 3, 2)]
    result = vote(readings)
    # The two readings of the winning layout agree; the others count against its confidence.
    assert (result.plate, result.layout, result.agreeing, result.readings) == ("B1234XY", (1, 4, 2), 2, 4)
    assert result.confidence == pytest.approx(0.5)
    assert indonesia.parse(result.plate, max_corrections=0).display == "B 1234 XY"


def test_a_more_confident_group_wins_over_a_larger_one():
    readings = [reading("AB123", 0.3)] * 2 + [reading("AB1234", 0.95)]
    assert vote(readings).plate == "AB1234"


def test_ties_go_to_the_most_confident_reading():
    readings = [Reading("AB12", (0.5, 0.5, 0.5, 0.5)), Reading("AB17", (0.4, 0.4, 0.8, 0.5))]
    assert vote(readings).plate == "AB17"


def test_readings_cut_at_an_edge_support_the_whole_plate():
    # Two full readings and two that lost the last character (the plate left the frame):
    # the same plate, its last character read twice in four.
    readings = [
        reading("N2603G", 0.97),
        reading("N2603G", 1.0),
        reading("N2603", 1.0),
        reading("N2603", 0.95),
    ]
    result = vote(readings)
    assert (result.plate, result.agreeing, result.readings) == ("N2603G", 2, 4)
    assert result.char_confidences == pytest.approx([0.98] * 5 + [0.4925])
    # Lost at the start just the same; a middle character lost is another plate.
    assert vote([reading("B1234XYZ"), reading("1234XYZ"), reading("1234XYZ")]).plate == "B1234XYZ"
    assert vote([reading("B1234XYZ"), reading("B124XYZ", 0.95)]).plate == "B124XYZ"
    # Too short, or too much lost, to say which plate it was.
    assert vote([reading("AB1", 0.5), reading("AB"), reading("AB")]).plate == "AB"
    assert vote([reading("B1234XYZ", 0.5), reading("B1234"), reading("B1234")]).plate == "B1234"


def test_nothing_to_vote():
    assert vote([]) is None
    assert TrackVote().result() is None


def test_track_keeps_the_most_confident_readings():
    track = TrackVote(max_readings=3)
    for confidence in (0.5, 0.9, 0.2, 0.8, 0.7):
        track.add(reading("AB1234", confidence))
    track.add(reading("AB1284", 0.1))
    assert len(track) == 3
    result = track.result()
    assert (result.plate, result.readings, result.agreeing) == ("AB1234", 3, 3)
    assert result.confidence == pytest.approx((0.9 + 0.8 + 0.7) / 3)
    with pytest.raises(ValueError):
        TrackVote(max_readings=0)


@pytest.mark.parametrize(
    ("plate", "confidences", "layout"),
    [("", (), ()), ("ab12", (0.9,) * 4, ()), ("AB 12", (0.9,) * 5, ()), ("AB12", (0.9,), ()),
     ("AB12", (1.2,) * 4, ()), ("AB12", (0.9,) * 4, (2, 1))],
)  # fmt: skip
def test_invalid_readings(plate, confidences, layout):
    with pytest.raises(ValueError):
        Reading(plate, confidences, layout)
