"""Enroll a folder of photos: one sub-folder per person, named after them.

    python3 visionaire.py manage enroll_folder PATH --keyspace employees [--create-keyspace]

Each photo goes through the enrollment checks (one face, large and sharp
enough); the first accepted photo of a person creates them (face id generated,
name = the folder's name, or the existing person of that name in the keyspace
gets new variations), the others add variations. Photos are read and checked
in parallel with the embedding of earlier ones, which goes in batches
(faces/bulk.py). Rejected photos are listed at the end with the reason.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from core.errors import ApiError
from faces import services
from faces.bulk import PhotoJob, PhotoOutcome, folder_enroll
from faces.selectors import KeyspaceNotFound, keyspace_get

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png"}


class _Progress:
    """A progress line (photos done, faces enrolled, rate); tqdm is not among
    the locked dependencies, and this is all the command needs."""

    def __init__(self, total: int, stream, *, every: int = 10):
        self.total, self.done, self.enrolled, self.stream, self.every = total, 0, 0, stream, every
        self.started = time.perf_counter()

    def update(self, outcome: PhotoOutcome) -> None:
        self.done += 1
        self.enrolled += outcome.enrolled
        if self.done == self.total or self.done % self.every == 0:
            seconds = max(time.perf_counter() - self.started, 1e-9)
            width = 30
            filled = int(width * self.done / max(self.total, 1))
            self.stream.write(
                f"\renrolling {self.done}/{self.total} photos [{'#' * filled}{'.' * (width - filled)}] "
                f"{self.enrolled} enrolled, {self.enrolled / seconds:.1f} faces/s",
                ending="",
            )
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
        parser.add_argument(
            "--workers",
            type=int,
            default=min(4, os.cpu_count() or 1),
            help="Threads reading, decoding and checking photos (default: the CPUs, at most 4).",
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=0,
            help="Faces per embedding call (default: VISIONAIRE_FACE_EMBED_BATCH_SIZE, else 8 on a CPU, "
            "32 on a GPU).",
        )

    def handle(
        self,
        *args,
        path: Path,
        keyspace: str,
        create_keyspace: bool,
        category,
        no_progress,
        workers: int,
        batch_size: int,
        **options,
    ):
        from analytics.face.batching import default_batch_size
        from analytics.face.engine import face_engine

        if not path.is_dir():
            raise CommandError(f"{path} is not a folder")
        if workers < 1 or batch_size < 0:
            raise CommandError("--workers must be at least 1 and --batch-size at least 0")
        try:
            keyspace_row = keyspace_get(name=keyspace)
        except KeyspaceNotFound:
            if not create_keyspace:
                raise CommandError(f"keyspace '{keyspace}' not found (use --create-keyspace)") from None
            try:
                keyspace_row = services.keyspace_create(name=keyspace)
            except ApiError as exc:
                raise CommandError(exc.message) from None
        jobs = [
            PhotoJob(folder.name, photo)
            for folder in sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
            for photo in sorted(folder.iterdir())
            if photo.is_file() and photo.suffix.lower() in PHOTO_SUFFIXES
        ]
        if not jobs:
            raise CommandError(f"no photos (.jpg, .jpeg, .png) in the sub-folders of {path}")
        embedder = face_engine().embedder
        batch = batch_size or settings.FACE_EMBED_BATCH_SIZE or default_batch_size(embedder, bulk=True)
        progress = _Progress(len(jobs), self.stdout) if not no_progress else None
        try:
            report = folder_enroll(
                keyspace=keyspace_row,
                jobs=jobs,
                category=category,
                workers=workers,
                batch_size=batch,
                on_photo=progress.update if progress else None,
            )
        finally:
            if progress is not None:
                progress.close()
        self.stdout.write(
            f"enrolled {report.enrolled} of {report.photos} photos into keyspace '{keyspace_row.name}' "
            f"({report.new_people} new people) in {report.seconds:.1f} s "
            f"({report.faces_per_second:.1f} faces/s, {report.photos_per_second:.1f} photos/s)"
        )
        if report.rejected:
            counts = Counter(outcome.reason for outcome in report.rejected)
            summary = ", ".join(f"{reason}: {count}" for reason, count in sorted(counts.items()))
            self.stdout.write(f"rejected {len(report.rejected)} photos ({summary}):")
            for outcome in report.rejected:
                photo = outcome.job.path.relative_to(path)
                self.stdout.write(f"  {photo}: {outcome.reason} ({outcome.message})")
