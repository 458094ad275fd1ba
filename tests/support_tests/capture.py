"""OpenCV helpers for the harness tests: bounded opens and reads, no sleeps."""

from __future__ import annotations

import time

import cv2


def open_capture(url: str, *, open_ms: int = 10000, read_ms: int = 3000) -> cv2.VideoCapture:
    """An FFmpeg-backend capture whose open and each read give up after the given times."""
    return cv2.VideoCapture(
        str(url),
        cv2.CAP_FFMPEG,
        [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, open_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, read_ms],
    )


def read_frames(cap: cv2.VideoCapture, count: int) -> list:
    frames = []
    for _ in range(count):
        ok, frame = cap.read()
        assert ok, f"read {len(frames)} frames, then a read failed"
        frames.append(frame)
    return frames


def reads_until_failure(cap: cv2.VideoCapture, *, timeout: float) -> int:
    """Read until a read fails; return how many succeeded first. Fails the test after `timeout`."""
    deadline = time.monotonic() + timeout
    succeeded = 0
    while cap.read()[0]:
        succeeded += 1
        assert time.monotonic() < deadline, f"reads still succeed after {timeout}s ({succeeded} frames)"
    return succeeded


def opens_or_reads(url: str) -> bool:
    """Whether OpenCV can open `url` and read one frame from it."""
    cap = open_capture(url, open_ms=5000, read_ms=2000)
    try:
        return cap.isOpened() and cap.read()[0]
    finally:
        cap.release()
