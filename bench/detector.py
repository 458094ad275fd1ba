"""Object detector benchmark: the bundled YOLOv3-tiny, and the batching runtime.

    python3 visionaire.py bench detector            # about 3-4 minutes on 2 cores
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
            (`ObjectDetector.detect`, concurrent `session.run` calls), alternating
            which goes first; the ratio batched/single: the median of the rounds'
            ratios (each round pairs two adjacent windows).

No database or Redis is needed. Readable lines, and one JSON line per figure
starting with {"bench": ...}.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
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
import psutil  # noqa: E402

VIDEO_FRAMES = 795  # vtest.avi


def say(text: str = "") -> None:
    print(text, flush=True)


def emit(record: dict) -> None:
    print(json.dumps(record, separators=(",", ":")), flush=True)


def machine() -> dict:
    import onnxruntime

    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "cpu": model or platform.processor(),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "opencv": cv2.__version__,
        "onnxruntime": onnxruntime.__version__,
        "opencv_threads": cv2.getNumThreads(),
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }


def process_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


OTHER_LOAD: list[float] = []  # other processes' CPU % of every window, for the closing warning


class CpuWindow:
    """CPU used by this process and by everything else over a window, in % of one core."""

    def __init__(self) -> None:
        self.wall = time.monotonic()
        self.own = process_cpu()
        self.busy = self._busy()

    @staticmethod
    def _busy() -> float:
        times = psutil.cpu_times()
        return times.user + times.nice + times.system + times.irq + times.softirq + times.steal

    def result(self) -> tuple[float, float, float]:
        """(seconds, own CPU %, other processes' CPU %)."""
        wall = time.monotonic() - self.wall
        own = process_cpu() - self.own
        other = max(0.0, 100 * (self._busy() - self.busy - own) / wall)
        OTHER_LOAD.append(other)
        return wall, 100 * own / wall, other


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

    results = []
    for streams in counts:
        per_mode: dict[str, list[dict]] = {"batched": [], "single": []}
        batch_stats = None
        for round_number in range(rounds):
            order = ("batched", "single") if round_number % 2 == 0 else ("single", "batched")
            for mode in order:
                if mode == "batched":
                    runtime = BatchingDetector(
                        detector, batch_size=batch_size, max_wait_ms=wait_ms, capacity=max(32, 4 * streams)
                    )
                    try:
                        per_mode[mode].append(run_streams(runtime.detect, frames, streams, seconds))
                        batch_stats = runtime.stats()
                    finally:
                        runtime.stop()
                else:
                    per_mode[mode].append(run_streams(detector.detect, frames, streams, seconds))

        def mean(mode: str, key: str, per_mode=per_mode) -> float:
            return statistics.fmean(r[key] for r in per_mode[mode])

        ratios = [
            b["frames_per_s"] / s["frames_per_s"]
            for b, s in zip(per_mode["batched"], per_mode["single"], strict=True)
        ]
        result = {
            "bench": "detector_streams",
            "streams": streams,
            "seconds": seconds,
            "rounds": rounds,
            "batch_size": batch_size,
            "wait_ms": wait_ms,
            "batched_frames_per_s": round(mean("batched", "frames_per_s"), 2),
            "single_frames_per_s": round(mean("single", "frames_per_s"), 2),
            # The median of the rounds' ratios: each round pairs two adjacent windows,
            # which load from other processes hits more alike than windows far apart.
            "ratio": round(statistics.median(ratios), 3),
            "ratio_of_means": round(mean("batched", "frames_per_s") / mean("single", "frames_per_s"), 3),
            "ratio_rounds": [round(r, 3) for r in ratios],
            "batched_objects_per_s": round(mean("batched", "objects_per_s"), 1),
            "single_objects_per_s": round(mean("single", "objects_per_s"), 1),
            "batched_cpu_ms_per_frame": round(mean("batched", "cpu_ms_per_frame"), 1),
            "single_cpu_ms_per_frame": round(mean("single", "cpu_ms_per_frame"), 1),
            "batched_latency_ms": round(mean("batched", "latency_ms"), 1),
            "single_latency_ms": round(mean("single", "latency_ms"), 1),
            "batched_p95_latency_ms": round(mean("batched", "p95_latency_ms"), 1),
            "single_p95_latency_ms": round(mean("single", "p95_latency_ms"), 1),
            "mean_batch_size": batch_stats["mean_batch_size"] if batch_stats else None,
            "busy": batch_stats["busy"] if batch_stats else None,
            "other_processes_cpu_pct": round(
                statistics.fmean(r["other_cpu_pct"] for mode in per_mode.values() for r in mode)
            ),
            "provider": detector.provider,
        }
        say(
            f"{streams} stream(s): batched {result['batched_frames_per_s']} frames/s "
            f"({result['batched_objects_per_s']} objects/s, mean batch {result['mean_batch_size']}, "
            f"latency {result['batched_latency_ms']} ms, CPU {result['batched_cpu_ms_per_frame']} ms/frame) "
            f"vs one frame per call {result['single_frames_per_s']} frames/s "
            f"(latency {result['single_latency_ms']} ms, CPU {result['single_cpu_ms_per_frame']} ms/frame): "
            f"ratio {result['ratio']} (median of rounds {result['ratio_rounds']}); "
            f"other processes {result['other_processes_cpu_pct']}%"
        )
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
    info = machine()
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
