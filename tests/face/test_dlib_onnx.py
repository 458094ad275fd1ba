"""dlib's face descriptor model converted to ONNX: the format reader, agreement
with dlib on real face photos, batching, and the cache keyed by the source hash."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnxruntime as ort
import pytest

from analytics.face import dlib_onnx
from analytics.face.engine import DlibAligner, DlibEmbedder, DlibOnnxEmbedder
from tests.support.face_photos import BIDEN, OBAMA


@pytest.fixture(scope="module")
def dat_path():
    return dlib_onnx.default_model_path()


@pytest.fixture(scope="module")
def aligner():
    return DlibAligner()


@pytest.fixture(scope="module")
def real_chips(engine, photos, astronaut, aligner) -> np.ndarray:
    """Aligned chips of every face in the real photos (the same chips dlib would see)."""
    images = [photos.bgr(name) for name in (*OBAMA, *BIDEN, "32bit.png")]
    images += [astronaut, astronaut[:, ::-1], astronaut[::2, ::2]]
    chips = []
    for image in images:
        faces = engine.detector.detect(image)
        assert faces, "every photo shows a face"
        chips.extend(aligner.chips(image, faces))
    return np.stack(chips)


@pytest.fixture(scope="module")
def cpu_session(tmp_path_factory, dat_path):
    path = dlib_onnx.convert(dat_path, tmp_path_factory.mktemp("converted") / "dlib.onnx")
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_reader_decodes_dlib_integers_and_floats():
    reader = dlib_onnx._Reader(bytes([0x01, 0x02, 0x81, 0x1C, 0x00, 0x02, 0x10, 0x27]))
    assert reader.integer() == 2
    assert reader.integer() == -28
    assert reader.integer() == 0
    assert reader.integer() == 10000
    # 0.04 as dlib writes a float: mantissa 0xa3d70a, exponent -28 (the model's loss margin).
    assert dlib_onnx._Reader(bytes([0x03, 0x0A, 0xD7, 0xA3, 0x81, 0x1C])).real() == pytest.approx(0.04)
    assert dlib_onnx._Reader(bytes([0x01, 0x05, 0x02, 0x00, 0x7D])).real() == np.inf  # exponent 32000
    assert dlib_onnx._Reader(b"\x01\x05relu_").string() == "relu_"
    with pytest.raises(dlib_onnx.DlibFormatError, match="ends early"):
        dlib_onnx._Reader(bytes([0x02, 0x01])).integer()


def test_the_shipped_file_is_read_as_dlibs_network(dat_path):
    network = dlib_onnx.read_dlib_network(dat_path.read_bytes())
    assert network.size == 150
    assert network.channel_means == pytest.approx((122.782, 117.001, 104.298), abs=1e-3)
    convolutions = [step for step in network.steps if step.kind == "con"]
    assert len(convolutions) == 29
    assert convolutions[0].params["weights"].shape == (32, 3, 7, 7)
    assert convolutions[0].params["padding"] == (0, 0)  # dlib: no padding on strided layers
    assert convolutions[-1].params["weights"].shape == (256, 256, 3, 3)
    assert convolutions[-1].params["padding"] == (1, 1)
    assert len([step for step in network.steps if step.kind == "affine"]) == 29
    assert network.steps[-1].params["weights"].shape == (256, 128)
    assert all(np.isfinite(step.params["weights"]).all() for step in convolutions)


def test_damaged_or_foreign_files_are_refused(dat_path, tmp_path):
    data = dat_path.read_bytes()
    with pytest.raises(dlib_onnx.DlibFormatError, match="ends early"):
        dlib_onnx.read_dlib_network(data[: len(data) // 2])
    with pytest.raises(dlib_onnx.DlibFormatError, match="bytes left"):
        dlib_onnx.read_dlib_network(data + b"\x00")
    from analytics.face.engine import face_model_file

    predictor = face_model_file("shape_predictor_5_face_landmarks.dat")
    with open(predictor, "rb") as handle:
        with pytest.raises(dlib_onnx.DlibFormatError):
            dlib_onnx.read_dlib_network(handle.read())


@pytest.mark.heavy
def test_onnx_embeddings_agree_with_dlib_on_real_faces(real_chips, cpu_session, dat_path):
    expected = dlib_onnx.dlib_descriptors(real_chips, dat_path)
    got = dlib_onnx.run_session(cpu_session, real_chips)
    agreement = dlib_onnx.cosines(got, expected)
    assert len(real_chips) >= 10
    assert agreement.min() >= dlib_onnx.MIN_COSINE, agreement
    # Not only the direction: the raw descriptors themselves (norm ~1.4) match.
    assert np.abs(got - expected).max() < 1e-3


def test_the_chips_are_those_dlib_cuts_itself(engine, photos, astronaut, aligner, cpu_session, dat_path):
    """dlib's own path (image + 5 points -> its chip, padding 0.25 -> descriptor)
    against ours (dlib's get_face_chip -> the ONNX model): the same vectors."""
    import cv2
    import dlib

    model = dlib.face_recognition_model_v1(str(dat_path))
    for image in (astronaut, photos.bgr("obama.jpg"), photos.bgr("biden.jpg")):
        rgb = np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
        face = engine.detector.detect(image)[0]
        theirs = np.array(model.compute_face_descriptor(rgb, aligner.landmarks(rgb, face)))
        ours = dlib_onnx.run_session(cpu_session, aligner.chips(image, [face]))[0]
        assert dlib_onnx.cosines(ours[None], theirs[None])[0] >= dlib_onnx.MIN_COSINE


def test_a_batch_gives_what_single_chips_give(real_chips, cpu_session):
    batch = dlib_onnx.run_session(cpu_session, real_chips)
    singles = np.concatenate([dlib_onnx.run_session(cpu_session, chip[None]) for chip in real_chips])
    assert batch.shape == (len(real_chips), 128)
    assert np.allclose(batch, singles, atol=1e-5)
    assert dlib_onnx.cosines(batch, singles).min() > 0.999999


@pytest.mark.heavy
def test_the_engines_two_runtimes_give_the_same_vectors(engine, photos, real_chips, aligner):
    onnx_embedder = engine.embedder
    assert isinstance(onnx_embedder, DlibOnnxEmbedder)
    dlib_embedder = DlibEmbedder(aligner)
    ours, theirs = onnx_embedder.embed_chips(real_chips), dlib_embedder.embed_chips(real_chips)
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    assert dlib_onnx.cosines(ours, theirs).min() >= dlib_onnx.MIN_COSINE
    # Through the whole path (photo -> detector -> alignment -> embedding), too.
    image = photos.bgr("obama.jpg")
    faces = engine.detector.detect(image)
    assert dlib_onnx.cosines(
        onnx_embedder.embed_many(image, faces), dlib_embedder.embed_many(image, faces)
    ).min() >= (dlib_onnx.MIN_COSINE)
    # More chips than one run takes are split, in order.
    many = np.concatenate([real_chips] * (onnx_embedder.max_batch // len(real_chips) + 2))
    assert np.allclose(
        onnx_embedder.embed_chips(many), np.concatenate([ours] * (len(many) // len(ours))), atol=1e-5
    )
    assert onnx_embedder.embed_chips(real_chips[:0]).shape == (0, 128)


def test_reference_chips_are_real_faces_and_the_same_every_time(engine):
    chips = dlib_onnx.reference_chips()
    assert chips.shape == (10, 150, 150, 3) and chips.dtype == np.uint8
    assert np.array_equal(chips, dlib_onnx.reference_chips())
    bgr = np.ascontiguousarray(np.pad(chips[0], ((75, 75), (75, 75), (0, 0)), mode="edge")[..., ::-1])
    assert len(engine.detector.detect(bgr)) == 1


@pytest.mark.heavy
def test_the_cache_is_keyed_by_the_source_hash_and_reused(tmp_path, dat_path):
    # A conversion of another model file (an older package) is replaced, not kept beside.
    stale = [tmp_path / "dlib_resnet_0123456789abcdef.onnx", tmp_path / "dlib_resnet_0123456789abcdef.json"]
    for path in stale:
        path.write_bytes(b"old")
    first = dlib_onnx.converted_model(cache_dir=tmp_path)
    assert not any(path.exists() for path in stale)
    digest = dlib_onnx.file_sha256(dat_path)
    assert first.converted_now and first.source_sha256 == digest
    assert first.path == tmp_path / f"dlib_resnet_{digest[:16]}.onnx"
    assert first.min_cosine >= dlib_onnx.MIN_COSINE
    manifest = json.loads(first.path.with_suffix(".json").read_text())
    assert manifest["source_sha256"] == digest and len(manifest["dlib_descriptors"]) == 10
    modified = first.path.stat().st_mtime_ns
    second = dlib_onnx.converted_model(cache_dir=tmp_path)
    assert not second.converted_now and second.path == first.path
    assert first.path.stat().st_mtime_ns == modified
    assert np.allclose(second.reference_descriptors, first.reference_descriptors)
    session = ort.InferenceSession(str(second.path), providers=["CPUExecutionProvider"])
    assert second.check_session(session) >= dlib_onnx.MIN_COSINE
    # A copy of the source elsewhere has the same hash: the same cached model.
    copy = tmp_path / "elsewhere.dat"
    shutil.copyfile(dat_path, copy)
    assert dlib_onnx.converted_model(dat_path=copy, cache_dir=tmp_path).path == first.path
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


@pytest.mark.heavy
def test_a_changed_cache_file_is_rejected_and_converted_again(tmp_path):
    model = dlib_onnx.converted_model(cache_dir=tmp_path)
    data = bytearray(model.path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one weight changed: still a loadable model, no longer dlib's
    model.path.write_bytes(bytes(data))
    again = dlib_onnx.converted_model(cache_dir=tmp_path)
    assert again.converted_now
    assert (
        dlib_onnx.file_sha256(again.path)
        == json.loads(again.path.with_suffix(".json").read_text())["onnx_sha256"]
    )
    # A manifest from another converter version is not trusted either.
    manifest_path = again.path.with_suffix(".json")
    manifest = json.loads(manifest_path.read_text())
    manifest["converter_version"] = dlib_onnx.CONVERTER_VERSION - 1
    manifest_path.write_text(json.dumps(manifest))
    assert dlib_onnx.converted_model(cache_dir=tmp_path).converted_now
    # Nor a model whose manifest is gone.
    manifest_path.unlink()
    assert dlib_onnx.converted_model(cache_dir=tmp_path).converted_now


def _perturbing_converter(monkeypatch):
    """A converter with a bug: one convolution's weights come out scaled."""
    build = dlib_onnx.build_onnx

    def faulty(network):
        for step in network.steps:
            if step.kind == "con" and step.args["filters"] == 128:
                step.params["weights"] = step.params["weights"] * 1.5
                break
        return build(network)

    monkeypatch.setattr(dlib_onnx, "build_onnx", faulty)


@pytest.mark.heavy
def test_a_conversion_that_disagrees_with_dlib_is_refused(tmp_path, monkeypatch):
    _perturbing_converter(monkeypatch)
    with pytest.raises(dlib_onnx.ConversionRejected, match="disagrees with dlib"):
        dlib_onnx.converted_model(cache_dir=tmp_path)
    assert not [p for p in tmp_path.iterdir() if p.suffix in (".onnx", ".json", ".tmp")]
