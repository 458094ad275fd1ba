"""Signals of the platform configuration.

- `licence_changed`: sent inside the transaction of a licence check-in, clear or
  expiry, with `seats`: the seats of the licence now in force (objects with
  `analytic_id` and `serial_number`), or None when the community allowance is
  back in force. The analytics app keeps its seats in step (analytics.signals);
  a receiver that raises rolls the change back.
- django-cors-headers asks `cors_enabled_by_platform_config` whether to add CORS
  headers; the answer follows `enable_cors` in /config/platform, so toggling it
  needs no restart.
"""

from __future__ import annotations

from corsheaders.signals import check_request_enabled
from django.dispatch import Signal, receiver

licence_changed = Signal()


@receiver(check_request_enabled, dispatch_uid="visionaire_cors_from_platform_config")
def cors_enabled_by_platform_config(sender, request, **kwargs) -> bool:
    from .selectors import platform_config_get

    return platform_config_get().enable_cors
