"""Input and output shapes of the /v1/face routes. The input serializers are
the one check of each body (core.validation): checks in the order a client
should fix them, each error naming the field in the contract's words; a
keyspace that does not exist answers 404 before the costly image decode."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from core.images import image_decode
from core.validation import (
    Base64ImageField,
    InputSerializer,
    StrictCharField,
    StrictIntegerField,
    StrictListField,
    checked,
    field_path,
)

from . import services
from .selectors import keyspace_get

IMAGE_HELP = "Base64 JPEG or PNG (a `data:image/...;base64,` prefix is accepted)."
MAX_LIST_ITEMS = 1000


class NameField(StrictCharField):
    """A keyspace or face id name (faces.services.name_validate)."""

    def __init__(self, *, label: str | None = None, **kwargs):
        self.label_in_messages = label
        kwargs.setdefault("max_length", 64)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        return checked(services.name_validate, data, field=self.label_in_messages or field_path(self))


def _identity_text(max_length: int, help_text: str, *, allow_control: bool = False) -> StrictCharField:
    return StrictCharField(
        required=False,
        allow_null=True,
        allow_blank=True,
        max_length=max_length,
        allow_control=allow_control,
        help_text=help_text,
        messages={
            "type": "{field} must be a string",
            "max_length": "{field} must be at most {max_length} characters",
        },
    )


class FaceInput(InputSerializer):
    # The /v1/face bodies; the keyspace is looked up (404) before the image is decoded.

    def _keyspace(self, attrs: dict) -> str:
        keyspace_get(name=attrs["keyspace"])  # 404 before the costly image decode
        return attrs["keyspace"]


class FaceParams(InputSerializer):
    # A nested object of the /v1/face bodies: null counts as absent.
    null_as_empty = True


class FaceKeyspaceSerializer(FaceInput):
    keyspace = NameField(help_text="1 to 64 letters, digits or _ . @ : -")


class FaceKeyspaceResponseSerializer(serializers.Serializer):
    message = serializers.CharField(default="keyspace successfully created")
    keyspace = serializers.CharField()


class FaceEnrollmentParamsSerializer(FaceParams):
    face_id = NameField(
        required=False,
        allow_null=True,
        help_text="An existing face id adds a variation; a new one is created; absent, one is generated.",
    )
    name = _identity_text(200, "[ours] The person's name (primary_text of events).")
    category = _identity_text(100, "[ours] Group such as Employee (secondary_text of events).")
    identity_number = _identity_text(64, "[ours]")
    notes = _identity_text(2000, "[ours]", allow_control=True)


class FaceEnrollmentSerializer(FaceInput):
    required_order = ("image", "keyspace")

    additional_params = FaceEnrollmentParamsSerializer(required=False)
    keyspace = NameField()
    image = Base64ImageField(help_text=IMAGE_HELP)

    def validate(self, attrs: dict) -> dict:
        params = attrs.get("additional_params") or {}
        keyspace = self._keyspace(attrs)
        return {
            "keyspace": keyspace,
            "face_id": params.get("face_id"),
            **{name: params.get(name) for name in ("name", "category", "identity_number", "notes")},
            "image": image_decode(attrs["image"], field="image"),
        }


class FaceLookAlikeSerializer(serializers.Serializer):
    face_id = serializers.CharField()
    similarity = serializers.FloatField(min_value=0, max_value=1)


class FaceEnrollmentResponseSerializer(serializers.Serializer):
    face_id = serializers.CharField()
    variation = serializers.IntegerField(min_value=1)
    similar_to = FaceLookAlikeSerializer(
        many=True,
        required=False,
        help_text="[ours] Only when the face matches other people already enrolled in the keyspace (at "
        "the threshold /v1/face/recognition uses for its size), best first: the photo was enrolled anyway.",
    )
    warning = serializers.CharField(required=False, help_text="[ours] With `similar_to`: what it means.")


class FaceRecognitionParamsSerializer(FaceParams):
    candidate_count = StrictIntegerField(
        required=False,
        min_value=1,
        max_value=100,
        default=5,
        message="{field} must be an integer between {min} and {max}",
    )


class FaceRecognitionQuerySerializer(FaceInput):
    required_order = ("image", "keyspace")

    additional_params = FaceRecognitionParamsSerializer(required=False)
    keyspace = NameField()
    image = Base64ImageField(help_text=IMAGE_HELP + " The largest face is searched.")

    def validate(self, attrs: dict) -> dict:
        params = attrs.get("additional_params") or {}
        keyspace = self._keyspace(attrs)
        return {
            "keyspace": keyspace,
            "candidate_count": params.get("candidate_count", 5),
            "image": image_decode(attrs["image"], field="image"),
        }


class FaceCandidateSerializer(serializers.Serializer):
    face_id = serializers.CharField()
    similarity = serializers.FloatField(min_value=0, max_value=1)
    variation = serializers.IntegerField(help_text="The person's variation nearest to the query.")
    match = serializers.BooleanField(
        help_text="[ours] similarity at or above `threshold`: this candidate is named at the keyspace's size."
    )
    false_match_probability = serializers.FloatField(
        allow_null=True,
        min_value=0,
        max_value=1,
        help_text="[ours] Estimated probability that a person who is not enrolled scores at least this "
        "similarity against one of the keyspace's `gallery_size` faces (null for an embedder without a "
        "measured score model).",
    )


class FaceCandidatesSerializer(serializers.Serializer):
    candidates = FaceCandidateSerializer(many=True, help_text="Distinct face ids, highest similarity first.")
    threshold = serializers.FloatField(
        min_value=0,
        max_value=1,
        help_text="[ours] The similarity a candidate needs to be named: the one that keeps the chance of "
        "naming a stranger at VISIONAIRE_FACE_MAX_FALSE_MATCH_RATE (1 %) for this keyspace's size, or "
        "VISIONAIRE_FACE_RECOGNITION_THRESHOLD when set.",
    )
    gallery_size = serializers.IntegerField(
        min_value=0,
        help_text="[ours] Enrolled faces (variations) in the keyspace: what a query is compared with.",
    )
    calibrated = serializers.BooleanField(
        help_text="[ours] Whether the face embedder's similarities are calibrated (the shipped model, or an "
        "ONNX model with VISIONAIRE_FACE_ONNX_FALSE_ACCEPT). False: `threshold` is a fixed similarity "
        "(VISIONAIRE_FACE_MATCH_THRESHOLD) and `false_match_probability` is null.",
    )


class FaceRecognitionResultSerializer(serializers.Serializer):
    face_recognition = FaceCandidatesSerializer()


class FaceRecognitionResponseSerializer(serializers.Serializer):
    result = FaceRecognitionResultSerializer()


def _id_list(child) -> StrictListField:
    return StrictListField(
        child=child,
        min_length=1,
        max_length=MAX_LIST_ITEMS,
        messages={
            "type": "{field} must be a non-empty list",
            "max_length": "{field} must have at most {max_length} items",
        },
    )


class FaceDeleteEnrollmentSerializer(FaceInput):
    required_order = ("keyspace", "face_ids")

    face_ids = _id_list(NameField(label="face_ids[]"))
    keyspace = NameField()

    def validate(self, attrs: dict) -> dict:
        return {**attrs, "keyspace": self._keyspace(attrs)}


class FaceDeleteEnrollmentResponseSerializer(serializers.Serializer):
    deleted_face_ids = serializers.ListField(child=serializers.CharField())


class VariationNumberField(StrictIntegerField):
    def __init__(self, **kwargs):
        super().__init__(
            min_value=1, max_value=2**31 - 1, message="variations must be a list of positive integers"
        )


class FaceDeleteVariationSerializer(FaceInput):
    required_order = ("keyspace", "face_id", "variations")

    face_id = NameField()
    variations = _id_list(VariationNumberField())
    keyspace = NameField()

    def validate(self, attrs: dict) -> dict:
        return {**attrs, "keyspace": self._keyspace(attrs)}


class FaceDeleteVariationResponseSerializer(serializers.Serializer):
    message = serializers.CharField(default="variations successfully deleted")
    face_id = serializers.CharField()
    deleted_variations = serializers.ListField(child=serializers.IntegerField())


class FaceExtractEmbeddingSerializer(FaceInput):
    image = Base64ImageField(help_text=IMAGE_HELP)

    def validate(self, attrs: dict) -> dict:
        return {"image": image_decode(attrs["image"], field="image")}


class FaceExtractEmbeddingResponseSerializer(serializers.Serializer):
    embeddings = serializers.ListField(
        child=serializers.ListField(child=serializers.FloatField()),
        help_text="One L2-normalised 128-d embedding per face, most confident face first.",
    )


class FaceImageContentSerializer(FaceParams):
    content = Base64ImageField(help_text=IMAGE_HELP + " The largest face is compared.")


class FaceMatchQuerySerializer(FaceInput):
    image_a = FaceImageContentSerializer()
    image_b = FaceImageContentSerializer()

    def validate(self, attrs: dict) -> dict:
        return {
            name: image_decode(attrs[name]["content"], field=f"{name}.content")
            for name in ("image_a", "image_b")
        }


class FaceMatchResultSerializer(serializers.Serializer):
    match = serializers.BooleanField(
        help_text="similarity at or above VISIONAIRE_FACE_MATCH_THRESHOLD (0.85)."
    )
    similarity = serializers.FloatField(min_value=0, max_value=1)


class FaceMatchResponseSerializer(serializers.Serializer):
    face_match = FaceMatchResultSerializer()


class FaceHealthcheckResponseSerializer(serializers.Serializer):
    """An empty object when the service is up."""


class FaceLimitUsageResponseSerializer(serializers.Serializer):
    current_enrollment = serializers.IntegerField(help_text="Enrolled face ids over every keyspace.")
    maximum_enrollment = serializers.IntegerField()
    current_keyspace = serializers.IntegerField()
    maximum_keyspace = serializers.IntegerField()
