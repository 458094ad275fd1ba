"""platform_config.licence: signing and offline verification, without the database."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest

from platform_config.licence import (
    Licence,
    LicenceError,
    LicenceSeat,
    canonical_json,
    format_timestamp,
    licence_verify,
    load_public_key,
    serial_number_new,
)
from tests.support.licence import ISSUED_AT, new_issuer

NOW = datetime(2025, 6, 1, tzinfo=UTC)
EXPIRES = datetime(2026, 1, 15, 8, tzinfo=UTC)


def sign_raw(issuer, document: dict) -> str:
    body = canonical_json(document)
    signature = issuer.private_key.sign(body)
    encode = lambda data: base64.urlsafe_b64encode(data).rstrip(b"=").decode()  # noqa: E731
    return f"sk-{encode(body)}.{encode(signature)}"


def verify(issuer, access_key: str, secret_key: str) -> Licence:
    return licence_verify(
        access_key=access_key, secret_key=secret_key, public_key_setting=issuer.public_pem, now=NOW
    )


def test_round_trip():
    issuer = new_issuer()
    credentials = issuer.issue(
        licence_id="LIC-9", expires_at=EXPIRES, seats=[("NFV4-FR", "NFV4-FR01-AB12-CD34")]
    )
    assert credentials["access_key"] == "AKID-LIC-9"
    assert credentials["secret_key"].startswith("sk-")
    assert verify(issuer, **credentials) == Licence(
        licence_id="LIC-9",
        deployment_key="my-deployment-abc123",
        issued_at=ISSUED_AT,
        expires_at=EXPIRES,
        seats=(LicenceSeat("NFV4-FR", "NFV4-FR01-AB12-CD34"),),
    )


def test_payload_is_the_documented_json():
    issuer = new_issuer()
    secret = issuer.issue(licence_id="LIC-9", expires_at=EXPIRES, seats=[("NFV4-FR", "S-1")])["secret_key"]
    payload = secret[3:].split(".")[0]
    assert json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))) == {
        "v": 1,
        "licence_id": "LIC-9",
        "deployment_key": "my-deployment-abc123",
        "issued_at": "2025-01-15T08:00:00Z",
        "expires_at": "2026-01-15T08:00:00Z",
        "seats": [{"analytic_id": "NFV4-FR", "serial_number": "S-1"}],
    }


GOOD = {
    "v": 1,
    "licence_id": "L",
    "deployment_key": "d",
    "issued_at": "2025-01-15T08:00:00Z",
    "expires_at": "2026-01-15T08:00:00Z",
    "seats": [],
}


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"v": 2}, "unsupported licence format version 2"),
        ({"v": True}, "unsupported licence format version True"),
        ({"licence_id": ""}, "licence field licence_id must be a non-empty string"),
        ({"deployment_key": 5}, "licence field deployment_key must be a non-empty string"),
        ({"deployment_key": "k" * 101}, "licence field deployment_key is longer than 100 characters"),
        ({"expires_at": "soon"}, "licence field expires_at is not an ISO 8601 timestamp"),
        ({"expires_at": "2026-01-15T08:00:00"}, "licence field expires_at must carry a time zone"),
        ({"issued_at": 0}, "licence field issued_at must be an ISO 8601 string"),
        ({"seats": {}}, "licence field seats must be a list"),
        ({"seats": ["x"]}, "each licence seat must be an object"),
        ({"seats": [{"analytic_id": "A"}]}, "licence field seats.serial_number must be a non-empty string"),
        (
            {
                "seats": [
                    {"analytic_id": "A", "serial_number": "S"},
                    {"analytic_id": "B", "serial_number": "S"},
                ]
            },
            "serial number S appears twice in the licence",
        ),
    ],
)
def test_signed_but_malformed_documents_are_refused(changes, reason):
    issuer = new_issuer()
    secret = sign_raw(issuer, {**GOOD, **changes})
    with pytest.raises(LicenceError) as raised:
        verify(issuer, "AKID-L", secret)
    assert str(raised.value) == reason


def test_signed_non_json_is_refused():
    issuer = new_issuer()
    body = b"not json"
    encode = lambda data: base64.urlsafe_b64encode(data).rstrip(b"=").decode()  # noqa: E731
    secret = f"sk-{encode(body)}.{encode(issuer.private_key.sign(body))}"
    with pytest.raises(LicenceError, match="^the licence payload is not JSON$"):
        verify(issuer, "AKID-L", secret)


def test_expiry_is_exclusive():
    issuer = new_issuer()
    credentials = issuer.issue(expires_at=NOW)
    with pytest.raises(LicenceError, match="^licence expired on 2025-06-01T00:00:00Z$"):
        verify(issuer, **credentials)
    assert verify(issuer, **issuer.issue(expires_at=NOW + timedelta(seconds=1))).expires_at > NOW


@pytest.mark.parametrize(
    ("configured", "reason"),
    [
        ("", "no licence public key is configured on this platform"),
        ("   ", "no licence public key is configured on this platform"),
        ("/nonexistent/issuer.pem", "the configured licence public key file cannot be read"),
        (
            "-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----",
            "the configured licence public key is not a valid PEM public key",
        ),
    ],
)
def test_public_key_problems(configured, reason):
    with pytest.raises(LicenceError) as raised:
        load_public_key(configured)
    assert str(raised.value) == reason


def test_a_non_ed25519_public_key_is_refused():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(LicenceError, match="^the configured licence public key is not an Ed25519 key$"):
        load_public_key(pem.decode())


def test_serial_numbers_look_like_the_vendors_and_are_unique():
    taken: set[str] = set()
    serials = [serial_number_new("NFV4-FR", 3, taken) for _ in range(200)]
    assert len(set(serials)) == 200
    assert all(__import__("re").fullmatch(r"NFV4-FR03-[0-9A-F]{4}-[0-9A-F]{4}", s) for s in serials)


def test_timestamps_are_utc_seconds_with_z():
    from zoneinfo import ZoneInfo

    moment = datetime(2025, 1, 15, 15, 0, 0, 999999, tzinfo=ZoneInfo("Asia/Jakarta"))
    assert format_timestamp(moment) == "2025-01-15T08:00:00Z"
