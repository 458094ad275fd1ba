"""Cluster-wide desired state: nodes, the platform configuration and the licence."""

from __future__ import annotations

from django.db import models


class Node(models.Model):
    """A worker host of the cluster. Its live state (heartbeat, CPU/GPU figures)
    is in Redis; this row only records that the node exists."""

    num = models.PositiveIntegerField(primary_key=True, help_text="Node number, from 0.")
    name = models.CharField(max_length=100, blank=True, help_text="Optional label for operators.")
    ip_address = models.GenericIPAddressField(null=True, blank=True, help_text="Last address it reported.")
    registered_at = models.DateTimeField(auto_now_add=True)
    last_started_at = models.DateTimeField(null=True, blank=True, help_text="When its worker last started.")

    class Meta:
        ordering = ["num"]

    def __str__(self) -> str:
        return f"node {self.num}"


class LogLevel(models.TextChoices):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"


class PlatformConfig(models.Model):
    """The one row of run-time configuration (pk is always 1).

    `/config/platform` and `/config/database` are two views of this row, so
    `event_retention_days` and `retention_days` are the same setting.
    """

    deployment_key = models.CharField(max_length=100)
    max_streams_per_node = models.PositiveIntegerField()
    event_retention_days = models.PositiveIntegerField()
    max_events_per_stream = models.PositiveIntegerField()
    enable_cors = models.BooleanField(default=True)
    log_level = models.CharField(max_length=10, choices=LogLevel.choices, default=LogLevel.INFO)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "platform configuration"
        verbose_name_plural = "platform configuration"

    def __str__(self) -> str:
        return "platform configuration"


class LicenceStatus(models.TextChoices):
    ACTIVE = "active"
    EXPIRED = "expired"


class LicenceCheckin(models.Model):
    """The licence in force (at most one row). The signed document is kept as
    received so it can be verified again, e.g. after the issuer key changes."""

    access_key = models.CharField(max_length=200)
    secret_key = models.TextField(help_text="The signed licence token as given at check-in.")
    deployment_key = models.CharField(max_length=100)
    status = models.CharField(max_length=10, choices=LicenceStatus.choices, default=LicenceStatus.ACTIVE)
    issued_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    last_checkin_at = models.DateTimeField()

    class Meta:
        verbose_name = "licence check-in"

    def __str__(self) -> str:
        return f"licence {self.access_key} ({self.status})"
