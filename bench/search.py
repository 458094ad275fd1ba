"""Smart search and retention benchmark (issue 6).

    .venv/bin/python bench/search.py            # full run: 1,000,000 events, about 15-25 minutes on 2 cores
    .venv/bin/python bench/search.py --quick    # smoke run: 100,000 events, a few minutes

1. load       N events (default 1,000,000) with 128-d embeddings, by binary COPY
              (indexes dropped during the load and built afterwards, as a bulk
              import would, with maintenance_work_mem raised: each build timed).
              Embeddings are synthetic but shaped like face embeddings: 2% of N
              identities around a mean face, each event a sighting of one
              (identity centre + noise), so that two sightings of one person score
              ~0.9 and different people ~0.67 with the dlib mapping, as the face
              engine measures on photos; the photo the route scenario searches
              with is placed among them.
2. search     image search at the database layer (events.search.events_nearest:
              the HNSW query ordered by cosine distance, SET LOCAL ef_search),
              queries = new sightings of random identities: p50/p95 latency and
              recall@10 against an exact scan (numpy over the same vectors, checked
              against PostgreSQL's exact scan on a few queries), per ef_search;
              the same with a stream filter (iterative index scan), and recall on
              uniform random queries (no structure: the hardest case).
3. route      POST /smart-search through Django (type image: a real photo,
              face detection + embedding + HNSW + crops; type text: trigram and
              full text over the N events), p50/p95, with the face engine's own
              share measured on the same photo.
4. ingest     events per second through the batched event writer
              (workers.event_sink.EventSink) with a real face crop (JPEG) and an
              embedding each, into the N-row table with every index in place,
              against one event per transaction (events.services.event_create).
5. retention  the retention job (events.retention.events_retention_run) removing
              100,000 expired events and their crop files, in 1000-row batches,
              while a thread keeps searching: time, rows/s, and search p95 during
              the job against p95 before it.

Servers: embedded PostgreSQL and Redis in a temporary folder deleted afterwards;
or DATABASE_URL and REDIS_URL when both are set (then nothing is dropped: the
load goes through the live indexes, the bench's rows are deleted at the end, and
the retention scenario is skipped, since it would remove that database's own
expired events). Readable lines, ratios, and one JSON line per figure ({"bench": ...}).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import struct
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from bench._common import django_setup, emit, machine, percentile, say, servers  # noqa: E402

DIM = 128
STREAMS = 100
STREAM_PREFIX = "bec0"  # bench stream ids: bec0 + 12 hex digits
IDENTITY_SHARE = 0.02  # identities per event: ~50 sightings each
CENTRE_SPREAD = 0.5  # identity centres around a common mean: different people ~0.2 apart (cosine)
SIGHTING_NOISE = 0.25  # sightings around their centre: the same person ~0.06 apart
RETENTION_DAYS = 30
HNSW = "event_embedding_hnsw"
TRGM = "event_search_trgm"
FTS = "event_search_fts"
INDEX_SQL = {
    HNSW: f"CREATE INDEX {HNSW} ON events_event USING hnsw (embedding vector_cosine_ops) "
    "WITH (m = 16, ef_construction = 64)",
    TRGM: f"CREATE INDEX {TRGM} ON events_event USING gin (search_text gin_trgm_ops)",
    FTS: f"CREATE INDEX {FTS} ON events_event USING gin "
    "(to_tsvector('simple'::regconfig, COALESCE(search_text, ''::text)))",
}
PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


# --- servers and Django -----------------------------------------------------------


def sql(statement: str, params=None):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall() if cursor.description else None


# --- 1. load ----------------------------------------------------------------------------


def unit(vectors: np.ndarray) -> np.ndarray:
    return (vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)).astype(np.float32)


class Corpus:
    """The synthetic sightings: identity centres and each event's vector."""

    def __init__(self, rows: int, *, anchor: np.ndarray | None = None, seed: int = 2024):
        self.rng = np.random.default_rng(seed)
        identities = max(10, int(rows * IDENTITY_SHARE))
        # The identities surround a mean face; `anchor` (a real embedding) is placed as
        # one of them, so a real photo's query lands among the synthetic people, not
        # far from all of them (where no graph leads).
        if anchor is None:
            self.mean = unit(self.rng.standard_normal(DIM))
        else:
            self.mean = unit(unit(anchor) + CENTRE_SPREAD * unit(self.rng.standard_normal(DIM)))
        self.centres = unit(self.mean + CENTRE_SPREAD * unit(self.rng.standard_normal((identities, DIM))))
        self.identity = self.rng.integers(0, identities, rows)
        self.vectors = np.empty((rows, DIM), dtype=np.float32)
        for start in range(0, rows, 100_000):
            stop = min(rows, start + 100_000)
            self.vectors[start:stop] = self.sightings(self.identity[start:stop])
        self.stream = self.rng.integers(0, STREAMS, rows)
        self.event_ids = [uuid.UUID(bytes=self.rng.bytes(16), version=4) for _ in range(rows)]

    def sightings(self, identities: np.ndarray) -> np.ndarray:
        noise = unit(self.rng.standard_normal((len(identities), DIM)))
        return unit(self.centres[identities] + SIGHTING_NOISE * noise)


def stream_id(index: int) -> str:
    return f"{STREAM_PREFIX}{index:012x}"


FIRST_NAMES = (
    "John Jane Ayu Budi Dewi Eko Fajar Gita Hadi Indah Joko Kartika Lina Made Nia Oscar Putri Rudi Sari "
    "Tono Umar Vina Wawan Yusuf Zahra Adi Bima Citra Dian Erik Farah Galih Hana Ilham Jihan Kevin Laras "
    "Maya Nanda Oki Rina Sinta Taufik Wulan Yoga Maria Peter Anna David Sarah Michael Linda Robert Emma"
).split()
LAST_NAMES = (
    "Doe Pratama Santoso Wijaya Saputra Hidayat Kusuma Lestari Nugroho Permana Rahman Setiawan Utami "
    "Wibowo Gunawan Halim Tanoto Siregar Nasution Simanjuntak Smith Johnson Brown Garcia Miller Davis "
    "Wilson Taylor Anderson Thomas Moore Martin Lee Walker Hall Young King Wright Scott Green Baker"
).split()
PLACES = (
    "Lobby Gate Parking Warehouse Canteen Corridor Entrance Exit Loading Dock Elevator Stairs Office "
    "Reception Garden Rooftop Basement Hall Workshop Clinic"
).split()


def person_name(identity: int) -> str:
    return f"{FIRST_NAMES[identity % len(FIRST_NAMES)]} {LAST_NAMES[(identity // 7) % len(LAST_NAMES)]}"


def camera_name(stream: int) -> str:
    return f"Camera {PLACES[stream % len(PLACES)]} {stream // len(PLACES) + 1}"


def _field(data: bytes) -> bytes:
    return struct.pack(">i", len(data)) + data


def copy_rows(corpus: Corpus, *, expired: int, crop_names: list[str], now: datetime) -> float:
    """All events by one binary COPY (built here, chunk by chunk); returns seconds.

    The first `expired` rows are 31 to 60 days old (past the retention of 30
    days) and name a crop file each; the others are spread over the last 29 days.
    A third of the events carry a name (a recognised person), all "face" and
    their stream's name as search text, as the face analytics store them."""
    from django.db import connection

    rows = len(corpus.vectors)
    rng = np.random.default_rng(7)
    ages = np.where(
        np.arange(rows) < expired,
        rng.uniform(31 * 86400, 60 * 86400, rows),
        rng.uniform(0, 29 * 86400, rows),
    )
    now_us = int((now - PG_EPOCH).total_seconds() * 1_000_000)
    big_endian = corpus.vectors.astype(">f4")
    vector_header = struct.pack(">ihh", 4 + 4 * DIM, DIM, 0)
    named = rng.random(rows) < 1 / 3
    started = time.perf_counter()
    connection.ensure_connection()
    raw = connection.connection
    columns = (
        "event_id, stream_id, stream_name, node_num, analytic_id, timestamp, primary_text, "
        "secondary_text, pipeline_data, image, embedding, search_text"
    )
    with raw.cursor() as cursor:
        with cursor.copy(f"COPY events_event ({columns}) FROM STDIN WITH (FORMAT BINARY)") as copy:
            copy.write(b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0))
            chunk: list[bytes] = []
            for row in range(rows):
                stream = int(corpus.stream[row])
                name = person_name(int(corpus.identity[row])) if named[row] else ""
                camera = camera_name(stream)
                text = " ".join(part for part in ("face", name, camera) if part)
                chunk.append(
                    b"\x00\x0c"
                    + _field(corpus.event_ids[row].bytes)
                    + _field(stream_id(stream).encode())
                    + _field(camera.encode())
                    + _field(b"\x00\x00\x00\x00")
                    + _field(b"NFV4-SS")
                    + _field(struct.pack(">q", now_us - int(ages[row] * 1_000_000)))
                    + _field(name.encode())
                    + _field(b"Employee" if name else b"")
                    + _field(b'\x01{"object": "face"}')
                    + _field((crop_names[row] if row < len(crop_names) else "").encode())
                    + vector_header
                    + big_endian[row].tobytes()
                    + _field(text.encode())
                )
                if len(chunk) == 20_000:
                    copy.write(b"".join(chunk))
                    chunk = []
            copy.write(b"".join(chunk) + b"\xff\xff")
    if not raw.autocommit:
        raw.commit()
    return time.perf_counter() - started


def index_build(name: str) -> float:
    started = time.perf_counter()
    sql("SET maintenance_work_mem = '2GB'")
    sql(f"SET max_parallel_maintenance_workers = {max(1, (os.cpu_count() or 2) - 1)}")
    sql(INDEX_SQL[name])
    sql("RESET maintenance_work_mem")
    sql("RESET max_parallel_maintenance_workers")
    return time.perf_counter() - started


def crops_write(media_root: Path, count: int, jpeg: bytes) -> list[str]:
    folder = media_root / "events" / "bench" / "old"
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for index in range(count):
        name = f"events/bench/old/{index:07d}.jpg"
        (media_root / name).write_bytes(jpeg)
        names.append(name)
    return names


def scenario_load(corpus: Corpus, *, expired: int, embedded: bool, crop_jpeg: bytes) -> dict:
    from django.conf import settings

    crop_names = crops_write(Path(settings.MEDIA_ROOT), expired, crop_jpeg) if expired else []
    if embedded:
        for name in INDEX_SQL:
            sql(f"DROP INDEX IF EXISTS {name}")
    load_s = copy_rows(corpus, expired=expired, crop_names=crop_names, now=datetime.now(UTC))
    builds = {name: index_build(name) for name in INDEX_SQL} if embedded else {}
    started = time.perf_counter()
    sql("VACUUM ANALYZE events_event")
    vacuum_s = time.perf_counter() - started
    size = sql("SELECT pg_total_relation_size('events_event'), pg_relation_size(%s)", [HNSW])[0]
    result = {
        "bench": "search_load",
        "rows": len(corpus.vectors),
        "copy_s": round(load_s, 1),
        "rows_per_s": round(len(corpus.vectors) / load_s),
        **{f"build_{name}_s": round(seconds, 1) for name, seconds in builds.items()},
        "vacuum_analyze_s": round(vacuum_s, 1),
        "table_total_mb": round(size[0] / 2**20),
        "hnsw_mb": round(size[1] / 2**20),
        "expired_rows_with_crops": expired,
    }
    say(
        f"\nloaded {result['rows']:,} events by COPY in {result['copy_s']} s "
        f"({result['rows_per_s']:,} rows/s)"
        + (
            f"; index builds: HNSW {result.get(f'build_{HNSW}_s')} s, trigram GIN "
            f"{result.get(f'build_{TRGM}_s')} s, full-text GIN {result.get(f'build_{FTS}_s')} s"
            if builds
            else " (through the live indexes)"
        )
        + f"; table with indexes {result['table_total_mb']} MB, HNSW {result['hnsw_mb']} MB"
    )
    emit(result)
    return result


# --- 2. search at the database layer -----------------------------------------------------


def exact_top(corpus: Corpus, query: np.ndarray, k: int, mask: np.ndarray | None = None) -> list:
    scores = corpus.vectors @ query
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    top = np.argpartition(-scores, k)[:k]
    top = top[np.argsort(-scores[top])]
    return [corpus.event_ids[i] for i in top]


def sql_exact_top(query: np.ndarray, k: int) -> list:
    """PostgreSQL's own exact answer: the index switched off for the query."""
    from django.db import connection, transaction

    from events.search import _vector_literal

    literal = _vector_literal(query)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_indexscan = off")
        cursor.execute(
            "SELECT event_id FROM events_event WHERE embedding IS NOT NULL "
            "ORDER BY embedding <=> %s::vector LIMIT %s",
            [literal, k],
        )
        return [row[0] for row in cursor.fetchall()]


def timed_nearest(queries, k: int, ef: int, filters=None) -> tuple[list[float], list[list]]:
    from events.search import SearchFilters, events_nearest

    filters = filters or SearchFilters()
    for query in queries[:5]:  # warm the plan and the index pages
        events_nearest(embedding=query, filters=filters, limit=k, ef_search=ef)
    latencies, found = [], []
    for query in queries:
        started = time.perf_counter()
        rows = events_nearest(embedding=query, filters=filters, limit=k, ef_search=ef)
        latencies.append(1000 * (time.perf_counter() - started))
        found.append([row[0] for row in rows])
    return latencies, found


def recall(found: list[list], truth: list[list], k: int) -> float:
    return statistics.fmean(len(set(a) & set(b)) / min(k, len(b)) for a, b in zip(found, truth, strict=True))


def plan_uses_hnsw(query: np.ndarray, k: int) -> bool:
    from django.db import connection, transaction

    from events.search import _vector_literal

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("EXPLAIN SELECT event_id FROM events_event ORDER BY embedding <=> %s::vector LIMIT %s",
                       [_vector_literal(query), k])  # fmt: skip
        return HNSW in "\n".join(row[0] for row in cursor.fetchall())


def scenario_search(corpus: Corpus, *, queries: int, k: int, ef_values: list[int]) -> list[dict]:
    from events.search import SearchFilters

    rng = np.random.default_rng(99)
    picks = rng.integers(0, len(corpus.centres), queries)
    faces = corpus.sightings(picks)
    started = time.perf_counter()
    truth = [exact_top(corpus, query, k) for query in faces]
    numpy_ms = 1000 * (time.perf_counter() - started) / queries
    # The numpy answer is PostgreSQL's exact scan: checked on a few queries, timed.
    checks, sql_ms = [], []
    for query, expected in list(zip(faces, truth, strict=True))[:3]:
        started = time.perf_counter()
        checks.append(set(sql_exact_top(query, k)) == set(expected))
        sql_ms.append(1000 * (time.perf_counter() - started))
    say(
        f"\nexact scan: PostgreSQL (index off) {statistics.fmean(sql_ms):.0f} ms per query, "
        f"agrees with numpy's exact top-{k} on {sum(checks)}/{len(checks)} queries "
        f"(numpy {numpy_ms:.0f} ms per query, used for the recall of all {queries})"
    )
    uses_index = plan_uses_hnsw(faces[0], k)
    results = []
    for ef in ef_values:
        latencies, found = timed_nearest(faces, k, ef)
        result = {
            "bench": "search_db",
            "case": "face-like queries",
            "rows": len(corpus.vectors),
            "queries": queries,
            "k": k,
            "ef_search": ef,
            "p50_ms": round(percentile(latencies, 0.5), 2),
            "p95_ms": round(percentile(latencies, 0.95), 2),
            f"recall_at_{k}": round(recall(found, truth, k), 4),
            "exact_scan_ms": round(statistics.fmean(sql_ms), 1),
            "speedup_vs_exact_p95": round(statistics.fmean(sql_ms) / percentile(latencies, 0.95), 1),
            "plan_uses_hnsw": uses_index,
        }
        say(
            f"search (DB layer), ef_search {ef}: p50 {result['p50_ms']} ms, p95 {result['p95_ms']} ms, "
            f"recall@{k} {result[f'recall_at_{k}']} (targets: p95 < 50 ms, recall >= 0.95); "
            f"x{result['speedup_vs_exact_p95']} faster than the exact scan"
        )
        emit(result)
        results.append(result)

    # Filters: one stream of 100 (1% of the rows: compared exactly, SEARCH_EXACT_SCAN_MAX), and
    # ten streams (10%: the HNSW index scanned iteratively under the filter).
    for label, streams in [
        ("one stream of 100 (exact)", [7]),
        ("ten streams of 100 (HNSW iterative)", range(10)),
    ]:
        mask = np.isin(corpus.stream, list(streams))
        filtered_truth = [exact_top(corpus, query, k, mask) for query in faces]
        filters = SearchFilters(stream_ids=[stream_id(index) for index in streams])
        latencies, found = timed_nearest(faces, k, ef_values[0], filters)
        result = {
            "bench": "search_db",
            "case": f"filter: {label}",
            "rows": int(mask.sum()),
            "queries": queries,
            "k": k,
            "ef_search": ef_values[0],
            "p50_ms": round(percentile(latencies, 0.5), 2),
            "p95_ms": round(percentile(latencies, 0.95), 2),
            f"recall_at_{k}": round(recall(found, filtered_truth, k), 4),
        }
        say(
            f"search with a filter, {label}, {result['rows']:,} rows: p50 {result['p50_ms']} ms, "
            f"p95 {result['p95_ms']} ms, recall@{k} {result[f'recall_at_{k}']}"
        )
        emit(result)
        results.append(result)

    # Uniform random queries: nothing near them, every neighbour almost equally far.
    uniform = unit(rng.standard_normal((min(queries, 100), DIM)))
    uniform_truth = [exact_top(corpus, query, k) for query in uniform]
    for ef in ef_values:
        latencies, found = timed_nearest(uniform, k, ef)
        result = {
            "bench": "search_db",
            "case": "uniform random queries",
            "rows": len(corpus.vectors),
            "queries": len(uniform),
            "k": k,
            "ef_search": ef,
            "p50_ms": round(percentile(latencies, 0.5), 2),
            "p95_ms": round(percentile(latencies, 0.95), 2),
            f"recall_at_{k}": round(recall(found, uniform_truth, k), 4),
        }
        say(
            f"search, uniform random queries, ef_search {ef}: p95 {result['p95_ms']} ms, "
            f"recall@{k} {result[f'recall_at_{k}']}"
        )
        emit(result)
        results.append(result)
    return results


# --- 3. through the route ---------------------------------------------------------------


def scenario_route(*, requests: int, photo) -> list[dict]:
    import base64

    from django.test import Client

    from analytics.face.engine import crop_jpeg, face_engine
    from events.services import event_create
    from streams.models import Stream
    from tests.support.face_photos import jpeg_bytes

    client = Client()
    engine = face_engine()
    engine.warm_up()
    data = jpeg_bytes(photo)
    # Ten sightings of the photo's person with their crops, so that the route's answer
    # carries ten results with their JPEGs (the synthetic events have no crop files).
    faces, embeddings = engine.analyze(photo)
    crop = crop_jpeg(photo, faces[0])
    rng = np.random.default_rng(5)
    stream = Stream(stream_id=stream_id(3), node_id=0, name=camera_name(3), address="file:///bench.mp4")
    for vector in unit(embeddings[0] + 0.05 * unit(rng.standard_normal((10, DIM)))):
        event_create(
            stream=stream,
            analytic_id="NFV4-SS",
            timestamp=datetime.now(UTC),
            pipeline_data={"object": "face"},
            image_jpeg=crop,
            embedding=[float(value) for value in vector],
            search_text="face",
        )
    body = json.dumps({"type": "image", "query": base64.b64encode(data).decode(), "limit": 10})
    results = []
    for _ in range(3):
        client.post("/smart-search", body, content_type="application/json")
    route_ms, engine_ms = [], []
    for _ in range(requests):
        started = time.perf_counter()
        response = client.post("/smart-search", body, content_type="application/json")
        route_ms.append(1000 * (time.perf_counter() - started))
        assert response.status_code == 200, response.content[:300]
        started = time.perf_counter()
        import cv2

        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        faces = engine.detector.detect(image)
        engine.embedder.embed_many(image, faces[:5])
        engine_ms.append(1000 * (time.perf_counter() - started))
    result = {
        "bench": "search_route",
        "case": "image",
        "requests": requests,
        "results": len(response.json()["results"]),
        "p50_ms": round(percentile(route_ms, 0.5), 1),
        "p95_ms": round(percentile(route_ms, 0.95), 1),
        "face_engine_p50_ms": round(percentile(engine_ms, 0.5), 1),
        "rest_p50_ms": round(percentile(route_ms, 0.5) - percentile(engine_ms, 0.5), 1),
        "provider": engine.provider,
    }
    say(
        f"\nroute POST /smart-search type image ({photo.shape[1]}x{photo.shape[0]} photo, limit 10): "
        f"p50 {result['p50_ms']} ms, p95 {result['p95_ms']} ms; of which face detection + embedding "
        f"p50 {result['face_engine_p50_ms']} ms ({engine.provider}); decoding, HNSW search, crops "
        f"and JSON ~{result['rest_p50_ms']} ms"
    )
    emit(result)
    results.append(result)

    for label, query in [
        ("a name", person_name(1234)),
        ("a name with typos", "jon doe"),
        ("a partial word", "santo"),
        ("a stream name (1% of rows)", camera_name(17).lower()),
        ("a word every event has", "face"),
    ]:
        body = json.dumps({"type": "text", "query": query, "limit": 50})
        client.post("/smart-search", body, content_type="application/json")
        latencies = []
        for _ in range(max(5, requests // 3)):
            started = time.perf_counter()
            response = client.post("/smart-search", body, content_type="application/json")
            latencies.append(1000 * (time.perf_counter() - started))
            assert response.status_code == 200
        found = response.json()["results"]
        result = {
            "bench": "search_route",
            "case": f"text: {label}",
            "query": query,
            "requests": len(latencies),
            "results": len(found),
            "top_similarity": found[0]["similarity"] if found else None,
            "p50_ms": round(percentile(latencies, 0.5), 1),
            "p95_ms": round(percentile(latencies, 0.95), 1),
        }
        say(
            f"route POST /smart-search type text, {label} ({query!r}): p50 {result['p50_ms']} ms, "
            f"p95 {result['p95_ms']} ms, {len(found)} results"
        )
        emit(result)
        results.append(result)
    return results


# --- 4. ingest through the writer --------------------------------------------------------


def scenario_ingest(*, count: int, crop: bytes, corpus: Corpus) -> dict:
    from django.conf import settings

    from analytics.plugins import EventRecord
    from events.services import event_create
    from streams.models import Stream
    from workers.desired import DesiredStream
    from workers.event_sink import EventSink

    desired = DesiredStream(
        stream_id=stream_id(1), node_num=0, name="Camera 001", address="file:///bench.mp4",
        latitude=0.0, longitude=0.0, active=True, pipelines=(),
    )  # fmt: skip
    vectors = corpus.sightings(np.arange(count) % len(corpus.centres))
    records = [
        EventRecord(
            pipeline_data={"object": "face", "track_id": index},
            image_jpeg=crop,
            embedding=[float(value) for value in vectors[index]],
            search_text="face",
        )
        for index in range(count)
    ]
    sink = EventSink(
        capacity=count + 10,
        batch_size=settings.EVENT_BATCH_SIZE,
        batch_wait_s=settings.EVENT_BATCH_WAIT_MS / 1000,
    )
    try:
        started = time.perf_counter()
        now = time.time()
        for record in records:
            assert sink.submit(record.for_stream(desired, analytic_id="NFV4-SS", emitted_at=now))
        assert sink.flush(timeout=600), "the writer did not drain"
        batched_s = time.perf_counter() - started
        stats = sink.stats()
    finally:
        sink.stop(timeout=30)
    assert stats["written"] == count, stats

    single = max(50, count // 10)
    stream = Stream(stream_id=stream_id(2), node_id=0, name="Camera 002", address="file:///bench.mp4")
    started = time.perf_counter()
    for index in range(single):
        event_create(
            stream=stream,
            analytic_id="NFV4-SS",
            timestamp=datetime.now(UTC),
            pipeline_data={"object": "face"},
            image_jpeg=crop,
            embedding=[float(value) for value in vectors[index]],
            search_text="face",
        )
    single_s = time.perf_counter() - started
    result = {
        "bench": "search_ingest",
        "events": count,
        "crop_bytes": len(crop),
        "batched_events_per_s": round(count / batched_s),
        "batch_size": settings.EVENT_BATCH_SIZE,
        "batches": stats["batches"],
        "one_per_transaction_events_per_s": round(single / single_s),
        "ratio_batched_vs_single": round((count / batched_s) / (single / single_s), 2),
        "table_rows": sql("SELECT count(*) FROM events_event")[0][0],
    }
    say(
        f"\ningest through the batched writer: {result['batched_events_per_s']} events/s "
        f"({count} events with a {len(crop)} B crop and an embedding, {stats['batches']} batches) into "
        f"{result['table_rows']:,} rows with every index; one event per transaction "
        f"{result['one_per_transaction_events_per_s']} events/s; ratio x{result['ratio_batched_vs_single']}"
    )
    emit(result)
    return result


# --- 5. retention -------------------------------------------------------------------------


def scenario_retention(*, expired: int, corpus: Corpus, k: int, ef: int) -> dict:
    from django.conf import settings
    from django.db import connections

    from events.retention import events_retention_run
    from platform_config.models import PlatformConfig
    from platform_config.selectors import platform_config_get, platform_config_invalidate

    platform_config_get()
    PlatformConfig.objects.filter(pk=1).update(
        event_retention_days=RETENTION_DAYS, max_events_per_stream=10**8
    )
    platform_config_invalidate()
    before_rows = sql("SELECT count(*) FROM events_event")[0][0]
    due = sql("SELECT count(*) FROM events_event WHERE timestamp < now() - interval '30 days'")[0][0]
    queries = corpus.sightings(np.arange(200) % len(corpus.centres))
    idle, _ = timed_nearest(queries[:100], k, ef)

    during: list[float] = []
    stop = threading.Event()

    def searching() -> None:
        from events.search import events_nearest

        try:
            index = 0
            while not stop.is_set():
                started = time.perf_counter()
                events_nearest(embedding=queries[index % len(queries)], limit=k, ef_search=ef)
                during.append(1000 * (time.perf_counter() - started))
                index += 1
        finally:
            connections.close_all()

    thread = threading.Thread(target=searching, daemon=True)
    thread.start()
    try:
        started = time.perf_counter()
        report = events_retention_run(batch_size=settings.RETENTION_BATCH_SIZE, time_budget_seconds=3600)
        seconds = time.perf_counter() - started
    finally:
        stop.set()
        thread.join(30)
    left = sql("SELECT count(*) FROM events_event")[0][0]
    files_left = sum(1 for _ in (Path(settings.MEDIA_ROOT) / "events" / "bench" / "old").glob("*.jpg"))
    result = {
        "bench": "search_retention",
        "expired_due": due,
        "removed": report.expired,
        "over_cap_removed": report.over_cap,
        "files_removed": report.files_removed,
        "crop_files_left": files_left,
        "rows_before": before_rows,
        "rows_after": left,
        "seconds": round(seconds, 1),
        "rows_per_s": round(report.expired / seconds) if seconds else None,
        "batch_size": settings.RETENTION_BATCH_SIZE,
        "search_p95_idle_ms": round(percentile(idle, 0.95), 2),
        "search_p95_during_ms": round(percentile(during, 0.95), 2) if during else None,
        "search_max_during_ms": round(max(during), 1) if during else None,
        "searches_during": len(during),
    }
    say(
        f"\nretention: removed {report.expired:,} expired events and {report.files_removed:,} crop files "
        f"in {result['seconds']} s ({result['rows_per_s']:,} rows/s, batches of {result['batch_size']}); "
        f"{left:,} rows left. Searches meanwhile: {len(during)}, p95 {result['search_p95_during_ms']} ms "
        f"(max {result['search_max_during_ms']} ms) against p95 {result['search_p95_idle_ms']} ms before"
    )
    emit(result)
    return result


def cleanup(embedded: bool) -> None:
    if not embedded:
        sql("DELETE FROM events_event WHERE stream_id LIKE %s", [f"{STREAM_PREFIX}%"])


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100,000 events, fewer queries: a smoke run")
    parser.add_argument("--rows", type=int, default=1_000_000, help="events loaded")
    parser.add_argument("--expired", type=int, default=100_000, help="of which past retention, with crops")
    parser.add_argument("--queries", type=int, default=200, help="queries per search figure")
    parser.add_argument("--k", type=int, default=10, help="recall@k and the search limit")
    parser.add_argument(
        "--ef-search", default="100,40,200", help="hnsw.ef_search values (first: the default)"
    )
    parser.add_argument("--route-requests", type=int, default=30, help="requests per route figure")
    parser.add_argument("--ingest", type=int, default=2000, help="events through the writer")
    parser.add_argument(
        "--only", choices=["search", "route", "ingest", "retention"], action="append", help="run only these"
    )
    parser.add_argument(
        "--keep",
        type=Path,
        help="embedded servers' folder kept between runs (loaded once; for trying settings, not for figures)",
    )
    args = parser.parse_args(argv)
    args.ef_search = [int(value) for value in args.ef_search.split(",")]
    if args.quick:
        args.rows, args.expired, args.queries, args.route_requests, args.ingest = 100_000, 10_000, 50, 10, 500
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    scenarios = args.only or ["search", "route", "ingest", "retention"]
    started = time.monotonic()
    info = machine()
    say(
        f"machine: {info['nproc']} CPUs ({info['cpu']}), {info['ram_gib']} GiB RAM, "
        f"Python {info['python']}, load average {info['loadavg_1m']}"
    )
    emit({"bench": "machine", **info})
    data_dir = args.keep or Path(tempfile.mkdtemp(prefix="visionaire-bench-search-"))
    try:
        with servers(data_dir) as endpoints:
            django_setup(endpoints, data_dir, VISIONAIRE_MEDIA_DIR=str(data_dir / "media"))
            try:
                from analytics.face.engine import crop_jpeg, face_engine
                from tests.support.face_photos import astronaut_bgr

                photo = astronaut_bgr()
                faces, embeddings = face_engine().analyze(photo)
                crop = crop_jpeg(photo, faces[0])
                say(f"generating {args.rows:,} face-like 128-d embeddings")
                corpus = Corpus(args.rows, anchor=embeddings[0])
                expired = args.expired if endpoints.embedded and "retention" in scenarios else 0
                loaded = sql("SELECT count(*) FROM events_event")[0][0]
                if args.keep and loaded >= args.rows:
                    say(f"reusing the {loaded:,} events of {args.keep}")
                else:
                    scenario_load(corpus, expired=expired, embedded=endpoints.embedded, crop_jpeg=crop)
                ef = args.ef_search[0]
                if "search" in scenarios:
                    scenario_search(corpus, queries=args.queries, k=args.k, ef_values=args.ef_search)
                if "route" in scenarios:
                    scenario_route(requests=args.route_requests, photo=photo)
                if "ingest" in scenarios:
                    scenario_ingest(count=args.ingest, crop=crop, corpus=corpus)
                if "retention" in scenarios:
                    if endpoints.embedded:
                        scenario_retention(expired=args.expired, corpus=corpus, k=args.k, ef=ef)
                    else:
                        say(
                            "\nretention: skipped on a configured database "
                            "(it would remove that database's expired events)"
                        )
            finally:
                cleanup(endpoints.embedded)
                from django.db import connections

                connections.close_all()
    finally:
        if not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)
    say(f"\ntotal bench time {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
