"""Fixtures for the admin tests: a superuser logged in through the admin's own
login page, and the stream fixtures of the API tests."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import NON_FIELD_ERRORS
from django.test import Client
from django.utils.html import escape

from live.keys import control_queue
from tests.streams.conftest import make_stream, max_streams, media_root, node0, node1, seats  # noqa: F401

ADMIN_PASSWORD = "admin-test-password"


@pytest.fixture
def admin_web(db) -> Client:
    """Django's test client logged in as a superuser at /admin/login/."""
    get_user_model().objects.create_superuser("root", "root@example.com", ADMIN_PASSWORD)
    client = Client()
    response = client.post(
        "/admin/login/", {"username": "root", "password": ADMIN_PASSWORD, "next": "/admin/"}
    )
    assert response.status_code == 302 and response["Location"] == "/admin/", response.content[:500]
    return client


@pytest.fixture
def commits(django_capture_on_commit_callbacks):
    """Run on_commit callbacks as a real commit would (tests run inside a transaction)."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


def queued(redis_client, node_num: int = 0) -> list[dict]:
    """Control messages queued for a node, oldest first."""
    return [json.loads(raw) for raw in reversed(redis_client.lrange(control_queue(node_num), 0, -1))]


def field_errors(response, field: str | None) -> list[str]:
    """The errors the admin form page shows on `field` (None: the form's own),
    after checking that each is on the page as written."""
    form = response.context["adminform"].form
    found = [str(message) for message in form.errors.get(field or NON_FIELD_ERRORS, [])]
    html = response.content.decode()
    for message in found:
        assert escape(message) in html, f"{message!r} is not on the page"
    return found
