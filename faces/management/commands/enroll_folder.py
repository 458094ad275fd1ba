"""Enroll a folder of photos: one sub-folder per person, named after them.

    python3 visionaire.py manage enroll_folder PATH --keyspace employees [--create-keyspace]

Each photo goes through the enrollment checks (one face, large and sharp
enough); the first accepted photo of a person creates them (face id generated,
name = the folder's name, or the existing person of that name in the keyspace
gets new variations), the others add variations. Rejected photos are listed at
the end with the reason.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from core.errors import ApiError
from core.images import image_from_bytes
from faces import services
from faces.models import Keyspace, Person
from faces.selectors import KeyspaceNotFound, keyspace_get

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png"}


class _Counter:
    """A plain progress line, for when tqdm is not installed."""

    def __init__(self, total: int, stream):
        self.total, self.done, self.stream = total, 0, stream

    def update(self, count: int = 1) -> None:
        self.done += count
        if self.done == self.total or self.done % 10 == 0:
            self.stream.write(f"\renrolling {self.done}/{self.total}", ending="")
            self.stream.flush()

    def close(self) -> None:
        self.stream.write("")


class Command(BaseCommand):
    help = (
        "Enroll a folder of face photos: one sub-folder per person, the folder's name is the person's name."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", type=Path, help="Folder with one sub-folder of photos per person.")
        parser.add_argument("--keyspace", required=True, help="Keyspace to enroll into.")
        parser.add_argument("--create-keyspace", action="store_true", help="Create the keyspace if missing.")
        parser.add_argument("--category", default=None, help="Category (secondary_text) for new people.")
        parser.add_argument("--no-progress", action="store_true", help="No progress bar.")

    def handle(
        self, *args, path: Path, keyspace: str, create_keyspace: bool, category, no_progress, **options
    ):
        if not path.is_dir():
            raise CommandError(f"{path} is not a folder")
        try:
            keyspace_row = keyspace_get(name=keyspace)
        except KeyspaceNotFound:
            if not create_keyspace:
                raise CommandError(f"keyspace '{keyspace}' not found (use --create-keyspace)") from None
            try:
                keyspace_row = services.keyspace_create(name=keyspace)
            except ApiError as exc:
                raise CommandError(exc.message) from None
        work = [
            (folder.name, photo)
            for folder in sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
            for photo in sorted(folder.iterdir())
            if photo.is_file() and photo.suffix.lower() in PHOTO_SUFFIXES
        ]
        if not work:
            raise CommandError(f"no photos (.jpg, .jpeg, .png) in the sub-folders of {path}")
        progress = self._progress(len(work), quiet=no_progress)
        rejected: list[tuple[Path, str, str]] = []
        people_before = Person.objects.filter(keyspace=keyspace_row).count()
        enrolled = 0
        started = time.perf_counter()
        try:
            for name, photo in work:
                try:
                    self._enroll(keyspace_row, name, photo, category)
                    enrolled += 1
                except services.FaceRejected as exc:
                    rejected.append((photo, services.REJECT_REASONS[exc.reason], exc.message))
                except ApiError as exc:
                    reason = "unreadable image" if exc.status in (400, 413) else "refused"
                    rejected.append((photo, reason, exc.message))
                except OSError as exc:
                    rejected.append((photo, "unreadable image", str(exc)))
                progress.update(1)
        finally:
            progress.close()
        seconds = time.perf_counter() - started
        people = Person.objects.filter(keyspace=keyspace_row).count() - people_before
        self.stdout.write(
            f"enrolled {enrolled} of {len(work)} photos into keyspace '{keyspace_row.name}' "
            f"({people} new people) in {seconds:.1f} s ({len(work) / max(seconds, 1e-9):.1f} photos/s)"
        )
        if rejected:
            counts = Counter(reason for _, reason, _ in rejected)
            summary = ", ".join(f"{reason}: {count}" for reason, count in sorted(counts.items()))
            self.stdout.write(f"rejected {len(rejected)} photos ({summary}):")
            for photo, reason, message in rejected:
                self.stdout.write(f"  {photo.relative_to(path)}: {reason} ({message})")

    def _enroll(self, keyspace: Keyspace, name: str, photo: Path, category) -> None:
        image = image_from_bytes(photo.read_bytes(), field=photo.name)
        person = Person.objects.filter(keyspace=keyspace, name=name[:200]).order_by("pk").first()
        if person is None:
            services.face_enroll(keyspace=keyspace.name, image=image, name=name[:200], category=category)
        else:
            services.face_enroll(keyspace=keyspace.name, image=image, face_id=person.face_id)

    def _progress(self, total: int, *, quiet: bool):
        if quiet:
            return _Counter(total, _Silent())
        try:
            from tqdm import tqdm
        except ImportError:
            return _Counter(total, self.stdout)
        return tqdm(total=total, unit="photo", desc="enrolling")


class _Silent:
    def write(self, *args, **kwargs) -> None:
        pass

    def flush(self) -> None:
        pass
