"""Platform configuration, identity and the licence check-in.

`/config/platform` and `/config/database` are two views of the one
PlatformConfig row; every change is validated whole before anything is saved,
and other processes are told to reload once the change is committed.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.errors import BadRequest
from core.validation import data_validated

from . import licence as licence_doc
from .models import LicenceCheckin, LicenceStatus, PlatformConfig
from .selectors import apply_log_level, licence_get, platform_config_get, platform_config_invalidate
from .serializers import (
    ConfigChangeSerializer,
    DatabaseConfigPatchSerializer,
    DatabaseConfigSerializer,
    PlatformConfigPatchSerializer,
    PlatformConfigSerializer,
)
from .signals import licence_changed

logger = logging.getLogger(__name__)

LICENCE_ERROR = "invalid license credentials"


# --- configuration ---------------------------------------------------------------


def platform_config_as_dict(config: PlatformConfig) -> dict[str, Any]:
    return dict(PlatformConfigSerializer(config).data)


def database_config_as_dict(config: PlatformConfig) -> dict[str, Any]:
    return dict(DatabaseConfigSerializer(config).data)


def platform_config_current() -> PlatformConfig:
    """The row as stored now (not the per-process copy, which refreshes only
    once a change is committed)."""
    return PlatformConfig.objects.filter(pk=1).first() or platform_config_get()


def _validated_changes(data: Any, serializer_class: type[ConfigChangeSerializer]) -> dict[str, Any]:
    """The change checked by the route's serializer (the one source of the limits):
    PlatformConfig field -> value."""
    return dict(data_validated(serializer_class, data))


def _config_update(*, data: Any, serializer_class: type[ConfigChangeSerializer]) -> PlatformConfig:
    changes = _validated_changes(data, serializer_class)
    platform_config_get()  # creates the row on a fresh install
    with transaction.atomic():
        config = PlatformConfig.objects.select_for_update().get(pk=1)
        for field, value in changes.items():
            setattr(config, field, value)
        if changes:
            config.save(update_fields=[*changes, "updated_at"])
            # Invalidate only after commit: a process reloading earlier would
            # cache the old row under the new version number.
            transaction.on_commit(platform_config_invalidate)
    if "log_level" in changes:
        apply_log_level(config.log_level)
    return config


def platform_config_update(*, data: Any) -> PlatformConfig:
    """Apply any subset of the /config/platform keys; nothing is saved on error."""
    return _config_update(data=data, serializer_class=PlatformConfigPatchSerializer)


def database_config_update(*, data: Any) -> PlatformConfig:
    """Apply any subset of the /config/database keys; nothing is saved on error.
    Retention itself is enforced by the periodic clean-up job."""
    return _config_update(data=data, serializer_class=DatabaseConfigPatchSerializer)


# --- identity ----------------------------------------------------------------


def deployment_key_get() -> str:
    """The licence's deployment key once one is checked in, else the platform's own."""
    checkin = licence_get()
    if checkin is not None:
        return checkin.deployment_key
    return platform_config_get().deployment_key


def platform_identity() -> dict[str, Any]:
    return {
        "name": settings.PLATFORM_NAME,
        "version": dict(settings.PLATFORM_VERSION),
        "deployment_key": deployment_key_get(),
    }


# --- licence check-in ---------------------------------------------------------------


def checkin_as_dict(checkin: LicenceCheckin | None, *, now: datetime | None = None) -> dict[str, Any]:
    """The check-in in force, or the community allowance when there is none."""
    if checkin is None:
        return {
            "status": "community",
            "deployment_key": platform_config_get().deployment_key,
            "last_checkin_at": None,
            "expires_at": None,
        }
    now = now or timezone.now()
    # Between expiry and the beat job's pass the row still says active.
    status = LicenceStatus.EXPIRED if checkin.expires_at <= now else checkin.status
    return {
        "status": str(status),
        "deployment_key": checkin.deployment_key,
        "last_checkin_at": licence_doc.format_timestamp(checkin.last_checkin_at),
        "expires_at": licence_doc.format_timestamp(checkin.expires_at),
    }


def _licence_lock() -> None:
    """Serialise check-in, clear and expiry (call inside a transaction): the
    configuration row is the one row every deployment has to lock on."""
    platform_config_get()
    PlatformConfig.objects.select_for_update().filter(pk=1).first()


def licence_checkin(*, access_key: str, secret_key: str) -> LicenceCheckin:
    """Verify the credentials offline and put their licence in force, replacing
    any earlier one: its seats replace the community allowance and pipelines
    move onto them."""
    now = timezone.now()
    try:
        licence = licence_doc.licence_verify(
            access_key=access_key,
            secret_key=secret_key,
            public_key_setting=settings.LICENCE_PUBLIC_KEY,
            now=now,
        )
    except licence_doc.LicenceError as exc:
        raise BadRequest(f"{LICENCE_ERROR}: {exc}") from None
    with transaction.atomic():
        _licence_lock()
        LicenceCheckin.objects.all().delete()
        checkin = LicenceCheckin.objects.create(
            access_key=access_key,
            secret_key=secret_key,
            deployment_key=licence.deployment_key,
            status=LicenceStatus.ACTIVE,
            issued_at=licence.issued_at,
            expires_at=licence.expires_at,
            last_checkin_at=now.replace(microsecond=0),
        )
        # Analytics makes the licence's seats exist and be active (community seats go inactive).
        licence_changed.send(sender=LicenceCheckin, seats=licence.seats)
    logger.info(
        "licence %s checked in, %d seats, expires %s", access_key, len(licence.seats), licence.expires_at
    )
    return checkin


def _community_restore() -> None:
    # Analytics makes the licensed seats inactive and the community allowance active again.
    licence_changed.send(sender=LicenceCheckin, seats=None)


def licence_clear() -> None:
    """Remove the check-in: licensed seats go inactive and the community
    allowance is back in force."""
    with transaction.atomic():
        _licence_lock()
        LicenceCheckin.objects.all().delete()
        _community_restore()


def licence_expire_overdue(*, now: datetime | None = None) -> bool:
    """Mark an active licence past its expiry as expired and fall back to the
    community allowance. True when it expired one."""
    now = now or timezone.now()
    with transaction.atomic():
        _licence_lock()
        overdue = list(LicenceCheckin.objects.filter(status=LicenceStatus.ACTIVE, expires_at__lte=now))
        if not overdue:
            return False
        LicenceCheckin.objects.filter(pk__in=[c.pk for c in overdue]).update(status=LicenceStatus.EXPIRED)
        _community_restore()
    for checkin in overdue:
        logger.warning(
            "licence %s expired at %s; community allowance in force", checkin.access_key, checkin.expires_at
        )
    return True
