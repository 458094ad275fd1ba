"""The admin pages of streams and pipelines render and apply the API's rules
(`admin_client` is pytest-django's logged-in superuser)."""

from __future__ import annotations

from analytics.models import Seat
from streams.models import Stream
from tests.streams.conftest import ANALYTIC


def test_stream_pages(admin_client, api, make_stream, seats):
    stream = make_stream(name="Lobby camera")
    api.post(f"/pipeline/0/{stream.stream_id}/{ANALYTIC}", {})
    serial = Seat.objects.get(pipeline__stream=stream).serial_number

    listing = admin_client.get("/admin/streams/stream/?q=Lobby&node__num__exact=0&active__exact=1")
    assert listing.status_code == 200
    assert stream.stream_id in listing.content.decode()

    change = admin_client.get(f"/admin/streams/stream/{stream.stream_id}/change/")
    assert change.status_code == 200
    assert serial in change.content.decode()

    pipelines = admin_client.get(f"/admin/streams/pipeline/?analytic__id__exact={ANALYTIC}")
    assert pipelines.status_code == 200
    assert serial in pipelines.content.decode()


def test_admin_add_generates_an_id_and_validates_the_address(admin_client, node0, media_root):
    form = {
        "node": "0",
        "name": "From admin",
        "address": "file:///etc/passwd",
        "latitude": "0",
        "longitude": "0",
        "custom_data": "{}",
        "active": "on",
    }
    refused = admin_client.post("/admin/streams/stream/add/", form)
    assert refused.status_code == 200
    assert "Invalid stream_address: a file must be under" in refused.content.decode()
    assert Stream.objects.count() == 0

    accepted = admin_client.post("/admin/streams/stream/add/", {**form, "address": "rtsp://cam/1"})
    assert accepted.status_code == 302
    stream = Stream.objects.get()
    assert len(stream.stream_id) == 16 and stream.address == "rtsp://cam/1"
