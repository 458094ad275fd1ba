"""Face enrollment and 1:N search benchmark (issue 5).

    .venv/bin/python bench/faces.py            # full run: 10,000 and 100,000 enrolled faces
    .venv/bin/python bench/faces.py --quick    # smoke run: 2,000 and 10,000

1. enrollment  photos per second through the whole enrollment service
               (faces.services.face_enroll: detection, quality checks, embedding,
               photo + thumbnail to storage, rows in one transaction) on real
               photos, against the models alone (detect + embed of the same
               photos in the same run): the ratio is what the rest costs.
2. search      1:N recognition latency at the database layer
               (faces.services.faces_nearest: the pgvector query ordered by
               CosineDistance under the keyspace filter, best variation per
               person, names fetched) with N synthetic enrolled faces (random
               unit vectors; queries are enrolled vectors plus noise, so each has
               a true nearest neighbour), HNSW index against an exact scan of the
               same rows in the same run: p50/p95, speed-up, and recall@k (the
               share of the exact top-k face ids the index finds).
               Also at the largest N: a small keyspace (1% of the rows) searched
               inside the big table, which exercises the index's iterative scan.

Servers: DATABASE_URL and REDIS_URL when both are set (the bench keeps the
index and removes the keyspaces it made), else embedded PostgreSQL and Redis in
a temporary folder deleted afterwards (there the index is dropped during the
bulk load and built once, as a bulk import would). Readable lines, and one JSON
line per figure starting with {"bench": ...}.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from psycopg.types.json import Jsonb  # noqa: E402

from bench._common import django_setup, emit, machine, percentile, say, servers  # noqa: E402

INDEX_NAME = "face_variation_embedding_hnsw"
BENCH_PREFIX = "bench-"


# --- servers and Django -----------------------------------------------------------


# --- 1. enrollment ------------------------------------------------------------------


def scenario_enrollment(photo_dir: Path, count: int) -> dict:
    from analytics.face.engine import face_engine
    from core.images import image_from_bytes
    from faces import services
    from faces.models import Keyspace
    from tests.support.face_photos import BIDEN, OBAMA, astronaut_bgr, jpeg_bytes

    engine = face_engine()
    warm = engine.warm_up()
    say(f"\nface engine: {engine.describe()}, warm-up {warm * 1000:.0f} ms")
    # Photos that pass enrollment (obama2 is turned but accepted), as files are sent.
    files = [(photo_dir / name).read_bytes() for name in (*OBAMA, *BIDEN)]
    files.append(jpeg_bytes(astronaut_bgr()))
    photos = [files[i % len(files)] for i in range(count)]

    # Each photo through the models alone (decode + detect + embed) and then
    # through the service, interleaved so that load from other processes
    # weighs on both figures alike.
    keyspace = Keyspace.objects.create(name=f"{BENCH_PREFIX}enroll")
    raw_seconds = service_seconds = 0.0
    try:
        for data in photos:
            started = time.perf_counter()
            image = image_from_bytes(data, field="photo")
            faces = engine.detector.detect(image.pixels)
            engine.embedder.embed_many(image.pixels, faces[:1])
            raw_seconds += time.perf_counter() - started
            started = time.perf_counter()
            services.face_enroll(keyspace=keyspace.name, image=image_from_bytes(data, field="photo"))
            service_seconds += time.perf_counter() - started
    finally:
        keyspace.delete()
    result = {
        "bench": "faces_enrollment",
        "photos": count,
        "distinct_photos": len(files),
        "photos_per_s": round(count / service_seconds, 2),
        "model_photos_per_s": round(count / raw_seconds, 2),
        "ratio": round(raw_seconds / service_seconds, 3),
        "ms_per_photo": round(1000 * service_seconds / count, 1),
        "model_ms_per_photo": round(1000 * raw_seconds / count, 1),
        "provider": engine.provider,
    }
    say(
        f"enrollment: {result['photos_per_s']} photos/s ({result['ms_per_photo']} ms each) "
        f"through the service; models alone {result['model_photos_per_s']} photos/s; "
        f"ratio service/models {result['ratio']}"
    )
    emit(result)
    return result


# --- 2. search ------------------------------------------------------------------------


def unit_vectors(rng: np.random.Generator, count: int) -> np.ndarray:
    vectors = rng.standard_normal((count, 128)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def bulk_enroll(keyspace, vectors: np.ndarray, start: int) -> None:
    """People with one variation each, by binary COPY (what a bulk import does)."""
    from django.db import connection
    from pgvector.psycopg import register_vector

    connection.ensure_connection()
    raw = connection.connection
    register_vector(raw)
    now = time.strftime("%Y-%m-%d %H:%M:%S+00")
    with raw.cursor() as cursor:
        cursor.execute("SELECT COALESCE(MAX(id), 0) FROM faces_person")
        first_id = cursor.fetchone()[0] + 1
        ids = range(first_id, first_id + len(vectors))
        with cursor.copy(
            "COPY faces_person (id, keyspace_id, face_id, name, category, identity_number, notes, "
            "created_at, updated_at) FROM STDIN"
        ) as copy:
            for offset, person_id in enumerate(ids):
                copy.write_row(
                    (
                        person_id,
                        keyspace.pk,
                        f"f{start + offset}",
                        f"Person {start + offset}",
                        "",
                        "",
                        "",
                        now,
                        now,
                    )
                )
        cursor.execute("SELECT setval(pg_get_serial_sequence('faces_person', 'id'), %s)", [ids[-1]])
        with cursor.copy(
            "COPY faces_facevariation (person_id, keyspace_id, variation, embedding, embedder, photo, "
            "thumbnail, box, detection_score, face_size, blur_score, frontal_score, created_at) "
            "FROM STDIN WITH (FORMAT BINARY)"
        ) as copy:
            copy.set_types(
                [
                    "bigint",
                    "bigint",
                    "integer",
                    "vector",
                    "varchar",
                    "varchar",
                    "varchar",
                    "jsonb",
                    "double precision",
                    "integer",
                    "double precision",
                    "double precision",
                    "timestamptz",
                ]
            )
            stamp = datetime.now(UTC)
            for person_id, vector in zip(ids, vectors, strict=True):
                copy.write_row(
                    (
                        person_id,
                        keyspace.pk,
                        1,
                        vector,
                        "synthetic",
                        "",
                        "",
                        Jsonb([]),
                        1.0,
                        100,
                        10.0,
                        1.0,
                        stamp,
                    )
                )
    if not raw.autocommit:
        raw.commit()


def index_drop() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"DROP INDEX IF EXISTS {INDEX_NAME}")


def index_build() -> float:
    from django.db import connection

    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("SET maintenance_work_mem = '1GB'")
        cursor.execute(f"SET max_parallel_maintenance_workers = {max(1, (os.cpu_count() or 2) - 1)}")
        cursor.execute(
            f"CREATE INDEX IF NOT EXISTS {INDEX_NAME} ON faces_facevariation "
            "USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)"
        )
        cursor.execute("ANALYZE faces_facevariation")
        cursor.execute("RESET maintenance_work_mem")
        cursor.execute("RESET max_parallel_maintenance_workers")
    return time.perf_counter() - started


def measure(keyspace, queries: np.ndarray, k: int, *, exact: bool) -> tuple[list[float], list[list[str]]]:
    from faces.services import faces_nearest

    for query in queries[:5]:  # warm the caches (index pages, plans)
        faces_nearest(keyspace=keyspace, embedding=query, limit=k, exact=exact)
    latencies, results = [], []
    for query in queries:
        started = time.perf_counter()
        found = faces_nearest(keyspace=keyspace, embedding=query, limit=k, exact=exact)
        latencies.append(1000 * (time.perf_counter() - started))
        results.append([c.face_id for c in found])
    return latencies, results


def plan_uses_index(keyspace, query: np.ndarray, k: int) -> bool:
    """Whether PostgreSQL answers the search with the HNSW index (it may prefer
    the keyspace's rows and a sort when the keyspace is small: that is exact)."""
    from django.conf import settings
    from django.db import connection, transaction
    from pgvector.django import CosineDistance

    from faces.models import FaceVariation

    rows = min(1000, k * settings.FACE_MAX_VARIATIONS)
    ef_search = min(1000, max(settings.FACE_SEARCH_EF_SEARCH, rows))
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT set_config('hnsw.ef_search', %s, true)", [str(ef_search)])
        cursor.execute("SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true)")
        plan = (
            FaceVariation.objects.filter(keyspace_id=keyspace.pk)
            .annotate(distance=CosineDistance("embedding", query.tolist()))
            .order_by("distance")
            .values_list("person_id", "variation", "distance")[:rows]
            .explain()
        )
    return INDEX_NAME in plan


def search_figures(
    label: str, enrolled: int, table_rows: int, keyspace, queries, k: int, ef_values: list[int]
) -> list[dict]:
    """HNSW at each ef_search value against one exact scan of the same queries."""
    from django.conf import settings

    exact_ms, exact_ids = measure(keyspace, queries, k, exact=True)
    results = []
    default_ef = settings.FACE_SEARCH_EF_SEARCH
    try:
        for ef in ef_values:
            settings.FACE_SEARCH_EF_SEARCH = ef
            uses_index = plan_uses_index(keyspace, queries[0], k)
            hnsw_ms, hnsw_ids = measure(keyspace, queries, k, exact=False)
            pairs = list(zip(hnsw_ids, exact_ids, strict=True))
            recall = statistics.fmean(len(set(a) & set(b)) / max(1, len(b)) for a, b in pairs)
            top1 = statistics.fmean(a[:1] == b[:1] for a, b in pairs)
            result = {
                "bench": "faces_search",
                "case": label,
                "enrolled_in_keyspace": enrolled,
                "rows_in_table": table_rows,
                "queries": len(queries),
                "candidate_count": k,
                "ef_search": max(ef, min(1000, k * settings.FACE_MAX_VARIATIONS)),
                "hnsw_p50_ms": round(percentile(hnsw_ms, 0.5), 2),
                "hnsw_p95_ms": round(percentile(hnsw_ms, 0.95), 2),
                "exact_p50_ms": round(percentile(exact_ms, 0.5), 2),
                "exact_p95_ms": round(percentile(exact_ms, 0.95), 2),
                "speedup_p95": round(percentile(exact_ms, 0.95) / percentile(hnsw_ms, 0.95), 1),
                f"recall_at_{k}": round(recall, 4),
                "top1_agreement": round(top1, 4),
                "plan_uses_hnsw": uses_index,
            }
            say(
                f"search {label}: {enrolled:,} faces in the keyspace ({table_rows:,} rows in the table), "
                f"ef_search {result['ef_search']}: HNSW p50 {result['hnsw_p50_ms']} ms, "
                f"p95 {result['hnsw_p95_ms']} ms; exact scan p50 {result['exact_p50_ms']} ms, "
                f"p95 {result['exact_p95_ms']} ms; speed-up x{result['speedup_p95']} at p95; "
                f"recall@{k} {result[f'recall_at_{k}']}, top-1 agreement {result['top1_agreement']}"
                + (
                    ""
                    if uses_index
                    else " (the planner chose an exact scan of the keyspace's rows, not the index)"
                )
            )
            emit(result)
            results.append(result)
    finally:
        settings.FACE_SEARCH_EF_SEARCH = default_ef
    return results


def scenario_search(
    sizes: list[int], query_count: int, k: int, noise: float, ef_values: list[int], *, embedded: bool
) -> list[dict]:
    from django.db import connection

    from faces.models import FaceVariation, Keyspace

    rng = np.random.default_rng(2024)
    keyspace = Keyspace.objects.create(name=f"{BENCH_PREFIX}search")
    results = []
    enrolled = np.zeros((0, 128), dtype=np.float32)
    for size in sorted(sizes):
        more = unit_vectors(rng, size - len(enrolled))
        started = time.perf_counter()
        if embedded:
            index_drop()
        bulk_enroll(keyspace, more, start=len(enrolled))
        load_seconds = time.perf_counter() - started
        build_seconds = index_build() if embedded else 0.0
        enrolled = np.concatenate([enrolled, more])
        say(
            f"\nloaded {len(more):,} synthetic faces in {load_seconds:.1f} s"
            + (
                f", HNSW index over {FaceVariation.objects.count():,} rows built in {build_seconds:.1f} s"
                if embedded
                else ""
            )
        )
        emit(
            {
                "bench": "faces_load",
                "rows": len(enrolled),
                "load_s": round(load_seconds, 2),
                "index_build_s": round(build_seconds, 2),
            }
        )
        picks = rng.choice(len(enrolled), size=query_count, replace=False)
        queries = enrolled[picks] + rng.standard_normal((query_count, 128)).astype(np.float32) * noise
        # The ef_search trade-off at the largest size only (the default elsewhere).
        efs = ef_values if size == max(sizes) else ef_values[:1]
        results += search_figures("one keyspace", len(enrolled), len(enrolled), keyspace, queries, k, efs)

    # A small keyspace inside the big table: the keyspace filter under the index.
    small = Keyspace.objects.create(name=f"{BENCH_PREFIX}small")
    small_count = max(100, len(enrolled) // 100)
    small_vectors = unit_vectors(rng, small_count)
    bulk_enroll(small, small_vectors, start=len(enrolled))  # into the index as it stands
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE faces_facevariation")
    picks = rng.choice(small_count, size=min(query_count, small_count), replace=False)
    queries = small_vectors[picks] + rng.standard_normal((len(picks), 128)).astype(np.float32) * noise
    total = len(enrolled) + small_count
    results += search_figures(
        "small keyspace in a big table", small_count, total, small, queries, k, ef_values[:1]
    )
    return results


def cleanup() -> None:
    """Remove the bench's keyspaces. Synthetic rows have no files, so plain SQL
    deletes them (the ORM would load 100,000 rows to send delete signals)."""
    from django.db import connection, transaction

    from faces.models import Keyspace

    bench = list(Keyspace.objects.filter(name__startswith=BENCH_PREFIX).values_list("pk", flat=True))
    if not bench:
        return
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM faces_facevariation WHERE keyspace_id = ANY(%s)", [bench])
        cursor.execute("DELETE FROM faces_person WHERE keyspace_id = ANY(%s)", [bench])
        cursor.execute("DELETE FROM faces_keyspace WHERE id = ANY(%s)", [bench])


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--sizes", default="10000,100000", help="enrolled faces for the search figures")
    parser.add_argument("--queries", type=int, default=200, help="queries per measurement")
    parser.add_argument("--candidate-count", type=int, default=5, help="k of the 1:N search")
    parser.add_argument("--noise", type=float, default=0.03, help="std-dev of the noise added to queries")
    parser.add_argument(
        "--ef-search",
        default="100,200,400",
        help="hnsw.ef_search values tried at the largest size (the first is used elsewhere)",
    )
    parser.add_argument("--enroll-photos", type=int, default=40, help="photos for the enrollment figure")
    parser.add_argument(
        "--only", choices=["enrollment", "search"], action="append", help="run only these scenarios"
    )
    parser.add_argument(
        "--photo-cache",
        type=Path,
        default=Path(os.environ.get("VISIONAIRE_DATA_DIR", ROOT / "data")) / "cache",
        help="where the face_recognition test photos are cached",
    )
    args = parser.parse_args(argv)
    args.sizes = [int(size) for size in args.sizes.split(",")]
    args.ef_search = [int(value) for value in args.ef_search.split(",")]
    if args.quick:
        args.sizes, args.queries, args.enroll_photos = [2000, 10000], 50, 14
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    scenarios = args.only or ["enrollment", "search"]
    started = time.monotonic()
    info = machine(opencv=__import__("cv2").__version__)
    say(
        f"machine: {info['nproc']} CPUs ({info['cpu']}), {info['ram_gib']} GiB RAM, Python {info['python']}, "
        f"OpenCV {info['opencv']}, load average {info['loadavg_1m']}"
    )
    emit({"bench": "machine", **info})
    photo_dir = None
    if "enrollment" in scenarios:
        from tests.support.face_photos import face_photos_dir

        photo_dir = face_photos_dir(args.photo_cache)
    data_dir = Path(tempfile.mkdtemp(prefix="visionaire-bench-faces-"))
    try:
        with servers(data_dir) as endpoints:
            django_setup(endpoints, data_dir, VISIONAIRE_MEDIA_DIR=str(data_dir / "media"))
            try:
                if "enrollment" in scenarios:
                    scenario_enrollment(photo_dir, args.enroll_photos)
                if "search" in scenarios:
                    scenario_search(
                        args.sizes,
                        args.queries,
                        args.candidate_count,
                        args.noise,
                        args.ef_search,
                        embedded=endpoints.embedded,
                    )
            finally:
                cleanup()
                if endpoints.embedded:
                    index_build()
                from django.db import connections

                connections.close_all()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    say(f"\ntotal bench time {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
