"""The media makers produce real files that OpenCV's FFmpeg backend decodes."""

from __future__ import annotations

import cv2
import numpy as np

from tests.support.media import Probe, probe
from tests.support_tests.capture import open_capture, opens_or_reads, read_frames


def test_h264_720p_is_what_it_says(h264_720p):
    assert h264_720p.suffix == ".mp4"
    assert probe(h264_720p) == Probe(codec="h264", width=1280, height=720, fps=25.0, frames=100, seconds=4.0)


def test_opencv_decodes_every_frame_of_the_720p_file(h264_720p):
    cap = open_capture(h264_720p)
    assert cap.isOpened()
    assert cap.get(cv2.CAP_PROP_FPS) == 25.0
    frames = read_frames(cap, 100)
    assert not cap.read()[0]  # end of file after exactly 100 frames
    cap.release()
    assert {f.shape for f in frames} == {(720, 1280, 3)}
    # testsrc draws a counter: consecutive frames differ.
    assert not np.array_equal(frames[0], frames[1])


def test_small_file_is_cached_per_variant(media, h264_small):
    assert probe(h264_small) == Probe(codec="h264", width=320, height=240, fps=25.0, frames=100, seconds=4.0)
    mtime = h264_small.stat().st_mtime_ns
    assert media.small_h264() == h264_small
    assert h264_small.stat().st_mtime_ns == mtime
    longer = media.small_h264(seconds=2)
    assert longer != h264_small
    assert probe(longer).frames == 50


def test_mjpeg_frames_are_distinct_jpegs(mjpeg_jpegs):
    assert len(mjpeg_jpegs) == 25
    images = [cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR) for jpeg in mjpeg_jpegs]
    assert {image.shape for image in images} == {(240, 320, 3)}
    assert len(set(mjpeg_jpegs)) == 25


def test_a_file_that_is_not_a_video_does_not_open(not_a_video_file, text_as_video_file):
    assert not_a_video_file.suffix == text_as_video_file.suffix == ".mp4"
    assert not opens_or_reads(not_a_video_file)
    assert not opens_or_reads(text_as_video_file)
