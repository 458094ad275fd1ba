"""licence_keygen and issue_licence, then a check-in with what they print."""

from __future__ import annotations

import re
import stat
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from analytics.models import Seat, SeatSource

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@pytest.fixture
def key_dir(tmp_path, settings):
    printed = run("licence_keygen", "--out", str(tmp_path / "keys"))
    private = tmp_path / "keys" / "licence_issuer_private.pem"
    public = tmp_path / "keys" / "licence_issuer_public.pem"
    assert printed == f"private key: {private}\npublic key: {public}\n"
    settings.LICENCE_PUBLIC_KEY = str(public)
    return tmp_path / "keys"


def credentials(printed: str) -> dict[str, str]:
    match = re.fullmatch(r"access_key: (AKID-\S+)\nsecret_key: (sk-\S+)\n", printed)
    assert match, printed
    return {"access_key": match[1], "secret_key": match[2]}


def test_keygen_writes_a_private_key_only_its_owner_reads(key_dir):
    private = key_dir / "licence_issuer_private.pem"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert private.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert (key_dir / "licence_issuer_public.pem").read_text().startswith("-----BEGIN PUBLIC KEY-----")


def test_keygen_does_not_overwrite_without_force(key_dir):
    before = (key_dir / "licence_issuer_private.pem").read_bytes()
    with pytest.raises(CommandError, match="a key pair already exists"):
        run("licence_keygen", "--out", str(key_dir))
    assert (key_dir / "licence_issuer_private.pem").read_bytes() == before
    run("licence_keygen", "--out", str(key_dir), "--force")
    assert (key_dir / "licence_issuer_private.pem").read_bytes() != before


def test_issued_licence_checks_in(api, key_dir):
    printed = run(
        "issue_licence",
        "--private-key",
        str(key_dir / "licence_issuer_private.pem"),
        "--deployment-key",
        "customer-1",
        "--days",
        "30",
        "--seats",
        "TEST-BRIGHT=3",
        "--seats",
        "NFV4-LPR3=2",
        "--licence-id",
        "LIC-CMD",
    )
    body = credentials(printed)
    assert body["access_key"] == "AKID-LIC-CMD"
    response = api.post("/config/checkin", body)
    assert response.status_code == 200, response.content
    checkin = response.json()["checkin"]
    assert (checkin["status"], checkin["deployment_key"]) == ("active", "customer-1")
    expires = datetime.strptime(checkin["expires_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert abs(expires - (datetime.now(UTC) + timedelta(days=30))) < timedelta(minutes=1)
    licensed = list(
        Seat.objects.filter(source=SeatSource.LICENCE).values_list("analytic_id", "serial_number")
    )
    assert sorted(a for a, _ in licensed) == ["NFV4-LPR3"] * 2 + ["TEST-BRIGHT"] * 3
    for analytic_id, serial in licensed:
        assert re.fullmatch(rf"{analytic_id}0[1-3]-[0-9A-F]{{4}}-[0-9A-F]{{4}}", serial), serial


def test_expiry_date_option(api, key_dir):
    printed = run(
        "issue_licence",
        "--private-key",
        str(key_dir / "licence_issuer_private.pem"),
        "--deployment-key",
        "customer-2",
        "--expires",
        "2099-12-31",
    )
    response = api.post("/config/checkin", credentials(printed))
    assert response.json()["checkin"]["expires_at"] == "2099-12-31T00:00:00Z"
    assert not Seat.objects.filter(source=SeatSource.LICENCE).exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--days", "0"], "--days must be at least 1"),
        (["--expires", "2001-01-01"], "--expires must be in the future"),
        (["--expires", "someday"], "--expires 'someday': expected an ISO 8601 date or timestamp"),
        (
            ["--days", "5", "--seats", "NFV4-FR"],
            "--seats 'NFV4-FR': expected ANALYTIC_ID=COUNT, e.g. MY-ANALYTIC=3",
        ),
        (["--days", "5", "--seats", "NFV4-FR=0"], "--seats 'NFV4-FR=0': count must be between 1 and 1024"),
        (["--days", "5", "--seats", "A=1", "--seats", "A=2"], "--seats: A given twice"),
        (
            ["--days", "5", "--licence-id", "a b"],
            "--licence-id may use letters, digits, '_', '.', '-' (at most 100)",
        ),
    ],
)
def test_issue_licence_refuses_bad_options(key_dir, extra, message):
    with pytest.raises(CommandError) as raised:
        run(
            "issue_licence",
            "--private-key",
            str(key_dir / "licence_issuer_private.pem"),
            "--deployment-key",
            "customer-3",
            *extra,
        )
    assert str(raised.value) == message


def test_issue_licence_needs_a_readable_private_key(tmp_path):
    with pytest.raises(CommandError, match="^cannot read the private key"):
        run(
            "issue_licence",
            "--private-key",
            str(tmp_path / "none.pem"),
            "--deployment-key",
            "k",
            "--days",
            "1",
        )
    (tmp_path / "public.pem").write_text("-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n")
    with pytest.raises(CommandError, match="^not a usable private key"):
        run(
            "issue_licence",
            "--private-key",
            str(tmp_path / "public.pem"),
            "--deployment-key",
            "k",
            "--days",
            "1",
        )
