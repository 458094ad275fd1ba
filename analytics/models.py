"""Analytics known to the platform and the seats that license them."""

from __future__ import annotations

from django.db import models


class Analytic(models.Model):
    """Mirror of a plugin registered in code (see analytics.registry); rows of
    plugins no longer installed are kept with `installed=False` so their seats
    and history stay readable."""

    id = models.CharField(max_length=40, primary_key=True)
    name = models.CharField(max_length=100)
    major_version = models.PositiveIntegerField()
    minor_version = models.PositiveIntegerField()
    publisher = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    type = models.CharField(max_length=40)
    installed = models.BooleanField(default=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.id


class SeatSource(models.TextChoices):
    COMMUNITY = "community"
    LICENCE = "licence"


class Seat(models.Model):
    """One licensed slot of an analytic; a pipeline holds at most one."""

    analytic = models.ForeignKey(Analytic, on_delete=models.CASCADE, related_name="seats")
    serial_number = models.CharField(max_length=100, unique=True)
    source = models.CharField(max_length=10, choices=SeatSource.choices)
    active = models.BooleanField(default=True)
    pipeline = models.OneToOneField(
        "streams.Pipeline", null=True, blank=True, on_delete=models.SET_NULL, related_name="seat"
    )

    class Meta:
        ordering = ["analytic_id", "serial_number"]
        indexes = [models.Index(fields=["analytic", "active"], name="seat_analytic_active")]

    def __str__(self) -> str:
        return self.serial_number


class AnalyticCount(models.Model):
    """Counts over time: one row per minute, stream, analytic, line or area (`zone`),
    class (`label`) and `direction` (in, out, wrong_way, enter, dwell, stopped, or
    peak: the highest number in an area at once). Written by the analytics' count
    writer (analytics.counts), never recomputed from events. Streams are named by
    id, not by key: counts outlive a deleted stream or pipeline, until retention."""

    stream_id = models.CharField(max_length=16)
    analytic_id = models.CharField(max_length=40)
    minute_ms = models.BigIntegerField(help_text="Start of the minute, unix ms (UTC).")
    zone = models.CharField(max_length=100, help_text="The line's or area's name.")
    label = models.CharField(max_length=40, help_text="The object's class; * for all (peaks).")
    direction = models.CharField(max_length=20)
    value = models.BigIntegerField()

    class Meta:
        ordering = ["-minute_ms", "stream_id", "analytic_id", "zone", "label", "direction"]
        constraints = [
            models.UniqueConstraint(
                fields=["stream_id", "analytic_id", "minute_ms", "zone", "label", "direction"],
                name="analytic_count_key",
            )
        ]
        indexes = [models.Index(fields=["minute_ms"], name="analytic_count_minute")]

    def __str__(self) -> str:
        return f"{self.stream_id} {self.analytic_id} {self.zone} {self.label} {self.direction}"
