"""The /v1/face routes (spec/API.md, "Face enrollment and face search"): the
body checked by its serializer (faces/serializers.py), then one service call."""

from __future__ import annotations

from typing import Any

from django.db import DatabaseError
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.response import Response

from core.api import ApiView
from core.errors import ApiError
from core.openapi import ErrorSerializer
from core.validation import validated

from . import serializers as s
from . import services

TAGS = ["face enrollment"]


def _error(description: str) -> OpenApiResponse:
    return OpenApiResponse(ErrorSerializer, description=description)


BAD_IMAGE = "Malformed body, an image that is not a JPEG/PNG or cannot be decoded, no face in the image."
TOO_LARGE = _error("Body or image over the size limits (bytes, or pixels the image header declares).")
NO_KEYSPACE = _error("Unknown keyspace (`keyspace not found`).")


class KeyspaceView(ApiView):
    """A keyspace is an independent gallery of enrolled faces, searched 1:N on its own."""

    @extend_schema(
        operation_id="face_keyspace_create",
        summary="Create a keyspace (a gallery of enrolled faces)",
        request=s.FaceKeyspaceSerializer,
        responses={
            200: s.FaceKeyspaceResponseSerializer,
            400: _error("Missing or invalid keyspace name."),
            409: _error("The keyspace already exists, or the keyspace limit is reached."),
        },
        tags=TAGS,
    )
    def post(self, request):
        body = validated(s.FaceKeyspaceSerializer, request)
        keyspace = services.keyspace_create(name=body["keyspace"])
        return Response({"message": "keyspace successfully created", "keyspace": keyspace.name})


class EnrollmentView(ApiView):
    """Enroll the one face of a photo; the photo and a thumbnail are kept (see the admin)."""

    @extend_schema(
        operation_id="face_enrollment",
        summary="Enroll a face (a new face id, or a variation of an existing one)",
        description=(
            "The photo must hold exactly one face, large and sharp enough and not turned away "
            "(VISIONAIRE_FACE_ENROLL_MIN_FACE_SIZE, VISIONAIRE_FACE_ENROLL_MIN_SHARPNESS, "
            "VISIONAIRE_FACE_ENROLL_MAX_YAW); a refusal names the figure and its limit. "
            "When the face matches someone else already enrolled in the keyspace (at the threshold "
            "recognition uses), the photo is enrolled and the answer adds `similar_to` and `warning`. "
            "`additional_params.face_id`: an existing id adds a variation; a new id is created; "
            "absent, an id is generated."
        ),
        request=s.FaceEnrollmentSerializer,
        responses={
            200: s.FaceEnrollmentResponseSerializer,
            400: _error(BAD_IMAGE + " Several faces; a face too small, too blurry, turned away or tilted."),
            404: NO_KEYSPACE,
            409: _error("Enrollment, variation or keyspace limit reached."),
            413: TOO_LARGE,
        },
        tags=TAGS,
    )
    def post(self, request):
        enrolled = services.face_enroll(**validated(s.FaceEnrollmentSerializer, request))
        variation = enrolled.variation
        answer: dict[str, Any] = {"face_id": variation.person.face_id, "variation": variation.variation}
        if enrolled.similar_to:
            answer["similar_to"] = [
                {"face_id": a.face_id, "similarity": a.similarity} for a in enrolled.similar_to
            ]
            answer["warning"] = enrolled.warning
        return Response(answer)


class RecognitionView(ApiView):
    """The photo's largest face searched in a keyspace: up to `candidate_count` distinct face ids, each
    with its nearest variation, highest similarity first; each says whether it is named at the keyspace's
    size (`match`) and how likely a stranger scores as high (`false_match_probability`)."""

    @extend_schema(
        operation_id="face_recognition",
        summary="Search a keyspace for the photo's largest face (1:N)",
        request=s.FaceRecognitionQuerySerializer,
        responses={
            200: s.FaceRecognitionResponseSerializer,
            400: _error(BAD_IMAGE + " candidate_count not an integer in 1..100."),
            404: NO_KEYSPACE,
            413: TOO_LARGE,
        },
        tags=TAGS,
    )
    def post(self, request):
        found = services.faces_recognize(**validated(s.FaceRecognitionQuerySerializer, request))
        candidates = [
            {
                "face_id": c.face_id,
                "similarity": c.similarity,
                "variation": c.variation,
                "match": c.match,
                "false_match_probability": c.false_match_probability,
            }
            for c in found.candidates
        ]
        recognition = {
            "candidates": candidates,
            "threshold": round(found.threshold, 4),
            "gallery_size": found.gallery_size,
            "calibrated": found.calibrated,
        }
        return Response({"result": {"face_recognition": recognition}})


class DeleteEnrollmentView(ApiView):
    """Delete face ids with every variation and photo; all must exist, else nothing is deleted."""

    @extend_schema(
        operation_id="face_delete_enrollment",
        summary="Delete face ids with all their variations",
        request=s.FaceDeleteEnrollmentSerializer,
        responses={
            200: s.FaceDeleteEnrollmentResponseSerializer,
            400: _error("Malformed body or face ids."),
            404: _error("Unknown keyspace, or a face id that is not enrolled (nothing is deleted)."),
        },
        tags=TAGS,
    )
    def post(self, request):
        deleted = services.enrollments_delete(**validated(s.FaceDeleteEnrollmentSerializer, request))
        return Response({"deleted_face_ids": deleted})


class DeleteVariationView(ApiView):
    """Delete variations of one face id; at least one must remain (delete the enrollment instead)."""

    @extend_schema(
        operation_id="face_delete_enrollment_variation",
        summary="Delete variations of one face id",
        request=s.FaceDeleteVariationSerializer,
        responses={
            200: s.FaceDeleteVariationResponseSerializer,
            400: _error("Malformed body, or no variation would be left."),
            404: _error("Unknown keyspace, face id or variation (nothing is deleted)."),
        },
        tags=TAGS,
    )
    def post(self, request):
        body = validated(s.FaceDeleteVariationSerializer, request)
        deleted = services.variations_delete(**body)
        return Response(
            {
                "message": "variations successfully deleted",
                "face_id": body["face_id"],
                "deleted_variations": deleted,
            }
        )


class ExtractEmbeddingView(ApiView):
    """One L2-normalised embedding per face in the photo, most confident face first."""

    @extend_schema(
        operation_id="face_extract_embedding",
        summary="Embeddings of every face in a photo",
        request=s.FaceExtractEmbeddingSerializer,
        responses={200: s.FaceExtractEmbeddingResponseSerializer, 400: _error(BAD_IMAGE), 413: TOO_LARGE},
        tags=TAGS,
    )
    def post(self, request):
        body = validated(s.FaceExtractEmbeddingSerializer, request)
        return Response({"embeddings": services.embeddings_extract(**body)})


class MatchView(ApiView):
    """1:1 comparison of the largest face of each photo."""

    @extend_schema(
        operation_id="face_match",
        summary="Compare the largest faces of two photos (1:1)",
        request=s.FaceMatchQuerySerializer,
        responses={200: s.FaceMatchResponseSerializer, 400: _error(BAD_IMAGE), 413: TOO_LARGE},
        tags=TAGS,
    )
    def post(self, request):
        images = validated(s.FaceMatchQuerySerializer, request)
        match, similarity = services.faces_compare(**images)
        return Response({"face_match": {"match": match, "similarity": similarity}})


class HealthcheckView(ApiView):
    """`{}` when the face models are loaded (they load on the first call) and the database answers."""

    @extend_schema(
        operation_id="face_healthcheck",
        summary="Face service health: the face models loaded and the database reachable",
        request=None,
        responses={
            200: s.FaceHealthcheckResponseSerializer,
            503: _error("The face models could not be loaded or the database does not answer."),
        },
        tags=TAGS,
    )
    def get(self, request):
        services.face_service_check()
        return Response({})


class LimitUsageView(ApiView):
    """Enrolled face ids and keyspaces, with the limits set by VISIONAIRE_FACE_MAX_ENROLLMENT and
    VISIONAIRE_FACE_MAX_KEYSPACE."""

    @extend_schema(
        operation_id="face_limit_usage",
        summary="Enrolled face ids and keyspaces against their limits",
        request=None,
        responses={200: s.FaceLimitUsageResponseSerializer, 503: _error("The database does not answer.")},
        tags=TAGS,
    )
    def get(self, request):
        try:
            return Response(services.limit_usage())
        except DatabaseError:
            raise ApiError("database unavailable", status=503) from None
