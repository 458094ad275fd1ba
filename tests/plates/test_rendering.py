"""The rendered test media: plates in Debian's DejaVu Sans Mono Bold, vehicles over a
real street scene, videos of passes with the vehicle's box in every frame."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tests.support import plates
from tests.support.plates import PlatePass, render_plate, vehicle_crops


def test_the_font_is_debians_dejavu():
    path = plates.font_path(plates.FONT)
    assert path.name == "DejaVuSansMono-Bold.ttf" and path.stat().st_size > 100_000


def test_a_missing_font_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(plates, "FONT_DIRS", (tmp_path,))
    plates.font_path.cache_clear()
    try:
        with pytest.raises(plates.FontMissing, match="apt-get install -y fonts-dejavu-core"):
            plates.font_path(plates.FONT)
    finally:
        plates.font_path.cache_clear()


@pytest.mark.parametrize(
    ("style", "colour", "ratio"), [("uk", "yellow", 520 / 111), ("id", "white", 430 / 135)]
)
def test_plates_are_black_on_their_colour(style, colour, ratio):
    plate = render_plate(PlatePass("AB12 CDE" if style == "uk" else "B 1234 XY", style, colour), height=120)
    assert plate.shape[0] == 120 and plate.shape[1] == pytest.approx(120 * ratio, abs=1)
    inside = plate[10:-10, 10:-10].reshape(-1, 3).astype(int)
    background = np.median(inside, axis=0)
    assert np.abs(background - plates.COLOURS[colour]).max() <= 2
    dark = (inside.sum(axis=1) < 150).mean()
    assert 0.1 < dark < 0.5  # the characters' ink


def test_set_is_fixed_and_varied():
    first, again = plates.plate_set(12), plates.plate_set(12)
    assert first == again
    assert {p.style for p in first} == {"id", "uk"} and {p.colour for p in first} == {"white", "yellow"}
    assert len({p.number for p in first}) == 12
    assert max(p.skew for p in first) - min(p.skew for p in first) > 0.5


def test_video_has_every_pass_in_every_frame(rendered):
    capture = cv2.VideoCapture(str(rendered.video), cv2.CAP_FFMPEG)
    try:
        frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    finally:
        capture.release()
    assert frames == len(rendered.boxes) == 3 * len(rendered.passes)
    assert size == (1280, 720)
    for box in rendered.boxes:
        x1, y1, x2, y2 = box.box
        assert 0 <= x1 < x2 <= 1280 and 0 <= y1 < y2 <= 720
    # Each pass drives nearer: its vehicle grows from frame to frame.
    for index in range(len(rendered.passes)):
        widths = [b.box[2] - b.box[0] for b in rendered.boxes if b.pass_index == index]
        assert widths == sorted(widths) and widths[-1] > widths[0]
    crops = list(vehicle_crops(rendered.video, rendered.boxes))
    assert len(crops) == len(rendered.boxes)
    assert all(crop.shape[0] > 100 and crop.shape[1] > 150 for _, _, crop in crops)
