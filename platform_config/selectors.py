"""Reads of the platform configuration and licence, cached per process.

The configuration row is read on most requests (CORS, limits), so each process
keeps a copy and reloads it when the version counter in Redis moves: a change
made through any API process takes effect everywhere at once.
"""

from __future__ import annotations

import logging
import secrets
import threading

from django.conf import settings
from django.utils import timezone

from core.api import parse_node_num
from core.errors import NotFound
from live.keys import CONFIG_VERSION_KEY
from live.redis import get_redis

from .models import LicenceCheckin, LicenceStatus, Node, PlatformConfig

_lock = threading.Lock()
_cache: dict[str, object] = {"version": None, "config": None}


def _load_or_create() -> PlatformConfig:
    config, _ = PlatformConfig.objects.get_or_create(
        pk=1,
        defaults={
            "deployment_key": f"visionaire-{secrets.token_hex(6)}",
            "max_streams_per_node": settings.DEFAULT_MAX_STREAMS_PER_NODE,
            "event_retention_days": settings.DEFAULT_EVENT_RETENTION_DAYS,
            "max_events_per_stream": settings.DEFAULT_MAX_EVENTS_PER_STREAM,
            "enable_cors": True,
            "log_level": settings.LOG_LEVEL,
        },
    )
    return config


def apply_log_level(level: str) -> None:
    logging.getLogger().setLevel(level.upper())


def platform_config_get() -> PlatformConfig:
    """The configuration in force (a process-local copy, fresh within one Redis GET)."""
    try:
        version = get_redis().get(CONFIG_VERSION_KEY)
    except Exception:  # Redis down: serve the last copy rather than fail the request
        version = _cache["version"]
    with _lock:
        cached = _cache["config"]
        if cached is None or version != _cache["version"]:
            cached = _load_or_create()
            if _cache["config"] is None or cached.log_level != _cache["config"].log_level:
                apply_log_level(cached.log_level)
            _cache.update(version=version, config=cached)
        return cached  # type: ignore[return-value]


def platform_config_invalidate() -> None:
    """Tell every process to reload the configuration."""
    with _lock:
        _cache.update(version=None, config=None)
    get_redis().incr(CONFIG_VERSION_KEY)


def licence_get() -> LicenceCheckin | None:
    return LicenceCheckin.objects.first()


def licence_active() -> bool:
    return LicenceCheckin.objects.filter(status=LicenceStatus.ACTIVE, expires_at__gt=timezone.now()).exists()


def node_get(raw: str) -> Node:
    """The node named in a path: 400 for a malformed number, 404 for an unknown node."""
    number = parse_node_num(raw)
    try:
        return Node.objects.get(num=number)
    except Node.DoesNotExist:
        raise NotFound("node not found") from None
