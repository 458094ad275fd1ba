"""/config/checkin: offline verification, seats across check-in and clear, and
the beat job that expires a licence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from analytics.models import Analytic, Seat, SeatSource
from platform_config import services, tasks
from platform_config.models import LicenceCheckin, PlatformConfig
from platform_config.selectors import platform_config_get, platform_config_invalidate
from streams.models import Pipeline, Stream
from tests.support.licence import Issuer, configured_issuer, new_issuer

pytestmark = pytest.mark.django_db

ANALYTIC = "TEST-BRIGHT"
SERIAL_1 = "TEST-BRIGHT01-AAAA-0001"
SERIAL_2 = "TEST-BRIGHT02-AAAA-0002"
STREAM = "5136c6c0916cd30c"
COMMUNITY = [f"COMMUNITY-{ANALYTIC}-{i:04d}" for i in range(1, 5)]


def invalid(reason: str) -> dict:
    return {"code": 400, "message": f"invalid license credentials: {reason}"}


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def issuer(settings) -> Issuer:
    return configured_issuer(settings)


@pytest.fixture
def platform_key() -> str:
    platform_config_get()
    PlatformConfig.objects.filter(pk=1).update(deployment_key="platform-own-key")
    platform_config_invalidate()
    return "platform-own-key"


@pytest.fixture
def frozen_now(monkeypatch) -> datetime:
    """Check-in time pinned so whole bodies can be compared."""
    now = datetime(2025, 6, 1, 12, 30, 15, 123456, tzinfo=UTC)
    monkeypatch.setattr(services.timezone, "now", lambda: now)
    return now


def seats(source: str | None = None) -> dict[str, bool]:
    rows = Seat.objects.filter(analytic_id=ANALYTIC)
    if source:
        rows = rows.filter(source=source)
    return dict(rows.values_list("serial_number", "active"))


# --- GET -------------------------------------------------------------------------------


def test_without_checkin_the_community_allowance_is_in_force(api, platform_key):
    response = api.get("/config/checkin")
    assert response.status_code == 200
    assert response.json() == {
        "code": 200,
        "message": "success",
        "checkin": {
            "status": "community",
            "deployment_key": "platform-own-key",
            "last_checkin_at": None,
            "expires_at": None,
        },
    }
    assert seats() == dict.fromkeys(COMMUNITY, True)


# --- POST ------------------------------------------------------------------------------


def test_checkin_puts_the_licence_in_force(api, issuer: Issuer, frozen_now, platform_key):
    expires = datetime(2026, 1, 15, 8, 0, tzinfo=UTC)
    credentials = issuer.issue(expires_at=expires, seats=[(ANALYTIC, SERIAL_1), (ANALYTIC, SERIAL_2)])
    response = api.post("/config/checkin", credentials)
    assert response.status_code == 200, response.content
    checkin = {
        "status": "active",
        "deployment_key": "my-deployment-abc123",
        "last_checkin_at": "2025-06-01T12:30:15Z",
        "expires_at": "2026-01-15T08:00:00Z",
    }
    assert response.json() == {"code": 200, "message": "checkin successful", "checkin": checkin}
    assert api.get("/config/checkin").json() == {"code": 200, "message": "success", "checkin": checkin}
    assert seats(SeatSource.LICENCE) == {SERIAL_1: True, SERIAL_2: True}
    assert seats(SeatSource.COMMUNITY) == dict.fromkeys(COMMUNITY, False)
    # The licence's deployment key is the platform's while it is checked in.
    assert api.get("/").json()["deployment_key"] == "my-deployment-abc123"
    row = LicenceCheckin.objects.get()
    assert (row.access_key, row.secret_key) == (credentials["access_key"], credentials["secret_key"])


def test_a_new_checkin_replaces_the_old_one(api, issuer: Issuer):
    first = issuer.issue(licence_id="LIC-A", seats=[(ANALYTIC, SERIAL_1), (ANALYTIC, SERIAL_2)])
    second = issuer.issue(licence_id="LIC-B", deployment_key="second-key", seats=[(ANALYTIC, SERIAL_2)])
    assert api.post("/config/checkin", first).status_code == 200
    assert api.post("/config/checkin", second).status_code == 200
    assert list(LicenceCheckin.objects.values_list("access_key", flat=True)) == ["AKID-LIC-B"]
    assert seats(SeatSource.LICENCE) == {SERIAL_1: False, SERIAL_2: True}
    assert api.get("/config/checkin").json()["checkin"]["deployment_key"] == "second-key"


def test_licence_for_an_analytic_not_installed_keeps_its_seats(api, issuer: Issuer):
    credentials = issuer.issue(seats=[("NFV4-CE", "NFV4-CE01-1234-ABCD"), (ANALYTIC, SERIAL_1)])
    assert api.post("/config/checkin", credentials).status_code == 200
    placeholder = Analytic.objects.get(id="NFV4-CE")
    assert placeholder.installed is False
    assert list(placeholder.seats.values_list("serial_number", "active")) == [("NFV4-CE01-1234-ABCD", True)]
    # Not running here, so not listed (the platform's own analytics are).
    assert [a["id"] for a in api.get("/analytic_list").json()["analytics"]] == [
        "NFV4-FR",
        "NFV4-LPR3",
        "NFV4-MPA",
        "NFV4-MVA",
        "NFV4-SS",
        ANALYTIC,
    ]


def test_tampered_signature_is_refused(api, issuer: Issuer):
    credentials = issuer.issue()
    payload, signature = credentials["secret_key"].split(".")
    flipped = ("B" if signature[0] == "A" else "A") + signature[1:]
    response = api.post("/config/checkin", {**credentials, "secret_key": f"{payload}.{flipped}"})
    assert response.status_code == 400
    assert response.json() == invalid("the signature does not match the issuer's key")
    assert not LicenceCheckin.objects.exists()
    assert seats() == dict.fromkeys(COMMUNITY, True)


def test_tampered_payload_is_refused(api, issuer: Issuer):
    import base64
    import json

    credentials = issuer.issue(seats=[(ANALYTIC, SERIAL_1)])
    payload, signature = credentials["secret_key"][3:].split(".")
    document = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    document["seats"].append({"analytic_id": ANALYTIC, "serial_number": "TEST-BRIGHT99-FREE-SEAT"})
    forged = base64.urlsafe_b64encode(json.dumps(document).encode()).rstrip(b"=").decode()
    response = api.post("/config/checkin", {**credentials, "secret_key": f"sk-{forged}.{signature}"})
    assert response.json() == invalid("the signature does not match the issuer's key")


def test_licence_from_another_issuer_is_refused(api, issuer: Issuer):
    response = api.post("/config/checkin", new_issuer().issue())
    assert response.status_code == 400
    assert response.json() == invalid("the signature does not match the issuer's key")


def test_expired_licence_is_refused(api, issuer: Issuer):
    credentials = issuer.issue(expires_at=datetime(2025, 2, 1, tzinfo=UTC))
    response = api.post("/config/checkin", credentials)
    assert response.status_code == 400
    assert response.json() == invalid("licence expired on 2025-02-01T00:00:00Z")


def test_wrong_access_key_is_refused(api, issuer: Issuer):
    credentials = issuer.issue(licence_id="LIC-A")
    response = api.post("/config/checkin", {**credentials, "access_key": "AKID-LIC-B"})
    assert response.status_code == 400
    assert response.json() == invalid("the access key does not match the licence")


def test_without_a_public_key_nothing_can_be_checked_in(api, issuer: Issuer, settings):
    settings.LICENCE_PUBLIC_KEY = ""
    response = api.post("/config/checkin", issuer.issue())
    assert response.status_code == 400
    assert response.json() == invalid("no licence public key is configured on this platform")


def test_public_key_may_be_a_file_path(api, issuer: Issuer, settings, tmp_path):
    (tmp_path / "issuer.pem").write_text(issuer.public_pem)
    settings.LICENCE_PUBLIC_KEY = str(tmp_path / "issuer.pem")
    assert api.post("/config/checkin", issuer.issue()).status_code == 200


@pytest.mark.parametrize(
    ("secret_key", "reason"),
    [
        ("sk-XXXX-YYYY-ZZZZ", "the secret key must be '<payload>.<signature>'"),
        ("XXXX.YYYY", "the secret key must start with 'sk-'"),
        ("sk-.abc", "the secret key must be '<payload>.<signature>'"),
        ("sk-a.b", "the secret key's payload is not valid base64url"),
        ("sk-@@@@.AAAA", "the secret key's payload is not valid base64url"),
    ],
)
def test_malformed_secret_key_is_refused(api, issuer: Issuer, secret_key, reason):
    response = api.post("/config/checkin", {"access_key": "AKID-XXXX-YYYY-ZZZZ", "secret_key": secret_key})
    assert response.status_code == 400
    assert response.json() == invalid(reason)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"access_key": "AKID-1"}, "missing field secret_key"),
        ({"secret_key": "sk-1"}, "missing field access_key"),
        ({"access_key": 1, "secret_key": "sk-1"}, "access_key must be a string"),
        ({"access_key": "AKID-1", "secret_key": None}, "secret_key must be a string"),
        (
            {"access_key": "AKID-1", "secret_key": "sk-1", "seats": 9},
            "unknown field 'seats' (allowed: access_key, secret_key)",
        ),
        (["AKID-1", "sk-1"], "request body must be a JSON object"),
    ],
)
def test_malformed_checkin_body_is_refused(api, issuer: Issuer, body, message):
    response = api.post("/config/checkin", body)
    assert response.status_code == 400
    assert response.json() == {"code": 400, "message": message}


def test_malformed_json_is_refused(api):
    response = api.post("/config/checkin", '{"access_key": ')
    assert response.status_code == 400
    assert response.json()["message"].startswith("malformed JSON body")


def test_seed_example_credentials_are_refused(api, issuer: Issuer):
    response = api.post(
        "/config/checkin", {"access_key": "AKID-XXXX-YYYY-ZZZZ", "secret_key": "sk-XXXX-YYYY-ZZZZ"}
    )
    assert response.status_code == 400
    assert response.json()["message"].startswith("invalid license credentials")


# --- DELETE ----------------------------------------------------------------------------


def test_clear_returns_to_the_community_allowance(api, issuer: Issuer, platform_key):
    assert api.post("/config/checkin", issuer.issue(seats=[(ANALYTIC, SERIAL_1)])).status_code == 200
    response = api.delete("/config/checkin")
    assert response.status_code == 200
    assert response.json() == {"code": 200, "message": "checkin credentials cleared"}
    assert not LicenceCheckin.objects.exists()
    assert seats(SeatSource.LICENCE) == {SERIAL_1: False}
    assert seats(SeatSource.COMMUNITY) == dict.fromkeys(COMMUNITY, True)
    assert api.get("/config/checkin").json()["checkin"] == {
        "status": "community",
        "deployment_key": "platform-own-key",
        "last_checkin_at": None,
        "expires_at": None,
    }
    assert api.get("/").json()["deployment_key"] == "platform-own-key"


def test_clear_without_a_checkin_is_harmless(api):
    response = api.delete("/config/checkin")
    assert response.status_code == 200
    assert response.json() == {"code": 200, "message": "checkin credentials cleared"}
    assert seats() == dict.fromkeys(COMMUNITY, True)


def test_checkin_refuses_put(api):
    response = api.put("/config/checkin", {})
    assert response.status_code == 405
    assert response.json() == {"code": 405, "message": "method PUT not allowed"}


# --- seats and pipelines -------------------------------------------------------------------


@pytest.fixture
def pipeline(api) -> Pipeline:
    """A pipeline created through the API on a fresh install: it holds a community seat."""
    Stream.objects.create(stream_id=STREAM, node_id=0, name="Lobby", address="rtsp://10.0.0.5/live")
    response = api.post(f"/pipeline/0/{STREAM}/{ANALYTIC}", {})
    assert response.status_code == 200, response.content
    created = Pipeline.objects.get(stream_id=STREAM, analytic_id=ANALYTIC)
    assert created.seat.serial_number == COMMUNITY[0]
    return created


def test_pipeline_moves_onto_a_licensed_seat_at_checkin_and_back_at_clear(api, issuer: Issuer, pipeline):
    assert api.post("/config/checkin", issuer.issue(seats=[(ANALYTIC, SERIAL_1)])).status_code == 200
    pipeline.refresh_from_db()
    assert (pipeline.seat.serial_number, pipeline.seat.active) == (SERIAL_1, True)
    assert Pipeline.objects.filter(pk=pipeline.pk).exists()  # still there, still running

    assert api.delete("/config/checkin").status_code == 200
    pipeline.refresh_from_db()
    assert (pipeline.seat.serial_number, pipeline.seat.active) == (COMMUNITY[0], True)
    assert Seat.objects.get(serial_number=SERIAL_1).pipeline is None


def test_licensed_seats_limit_new_pipelines(api, issuer: Issuer, pipeline):
    assert api.post("/config/checkin", issuer.issue(seats=[(ANALYTIC, SERIAL_1)])).status_code == 200
    Stream.objects.create(stream_id="0123456789abcdef", node_id=0, address="rtsp://10.0.0.6/live")
    response = api.post(f"/pipeline/0/0123456789abcdef/{ANALYTIC}", {})
    assert response.status_code == 402
    assert response.json()["message"].startswith(f"no available seat for analytic {ANALYTIC}")


def test_analytic_list_shows_licensed_seats(api, issuer: Issuer):
    assert (
        api.post(
            "/config/checkin", issuer.issue(seats=[(ANALYTIC, SERIAL_2), (ANALYTIC, SERIAL_1)])
        ).status_code
        == 200
    )
    listed = api.get("/analytic_list").json()
    assert listed["deployment_key"] == "my-deployment-abc123"
    assert [a["id"] for a in listed["analytics"]] == [
        "NFV4-FR",
        "NFV4-LPR3",
        "NFV4-MPA",
        "NFV4-MVA",
        "NFV4-SS",
        ANALYTIC,
    ]
    assert listed["analytics"][-1]["seats"] == [
        {"serial_number": SERIAL_1, "active_status": True},
        {"serial_number": SERIAL_2, "active_status": True},
    ]
    assert api.delete("/config/checkin").status_code == 200
    assert api.get("/analytic_list").json()["analytics"][-1]["seats"] == [
        *({"serial_number": serial, "active_status": True} for serial in COMMUNITY),
        {"serial_number": SERIAL_1, "active_status": False},
        {"serial_number": SERIAL_2, "active_status": False},
    ]


# --- expiry --------------------------------------------------------------------------------


def expire_now(checkin_expires_in: timedelta = timedelta(seconds=-1)) -> None:
    LicenceCheckin.objects.update(expires_at=timezone.now() + checkin_expires_in)


def test_beat_task_expires_an_overdue_licence(api, issuer: Issuer, pipeline):
    assert api.post("/config/checkin", issuer.issue(seats=[(ANALYTIC, SERIAL_1)])).status_code == 200
    assert tasks.licence_expire.apply().get() is False  # not due yet
    assert LicenceCheckin.objects.get().status == "active"

    expire_now()
    # Before the job runs, the route already tells the truth.
    assert api.get("/config/checkin").json()["checkin"]["status"] == "expired"
    assert tasks.licence_expire.apply().get() is True
    row = LicenceCheckin.objects.get()
    assert row.status == "expired"
    assert seats(SeatSource.LICENCE) == {SERIAL_1: False}
    assert seats(SeatSource.COMMUNITY) == dict.fromkeys(COMMUNITY, True)
    pipeline.refresh_from_db()
    assert pipeline.seat.serial_number == COMMUNITY[0]
    assert api.get("/config/checkin").json() == {
        "code": 200,
        "message": "success",
        "checkin": {
            "status": "expired",
            "deployment_key": "my-deployment-abc123",
            "last_checkin_at": stamp(row.last_checkin_at),
            "expires_at": stamp(row.expires_at),
        },
    }
    assert tasks.licence_expire.apply().get() is False  # once only


def test_beat_task_without_a_licence_does_nothing():
    assert services.licence_expire_overdue() is False
    assert seats() == dict.fromkeys(COMMUNITY, True)


def test_beat_schedule_runs_the_expiry_job(settings):
    from visionaire_site.celery import app

    entry = settings.CELERY_BEAT_SCHEDULE["licence-expiry"]
    assert entry["task"] == tasks.licence_expire.name
    assert entry["schedule"] <= 60
    assert tasks.licence_expire.name in app.tasks
