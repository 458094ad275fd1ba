"""Fixtures for the node agent and worker tests."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import pytest

from workers import node_agent


def wait_for(predicate: Callable[[], object], *, timeout: float = 10.0, what: str = "condition"):
    """Poll `predicate` until it returns something truthy; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def closed_port() -> int:
    """A local TCP port with nothing listening on it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def agents():
    """Start agents through this list; each is stopped after the test."""
    started: list[node_agent.NodeAgent] = []

    def start(node_num: int, **kwargs) -> node_agent.NodeAgent:
        agent = node_agent.NodeAgent(node_num, **kwargs)
        started.append(agent)
        agent.start()
        return agent

    yield start
    for agent in started:
        agent.stop()


@pytest.fixture
def restart_calls():
    """A restart hook that records its calls; unregistered after the test."""
    calls: list[float] = []

    def hook() -> None:
        calls.append(time.monotonic())

    node_agent.on_restart(hook)
    yield calls
    node_agent.remove_restart_hook(hook)
