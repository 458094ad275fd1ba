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
