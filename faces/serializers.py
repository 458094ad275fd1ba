"""OpenAPI description of the /v1/face routes (the views validate bodies
themselves, so each error names the field the way the contract's errors do)."""

from __future__ import annotations

from rest_framework import serializers

IMAGE_HELP = "Base64 JPEG or PNG (a `data:image/...;base64,` prefix is accepted)."


class FaceKeyspaceSerializer(serializers.Serializer):
    keyspace = serializers.CharField(max_length=64, help_text="1 to 64 letters, digits or _ . @ : -")


class FaceKeyspaceResponseSerializer(serializers.Serializer):
    message = serializers.CharField(default="keyspace successfully created")
    keyspace = serializers.CharField()


class FaceEnrollmentParamsSerializer(serializers.Serializer):
    face_id = serializers.CharField(
        required=False,
        max_length=64,
        help_text="An existing face id adds a variation; a new one is created; absent, one is generated.",
    )
    name = serializers.CharField(
        required=False, max_length=200, help_text="[ours] The person's name (primary_text of events)."
    )
    category = serializers.CharField(
        required=False, max_length=100, help_text="[ours] Group such as Employee (secondary_text of events)."
    )
    identity_number = serializers.CharField(required=False, max_length=64, help_text="[ours]")
    notes = serializers.CharField(required=False, max_length=2000, help_text="[ours]")


class FaceEnrollmentSerializer(serializers.Serializer):
    image = serializers.CharField(help_text=IMAGE_HELP)
    keyspace = serializers.CharField(max_length=64)
    additional_params = FaceEnrollmentParamsSerializer(required=False)


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


class FaceRecognitionParamsSerializer(serializers.Serializer):
    candidate_count = serializers.IntegerField(required=False, min_value=1, max_value=100, default=5)


class FaceRecognitionQuerySerializer(serializers.Serializer):
    image = serializers.CharField(help_text=IMAGE_HELP + " The largest face is searched.")
    keyspace = serializers.CharField(max_length=64)
    additional_params = FaceRecognitionParamsSerializer(required=False)


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


class FaceRecognitionResultSerializer(serializers.Serializer):
    face_recognition = FaceCandidatesSerializer()


class FaceRecognitionResponseSerializer(serializers.Serializer):
    result = FaceRecognitionResultSerializer()


class FaceDeleteEnrollmentSerializer(serializers.Serializer):
    keyspace = serializers.CharField(max_length=64)
    face_ids = serializers.ListField(
        child=serializers.CharField(max_length=64), min_length=1, max_length=1000
    )


class FaceDeleteEnrollmentResponseSerializer(serializers.Serializer):
    deleted_face_ids = serializers.ListField(child=serializers.CharField())


class FaceDeleteVariationSerializer(serializers.Serializer):
    keyspace = serializers.CharField(max_length=64)
    face_id = serializers.CharField(max_length=64)
    variations = serializers.ListField(
        child=serializers.IntegerField(min_value=1), min_length=1, max_length=1000
    )


class FaceDeleteVariationResponseSerializer(serializers.Serializer):
    message = serializers.CharField(default="variations successfully deleted")
    face_id = serializers.CharField()
    deleted_variations = serializers.ListField(child=serializers.IntegerField())


class FaceExtractEmbeddingSerializer(serializers.Serializer):
    image = serializers.CharField(help_text=IMAGE_HELP)


class FaceExtractEmbeddingResponseSerializer(serializers.Serializer):
    embeddings = serializers.ListField(
        child=serializers.ListField(child=serializers.FloatField()),
        help_text="One L2-normalised 128-d embedding per face, most confident face first.",
    )


class FaceImageContentSerializer(serializers.Serializer):
    content = serializers.CharField(help_text=IMAGE_HELP + " The largest face is compared.")


class FaceMatchQuerySerializer(serializers.Serializer):
    image_a = FaceImageContentSerializer()
    image_b = FaceImageContentSerializer()


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
