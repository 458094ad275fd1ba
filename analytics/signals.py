"""Analytics follows the platform's licence: its seats change with each check-in,
clear and expiry (platform_config.signals.licence_changed)."""

from __future__ import annotations

from django.dispatch import receiver

from platform_config.signals import licence_changed

from .services import licence_seats_follow


@receiver(licence_changed, dispatch_uid="analytics_seats_follow_licence")
def seats_follow_licence(sender, seats, **_kwargs) -> None:
    licence_seats_follow(seats)
