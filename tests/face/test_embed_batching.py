"""The face embedder through the batching runtime (analytics/face/batching.py),
with the real detector and embedder on real photos: the vectors equal the
unbatched path's, faces of several streams share batches, a full queue makes
NFV4-FR put tracks off (and recognise them at a later frame), and the worker's
runtime follows its settings."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from analytics.face import batching
from analytics.face.batching import BatchingEmbedder, EmbedderBusy, faces_embed
from analytics.face.engine import face_engine
from analytics.face.plugin import END_FRAMES, FaceRecognitionConfig, FaceRecognitionProcessor
from tests.face.images import side_by_side
from tests.face.test_fr_processor import OBAMA_ID, STEP, T0, Gallery, canvas, play

WAIT = 120  # seconds: generous, the machine may be loaded
TOLERANCE = 1e-5


def await_condition(predicate, message: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, message
        time.sleep(0.01)


@pytest.fixture(scope="module")
def images(photos, astronaut):
    """Real photos, one of them with two faces."""
    return {
        "obama": photos.bgr("obama.jpg"),
        "obama3": photos.bgr("obama3.jpg"),
        "biden": photos.bgr("biden.jpg"),
        "astronaut": astronaut,
        "pair": side_by_side(photos.bgr("obama.jpg"), photos.bgr("biden.jpg")),
    }


@pytest.fixture(scope="module")
def detected(engine, images):
    found = {name: engine.detector.detect(image) for name, image in images.items()}
    assert len(found["pair"]) == 2 and all(len(faces) == 1 for name, faces in found.items() if name != "pair")
    return found


class GatedEmbedder:
    """The real embedder, whose model calls wait for `release` (and say when one started)."""

    def __init__(self, embedder):
        self.embedder = embedder
        self.entered = threading.Event()
        self.release = threading.Event()

    def __getattr__(self, name):
        return getattr(self.embedder, name)

    def embed_chips(self, chips):
        self.entered.set()
        assert self.release.wait(WAIT), "the test never released the embedder"
        return self.embedder.embed_chips(chips)


@pytest.mark.parametrize("batch_size", [8, 1])
def test_batched_embeddings_equal_the_unbatched_path(engine, images, detected, batch_size):
    expected = {name: engine.embedder.embed_many(image, detected[name]) for name, image in images.items()}
    runtime = BatchingEmbedder(engine.embedder, batch_size=batch_size, max_wait_ms=200, capacity=64)
    names = list(images)
    streams, rounds = 4, 3
    start = threading.Barrier(streams)
    got: dict[int, list[tuple[str, np.ndarray]]] = {}
    errors: list[Exception] = []

    def stream(index: int) -> None:
        try:
            start.wait(WAIT)
            results = []
            for round_ in range(rounds):
                name = names[(index + round_) % len(names)]
                results.append((name, runtime.embed_many(images[name], detected[name])))
            got[index] = results
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=stream, args=(i,), daemon=True) for i in range(streams)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT * rounds)
        assert not errors, errors
        faces = 0
        for index in range(streams):
            assert len(got[index]) == rounds
            for name, vectors in got[index]:
                assert vectors.shape == expected[name].shape == (len(detected[name]), 128)
                assert np.abs(vectors - expected[name]).max() <= TOLERANCE, name
                faces += len(vectors)
        stats = runtime.stats()
        assert stats["requests"] == stats["completed"] == streams * rounds
        assert stats["items"] == faces and stats["busy"] == stats["failed"] == 0
        assert stats["provider"] == engine.embedder.provider
        if batch_size > 1:  # the streams' faces shared model calls
            assert stats["batches"] < streams * rounds and stats["mean_batch_size"] > 1, stats
        # The runtime is an embedder like the engine's.
        assert (runtime.dim, runtime.name, runtime.similarity_scale) == (
            engine.embedder.dim,
            engine.embedder.name,
            engine.embedder.similarity_scale,
        )
        single = runtime.embed(images["astronaut"], detected["astronaut"][0])
        assert np.abs(single - expected["astronaut"][0]).max() <= TOLERANCE
    finally:
        assert runtime.stop(WAIT)


def test_faces_of_several_images_go_in_one_call(engine, images, detected):
    pairs = [(images[name], face) for name in ("pair", "astronaut", "obama3") for face in detected[name]]
    expected = np.concatenate(
        [engine.embedder.embed_many(images[name], detected[name]) for name in ("pair", "astronaut", "obama3")]
    )
    # Without the runtime: one model call for the chips of every image.
    assert np.abs(faces_embed(engine.embedder, pairs) - expected).max() <= TOLERANCE
    runtime = BatchingEmbedder(engine.embedder, batch_size=8, max_wait_ms=0, capacity=16)
    try:
        assert np.abs(faces_embed(runtime, pairs) - expected).max() <= TOLERANCE
        stats = runtime.stats()
        assert stats["batches"] == 1 and stats["last_batch_size"] == len(pairs) == 4
        assert faces_embed(runtime, []).shape == (0, 128)
    finally:
        assert runtime.stop(WAIT)


def test_a_full_embedder_defers_tracks_to_a_later_frame(engine, photos, images, detected):
    gallery = Gallery(engine)
    gallery.enroll(OBAMA_ID, "Barack Obama", "President", photos.bgr("obama.jpg"))
    gated = GatedEmbedder(engine.embedder)
    runtime = BatchingEmbedder(gated, batch_size=2, max_wait_ms=0, capacity=1)
    blockers: list[threading.Thread] = []
    try:
        proc = FaceRecognitionProcessor(
            FaceRecognitionConfig(dumping_interval=0), engine=engine, matcher=gallery, embedder=runtime
        )
        obama = [canvas((images["obama3"], 300), jitter=2 * i) for i in range(6)]
        events, _, t = play(proc, obama, T0)
        assert events == []

        # Another stream's face is being embedded and one more waits: the queue is full.
        for name in ("biden", "astronaut"):
            blockers.append(
                threading.Thread(target=runtime.embed_many, args=(images[name], detected[name]), daemon=True)
            )
            blockers[-1].start()
            if name == "biden":
                assert gated.entered.wait(WAIT)
        await_condition(lambda: runtime.stats()["queued"] == 1, "a face should wait in the queue")

        # Obama's track ends at these frames (gone for fr_timeout_dump and END_FRAMES
        # analysed frames); its face is refused, so no event yet.
        biden = [canvas((images["biden"], 420), jitter=-2 * i) for i in range(END_FRAMES + 1)]
        events, _, t = play(proc, biden, t + 1.5)
        assert events == [] and proc.deferred >= 1 and proc.lost == 0
        assert runtime.stats()["busy"] >= 1 and gallery.calls == 0

        # The model catches up: the next frame makes the event.
        gated.release.set()
        for thread in blockers:
            thread.join(WAIT)
        events, _, t = play(proc, biden[:1], t)
        assert [e.primary_text for e in events] == ["Barack Obama"]
        assert events[0].pipeline_data["status"] == "KNOWN"
        assert T0 <= events[0].timestamp <= T0 + 5 * STEP
        # Biden's own track is recognised at close, once.
        closed = proc.close().events
        assert [e.pipeline_data["status"] for e in closed] == ["UNKNOWN"] and proc.lost == 0
    finally:
        gated.release.set()
        assert runtime.stop(WAIT)


def test_a_busy_embedder_error_is_its_own_kind(engine, images, detected):
    gated = GatedEmbedder(engine.embedder)
    runtime = BatchingEmbedder(gated, batch_size=1, capacity=1)
    blocker = threading.Thread(
        target=runtime.embed_many, args=(images["biden"], detected["biden"]), daemon=True
    )
    try:
        blocker.start()
        assert gated.entered.wait(WAIT)
        with pytest.raises(EmbedderBusy, match="the face embedder's queue is full \\(1 faces\\)"):
            runtime.embed_many(images["astronaut"], detected["astronaut"])
    finally:
        gated.release.set()
        blocker.join(WAIT)
        assert runtime.stop(WAIT)


def test_the_worker_runtime_follows_settings(settings, engine, images, detected):
    settings.FACE_EMBED_BATCH_SIZE = 4
    settings.FACE_EMBED_BATCH_WAIT_MS = 2.5
    settings.FACE_EMBED_QUEUE_CAPACITY = 12
    batching.face_embed_runtime_stop()
    try:
        runtime = batching.face_embed_runtime()
        assert (runtime.batch_size, runtime.max_wait_s, runtime.capacity) == (4, 0.0025, 12)
        # Over the process's engine now (another test may have made a new one since `engine`).
        assert runtime.embedder is face_engine().embedder and batching.face_embed_runtime() is runtime
        assert batching.face_embed_runtime_started() is runtime
        vectors = runtime.embed_many(images["pair"], detected["pair"])
        assert (
            np.abs(vectors - engine.embedder.embed_many(images["pair"], detected["pair"])).max() <= TOLERANCE
        )
        # A processor made by the plugin (no engine given) embeds through it.
        processor = FaceRecognitionProcessor(FaceRecognitionConfig())
        assert processor.embedder is runtime
        # The worker's runtime report carries its figures (for /metrics and operators).
        from workers.runtime_report import runtime_report

        figures = runtime_report(0)["models"]["face_engine"]["figures"]
        assert figures["batch_size"] == 4 and figures["items"] >= 2 and figures["busy"] == 0
    finally:
        assert batching.face_embed_runtime_stop(WAIT)
    assert not runtime.running and batching.face_embed_runtime_started() is None

    settings.FACE_EMBED_BATCH_SIZE = 0
    try:
        runtime = batching.face_embed_runtime()
        gpu = face_engine().embedder.provider in batching.GPU_PROVIDERS
        assert runtime.batch_size == (batching.GPU_BATCH_SIZE if gpu else batching.CPU_BATCH_SIZE)
    finally:
        assert batching.face_embed_runtime_stop(WAIT)
