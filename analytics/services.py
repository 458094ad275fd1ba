"""Analytics and seats: keeping the table in step with the plugins, handing
out seats to pipelines and taking them back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from django.conf import settings
from django.db import transaction

from core.errors import ApiError

from .models import Analytic, Seat, SeatSource
from .registry import all_plugins

# 402 Payment Required: the request is valid but the deployment has no licence
# capacity left for it (documented in the README and the OpenAPI description).
NO_SEAT_STATUS = 402


class NoSeatAvailable(ApiError):
    status = NO_SEAT_STATUS


class LicensedSeat(Protocol):
    """A seat a licence grants (platform_config.licence.LicenceSeat)."""

    analytic_id: str
    serial_number: str


def community_serial(analytic_id: str, index: int) -> str:
    return f"COMMUNITY-{analytic_id}-{index:04d}"


def analytics_sync_registry(**_kwargs) -> None:
    """Upsert a row per registered plugin, mark missing ones uninstalled, and
    top up the community seats. Runs after every migrate and at start-up."""
    plugins = all_plugins()
    with transaction.atomic():
        for plugin in plugins:
            Analytic.objects.update_or_create(
                id=plugin.id,
                defaults={
                    "name": plugin.name,
                    "major_version": plugin.major_version,
                    "minor_version": plugin.minor_version,
                    "publisher": plugin.publisher,
                    "description": plugin.description,
                    "type": plugin.type,
                    "installed": True,
                },
            )
        Analytic.objects.exclude(id__in=[p.id for p in plugins]).update(installed=False)
        seats_sync_community()


def seats_sync_community() -> None:
    """Give each installed analytic COMMUNITY_SEATS_PER_ANALYTIC community seats,
    active only while no licence is checked in."""
    from platform_config.selectors import licence_active

    active = not licence_active()
    wanted = settings.COMMUNITY_SEATS_PER_ANALYTIC
    for analytic in Analytic.objects.filter(installed=True):
        existing = set(
            Seat.objects.filter(analytic=analytic, source=SeatSource.COMMUNITY).values_list(
                "serial_number", flat=True
            )
        )
        missing = [
            Seat(analytic=analytic, serial_number=serial, source=SeatSource.COMMUNITY, active=active)
            for serial in (community_serial(analytic.id, i) for i in range(1, wanted + 1))
            if serial not in existing
        ]
        Seat.objects.bulk_create(missing)
    Seat.objects.filter(source=SeatSource.COMMUNITY).update(active=active)


def seat_take(*, analytic_id: str, pipeline) -> Seat:
    """Give `pipeline` a free active seat of its analytic (call inside a transaction)."""
    seat = (
        Seat.objects.select_for_update(skip_locked=True)
        .filter(analytic_id=analytic_id, active=True, pipeline__isnull=True)
        .order_by("source", "serial_number")
        .first()
    )
    if seat is None:
        raise NoSeatAvailable(
            f"no available seat for analytic {analytic_id}: delete a pipeline of it or check in a licence "
            "with more seats"
        )
    seat.pipeline = pipeline
    seat.save(update_fields=["pipeline"])
    return seat


def seats_rebalance() -> None:
    """Move pipelines off inactive seats onto free active ones of their analytic,
    e.g. after a check-in replaced community seats with licensed ones."""
    with transaction.atomic():
        stranded = list(
            Seat.objects.select_for_update().filter(active=False, pipeline__isnull=False).order_by("id")
        )
        for seat in stranded:
            free = (
                Seat.objects.select_for_update(skip_locked=True)
                .filter(analytic_id=seat.analytic_id, active=True, pipeline__isnull=True)
                .order_by("source", "serial_number")
                .first()
            )
            if free is None:
                continue
            pipeline = seat.pipeline
            seat.pipeline = None
            seat.save(update_fields=["pipeline"])
            free.pipeline = pipeline
            free.save(update_fields=["pipeline"])


# --- licences ------------------------------------------------------------------


def licence_seats_apply(seats: Sequence[LicensedSeat]) -> None:
    """Make a licence's seats exist and be active, and the other licensed seats inactive."""
    analytic_ids = {seat.analytic_id for seat in seats}
    known = set(Analytic.objects.filter(id__in=analytic_ids).values_list("id", flat=True))
    # A licence may name an analytic not installed yet: keep a placeholder row so
    # its seats exist; analytics_sync_registry fills it in when the plugin arrives.
    Analytic.objects.bulk_create(
        [
            Analytic(
                id=analytic_id,
                name=analytic_id,
                major_version=0,
                minor_version=0,
                publisher="",
                type="",
                installed=False,
            )
            for analytic_id in sorted(analytic_ids - known)
        ]
    )
    serials = [seat.serial_number for seat in seats]
    existing = {
        seat.serial_number: seat
        for seat in Seat.objects.select_for_update().filter(serial_number__in=serials)
    }
    to_create = []
    for wanted in seats:
        seat = existing.get(wanted.serial_number)
        if seat is None:
            to_create.append(
                Seat(
                    analytic_id=wanted.analytic_id,
                    serial_number=wanted.serial_number,
                    source=SeatSource.LICENCE,
                    active=True,
                )
            )
            continue
        if seat.analytic_id != wanted.analytic_id:
            seat.pipeline = None  # the seat now licenses another analytic
        seat.analytic_id = wanted.analytic_id
        seat.source = SeatSource.LICENCE
        seat.active = True
        seat.save(update_fields=["analytic", "source", "active", "pipeline"])
    Seat.objects.bulk_create(to_create)
    Seat.objects.filter(source=SeatSource.LICENCE).exclude(serial_number__in=serials).update(active=False)


def licence_seats_follow(seats: Sequence[LicensedSeat] | None) -> None:
    """Seats after a licence change (call inside its transaction): the licence's
    seats active and the community ones inactive; with `seats` None (no licence
    in force) the licensed seats inactive and the community allowance back.
    Pipelines then move onto active seats where there are free ones."""
    if seats is None:
        Seat.objects.filter(source=SeatSource.LICENCE).update(active=False)
    else:
        licence_seats_apply(seats)
    seats_sync_community()
    seats_rebalance()
