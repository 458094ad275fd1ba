"""Bulk enrollment (`enroll_folder`): photos are read and checked in parallel
with the embedding of those checked before them.

Three stages joined by bounded queues, so memory stays flat whatever the
folder's size and the slowest stage sets the pace:

1. readers (`workers` threads): read the file, decode it (with the header
   checks of the API), detect, apply the enrollment checks (one face, large and
   sharp enough) and align the face into the embedder's chip;
2. embedder (one thread): takes the chips waiting (at most `batch_size`) and
   embeds them in one model call; a lone chip does not wait for company;
3. writer (the caller's thread, which owns the database connection): the
   person and variation rows, the photo and its thumbnail, one transaction per
   photo as `face_enroll` does.

A photo that fails any stage is reported with its reason and the others go on.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from analytics.face.engine import DetectedFace, face_engine
from analytics.face.quality import FaceQuality
from core.errors import ApiError
from core.images import DecodedImage, image_from_bytes

from . import services
from .models import Keyspace, Person

logger = logging.getLogger(__name__)

QUEUE_BATCHES = 2  # photos waiting between stages: this many embedder batches


@dataclass(frozen=True)
class PhotoJob:
    """One photo of a person (the person's name, the file)."""

    name: str
    path: Path


@dataclass
class PhotoOutcome:
    job: PhotoJob
    enrolled: bool = False
    reason: str = ""  # why it was rejected: services.REJECT_REASONS' texts, "refused" or "error"
    message: str = ""


@dataclass
class _Checked:
    job: PhotoJob
    image: DecodedImage
    face: DetectedFace
    quality: FaceQuality
    chip: np.ndarray
    embedding: np.ndarray | None = None


@dataclass
class BulkReport:
    photos: int = 0
    enrolled: int = 0
    new_people: int = 0
    seconds: float = 0.0
    rejected: list[PhotoOutcome] = field(default_factory=list)

    @property
    def faces_per_second(self) -> float:
        return self.enrolled / self.seconds if self.seconds > 0 else 0.0

    @property
    def photos_per_second(self) -> float:
        return self.photos / self.seconds if self.seconds > 0 else 0.0


def _rejection(job: PhotoJob, exc: Exception) -> PhotoOutcome:
    if isinstance(exc, services.FaceRejected):
        return PhotoOutcome(job, reason=services.REJECT_REASONS[exc.reason], message=exc.message)
    if isinstance(exc, ApiError):
        reason = "unreadable image" if exc.status in (400, 413) else "refused"
        return PhotoOutcome(job, reason=reason, message=exc.message)
    if isinstance(exc, OSError):
        return PhotoOutcome(job, reason="unreadable image", message=str(exc))
    logger.error("enrolling %s failed", job.path, exc_info=exc)
    return PhotoOutcome(job, reason="error", message=f"{type(exc).__name__}: {exc}"[:300])


class _Stopped(Exception):
    """The pipeline is being torn down (the writer failed or was interrupted)."""


class _Pipeline:
    def __init__(self, jobs: list[PhotoJob], *, workers: int, batch_size: int) -> None:
        self.embedder = face_engine().embedder
        self.batch_size = max(1, batch_size)
        self.workers = max(1, workers)
        self._jobs: Iterator[PhotoJob] = iter(jobs)
        self._jobs_lock = threading.Lock()
        size = QUEUE_BATCHES * self.batch_size
        self.checked: queue.Queue[_Checked | PhotoOutcome | None] = queue.Queue(maxsize=size)
        self.done: queue.Queue[_Checked | PhotoOutcome | None] = queue.Queue(maxsize=size)
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self._read_all, name=f"enroll-read-{i}", daemon=True)
            for i in range(self.workers)
        ]
        self.threads.append(threading.Thread(target=self._embed_all, name="enroll-embed", daemon=True))

    def _put(self, target: queue.Queue, item) -> None:
        # A bounded put that gives up once the pipeline is torn down.
        while True:
            if self.stop.is_set():
                raise _Stopped
            try:
                target.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _next_job(self) -> PhotoJob | None:
        with self._jobs_lock:
            return next(self._jobs, None)

    # --- stage 1 -------------------------------------------------------------------
    def _read_all(self) -> None:
        try:
            while (job := self._next_job()) is not None:
                self._put(self.checked, self._read(job))
            self._put(self.checked, None)  # this reader is done
        except _Stopped:
            pass

    def _read(self, job: PhotoJob) -> _Checked | PhotoOutcome:
        try:
            image = image_from_bytes(job.path.read_bytes(), field=job.path.name)
            face, quality, _ = services.enrollment_face_check(image.pixels)
            chip = self.embedder.chips(image.pixels, [face])[0]
        except Exception as exc:
            return _rejection(job, exc)
        return _Checked(job=job, image=image, face=face, quality=quality, chip=chip)

    # --- stage 2 -------------------------------------------------------------------
    def _embed_all(self) -> None:
        readers_left = self.workers
        try:
            while readers_left:
                batch: list[_Checked] = []
                item = self._get(self.checked)
                while True:
                    if item is None:
                        readers_left -= 1
                    elif isinstance(item, PhotoOutcome):
                        self._put(self.done, item)
                    else:
                        batch.append(item)
                    if len(batch) >= self.batch_size or not readers_left:
                        break
                    try:
                        item = self.checked.get_nowait()
                    except queue.Empty:
                        break
                for result in self._embed(batch):
                    self._put(self.done, result)
            self._put(self.done, None)
        except _Stopped:
            pass

    def _get(self, source: queue.Queue):
        while True:
            if self.stop.is_set():
                raise _Stopped
            try:
                return source.get(timeout=0.1)
            except queue.Empty:
                continue

    def _embed(self, batch: list[_Checked]) -> list[_Checked | PhotoOutcome]:
        if not batch:
            return []
        try:
            vectors = self.embedder.embed_chips(np.stack([item.chip for item in batch]))
        except Exception as exc:
            return [_rejection(item.job, exc) for item in batch]
        for item, vector in zip(batch, vectors, strict=True):
            item.embedding = vector
        return list(batch)

    # --- running -------------------------------------------------------------------
    def results(self) -> Iterator[_Checked | PhotoOutcome]:
        for thread in self.threads:
            thread.start()
        try:
            while (item := self._get(self.done)) is not None:
                yield item
        finally:
            self.stop.set()
            for thread in self.threads:
                thread.join()


def folder_enroll(
    *,
    keyspace: Keyspace,
    jobs: list[PhotoJob],
    category: str | None = None,
    workers: int = 2,
    batch_size: int = 8,
    on_photo: Callable[[PhotoOutcome], None] | None = None,
) -> BulkReport:
    """Enroll the photos into the keyspace: the first accepted photo of a name
    creates the person (or the name's existing person in the keyspace gets new
    variations), the others add variations. `on_photo` is told of each photo
    as it is done (progress)."""
    report = BulkReport(photos=len(jobs))
    people_before = Person.objects.filter(keyspace=keyspace).count()
    started = time.perf_counter()
    results = _Pipeline(jobs, workers=workers, batch_size=batch_size).results()
    try:
        for item in results:
            outcome = item if isinstance(item, PhotoOutcome) else _write(keyspace, item, category)
            if outcome.enrolled:
                report.enrolled += 1
            else:
                report.rejected.append(outcome)
            if on_photo is not None:
                on_photo(outcome)
    finally:
        results.close()  # an interrupted run stops and joins the other stages
    report.seconds = time.perf_counter() - started
    report.new_people = Person.objects.filter(keyspace=keyspace).count() - people_before
    report.rejected.sort(key=lambda outcome: outcome.job.path)
    return report


def _write(keyspace: Keyspace, item: _Checked, category: str | None) -> PhotoOutcome:
    found = services.EnrollmentFace(face=item.face, embedding=item.embedding, quality=item.quality)
    name = item.job.name[:200]
    try:
        person = Person.objects.filter(keyspace=keyspace, name=name).order_by("pk").first()
        if person is None:
            services.face_enroll(
                keyspace=keyspace.name, image=item.image, name=name, category=category, found=found
            )
        else:
            services.face_enroll(
                keyspace=keyspace.name, image=item.image, face_id=person.face_id, found=found
            )
    except Exception as exc:
        return _rejection(item.job, exc)
    return PhotoOutcome(item.job, enrolled=True)
