"""Events emitted by analytics: what was seen, where and when."""

from __future__ import annotations

import uuid

from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector
from django.db import models
from pgvector.django import HnswIndex, VectorField

# dlib's face embedding, the default embedder, has 128 dimensions: the column's size in
# a fresh database; `face_reembed` resizes it in the database for another face embedder
# (see faces.models.EMBEDDING_DIMENSIONS). A migration must never alter this field.
EMBEDDING_DIMENSIONS = 128


class Event(models.Model):
    # Stream fields are copied, not foreign keys: history must outlive a deleted stream.
    event_id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    stream_id = models.CharField(max_length=16)
    stream_name = models.CharField(max_length=200, blank=True)
    node_num = models.PositiveIntegerField()
    analytic_id = models.CharField(max_length=40)
    timestamp = models.DateTimeField()
    primary_text = models.CharField(max_length=200, blank=True)
    secondary_text = models.CharField(max_length=200, blank=True)
    pipeline_data = models.JSONField(default=dict)
    image = models.FileField(upload_to="events/%Y/%m/%d", blank=True)
    embedding = VectorField(dimensions=EMBEDDING_DIMENSIONS, null=True, blank=True)
    search_text = models.TextField(blank=True, help_text="Names, labels and stream name, for text search.")

    class Meta:
        ordering = ["-timestamp"]
        indexes = [
            models.Index(fields=["timestamp"], name="event_timestamp"),
            models.Index(fields=["stream_id", "timestamp"], name="event_stream_timestamp"),
            models.Index(fields=["analytic_id", "timestamp"], name="event_analytic_timestamp"),
            GinIndex(fields=["search_text"], name="event_search_trgm", opclasses=["gin_trgm_ops"]),
            # Full-text side of text search (events/search.py uses this exact expression).
            GinIndex(SearchVector("search_text", config="simple"), name="event_search_fts"),
            HnswIndex(
                name="event_embedding_hnsw",
                fields=["embedding"],
                m=16,
                ef_construction=64,
                opclasses=["vector_cosine_ops"],
            ),
        ]

    def __str__(self) -> str:
        return f"{self.analytic_id} {self.primary_text or 'event'} @ {self.timestamp:%Y-%m-%d %H:%M:%S}"
