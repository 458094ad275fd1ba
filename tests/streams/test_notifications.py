"""Desired-state changes reach the owning node through Redis after commit."""

from __future__ import annotations

import json
import logging

import pytest
import redis

from live.keys import control_queue
from streams import services
from streams.services import CONTROL_QUEUE_MAX

from .conftest import ANALYTIC


def queued(redis_client, node_num=0) -> list[dict]:
    """Messages queued for a node, oldest first."""
    return [json.loads(raw) for raw in reversed(redis_client.lrange(control_queue(node_num), 0, -1))]


@pytest.fixture
def commits(django_capture_on_commit_callbacks):
    """Run on_commit callbacks as a real commit would (tests run inside a transaction)."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


def test_stream_lifecycle_messages(api, node0, redis_client, commits):
    with commits():
        stream_id = api.post("/streams/0", {"stream_address": "rtsp://cam/1"}).json()["stream_id"]
    with commits():
        api.put(f"/streams/0/{stream_id}", {"stream_name": "Lobby"})
    with commits():
        api.put(f"/streams/0/{stream_id}", {"active": False})
    with commits():
        api.put(f"/streams/0/{stream_id}", {"active": True})
    with commits():
        api.delete(f"/streams/0/{stream_id}")
    assert queued(redis_client) == [
        {"v": 1, "action": "start", "stream_id": stream_id},
        {"v": 1, "action": "reload", "stream_id": stream_id},
        {"v": 1, "action": "stop", "stream_id": stream_id},
        {"v": 1, "action": "start", "stream_id": stream_id},
        {"v": 1, "action": "stop", "stream_id": stream_id},
    ]


def test_an_inactive_stream_gets_no_messages_until_it_is_activated(api, node0, seats, redis_client, commits):
    with commits():
        stream_id = api.post("/streams/0", {"stream_address": "rtsp://cam/1", "active": False}).json()[
            "stream_id"
        ]
    with commits():
        api.put(f"/streams/0/{stream_id}", {"stream_name": "still stopped"})
    with commits():
        api.post(f"/pipeline/0/{stream_id}/{ANALYTIC}", {})
    with commits():
        api.delete(f"/pipeline/0/{stream_id}/{ANALYTIC}")
    with commits():
        api.delete(f"/streams/0/{stream_id}")
    assert queued(redis_client) == []


def test_pipeline_changes_reload_the_stream(api, make_stream, seats, redis_client, commits):
    stream = make_stream()
    with commits():
        api.post(f"/pipeline/0/{stream.stream_id}/{ANALYTIC}", {})
    with commits():
        api.delete(f"/pipeline/0/{stream.stream_id}/{ANALYTIC}")
    assert queued(redis_client) == [
        {"v": 1, "action": "reload", "stream_id": stream.stream_id},
        {"v": 1, "action": "reload", "stream_id": stream.stream_id},
    ]


def test_messages_go_to_the_owning_node(api, node1, redis_client, commits):
    with commits():
        stream_id = api.post("/streams/1", {"stream_address": "rtsp://cam/1"}).json()["stream_id"]
    assert queued(redis_client, 0) == []
    assert queued(redis_client, 1) == [{"v": 1, "action": "start", "stream_id": stream_id}]


def test_failed_requests_send_nothing(api, make_stream, seats, redis_client, commits, max_streams):
    stream = make_stream()
    max_streams(1)
    with commits() as callbacks:
        assert api.post("/streams/0", {"stream_address": "rtsp://cam/2"}).status_code == 400
        assert api.put(f"/streams/0/{stream.stream_id}", {"stream_address": "ftp://x"}).status_code == 400
        assert api.post(f"/pipeline/0/{stream.stream_id}/{ANALYTIC}", {"nope": 1}).status_code == 400
        assert api.delete(f"/pipeline/0/{stream.stream_id}/{ANALYTIC}").status_code == 404
    assert callbacks == []
    assert queued(redis_client) == []


def test_nothing_is_sent_before_commit(api, node0, redis_client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        api.post("/streams/0", {"stream_address": "rtsp://cam/1"})
    assert len(callbacks) == 1
    assert queued(redis_client) == []


def test_a_waiting_worker_receives_the_message(api, node0, redis_client, commits):
    """The worker blocks on the queue (BRPOP), oldest message first."""
    with commits():
        stream_id = api.post("/streams/0", {"stream_address": "rtsp://cam/1"}).json()["stream_id"]
    with commits():
        api.delete(f"/streams/0/{stream_id}")
    first = redis_client.brpop(control_queue(0), timeout=5)
    second = redis_client.brpop(control_queue(0), timeout=5)
    assert first[0] == "visionaire:control:node:0:queue"
    assert json.loads(first[1]) == {"v": 1, "action": "start", "stream_id": stream_id}
    assert json.loads(second[1]) == {"v": 1, "action": "stop", "stream_id": stream_id}


def test_the_queue_is_bounded_and_keeps_the_newest(redis_client):
    for index in range(CONTROL_QUEUE_MAX + 5):
        services.node_control_publish(node_num=3, action="reload", stream_id=f"{index:016x}")
    assert redis_client.llen("visionaire:control:node:3:queue") == CONTROL_QUEUE_MAX
    newest = json.loads(redis_client.lindex("visionaire:control:node:3:queue", 0))
    oldest = json.loads(redis_client.lindex("visionaire:control:node:3:queue", -1))
    assert newest == {"v": 1, "action": "reload", "stream_id": f"{CONTROL_QUEUE_MAX + 4:016x}"}
    assert oldest == {"v": 1, "action": "reload", "stream_id": f"{5:016x}"}


def test_a_lost_redis_does_not_fail_the_committed_write(monkeypatch, caplog):
    class Unreachable:
        def pipeline(self, **_kwargs):
            raise redis.ConnectionError("Connection refused")

    monkeypatch.setattr(services, "get_redis", Unreachable)
    with caplog.at_level(logging.ERROR, logger="streams.services"):
        services.node_control_publish(node_num=0, action="stop", stream_id="0123456789abcdef")
    assert "could not notify node 0 to stop stream 0123456789abcdef" in caplog.text
