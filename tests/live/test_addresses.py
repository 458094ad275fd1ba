"""Stream addresses (live.addresses): the one grammar the API and the capture
read, the allowed sources, and the tricks that must not pass."""

from __future__ import annotations

import os

import pytest

from core.env import env_networks
from core.errors import BadRequest
from live.addresses import Address, address_parse, address_validate


@pytest.fixture(autouse=True)
def default_network_policy(settings):
    """The production default (any network but link-local); the test settings allow
    loopback only. Validating an address connects nowhere."""
    settings.STREAM_ALLOW_NETWORKS = []
    settings.STREAM_DENY_NETWORKS = env_networks("X", ["169.254.0.0/16", "fe80::/10"], environ={})


VALID = [
    "rtsp://10.7.2.50:554/VOD/stream.mp4",
    "rtsp://user:secret@cam.local/Streaming/Channels/101",
    "RTSP://cam.local/upper-case-scheme",
    "rtsps://cam.example.com:322/live",
    "http://10.0.0.9:8080/video.mjpg",
    "https://cdn.example.com/live/index.m3u8?token=abc",
    "rtsp://[fd00::7]:554/ipv6",
    "/dev/video0",
    "/dev/video12",
    "v4l2:///dev/video2",
    "{root}/lobby.mp4",
    "{root}/nested/dir/gate.avi",
    "file://{root}/lobby.mp4",
    "file://localhost{root}/lobby.mp4",
    "{root}/nested/../lobby.mp4",
]


@pytest.mark.parametrize("address", VALID)
def test_valid_addresses(media_root, address):
    address = address.format(root=media_root)
    assert address_validate(address).text == address


INVALID = [
    ("file:///etc/passwd", "a file must be under {root}"),
    ("/etc/passwd", "a file must be under {root}"),
    ("{root}/../outside.mp4", "a file must be under {root}"),
    ("{root}/a/../../outside.mp4", "a file must be under {root}"),
    ("file://{root}/%2e%2e/outside.mp4", "a file must be under {root}"),
    ("{root}", "a file must be under {root}"),
    ("{root}-sibling/a.mp4", "a file must be under {root}"),
    ("file://{root}/a%00.mp4", "it must not contain spaces or control characters"),
    ("file://otherhost/{root}/a.mp4", "a file URL must be file:///absolute/path"),
    ("file://{root}/a.mp4?x=1", "a file URL must be file:///absolute/path"),
    ("file:relative.mp4", "it must be a URL (rtsp://, http://…), an absolute file path or /dev/videoN"),
    ("/dev/video", "a video device must be /dev/videoN"),
    ("/dev/videoX", "a video device must be /dev/videoN"),
    ("/dev/sda", "a video device must be /dev/videoN"),
    ("v4l2:///dev/video", "a V4L2 source must be v4l2:///dev/videoN or /dev/videoN"),
    ("v4l2://host/dev/video0", "a V4L2 source must be v4l2:///dev/videoN or /dev/videoN"),
    ("ftp://x", "scheme 'ftp' is not allowed (allowed: rtsp, rtsps, http, https, file, v4l2)"),
    ("javascript:alert(1)", "it must be a URL (rtsp://, http://…), an absolute file path or /dev/videoN"),
    ("rtsp://", "a rtsp URL needs a host"),
    ("http:///path-only", "a http URL needs a host"),
    ("rtsp://cam:99999/x", "malformed URL"),
    ("rtsp://cam:port/x", "malformed URL"),
    ("rtsp://cam:0/x", "port must be between 1 and 65535"),
    ("lobby.mp4", "it must be a URL (rtsp://, http://…), an absolute file path or /dev/videoN"),
    ("../lobby.mp4", "it must be a URL (rtsp://, http://…), an absolute file path or /dev/videoN"),
    ("", "it must not be empty"),
    ("rtsp://cam/a b", "it must not contain spaces or control characters"),
    ("rtsp://cam/\x00", "it must not contain spaces or control characters"),
    ("rtsp://cam/\x1b[31m", "it must not contain spaces or control characters"),
    ("rtsp://cam/" + "a" * 2038, "it must be at most 2048 characters"),
]


@pytest.mark.parametrize(("address", "reason"), INVALID)
def test_invalid_addresses(media_root, address, reason):
    with pytest.raises(BadRequest) as error:
        address_validate(address.format(root=media_root))
    assert error.value.message == "Invalid stream_address: " + reason.format(root=media_root)


def test_the_length_limit_is_inclusive(media_root):
    address = "rtsp://cam/" + "a" * 2037
    assert len(address) == 2048
    assert address_validate(address).text == address


def test_a_symlink_cannot_escape_the_media_root(media_root, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.mp4").write_bytes(b"x")
    os.symlink(outside, os.path.join(media_root, "link"))
    os.symlink(outside / "secret.mp4", os.path.join(media_root, "direct.mp4"))
    for address in (f"{media_root}/link/secret.mp4", f"file://{media_root}/direct.mp4"):
        with pytest.raises(BadRequest) as error:
            address_validate(address)
        assert error.value.message == f"Invalid stream_address: a file must be under {media_root}"


def test_a_symlink_inside_the_media_root_is_fine(media_root):
    os.makedirs(os.path.join(media_root, "real"))
    os.symlink(os.path.join(media_root, "real"), os.path.join(media_root, "alias"))
    assert address_validate(f"{media_root}/alias/a.mp4").text == f"{media_root}/alias/a.mp4"


def test_allowed_schemes_come_from_settings(media_root, settings):
    settings.STREAM_ALLOWED_SCHEMES = ["rtsp", "rtsps"]
    assert address_validate("rtsp://cam/1").text == "rtsp://cam/1"
    expected = {
        "http://cam/1": "scheme 'http' is not allowed (allowed: rtsp, rtsps)",
        "/dev/video0": "V4L2 devices are not allowed",
        "v4l2:///dev/video0": "scheme 'v4l2' is not allowed (allowed: rtsp, rtsps)",
        f"{media_root}/a.mp4": "file sources are not allowed",
        f"file://{media_root}/a.mp4": "scheme 'file' is not allowed (allowed: rtsp, rtsps)",
    }
    for address, reason in expected.items():
        with pytest.raises(BadRequest) as error:
            address_validate(address)
        assert error.value.message == f"Invalid stream_address: {reason}"


def network(text: str, scheme: str, host: str, port: int) -> Address:
    return Address(text, kind="network", scheme=scheme, target=text, host=host, port=port)


@pytest.mark.parametrize(
    ("address", "parsed"),
    [
        ("rtsp://cam.local/stream", network("rtsp://cam.local/stream", "rtsp", "cam.local", 554)),
        ("rtsps://10.0.0.2/s", network("rtsps://10.0.0.2/s", "rtsps", "10.0.0.2", 322)),
        ("http://10.0.0.2:8080/v.mjpg", network("http://10.0.0.2:8080/v.mjpg", "http", "10.0.0.2", 8080)),
        ("https://cam/v.mjpg", network("https://cam/v.mjpg", "https", "cam", 443)),
        ("RTSP://[fd00::7]/v6", network("RTSP://[fd00::7]/v6", "rtsp", "fd00::7", 554)),
        ("/videos/a.mp4", Address("/videos/a.mp4", "file", "file", "/videos/a.mp4")),
        ("file:///videos/a%20b.mp4", Address("file:///videos/a%20b.mp4", "file", "file", "/videos/a b.mp4")),
        ("/dev/video2", Address("/dev/video2", "device", "v4l2", "/dev/video2")),
        ("v4l2:///dev/video1", Address("v4l2:///dev/video1", "device", "v4l2", "/dev/video1")),
    ],
)
def test_the_grammar_the_capture_reads(address, parsed):
    """What the stream runtime opens: the same grammar as the API's validation."""
    assert address_parse(address) == parsed


def test_a_device_address_names_its_index():
    assert address_parse("/dev/video12").device_index == 12
    assert address_parse("v4l2:///dev/video3").device_index == 3
