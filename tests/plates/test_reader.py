"""The plate reader: PP-OCRv6 from the rapidocr wheel, by path, on this project's ONNX
Runtime sessions; localisation and reading on vehicle crops decoded from H.264."""

from __future__ import annotations

import numpy as np
import pytest
from django.core.exceptions import ImproperlyConfigured

from analytics import runtime as model_runtime
from analytics.plates import reader as reader_module
from analytics.plates.formats import plate_format
from analytics.plates.reader import BundledModels, PlateModelsMissing, PlateReader, ReaderConfig
from analytics.plates.voting import TrackVote
from tests.support.plates import PlatePass, render_plate, vehicle_crops

FORMATS = {"id": plate_format("indonesia"), "uk": plate_format("uk")}
MIN_FRAME_READ_RATE = 0.85  # exact plates over all frames of the rendered set (measured 93-97%)
MIN_PASSES_VOTED = 11  # of 12 passes, the vote gives the exact plate (measured 12)


def test_models_are_the_wheels_own(reader):
    models = reader_module.bundled_models()
    assert models.det.parent.parent.name == "rapidocr" and models.det.parent.name == "models"
    assert models.det.name == "PP-OCRv6_det_small.onnx" and models.rec.name == "PP-OCRv6_rec_small.onnx"
    assert 9_000_000 < models.det.stat().st_size < 11_000_000
    assert 20_000_000 < models.rec.stat().st_size < 23_000_000
    assert reader.models == models
    assert reader.providers == model_runtime.providers()


def test_missing_models_are_an_error_not_a_download(tmp_path):
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(PlateModelsMissing, match="cannot load"):
        PlateReader(models=BundledModels(det=empty, rec=empty))


@pytest.mark.parametrize(
    "options",
    [
        {"det_limit_type": "both"},
        {"det_limit_side": 8},
        {"lower_fraction": 0},
        {"max_lines": 0},
        {"widen": -1},
        {"widen_lines": -1},
    ],
)
def test_refused_settings(options):
    with pytest.raises(ImproperlyConfigured):
        ReaderConfig(**options)


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((720, 1280), (352, 640)),  # a whole frame: the long side limited to 640
        ((160, 496), (160, 512)),  # a vehicle's lower half keeps its size (rounded to multiples of 32)
        ((40, 120), (96, 288)),  # a distant plate's region: enlarged to a 96-pixel short side
    ],
)
def test_detector_input_is_limited_by_its_long_side(reader, size, expected):
    tensor, _, _ = reader._det_input(np.zeros((*size, 3), np.uint8))
    assert tensor.shape == (1, 3, *expected)


@pytest.mark.parametrize(
    "spec",
    [
        PlatePass("B 1234 XYZ", "id", "white"),
        PlatePass("DK 8060 OS", "id", "yellow"),
        PlatePass("LS15 EBC", "uk", "yellow"),
        PlatePass("GZ62 BOS", "uk", "white"),
    ],
)
def test_recognition_of_plate_crops(reader, spec):
    """Recognition alone on a plate's characters, with per-character confidences."""
    plate = render_plate(spec, height=60)
    line = plate[: int(plate.shape[0] * 0.62)] if spec.style == "id" else plate  # the number, not the expiry
    (chars,) = reader.recognize([line])
    parsed = FORMATS[spec.style].parse_line(chars)
    assert parsed is not None and parsed.plate == spec.plate, "".join(c.char for c in chars)
    assert parsed.display == spec.number
    assert all(0.5 < c <= 1 for c in parsed.confidences)


def test_no_plate_where_there_is_none(reader, scenes):
    assert reader.read_plate(scenes[0][300:500, 100:400], FORMATS["uk"]) is None
    assert reader.read_plate(np.full((200, 300, 3), 128, np.uint8), FORMATS["uk"]) is None


@pytest.mark.heavy
@pytest.mark.timeout(1200)
def test_read_rate_on_rendered_passes(reader, rendered):
    votes = {index: TrackVote() for index in range(len(rendered.passes))}
    exact, frames, misses = 0, 0, []
    for index, _, crop in vehicle_crops(rendered.video, rendered.boxes):
        spec = rendered.passes[index]
        read = reader.read_plate(crop, FORMATS[spec.style])
        frames += 1
        if read is None:
            misses.append((spec.number, None))
            continue
        exact += read.plate == spec.plate
        if read.plate != spec.plate:
            misses.append((spec.number, read.text))
        votes[index].add(read.reading())
        assert len(read.confidences) == len(read.plate)
        assert all(0 <= c <= 1 for c in read.confidences)
        # The plate's box lies on the vehicle's lower body, not on its badge or window.
        x1, y1 = read.box.min(axis=0)
        x2, y2 = read.box.max(axis=0)
        height, width = crop.shape[:2]
        assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height
        assert 0.45 * height < (y1 + y2) / 2 < 0.9 * height, (spec.number, read.box)
        assert read.region in ("lower", "whole") and read.det_ms > 0 and read.rec_ms > 0
    assert exact / frames >= MIN_FRAME_READ_RATE, (exact, frames, misses)
    voted = [votes[i].result() for i in range(len(rendered.passes))]
    right = sum(v is not None and v.plate == p.plate for v, p in zip(voted, rendered.passes, strict=True))
    assert right >= MIN_PASSES_VOTED, [(p.number, v) for v, p in zip(voted, rendered.passes, strict=True)]
    for vote, spec in zip(voted, rendered.passes, strict=True):
        if vote is not None and vote.plate == spec.plate:
            assert 1 <= vote.agreeing <= vote.readings <= 3 and 0 < vote.confidence <= 1
