"""Face embedding benchmark: dlib's ResNet run by dlib against the same network
converted to ONNX and run by ONNX Runtime (analytics/face/dlib_onnx.py).

    .venv/bin/python bench/face_embed.py            # about 2 minutes on 2 cores
    .venv/bin/python bench/face_embed.py --quick    # smoke run, under a minute

The chips are real faces: the face_recognition test photos and the astronaut,
detected by RetinaFace and aligned by dlib's 5-point predictor + get_face_chip
(what both embedders are given in production). For each batch size (1, 8, 32
chips per call) the two runtimes embed the same batches in alternating rounds,
so load from other processes weighs on both alike; per face: wall-clock ms
(median over rounds) and process CPU ms (all threads). Agreement: the cosine
between the two runtimes' embeddings of every chip (min and median). Readable
lines, and one JSON line per figure starting with {"bench": ...}; the exit
status is 0 when ONNX Runtime is at least --target times faster than dlib at
batch 8 and every cosine is at least dlib_onnx.MIN_COSINE.

Nothing is written outside the data folder's cache (VISIONAIRE_DATA_DIR, else
./data): the photos under cache/, the converted model under models/.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from bench._common import emit, machine, say  # noqa: E402


def real_chips(photo_dir: Path) -> np.ndarray:
    import cv2

    from analytics.face.engine import DlibAligner, FaceDetector
    from tests.support.face_photos import BIDEN, OBAMA, astronaut_bgr

    images = [cv2.imread(str(photo_dir / name), cv2.IMREAD_COLOR) for name in (*OBAMA, *BIDEN)]
    astronaut = astronaut_bgr()
    images += [astronaut, np.ascontiguousarray(astronaut[:, ::-1])]
    detector, aligner = FaceDetector(), DlibAligner()
    chips = [aligner.chips(image, detector.detect(image)) for image in images]
    return np.concatenate(chips)


def timed(embed, batch: np.ndarray) -> tuple[float, float]:
    """Wall and process CPU seconds of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    embed(batch)
    return time.perf_counter() - wall, time.process_time() - cpu


def scenario_speed(
    chips: np.ndarray, dlib_embedder, onnx_embedder, sizes: list[int], faces_per_size: int
) -> list:
    results = []
    for size in sizes:
        batch = chips[np.arange(size) % len(chips)]
        rounds = max(2, faces_per_size // size)
        for embedder in (dlib_embedder, onnx_embedder):  # warm-up: first-call allocations
            embedder.embed_chips(batch)
        figures: dict[str, dict[str, list[float]]] = {
            "dlib": {"wall": [], "cpu": []},
            "onnx": {"wall": [], "cpu": []},
        }
        for index in range(rounds):
            order = [("dlib", dlib_embedder), ("onnx", onnx_embedder)]
            for name, embedder in order if index % 2 == 0 else order[::-1]:
                wall, cpu = timed(embedder.embed_chips, batch)
                figures[name]["wall"].append(wall / size)
                figures[name]["cpu"].append(cpu / size)
        dlib_ms = 1000 * statistics.median(figures["dlib"]["wall"])
        onnx_ms = 1000 * statistics.median(figures["onnx"]["wall"])
        result = {
            "bench": "face_embed_speed",
            "batch": size,
            "faces": rounds * size,
            "dlib_ms_per_face": round(dlib_ms, 2),
            "onnx_ms_per_face": round(onnx_ms, 2),
            "ratio": round(dlib_ms / onnx_ms, 2),
            "dlib_cpu_ms_per_face": round(1000 * statistics.median(figures["dlib"]["cpu"]), 2),
            "onnx_cpu_ms_per_face": round(1000 * statistics.median(figures["onnx"]["cpu"]), 2),
            "onnx_provider": onnx_embedder.provider,
            "loadavg_1m": round(os.getloadavg()[0], 2),
        }
        say(
            f"batch {size:>2}: dlib {dlib_ms:7.1f} ms/face, ONNX Runtime {onnx_ms:6.1f} ms/face "
            f"-> {result['ratio']:.2f}x faster (CPU ms/face: dlib {result['dlib_cpu_ms_per_face']}, "
            f"ONNX Runtime {result['onnx_cpu_ms_per_face']}; {rounds} rounds)"
        )
        emit(result)
        results.append(result)
    return results


def scenario_agreement(chips: np.ndarray, dlib_embedder, onnx_embedder) -> dict:
    from analytics.face.dlib_onnx import cosines

    agreement = cosines(onnx_embedder.embed_chips(chips), dlib_embedder.embed_chips(chips))
    result = {
        "bench": "face_embed_agreement",
        "chips": len(chips),
        "min_cosine": float(agreement.min()),
        "median_cosine": float(np.median(agreement)),
    }
    say(
        f"agreement on {len(chips)} real face chips: cosine min {result['min_cosine']:.12f}, "
        f"median {result['median_cosine']:.12f}"
    )
    emit(result)
    return result


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, for a smoke run")
    parser.add_argument("--batches", default="1,8,32", help="chips per call")
    parser.add_argument("--faces", type=int, default=128, help="faces embedded per batch size and runtime")
    parser.add_argument("--target", type=float, default=3.0, help="required speed-up at batch 8")
    data_dir = Path(os.environ.get("VISIONAIRE_DATA_DIR", ROOT / "data"))
    parser.add_argument("--data-dir", type=Path, default=data_dir, help="photos and converted model cache")
    args = parser.parse_args(argv)
    args.batches = [int(size) for size in args.batches.split(",")]
    if args.quick:
        args.faces = 32
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    info = machine(onnxruntime=__import__("onnxruntime").__version__)
    say(
        f"machine: {info['nproc']} CPUs ({info['cpu']}), {info['ram_gib']} GiB RAM, Python {info['python']}, "
        f"ONNX Runtime {info['onnxruntime']}, load average {info['loadavg_1m']}"
    )
    emit({"bench": "machine", **info})

    from analytics.face.dlib_onnx import MIN_COSINE
    from analytics.face.engine import DlibAligner, DlibEmbedder, DlibOnnxEmbedder
    from tests.support.face_photos import face_photos_dir

    photo_dir = face_photos_dir(args.data_dir / "cache")
    aligner = DlibAligner()
    converting = time.perf_counter()
    onnx_embedder = DlibOnnxEmbedder(aligner, cache_dir=args.data_dir / "models")
    model = onnx_embedder.model
    say(
        f"converted model {model.path.name}: {'converted now' if model.converted_now else 'from the cache'} "
        f"({time.perf_counter() - converting:.1f} s), provider {onnx_embedder.provider}"
    )
    dlib_embedder = DlibEmbedder(aligner)
    chips = real_chips(photo_dir)
    say(f"{len(chips)} real face chips")
    speed = scenario_speed(chips, dlib_embedder, onnx_embedder, args.batches, args.faces)
    agreement = scenario_agreement(chips, dlib_embedder, onnx_embedder)
    at_eight = next((r["ratio"] for r in speed if r["batch"] == 8), None)
    ok = (at_eight is None or at_eight >= args.target) and agreement["min_cosine"] >= MIN_COSINE
    say(
        f"\nspeed-up at batch 8: {at_eight}x (target {args.target}x); min cosine "
        f"{agreement['min_cosine']:.12f} (target {MIN_COSINE}); total {time.monotonic() - started:.0f} s"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
