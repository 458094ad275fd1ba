"""Admin pages for analytics and seats."""

from __future__ import annotations

import pytest
from django.contrib.admin.sites import site

from analytics.models import Analytic, Seat

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "url",
    [
        "/admin/analytics/analytic/",
        "/admin/analytics/analytic/?installed__exact=1",
        "/admin/analytics/analytic/TEST-BRIGHT/change/",
        "/admin/analytics/seat/",
        "/admin/analytics/seat/?source__exact=community&active__exact=1",
        "/admin/analytics/seat/?q=COMMUNITY-TEST-BRIGHT-0002",
    ],
)
def test_admin_pages_render(admin_client, url):
    assert admin_client.get(url).status_code == 200


def test_seat_search_finds_by_serial(admin_client):
    response = admin_client.get("/admin/analytics/seat/?q=COMMUNITY-TEST-BRIGHT-0002")
    assert list(response.context["cl"].result_list) == [
        Seat.objects.get(serial_number="COMMUNITY-TEST-BRIGHT-0002")
    ]


def test_analytics_mirror_code_and_are_read_only(rf, admin_user):
    admin = site._registry[Analytic]
    request = rf.get("/admin/")
    request.user = admin_user
    analytic = Analytic.objects.get(id="TEST-BRIGHT")
    assert admin.has_add_permission(request) is False
    assert admin.has_delete_permission(request, analytic) is False
    assert set(admin.get_readonly_fields(request, analytic)) == {f.name for f in Analytic._meta.fields}


def test_seats_are_read_only(rf, admin_user):
    # Taken and freed by pipelines, made by the community allowance and the licence check-in.
    admin = site._registry[Seat]
    request = rf.get("/admin/")
    request.user = admin_user
    seat = Seat.objects.first()
    assert admin.has_add_permission(request) is False
    assert admin.has_change_permission(request, seat) is False
    assert admin.has_delete_permission(request, seat) is False
    assert admin.has_view_permission(request, seat) is True
