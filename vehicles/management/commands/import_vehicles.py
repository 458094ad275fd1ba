"""Import registered vehicles from a CSV file into a list.

    python3 visionaire.py manage import_vehicles LIST FILE.csv [--create-list] [--no-progress]

The file has Nodeflux's dashboard header (ANALYTICS.md):
`plate_number,unique_id,name,type,brand,color,status`, in any order; only
`plate_number` is required, a column left out keeps what a vehicle has. Each
line is checked as POST /vehicle-lists/{list}/vehicles checks a body; a refused
line is reported with its number and reason and the import goes on. A plate
already in the list is updated, so importing a file again changes nothing. The
file is read line by line and stored in batches: memory stays the same whatever
its size.
"""

from __future__ import annotations

import codecs
import csv
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from django.core.management.base import BaseCommand, CommandError
from rest_framework.exceptions import ValidationError
from tqdm import tqdm  # locked (a dependency of rapidocr) and kept up: no need for a hand-written bar

from core.errors import ApiError, validation_message
from vehicles import selectors, services
from vehicles.serializers import VehicleCreateSerializer

HEADER = ("plate_number", "unique_id", "name", "type", "brand", "color", "status")
MAX_LINE_BYTES = 4096  # far above a line of the longest fields; a longer one is refused, not read
BATCH = 500


class _Lines:
    """The file's lines as text, for the csv reader, each read with a bounded
    `readline`: a line too long or not UTF-8 is replaced by an empty one and its
    problem kept by line number (csv.reader counts the same lines)."""

    def __init__(self, binary: BinaryIO):
        self.binary = binary
        self.problems: dict[int, str] = {}
        self.number = 0

    def __iter__(self) -> Iterator[str]:
        while True:
            raw = self.binary.readline(MAX_LINE_BYTES + 1)
            if not raw:
                return
            self.number += 1
            if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                while (rest := self.binary.readline(MAX_LINE_BYTES)) and not rest.endswith(b"\n"):
                    pass
                self.problems[self.number] = f"the line is longer than {MAX_LINE_BYTES} bytes"
                yield "\n"
                continue
            if self.number == 1:
                raw = raw.removeprefix(codecs.BOM_UTF8)
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError:
                self.problems[self.number] = "the line is not UTF-8 text"
                yield "\n"


def header_columns(record: list[str]) -> list[str]:
    columns = [name.strip().lower() for name in record]
    unknown = [name for name in columns if name not in HEADER]
    if unknown:
        raise CommandError(
            f"unknown column(s) in the header: {', '.join(repr(name[:40]) for name in unknown)} "
            f"(the header is {','.join(HEADER)})"
        )
    repeated = sorted({name for name in columns if columns.count(name) > 1})
    if repeated:
        raise CommandError(f"column(s) given twice in the header: {', '.join(repeated)}")
    if "plate_number" not in columns:
        raise CommandError(f"the header has no plate_number column (the header is {','.join(HEADER)})")
    return columns


class Command(BaseCommand):
    help = "Import registered vehicles from a CSV file (header " + ",".join(HEADER) + ")."

    def add_arguments(self, parser):
        parser.add_argument("list_name", help="The vehicle list to import into.")
        parser.add_argument("path", type=Path, help="The CSV file (UTF-8).")
        parser.add_argument(
            "--create-list", action="store_true", help="Create the list if it does not exist."
        )
        parser.add_argument("--no-progress", action="store_true", help="No progress bar.")

    def handle(self, *args, list_name: str, path: Path, create_list: bool, no_progress: bool, **options):
        if not path.is_file():
            raise CommandError(f"{path} is not a file")
        try:
            services.list_name_validate(list_name)
            try:
                vehicle_list = selectors.vehicle_list_get(name=list_name)
            except selectors.VehicleListNotFound:
                if not create_list:
                    raise CommandError(f"vehicle list '{list_name}' not found (use --create-list)") from None
                vehicle_list = services.list_create(name=list_name)
        except ApiError as exc:
            raise CommandError(exc.message) from None

        started = time.perf_counter()
        counts: Counter[str] = Counter()
        reasons: Counter[str] = Counter()
        with (
            path.open("rb") as binary,
            tqdm(
                total=path.stat().st_size, unit="B", unit_scale=True, desc="importing", disable=no_progress
            ) as progress,
        ):

            def refuse(line: int, message: str) -> None:
                counts["refused"] += 1
                reasons[message.split(":", 1)[0] if ":" in message else message] += 1
                with tqdm.external_write_mode():  # the bar (on stderr) is cleared, then redrawn
                    self.stdout.write(f"line {line}: {message}")

            def store(batch: list[tuple[int, dict[str, str]]]) -> None:
                if not batch:
                    return
                try:
                    created, updated = services.vehicles_upsert(
                        vehicle_list=vehicle_list, rows=[row for _, row in batch]
                    )
                    counts["created"] += created
                    counts["updated"] += updated
                except ApiError as exc:  # the vehicle limit: the batch's lines are refused
                    for line, _ in batch:
                        refuse(line, exc.message)
                finally:
                    batch.clear()
                progress.update(binary.tell() - progress.n)

            lines = _Lines(binary)
            reader = csv.reader(lines)
            columns: list[str] | None = None
            batch: list[tuple[int, dict[str, str]]] = []
            # One serializer for every line: building one per line costs several times its checks.
            validator = VehicleCreateSerializer()
            while True:
                try:
                    record = next(reader)
                except StopIteration:
                    break
                except csv.Error as exc:
                    counts["lines"] += 1
                    refuse(reader.line_num, f"not a CSV line ({exc})")
                    continue
                line = reader.line_num
                if line in lines.problems:
                    counts["lines"] += 1
                    refuse(line, lines.problems[line])
                    continue
                if not any(field.strip() for field in record):
                    continue  # blank lines are not vehicles
                if columns is None:
                    columns = header_columns(record)
                    continue
                counts["lines"] += 1
                if len(record) != len(columns):
                    refuse(line, f"{len(record)} fields where the header has {len(columns)}")
                    continue
                try:
                    valid = validator.run_validation(dict(zip(columns, record, strict=True)))
                except ValidationError as exc:
                    refuse(line, validation_message(exc.detail))
                    continue
                batch.append((line, dict(valid)))
                if len(batch) >= BATCH:
                    store(batch)
            if columns is None:
                raise CommandError(f"{path} is empty: the first line must be the header {','.join(HEADER)}")
            store(batch)
            progress.update(progress.total - progress.n)

        seconds = time.perf_counter() - started
        self.stdout.write(
            f"imported {path.name} into vehicle list '{vehicle_list.name}': {counts['lines']} lines, "
            f"{counts['created']} vehicles created, {counts['updated']} updated, "
            f"{counts['refused']} lines refused, in {seconds:.1f} s"
        )
        if reasons:
            summary = ", ".join(f"{reason}: {count}" for reason, count in sorted(reasons.items()))
            self.stdout.write(f"refused lines by reason: {summary}")
