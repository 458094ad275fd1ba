"""The stream address policy: the platform's own ports and link-local ranges are
refused, camera networks and other loopback relays are not, and the settings
change it; the runtime checks again before connecting."""

from __future__ import annotations

import socket
import time

import pytest

from core.env import env_networks
from core.errors import BadRequest
from live.address_policy import address_refusal, own_services
from live.addresses import address_validate
from workers.capture import CaptureOptions, CaptureState, FrameSource
from workers.runner import capture_options

DEFAULT_DENY = ["169.254.0.0/16", "fe80::/10"]


def networks(*items: str):
    return env_networks("X", list(items), environ={})


@pytest.fixture
def default_policy(settings):
    """The production default: any network but link-local. Validating connects nowhere."""
    settings.STREAM_ALLOW_NETWORKS = []
    settings.STREAM_DENY_NETWORKS = networks(*DEFAULT_DENY)
    settings.API_PORT = 4004
    settings.DATABASE_URL = "postgresql://visionaire@127.0.0.1:5432/visionaire"
    settings.REDIS_URL = "redis://127.0.0.1:6379/0"
    return settings


def refused(address: str) -> str:
    with pytest.raises(BadRequest) as error:
        address_validate(address)
    return error.value.message


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("http://127.0.0.1:4004/streams", "127.0.0.1 port 4004 is this platform's own API port"),
        (
            "rtsp://localhost:4004/x",
            "localhost (resolving to 127.0.0.1) port 4004 is this platform's own API",
        ),
        ("http://0.0.0.0:4004/", "0.0.0.0 port 4004 is this platform's own API port"),
        ("http://[::1]:4004/", "::1 port 4004 is this platform's own API port"),
        ("http://127.1:4004/", "127.1 (resolving to 127.0.0.1) port 4004 is this platform's own API port"),
        ("http://2130706433:4004/", "port 4004 is this platform's own API port"),
        ("rtsp://127.0.0.1:5432/db", "127.0.0.1 port 5432 is this platform's own PostgreSQL port"),
        ("http://127.0.0.1:6379/", "127.0.0.1 port 6379 is this platform's own Redis port"),
        ("http://127.0.0.2:6379/", "127.0.0.2 port 6379 is this platform's own Redis port"),
        (
            "http://169.254.169.254/latest/meta-data/",
            "169.254.169.254 is in a refused network (169.254.0.0/16",
        ),
        (
            "http://[::ffff:169.254.169.254]/",
            "::ffff:169.254.169.254 (resolving to 169.254.169.254) is in a refused network (169.254.0.0/16",
        ),
        ("rtsp://[fe80::1]:554/ipv6", "fe80::1 is in a refused network (fe80::/10"),
    ],
)
def test_refused_by_default(default_policy, address, reason):
    message = refused(address)
    assert message.startswith("Invalid stream_address: ") and reason in message, message


@pytest.mark.parametrize(
    "address",
    [
        "rtsp://10.7.2.50:554/VOD/stream.mp4",  # a camera on a private network
        "rtsp://192.168.1.20/live",
        "http://172.16.0.9:8080/video.mjpg",
        "rtsp://127.0.0.1:8554/relay",  # a relay on another loopback port
        "http://localhost:8081/video.mjpg",
        "rtsp://[fd00::7]:554/ipv6",
        "rtsp://192.0.2.10/doc",
        "rtsp://camera.invalid/live",  # does not resolve: nothing to refuse yet
    ],
)
def test_camera_networks_stay_allowed(default_policy, address):
    assert address_validate(address).text == address


def test_a_remote_database_port_is_refused_on_its_host_only(default_policy):
    default_policy.DATABASE_URL = "postgresql://u@10.9.9.9:5433/db"
    assert "10.9.9.9 port 5433 is this platform's own PostgreSQL port" in refused("rtsp://10.9.9.9:5433/x")
    assert address_validate("rtsp://10.9.9.8:5433/x")
    assert address_validate("rtsp://127.0.0.1:5433/x")  # a local relay on the same port number


def test_own_services_read_the_settings(default_policy):
    default_policy.DATABASE_URL = "dbname=visionaire host=/tmp/sockets port=5544"
    default_policy.REDIS_URL = "redis://cache.internal:6380/0"
    default_policy.API_PORT = 4100
    assert own_services() == [("API", "", 4100), ("PostgreSQL", "", 5544), ("Redis", "cache.internal", 6380)]


def test_deny_networks_come_from_settings(default_policy):
    default_policy.STREAM_DENY_NETWORKS = networks("10.0.0.0/8")
    assert "10.7.2.50 is in a refused network (10.0.0.0/8" in refused("rtsp://10.7.2.50/x")
    assert address_validate("http://169.254.1.1/x")  # link-local allowed once not denied


def test_allow_networks_come_from_settings(default_policy):
    default_policy.STREAM_ALLOW_NETWORKS = networks("127.0.0.0/8", "::1")
    assert address_validate("rtsp://127.0.0.1:8554/x")
    message = refused("rtsp://10.7.2.50/x")
    assert "10.7.2.50 is outside the allowed networks (127.0.0.0/8, ::1/128, set by " in message
    # The platform's own ports stay refused inside an allowed network.
    assert "own API port" in refused("http://127.0.0.1:4004/")


def test_the_test_settings_allow_loopback_only(settings):
    assert [str(net) for net in settings.STREAM_ALLOW_NETWORKS] == ["127.0.0.0/8", "::1/128"]


def test_address_refusal_checks_every_resolved_address(default_policy, monkeypatch):
    """A name resolving to one camera and one metadata address is refused."""
    from live import address_policy

    real = address_policy.resolve

    def fake(host):
        if host == "cam.example":
            return real("10.1.1.1") | real("169.254.169.254")
        return real(host)

    monkeypatch.setattr(address_policy, "resolve", fake)
    assert "cam.example (resolving to 169.254.169.254) is in a refused network" in address_refusal(
        "cam.example", 554
    )


def test_the_runtime_checks_the_policy_before_connecting(settings):
    """The worker's capture asks the policy before each connection: a refused
    address is never connected to, and the stream says why."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    settings.API_PORT = port  # the listener plays the platform's own API
    options = capture_options()
    assert options.address_check is address_refusal
    source = FrameSource(
        f"http://127.0.0.1:{port}/video.mjpg",
        CaptureOptions(
            open_timeout_s=2, backoff_initial_s=0.1, backoff_max_s=0.2, address_check=options.address_check
        ),
    )
    source.start()
    try:
        deadline = time.monotonic() + 20
        while "address refused" not in source.message and time.monotonic() < deadline:
            time.sleep(0.05)
        assert source.state is CaptureState.RECONNECTING
        assert f"address refused: 127.0.0.1 port {port} is this platform's own API port" in source.message
        with pytest.raises(TimeoutError):
            listener.accept()  # nothing connected
    finally:
        source.stop()
        listener.close()
