"""Redis clients' socket timeouts and the WebSocket keep-alive, as configured.

These read what the client objects really got (after the library's defaults),
so neither a settings change nor a client library with other defaults can bring
back a socket timeout that cuts a blocking read short.
"""

from __future__ import annotations

import asyncio

from channels.layers import get_channel_layer
from django.conf import settings

from live.redis import get_redis, get_redis_binary
from viewing.hub import LiveHub
from visionaire_site.launcher import api_command

# The longest blocking read made through the project's own clients: the control
# queue's BRPOP (workers/control.py) and the live hub's pub/sub read (viewing/hub.py).
LONGEST_OWN_BLOCKING_READ = 1.0


def test_the_channel_layer_socket_timeout_exceeds_its_blocking_read():
    layer = get_channel_layer()
    connection = layer.create_pool(0).make_connection()
    # Channels' Redis layer re-issues a blocking read of brpop_timeout seconds while
    # a WebSocket is idle; a timeout at or below it drops idle subscribers.
    assert connection.socket_timeout >= layer.brpop_timeout + 5, (
        connection.socket_timeout,
        layer.brpop_timeout,
    )
    assert connection.socket_connect_timeout == settings.REDIS_CLIENT_OPTIONS["socket_connect_timeout"]
    assert connection.socket_keepalive is True
    assert connection.health_check_interval > 0


def test_every_project_redis_client_has_explicit_timeouts_above_its_blocking_reads():
    loop = asyncio.new_event_loop()
    clients = {
        "get_redis": get_redis(),
        "get_redis_binary": get_redis_binary(),
        "live hub": LiveHub(loop).redis,
    }
    for name, client in clients.items():
        connection = client.connection_pool.make_connection()
        assert connection.socket_timeout is not None, name
        assert connection.socket_timeout > LONGEST_OWN_BLOCKING_READ, name
        assert connection.socket_connect_timeout is not None, name
        assert connection.socket_keepalive is True, name
    loop.close()


def test_the_api_server_pings_websocket_clients():
    command = api_command("127.0.0.1", 4004)
    options = dict(zip(command, command[1:], strict=False))
    assert float(options["--ws-ping-interval"]) > 0
    assert float(options["--ws-ping-timeout"]) > 0
