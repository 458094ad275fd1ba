"""Enrolled people and their face photos, grouped in keyspaces (FREMIS-N's
model: a keyspace is an independent gallery searched 1:N)."""

from __future__ import annotations

from django.db import models
from pgvector.django import HnswIndex, VectorField

# The shipped embedder's size: the column's size in a fresh database. An HNSW index
# needs a fixed dimension; `face_reembed` (faces/reembed.py) resizes the column in the
# database for another embedder, so the database, not this field, says the size in
# force (read from PostgreSQL's catalog). A migration must never alter this field.
EMBEDDING_DIMENSIONS = 128


class Keyspace(models.Model):
    name = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Kept by triggers on faces_facevariation (migration 0002), in the writer's own
    # transaction, whatever writes the rows (the services, bulk COPY, cascades).
    # Every 1:N search decides at the keyspace's size; COUNT(*) read 100k rows of
    # a 600-byte-wide table for it, ~15 ms per request at 100k enrolled.
    variation_count = models.PositiveIntegerField(
        default=0, editable=False, help_text="Enrolled faces (variations) in the keyspace."
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Person(models.Model):
    """One enrolled face id. `name` is what recognition events show as
    `primary_text`, `category` their `secondary_text`."""

    keyspace = models.ForeignKey(Keyspace, on_delete=models.CASCADE, related_name="people")
    face_id = models.CharField(max_length=64, help_text="The id clients use; unique within the keyspace.")
    name = models.CharField(
        max_length=200, blank=True, help_text="Shown as primary_text of recognition events."
    )
    category = models.CharField(
        max_length=100, blank=True, help_text="Group such as Employee or VIP; shown as secondary_text."
    )
    identity_number = models.CharField(max_length=64, blank=True, help_text="Employee or ID card number.")
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["keyspace__name", "name", "face_id"]
        verbose_name_plural = "people"
        constraints = [
            models.UniqueConstraint(fields=["keyspace", "face_id"], name="person_face_id_per_keyspace")
        ]
        indexes = [models.Index(fields=["keyspace", "name"], name="person_keyspace_name")]

    def __str__(self) -> str:
        return f"{self.name or '(no name)'} [{self.face_id}]"


class FaceVariation(models.Model):
    """One enrolled photo of a person: its embedding, the photo as uploaded, a
    thumbnail of the face, and the quality figures it passed enrollment with."""

    person = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="variations")
    # Copied from the person so a 1:N search filters on this table alone.
    keyspace = models.ForeignKey(Keyspace, on_delete=models.CASCADE, related_name="+")
    variation = models.PositiveIntegerField()
    embedding = VectorField(dimensions=EMBEDDING_DIMENSIONS)
    embedder = models.CharField(max_length=100, help_text="The model that made the embedding.")
    photo = models.FileField(upload_to="faces/photos/%Y/%m", blank=True)
    thumbnail = models.FileField(upload_to="faces/thumbnails/%Y/%m", blank=True)
    box = models.JSONField(default=list, help_text="Face box in the photo: [x, y, width, height] in pixels.")
    detection_score = models.FloatField(default=0.0)
    face_size = models.PositiveIntegerField(default=0, help_text="The box's smaller side, in pixels.")
    blur_score = models.FloatField(default=0.0, help_text="Sharpness (higher is sharper).")
    frontal_score = models.FloatField(default=0.0, help_text="1 for a frontal face, 0 for a profile.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["person_id", "variation"]
        constraints = [
            models.UniqueConstraint(fields=["person", "variation"], name="face_variation_number_per_person")
        ]
        indexes = [
            HnswIndex(
                name="face_variation_embedding_hnsw",
                fields=["embedding"],
                m=16,
                ef_construction=64,
                opclasses=["vector_cosine_ops"],
            ),
        ]

    def __str__(self) -> str:
        return f"{self.person} variation {self.variation}"
