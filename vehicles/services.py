"""Writes of the registered vehicles, and the directory plate analytics and text
search look plates up in (analytics.plates.registered)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from analytics.plates.formats import normalise
from analytics.plates.matching import deletion_keys, match_plate, search_key
from analytics.plates.registered import VehicleMatch
from core.errors import BadRequest, Conflict

from .models import Vehicle, VehicleList
from .selectors import plate_candidates, vehicle_list_get

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@:-]{0,63}$")
NAME_RULE = "1 to 64 letters, digits or _ . @ : - (starting with a letter or digit)"
# The vehicle's fields besides its plate (ANALYTICS.md, "Registered vehicles").
DETAIL_FIELDS = ("unique_id", "name", "type", "brand", "color", "status")
# One transaction-scoped advisory lock serialises the writes that count rows against
# a limit, so concurrent requests cannot pass a limit together.
_LIMITS_LOCK = 0x56454849  # "VEHI"


def list_name_validate(value: Any, *, field: str = "list_name") -> str:
    if not isinstance(value, str):
        raise BadRequest(f"{field} must be a string")
    if not NAME_RE.match(value):
        raise BadRequest(f"invalid {field} '{value[:70]}': it must be {NAME_RULE}")
    return value


def _limits_lock() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LIMITS_LOCK])


def _room_check(adding: int) -> None:
    limit = settings.VEHICLE_MAX_VEHICLES
    if adding and Vehicle.objects.count() + adding > limit:
        raise Conflict(f"registered vehicle limit reached ({limit} vehicles)")


def _plate_set(vehicle: Vehicle, plate_number: str) -> None:
    vehicle.plate_number = plate_number
    vehicle.plate = normalise(plate_number)
    vehicle.search_key = search_key(plate_number)
    vehicle.deletion_keys = sorted(deletion_keys(plate_number))


# --- lists -------------------------------------------------------------------------


def list_create(*, name: str) -> VehicleList:
    list_name_validate(name)
    with transaction.atomic():
        _limits_lock()
        if VehicleList.objects.filter(name=name).exists():
            raise Conflict("vehicle list already exists")
        if VehicleList.objects.count() >= settings.VEHICLE_MAX_LISTS:
            raise Conflict(f"vehicle list limit reached ({settings.VEHICLE_MAX_LISTS} lists)")
        return VehicleList.objects.create(name=name)


def list_delete(*, vehicle_list: VehicleList) -> int:
    """Delete the list with its vehicles; how many vehicles went with it."""
    with transaction.atomic():
        count = Vehicle.objects.filter(vehicle_list=vehicle_list).count()
        vehicle_list.delete()
    return count


# --- vehicles ----------------------------------------------------------------------


def _plate_taken(vehicle_list: VehicleList, plate: str, *, other_than: int | None = None) -> None:
    taken = Vehicle.objects.filter(vehicle_list=vehicle_list, plate=plate)
    if other_than is not None:
        taken = taken.exclude(pk=other_than)
    if taken.exists():
        raise Conflict(f"plate {plate} is already registered in list '{vehicle_list.name}'")


def vehicle_create(*, vehicle_list: VehicleList, plate_number: str, **details: str) -> Vehicle:
    """Register a vehicle (fields as validated by serializers.VehicleCreateSerializer);
    409 when its plate is in the list already."""
    vehicle = Vehicle(vehicle_list=vehicle_list, **{name: details.get(name, "") for name in DETAIL_FIELDS})
    _plate_set(vehicle, plate_number)
    with transaction.atomic():
        _limits_lock()
        _plate_taken(vehicle_list, vehicle.plate)
        _room_check(1)
        vehicle.save()
    return vehicle


def vehicle_update(*, vehicle: Vehicle, **changes: str) -> Vehicle:
    """Change any of the vehicle's fields; a new plate must not be taken in its list."""
    for name in DETAIL_FIELDS:
        if name in changes:
            setattr(vehicle, name, changes[name])
    with transaction.atomic():
        if "plate_number" in changes:
            _plate_set(vehicle, changes["plate_number"])
            _limits_lock()  # two renames to one plate: the second sees the first
            _plate_taken(vehicle.vehicle_list, vehicle.plate, other_than=vehicle.pk)
        vehicle.save()
    return vehicle


def vehicle_delete(*, vehicle: Vehicle) -> None:
    Vehicle.objects.filter(pk=vehicle.pk).delete()


def vehicles_upsert(*, vehicle_list: VehicleList, rows: Sequence[Mapping[str, str]]) -> tuple[int, int]:
    """Register or update vehicles by plate (a bulk import): each row's fields as
    validated by serializers.VehicleCreateSerializer, a later row of a plate winning
    over an earlier one; fields a row leaves out keep their value (a new vehicle's
    are empty). One INSERT ... ON CONFLICT DO UPDATE per set of fields given
    (a CSV file gives one). Returns (created, updated)."""
    by_plate: dict[str, Mapping[str, str]] = {}
    for row in rows:
        by_plate[normalise(row["plate_number"])] = row
    if not by_plate:
        return 0, 0
    now = timezone.now()
    groups: dict[tuple[str, ...], list[Vehicle]] = {}
    for row in by_plate.values():
        given = tuple(name for name in DETAIL_FIELDS if name in row)
        vehicle = Vehicle(
            vehicle_list=vehicle_list,
            created_at=now,
            updated_at=now,
            **{name: row.get(name, "") for name in DETAIL_FIELDS},
        )
        _plate_set(vehicle, row["plate_number"])
        groups.setdefault(given, []).append(vehicle)
    with transaction.atomic():
        _limits_lock()
        existing = set(
            Vehicle.objects.filter(vehicle_list=vehicle_list, plate__in=list(by_plate)).values_list(
                "plate", flat=True
            )
        )
        _room_check(len(by_plate) - len(existing))
        for given, vehicles in groups.items():
            Vehicle.objects.bulk_create(
                vehicles,
                update_conflicts=True,
                unique_fields=["vehicle_list", "plate"],
                update_fields=["plate_number", *given, "updated_at"],
            )
    return len(by_plate) - len(existing), len(existing)


# --- matching (the plate analytic's side) ------------------------------------------


def vehicle_match(*, list_name: str, plate: str) -> VehicleMatch | None:
    """The vehicle of the list a plate reading matches, with OCR tolerance (one
    confusable or missing character: analytics.plates.matching), or None;
    404 (VehicleListMissing) when the list does not exist."""
    vehicle_list = vehicle_list_get(name=list_name)
    if not search_key(plate):
        return None
    candidates = {
        vehicle.plate: vehicle
        for vehicle in Vehicle.objects.filter(plate_candidates(plate), vehicle_list=vehicle_list)[:1000]
    }
    found = match_plate(plate, sorted(candidates))
    if found is None:
        return None
    vehicle = candidates[found.registered]
    return VehicleMatch(
        vehicle_id=vehicle.pk,
        plate_number=vehicle.plate_number,
        name=vehicle.name,
        status=vehicle.status,
        unique_id=vehicle.unique_id,
        kind=found.kind,
    )


def plate_keys_by_owner(*, text: str, limit: int, min_similarity: float) -> list[tuple[str, float]]:
    """(search key, similarity) of registered plates, of any list, whose owner's
    name resembles `text` (pg_trgm word similarity, through the trigram index) or
    whose status is `text` (case aside: similarity 1), most similar first."""
    text = text.strip()
    if not text:
        return []
    table = Vehicle._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT set_config('pg_trgm.word_similarity_threshold', %s, true)",
            [str(max(0.1, min_similarity))],
        )
        cursor.execute(
            f"""
            SELECT search_key, max(score) AS score FROM (
                SELECT search_key, word_similarity(%s, name) AS score FROM {table} WHERE %s <%% name
                UNION ALL
                SELECT search_key, 1.0 FROM {table} WHERE UPPER(status) = UPPER(%s)
            ) found
            WHERE score >= %s
            GROUP BY search_key ORDER BY score DESC, search_key LIMIT %s
            """,
            [text, text, text, min_similarity, limit],
        )
        return [(key, float(score)) for key, score in cursor.fetchall()]


class RegisteredDirectory:
    """The registered vehicles as analytics.plates.registered sees them."""

    def match(self, list_name: str, plate: str) -> VehicleMatch | None:
        return vehicle_match(list_name=list_name, plate=plate)

    def plate_keys(self, text: str, *, limit: int, min_similarity: float) -> list[tuple[str, float]]:
        return plate_keys_by_owner(text=text, limit=limit, min_similarity=min_similarity)
