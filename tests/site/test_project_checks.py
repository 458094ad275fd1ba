"""Checks that keep the code and its migrations in step."""

import io

import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_models_and_migrations_agree():
    out = io.StringIO()
    # --check exits non-zero (SystemExit) when a model change has no migration.
    call_command("makemigrations", "--check", "--dry-run", stdout=out)


def test_django_system_checks_pass():
    call_command("check", fail_level="WARNING")
