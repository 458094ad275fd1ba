"""Typed parsers for settings that come from environment variables.

Each parser names the variable in its error, so a typo in a deployment fails at
start-up with a line that says what to fix instead of misbehaving later.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _raw(name: str, environ: Mapping[str, str] | None) -> str | None:
    value = (os.environ if environ is None else environ).get(name)
    if value is None or value.strip() == "":
        return None
    return value.strip()


def env_str(name: str, default: str = "", *, environ: Mapping[str, str] | None = None) -> str:
    value = _raw(name, environ)
    return default if value is None else value


def env_bool(name: str, default: bool, *, environ: Mapping[str, str] | None = None) -> bool:
    value = _raw(name, environ)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false (got {value!r})")


def env_int(
    name: str,
    default: int,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    value = _raw(name, environ)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer (got {value!r})") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum} (got {number})")
    if maximum is not None and number > maximum:
        raise ImproperlyConfigured(f"{name} must be at most {maximum} (got {number})")
    return number


def env_float(
    name: str,
    default: float,
    *,
    minimum: float | None = None,
    environ: Mapping[str, str] | None = None,
) -> float:
    value = _raw(name, environ)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number (got {value!r})") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum} (got {number})")
    return number


def env_list(name: str, default: list[str], *, environ: Mapping[str, str] | None = None) -> list[str]:
    """Comma-separated list; blanks are dropped."""
    value = _raw(name, environ)
    if value is None:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def env_score_points(name: str, *, environ: Mapping[str, str] | None = None) -> list[tuple[float, float]]:
    """`similarity:rate` pairs, comma-separated (`0.62:1e-2, 0.70:1e-3`): at least
    two, similarities in (0, 1], rates in (0, 1) that fall as the similarity
    grows; sorted by similarity. Empty when unset."""
    items = env_list(name, [], environ=environ)
    if not items:
        return []
    points = []
    for item in items:
        similarity, sep, rate = item.partition(":")
        try:
            point = (float(similarity), float(rate))
        except ValueError:
            point = None
        if not sep or point is None:
            raise ImproperlyConfigured(
                f"{name}: expected similarity:rate pairs such as 0.62:1e-2, got {item!r}"
            )
        if not (0.0 < point[0] <= 1.0 and 0.0 < point[1] < 1.0):
            raise ImproperlyConfigured(
                f"{name}: {item!r}: the similarity must lie in (0, 1] and the rate in (0, 1)"
            )
        points.append(point)
    points.sort()
    if len(points) < 2:
        raise ImproperlyConfigured(f"{name}: give at least two similarity:rate pairs (got {len(points)})")
    for (s0, r0), (s1, r1) in zip(points, points[1:], strict=False):
        if s1 <= s0 or r1 >= r0:
            raise ImproperlyConfigured(
                f"{name}: the rate must fall as the similarity grows ({s0}:{r0:g} then {s1}:{r1:g})"
            )
    return points


def env_path(name: str, default: Path, *, environ: Mapping[str, str] | None = None) -> Path:
    value = _raw(name, environ)
    return (Path(value).expanduser() if value is not None else default).resolve()


def env_choice(
    name: str, default: str, choices: list[str], *, environ: Mapping[str, str] | None = None
) -> str:
    value = _raw(name, environ)
    if value is None:
        return default
    if value.lower() not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)} (got {value!r})")
    return value.lower()


IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def env_networks(
    name: str, default: list[str], *, environ: Mapping[str, str] | None = None
) -> list[IpNetwork]:
    """Comma-separated CIDR networks (`10.0.0.0/8, fd00::/8`; a bare address is
    one host); `none` for an empty list. Host bits set (`10.0.0.1/8`) are refused:
    they are usually a typo for another network."""
    value = _raw(name, environ)
    items = default if value is None else [item.strip() for item in value.split(",") if item.strip()]
    if value is not None and [item.lower() for item in items] == ["none"]:
        return []
    networks = []
    for item in items:
        try:
            networks.append(ipaddress.ip_network(item))
        except ValueError as exc:
            raise ImproperlyConfigured(
                f"{name} must be a comma-separated list of networks such as 10.0.0.0/8 or fd00::/8, "
                f"or none (got {item!r}: {exc})"
            ) from None
    return networks
