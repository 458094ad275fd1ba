"""Disconnect storms: hundreds of viewers connect and drop (before the answer,
after the first part, mid-stream, with a reset) while a real stream runs.
Afterwards the process holds nothing for them: no hub clients, variants, feeds,
tasks or Redis subscriptions, no extra threads, and little more memory."""

from __future__ import annotations

import asyncio
import gc
import os
import random
import re
import socket
import struct
import threading

import psutil
import pytest

from live.keys import live_channel

from .conftest import LIVE_SID
from .support import MjpegReader, is_live, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

IDLE = dict.fromkeys(("clients", "feeds", "variants", "tasks", "subscriptions"), 0)
VARIANTS = ["?fps=5", "?fps=10&height=120", "?fps=0&height=90", "/TEST-BRIGHT?fps=5&height=140"]


async def viewer(port: int, index: int, rng: random.Random) -> str:
    """One viewer that leaves in one of four ways; what it saw."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    path = f"/mjpeg/0/{LIVE_SID}" + VARIANTS[index % len(VARIANTS)]
    writer.write(f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
    await writer.drain()
    how = index % 4
    seen = "nothing"
    try:
        if how >= 1:
            status = await reader.readline()
            seen = status.decode().strip()
            await reader.readuntil(b"\r\n\r\n")
        if how >= 2:
            for _ in range(1 + rng.randrange(4)):
                await reader.readuntil(b"--frame\r\n")
    finally:
        if how == 3:
            # A reset instead of a clean close (a crashed browser, a lost network).
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.close()
        await asyncio.gather(writer.wait_closed(), return_exceptions=True)
    return seen


async def storm(port: int, count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    limit = asyncio.Semaphore(150)  # this many connected at once

    async def one(index: int) -> str:
        async with limit:
            async with asyncio.timeout(30):
                return await viewer(port, index, rng)

    return await asyncio.gather(*(one(i) for i in range(count)))


# The event loop's default executor (asyncio.to_thread): a pool that grows to
# this size on demand and stays; any other thread left behind would be a leak.
POOL_THREAD = re.compile(r"^(uvloop|asyncio)_\d+$")
POOL_MAX = min(32, (os.cpu_count() or 1) + 4)


# The live stream's capture opens a reader thread per connection (capture-<id>-<n>):
# a busy machine can make it reconnect during a storm, which renumbers the reader
# without adding one. Compared by name without the number.
READER_NUMBER = re.compile(r"^(capture-[0-9a-f]+)-\d+$")


def other_threads() -> list[str]:
    names = (t.name for t in threading.enumerate() if not POOL_THREAD.match(t.name))
    return sorted(READER_NUMBER.sub(r"\1-reader", name) for name in names)


def settled(server, baseline_tasks: list[str], baseline_threads: list[str]) -> bool:
    pool = [t for t in threading.enumerate() if POOL_THREAD.match(t.name)]
    assert len(pool) <= POOL_MAX, [t.name for t in pool]
    return (
        server.hub_stats() == IDLE
        and server.loop_tasks() == baseline_tasks
        and other_threads() == baseline_threads
    )


def test_disconnect_storms_leak_nothing(asgi_server, live_stream, redis_client):
    process = psutil.Process()
    with MjpegReader(asgi_server.url(f"/mjpeg/0/{LIVE_SID}?fps=5")) as reader:
        reader.read_until(is_live, timeout=15, what="a live frame")
    wait_for(lambda: asgi_server.hub_stats() == IDLE, timeout=5, what="the first viewer released")
    baseline_tasks = asgi_server.loop_tasks()

    # A first storm warms up what is allocated once (thread pools, buffers, caches).
    seen = asyncio.run(storm(asgi_server.port, 200, seed=1))
    assert seen.count("HTTP/1.1 200 OK") == 150, sorted(set(seen))
    wait_for(
        lambda: asgi_server.hub_stats() == IDLE and asgi_server.loop_tasks() == baseline_tasks,
        timeout=15,
        what="the warm-up storm to leave nothing behind",
    )
    baseline_threads = other_threads()
    gc.collect()
    rss_before = process.memory_info().rss

    for round_number in range(3):
        seen = asyncio.run(storm(asgi_server.port, 300, seed=10 + round_number))
        assert seen.count("HTTP/1.1 200 OK") == 225, sorted(set(seen))
        try:
            wait_for(
                lambda: settled(asgi_server, baseline_tasks, baseline_threads),
                timeout=15,
                what=f"storm {round_number + 1} to leave nothing behind",
            )
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}: hub {asgi_server.hub_stats()}, tasks {asgi_server.loop_tasks()} "
                f"(before: {baseline_tasks}), threads {other_threads()} (before: {baseline_threads})"
            ) from None
    assert redis_client.pubsub_numsub(live_channel(LIVE_SID)) == [(live_channel(LIVE_SID), 0)]
    gc.collect()
    growth_mb = (process.memory_info().rss - rss_before) / 2**20
    print(f"RSS growth {growth_mb:.1f} MiB")
    assert growth_mb < 25, f"RSS grew {growth_mb:.1f} MiB over 900 viewers"

    # And the server still serves.
    with MjpegReader(asgi_server.url(f"/mjpeg/0/{LIVE_SID}/TEST-BRIGHT?fps=5")) as reader:
        reader.read_until(is_live, timeout=60, what="a live frame after the storms")
