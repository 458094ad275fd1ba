"""Object detector benchmark: the bundled YOLOv3-tiny, and the batching runtime.

    python3 visionaire.py bench detector            # about 6 minutes on 2 cores
    python3 visionaire.py bench detector --quick    # smoke run, about a minute

Frames: vtest.avi from Debian's opencv-doc (768x576 street scene with
pedestrians; fetched once with `apt-get download` into --media-dir), spread
over the whole video.

1. models   ms per frame of the converted model on ONNX Runtime against the
            Darknet files on OpenCV DNN (`cv2.dnn.readNetFromDarknet`), the same
            letterboxed 416x416 tensors, one frame per call, interleaved frame by
            frame so load from other processes weighs on both alike. Wall time
            and this process's CPU time per frame; both libraries use all cores.
            Also ONNX Runtime with 8 frames per call (batch of 8).
2. streams  aggregate frames (and objects) detected per second with 1, 4 and 8
            streams, each a thread feeding its own frames as fast as answers
            come back: through the batching runtime (`BatchingDetector`, batch
            size and wait from --batch-size / --wait-ms) against the same
            threads each calling the model one frame at a time
            (`ObjectDetector.detect`, concurrent `session.run` calls), and the
            runtime at batch size 1 (its mode without an inference thread: each
            caller runs its frame); each mode goes first in turn. Ratio to
            single: the median of the rounds' ratios (each round pairs windows
            close in time).

No database or Redis is needed. Readable lines, and one JSON line per figure
starting with {"bench": ...}.
"""

from __future__ import annotations

import argparse
import os
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

from bench._common import OTHER_LOAD, CpuWindow, emit, machine, process_cpu, say  # noqa: E402

VIDEO_FRAMES = 795  # vtest.avi


def load_frames(media_dir: Path, count: int) -> list[np.ndarray]:
    from tests.support.opencv_samples import opencv_samples_dir, video_frames

    folder = opencv_samples_dir(media_dir)
    step = VIDEO_FRAMES // count
    return video_frames(folder / "vtest.avi", [i * step for i in range(count)])


# --- 1. models ---------------------------------------------------------------------------


def scenario_models(detector, frames: list[np.ndarray], rounds: int) -> dict:
    from analytics.objects import darknet

    files = darknet.bundled_files()
    net = cv2.dnn.readNetFromDarknet(str(files.cfg), str(files.weights))
    names = net.getUnconnectedOutLayersNames()
    tensors = [detector.prepare(frame)[0][np.newaxis] for frame in frames]
    for tensor in tensors[:2]:  # warm-up: first runs allocate
        detector.infer(tensor)
        net.setInput(tensor)
        net.forward(names)

    ort_ms, cv_ms, ort_cpu, cv_cpu = [], [], [], []
    window = CpuWindow()
    for round_number in range(rounds):
        for index, tensor in enumerate(tensors):
            order = ("ort", "cv") if (index + round_number) % 2 == 0 else ("cv", "ort")
            for which in order:
                cpu, started = process_cpu(), time.perf_counter()
                if which == "ort":
                    detector.infer(tensor)
                else:
                    net.setInput(tensor)
                    net.forward(names)
                wall_ms, cpu_ms = 1000 * (time.perf_counter() - started), 1000 * (process_cpu() - cpu)
                (ort_ms if which == "ort" else cv_ms).append(wall_ms)
                (ort_cpu if which == "ort" else cv_cpu).append(cpu_ms)
    batch_ms, batch_cpu = [], []
    for start in range(0, len(tensors) - 7, 8):
        batch = np.concatenate(tensors[start : start + 8])
        cpu, started = process_cpu(), time.perf_counter()
        detector.infer(batch)
        batch_ms.append(1000 * (time.perf_counter() - started) / 8)
        batch_cpu.append(1000 * (process_cpu() - cpu) / 8)
    _, _, other = window.result()
    result = {
        "bench": "detector_models",
        "frames": len(tensors) * rounds,
        "provider": detector.provider,
        "run_mode": detector.run_mode,
        "onnxruntime_ms": round(statistics.fmean(ort_ms), 1),
        "onnxruntime_p50_ms": round(statistics.median(ort_ms), 1),
        "onnxruntime_cpu_ms": round(statistics.fmean(ort_cpu), 1),
        "opencv_dnn_ms": round(statistics.fmean(cv_ms), 1),
        "opencv_dnn_p50_ms": round(statistics.median(cv_ms), 1),
        "opencv_dnn_cpu_ms": round(statistics.fmean(cv_cpu), 1),
        "onnxruntime_batch8_ms_per_frame": round(statistics.fmean(batch_ms), 1) if batch_ms else None,
        "onnxruntime_batch8_cpu_ms_per_frame": round(statistics.fmean(batch_cpu), 1) if batch_cpu else None,
        "speedup": round(statistics.fmean(cv_ms) / statistics.fmean(ort_ms), 2),
        "other_processes_cpu_pct": round(other),
    }
    say(
        f"\nmodels, {result['frames']} frames at 416x416: ONNX Runtime ({detector.provider}) "
        f"{result['onnxruntime_ms']} ms/frame (p50 {result['onnxruntime_p50_ms']}, "
        f"CPU {result['onnxruntime_cpu_ms']} ms), OpenCV DNN {result['opencv_dnn_ms']} ms/frame "
        f"(p50 {result['opencv_dnn_p50_ms']}, CPU {result['opencv_dnn_cpu_ms']} ms): "
        f"ONNX Runtime x{result['speedup']}; 8 frames per call: "
        f"{result['onnxruntime_batch8_ms_per_frame']} ms/frame "
        f"(CPU {result['onnxruntime_batch8_cpu_ms_per_frame']} ms); "
        f"other processes {result['other_processes_cpu_pct']}%"
    )
    emit(result)
    return result


# --- 2. streams ------------------------------------------------------------------------------


def run_streams(detect, frames: list[np.ndarray], streams: int, seconds: float) -> dict:
    """`streams` threads, each detecting its own frames in a closed loop for `seconds`."""
    done = [0] * streams
    objects = [0] * streams
    latencies: list[list[float]] = [[] for _ in range(streams)]
    errors: list[BaseException] = []
    start = threading.Barrier(streams + 1)
    stop_at = [0.0]

    def stream(number: int) -> None:
        mine = frames[number::streams] or frames
        try:
            start.wait()
            index = 0
            while time.monotonic() < stop_at[0]:
                began = time.monotonic()
                found = detect(mine[index % len(mine)])
                latencies[number].append(time.monotonic() - began)
                done[number] += 1
                objects[number] += len(found)
                index += 1
        except BaseException as exc:  # reported below: a bench must not hide a failure
            errors.append(exc)

    threads = [threading.Thread(target=stream, args=(i,), daemon=True) for i in range(streams)]
    for thread in threads:
        thread.start()
    window = CpuWindow()
    stop_at[0] = time.monotonic() + seconds
    start.wait()
    for thread in threads:
        thread.join()
    wall, own, other = window.result()
    if errors:
        raise errors[0]
    every = sorted(x for per in latencies for x in per)
    return {
        "frames_per_s": sum(done) / wall,
        "objects_per_s": sum(objects) / wall,
        "frames": sum(done),
        "latency_ms": 1000 * statistics.fmean(every) if every else 0.0,
        "p95_latency_ms": 1000 * every[int(0.95 * (len(every) - 1))] if every else 0.0,
        "own_cpu_pct": own,
        "cpu_ms_per_frame": 10 * own * wall / max(1, sum(done)),
        "other_cpu_pct": other,
    }


def scenario_streams(detector, frames, counts, seconds, rounds, batch_size, wait_ms) -> list[dict]:
    from analytics.objects.batching import BatchingDetector

    # Mode name -> the runtime's batch size (0: no runtime, each stream's thread
    # calls the model itself; 1: the runtime's mode without an inference thread).
    modes = {"batched": batch_size, "runtime_batch1": 1, "single": 0}
    results = []
    for streams in counts:
        per_mode: dict[str, list[dict]] = {mode: [] for mode in modes}
        batches: dict[str, list[float]] = {mode: [] for mode in modes}
        busy = 0
        for round_number in range(rounds):
            names = list(modes)
            shift = round_number % len(names)  # each mode goes first in turn
            for mode in names[shift:] + names[:shift]:
                if not modes[mode]:
                    per_mode[mode].append(run_streams(detector.detect, frames, streams, seconds))
                    continue
                runtime = BatchingDetector(
                    detector,
                    batch_size=modes[mode],
                    max_wait_ms=wait_ms,
                    capacity=max(32, 4 * streams),
                )
                try:
                    per_mode[mode].append(run_streams(runtime.detect, frames, streams, seconds))
                    stats = runtime.stats()
                    batches[mode].append(stats["mean_batch_size"])
                    busy += stats["busy"]
                finally:
                    runtime.stop()

        def mean(mode: str, key: str, per_mode=per_mode) -> float:
            return statistics.fmean(r[key] for r in per_mode[mode])

        result = {
            "bench": "detector_streams",
            "streams": streams,
            "seconds": seconds,
            "rounds": rounds,
            "batch_size": batch_size,
            "wait_ms": wait_ms,
            "busy": busy,
            "other_processes_cpu_pct": round(
                statistics.fmean(r["other_cpu_pct"] for runs in per_mode.values() for r in runs)
            ),
            "provider": detector.provider,
        }
        for mode in modes:
            result[f"{mode}_frames_per_s"] = round(mean(mode, "frames_per_s"), 2)
            result[f"{mode}_objects_per_s"] = round(mean(mode, "objects_per_s"), 1)
            result[f"{mode}_cpu_ms_per_frame"] = round(mean(mode, "cpu_ms_per_frame"), 1)
            result[f"{mode}_latency_ms"] = round(mean(mode, "latency_ms"), 1)
            result[f"{mode}_p95_latency_ms"] = round(mean(mode, "p95_latency_ms"), 1)
            if modes[mode]:
                result[f"{mode}_mean_batch_size"] = round(statistics.fmean(batches[mode]), 2)
                # The median of the rounds' ratios: each round pairs windows close in
                # time, which load from other processes hits more alike than far ones.
                ratios = [
                    b["frames_per_s"] / one["frames_per_s"]
                    for b, one in zip(per_mode[mode], per_mode["single"], strict=True)
                ]
                result[f"{mode}_ratio"] = round(statistics.median(ratios), 3)
                result[f"{mode}_ratio_rounds"] = [round(r, 3) for r in ratios]
        result["ratio"] = result["batched_ratio"]
        lines = [
            f"{mode} {result[f'{mode}_frames_per_s']} frames/s ({result[f'{mode}_objects_per_s']} objects/s, "
            + (f"mean batch {result[f'{mode}_mean_batch_size']}, " if modes[mode] else "")
            + f"latency {result[f'{mode}_latency_ms']} ms, CPU {result[f'{mode}_cpu_ms_per_frame']} ms/frame)"
            + (
                f": ratio to single {result[f'{mode}_ratio']} (median of {result[f'{mode}_ratio_rounds']})"
                if modes[mode]
                else ""
            )
            for mode in modes
        ]
        say(f"{streams} stream(s), other processes {result['other_processes_cpu_pct']}%:")
        for line in lines:
            say(f"  {line}")
        emit(result)
        results.append(result)
    return results


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=["models", "streams"], action="append")
    parser.add_argument("--quick", action="store_true", help="short windows: checks the bench works")
    parser.add_argument("--frames", type=int, default=48, help="distinct frames of vtest.avi")
    parser.add_argument("--model-rounds", type=int, default=1)
    parser.add_argument("--streams", default="1,4,8", help="stream counts, comma-separated")
    parser.add_argument("--seconds", type=float, default=8.0, help="window per mode and round")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--wait-ms", type=float, default=5.0)
    parser.add_argument(
        "--media-dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "visionaire-bench-media",
        help="where vtest.avi is kept (later runs reuse it)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.frames, args.seconds, args.rounds = 16, 4.0, 1
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    scenarios = args.only or ["models", "streams"]
    started = time.monotonic()
    info = machine(
        opencv=cv2.__version__,
        onnxruntime=__import__("onnxruntime").__version__,
        opencv_threads=cv2.getNumThreads(),
    )
    say(
        f"machine: {info['nproc']} CPUs ({info['cpu']}), {info['ram_gib']} GiB RAM, Python {info['python']}, "
        f"OpenCV {info['opencv']} ({info['opencv_threads']} threads), ONNX Runtime {info['onnxruntime']}, "
        f"load average {info['loadavg_1m']}"
    )
    emit({"bench": "machine", **info})
    frames = load_frames(args.media_dir, args.frames)
    say(f"frames: {len(frames)} of vtest.avi (768x576), from {args.media_dir}")

    from analytics.objects.detector import DetectorConfig, ObjectDetector

    detector = ObjectDetector(DetectorConfig(cache_dir=args.media_dir / "models"))
    say(f"detector: {detector.describe()}")
    if "models" in scenarios:
        scenario_models(detector, frames, args.model_rounds)
    if "streams" in scenarios:
        counts = [int(n) for n in args.streams.split(",") if n.strip()]
        say(f"\nstreams: {args.seconds:g} s per mode and round, {args.rounds} round(s)")
        scenario_streams(detector, frames, counts, args.seconds, args.rounds, args.batch_size, args.wait_ms)
    say(f"\ntotal bench time {time.monotonic() - started:.0f} s")
    if OTHER_LOAD and statistics.fmean(OTHER_LOAD) > 25:
        say(
            f"warning: other processes used {statistics.fmean(OTHER_LOAD):.0f}% of one core on average "
            f"(of {100 * (os.cpu_count() or 1)}%) while this ran: the figures understate a quiet machine"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
