"""Reads of the registered vehicles: lists, pages, and tolerant plate lookups."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from django.db.models import Count, Q, QuerySet
from django.db.models.functions import Upper

from analytics.plates.formats import normalise
from analytics.plates.matching import search_key
from analytics.plates.registered import VehicleListMissing
from core.errors import BadRequest, NotFound

from .models import PLATE_MAX_LENGTH, Vehicle, VehicleList

PlateKind = Literal["exact", "confusable", "missing"]
_RANK = {"exact": 0, "confusable": 1, "missing": 2}
_CURSOR_RE = re.compile(rf"^[A-Z0-9]{{1,{PLATE_MAX_LENGTH}}}$")


class VehicleListNotFound(NotFound, VehicleListMissing):
    def __init__(self) -> None:
        super().__init__("vehicle list not found")


def vehicle_list_get(*, name: str) -> VehicleList:
    """The list of that name; 404 "vehicle list not found" otherwise."""
    found = VehicleList.objects.filter(name=name).first() if isinstance(name, str) else None
    if found is None:
        raise VehicleListNotFound()
    return found


def vehicle_lists() -> QuerySet[VehicleList]:
    """Every list with its number of vehicles (`vehicle_count`), by name."""
    return VehicleList.objects.annotate(vehicle_count=Count("vehicles")).order_by("name")


def vehicle_get(*, vehicle_list: VehicleList, vehicle_id: int) -> Vehicle:
    found = Vehicle.objects.filter(vehicle_list=vehicle_list, pk=vehicle_id).first()
    if found is None:
        raise NotFound("vehicle not found")
    return found


def vehicles_filter(
    queryset: QuerySet[Vehicle], *, name: str | None = None, status: str | None = None
) -> QuerySet[Vehicle]:
    """Vehicles whose owner's name contains `name` and whose status is `status`
    (both case-insensitive)."""
    if name:
        # `~*` (not ILIKE under UPPER(), as icontains writes it) is served by the trigram index.
        queryset = queryset.filter(name__iregex=re.escape(name))
    if status:
        queryset = queryset.annotate(status_upper=Upper("status")).filter(status_upper=status.upper())
    return queryset


def cursor_decode(text: str) -> str:
    """A page cursor is the last plate of the previous page (normalised)."""
    if not _CURSOR_RE.match(text):
        raise BadRequest("invalid cursor: pass the next_cursor of a previous page unchanged")
    return text


def vehicle_page(
    *,
    vehicle_list: VehicleList,
    name: str | None = None,
    status: str | None = None,
    limit: int,
    after: str | None = None,
) -> tuple[list[Vehicle], str | None]:
    """One page of the list's vehicles by plate, and the cursor of the next page (None at the end)."""
    queryset = vehicles_filter(Vehicle.objects.filter(vehicle_list=vehicle_list), name=name, status=status)
    if after is not None:
        queryset = queryset.filter(plate__gt=after)
    rows = list(queryset.order_by("plate")[: limit + 1])
    if len(rows) > limit:
        return rows[:limit], rows[limit - 1].plate
    return rows, None


@dataclass(frozen=True)
class PlateHit:
    vehicle: Vehicle
    kind: PlateKind


def plate_candidates(plate: str) -> Q:
    """Vehicles a plate (as read or typed) may be: the same search key (spacing, case
    and OCR confusions aside), or one character more (the reading lost one).
    Both are answered by an index (`vehicle_search_key`, `vehicle_deletion_keys`)."""
    key = search_key(plate)
    return Q(search_key=key) | Q(deletion_keys__contains=[key])


def plate_kind(read: str, vehicle: Vehicle) -> PlateKind:
    """How a candidate of `plate_candidates` matches: the same plate, the same key, or one lost character."""
    if normalise(read) == vehicle.plate:
        return "exact"
    return "confusable" if search_key(read) == vehicle.search_key else "missing"


def vehicles_by_plate(
    *,
    plate: str,
    vehicle_list: VehicleList | None = None,
    name: str | None = None,
    status: str | None = None,
    limit: int,
) -> list[PlateHit]:
    """Vehicles found by plate, tolerant to spacing, case, OCR confusions (any number:
    a person typing what a camera read) and one missing character: exact ones first,
    then confusable, then missing, by plate within each; at most `limit`."""
    if not search_key(plate):
        return []
    queryset = Vehicle.objects.filter(plate_candidates(plate))
    if vehicle_list is not None:
        queryset = queryset.filter(vehicle_list=vehicle_list)
    queryset = vehicles_filter(queryset, name=name, status=status).select_related("vehicle_list")
    # The candidates share the key or miss one character of it: few, whatever the list's size.
    hits = [PlateHit(vehicle, plate_kind(plate, vehicle)) for vehicle in queryset.order_by("plate")[:1000]]
    hits.sort(key=lambda hit: _RANK[hit.kind])
    return hits[:limit]
