"""django-cors-headers asks this hook whether to add CORS headers; the answer
follows `enable_cors` in /config/platform, so toggling it needs no restart."""

from __future__ import annotations

from corsheaders.signals import check_request_enabled
from django.dispatch import receiver


@receiver(check_request_enabled, dispatch_uid="visionaire_cors_from_platform_config")
def cors_enabled_by_platform_config(sender, request, **kwargs) -> bool:
    from .selectors import platform_config_get

    return platform_config_get().enable_cors
