"""OpenAPI description of the /v1/face routes (the views validate bodies
themselves, so each error names the field the way the contract's errors do)."""

from __future__ import annotations

from rest_framework import serializers

IMAGE_HELP = "Base64 JPEG or PNG (a `data:image/...;base64,` prefix is accepted)."


class KeyspaceRequestSerializer(serializers.Serializer):
    keyspace = serializers.CharField(max_length=64, help_text="1 to 64 letters, digits or _ . @ : -")


class KeyspaceResponseSerializer(serializers.Serializer):
    message = serializers.CharField(default="keyspace successfully created")
    keyspace = serializers.CharField()


class EnrollmentParamsSerializer(serializers.Serializer):
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


class EnrollmentRequestSerializer(serializers.Serializer):
    image = serializers.CharField(help_text=IMAGE_HELP)
    keyspace = serializers.CharField(max_length=64)
    additional_params = EnrollmentParamsSerializer(required=False)


class EnrollmentResponseSerializer(serializers.Serializer):
    face_id = serializers.CharField()
    variation = serializers.IntegerField(min_value=1)


class RecognitionParamsSerializer(serializers.Serializer):
    candidate_count = serializers.IntegerField(required=False, min_value=1, max_value=100, default=5)


class RecognitionRequestSerializer(serializers.Serializer):
    image = serializers.CharField(help_text=IMAGE_HELP + " The largest face is searched.")
    keyspace = serializers.CharField(max_length=64)
    additional_params = RecognitionParamsSerializer(required=False)


class CandidateSerializer(serializers.Serializer):
    face_id = serializers.CharField()
    similarity = serializers.FloatField(min_value=0, max_value=1)
    variation = serializers.IntegerField(help_text="The person's variation nearest to the query.")


class CandidatesSerializer(serializers.Serializer):
    candidates = CandidateSerializer(many=True, help_text="Distinct face ids, highest similarity first.")


class FaceRecognitionSerializer(serializers.Serializer):
    face_recognition = CandidatesSerializer()


class RecognitionResponseSerializer(serializers.Serializer):
    result = FaceRecognitionSerializer()


class DeleteEnrollmentRequestSerializer(serializers.Serializer):
    keyspace = serializers.CharField(max_length=64)
    face_ids = serializers.ListField(
        child=serializers.CharField(max_length=64), min_length=1, max_length=1000
    )


class DeleteEnrollmentResponseSerializer(serializers.Serializer):
    deleted_face_ids = serializers.ListField(child=serializers.CharField())


class DeleteVariationRequestSerializer(serializers.Serializer):
    keyspace = serializers.CharField(max_length=64)
    face_id = serializers.CharField(max_length=64)
    variations = serializers.ListField(
        child=serializers.IntegerField(min_value=1), min_length=1, max_length=1000
    )


class DeleteVariationResponseSerializer(serializers.Serializer):
    message = serializers.CharField(default="variations successfully deleted")
    face_id = serializers.CharField()
    deleted_variations = serializers.ListField(child=serializers.IntegerField())


class ExtractEmbeddingRequestSerializer(serializers.Serializer):
    image = serializers.CharField(help_text=IMAGE_HELP)


class ExtractEmbeddingResponseSerializer(serializers.Serializer):
    embeddings = serializers.ListField(
        child=serializers.ListField(child=serializers.FloatField()),
        help_text="One L2-normalised 128-d embedding per face, most confident face first.",
    )


class ImageContentSerializer(serializers.Serializer):
    content = serializers.CharField(help_text=IMAGE_HELP + " The largest face is compared.")


class MatchRequestSerializer(serializers.Serializer):
    image_a = ImageContentSerializer()
    image_b = ImageContentSerializer()


class FaceMatchSerializer(serializers.Serializer):
    match = serializers.BooleanField(
        help_text="similarity at or above VISIONAIRE_FACE_MATCH_THRESHOLD (0.85)."
    )
    similarity = serializers.FloatField(min_value=0, max_value=1)


class MatchResponseSerializer(serializers.Serializer):
    face_match = FaceMatchSerializer()


class HealthcheckResponseSerializer(serializers.Serializer):
    """An empty object when the service is up."""


class LimitUsageResponseSerializer(serializers.Serializer):
    current_enrollment = serializers.IntegerField(help_text="Enrolled face ids over every keyspace.")
    maximum_enrollment = serializers.IntegerField()
    current_keyspace = serializers.IntegerField()
    maximum_keyspace = serializers.IntegerField()
