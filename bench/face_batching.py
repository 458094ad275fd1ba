"""Face embeddings in batches: the embedding runtime, bulk enrollment, 1:N
recognition through the route, and NFV4-FR streams (issue 14).

    .venv/bin/python bench/face_batching.py            # full run, about 10 minutes on 2 cores
    .venv/bin/python bench/face_batching.py --quick    # smoke run, a few minutes
    .venv/bin/python bench/face_batching.py --only embed --only streams

1. embed        1, 4 and 8 threads (streams) each embedding one face per call in
                a closed loop on real chips: each thread calling the embedder
                itself (one face per model call: the unbatched path) against the
                worker's batching runtime at batch 8 and 16 (wait 5 ms), rounds
                alternating the order. Faces/s and process CPU ms per face; the
                ratio is batched / unbatched in the same round (median). What
                picks the CPU default of VISIONAIRE_FACE_EMBED_BATCH_SIZE.
2. enroll       the same photo folder (the face_recognition test photos and the
                astronaut, re-encoded at several JPEG qualities so each file
                differs) enrolled one photo at a time (what enroll_folder did:
                decode, detect, embed, write, then the next) and through the
                pipeline (faces.bulk.folder_enroll: readers in parallel with
                batched embedding), alternating which goes first; faces/s.
3. recognition  POST /v1/face/recognition (the whole Django stack in process:
                middleware, view, serializer, decode, detect, embed, the pgvector
                search) probed with real face photos, in a keyspace holding the
                real people plus N synthetic enrolled faces (random unit vectors
                inserted directly by COPY, not enrolled through the API: the bench
                says so). p50/p95 against the goal (p95 < 50 ms), beside the
                models alone and the database part alone on the same photos, the
                index PostgreSQL has on the embeddings (HNSW or IVFFlat) and the
                plan of the search query (EXPLAIN ANALYZE).
4. streams      NFV4-FR processors (detection, tracking, quality, embedding at
                track end, an in-memory match) on a "crowd" of 720p frames: four
                faces in a row that move to another row every 8 frames, so four
                tracks end together every 8 frames. 1 and 4 threads (streams),
                each analysing frames as fast as it can: faces embedded one per
                model call (unbatched, as before) against the worker's runtime
                at batch size 1 (`frame`: a frame's due faces in one call, each
                stream its own) and at batch 8 (`streams`: batches across
                streams); analysed frames/s per stream and together.

Servers: DATABASE_URL and REDIS_URL when both are set, else embedded PostgreSQL
and Redis in a temporary folder deleted afterwards. Readable lines, and one JSON
line per figure starting with {"bench": ...}.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402


def _bench_module(name: str):
    # bench/faces.py shares its name with the faces app: loaded under another name.
    spec = importlib.util.spec_from_file_location(f"bench_{name}", Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench_faces = _bench_module("faces")
say, emit, percentile, machine = (
    bench_faces.say,
    bench_faces.emit,
    bench_faces.percentile,
    bench_faces.machine,
)
BENCH_PREFIX = bench_faces.BENCH_PREFIX
GOAL_P95_MS = 50.0
VECTOR_LITERAL = re.compile(r"'\[[^']*\]'::vector")  # shortened in printed plans


def cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def real_photos(photo_dir: Path) -> dict[str, bytes]:
    from tests.support.face_photos import BIDEN, OBAMA, astronaut_bgr, jpeg_bytes

    files = {name: (photo_dir / name).read_bytes() for name in (*OBAMA, *BIDEN)}
    files["astronaut.jpg"] = jpeg_bytes(astronaut_bgr())
    return files


def real_chips(photo_dir: Path) -> np.ndarray:
    from analytics.face.engine import face_engine

    engine = face_engine()
    chips = []
    for data in real_photos(photo_dir).values():
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        faces = engine.detector.detect(image)
        chips.extend(engine.embedder.chips(image, faces[:1]))
    return np.stack(chips)


# --- 1. the embedding runtime -------------------------------------------------------


def closed_loop(streams: int, seconds: float, embed_one) -> tuple[int, float]:
    """Threads embedding one face per call for `seconds`; (faces, CPU s)."""
    stop = threading.Event()
    counts = [0] * streams
    start = threading.Barrier(streams + 1)

    def stream(index: int) -> None:
        start.wait()
        while not stop.is_set():
            embed_one(index, counts[index])
            counts[index] += 1

    threads = [threading.Thread(target=stream, args=(i,), daemon=True) for i in range(streams)]
    for thread in threads:
        thread.start()
    start.wait()
    cpu = cpu_seconds()
    time.sleep(seconds)  # the measurement window itself, not a synchronisation
    stop.set()
    for thread in threads:
        thread.join()
    return sum(counts), cpu_seconds() - cpu


def scenario_embed(photo_dir: Path, *, streams_list: list[int], seconds: float, rounds: int) -> int:
    from analytics.face.batching import BatchingEmbedder
    from analytics.face.engine import face_engine

    engine = face_engine()
    embedder = engine.embedder
    chips = real_chips(photo_dir)
    say(f"\nembed: {len(chips)} real chips, {embedder.name} on {embedder.runtime} {embedder.provider}")
    modes = {"unbatched": 1, "batch8": 8, "batch16": 16}
    best: dict[int, str] = {}
    for streams in streams_list:
        figures: dict[str, list[tuple[float, float]]] = {mode: [] for mode in modes}
        batch_means: dict[str, list[float]] = {mode: [] for mode in modes if mode != "unbatched"}
        ratios: dict[str, list[float]] = {mode: [] for mode in modes if mode != "unbatched"}
        for round_ in range(rounds):
            order = list(modes) if round_ % 2 == 0 else list(reversed(modes))
            rates = {}
            for mode in order:
                if mode == "unbatched":
                    faces, cpu = closed_loop(
                        streams, seconds, lambda i, n: embedder.embed_chips(chips[(i + n) % len(chips)][None])
                    )
                else:
                    runtime = BatchingEmbedder(embedder, batch_size=modes[mode], max_wait_ms=5, capacity=256)
                    try:
                        faces, cpu = closed_loop(
                            streams,
                            seconds,
                            lambda i, n, runtime=runtime: runtime.call([chips[(i + n) % len(chips)]]),
                        )
                    finally:
                        runtime.stop()
                    batch_means[mode].append(runtime.stats()["mean_batch_size"])
                rates[mode] = faces / seconds
                figures[mode].append((faces / seconds, 1000 * cpu / max(faces, 1)))
            for mode in ratios:
                ratios[mode].append(rates[mode] / max(rates["unbatched"], 1e-9))
        line = []
        for mode in modes:
            rate = statistics.median(r for r, _ in figures[mode])
            cpu_ms = statistics.median(c for _, c in figures[mode])
            ratio = statistics.median(ratios[mode]) if mode in ratios else 1.0
            mean_batch = statistics.median(batch_means[mode]) if mode in batch_means else 1.0
            line.append(f"{mode} {rate:.1f} faces/s ({cpu_ms:.1f} CPU ms/face, mean batch {mean_batch:.1f})")
            emit(
                {
                    "bench": "face_embed_batching",
                    "streams": streams,
                    "mode": mode,
                    "faces_per_s": round(rate, 2),
                    "cpu_ms_per_face": round(cpu_ms, 2),
                    "ratio_vs_unbatched": round(ratio, 3),
                    "mean_batch_size": round(mean_batch, 2),
                    "ratio_rounds": [round(r, 3) for r in ratios.get(mode, [])],
                    "provider": embedder.provider,
                    "loadavg_1m": round(os.getloadavg()[0], 2),
                }
            )
        say(f"  {streams} streams: " + "; ".join(line))
        say(
            "    batched / unbatched (median of rounds): "
            + ", ".join(f"{mode} x{statistics.median(values):.2f}" for mode, values in ratios.items())
        )
        medians = {"unbatched": 1.0, **{mode: statistics.median(values) for mode, values in ratios.items()}}
        best[streams] = max(medians, key=medians.get)
    say(f"  fastest by streams: {best}")
    return modes[best.get(4, next(iter(best.values())))]


# --- 2. bulk enrollment -----------------------------------------------------------------


def photo_folder(photo_dir: Path, target: Path, count: int) -> int:
    """`count` photo files in one folder per person, each re-encoded (so files differ)."""
    people = {
        "Barack Obama": ["obama.jpg", "obama2.jpg", "obama3.jpg", "obama_partial_face.jpg"],
        "Joe Biden": ["biden.jpg"],
        "Eileen Collins": ["astronaut.jpg"],
    }
    files = real_photos(photo_dir)
    written = 0
    quality = 95
    while written < count:
        for person, names in people.items():
            for name in names:
                if written == count:
                    break
                image = cv2.imdecode(np.frombuffer(files[name], np.uint8), cv2.IMREAD_COLOR)
                # A new person per JPEG quality: nobody reaches VISIONAIRE_FACE_MAX_VARIATIONS.
                folder = target / f"{person} {96 - quality}"
                folder.mkdir(parents=True, exist_ok=True)
                ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
                (folder / f"{Path(name).stem}-q{quality}.jpg").write_bytes(data.tobytes())
                written += 1
        quality -= 1
    return written


def enroll_one_at_a_time(keyspace, jobs) -> int:
    """What enroll_folder did before the pipeline: each photo start to end, then the next."""
    from core.errors import ApiError
    from core.images import image_from_bytes
    from faces import services
    from faces.models import Person

    enrolled = 0
    for job in jobs:
        try:
            image = image_from_bytes(job.path.read_bytes(), field=job.path.name)
            person = Person.objects.filter(keyspace=keyspace, name=job.name).order_by("pk").first()
            if person is None:
                services.face_enroll(keyspace=keyspace.name, image=image, name=job.name)
            else:
                services.face_enroll(keyspace=keyspace.name, image=image, face_id=person.face_id)
            enrolled += 1
        except (ApiError, OSError):
            pass
    return enrolled


def scenario_enroll(photo_dir: Path, *, count: int, rounds: int, batch_size: int) -> None:
    from faces.bulk import PhotoJob, folder_enroll
    from faces.models import Keyspace

    workers = min(4, os.cpu_count() or 1)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        photo_folder(photo_dir, root, count)
        jobs = [PhotoJob(p.name, f) for p in sorted(root.iterdir()) for f in sorted(p.iterdir())]
        say(f"\nenroll: {len(jobs)} photo files; pipeline with {workers} readers, batches of {batch_size}")
        rates: dict[str, list[float]] = {"one_at_a_time": [], "pipelined": []}
        for round_ in range(rounds):
            order = list(rates) if round_ % 2 == 0 else list(reversed(rates))
            for mode in order:
                keyspace = Keyspace.objects.create(name=f"{BENCH_PREFIX}enroll-{mode}-{round_}")
                try:
                    started = time.perf_counter()
                    if mode == "one_at_a_time":
                        enrolled = enroll_one_at_a_time(keyspace, jobs)
                    else:
                        enrolled = folder_enroll(
                            keyspace=keyspace, jobs=jobs, workers=workers, batch_size=batch_size
                        ).enrolled
                    seconds = time.perf_counter() - started
                finally:
                    keyspace.delete()
                rates[mode].append(enrolled / seconds)
                say(
                    f"  round {round_ + 1} {mode}: {enrolled} faces in {seconds:.1f} s, "
                    f"{enrolled / seconds:.2f} faces/s"
                )
    ratios = [p / s for p, s in zip(rates["pipelined"], rates["one_at_a_time"], strict=True)]
    result = {
        "bench": "face_enroll_pipeline",
        "photos": len(jobs),
        "workers": workers,
        "batch_size": batch_size,
        "one_at_a_time_faces_per_s": round(statistics.median(rates["one_at_a_time"]), 2),
        "pipelined_faces_per_s": round(statistics.median(rates["pipelined"]), 2),
        "ratio": round(statistics.median(ratios), 3),
        "ratio_rounds": [round(r, 3) for r in ratios],
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }
    say(
        f"  enrollment: one at a time {result['one_at_a_time_faces_per_s']} faces/s, pipelined "
        f"{result['pipelined_faces_per_s']} faces/s: ratio x{result['ratio']}"
    )
    emit(result)


# --- 3. 1:N recognition through the route -------------------------------------------------


def embedding_index() -> list[tuple[str, str]]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'faces_facevariation' "
            "AND indexdef ILIKE '%%embedding%%'"
        )
        return list(cursor.fetchall())


def search_plan(keyspace, vector: np.ndarray, limit: int) -> list[str]:
    """EXPLAIN ANALYZE of the query faces.services._nearest_rows sends, with its settings."""
    from django.conf import settings
    from django.db import connection, transaction

    from faces.services import NEAREST_SQL

    rows = min(1000, limit * settings.FACE_MAX_VARIATIONS)
    ef_search = min(1000, max(settings.FACE_SEARCH_EF_SEARCH, rows))
    literal = "[" + ",".join(repr(float(value)) for value in vector) + "]"
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT set_config('hnsw.ef_search', %s, true)", [str(ef_search)])
        cursor.execute("SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true)")
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + NEAREST_SQL, [literal, keyspace.pk, rows, limit])
        return [line for (line,) in cursor.fetchall()]


def scenario_recognition(photo_dir: Path, *, sizes: list[int], probes: int, embedded: bool) -> list[dict]:
    import base64
    import json

    from django.test import Client

    from analytics.face.engine import face_engine
    from core.images import image_from_bytes
    from faces import services
    from faces.models import Keyspace

    engine = face_engine()
    client = Client()
    files = real_photos(photo_dir)
    keyspace = Keyspace.objects.create(name=f"{BENCH_PREFIX}recognition")
    # The real people, enrolled through the service from one photo each.
    services.face_enroll(
        keyspace=keyspace.name, image=image_from_bytes(files["obama.jpg"], field="p"), face_id="obama"
    )
    services.face_enroll(
        keyspace=keyspace.name, image=image_from_bytes(files["astronaut.jpg"], field="p"), face_id="collins"
    )
    probe_names = ["obama2.jpg", "obama3.jpg", "obama_partial_face.jpg", "biden.jpg", "astronaut.jpg"]
    bodies = {
        name: json.dumps(
            {
                "image": base64.b64encode(files[name]).decode(),
                "keyspace": keyspace.name,
                "additional_params": {"candidate_count": 5},
            }
        )
        for name in probe_names
    }
    rng = np.random.default_rng(14)
    results = []
    enrolled = 0
    try:
        for size in sorted(sizes):
            more = bench_faces.unit_vectors(rng, size - enrolled)
            if embedded:
                bench_faces.index_drop()
            started = time.perf_counter()
            bench_faces.bulk_enroll(keyspace, more, start=enrolled)
            load_s = time.perf_counter() - started
            build_s = bench_faces.index_build() if embedded else 0.0
            enrolled = size
            say(
                f"\nrecognition: {size:,} synthetic enrolled faces inserted directly (COPY, not through "
                f"the API) in {load_s:.1f} s, index built in {build_s:.1f} s; probes are real photos"
            )
            indexes = embedding_index()
            for name, definition in indexes:
                say(f"  index {name}: {definition}")
            kinds = sorted(
                {"hnsw" if "hnsw" in d else "ivfflat" if "ivfflat" in d else "other" for _, d in indexes}
            )
            _, probe_vector = services.face_for_search(
                image_from_bytes(files["obama3.jpg"], field="p").pixels
            )
            plan = search_plan(keyspace, probe_vector, 5)
            uses_index = any(name in line for line in plan for name, _ in indexes)
            say("  plan of the search query:")
            for line in plan:
                say("    " + VECTOR_LITERAL.sub("'[...]'::vector", line))
            route_ms, model_ms, db_ms, top1 = [], [], [], []
            for turn in range(probes + len(probe_names)):  # the first round warms the caches
                name = probe_names[turn % len(probe_names)]
                started = time.perf_counter()
                response = client.post("/v1/face/recognition", bodies[name], content_type="application/json")
                elapsed = 1000 * (time.perf_counter() - started)
                assert response.status_code == 200, response.content[:300]
                candidates = response.json()["result"]["face_recognition"]["candidates"]
                # The same photo: the models alone, then the database part alone.
                started = time.perf_counter()
                image = image_from_bytes(files[name], field="p")
                _, vector = services.face_for_search(image.pixels)
                model_elapsed = 1000 * (time.perf_counter() - started)
                started = time.perf_counter()
                services.faces_nearest(keyspace=keyspace, embedding=vector, limit=5)
                db_elapsed = 1000 * (time.perf_counter() - started)
                if turn < len(probe_names):
                    continue
                route_ms.append(elapsed)
                model_ms.append(model_elapsed)
                db_ms.append(db_elapsed)
                expected = {"obama2.jpg": "obama", "obama3.jpg": "obama", "obama_partial_face.jpg": "obama"}
                expected["astronaut.jpg"] = "collins"
                if name in expected:
                    top1.append(bool(candidates) and candidates[0]["face_id"] == expected[name])
            result = {
                "bench": "face_recognition_route",
                "enrolled": size + 2,
                "synthetic": size,
                "synthetic_inserted_directly": True,
                "probes": len(route_ms),
                "route_p50_ms": round(percentile(route_ms, 0.5), 1),
                "route_p95_ms": round(percentile(route_ms, 0.95), 1),
                "models_p50_ms": round(percentile(model_ms, 0.5), 1),
                "models_p95_ms": round(percentile(model_ms, 0.95), 1),
                "db_p50_ms": round(percentile(db_ms, 0.5), 1),
                "db_p95_ms": round(percentile(db_ms, 0.95), 1),
                "goal_p95_ms": GOAL_P95_MS,
                "ratio_p95_to_goal": round(percentile(route_ms, 0.95) / GOAL_P95_MS, 3),
                "top1_correct": round(sum(top1) / max(len(top1), 1), 3),
                "index_kinds": kinds,
                "plan_uses_index": uses_index,
                "embedder": engine.embedder.name,
                "embedder_provider": engine.embedder.provider,
                "loadavg_1m": round(os.getloadavg()[0], 2),
            }
            say(
                f"  /v1/face/recognition at {size + 2:,} enrolled: p50 {result['route_p50_ms']} ms, p95 "
                f"{result['route_p95_ms']} ms (goal < {GOAL_P95_MS:g}: x{result['ratio_p95_to_goal']}); "
                f"models alone p50 {result['models_p50_ms']} / p95 {result['models_p95_ms']} ms; database "
                f"part p50 {result['db_p50_ms']} / p95 {result['db_p95_ms']} ms; index {kinds}, plan uses "
                f"it: {uses_index}; top-1 right {result['top1_correct']}"
            )
            emit(result)
            results.append(result)
    finally:
        bench_faces.cleanup()
    return results


# --- 4. NFV4-FR streams -------------------------------------------------------------------


# The faces are in view for SHOWN frames, then gone for GONE: longer than the tracker
# needs to end a track (END_FRAMES analysed frames and fr_timeout_dump), so four tracks
# end, and four faces are embedded, every SHOWN + GONE frames. (Faces that only moved
# would keep their tracks: the tracker continues a face by its appearance.)
SHOWN, GONE = 8, 5  # frames
ROWS = (40, 380)  # the two rows the faces alternate between (y of the top edge)


def crowd_frames(photo_dir: Path, count: int) -> list[np.ndarray]:
    """720p frames with four faces in a row for SHOWN frames, then none for GONE, then
    the faces in the other row. Each tile is the photo's face with a face's width of
    margin, 300 px tall (faces of ~130 px: sharp and large enough for every quality
    filter)."""
    from analytics.face.engine import face_engine

    detector = face_engine().detector
    files = real_photos(photo_dir)
    tiles = []
    for name in ("obama.jpg", "biden.jpg", "obama3.jpg", "astronaut.jpg"):
        image = cv2.imdecode(np.frombuffer(files[name], np.uint8), cv2.IMREAD_COLOR)
        x, y, w, h = detector.detect(image)[0].box
        side = int(max(w, h) * 2.2)
        cx, cy = x + w // 2, y + h // 2
        x0, y0 = max(0, cx - side // 2), max(0, cy - side // 2)
        crop = image[y0 : y0 + side, x0 : x0 + side]
        tiles.append(cv2.resize(crop, (300, 300), interpolation=cv2.INTER_AREA))
    frames = []
    for index in range(count):
        frame = np.full((720, 1280, 3), 90, dtype=np.uint8)
        cycle, step = divmod(index, SHOWN + GONE)
        frames.append(frame)
        if step >= SHOWN:
            continue
        top = ROWS[cycle % 2]
        for slot, tile in enumerate(tiles):
            left = 20 + slot * 315
            frame[top : top + tile.shape[0], left : left + tile.shape[1]] = tile
    return frames


class OneAtATime:
    """The engine's embedder, one face per model call (how NFV4-FR embedded before batching)."""

    def __init__(self, embedder):
        self.embedder = embedder

    def __getattr__(self, name):
        return getattr(self.embedder, name)

    def embed_chips(self, chips):
        return np.concatenate([self.embedder.embed_chips(chip[None]) for chip in chips])


def scenario_streams(photo_dir: Path, *, streams_list: list[int], seconds: float, rounds: int) -> None:
    from analytics.face.batching import BatchingEmbedder
    from analytics.face.engine import DlibEmbedder, face_engine
    from analytics.face.plugin import FaceMatch, FaceRecognitionConfig, FaceRecognitionProcessor
    from analytics.plugins import Frame

    engine = face_engine()
    frames = crowd_frames(photo_dir, 2 * (SHOWN + GONE))
    enrolled = engine.embedder.embed_many(frames[0], engine.detector.detect(frames[0])[:1])[0]

    def matcher(embedding, keyspace):  # in memory: the figures are the models', not the database's
        return FaceMatch(face_id="p", similarity=engine.similarity(embedding, enrolled), name="P")

    config = FaceRecognitionConfig(fr_timeout_dump=100, dumping_interval=0, fr_min_face_size=32)
    # dlib: dlib itself running its network, one face per call (before the network
    # ran on ONNX Runtime); unbatched: the ONNX Runtime embedder, one face per model
    # call (before batching); frame: the worker's runtime at batch size 1 (each stream
    # embeds a frame's due faces in one call); streams: the runtime batching across
    # streams (batch 8, wait 5 ms).
    dlib_embedder = DlibEmbedder(engine.embedder.aligner)
    modes = {"dlib": None, "unbatched": None, "frame": 1, "streams": 8}
    say(f"\nstreams: crowd frames (4 faces in view for {SHOWN} frames, then none for {GONE}); modes {modes}")
    for streams in streams_list:
        rates: dict[str, list[float]] = {mode: [] for mode in modes}
        embeds: dict[str, int] = {}
        batches: dict[str, float] = {}
        for round_ in range(rounds):
            order = list(modes) if round_ % 2 == 0 else list(reversed(modes))
            for mode in order:
                runtime = None
                if mode == "dlib":
                    embedder = OneAtATime(dlib_embedder)
                elif modes[mode] is None:
                    embedder = OneAtATime(engine.embedder)
                else:
                    runtime = BatchingEmbedder(
                        engine.embedder, batch_size=modes[mode], max_wait_ms=5, capacity=256
                    )
                    embedder = runtime
                processors = [
                    FaceRecognitionProcessor(config, engine=engine, matcher=matcher, embedder=embedder)
                    for _ in range(streams)
                ]

                def analyse(index: int, n: int, processors=processors) -> None:
                    # Each stream starts at its own frame; its clock is its frame count at 25 fps.
                    frame = frames[(n + index * 3) % len(frames)]
                    processors[index].process(
                        Frame(image=frame, timestamp=n / 25, index=n, stream_id=f"s{index}", node_num=0)
                    )

                try:
                    analysed, _cpu = closed_loop(streams, seconds, analyse)
                finally:
                    if runtime is not None:
                        runtime.stop()
                        batches[mode] = runtime.stats()["mean_batch_size"]
                rates[mode].append(analysed / seconds)
                embeds[mode] = sum(p.matches for p in processors)
        if not all(embeds.values()):
            raise SystemExit(f"streams: a mode embedded no face ({embeds}): the scenario measures nothing")
        ratios = {
            mode: [r / u for r, u in zip(rates[mode], rates["unbatched"], strict=True)]
            for mode in modes
            if mode != "unbatched"
        }
        result = {
            "bench": "face_streams_batching",
            "streams": streams,
            **{f"{mode}_fps_total": round(statistics.median(rates[mode]), 2) for mode in modes},
            **{
                f"{mode}_fps_per_stream": round(statistics.median(rates[mode]) / streams, 2) for mode in modes
            },
            **{f"ratio_{mode}": round(statistics.median(values), 3) for mode, values in ratios.items()},
            **{f"ratio_{mode}_rounds": [round(r, 3) for r in values] for mode, values in ratios.items()},
            "mean_batch_size_last_round": batches,
            "embeddings_last_round": embeds,
            "loadavg_1m": round(os.getloadavg()[0], 2),
        }
        say(
            f"  {streams} stream(s): "
            + "; ".join(
                f"{mode} {result[f'{mode}_fps_total']} frames/s "
                f"({result[f'{mode}_fps_per_stream']} per stream)"
                for mode in modes
            )
        )
        say(
            "    against unbatched: "
            + ", ".join(
                f"{mode} x{result[f'ratio_{mode}']} (rounds {result[f'ratio_{mode}_rounds']})"
                for mode in ratios
            )
            + f"; faces embedded in the last round {embeds}, mean batch {batches}"
        )
        emit(result)


# --- main -----------------------------------------------------------------------------------


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and short windows, for a smoke run")
    parser.add_argument("--only", choices=["embed", "enroll", "recognition", "streams"], action="append")
    parser.add_argument("--sizes", default="10000,100000", help="synthetic enrolled faces for recognition")
    parser.add_argument("--probes", type=int, default=100, help="recognition requests per size")
    parser.add_argument("--seconds", type=float, default=8.0, help="window per mode and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--photos", type=int, default=48, help="photo files for the enrollment figure")
    parser.add_argument(
        "--photo-cache",
        type=Path,
        default=Path(os.environ.get("VISIONAIRE_DATA_DIR", ROOT / "data")) / "cache",
        help="where the face_recognition test photos are cached",
    )
    args = parser.parse_args(argv)
    args.sizes = [int(size) for size in args.sizes.split(",")]
    if args.quick:
        args.sizes, args.probes, args.seconds, args.rounds, args.photos = [2000], 20, 3.0, 2, 14
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    scenarios = args.only or ["embed", "enroll", "recognition", "streams"]
    started = time.monotonic()
    info = machine()
    info.setdefault("opencv", cv2.__version__)
    say(
        f"machine: {info['nproc']} CPUs ({info['cpu']}), {info['ram_gib']} GiB RAM, Python {info['python']}, "
        f"OpenCV {info['opencv']}, load average {info['loadavg_1m']}"
    )
    emit({"bench": "machine", **info})
    from tests.support.face_photos import face_photos_dir

    photo_dir = face_photos_dir(args.photo_cache)
    data_dir = Path(tempfile.mkdtemp(prefix="visionaire-bench-face-batching-"))
    try:
        with bench_faces.servers(data_dir) as endpoints:
            bench_faces.django_setup(endpoints, data_dir)
            from analytics.face.batching import default_batch_size
            from analytics.face.engine import face_engine

            engine = face_engine()
            engine.warm_up()
            say(f"face engine: {engine.describe()}")
            batch = default_batch_size(engine.embedder)  # across streams
            try:
                if "embed" in scenarios:
                    measured = scenario_embed(
                        photo_dir, streams_list=[1, 4, 8], seconds=args.seconds, rounds=args.rounds
                    )
                    say(f"  fastest at 4 streams: batch size {measured}; the default here is {batch}")
                if "enroll" in scenarios:
                    scenario_enroll(
                        photo_dir,
                        count=args.photos,
                        rounds=max(2, args.rounds - 1),
                        batch_size=default_batch_size(engine.embedder, bulk=True),
                    )
                if "recognition" in scenarios:
                    scenario_recognition(
                        photo_dir, sizes=args.sizes, probes=args.probes, embedded=endpoints.embedded
                    )
                if "streams" in scenarios:
                    scenario_streams(photo_dir, streams_list=[1, 4], seconds=args.seconds, rounds=args.rounds)
            finally:
                bench_faces.cleanup()
                if endpoints.embedded:
                    bench_faces.index_build()
                from django.db import connections

                connections.close_all()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    say(f"\ntotal bench time {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
