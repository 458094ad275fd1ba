"""Registered vehicles (plate watch lists), grouped in lists as faces are in
keyspaces: a plate pipeline matches its readings against one list.

Each vehicle keeps its plate as given (`plate_number`), normalised (`plate`:
upper case, letters and digits; one vehicle per plate in a list), its search
key and the keys with one character left out (analytics.plates.matching), so a
reading with OCR confusions or a lost character is found through an index,
not by comparing every plate of the list."""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.db import models
from django.db.models.functions import Upper

PLATE_MAX_LENGTH = 15  # normalised: no plate format has more letters and digits
PLATE_NUMBER_MAX_LENGTH = 32  # as given, with its spaces and dashes


class VehicleList(models.Model):
    name = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Vehicle(models.Model):
    """One registered vehicle: the fields of Nodeflux's dashboard (ANALYTICS.md)."""

    vehicle_list = models.ForeignKey(VehicleList, on_delete=models.CASCADE, related_name="vehicles")
    plate_number = models.CharField(
        max_length=PLATE_NUMBER_MAX_LENGTH, help_text="As given, e.g. B 1234 XYZ."
    )
    plate = models.CharField(max_length=PLATE_MAX_LENGTH, editable=False, help_text="Normalised: B1234XYZ.")
    search_key = models.CharField(max_length=PLATE_MAX_LENGTH, editable=False)
    deletion_keys = ArrayField(models.CharField(max_length=PLATE_MAX_LENGTH), default=list, editable=False)
    unique_id = models.CharField(max_length=64, blank=True)
    name = models.CharField(max_length=200, blank=True, help_text="The owner.")
    type = models.CharField(max_length=64, blank=True)
    brand = models.CharField(max_length=64, blank=True)
    color = models.CharField(max_length=64, blank=True)
    status = models.CharField(
        max_length=64, blank=True, help_text="Free text such as blacklist or whitelist."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["vehicle_list_id", "plate"]
        constraints = [
            models.UniqueConstraint(fields=["vehicle_list", "plate"], name="vehicle_plate_per_list"),
        ]
        indexes = [
            models.Index(fields=["search_key"], name="vehicle_search_key"),
            # No pending list: every lookup reads the index alone (a pending list is scanned
            # whole by each lookup until vacuum merges it), at some cost to bulk imports.
            GinIndex(fields=["deletion_keys"], name="vehicle_deletion_keys", fastupdate=False),
            GinIndex(fields=["name"], name="vehicle_name_trgm", opclasses=["gin_trgm_ops"]),
            models.Index(Upper("status"), name="vehicle_status_upper"),
        ]

    def __str__(self) -> str:
        return (
            f"{self.plate_number} ({self.vehicle_list.name})" if self.vehicle_list_id else self.plate_number
        )
