"""What the plate analytic asks: the registered vehicle a reading matches, through
the directory the vehicles app registers (analytics.plates.registered)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from analytics.plates.registered import VehicleListMissing, VehicleMatch, directory_get
from vehicles import services
from vehicles.services import RegisteredDirectory

from .conftest import register

pytestmark = pytest.mark.django_db


@pytest.fixture
def watched(gate):
    return {
        "ls15": register(gate, "LS15 EBC", name="Alice Walker", status="blacklist", unique_id="U1"),
        "b1234": register(gate, "B 1234 XYZ", name="Budi Santoso", status="whitelist"),
    }


def test_the_app_registers_its_directory():
    assert isinstance(directory_get(), RegisteredDirectory)


@pytest.mark.parametrize(
    ("read", "key", "kind"),
    [
        ("LS15EBC", "ls15", "exact"),
        ("ls15 ebc", "ls15", "exact"),
        ("LSI5EBC", "ls15", "confusable"),  # one confusable character
        ("LS15E8C", "ls15", "confusable"),
        ("LS15EB", "ls15", "missing"),  # one lost at the edge
        ("S15EBC", "ls15", "missing"),
        ("B1234XY", "b1234", "missing"),
        ("B1234XYZ", "b1234", "exact"),
    ],
)
def test_match(watched, read, key, kind):
    vehicle = watched[key]
    assert directory_get().match("gate", read) == VehicleMatch(
        vehicle_id=vehicle.pk,
        plate_number=vehicle.plate_number,
        name=vehicle.name,
        status=vehicle.status,
        unique_id=vehicle.unique_id,
        kind=kind,
    )
    assert directory_get().match("gate", read).exact is (kind == "exact")


@pytest.mark.parametrize(
    "read",
    [
        "LSI5E8C",  # two confusions: the same search key, but more than one difference
        "LS1EBC5",
        "LS15EBCX",  # a character too many
        "LS1EB",  # two lost
        "",
        "---",
        "ZZ9999",
    ],
)
def test_no_match(watched, read):
    assert directory_get().match("gate", read) is None


def test_other_lists_are_not_searched(watched):
    services.list_create(name="visitors")
    assert directory_get().match("visitors", "LS15EBC") is None
    with pytest.raises(VehicleListMissing):
        directory_get().match("nothere", "LS15EBC")


def test_a_match_is_one_indexed_lookup(watched, gate):
    services.vehicles_upsert(vehicle_list=gate, rows=[{"plate_number": f"K {n} AB"} for n in range(5000)])
    with CaptureQueriesContext(connection) as queries:
        assert directory_get().match("gate", "LSI5EBC").kind == "confusable"
    assert len(queries) == 2  # the list, then the candidates by key
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE vehicles_vehicle")  # the statistics a live table has
        cursor.execute("EXPLAIN " + queries[-1]["sql"])
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "vehicle_search_key" in plan and "vehicle_deletion_keys" in plan, plan


def test_plate_keys_by_owner_and_status(watched, gate):
    register(gate, "B 1 CD", name="Budi Hartono", status="Whitelist")
    directory = directory_get()
    assert directory.plate_keys("Alice Walker", limit=10, min_similarity=0.3) == [("L515E8C", 1.0)]
    assert directory.plate_keys("blacklist", limit=10, min_similarity=0.3) == [("L515E8C", 1.0)]
    assert directory.plate_keys("WHITELIST", limit=10, min_similarity=0.3) == [
        ("81234XY2", 1.0),
        ("81CD", 1.0),
    ]
    assert directory.plate_keys("whitelist", limit=1, min_similarity=0.3) == [("81234XY2", 1.0)]
    budi = directory.plate_keys("budi", limit=10, min_similarity=0.3)
    assert budi == [("81234XY2", 1.0), ("81CD", 1.0)]
    walker = directory.plate_keys("Alice Walkr", limit=10, min_similarity=0.3)
    assert [key for key, _ in walker] == ["L515E8C"] and 0.5 < walker[0][1] < 1.0
    assert directory.plate_keys("nobody at all", limit=10, min_similarity=0.3) == []
    assert directory.plate_keys("   ", limit=10, min_similarity=0.3) == []


def test_the_plate_analytic_watch_list_answers_through_the_directory(watched):
    from analytics.plates.watchlist import WatchlistMatch, watchlist

    vehicle = watched["ls15"]
    assert watchlist().match("gate", "LSI5EBC") == WatchlistMatch(
        vehicle_id=str(vehicle.pk),
        name="Alice Walker",
        status="blacklist",
        exact=False,
        plate_number="LS15 EBC",
    )
    assert watchlist().match("gate", "LS15EBC").exact is True
    assert watchlist().match("gate", "ZZ99ZZZ") is None
    assert watchlist().match("nothere", "LS15EBC") is None  # a missing list registers nothing
