"""H.264 videos made of face photos, for the NFV4-FR end-to-end test and the
face pipeline benchmark.

A video is a list of segments: a photo (scaled to a height, drifting a few
pixels per frame so frames differ as a camera's do) or an empty grey scene,
each shown for some seconds. Frames are piped raw to Debian's ffmpeg (libx264,
yuv420p, a keyframe every second, +faststart); an existing file is reused.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from tests.support.media import FFMPEG, MediaError

BACKGROUND = 90  # grey level of the empty scene


@dataclass(frozen=True)
class Segment:
    seconds: float
    photo: np.ndarray | None = None  # BGR; None: the empty scene
    height: int = 600  # the photo's height in the frame, in pixels
    left: int = 340  # the photo's left edge at the segment's start
    drift: float = 1.0  # pixels per frame to the right


def render(segment: Segment, index: int, size: tuple[int, int]) -> np.ndarray:
    width, height = size
    frame = np.full((height, width, 3), BACKGROUND, dtype=np.uint8)
    if segment.photo is None:
        return frame
    scale = segment.height / segment.photo.shape[0]
    photo = cv2.resize(
        segment.photo, (int(segment.photo.shape[1] * scale), segment.height), interpolation=cv2.INTER_AREA
    )
    left = int(segment.left + segment.drift * index)
    top = max(0, (height - segment.height) // 2)
    visible = photo[: height - top, : max(0, min(photo.shape[1], width - left))]
    frame[top : top + visible.shape[0], left : left + visible.shape[1]] = visible
    return frame


def face_video(
    path: str | os.PathLike, segments: list[Segment], *, size: tuple[int, int] = (1280, 720), fps: int = 25
) -> Path:
    path = Path(path)
    if path.is_file() and path.stat().st_size > 0:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    width, height = size
    command = [
        FFMPEG, "-nostdin", "-loglevel", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{width}x{height}", "-r", str(fps), "-i", "-",
        "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-g", str(fps),
        "-movflags", "+faststart", str(tmp),
    ]  # fmt: skip
    try:
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    except FileNotFoundError as exc:
        raise MediaError(f"{FFMPEG} is not installed: run `bash .ci/system-deps`") from exc
    try:
        for segment in segments:
            for index in range(round(segment.seconds * fps)):
                process.stdin.write(render(segment, index, size).tobytes())
        process.stdin.close()
        if process.wait(timeout=120) != 0:
            raise MediaError(f"ffmpeg failed: {process.stderr.read().decode(errors='replace')[-2000:]}")
    except BaseException:
        process.kill()
        process.wait()
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
    return path
