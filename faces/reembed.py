"""Stored face embeddings and the embedder in force: one vector size.

The enrolled faces (`FaceVariation.embedding`) and the events' faces
(`Event.embedding`, search by photo) are pgvector columns of one fixed dimension
with an HNSW index each. A fresh database holds 128-d vectors (the shipped
dlib model); another embedder (an ArcFace-class ONNX model, 512-d) needs the
columns resized and every stored face embedded again by it.

- `embedding_column_dimensions()`: the columns' dimensions as PostgreSQL's
  catalog has them (`format_type(atttypid, atttypmod)`), not the Django field's
  (which keeps the fresh database's 128).
- `embedding_store_check(embedder)`: registered with the face engine
  (faces/apps.py); the engine refuses to start when the sizes differ.
- `faces_reembed(...)`: re-embeds every enrolled photo (the stored box picks the
  face; detection and alignment as enrollment does them) and, with `events`,
  the events' face crops, into session-local staging tables (no lock held on
  the platform's tables while the model runs), then in ONE transaction swaps
  each column for one of the new size (add, fill, drop the old column and its
  index, rename, recreate the HNSW index). A failure before or inside that
  transaction leaves the old columns, vectors and indexes as they were.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import cv2
import numpy as np
from django.apps import apps
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from django.db.models import Count, Model, QuerySet
from django.db.models.expressions import RawSQL

from core.images import image_from_bytes

from .models import FaceVariation, Person

logger = logging.getLogger(__name__)

REEMBED_COMMAND = "python3 visionaire.py manage face_reembed"
# The HNSW parameters of the models' indexes (faces.models, events.models).
_HNSW_M, _HNSW_EF_CONSTRUCTION = 16, 64
# A stored box and a detection are the same face at this overlap (IoU) or more.
_SAME_FACE_IOU = 0.5
# Problems kept in the report (each one is also handed to `on_problem` as it happens).
_MAX_LISTED_PROBLEMS = 1000
_VECTOR_TYPE = re.compile(r"^vector\((\d+)\)$")


@dataclass(frozen=True)
class EmbeddingColumn:
    model: type[Model]
    index: str  # its HNSW index (cosine)
    nullable: bool
    staging: str  # the session's temporary table of new vectors

    @property
    def table(self) -> str:
        return self.model._meta.db_table

    @property
    def name(self) -> str:
        return f"{self.table}.embedding"

    @property
    def key_type(self) -> str:
        """The primary key's SQL type, for the staging table."""
        return "uuid" if self.model._meta.pk.get_internal_type() == "UUIDField" else "bigint"


def embedding_columns() -> tuple[EmbeddingColumn, EmbeddingColumn]:
    """The enrolled faces' column and the events' column (events is looked up by
    name: the two apps do not import each other)."""
    event = apps.get_model("events", "Event")
    return (
        EmbeddingColumn(FaceVariation, "face_variation_embedding_hnsw", False, "face_reembed_faces"),
        EmbeddingColumn(event, "event_embedding_hnsw", True, "face_reembed_events"),
    )


def embedding_column_dimensions() -> dict[str, int | None]:
    """'table.embedding' -> the dimension PostgreSQL's catalog gives the column
    (None: a vector without a fixed dimension)."""
    found: dict[str, int | None] = {}
    with connection.cursor() as cursor:
        for column in embedding_columns():
            cursor.execute(
                "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                "WHERE attrelid = %s::regclass AND attname = 'embedding' AND NOT attisdropped",
                [column.table],
            )
            row = cursor.fetchone()
            if row is None:
                raise ImproperlyConfigured(f"{column.name}: no such column (are the migrations applied?)")
            match = _VECTOR_TYPE.match(row[0])
            found[column.name] = int(match.group(1)) if match else None
    return found


def embedding_store_check(embedder) -> None:
    """ImproperlyConfigured when the columns' dimension is not the embedder's:
    names both sizes and the command that makes them agree. Warns when enrolled
    faces were embedded by another model of the same size (their similarities to
    this model's vectors mean nothing)."""
    dimensions = embedding_column_dimensions()
    wrong = {name: dim for name, dim in dimensions.items() if dim != embedder.dim}
    if wrong:
        sizes = "/".join(sorted({f"{dim}-d" if dim else "unsized" for dim in wrong.values()}))
        columns = ", ".join(f"{name} is vector({dim or ''})" for name, dim in wrong.items())
        # The command first: a worker's status keeps only the start of the message.
        raise ImproperlyConfigured(
            f"the face embedder {embedder.name} outputs {embedder.dim}-d embeddings but the database stores "
            f"{sizes} ones: run `{REEMBED_COMMAND}` with this embedder configured (add --events to re-embed "
            f"the events' faces too) to re-embed the enrolled photos and resize the columns to "
            f"{embedder.dim}, or configure the embedder that made the stored vectors ({columns})."
        )
    others = (
        FaceVariation.objects.exclude(embedder=embedder.name)
        .values_list("embedder")
        .annotate(count=Count("pk"))
        .order_by()
    )
    others = list(others)
    if others:
        logger.warning(
            "enrolled faces were embedded by another model than the face embedder %s (%s): they will not be "
            "recognised until `%s` re-embeds them",
            embedder.name,
            ", ".join(f"{count} by {name or 'an unnamed model'}" for name, count in others),
            REEMBED_COMMAND,
        )


# --- re-embedding ------------------------------------------------------------------------


class ReembedRefused(Exception):
    """Nothing was changed; the message says why and what to do."""


@dataclass
class ReembedReport:
    embedder: str
    dimension: int
    previous: dict[str, int | None]
    faces: int = 0  # enrolled faces re-embedded
    faces_unembeddable: int = 0
    faces_dropped: int = 0  # deleted with --drop-unembeddable
    people_dropped: int = 0  # left without a face by those deletions, deleted too
    events: int = 0  # events' faces re-embedded (--events)
    events_unembeddable: int = 0  # with --events: no face found again; embedding set to NULL
    events_cleared: int = 0  # without --events: embeddings set to NULL
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)  # the first _MAX_LISTED_PROBLEMS

    def as_dict(self) -> dict:
        return {key: value for key, value in self.__dict__.items() if key != "problems"} | {
            "problems_listed": len(self.problems)
        }


def _iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = min(ax + aw, bx + bw) - max(ax, bx)
    h = min(ay + ah, by + bh) - max(ay, by)
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / float(aw * ah + bw * bh - inter)


def _decode(file_field) -> np.ndarray:
    with file_field.open("rb") as handle:
        data = handle.read()
    # Stored photos were within the limits when they came; the limits may have changed since.
    return image_from_bytes(data, field=file_field.name, max_bytes=len(data) + 1, max_pixels=1 << 40).pixels


def _keyset(query: QuerySet, batch: int) -> Iterator[list]:
    """The rows of `query` in primary-key order, `batch` at a time, each batch read
    afresh (memory stays bounded whatever the table's size)."""
    last = None
    while True:
        page = query.order_by("pk")
        if last is not None:
            page = page.filter(pk__gt=last)
        rows = list(page[:batch])
        if not rows:
            return
        yield rows
        last = rows[-1].pk


class _Reembedder:
    def __init__(
        self, engine, *, batch: int, on_problem: Callable[[str, bool], None] | None, report: ReembedReport
    ):
        self.engine = engine
        self.embedder = engine.embedder
        self.batch = batch
        self.on_problem = on_problem
        self.report = report

    def problem(self, text: str, *, enrolled: bool) -> None:
        if enrolled and len(self.report.problems) < _MAX_LISTED_PROBLEMS:
            self.report.problems.append(text)
        if self.on_problem is not None:
            self.on_problem(text, enrolled)

    def variation_face(self, row: FaceVariation):
        """The photo and its enrolled face (the detection that overlaps the stored
        box most), or a reason why there is none."""
        if not row.photo:
            return None, "no stored photo"
        try:
            image = _decode(row.photo)
        except OSError as exc:
            return None, f"the photo {row.photo.name} cannot be read ({exc.strerror or exc})"
        except Exception as exc:  # UnreadableImage and friends: an ApiError with a message
            return None, f"the photo {row.photo.name} cannot be decoded ({getattr(exc, 'message', exc)})"
        faces = self.engine.detector.detect(image, min_score=settings.FACE_DETECT_MIN_SCORE)
        if not row.box or len(row.box) != 4:
            if len(faces) == 1:
                return (image, faces[0]), None
            return None, f"no stored face box and {len(faces)} faces in the photo"
        scored = [(_iou(face.box, row.box), face) for face in faces]
        best = max(scored, key=lambda item: item[0], default=(0.0, None))
        if best[1] is None or best[0] < _SAME_FACE_IOU:
            return None, f"the enrolled face (box {list(row.box)}) is no longer found in the photo"
        return (image, best[1]), None

    def event_face(self, row):
        if not row.image:
            return None, "no stored image"
        try:
            image = _decode(row.image)
        except OSError as exc:
            return None, f"the image {row.image.name} cannot be read ({exc.strerror or exc})"
        except Exception as exc:
            return None, f"the image {row.image.name} cannot be decoded ({getattr(exc, 'message', exc)})"
        # An event's picture is a crop around one face: a border lets the detector
        # see a face that fills the picture.
        pad = max(image.shape[:2]) // 4
        image = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        faces = self.engine.detector.detect(image, min_score=settings.SEARCH_FACE_MIN_SCORE)
        if not faces:
            return None, "no face found in the event's picture"
        return (image, max(faces, key=lambda f: f.box[2] * f.box[3])), None

    def run(self, query: QuerySet, column: EmbeddingColumn, describe, find, progress) -> tuple[int, int]:
        """Embeds the faces of `query`'s rows into the column's staging table;
        (embedded, unembeddable)."""
        done = failed = 0
        for rows in _keyset(query, self.batch):
            chips, keys = [], []
            for row in rows:
                found, reason = find(row)
                if found is None:
                    failed += 1
                    self.problem(f"{describe(row)}: {reason}", enrolled=column.model is FaceVariation)
                    continue
                image, face = found
                chips.append(self.embedder.chips(image, [face])[0])
                keys.append(row.pk)
            if chips:
                vectors = self.embedder.embed_chips(np.stack(chips))
                _stage(column, keys, vectors)
                done += len(keys)
            if progress is not None:
                progress.update(len(rows))
        return done, failed


def _vector_literal(vector: np.ndarray) -> str:
    return "[" + ",".join(f"{float(v):.7g}" for v in vector) + "]"


def _stage(column: EmbeddingColumn, keys: list, vectors: np.ndarray) -> None:
    with connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {column.staging} (id, embedding) VALUES (%s::{column.key_type}, %s::vector) "
            "ON CONFLICT (id) DO UPDATE SET embedding = EXCLUDED.embedding",
            [(str(key), _vector_literal(vector)) for key, vector in zip(keys, vectors, strict=True)],
        )


def _staging_create(columns, dimension: int) -> None:
    with connection.cursor() as cursor:
        for column in columns:
            cursor.execute(f"DROP TABLE IF EXISTS {column.staging}")
            cursor.execute(
                f"CREATE TEMPORARY TABLE {column.staging} "
                f"(id {column.key_type} PRIMARY KEY, embedding vector({dimension}) NOT NULL)"
            )


def _staging_drop(columns) -> None:
    with connection.cursor() as cursor:
        for column in columns:
            cursor.execute(f"DROP TABLE IF EXISTS {column.staging}")


def _column_swap(column: EmbeddingColumn, dimension: int) -> None:
    """The column replaced by one of `dimension` holding the staged vectors (NULL
    for rows without one), with its HNSW index rebuilt. Run inside the swap's
    transaction: PostgreSQL's DDL is transactional, so a failure undoes it all."""
    table, fresh = column.table, "embedding_reembedded"
    pk = column.model._meta.pk.column
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {table} ADD COLUMN {fresh} vector({dimension})")
        cursor.execute(
            f"UPDATE {table} t SET {fresh} = s.embedding FROM {column.staging} s WHERE t.{pk} = s.id"
        )
        cursor.execute(f"DROP INDEX IF EXISTS {column.index}")
        cursor.execute(f"ALTER TABLE {table} DROP COLUMN embedding")
        cursor.execute(f"ALTER TABLE {table} RENAME COLUMN {fresh} TO embedding")
        if not column.nullable:
            cursor.execute(f"ALTER TABLE {table} ALTER COLUMN embedding SET NOT NULL")
    _index_create(column)


def _index_create(column: EmbeddingColumn) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE INDEX {column.index} ON {column.table} USING hnsw (embedding vector_cosine_ops) "
            f"WITH (m = {_HNSW_M}, ef_construction = {_HNSW_EF_CONSTRUCTION})"
        )


def faces_reembed(
    *,
    engine,
    events: bool = False,
    batch: int = 16,
    drop_unembeddable: bool = False,
    progress: Callable[[int, str], object] | None = None,
    on_problem: Callable[[str, bool], None] | None = None,
) -> ReembedReport:
    """Re-embed the stored faces with `engine`'s embedder and resize the columns to
    its dimension (see the module docstring). `progress(total, label)` makes an
    object with `update(n)` and `close()`; `on_problem(text, enrolled)` hears each
    face that cannot be re-embedded (an enrolled face's, or an event's).
    ReembedRefused, with nothing changed, when enrolled faces cannot be
    re-embedded and `drop_unembeddable` is not set."""
    if not 1 <= batch <= 256:
        raise ValueError(f"batch must lie in 1..256, got {batch}")
    started = time.monotonic()
    faces_column, events_column = columns = embedding_columns()
    dimension = int(engine.embedder.dim)
    report = ReembedReport(
        embedder=engine.embedder.name, dimension=dimension, previous=embedding_column_dimensions()
    )
    worker = _Reembedder(engine, batch=batch, on_problem=on_problem, report=report)
    variations = FaceVariation.objects.select_related("person", "keyspace")
    event_model = events_column.model
    embedded_events = event_model.objects.filter(embedding__isnull=False).only("pk", "image")

    def describe_variation(row: FaceVariation) -> str:
        return f"keyspace {row.keyspace.name}, face_id {row.person.face_id}, variation {row.variation}"

    def describe_event(row) -> str:
        return f"event {row.pk}"

    def staged(column: EmbeddingColumn) -> RawSQL:
        return RawSQL(f"SELECT id FROM {column.staging}", [])

    def embed(query, column, describe, find, label):
        bar = progress(query.count(), label) if progress is not None else None
        try:
            return worker.run(query, column, describe, find, bar)
        finally:
            if bar is not None:
                bar.close()

    _staging_create(columns, dimension)
    try:
        # The model runs here, with no lock on the platform's tables.
        report.faces, report.faces_unembeddable = embed(
            variations, faces_column, describe_variation, worker.variation_face, "enrolled faces"
        )
        if report.faces_unembeddable and not drop_unembeddable:
            raise ReembedRefused(_refusal(report.faces_unembeddable))
        if events:
            report.events, report.events_unembeddable = embed(
                embedded_events, events_column, describe_event, worker.event_face, "event faces"
            )
        with transaction.atomic():
            with connection.cursor() as cursor:
                # Nobody enrolls, deletes or stores an event between the catch-up and the swap.
                cursor.execute(
                    f"LOCK TABLE {Person._meta.db_table}, {faces_column.table}, {events_column.table} "
                    "IN SHARE ROW EXCLUSIVE MODE"
                )
            # Faces enrolled (events stored) while the model ran.
            done, failed = worker.run(
                variations.exclude(pk__in=staged(faces_column)),
                faces_column,
                describe_variation,
                worker.variation_face,
                None,
            )
            report.faces += done
            report.faces_unembeddable += failed
            if report.faces_unembeddable and not drop_unembeddable:
                raise ReembedRefused(_refusal(report.faces_unembeddable))
            if events:
                done, failed = worker.run(
                    embedded_events.exclude(pk__in=staged(events_column)),
                    events_column,
                    describe_event,
                    worker.event_face,
                    None,
                )
                report.events += done
                report.events_unembeddable += failed
            else:
                report.events_cleared = embedded_events.count()
            if report.faces_unembeddable:
                _drop_unembeddable(faces_column, report, staged(faces_column))
            with connection.cursor() as cursor:
                # Django's foreign keys are checked at commit; PostgreSQL alters no table
                # with such checks pending (those of the deletions above), so run them now.
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            for column in columns:
                _column_swap(column, dimension)
            FaceVariation.objects.update(embedder=engine.embedder.name)
    finally:
        if connection.connection is not None and not connection.needs_rollback:
            _staging_drop(columns)
    report.seconds = round(time.monotonic() - started, 1)
    return report


def _refusal(count: int) -> str:
    return (
        f"{count} enrolled face(s) cannot be re-embedded (listed above); nothing was changed. Enroll them "
        "again from a photo, delete them, or run again with --drop-unembeddable to delete them (and people "
        "left without a face)."
    )


def _drop_unembeddable(column: EmbeddingColumn, report: ReembedReport, staged: RawSQL) -> None:
    doomed = FaceVariation.objects.exclude(pk__in=staged)
    people = list(doomed.values_list("person_id", flat=True).distinct())
    # Files go after the commit (faces.signals).
    report.faces_dropped = doomed.delete()[1].get(FaceVariation._meta.label, 0)
    report.people_dropped = (
        Person.objects.filter(pk__in=people, variations__isnull=True).delete()[1].get(Person._meta.label, 0)
    )
