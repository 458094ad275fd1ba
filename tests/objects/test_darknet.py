"""The Darknet -> ONNX conversion of the bundled YOLOv3-tiny, checked against
OpenCV's own Darknet reader on real frames."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import onnx
import pytest

from analytics.objects import darknet
from analytics.objects.detector import DetectorConfig, ObjectDetector

from .conftest import same_detections


def opencv_net():
    files = darknet.bundled_files()
    return cv2.dnn.readNetFromDarknet(str(files.cfg), str(files.weights))


def opencv_rows(net, tensor: np.ndarray, width: int, height: int) -> np.ndarray:
    """OpenCV DNN's YOLO outputs in the boxes_scores layout (rows in OpenCV's order:
    per head, cell by cell, anchor by anchor)."""
    net.setInput(tensor[np.newaxis])
    outputs = net.forward(net.getUnconnectedOutLayersNames())
    rows = np.concatenate(outputs)  # cx, cy, w, h (0-1), objectness, class scores
    return np.column_stack([rows[:, :4] * [width, height, width, height], rows[:, 5:]]).astype(np.float32)


def in_opencv_order(rows: np.ndarray, width: int, height: int, anchors: int = 3) -> np.ndarray:
    """Our rows (per head: anchor, row, column) reordered as OpenCV's (row, column, anchor)."""
    blocks, start = [], 0
    for stride in (32, 16):
        h, w = height // stride, width // stride
        count = anchors * h * w
        block = rows[start : start + count].reshape(anchors, h, w, -1).transpose(1, 2, 0, 3)
        blocks.append(block.reshape(count, -1))
        start += count
    assert start == len(rows)
    return np.concatenate(blocks)


def test_bundled_files_are_the_pinned_ones():
    files = darknet.bundled_files()
    assert files.weights.stat().st_size == darknet.WEIGHTS_SIZE
    assert darknet.verify(files) == darknet.SHA256["yolov3-tiny.weights"]
    names = darknet.class_names(files.names)
    assert len(names) == 80 and names[0] == "person" and names[2] == "car"


@pytest.mark.heavy
def test_converted_model_equals_opencv_dnn(detector, street_frames, photos):
    """The same letterboxed tensors through our ONNX graph on ONNX Runtime and
    through cv2.dnn.readNetFromDarknet: the same raw boxes and scores, and the
    same detections after the same postprocessing."""
    assert detector.name == "yolov3-tiny" and detector.layout == "boxes_scores"
    net = opencv_net()
    width, height = detector.input_size
    images = [*street_frames[:4], *photos.values()]
    compared = 0
    for image in images:
        tensor, letterbox = detector.prepare(image)
        ours = detector.infer(tensor[np.newaxis])[0]
        theirs = opencv_rows(net, tensor, width, height)
        assert ours.shape == theirs.shape == (3 * (13 * 13 + 26 * 26), 84)
        reordered = in_opencv_order(ours, width, height)
        np.testing.assert_allclose(reordered[:, :4], theirs[:, :4], atol=0.05, rtol=1e-4)
        # OpenCV zeroes class scores under its own floor (0.2); compare the others.
        kept = theirs[:, 4:] > 0
        np.testing.assert_allclose(reordered[:, 4:][kept], theirs[:, 4:][kept], atol=1e-4)
        assert reordered[:, 4:][~kept].max(initial=0) < detector.config.min_score
        ours_found = detector.finish(ours, letterbox)
        same_detections(
            ours_found, detector.finish(theirs, letterbox), box_tolerance=0.1, score_tolerance=1e-4
        )
        compared += len(ours_found)
    assert compared >= 30, f"only {compared} detections compared: the comparison says little"


def test_other_input_sizes_convert_and_still_match(tmp_path, street_frames):
    """The graph is built for any multiple of 32 (here 320: 10x10 and 20x20 grids)."""
    small = ObjectDetector(DetectorConfig(input_size=320, cache_dir=tmp_path))
    assert small.input_size == (320, 320)
    tensor, letterbox = small.prepare(street_frames[1])
    ours = small.infer(tensor[np.newaxis])[0]
    assert ours.shape == (3 * (10 * 10 + 20 * 20), 84)
    theirs = opencv_rows(opencv_net(), tensor, 320, 320)
    np.testing.assert_allclose(in_opencv_order(ours, 320, 320)[:, :4], theirs[:, :4], atol=0.05, rtol=1e-4)
    found = small.finish(ours, letterbox)
    assert sum(d.label == "person" for d in found) >= 2
    same_detections(found, small.finish(theirs, letterbox), box_tolerance=0.1, score_tolerance=1e-4)


def test_conversion_is_cached_by_hash_with_a_dynamic_batch(tmp_path):
    path = darknet.cached_model(tmp_path)
    assert path.name.startswith(f"yolov3-tiny-{darknet.SHA256['yolov3-tiny.weights'][:16]}-416-")
    written = path.stat().st_mtime_ns
    assert darknet.cached_model(tmp_path) == path
    assert path.stat().st_mtime_ns == written, "a cached conversion was redone"
    assert [p.name for p in tmp_path.iterdir()] == [path.name], "a temporary file was left behind"
    model = onnx.load(str(path))
    batch = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch.dim_param == "batch" and not batch.HasField("dim_value")
    assert [node.op_type for node in model.graph.node].count("MaxPool") == 6


@pytest.mark.parametrize("altered", ["yolov3-tiny.weights", "yolov3-tiny.cfg"])
def test_altered_files_are_refused(tmp_path, altered):
    source = darknet.bundled_files()
    copy = tmp_path / "files"
    copy.mkdir()
    for path in (source.cfg, source.weights, source.names):
        shutil.copyfile(path, copy / path.name)
    with open(copy / altered, "r+b") as handle:
        handle.seek(1000)
        byte = handle.read(1)
        handle.seek(1000)
        handle.write(bytes([byte[0] ^ 0x01]))
    files = darknet.DarknetFiles(
        cfg=copy / "yolov3-tiny.cfg", weights=copy / "yolov3-tiny.weights", names=copy / "coco.names"
    )
    cache = tmp_path / "cache"
    with pytest.raises(
        darknet.DarknetError, match=f"{altered} has sha256 .*, expected {darknet.SHA256[altered]}"
    ):
        darknet.cached_model(cache, files=files)
    assert not cache.exists(), "nothing may be converted from altered files"


def test_weights_that_do_not_fit_the_cfg_are_refused():
    files = darknet.bundled_files()
    cfg, weights = files.cfg.read_text(), files.weights.read_bytes()
    with pytest.raises(darknet.DarknetError, match="1 values of the weights file were not used"):
        darknet.build_onnx(cfg, weights + b"\x00\x00\x80\x3f")
    with pytest.raises(darknet.DarknetError, match="the weights file ends early"):
        darknet.build_onnx(cfg, weights[:-4])


def test_weights_header_versions():
    """`seen` is an int64 from Darknet 0.2 on, an int32 before."""
    values = np.arange(4, dtype="<f4").tobytes()
    new = np.array([0, 2, 0], dtype="<i4").tobytes() + np.array([123], dtype="<i8").tobytes() + values
    old = np.array([0, 1, 0], dtype="<i4").tobytes() + np.array([123], dtype="<i4").tobytes() + values
    for data in (new, old):
        reader = darknet.WeightsReader(data)
        np.testing.assert_array_equal(reader.take(4), [0, 1, 2, 3])
        reader.finish()


def test_unsupported_cfg_is_refused():
    cfg = "[net]\nwidth=64\nheight=64\nchannels=3\n[shortcut]\nfrom=-3\n"
    with pytest.raises(darknet.DarknetError, match=r"\[shortcut\] is not supported"):
        darknet.build_onnx(cfg, np.zeros(5, dtype="<i4").tobytes())
