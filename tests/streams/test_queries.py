"""List and detail routes use a fixed number of SQL queries, whatever the size."""

from __future__ import annotations

import pytest

from analytics.models import Analytic, Seat
from streams.models import Pipeline, Stream
from streams.services import stream_id_new


def add_streams(node, count: int) -> None:
    Stream.objects.bulk_create(
        Stream(stream_id=stream_id_new(), node=node, address=f"rtsp://cam/{index}") for index in range(count)
    )


@pytest.mark.parametrize("count", [1, 200])
def test_list_all_is_one_query(api, node0, node1, django_assert_num_queries, count):
    add_streams(node0, count)
    add_streams(node1, count)
    api.get("/streams")  # warm the process-wide configuration cache
    with django_assert_num_queries(1):
        body = api.get("/streams").json()
    assert body["stream_number"] == 2 * count


@pytest.mark.parametrize("count", [1, 200])
def test_list_of_a_node_is_two_queries(api, node0, django_assert_num_queries, count):
    add_streams(node0, count)
    api.get("/streams/0")
    with django_assert_num_queries(2):  # the node, then its streams
        body = api.get("/streams/0").json()
    assert body["stream_number"] == count


@pytest.mark.parametrize("pipelines", [0, 1, 5])
def test_detail_is_three_queries(api, make_stream, django_assert_num_queries, pipelines):
    stream = make_stream()
    for index in range(pipelines):
        analytic = Analytic.objects.create(
            id=f"EXTRA-{index}", name="Extra", major_version=1, minor_version=0, publisher="Tests", type="x"
        )
        pipeline = Pipeline.objects.create(stream=stream, analytic=analytic, config={})
        Seat.objects.create(
            analytic=analytic, serial_number=f"EXTRA-{index}-1", source="licence", pipeline=pipeline
        )
    api.get(f"/streams/0/{stream.stream_id}")
    with django_assert_num_queries(3):  # node, stream, pipelines with their seats
        body = api.get(f"/streams/0/{stream.stream_id}").json()
    assert body["pipelines"] == [f"EXTRA-{index}" for index in range(pipelines)]
    assert body["seats"] == [
        {"analytic_id": f"EXTRA-{index}", "serial_number": f"EXTRA-{index}-1"} for index in range(pipelines)
    ]


def test_list_items_read_as_rows_equal_the_documented_serializer(node0, node1):
    from streams.selectors import stream_list, stream_list_items
    from streams.serializers import StreamItemSerializer

    Stream.objects.create(
        stream_id=stream_id_new(),
        node=node0,
        name="Lobby ü",
        address="rtsp://cam/1",
        latitude=-6.261376,
        longitude=106.823648,
        custom_data={"floor": 2, "tags": ["a", None], "nested": {"x": 1.5}},
        active=False,
    )
    Stream.objects.create(stream_id=stream_id_new(), node=node1, address="/videos/a.mp4", latitude=0)
    for node in (None, node0, node1):
        assert stream_list_items(node=node) == StreamItemSerializer(stream_list(node=node), many=True).data
    assert len(stream_list_items()) == 2
