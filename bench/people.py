"""People analytics benchmark: the NFV4-MPA pipeline's frame rate against the
detector alone on the same frames.

    python3 visionaire.py bench people            # about 3 minutes on 2 cores
    python3 visionaire.py bench people --quick    # smoke run

Frames: consecutive frames of vtest.avi (Debian's opencv-doc, 768x576,
pedestrians), taken at 5 per second (every other frame) as a stream is analysed.

For each frame, in turn (which goes first alternates frame by frame, so load
from other processes weighs on both alike):
- detector alone: `ObjectDetector.detect(frame)`;
- the pipeline: `PeopleProcessor.process(frame)` as the stream runner calls it
  (through the batching runtime at batch size 1, as on a CPU worker; ByteTrack,
  two lines, an area with occupancy limit and dwell, the crowd grid, events with
  their JPEG crops, the overlay, the minute counts handed to a writer that keeps
  them in memory: no database).
fps = frames / summed wall time; ratio = pipeline fps / detector-alone fps (the
issue asks >= 0.85). Readable lines, and one JSON line per figure ({"bench": ...}).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._common import emit, machine, say  # noqa: E402
from bench.tracking import load_run  # noqa: E402


class MemoryCounts:
    """Takes the counts the processor hands over (the count writer's place)."""

    def __init__(self) -> None:
        self.rows = 0

    def submit(self, rows) -> None:
        self.rows += len(list(rows))


def config():
    from analytics.objects.people import PeopleConfig

    def p(x, y):
        return {"x": x, "y": y}

    return PeopleConfig(
        lines=[
            {"name": "crossing", "points": [p(0.7, 0.2), p(0.7, 0.8)], "in_side": "right"},
            {"name": "kerb", "points": [p(0.0, 0.42), p(1.0, 0.4)]},
        ],
        areas=[
            {
                "name": "road",
                "points": [p(0.0, 0.3), p(1.0, 0.2), p(1.0, 0.8), p(0.0, 0.5)],
                "occupancy_limit": 6,
                "dwell_ms": 5000,
            }
        ],
        crowd={"enabled": True, "density_limit": 3},
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--frames", type=int, default=150, help="consecutive frames at 5 fps")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--media-dir", type=Path, default=Path(tempfile.gettempdir()) / "visionaire-bench-media"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.frames, args.rounds = 30, 1

    # The processor's modules need Django's app registry, not its database.
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "visionaire_site.settings")
    os.environ.setdefault("DATABASE_URL", "postgresql://bench@127.0.0.1:1/unused")
    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:1/0")
    os.environ.setdefault("VISIONAIRE_DATA_DIR", str(args.media_dir))
    os.environ.setdefault("VISIONAIRE_LOG_LEVEL", "warning")
    import django

    django.setup()
    import cv2
    import onnxruntime

    from analytics.objects.batching import BatchingDetector
    from analytics.objects.detector import DetectorConfig, ObjectDetector
    from analytics.objects.people import PeopleProcessor
    from analytics.plugins import Frame

    info = machine(opencv=cv2.__version__, onnxruntime=onnxruntime.__version__)
    say(
        f"machine: {info['nproc']} CPUs ({info['cpu']}), {info['ram_gib']} GiB RAM, Python {info['python']}, "
        f"OpenCV {info['opencv']}, ONNX Runtime {info['onnxruntime']}, load average {info['loadavg_1m']}"
    )
    emit({"bench": "machine", **info})
    frames = load_run(args.media_dir, 100, args.frames, 2)
    detector = ObjectDetector(DetectorConfig(cache_dir=args.media_dir / "models"))
    runtime = BatchingDetector(detector, batch_size=1)
    say(f"detector: {detector.describe()}; {len(frames)} frames of vtest.avi at 5 fps")
    for frame in frames[:3]:
        detector.detect(frame)  # warm-up

    alone_s = pipeline_s = 0.0
    ratios, events, refused = [], 0, 0
    start = time.time()
    for round_number in range(args.rounds):
        processor = PeopleProcessor(config(), runtime=runtime, writer=MemoryCounts())
        round_alone = round_pipeline = 0.0
        for index, image in enumerate(frames):
            frame = Frame(image, start + round_number * 3600 + index * 0.2, index, "00000000000000be", 0)
            for which in ("alone", "pipeline") if (index + round_number) % 2 == 0 else ("pipeline", "alone"):
                started = time.perf_counter()
                if which == "pipeline":
                    events += len(processor.process(frame).events)
                    round_pipeline += time.perf_counter() - started
                else:
                    detector.detect(image)
                    round_alone += time.perf_counter() - started
        processor.close()
        refused += processor.frames_refused
        alone_s += round_alone
        pipeline_s += round_pipeline
        ratios.append(round_alone / round_pipeline)
    runtime.stop()

    count = len(frames) * args.rounds
    alone_fps, pipeline_fps = count / alone_s, count / pipeline_s
    ratio = alone_s / pipeline_s
    say(
        f"detector alone: {alone_fps:.2f} fps ({1000 * alone_s / count:.1f} ms/frame); "
        f"NFV4-MPA pipeline: {pipeline_fps:.2f} fps ({1000 * pipeline_s / count:.1f} ms/frame); "
        f"ratio {ratio:.3f} (rounds: {', '.join(f'{r:.3f}' for r in ratios)}); {events} events; "
        f"{refused} frames refused"
    )
    emit(
        {
            "bench": "people_pipeline",
            "frames": count,
            "detector_fps": round(alone_fps, 3),
            "pipeline_fps": round(pipeline_fps, 3),
            "ratio": round(ratio, 4),
            "round_ratios": [round(r, 4) for r in ratios],
            "events": events,
            "refused": refused,
        }
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
