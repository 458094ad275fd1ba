"""Measure face recognition on a folder of labelled photos (one sub-folder per person).

    python3 visionaire.py manage face_eval PATH [--output result.json]
        [--max-false-match-rate 0.01] [--gallery-sizes 10,100,1000] [--seed 0]
        [--frontal-only] [--no-progress]

Verification ROC, open-set 1:N and enrollment refusal through the engine's own
detection and embedding (see faces.evaluation); the JSON result goes to stdout
and, with --output, to a file. A progress bar goes to stderr.
"""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from analytics.face.quality import QualityLimits
from faces.evaluation import GALLERY_SIZES, EvaluationError, Progress, evaluate


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise CommandError(f"--gallery-sizes: expected numbers separated by commas, got '{text}'") from None
    if not sizes or min(sizes) < 1:
        raise CommandError(f"--gallery-sizes: expected positive numbers, got '{text}'")
    return sizes


class Command(BaseCommand):
    help = (
        "Measure face recognition on a folder with one sub-folder of photos per person: verification ROC, "
        "open-set 1:N false-name and genuine-accept rates, enrollment refusal rate (JSON on stdout)."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", type=Path, help="Folder with one sub-folder of photos per person.")
        parser.add_argument("--output", type=Path, default=None, help="Also write the JSON result here.")
        parser.add_argument(
            "--max-false-match-rate",
            type=float,
            default=0.01,
            help="Target share of strangers named, for the calibrated threshold (default 0.01).",
        )
        parser.add_argument(
            "--gallery-sizes",
            default=",".join(str(size) for size in GALLERY_SIZES),
            help="Open-set gallery sizes, comma-separated (default 10,100,1000; those the folder allows).",
        )
        parser.add_argument("--seed", type=int, default=0, help="Seed of the enrolled/stranger split.")
        parser.add_argument(
            "--frontal-only", action="store_true", help="Enrollment refuses faces turned or tilted away."
        )
        parser.add_argument("--no-progress", action="store_true", help="No progress bar.")

    def handle(self, *args, path: Path, output, max_false_match_rate, gallery_sizes, seed, **options):
        limits = QualityLimits.frontal() if options["frontal_only"] else QualityLimits()
        enabled = not options["no_progress"]
        try:
            result = evaluate(
                path,
                gallery_sizes=_sizes(gallery_sizes),
                max_false_match_rate=max_false_match_rate,
                limits=limits,
                seed=seed,
                progress=lambda total: Progress(total, "embedding photos", enabled=enabled),
            )
        except EvaluationError as exc:
            raise CommandError(str(exc)) from None
        text = json.dumps(result, indent=2)
        if output is not None:
            try:
                output.write_text(text + "\n")
            except OSError as exc:
                raise CommandError(f"--output: cannot write {output}: {exc.strerror}") from None
        self.stdout.write(text)
