"""Issue a signed licence and print the credentials a customer checks in."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from platform_config.licence import (
    LicenceError,
    LicenceSeat,
    licence_sign,
    load_private_key,
    serial_number_new,
)

SEAT_SPEC = re.compile(r"^(?P<analytic>[A-Za-z0-9][A-Za-z0-9_.-]{0,39})=(?P<count>\d{1,4})$")
MAX_SEATS_PER_ANALYTIC = 1024


def _parse_seats(specs: list[str]) -> list[tuple[str, int]]:
    parsed: dict[str, int] = {}
    for spec in specs:
        match = SEAT_SPEC.match(spec)
        if match is None:
            raise CommandError(f"--seats {spec!r}: expected ANALYTIC_ID=COUNT, e.g. MY-ANALYTIC=3")
        count = int(match["count"])
        if not 1 <= count <= MAX_SEATS_PER_ANALYTIC:
            raise CommandError(f"--seats {spec!r}: count must be between 1 and {MAX_SEATS_PER_ANALYTIC}")
        if match["analytic"] in parsed:
            raise CommandError(f"--seats: {match['analytic']} given twice")
        parsed[match["analytic"]] = count
    return list(parsed.items())


def _parse_date(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(f"--expires {text!r}: expected an ISO 8601 date or timestamp") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class Command(BaseCommand):
    help = "Sign a licence with the issuer's private key and print its access_key and secret_key."

    def add_arguments(self, parser):
        parser.add_argument("--private-key", required=True, help="Issuer private key PEM (licence_keygen).")
        parser.add_argument("--deployment-key", required=True, help="Deployment the licence is for.")
        when = parser.add_mutually_exclusive_group(required=True)
        when.add_argument("--days", type=int, help="Valid for this many days from now.")
        when.add_argument("--expires", help="Expiry as an ISO 8601 date or timestamp (UTC if no zone).")
        parser.add_argument(
            "--seats",
            action="append",
            default=[],
            metavar="ANALYTIC_ID=COUNT",
            help=(
                "Seats of an analytic, e.g. --seats MY-ANALYTIC=3 (ids as /analytic_list names them); "
                "repeat for more analytics."
            ),
        )
        parser.add_argument("--licence-id", help="Licence id (random when omitted).")

    def handle(self, *args, **options):
        try:
            private_key = load_private_key(Path(options["private_key"]).expanduser().read_bytes())
        except OSError as exc:
            raise CommandError(f"cannot read the private key: {exc.strerror}") from None
        except (ValueError, TypeError, LicenceError) as exc:
            raise CommandError(f"not a usable private key: {exc}") from None
        deployment_key = options["deployment_key"].strip()
        if not deployment_key or len(deployment_key) > 100:
            raise CommandError("--deployment-key must be 1 to 100 characters")
        issued_at = datetime.now(UTC).replace(microsecond=0)
        if options["days"] is not None:
            if options["days"] < 1:
                raise CommandError("--days must be at least 1")
            expires_at = issued_at + timedelta(days=options["days"])
        else:
            expires_at = _parse_date(options["expires"])
            if expires_at <= issued_at:
                raise CommandError("--expires must be in the future")
        licence_id = options["licence_id"] or secrets.token_hex(8).upper()
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,100}", licence_id):
            raise CommandError("--licence-id may use letters, digits, '_', '.', '-' (at most 100)")
        taken: set[str] = set()
        seats = [
            LicenceSeat(analytic_id=analytic_id, serial_number=serial_number_new(analytic_id, index, taken))
            for analytic_id, count in _parse_seats(options["seats"])
            for index in range(1, count + 1)
        ]
        access_key, secret_key = licence_sign(
            private_key=private_key,
            licence_id=licence_id,
            deployment_key=deployment_key,
            issued_at=issued_at,
            expires_at=expires_at,
            seats=seats,
        )
        self.stdout.write(f"access_key: {access_key}")
        self.stdout.write(f"secret_key: {secret_key}")
