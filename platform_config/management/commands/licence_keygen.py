"""Create an issuer key pair for signing licences (kept by the issuer, not the platform)."""

from __future__ import annotations

import os
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from platform_config.licence import generate_key_pair

PRIVATE_NAME = "licence_issuer_private.pem"
PUBLIC_NAME = "licence_issuer_public.pem"


class Command(BaseCommand):
    help = (
        "Write a new Ed25519 issuer key pair to DIR: the private key signs licences (issue_licence), "
        "the public key goes in the platform's VISIONAIRE_LICENCE_PUBLIC_KEY."
    )

    def add_arguments(self, parser):
        parser.add_argument("--out", required=True, help="Directory to write the two PEM files to.")
        parser.add_argument("--force", action="store_true", help="Overwrite an existing key pair.")

    def handle(self, *args, out: str, force: bool, **options):
        directory = Path(out).expanduser()
        directory.mkdir(parents=True, exist_ok=True)
        private_path, public_path = directory / PRIVATE_NAME, directory / PUBLIC_NAME
        if not force and (private_path.exists() or public_path.exists()):
            raise CommandError(f"a key pair already exists in {directory} (use --force to replace it)")
        private_pem, public_pem = generate_key_pair()
        # The private key is created owner-only from the start, never world-readable.
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(private_pem)
        public_path.write_bytes(public_pem)
        self.stdout.write(f"private key: {private_path}")
        self.stdout.write(f"public key: {public_path}")
