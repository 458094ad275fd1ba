"""Bearer tokens: what a request carries and whether it is one of the configured
API tokens. Used by the HTTP middleware and by the live event channel."""

from __future__ import annotations

import secrets

from django.conf import settings


def token_is_valid(candidate: str) -> bool:
    return any(secrets.compare_digest(candidate.encode(), token.encode()) for token in settings.API_TOKENS)


def bearer_token(header: str) -> str:
    """The token of an `Authorization: Bearer <token>` header; "" for another
    scheme. The scheme name is case-insensitive (RFC 7235)."""
    scheme, _, token = header.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""
