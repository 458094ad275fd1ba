"""The object detector slot: the bundled YOLOv3-tiny on real frames, batching,
the documented output layouts, and the settings it refuses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from django.core.exceptions import ImproperlyConfigured
from onnx import helper, numpy_helper

from analytics import runtime as model_runtime
from analytics.objects import detector as detector_module
from analytics.objects.detector import DetectorConfig, ObjectDetector

from .conftest import same_detections


@pytest.mark.heavy
def test_persons_on_street_video(detector, street_frames):
    height, width = street_frames[0].shape[:2]
    counts = []
    for frame in street_frames:
        found = detector.detect(frame)
        people = [d for d in found if d.label == "person"]
        counts.append(len(people))
        for d in found:
            x1, y1, x2, y2 = d.box
            assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height, d
            assert detector.config.min_score <= d.confidence <= 1
            assert d.class_id == detector.class_names.index(d.label)
        # Seen from above at a slant, a pedestrian's box is taller than wide.
        assert sum((d.box[3] - d.box[1]) > (d.box[2] - d.box[0]) for d in people) >= len(people) * 0.7
        assert [d.confidence for d in found] == sorted((d.confidence for d in found), reverse=True)
    assert min(counts) >= 2, counts
    assert sum(counts) >= 30, counts


def test_football_photo(detector, photos):
    labels = [d.label for d in detector.detect(photos["messi"])]
    assert "person" in labels and "sports ball" in labels, labels


def test_a_batch_equals_single_frames(detector, street_frames, photos):
    """Frames of different sizes in one inference call, each against its own call."""
    frames = [*street_frames[:3], photos["messi"], photos["astronaut"], photos["coffee"]]
    batched = detector.detect_batch(frames)
    assert len(batched) == len(frames)
    for frame, got in zip(frames, batched, strict=True):
        same_detections(got, detector.detect(frame), box_tolerance=0.01, score_tolerance=1e-5)
    assert sum(len(found) for found in batched) >= 10


def test_provider_is_reported_as_it_runs(detector):
    assert detector.provider == detector.session.get_providers()[0]
    assert detector.provider in model_runtime.providers()
    assert detector.run_mode == model_runtime.run_mode()
    assert detector.describe() == {
        "model": "yolov3-tiny",
        "input_size": [416, 416],
        "classes": 80,
        "layout": "boxes_scores",
        "provider": detector.provider,
        "run_mode": detector.run_mode,
    }


def test_the_process_detector_follows_settings(settings, tmp_path):
    settings.OBJECT_DETECTOR_INPUT_SIZE = 320
    settings.DATA_DIR = tmp_path
    previous = detector_module.object_detector()
    detector_module.object_detector_reset()
    try:
        detector = detector_module.object_detector()
        assert detector is not previous and detector.input_size == (320, 320)
        assert detector.model_path.parent == tmp_path / "models"
        assert detector_module.object_detector() is detector
    finally:
        # Other tests hold the previous one (the `detector` fixture): keep it the process's.
        detector_module._detector = previous


# --- other detectors in the slot ----------------------------------------------------------


def _exported(detector, tmp_path, name: str, tail, *, names: dict | None = None, batch: int | None = None):
    """The bundled model with `tail(graph, raw_output_name) -> new output name` appended,
    saved as another ONNX detector would be."""
    model = onnx.load(str(detector.model_path))
    graph = model.graph
    raw = graph.output[0].name
    out = tail(graph, raw)
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info(out, onnx.TensorProto.FLOAT, None))
    if batch is not None:
        graph.input[0].type.tensor_type.shape.dim[0].dim_value = batch
    del model.metadata_props[:]
    if names is not None:
        helper.set_model_props(model, {"names": repr(names)})
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, str(path))
    return path


def _as_yolov8(graph, raw):
    graph.node.append(helper.make_node("Transpose", [raw], ["output0"], perm=[0, 2, 1]))
    return "output0"


def _as_yolov5(graph, raw):
    """Objectness 0.5 everywhere and class probabilities twice the scores: the same products."""
    constants = {
        "starts": np.array([0, 4], dtype=np.int64),
        "box_end": np.array([4], dtype=np.int64),
        "obj_end": np.array([5], dtype=np.int64),
        "big": np.array([100000], dtype=np.int64),
        "axis": np.array([2], dtype=np.int64),
        "half": np.array(0.5, dtype=np.float32),
        "zero": np.array(0.0, dtype=np.float32),
        "two": np.array(2.0, dtype=np.float32),
    }
    graph.initializer.extend(numpy_helper.from_array(value, name) for name, value in constants.items())
    graph.initializer.append(numpy_helper.from_array(np.array([0], dtype=np.int64), "start0"))
    graph.initializer.append(numpy_helper.from_array(np.array([4], dtype=np.int64), "start4"))
    graph.node.extend(
        [
            helper.make_node("Slice", [raw, "start0", "box_end", "axis"], ["boxes"]),
            helper.make_node("Slice", [raw, "start4", "obj_end", "axis"], ["first_score"]),
            helper.make_node("Mul", ["first_score", "zero"], ["zeros"]),
            helper.make_node("Add", ["zeros", "half"], ["objectness"]),
            helper.make_node("Slice", [raw, "start4", "big", "axis"], ["scores"]),
            helper.make_node("Mul", ["scores", "two"], ["probabilities"]),
            helper.make_node("Concat", ["boxes", "objectness", "probabilities"], ["output"], axis=2),
        ]
    )
    return "output"


@pytest.mark.heavy
@pytest.mark.parametrize("layout, tail", [("yolov8", _as_yolov8), ("yolov5", _as_yolov5)])
def test_other_layouts_give_the_same_detections(detector, street_frames, tmp_path, layout, tail):
    path = _exported(detector, tmp_path, layout, tail)
    for configured in ("auto", layout):
        other = ObjectDetector(DetectorConfig(model=str(path), layout=configured, cache_dir=tmp_path))
        assert other.layout == layout and other.name == path.name
        assert other.class_names == detector.class_names  # the COCO names when nothing else is given
        same_detections(other.detect(street_frames[2]), detector.detect(street_frames[2]), box_tolerance=0.01)


def test_class_names_from_model_metadata_or_a_file(detector, street_frames, tmp_path):
    names = {i: name for i, name in enumerate(detector.class_names)}
    names[0] = "pedestrian"
    path = _exported(detector, tmp_path, "named", _as_yolov8, names=names)
    other = ObjectDetector(DetectorConfig(model=str(path), cache_dir=tmp_path))
    labels = {d.label for d in other.detect(street_frames[0])}
    assert "pedestrian" in labels and "person" not in labels

    names_file = tmp_path / "walkers.names"
    names_file.write_text("\n".join(["walker", *detector.class_names[1:]]) + "\n")
    other = ObjectDetector(DetectorConfig(model=str(path), classes=str(names_file), cache_dir=tmp_path))
    assert "walker" in {d.label for d in other.detect(street_frames[0])}


@pytest.mark.heavy
def test_a_model_exported_for_one_frame_runs_batches_frame_by_frame(detector, street_frames, tmp_path):
    path = _exported(detector, tmp_path, "batch1", _as_yolov8, batch=1)
    other = ObjectDetector(DetectorConfig(model=str(path), cache_dir=tmp_path))
    assert other.max_batch == 1
    frames = street_frames[:3]
    for got, frame in zip(other.detect_batch(frames), frames, strict=True):
        same_detections(got, detector.detect(frame), box_tolerance=0.01)


def test_what_the_slot_refuses(detector, tmp_path):
    path = _exported(detector, tmp_path, "v8", _as_yolov8)
    three = tmp_path / "three.names"
    three.write_text("a\nb\nc\n")
    with pytest.raises(ImproperlyConfigured, match=r"output has shape \[1, 84, 2535\], which fits no layout"):
        ObjectDetector(DetectorConfig(model=str(path), classes=str(three), cache_dir=tmp_path))
    with pytest.raises(ImproperlyConfigured, match="fits not the yolov5 layout"):
        ObjectDetector(DetectorConfig(model=str(path), layout="yolov5", cache_dir=tmp_path))
    with pytest.raises(ImproperlyConfigured, match="INPUT_SIZE is 640 but v8.onnx takes 416x416"):
        ObjectDetector(DetectorConfig(model=str(path), input_size=640, cache_dir=tmp_path))
    with pytest.raises(ImproperlyConfigured, match="VISIONAIRE_OBJECT_DETECTOR_MODEL: no file at"):
        ObjectDetector(DetectorConfig(model=str(tmp_path / "missing.onnx"), cache_dir=tmp_path))
    with pytest.raises(ImproperlyConfigured, match="VISIONAIRE_OBJECT_DETECTOR_CLASSES: no file at"):
        ObjectDetector(DetectorConfig(model=str(path), classes=str(tmp_path / "none"), cache_dir=tmp_path))
    not_a_model = tmp_path / "not_a_model.onnx"
    not_a_model.write_text("this is not an ONNX model\n")
    with pytest.raises(ImproperlyConfigured, match="ONNX Runtime cannot load the object detector"):
        ObjectDetector(DetectorConfig(model=str(not_a_model), cache_dir=tmp_path))
    with pytest.raises(ImproperlyConfigured, match="must be a multiple of 32"):
        ObjectDetector(DetectorConfig(input_size=400, cache_dir=tmp_path))
    with pytest.raises(ValueError, match="expected a BGR image"):
        detector.detect(np.zeros((4, 4, 2), dtype=np.uint8))
    with pytest.raises(ValueError, match="empty array"):
        detector.detect(np.zeros((0, 4, 3), dtype=np.uint8))


@pytest.mark.parametrize(
    "variable, value, message",
    [
        ("VISIONAIRE_OBJECT_DETECTOR_LAYOUT", "ssd", "must be one of auto, boxes_scores, yolov5, yolov8"),
        ("VISIONAIRE_OBJECT_DETECTOR_INPUT_SIZE", "big", "must be an integer"),
        ("VISIONAIRE_DETECT_BATCH_SIZE", "-1", "must be at least 0"),
        ("VISIONAIRE_DETECT_BATCH_WAIT_MS", "soon", "must be a number"),
    ],
)
def test_wrong_settings_stop_the_start(tmp_path, variable, value, message):
    """settings.py parses the detector's variables; a wrong value names itself."""
    env = {**os.environ, variable: value, "VISIONAIRE_DATA_DIR": str(tmp_path), "DJANGO_SECRET_KEY": "x"}
    result = subprocess.run(
        [sys.executable, "-c", "import visionaire_site.settings"],
        env=env, capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    assert result.returncode != 0
    assert f"{variable} {message}" in result.stderr, result.stderr[-2000:]
