"""Re-embed every stored face with the configured embedder and resize the vector columns.

    python3 visionaire.py manage face_reembed [--events] [--batch N] [--drop-unembeddable] [--no-progress]

Run it after configuring another face embedder (VISIONAIRE_FACE_EMBEDDER=onnx and
VISIONAIRE_FACE_ONNX_*): the face engine refuses to start until the database's
vectors have the embedder's size. See faces/reembed.py for what it does and
what a failure leaves (the old state).
"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from faces.evaluation import Progress
from faces.reembed import ReembedRefused, faces_reembed


class Command(BaseCommand):
    help = (
        "Re-embed every enrolled face photo (and, with --events, the events' face pictures) with the "
        "configured face embedder, then resize the embedding columns to its dimension in one transaction."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--events",
            action="store_true",
            help="Re-embed the events' face pictures too; without it their embeddings are cleared "
            "(they drop out of search by photo).",
        )
        parser.add_argument(
            "--batch", type=int, default=16, help="Faces per model call (1..256, default 16)."
        )
        parser.add_argument(
            "--drop-unembeddable",
            action="store_true",
            help="Delete enrolled faces that cannot be re-embedded (no stored photo, face not found) instead "
            "of refusing; people left without a face are deleted too.",
        )
        parser.add_argument("--no-progress", action="store_true", help="No progress bar.")

    def handle(self, *args, events: bool, batch: int, drop_unembeddable: bool, no_progress: bool, **options):
        from analytics.face.engine import face_engine_build, face_engine_reset

        if not 1 <= batch <= 256:
            raise CommandError(f"--batch must lie in 1..256, got {batch}")
        verbosity = options["verbosity"]
        engine = face_engine_build()
        embedder = engine.embedder
        self.stdout.write(f"embedder {embedder.name}: {embedder.dim}-d embeddings ({embedder.provider})")

        def on_problem(text: str, enrolled: bool) -> None:
            # Enrolled faces are few and each matters; events may be many: listed at -v 2.
            if enrolled or verbosity >= 2:
                self.stderr.write(f"cannot re-embed {text}")

        try:
            report = faces_reembed(
                engine=engine,
                events=events,
                batch=batch,
                drop_unembeddable=drop_unembeddable,
                progress=lambda total, label: Progress(total, label, enabled=not no_progress),
                on_problem=on_problem,
            )
        except ReembedRefused as exc:
            raise CommandError(str(exc)) from None
        # This process's engine (if any) was checked against the old columns.
        face_engine_reset()
        previous = ", ".join(f"{name} {dim}" for name, dim in report.previous.items())
        self.stdout.write(
            f"re-embedded {report.faces} enrolled face(s) with {report.embedder}; columns resized to "
            f"{report.dimension} (were: {previous}) in {report.seconds} s"
        )
        if report.faces_dropped:
            self.stdout.write(
                f"deleted {report.faces_dropped} enrolled face(s) that could not be re-embedded, and "
                f"{report.people_dropped} person(s) left without a face"
            )
        if events:
            self.stdout.write(
                f"re-embedded {report.events} event face(s); {report.events_unembeddable} event(s) without a "
                "face found again lost their embedding (no longer found by search by photo)"
            )
        else:
            self.stdout.write(
                f"cleared the embeddings of {report.events_cleared} event(s): they are no longer found by "
                "search by photo (run with --events to re-embed them)"
            )
        if verbosity >= 2:
            self.stdout.write(json.dumps(report.as_dict(), indent=2))
