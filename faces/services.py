"""Face enrollment and face search: keyspaces, people and their face
variations, 1:N search in pgvector, 1:1 match.

Model work (detection, embedding) happens before any transaction opens, so a
slow photo never holds a lock; each write is one transaction, and files put in
storage for a transaction that fails are removed again (storage is not
transactional), so a refused request changes nothing.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from django.core.files.base import ContentFile
from django.db import connection, transaction
from django.db.models import Max

from analytics.face.calibration import MatchDecision, decide
from analytics.face.engine import DetectedFace, crop_jpeg, face_engine, similarity_from_distance
from analytics.face.gallery import FaceMatch
from analytics.face.quality import FRONTAL_MAX_PITCH, FaceQuality, QualityLimits, assess
from core.errors import ApiError, BadRequest, Conflict, NotFound
from core.images import DecodedImage

from .models import FaceVariation, Keyspace, Person
from .selectors import enrollment_count, gallery_size, keyspace_count, keyspace_get

logger = logging.getLogger(__name__)

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@:-]{0,63}$")
NAME_RULE = "1 to 64 letters, digits or _ . @ : - (starting with a letter or digit)"
THUMBNAIL_SIDE = 160
# One transaction-scoped advisory lock serialises the writes that count rows
# against a limit (people, keyspaces, variations), so concurrent requests
# cannot pass a limit together.
_LIMITS_LOCK = 0x46414345  # "FACE"
# Most rows one search reads before keeping the best variation of each person.
_MAX_SEARCH_ROWS = 1000


class FaceRejected(BadRequest):
    """A photo that cannot be enrolled; `reason` is one of REJECT_REASONS."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


REJECT_REASONS = {
    "no_face": "no face",
    "several_faces": "several faces",
    # analytics.face.quality's refusal codes
    "too_small": "face too small",
    "not_a_clear_face": "face not clearly visible",
    "too_blurry": "face too blurry",
    "turned_away": "face turned away",
    "tilted": "face tilted",
    "unreadable": "unreadable image",
}


@dataclass(frozen=True)
class Candidate:
    """One enrolled person found by a search. `name` is the person's name, or
    their face id when they have none (what an event shows as primary_text);
    `secondary_text` is their category."""

    face_id: str
    name: str
    secondary_text: str
    similarity: float
    variation: int
    # The 1:N decision at the keyspace's size (`faces_recognize`): named at the
    # threshold in force, and P(a stranger scores this high in a keyspace this large).
    match: bool = False
    false_match_probability: float | None = None


@dataclass(frozen=True)
class Recognition:
    """A 1:N search's answer: candidates, the similarity a candidate needs to be
    named (`threshold`) and the enrolled faces searched (`gallery_size`);
    `calibrated`: the embedder has a score model (else the threshold is a fixed
    similarity and no false-match probability is known)."""

    candidates: list[Candidate]
    threshold: float
    gallery_size: int
    calibrated: bool = True


@dataclass(frozen=True)
class EnrollmentFace:
    """The one face of an enrollment photo, its embedding and quality figures."""

    face: DetectedFace
    embedding: np.ndarray
    quality: FaceQuality


@dataclass(frozen=True)
class LookAlike:
    """Someone else enrolled in the keyspace whom a new photo matches at the
    threshold in force: recognition may name either of them for this face."""

    face_id: str
    similarity: float


@dataclass(frozen=True)
class Enrollment:
    variation: FaceVariation
    similar_to: list[LookAlike]

    @property
    def warning(self) -> str:
        if not self.similar_to:
            return ""
        names = ", ".join(alike.face_id for alike in self.similar_to)
        return (
            f"enrolled, but this face matches {names} already enrolled in the keyspace: recognition may "
            "name either of them for it; check that the photo and the face id belong together"
        )


def name_validate(value, *, field: str) -> str:
    if not isinstance(value, str):
        raise BadRequest(f"{field} must be a string")
    if not NAME_RE.match(value):
        raise BadRequest(f"invalid {field} '{value[:70]}': it must be {NAME_RULE}")
    return value


# --- keyspaces -------------------------------------------------------------------


def keyspace_create(*, name: str) -> Keyspace:
    name_validate(name, field="keyspace")
    with transaction.atomic():
        _limits_lock()
        if Keyspace.objects.filter(name=name).exists():
            raise Conflict("keyspace already exists")
        if keyspace_count() >= settings.FACE_MAX_KEYSPACE:
            raise Conflict(f"keyspace limit reached ({settings.FACE_MAX_KEYSPACE} keyspaces)")
        return Keyspace.objects.create(name=name)


def _limits_lock() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LIMITS_LOCK])


# --- faces in photos -------------------------------------------------------------


def faces_detect(image: np.ndarray) -> list[DetectedFace]:
    return face_engine().detector.detect(image, min_score=settings.FACE_DETECT_MIN_SCORE)


def enrollment_limits() -> QualityLimits:
    """What an enrollment photo's face must reach (analytics.face.quality): a
    sharpness measured on the aligned face, so ordinary photos pass whatever the
    face's pixel size or JPEG softness; a pose that does not hide the face."""
    return QualityLimits(
        min_sharpness=settings.FACE_ENROLL_MIN_SHARPNESS,
        min_face_size=settings.FACE_ENROLL_MIN_FACE_SIZE,
        min_detector_score=settings.FACE_DETECT_MIN_SCORE,
        max_yaw=settings.FACE_ENROLL_MAX_YAW,
        max_pitch=FRONTAL_MAX_PITCH,
    )


def face_for_enrollment(image: np.ndarray) -> EnrollmentFace:
    """The photo's one face, if it is fit for enrollment; FaceRejected (400) otherwise,
    with the figure that failed and its limit."""
    face, quality, chip = enrollment_face_check(image)
    embedder = face_engine().embedder
    if not hasattr(embedder, "aligned"):  # dlib's embedders: the chip assessed is the one embedded
        embedding = embedder.embed_chips(chip[np.newaxis])[0]
    else:
        embedding = embedder.embed(image, face)
    return EnrollmentFace(face=face, embedding=embedding, quality=quality)


def enrollment_face_check(image: np.ndarray) -> tuple[DetectedFace, FaceQuality, np.ndarray]:
    """The checks of `face_for_enrollment` without the embedding: the one face, its
    quality figures and the aligned chip they were measured on."""
    faces = faces_detect(image)
    if not faces:
        raise FaceRejected("image: no face found in the image", "no_face")
    if len(faces) > 1:
        raise FaceRejected(
            f"image: {len(faces)} faces found in the image, enrollment needs exactly one", "several_faces"
        )
    face = faces[0]
    embedder = face_engine().embedder
    quality, chip = assess(embedder, image, face)
    refusals = quality.refusals(enrollment_limits())
    if refusals:
        raise FaceRejected(f"image: {refusals[0].message}", refusals[0].code)
    return face, quality, chip


def face_for_search(image: np.ndarray, *, field: str = "image") -> tuple[DetectedFace, np.ndarray]:
    """The largest face of a query photo and its embedding; 400 when there is none."""
    engine = face_engine()
    face = engine.detector.largest(image, min_score=settings.FACE_DETECT_MIN_SCORE)
    if face is None:
        raise BadRequest(f"{field}: no face found in the image")
    return face, engine.embedder.embed(image, face)


# --- enrollment --------------------------------------------------------------------


def face_enroll(
    *,
    keyspace: str,
    image: DecodedImage,
    face_id: str | None = None,
    name: str | None = None,
    category: str | None = None,
    identity_number: str | None = None,
    notes: str | None = None,
    found: EnrollmentFace | None = None,
) -> Enrollment:
    """Enroll the photo's one face: a new person (a new face id, or the one
    given) or, for an existing face id, a new variation of that person. Identity
    fields given update the person. Enrollment goes ahead when the face matches
    someone else already enrolled, and says so (`similar_to`): recognition may
    then name either person for this face. `found`: the photo's face already
    checked and embedded (bulk enrollment embeds photos in batches)."""
    keyspace_row = keyspace_get(name=keyspace)
    if face_id is not None:
        name_validate(face_id, field="face_id")
    if found is None:
        found = face_for_enrollment(image.pixels)
    identity = {
        key: value
        for key, value in (
            ("name", name),
            ("category", category),
            ("identity_number", identity_number),
            ("notes", notes),
        )
        if value is not None
    }
    similar = look_alikes(keyspace=keyspace_row, embedding=found.embedding, face_id=face_id)
    with transaction.atomic():
        _limits_lock()
        person = _person_for_enrollment(keyspace_row, face_id, identity)
        variation = variation_add(person=person, image=image, found=found)
    if similar:
        logger.warning(
            "enrollment of %s in keyspace %s looks like %s already enrolled there",
            person.face_id,
            keyspace_row.name,
            ", ".join(f"{a.face_id} ({a.similarity:.3f})" for a in similar),
        )
    return Enrollment(variation=variation, similar_to=similar)


# Most look-alikes an enrollment reports.
MAX_LOOK_ALIKES = 5


def look_alikes(*, keyspace: Keyspace, embedding: Sequence[float], face_id: str | None) -> list[LookAlike]:
    """Other people of the keyspace whom this face matches at the threshold in force
    for the keyspace's size (`match_decide`), best first."""
    nearest = faces_nearest(keyspace=keyspace, embedding=embedding, limit=MAX_LOOK_ALIKES + 1)
    if not nearest:
        return []
    size = gallery_size(keyspace=keyspace)
    found = [
        LookAlike(face_id=c.face_id, similarity=c.similarity)
        for c in nearest
        if c.face_id != face_id and match_decide(c.similarity, size=size).accepted
    ]
    return found[:MAX_LOOK_ALIKES]


def variation_add(
    *, person: Person, image: DecodedImage, found: EnrollmentFace | None = None
) -> FaceVariation:
    """A new variation of an existing person from a photo (checked here unless
    `found` carries the checked face): the embedding, the photo and a thumbnail."""
    if found is None:
        found = face_for_enrollment(image.pixels)
    thumbnail = crop_jpeg(image.pixels, found.face, max_side=THUMBNAIL_SIDE)
    stored: list[str] = []
    try:
        with transaction.atomic():
            number = (person.variations.aggregate(last=Max("variation"))["last"] or 0) + 1
            variation = FaceVariation(
                person=person,
                keyspace_id=person.keyspace_id,
                variation=number,
                embedding=found.embedding.tolist(),
                embedder=face_engine().embedder.name,
                box=list(found.face.box),
                detection_score=round(found.face.score, 4),
                face_size=found.face.size,
                # analytics.face.quality's sharpness, and cos(yaw): 1 facing the camera, 0 a profile.
                blur_score=round(found.quality.sharpness, 3),
                frontal_score=round(math.cos(math.radians(found.quality.yaw)), 3),
            )
            stem = f"{person.keyspace.name}_{person.face_id}_{number}"
            variation.photo.save(f"{stem}.{image.extension}", ContentFile(image.data), save=False)
            stored.append(variation.photo.name)
            variation.thumbnail.save(f"{stem}.jpg", ContentFile(thumbnail), save=False)
            stored.append(variation.thumbnail.name)
            variation.save()
    except BaseException:
        files_delete(stored)
        raise
    return variation


def _person_for_enrollment(keyspace: Keyspace, face_id: str | None, identity: dict[str, str]) -> Person:
    person = None
    if face_id is not None:
        person = Person.objects.select_for_update().filter(keyspace=keyspace, face_id=face_id).first()
    if person is None:
        if enrollment_count() >= settings.FACE_MAX_ENROLLMENT:
            raise Conflict(f"enrollment limit reached ({settings.FACE_MAX_ENROLLMENT} face ids)")
        return Person.objects.create(keyspace=keyspace, face_id=face_id or uuid.uuid4().hex, **identity)
    if person.variations.count() >= settings.FACE_MAX_VARIATIONS:
        raise Conflict(
            f"face_id {person.face_id} already has {settings.FACE_MAX_VARIATIONS} variations (the limit)"
        )
    if identity:
        for key, value in identity.items():
            setattr(person, key, value)
        person.save(update_fields=[*identity, "updated_at"])
    return person


def files_delete(names: Iterable[str]) -> None:
    from django.core.files.storage import default_storage

    for name in names:
        try:
            default_storage.delete(name)
        except OSError:
            logger.warning("could not delete face file %s", name, exc_info=True)


def enrollments_delete(*, keyspace: str, face_ids: list[str]) -> list[str]:
    """Delete these face ids (people, with every variation); all must exist,
    else 404 naming the unknown ones and nothing is deleted."""
    keyspace_row = keyspace_get(name=keyspace)
    wanted = list(dict.fromkeys(face_ids))
    with transaction.atomic():
        people = {
            p.face_id: p
            for p in Person.objects.select_for_update().filter(keyspace=keyspace_row, face_id__in=wanted)
        }
        missing = [face_id for face_id in wanted if face_id not in people]
        if missing:
            raise NotFound(f"face_id not found: {', '.join(m[:64] for m in missing[:10])}")
        # The photo files go once this commits (faces.signals).
        Person.objects.filter(pk__in=[p.pk for p in people.values()]).delete()
    return wanted


def variations_delete(*, keyspace: str, face_id: str, variations: list[int]) -> list[int]:
    """Delete variations of one face id; 404 for an unknown face id or
    variation, 400 when none would be left (delete the enrollment instead)."""
    keyspace_row = keyspace_get(name=keyspace)
    wanted = sorted(set(variations))
    with transaction.atomic():
        person = Person.objects.select_for_update().filter(keyspace=keyspace_row, face_id=face_id).first()
        if person is None:
            raise NotFound("face_id not found")
        rows = list(FaceVariation.objects.filter(person=person))
        existing = {row.variation for row in rows}
        missing = [number for number in wanted if number not in existing]
        if missing:
            raise NotFound(f"variation not found: {', '.join(str(n) for n in missing)}")
        if len(existing - set(wanted)) == 0:
            raise BadRequest(
                "variations: a face id keeps at least one variation; "
                "use /v1/face/delete-enrollment to delete the face id"
            )
        doomed = [row.pk for row in rows if row.variation in wanted]
        FaceVariation.objects.filter(pk__in=doomed).delete()  # files go after commit (faces.signals)
    return wanted


# --- search ------------------------------------------------------------------------


# The nearest people of one keyspace, each with their nearest variation, in one
# statement: the ORM spelt this as a search, then `in_bulk` on the people (with
# their default ordering's join to the keyspaces), two round trips and ~1 ms of
# query building each per request on this 2-core machine. `nearest` is the
# LIMITed ORDER BY the HNSW index serves (the iterative scan's relaxed order may
# return its rows slightly out of order; DISTINCT ON and the outer ORDER BY put
# them back). The people are read through a LATERAL subquery with a LIMIT, which
# the planner cannot flatten into a join: as a join it hashed the whole people
# table (6 ms at 10,000) to look up five of them.
NEAREST_SQL = """
WITH nearest AS MATERIALIZED (
    SELECT person_id, variation, embedding <=> %s::vector AS distance
    FROM faces_facevariation
    WHERE keyspace_id = %s
    ORDER BY distance
    LIMIT %s
), best AS (
    SELECT DISTINCT ON (person_id) person_id, variation, distance
    FROM nearest
    ORDER BY person_id, distance
)
SELECT best.person_id, best.variation, best.distance, person.face_id, person.name, person.category
FROM (SELECT * FROM best ORDER BY distance LIMIT %s) AS best
CROSS JOIN LATERAL (
    SELECT face_id, name, category FROM faces_person WHERE id = best.person_id LIMIT 1
) AS person
ORDER BY best.distance
"""


@dataclass(frozen=True)
class _NearestRow:
    person_id: int
    variation: int
    distance: float
    face_id: str
    name: str
    category: str


def _nearest_rows(
    keyspace_id: int, embedding: Sequence[float], rows: int, limit: int, *, exact: bool = False
) -> list[_NearestRow]:
    """The `limit` nearest people among the `rows` nearest variations of one
    keyspace, each with their nearest variation, nearest first. HNSW by default,
    with an iterative scan so the keyspace filter still yields `rows` rows when
    the keyspace is a small part of the table; `exact=True` scans every row of the
    keyspace (benchmarks). A person deleted meanwhile is not returned."""
    vector = "[" + ",".join(repr(float(value)) for value in np.asarray(embedding, dtype=np.float32)) + "]"
    with transaction.atomic(), connection.cursor() as cursor:
        if exact:
            cursor.execute("SELECT set_config('enable_indexscan', 'off', true)")
        else:
            ef_search = min(1000, max(settings.FACE_SEARCH_EF_SEARCH, rows))
            cursor.execute(
                "SELECT set_config('hnsw.ef_search', %s, true), "
                "set_config('hnsw.iterative_scan', 'relaxed_order', true)",
                [str(ef_search)],
            )
        cursor.execute(NEAREST_SQL, [vector, keyspace_id, rows, limit])
        return [_NearestRow(*row) for row in cursor.fetchall()]


def faces_nearest(
    *, keyspace: Keyspace, embedding: Sequence[float], limit: int, exact: bool = False
) -> list[Candidate]:
    """The `limit` nearest people of a keyspace, each with their best variation."""
    rows = min(_MAX_SEARCH_ROWS, limit * settings.FACE_MAX_VARIATIONS)
    scale = face_engine().embedder.similarity_scale
    return [
        Candidate(
            face_id=row.face_id,
            name=row.name or row.face_id,
            secondary_text=row.category,
            similarity=round(similarity_from_distance(row.distance, scale=scale), 4),
            variation=row.variation,
        )
        for row in _nearest_rows(keyspace.pk, embedding, rows, limit, exact=exact)
    ]


def faces_match(*, keyspace: str, embedding: Sequence[float], limit: int = 1) -> list[Candidate]:
    """The best matches of one embedding in a keyspace, highest similarity first.
    Raises KeyspaceNotFound (a NotFound, 404) for an unknown keyspace."""
    return faces_nearest(keyspace=keyspace_get(name=keyspace), embedding=embedding, limit=limit)


def match_decide(similarity: float, *, size: int) -> MatchDecision:
    """The route's 1:N decision (`/v1/face/recognition`): at the similarity that names a
    stranger with probability VISIONAIRE_FACE_MAX_FALSE_MATCH_RATE in a keyspace of
    `size` enrolled faces, or VISIONAIRE_FACE_RECOGNITION_THRESHOLD when set."""
    return decide(
        similarity,
        gallery_size=max(1, size),
        embedder_name=face_engine().embedder.name,
        max_false_match_rate=settings.FACE_MAX_FALSE_MATCH_RATE,
        similarity_threshold=settings.FACE_RECOGNITION_THRESHOLD,
        fallback_threshold=settings.FACE_MATCH_THRESHOLD,
    )


class EnrolledGallery:
    """The gallery the face-recognition analytic matches against (analytics.face.gallery):
    the people enrolled through /v1/face, registered when the app starts."""

    def match(self, keyspace: str, embedding: Sequence[float]) -> FaceMatch | None:
        keyspace_row = keyspace_get(name=keyspace)
        candidates = faces_nearest(keyspace=keyspace_row, embedding=embedding, limit=1)
        if not candidates:
            return None
        best = candidates[0]
        return FaceMatch(
            face_id=best.face_id,
            similarity=best.similarity,
            name=best.name,
            secondary_text=best.secondary_text,
            gallery_size=gallery_size(keyspace=keyspace_row),
        )


def faces_recognize(*, keyspace: str, image: DecodedImage, candidate_count: int) -> Recognition:
    """1:N: the largest face of the photo searched in the keyspace, each candidate
    decided at the keyspace's size."""
    keyspace_row = keyspace_get(name=keyspace)
    _face, embedding = face_for_search(image.pixels)
    candidates = faces_nearest(keyspace=keyspace_row, embedding=embedding, limit=candidate_count)
    size = gallery_size(keyspace=keyspace_row)
    decided = []
    threshold = match_decide(0.0, size=size).threshold
    for candidate in candidates:
        decision = match_decide(candidate.similarity, size=size)
        decided.append(
            dataclasses.replace(
                candidate, match=decision.accepted, false_match_probability=decision.false_match_probability
            )
        )
    return Recognition(
        candidates=decided, threshold=threshold, gallery_size=size, calibrated=face_engine().calibrated
    )


def embeddings_extract(*, image: DecodedImage) -> list[list[float]]:
    """The embedding of every face in the photo, most confident face first."""
    faces = faces_detect(image.pixels)
    if not faces:
        raise BadRequest("image: no face found in the image")
    vectors = face_engine().embedder.embed_many(image.pixels, faces)
    return [[round(float(value), 6) for value in vector] for vector in vectors]


def faces_compare(*, image_a: DecodedImage, image_b: DecodedImage) -> tuple[bool, float]:
    """1:1: the largest face of each photo; (match, similarity)."""
    _a, vector_a = face_for_search(image_a.pixels, field="image_a")
    _b, vector_b = face_for_search(image_b.pixels, field="image_b")
    similarity = round(face_engine().similarity(vector_a, vector_b), 4)
    return similarity >= settings.FACE_MATCH_THRESHOLD, similarity


# --- service state -------------------------------------------------------------------


def face_service_check() -> None:
    """503 unless the face engine is loaded (loading it if needed) and the database answers."""
    try:
        face_engine()
    except Exception as exc:
        logger.exception("the face engine could not be loaded")
        raise ApiError(f"face engine not available: {exc}"[:300], status=503) from None
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:
        logger.exception("healthcheck: the database did not answer")
        raise ApiError("database unavailable", status=503) from None


def limit_usage() -> dict[str, int]:
    return {
        "current_enrollment": enrollment_count(),
        "maximum_enrollment": settings.FACE_MAX_ENROLLMENT,
        "current_keyspace": keyspace_count(),
        "maximum_keyspace": settings.FACE_MAX_KEYSPACE,
    }
