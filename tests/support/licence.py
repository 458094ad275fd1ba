"""An issuer key pair for tests, and licences signed with it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from platform_config.licence import LicenceSeat, generate_key_pair, licence_sign, load_private_key

ISSUED_AT = datetime(2025, 1, 15, 8, 0, tzinfo=UTC)


@dataclass
class Issuer:
    private_key: Ed25519PrivateKey
    public_pem: str

    def issue(
        self,
        *,
        licence_id: str = "LIC-0001",
        deployment_key: str = "my-deployment-abc123",
        expires_at: datetime | None = None,
        seats: list[tuple[str, str]] | None = None,
    ) -> dict[str, str]:
        """Credentials as POST /config/checkin takes them."""
        access_key, secret_key = licence_sign(
            private_key=self.private_key,
            licence_id=licence_id,
            deployment_key=deployment_key,
            issued_at=ISSUED_AT,
            expires_at=expires_at or datetime.now(UTC).replace(microsecond=0) + timedelta(days=365),
            seats=[LicenceSeat(a, s) for a, s in (seats or [("TEST-BRIGHT", "TEST-BRIGHT01-AAAA-0001")])],
        )
        return {"access_key": access_key, "secret_key": secret_key}


def new_issuer() -> Issuer:
    private_pem, public_pem = generate_key_pair()
    return Issuer(private_key=load_private_key(private_pem), public_pem=public_pem.decode())


def configured_issuer(settings) -> Issuer:
    """A fresh issuer whose public key the platform is configured with (pass
    pytest-django's `settings` fixture, which restores it after the test)."""
    made = new_issuer()
    settings.LICENCE_PUBLIC_KEY = made.public_pem
    return made
