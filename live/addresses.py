"""Stream addresses: one grammar, read by the API when an address is given and
by the stream runtime when it opens the source.

An address is a network URL (rtsp, rtsps, http, https), a file (an absolute
path or file:///path) or a V4L2 device (/dev/videoN or v4l2:///dev/videoN).
`address_parse` reads one (AddressError with a reason otherwise);
`address_validate` adds the platform's policy: the allowed schemes, files only
under STREAM_MEDIA_ROOT, and where network addresses may point
(`live.address_policy`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote, urlsplit

from django.conf import settings

from core.errors import BadRequest

from .address_policy import DEFAULT_PORTS, address_refusal

STREAM_ADDRESS_MAX_LENGTH = 2048
V4L2_DEVICE_RE = re.compile(r"/dev/video[0-9]{1,3}")
NETWORK_SCHEMES = ("rtsp", "rtsps", "http", "https")
DEVICE_PREFIX = "/dev/video"


class AddressError(ValueError):
    """An address the grammar (or the allowed schemes) refuses; str() says why."""


@dataclass(frozen=True)
class Address:
    text: str  # the address as given
    kind: Literal["network", "file", "device"]
    scheme: str  # lowercased; "file" for a bare path, "v4l2" for a bare device
    target: str  # what OpenCV opens: the URL as given, the file's path, the device's path
    host: str = ""  # network: the host name or address (IPv6 without brackets)
    port: int = 0  # network: the port, or the scheme's default

    @property
    def device_index(self) -> int:
        return int(self.target[len(DEVICE_PREFIX) :])


def _has_control_characters(text: str) -> bool:
    return any(ord(char) < 0x20 or ord(char) == 0x7F for char in text)


def _scheme_check(scheme: str, allowed: Collection[str] | None, refusal: str) -> None:
    if allowed is not None and scheme not in allowed:
        raise AddressError(refusal)


def _file(text: str, path: str, allowed: Collection[str] | None) -> Address:
    if _has_control_characters(path):
        raise AddressError("it must not contain spaces or control characters")
    if not os.path.isabs(path):
        raise AddressError("a file path must be absolute")
    if path.startswith("/dev/"):
        raise AddressError("a video device must be /dev/videoN")
    _scheme_check("file", allowed, "file sources are not allowed")
    return Address(text, kind="file", scheme="file", target=path)


def address_parse(address: str, *, schemes: Collection[str] | None = None) -> Address:
    """Read a stream address; AddressError (the reason) when it is not one, or
    when its scheme is not among `schemes` (lowercase; None: every supported one)."""
    allowed = None if schemes is None else {scheme.lower() for scheme in schemes}
    if not address:
        raise AddressError("it must not be empty")
    if len(address) > STREAM_ADDRESS_MAX_LENGTH:
        raise AddressError(f"it must be at most {STREAM_ADDRESS_MAX_LENGTH} characters")
    if _has_control_characters(address) or any(char.isspace() for char in address):
        raise AddressError("it must not contain spaces or control characters")

    if address.startswith("/"):
        if V4L2_DEVICE_RE.fullmatch(address):
            _scheme_check("v4l2", allowed, "V4L2 devices are not allowed")
            return Address(address, kind="device", scheme="v4l2", target=address)
        return _file(address, address, allowed)

    try:
        parts = urlsplit(address)
        port = parts.port  # raises ValueError for a malformed port
    except ValueError:
        raise AddressError("malformed URL") from None
    scheme = parts.scheme.lower()
    if not scheme or "://" not in address:
        raise AddressError("it must be a URL (rtsp://, http://…), an absolute file path or /dev/videoN")
    if allowed is not None and scheme not in allowed:
        names = ", ".join(scheme for scheme in schemes or ())
        raise AddressError(f"scheme '{scheme[:20]}' is not allowed (allowed: {names})")

    if scheme in NETWORK_SCHEMES:
        if not parts.hostname:
            raise AddressError(f"a {scheme} URL needs a host")
        if port == 0:
            raise AddressError("port must be between 1 and 65535")
        return Address(
            address,
            kind="network",
            scheme=scheme,
            target=address,
            host=parts.hostname,
            port=port or DEFAULT_PORTS[scheme],
        )
    if scheme == "file":
        if parts.netloc not in ("", "localhost") or parts.query or parts.fragment:
            raise AddressError("a file URL must be file:///absolute/path")
        return _file(address, unquote(parts.path), allowed)
    if scheme == "v4l2":
        if parts.netloc or not V4L2_DEVICE_RE.fullmatch(parts.path):
            raise AddressError("a V4L2 source must be v4l2:///dev/videoN or /dev/videoN")
        return Address(address, kind="device", scheme="v4l2", target=parts.path)
    raise AddressError(f"scheme '{scheme[:20]}' is not supported")


def _invalid_address(reason: str) -> BadRequest:
    # The seed's message is "Invalid stream_address"; the reason follows it so a
    # client matching the prefix still works and a person learns what to fix.
    return BadRequest(f"Invalid stream_address: {reason}")


def address_validate(address: str) -> Address:
    """Check a stream address against the grammar and the platform's policy; 400
    `Invalid stream_address: <reason>` otherwise."""
    allowed = [scheme.lower() for scheme in settings.STREAM_ALLOWED_SCHEMES]
    try:
        parsed = address_parse(address, schemes=allowed)
    except AddressError as exc:
        raise _invalid_address(str(exc)) from None
    if parsed.kind == "file":
        # realpath resolves `..` and symlinks first, so neither can escape the root.
        root = os.path.realpath(settings.STREAM_MEDIA_ROOT)
        resolved = os.path.realpath(parsed.target)
        if os.path.commonpath([root, resolved]) != root or resolved == root:
            raise _invalid_address(f"a file must be under {root}")
    elif parsed.kind == "network":
        refusal = address_refusal(parsed.host, parsed.port)
        if refusal is not None:
            raise _invalid_address(refusal)
    return parsed
