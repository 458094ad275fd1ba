"""Bounded database connections and outages as 503s (visionaire_site.db, core.db,
core.outage).

The pool and the gate are exercised against real servers: a closed port (a
server that is gone), and the test database with a pool of one held by another
thread (a full pool). The route tests put this process's gate in the state it
reaches when the server is gone, so every new connection fails as it then does;
tests/site/test_outage_e2e.py kills the real server under a running platform.
"""

from __future__ import annotations

import gc
import socket
import threading
import time

import pytest
import redis as redis_lib
from asgiref.sync import async_to_sync
from django.db import OperationalError, connection, connections
from psycopg.conninfo import make_conninfo

from core.db import DatabaseBusy, DatabaseUnavailable, database_outage
from events.models import Event
from platform_config.models import Node
from streams import services as stream_services
from tests.events.websocket import WebsocketCommunicator
from visionaire_site import db as db_module
from visionaire_site.asgi import application
from visionaire_site.endpoints import database_settings

transactional = pytest.mark.django_db(transaction=True)
UNAVAILABLE = {"code": 503, "message": "database unavailable"}


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def gate():
    """A fresh gate for this process (the module's one is restored afterwards)."""
    import visionaire_site.db.base as base

    saved = db_module.GATE
    fresh = db_module.ServerGate()
    db_module.GATE = base.GATE = fresh
    yield fresh
    db_module.GATE = base.GATE = saved


@pytest.fixture
def wrappers():
    """`make(alias, url, **pool)`: a database wrapper like the ones Django makes for
    `default`, of an alias Django does not know (so that the test database stays the
    only one the test case manages). Wrappers of one alias share one pool."""
    from django.contrib.postgres.signals import register_type_handlers
    from django.db.backends.signals import connection_created

    from visionaire_site.db.base import DatabaseWrapper

    made: list[DatabaseWrapper] = []
    # django.contrib.postgres looks its hstore type up through connections[alias].
    connection_created.disconnect(register_type_handlers)

    def make(name: str, url: str, **pool) -> DatabaseWrapper:
        entry = connections.configure_settings({"default": database_settings(url, **pool)})["default"]
        wrapper = DatabaseWrapper(entry, alias=name)
        made.append(wrapper)
        return wrapper

    yield make
    connection_created.connect(register_type_handlers)
    for name in {wrapper.alias for wrapper in made}:
        pool = DatabaseWrapper._connection_pools.pop(name, None)
        if pool is not None:
            pool.close()


@pytest.mark.django_db  # (allows connecting; this test's server is not the test database)
def test_a_server_that_is_gone_fails_at_once_not_after_the_whole_wait(gate, wrappers):
    url = f"postgresql://postgres@127.0.0.1:{closed_port()}/x"
    wrapper = wrappers("gone", url, pool_max=2, pool_wait_seconds=30)
    started = time.monotonic()
    with pytest.raises(OperationalError) as first:
        wrapper.ensure_connection()
    assert isinstance(first.value.__cause__, DatabaseUnavailable)
    assert database_outage(first.value) == "database unavailable"
    assert time.monotonic() - started < 15  # one pool slice and one probe, far from the 30 s wait
    assert gate.down
    # While it is known down, connecting fails at once (no probe, no pool wait).
    started = time.monotonic()
    with pytest.raises(OperationalError):
        wrapper.ensure_connection()
    assert time.monotonic() - started < 0.5


@transactional
def test_a_full_pool_makes_a_request_wait_then_answers_busy(gate, wrappers, settings):
    test_database = make_conninfo(settings.DATABASE_URL, dbname=connection.settings_dict["NAME"])

    def pool_of_one():
        return wrappers("pool-of-one", test_database, pool_min=0, pool_max=1, pool_wait_seconds=1)

    settings.DB_POOL_TIMEOUT_SECONDS = 1.5  # two slices of the pool's own 1 s wait
    held, release = threading.Event(), threading.Event()
    failures: list[BaseException] = []

    def hold() -> None:  # another thread takes the pool's only connection until told
        holder = pool_of_one()
        try:
            holder.ensure_connection()
        except BaseException as exc:
            failures.append(exc)
            raise
        held.set()
        release.wait(30)
        holder.close()

    holder = threading.Thread(target=hold)
    holder.start()
    waiter = pool_of_one()
    try:
        assert held.wait(30), failures
        started = time.monotonic()
        with pytest.raises(OperationalError) as caught:
            waiter.ensure_connection()
        waited = time.monotonic() - started
        assert isinstance(caught.value.__cause__, DatabaseBusy)
        busy = "database busy: no free database connection within 1.5s (pool full)"
        assert database_outage(caught.value) == busy
        assert waited >= 1.4  # it waited for a connection before giving up
        assert not gate.down  # the server answered: busy is not an outage

        # Given back, the connection serves the one that waits.
        threading.Timer(0.3, release.set).start()
        waiter.ensure_connection()
        with waiter.cursor() as cursor:
            cursor.execute("SELECT 1")
            assert cursor.fetchone() == (1,)
    finally:
        release.set()
        holder.join(30)
        waiter.close()


@transactional
def test_a_thread_that_ends_holding_a_connection_gives_it_back_to_the_pool():
    pool = connection.pool
    Event.objects.count()  # this thread's connection
    in_use = pool.get_stats()["pool_size"] - pool.get_stats()["pool_available"]

    def forgetful():
        Event.objects.count()  # and no connection.close()

    for _ in range(pool.max_size + 2):  # more threads than the pool has connections
        thread = threading.Thread(target=forgetful)
        thread.start()
        thread.join(30)
        gc.collect()
    stats = pool.get_stats()
    assert stats["pool_size"] - stats["pool_available"] == in_use


# --- routes ---------------------------------------------------------------------------


@pytest.fixture
def database_down(gate, monkeypatch):
    """This process's gate as it is once the server is found gone: every new
    connection raises DatabaseUnavailable at once, and no probe says otherwise."""
    gate.mark_down("connection refused")
    monkeypatch.setattr(gate, "server_answers", lambda probe: False)
    connections.close_all()  # the next query needs a new connection
    return gate


@pytest.fixture
def stream(db, media_root):
    return stream_services.stream_create(node=Node.objects.get(num=0), address="rtsp://127.0.0.1:8554/lobby")


@pytest.fixture
def media_root(tmp_path, settings):
    settings.STREAM_MEDIA_ROOT = str(tmp_path)
    return tmp_path


@transactional
def test_routes_answer_503_while_the_database_is_down_and_recover(api, stream, database_down, monkeypatch):
    sid = stream.stream_id
    calls = [
        ("get", "/"),
        ("get", "/streams"),
        ("get", f"/streams/0/{sid}"),
        ("post", "/streams/0"),
        ("put", f"/streams/0/{sid}"),
        ("delete", f"/streams/0/{sid}"),
        ("get", "/node_status"),
        ("get", "/events"),
        ("get", "/config/platform"),
        ("get", f"/stream_jpeg/0/{sid}"),  # an async view
        ("get", f"/mjpeg/0/{sid}"),
    ]
    for method, path in calls:
        body = {"stream_address": "rtsp://127.0.0.1:8554/gate"} if method in ("post", "put") else None
        response = getattr(api, method)(path, body) if body else getattr(api, method)(path)
        assert (response.status_code, response.json()) == (503, UNAVAILABLE), (method, path)

    # /metrics still answers, with the process's own series and the database marked down.
    response = api.get("/metrics")
    assert response.status_code == 200
    assert "visionaire_database_up 0.0" in response.content.decode()

    async def live_channel():
        client = WebsocketCommunicator(application, f"/event_channel/0/{sid}")
        assert await client.connect(timeout=10) == (True, None)
        closed = await client.receive_output(timeout=10)
        await client.disconnect()
        return closed

    assert async_to_sync(live_channel)() == {
        "type": "websocket.close",
        "code": 4503,
        "reason": "database unavailable",
    }

    # The server is back: the next request works, nothing to reset.
    monkeypatch.undo()
    database_down.mark_up()
    assert api.get("/streams").status_code == 200
    assert api.get(f"/streams/0/{sid}").status_code == 200
    assert "visionaire_database_up 1.0" in api.get("/metrics").content.decode()


@transactional
def test_a_redis_outage_outside_the_live_figures_is_a_503_too(api, monkeypatch):
    from platform_config import selectors

    down = redis_lib.Redis(port=closed_port(), socket_connect_timeout=0.2)
    monkeypatch.setattr(selectors, "get_redis", lambda: down)
    response = api.post("/config/platform", {"log_level": "info"})
    assert (response.status_code, response.json()) == (503, {"code": 503, "message": "redis unavailable"})


@pytest.mark.django_db
def test_the_live_channel_is_closed_with_4503_when_redis_is_down(settings):
    from channels.layers import channel_layers

    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [f"redis://127.0.0.1:{closed_port()}/0"]},
        }
    }
    channel_layers.backends.clear()
    try:

        async def live_channel():
            client = WebsocketCommunicator(application, "/event_channel")
            assert await client.connect(timeout=20) == (True, None)
            closed = await client.receive_output(timeout=20)
            await client.disconnect()
            return closed

        assert async_to_sync(live_channel)() == {
            "type": "websocket.close",
            "code": 4503,
            "reason": "redis unavailable",
        }
    finally:
        channel_layers.backends.clear()


@pytest.mark.django_db
def test_a_statement_that_lost_to_the_database_is_busy_not_unavailable(settings):
    from psycopg import errors

    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL statement_timeout = '50ms'")
        with pytest.raises(OperationalError) as caught:
            cursor.execute("SELECT pg_sleep(2)")
    assert isinstance(caught.value.__cause__, errors.QueryCanceled)
    assert database_outage(caught.value) == ("database busy: canceling statement due to statement timeout")
    assert database_outage(ValueError("not a database error")) is None
