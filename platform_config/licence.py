"""Licence documents: signed offline with the issuer's Ed25519 key, verified
offline with its public key (settings.LICENCE_PUBLIC_KEY).

A customer receives two strings:

- access_key = "AKID-" + licence id
- secret_key = "sk-" + base64url(canonical JSON payload) + "." + base64url(signature)

The payload is `{"v": 1, "licence_id", "deployment_key", "issued_at",
"expires_at", "seats": [{"analytic_id", "serial_number"}]}` with timestamps in
ISO 8601 UTC. The signature covers the payload bytes exactly as transmitted, so
verification never depends on re-serialising JSON the same way.

This module is pure: no database, no HTTP. Errors are `LicenceError` with a
short reason; the service turns them into the API's 400.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ACCESS_KEY_PREFIX = "AKID-"
SECRET_KEY_PREFIX = "sk-"
PAYLOAD_VERSION = 1
# Bounds that keep a hostile token from costing much to parse.
MAX_SECRET_KEY_CHARS = 1_000_000
MAX_SEATS = 100_000


class LicenceError(Exception):
    """The credentials are not a valid licence; the message says why."""


@dataclass(frozen=True)
class LicenceSeat:
    analytic_id: str
    serial_number: str


@dataclass(frozen=True)
class Licence:
    licence_id: str
    deployment_key: str
    issued_at: datetime
    expires_at: datetime
    seats: tuple[LicenceSeat, ...]

    @property
    def access_key(self) -> str:
        return ACCESS_KEY_PREFIX + self.licence_id


# --- formatting helpers ------------------------------------------------------


def format_timestamp(moment: datetime) -> str:
    """UTC, seconds precision, `Z` suffix: the contract's `2025-01-15T08:00:00Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_timestamp(value: Any, name: str) -> datetime:
    if not isinstance(value, str):
        raise LicenceError(f"licence field {name} must be an ISO 8601 string")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise LicenceError(f"licence field {name} is not an ISO 8601 timestamp") from None
    if moment.tzinfo is None:
        raise LicenceError(f"licence field {name} must carry a time zone")
    return moment.astimezone(UTC)


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str, what: str) -> bytes:
    try:
        # validate=True: stray characters are an error, not silently skipped.
        return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise LicenceError(f"the secret key's {what} is not valid base64url") from None


def canonical_json(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


# --- keys ----------------------------------------------------------------------


def generate_key_pair() -> tuple[bytes, bytes]:
    """A new issuer key pair as (private PEM, public PEM)."""
    private_key = Ed25519PrivateKey.generate()
    private_pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_pem, public_pem


def load_private_key(pem: bytes) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise LicenceError("the issuer private key is not an Ed25519 key")
    return key


def load_public_key(configured: str) -> Ed25519PublicKey:
    """The issuer's public key from PEM text or the path of a PEM file."""
    configured = configured.strip()
    if not configured:
        raise LicenceError("no licence public key is configured on this platform")
    if configured.startswith("-----BEGIN"):
        pem = configured.encode("ascii", "replace")
    else:
        try:
            pem = Path(configured).expanduser().read_bytes()
        except OSError:
            raise LicenceError("the configured licence public key file cannot be read") from None
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError):
        raise LicenceError("the configured licence public key is not a valid PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise LicenceError("the configured licence public key is not an Ed25519 key")
    return key


# --- issuing ---------------------------------------------------------------------


def serial_number_new(analytic_id: str, index: int, taken: set[str]) -> str:
    """A random serial like `<analytic id>03-7F2A-91BC`, unique within `taken`."""
    while True:
        serial = f"{analytic_id}{index:02d}-{secrets.token_hex(2).upper()}-{secrets.token_hex(2).upper()}"
        if serial not in taken:
            taken.add(serial)
            return serial


def licence_sign(
    *,
    private_key: Ed25519PrivateKey,
    licence_id: str,
    deployment_key: str,
    issued_at: datetime,
    expires_at: datetime,
    seats: list[LicenceSeat],
) -> tuple[str, str]:
    """(access_key, secret_key) for a licence document."""
    payload = {
        "v": PAYLOAD_VERSION,
        "licence_id": licence_id,
        "deployment_key": deployment_key,
        "issued_at": format_timestamp(issued_at),
        "expires_at": format_timestamp(expires_at),
        "seats": [{"analytic_id": s.analytic_id, "serial_number": s.serial_number} for s in seats],
    }
    body = canonical_json(payload)
    signature = private_key.sign(body)
    return ACCESS_KEY_PREFIX + licence_id, f"{SECRET_KEY_PREFIX}{_b64encode(body)}.{_b64encode(signature)}"


# --- verifying -------------------------------------------------------------------


def _nonempty_string(value: Any, name: str, limit: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise LicenceError(f"licence field {name} must be a non-empty string")
    if len(value) > limit:
        raise LicenceError(f"licence field {name} is longer than {limit} characters")
    return value


def _parse_payload(body: bytes) -> Licence:
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise LicenceError("the licence payload is not JSON") from None
    if not isinstance(payload, dict):
        raise LicenceError("the licence payload is not a JSON object")
    if payload.get("v") != PAYLOAD_VERSION or isinstance(payload.get("v"), bool):
        raise LicenceError(f"unsupported licence format version {payload.get('v')!r}")
    raw_seats = payload.get("seats")
    if not isinstance(raw_seats, list) or len(raw_seats) > MAX_SEATS:
        raise LicenceError("licence field seats must be a list")
    seats: list[LicenceSeat] = []
    serials: set[str] = set()
    for raw in raw_seats:
        if not isinstance(raw, dict):
            raise LicenceError("each licence seat must be an object")
        seat = LicenceSeat(
            analytic_id=_nonempty_string(raw.get("analytic_id"), "seats.analytic_id", 40),
            serial_number=_nonempty_string(raw.get("serial_number"), "seats.serial_number", 100),
        )
        if seat.serial_number in serials:
            raise LicenceError(f"serial number {seat.serial_number} appears twice in the licence")
        serials.add(seat.serial_number)
        seats.append(seat)
    return Licence(
        # The access key ("AKID-" + id) must fit LicenceCheckin.access_key (200).
        licence_id=_nonempty_string(payload.get("licence_id"), "licence_id", 195),
        deployment_key=_nonempty_string(payload.get("deployment_key"), "deployment_key", 100),
        issued_at=_parse_timestamp(payload.get("issued_at"), "issued_at"),
        expires_at=_parse_timestamp(payload.get("expires_at"), "expires_at"),
        seats=tuple(seats),
    )


def licence_verify(*, access_key: str, secret_key: str, public_key_setting: str, now: datetime) -> Licence:
    """The licence the credentials carry, or LicenceError: checks the format,
    the signature, that the access key names this licence and that it is in force."""
    public_key = load_public_key(public_key_setting)
    if not secret_key.startswith(SECRET_KEY_PREFIX) or len(secret_key) > MAX_SECRET_KEY_CHARS:
        raise LicenceError(f"the secret key must start with '{SECRET_KEY_PREFIX}'")
    body_text, dot, signature_text = secret_key[len(SECRET_KEY_PREFIX) :].partition(".")
    if not dot or not body_text or not signature_text:
        raise LicenceError("the secret key must be '<payload>.<signature>'")
    body = _b64decode(body_text, "payload")
    signature = _b64decode(signature_text, "signature")
    try:
        public_key.verify(signature, body)
    except InvalidSignature:
        raise LicenceError("the signature does not match the issuer's key") from None
    licence = _parse_payload(body)
    if access_key != licence.access_key:
        raise LicenceError("the access key does not match the licence")
    if licence.expires_at <= now:
        raise LicenceError(f"licence expired on {format_timestamp(licence.expires_at)}")
    return licence
