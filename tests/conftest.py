"""Shared fixtures. Tests run against real PostgreSQL and Redis (the launcher's
`test` command starts embedded ones, or uses DATABASE_URL / REDIS_URL)."""

from __future__ import annotations

import json

import pytest
from channels.layers import channel_layers
from django.test import Client

from live.redis import get_redis
from platform_config import selectors as config_selectors

pytest_plugins = ["tests.support.fixtures"]

# Tests that use these start real servers, threads that decode video, or processes (RTSP
# servers, a browser, the embedded PostgreSQL and Redis); modules that spawn worker or API
# processes say so with `pytestmark = pytest.mark.e2e`. `python3 visionaire.py test --quick` leaves them out.
E2E_FIXTURES = {
    "rtsp_server",
    "rtsp_file_server",
    "browser",
    "live_server",
    "server_dir",
    "asgi_server",  # uvicorn serving the platform, in a thread
    "runners",  # stream runners decoding real video, in threads
    "sources",  # capture threads decoding real video
}


def pytest_collection_modifyitems(items):
    for item in items:
        if E2E_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.e2e)


class JsonClient(Client):
    """Django's test client speaking JSON by default."""

    def _json(self, method, path, data=None, **extra):
        if data is not None and not isinstance(data, (str, bytes)):
            data = json.dumps(data)
        return getattr(super(), method)(path, data=data, content_type="application/json", **extra)

    def post(self, path, data=None, **extra):
        return self._json("post", path, data, **extra)

    def put(self, path, data=None, **extra):
        return self._json("put", path, data, **extra)

    def patch(self, path, data=None, **extra):
        return self._json("patch", path, data, **extra)

    def delete(self, path, data=None, **extra):
        return self._json("delete", path, data, **extra)


@pytest.fixture
def api() -> JsonClient:
    return JsonClient()


@pytest.fixture(autouse=True)
def clean_live_state():
    """Each test starts with empty Redis and no cached platform configuration."""
    redis = get_redis()
    redis.flushdb()
    config_selectors._cache.update(version=None, config=None)
    yield
    redis.flushdb()
    config_selectors._cache.update(version=None, config=None)


@pytest.fixture(autouse=True)
def fresh_channel_layer():
    """Each test gets its own channel layer instance.

    The process-wide layer outlives the event loop of each `async_to_sync` call, and
    channels-redis 4.3 keeps a per-channel asyncio.Lock whose waiter count is not
    given back when a waiting receive is cancelled (a WebSocket closed while a
    message is being cleaned up). That lock then stays bound to the dead loop, and
    the next test's consumer fails on it ("bound to a different event loop") and
    receives nothing. A server runs one loop for its lifetime, so only tests see it.
    """
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


@pytest.fixture
def redis_client():
    return get_redis()


@pytest.fixture
def node_agent():
    """Node 0's agent running in-process (as in its worker), after its first heartbeat."""
    import time

    from workers.node_agent import NodeAgent

    agent = NodeAgent(0, register=False)
    agent.start()
    deadline = time.monotonic() + 10
    while agent.beats < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert agent.beats >= 1, "the node agent wrote no heartbeat within 10 s"
    yield agent
    agent.stop()


@pytest.fixture
def licence_issuer(settings):
    """An issuer key pair the platform is configured to trust."""
    from tests.support.licence import configured_issuer

    return configured_issuer(settings)


@pytest.fixture
def licence_credentials(licence_issuer) -> dict[str, str]:
    return licence_issuer.issue()
