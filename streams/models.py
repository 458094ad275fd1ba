"""Desired state of streams and their pipelines. Live state is in Redis."""

from __future__ import annotations

from django.db import models


class Stream(models.Model):
    stream_id = models.CharField(max_length=16, primary_key=True, help_text="16 lowercase hex characters.")
    node = models.ForeignKey("platform_config.Node", on_delete=models.PROTECT, related_name="streams")
    name = models.CharField(max_length=200, blank=True)
    address = models.CharField(max_length=2048)
    latitude = models.FloatField(default=0.0)
    longitude = models.FloatField(default=0.0)
    custom_data = models.JSONField(default=dict, blank=True)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at", "stream_id"]
        indexes = [models.Index(fields=["node", "created_at"], name="stream_node_created")]

    def __str__(self) -> str:
        return f"{self.stream_id} ({self.name or self.address})"

    @property
    def node_num(self) -> int:
        """The node's number (its primary key), as events and messages name it."""
        return self.node_id


class Pipeline(models.Model):
    """One analytic running on one stream, with its validated config."""

    stream = models.ForeignKey(Stream, on_delete=models.CASCADE, related_name="pipelines")
    analytic = models.ForeignKey("analytics.Analytic", on_delete=models.PROTECT, related_name="pipelines")
    config = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["stream", "analytic"], name="pipeline_unique_per_stream"),
        ]

    def __str__(self) -> str:
        return f"{self.analytic_id} on {self.stream_id}"
