"""check_capability: the source is opened and a frame read before it is accepted."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

from streams.models import Stream


@pytest.fixture
def video(media_root) -> str:
    """A real five-frame video under the media root."""
    path = os.path.join(media_root, "tiny.avi")
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    assert writer.isOpened()
    for level in range(0, 250, 50):
        writer.write(np.full((48, 64, 3), level, dtype=np.uint8))
    writer.release()
    return path


@pytest.fixture
def not_a_video(media_root) -> str:
    path = os.path.join(media_root, "notes.mp4")
    with open(path, "w") as handle:
        handle.write("this is not a video")
    return path


@pytest.mark.parametrize("prefix", ["", "file://"])
def test_a_real_video_is_accepted(api, node0, video, prefix):
    response = api.post("/streams/0", {"stream_address": prefix + video, "check_capability": True})
    assert response.status_code == 200
    assert response.json()["stream_address"] == prefix + video
    assert Stream.objects.get().address == prefix + video


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("{bad}", "the source could not be opened"),
        ("{root}/missing.mp4", "file does not exist"),
        ("rtsp://127.0.0.1:1/closed-port", "the source could not be opened"),
    ],
)
def test_an_unopenable_source_is_refused_without_writing(
    api, node0, media_root, not_a_video, address, reason
):
    address = address.format(bad=not_a_video, root=media_root)
    response = api.post("/streams/0", {"stream_address": address, "check_capability": True})
    assert (response.status_code, response.json()) == (
        400,
        {"code": 400, "message": f"stream cannot be opened: {reason}"},
    )
    assert Stream.objects.count() == 0


def test_without_the_check_an_unopenable_source_is_stored(api, node0, not_a_video):
    response = api.post("/streams/0", {"stream_address": not_a_video, "check_capability": False})
    assert response.status_code == 200


def test_the_check_applies_to_updates(api, node0, video, not_a_video):
    stream_id = api.post("/streams/0", {"stream_address": video}).json()["stream_id"]
    response = api.put(f"/streams/0/{stream_id}", {"stream_address": not_a_video, "check_capability": True})
    assert (response.status_code, response.json()) == (
        400,
        {"code": 400, "message": "stream cannot be opened: the source could not be opened"},
    )
    assert Stream.objects.get().address == video
    # With no new address, the stored one is checked.
    assert api.put(f"/streams/0/{stream_id}", {"check_capability": True}).status_code == 200


def test_the_address_is_validated_before_anything_is_opened(api, node0, media_root):
    response = api.post("/streams/0", {"stream_address": "file:///etc/passwd", "check_capability": True})
    assert (response.status_code, response.json()) == (
        400,
        {"code": 400, "message": f"Invalid stream_address: a file must be under {media_root}"},
    )


def test_a_capability_check_never_probes_a_stored_address_the_policy_refuses(api, node0):
    """A stream stored before the policy (or through the ORM) is checked again
    before the API process opens it."""
    stream = Stream.objects.create(
        stream_id="00000000000000c1", node=node0, address="http://169.254.169.254/"
    )
    response = api.put(f"/streams/0/{stream.stream_id}", {"check_capability": True})
    assert response.status_code == 400
    assert response.json()["message"].startswith(
        "Invalid stream_address: 169.254.169.254 is in a refused network (169.254.0.0/16"
    )
