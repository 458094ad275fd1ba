"""The typed environment parsers behind settings.py."""

from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from core.env import (
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    env_networks,
    env_path,
    env_score_points,
    env_str,
)


def test_str_default_when_missing_or_blank():
    assert env_str("X", "d", environ={}) == "d"
    assert env_str("X", "d", environ={"X": "   "}) == "d"
    assert env_str("X", "d", environ={"X": " v "}) == "v"


@pytest.mark.parametrize(
    "raw,expected",
    [
        ("1", True),
        ("TRUE", True),
        ("yes", True),
        ("on", True),
        ("0", False),
        ("false", False),
        ("No", False),
        ("off", False),
    ],
)
def test_bool_accepts_usual_spellings(raw, expected):
    assert env_bool("FLAG", not expected, environ={"FLAG": raw}) is expected


def test_bool_refuses_other_values_naming_the_variable():
    with pytest.raises(ImproperlyConfigured, match="FLAG must be true or false"):
        env_bool("FLAG", True, environ={"FLAG": "maybe"})


def test_int_parses_and_checks_bounds():
    assert env_int("N", 5, environ={}) == 5
    assert env_int("N", 5, minimum=1, maximum=10, environ={"N": "7"}) == 7
    with pytest.raises(ImproperlyConfigured, match="N must be an integer"):
        env_int("N", 5, environ={"N": "seven"})
    with pytest.raises(ImproperlyConfigured, match="N must be at least 1"):
        env_int("N", 5, minimum=1, environ={"N": "0"})
    with pytest.raises(ImproperlyConfigured, match="N must be at most 10"):
        env_int("N", 5, maximum=10, environ={"N": "11"})


def test_float_parses_and_checks_minimum():
    assert env_float("F", 1.5, environ={"F": "0.25"}) == 0.25
    with pytest.raises(ImproperlyConfigured, match="F must be a number"):
        env_float("F", 1.5, environ={"F": "fast"})
    with pytest.raises(ImproperlyConfigured, match="F must be at least 0.1"):
        env_float("F", 1.5, minimum=0.1, environ={"F": "0"})


def test_list_splits_on_commas_and_drops_blanks():
    assert env_list("L", ["a"], environ={}) == ["a"]
    assert env_list("L", [], environ={"L": "x, y,,z "}) == ["x", "y", "z"]


def test_path_expands_and_resolves(tmp_path):
    assert env_path("P", tmp_path, environ={}) == tmp_path.resolve()
    assert env_path("P", Path("/nowhere"), environ={"P": str(tmp_path / "a" / ".." / "b")}) == tmp_path / "b"


def test_choice_is_case_insensitive_and_strict():
    assert env_choice("C", "info", ["debug", "info"], environ={"C": "DEBUG"}) == "debug"
    with pytest.raises(ImproperlyConfigured, match="C must be one of debug, info"):
        env_choice("C", "info", ["debug", "info"], environ={"C": "loud"})


def test_networks_parse_cidr_lists():
    assert [str(n) for n in env_networks("N", ["169.254.0.0/16"], environ={})] == ["169.254.0.0/16"]
    parsed = env_networks("N", [], environ={"N": " 10.0.0.0/8, fd00::/8 ,,192.0.2.7"})
    assert [str(n) for n in parsed] == ["10.0.0.0/8", "fd00::/8", "192.0.2.7/32"]
    assert env_networks("N", ["10.0.0.0/8"], environ={"N": "none"}) == []
    assert env_networks("N", ["10.0.0.0/8"], environ={"N": "  "}) != []  # blank: the default


@pytest.mark.parametrize("raw", ["10.0.0.1/8", "camera.local", "10.0.0.0/33", "none,10.0.0.0/8"])
def test_networks_refuse_bad_entries_naming_the_variable(raw):
    with pytest.raises(ImproperlyConfigured, match="N must be a comma-separated list of networks"):
        env_networks("N", [], environ={"N": raw})


def test_score_points_parse_sort_and_check_order():
    assert env_score_points("P", environ={}) == []
    assert env_score_points("P", environ={"P": "0.70:1e-3, 0.62:1e-2"}) == [(0.62, 0.01), (0.70, 0.001)]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("0.62:1e-2", "at least two"),
        ("0.62-1e-2,0.7:1e-3", "similarity:rate pairs"),
        ("0.62:x,0.7:1e-3", "similarity:rate pairs"),
        ("1.5:1e-2,0.7:1e-3", "in \\(0, 1\\]"),
        ("0.62:1e-3,0.7:1e-2", "must fall as the similarity grows"),
    ],
)
def test_score_points_refuse_bad_values_naming_the_variable(raw, message):
    with pytest.raises(ImproperlyConfigured, match=f"^VISIONAIRE_X: .*{message}"):
        env_score_points("VISIONAIRE_X", environ={"VISIONAIRE_X": raw})
