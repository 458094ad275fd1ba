"""Tracking and zones benchmark: what the analysis chain costs on top of the detector.

    python3 visionaire.py bench tracking            # about 3 minutes on 2 cores
    python3 visionaire.py bench tracking --quick    # smoke run

Frames: a run of consecutive frames of vtest.avi (Debian's opencv-doc, 768x576,
pedestrians), taken at 5 per second (every other frame) as a stream is analysed.

For each frame, in turn (which goes first alternates frame by frame, so load
from other processes weighs on both alike):
- detector alone: `ObjectDetector.detect(frame)`;
- the whole chain: detect, then `ByteTracker.update`, `Zones.update` (two lines,
  two areas with dwell, stop and occupancy limit), the minute counts, the
  density grid and its heatmap header.
fps = frames / summed wall time; ratio = chain fps / detector-alone fps (the
issue asks >= 0.85). Also the chain without the detector on the same
detections: ms per frame of tracking + zones + counts + grid.

No database or Redis is needed. Readable lines, and one JSON line per figure
starting with {"bench": ...}.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._common import emit, machine, say  # noqa: E402

CROWD_OFFSETS = [(0, 0), (-300, 0), (300, 0), (0, -150), (0, 150), (-300, 150), (300, -150), (150, 250)]


def load_run(media_dir: Path, first: int, count: int, every: int):
    from tests.support.opencv_samples import opencv_samples_dir, video_frames

    folder = opencv_samples_dir(media_dir)
    return video_frames(folder / "vtest.avi", [first + i * every for i in range(count)])


def chain():
    from analytics.objects.counting import MinuteCounts
    from analytics.objects.tracking import ByteTracker
    from analytics.objects.zones import Area, Line, Zones

    zones = Zones(
        [
            Line("crossing", (0.7, 0.2), (0.7, 0.8), in_side="right"),
            Line("kerb", (0.0, 0.42), (1.0, 0.4), in_side="left", expected="in"),
        ],
        [
            Area("road", [(0.0, 0.3), (1.0, 0.2), (1.0, 0.8), (0.0, 0.5)], limit=6, dwell_ms=5000),
            Area("corner", [(0.6, 0.1), (1.0, 0.1), (1.0, 0.4), (0.6, 0.4)], stop_ms=3000),
        ],
    )
    return ByteTracker(), zones, MinuteCounts()


def analyse(tracker, zones, counts, detections, timestamp_ms: float, size: tuple[int, int]) -> int:
    from analytics.objects.zones import anchor_of, density_grid, heatmap_header

    people = [d for d in detections if d.label == "person"]
    update = tracker.update(people, timestamp_ms)
    events = zones.update(update, size)
    counts.record(events)
    counts.record_occupancy(timestamp_ms, zones.occupancy())
    grid = density_grid([anchor_of(t.box) for t in update.tracks if t.observed], size, 8, 8)
    heatmap_header(grid)
    return len(events)


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

    import cv2
    import onnxruntime

    info = machine(opencv=cv2.__version__, onnxruntime=onnxruntime.__version__)
    say(
        f"machine: {info['nproc']} CPUs ({info['cpu']}), {info['ram_gib']} GiB RAM, Python {info['python']}, "
        f"OpenCV {info['opencv']}, ONNX Runtime {info['onnxruntime']}, load average {info['loadavg_1m']}"
    )
    emit({"bench": "machine", **info})
    frames = load_run(args.media_dir, 100, args.frames, 2)
    height, width = frames[0].shape[:2]
    from analytics.objects.detector import DetectorConfig, ObjectDetector

    detector = ObjectDetector(DetectorConfig(cache_dir=args.media_dir / "models"))
    say(f"detector: {detector.describe()}; {len(frames)} frames of vtest.avi at 5 fps")
    for frame in frames[:3]:
        detector.detect(frame)  # warm-up

    alone_s, chain_s, ratios, events = 0.0, 0.0, [], 0
    for round_number in range(args.rounds):
        tracker, zones, counts = chain()
        round_alone = round_chain = 0.0
        for index, frame in enumerate(frames):
            timestamp_ms = index * 200.0
            for which in ("alone", "chain") if (index + round_number) % 2 == 0 else ("chain", "alone"):
                started = time.perf_counter()
                found = detector.detect(frame)
                if which == "chain":
                    events += analyse(tracker, zones, counts, found, timestamp_ms, (width, height))
                    round_chain += time.perf_counter() - started
                else:
                    round_alone += time.perf_counter() - started
        alone_s += round_alone
        chain_s += round_chain
        ratios.append(round_alone / round_chain)

    # The chain's own cost on fixed detections (no detector), many times over.
    detections = [detector.detect(frame) for frame in frames]
    repeats = 5 if not args.quick else 1
    started = time.perf_counter()
    for _ in range(repeats):
        tracker, zones, counts = chain()
        for index, found in enumerate(detections):
            analyse(tracker, zones, counts, found, index * 200.0, (width, height))
    chain_only_ms = 1000 * (time.perf_counter() - started) / (repeats * len(detections))
    per_frame_objects = statistics.fmean(
        len([d for d in found if d.label == "person"]) for found in detections
    )

    # A crowd: each frame's people copied to 8 places over the picture (moving alike).
    from analytics.objects.detector import Detection

    def copies(found):
        shifted = []
        for dx, dy in CROWD_OFFSETS:
            for d in found:
                x1, y1, x2, y2 = d.box
                box = (max(0, x1 + dx), max(0, y1 + dy), min(width, x2 + dx), min(height, y2 + dy))
                if box[2] - box[0] > 2 and box[3] - box[1] > 2:
                    shifted.append(Detection(d.label, d.class_id, d.confidence, box))
        return shifted

    crowd = [copies(found) for found in detections]
    started = time.perf_counter()
    for _ in range(repeats):
        tracker, zones, counts = chain()
        for index, found in enumerate(crowd):
            analyse(tracker, zones, counts, found, index * 200.0, (width, height))
    crowd_ms = 1000 * (time.perf_counter() - started) / (repeats * len(crowd))
    crowd_objects = statistics.fmean(len([d for d in found if d.label == "person"]) for found in crowd)

    frames_total = len(frames) * args.rounds
    result = {
        "bench": "tracking_chain",
        "frames": frames_total,
        "provider": detector.provider,
        "detector_alone_fps": round(frames_total / alone_s, 2),
        "chain_fps": round(frames_total / chain_s, 2),
        "ratio": round(alone_s / chain_s, 3),
        "ratio_rounds": [round(r, 3) for r in ratios],
        "chain_without_detector_ms_per_frame": round(chain_only_ms, 3),
        "people_per_frame": round(per_frame_objects, 1),
        "crowd_chain_without_detector_ms_per_frame": round(crowd_ms, 3),
        "crowd_people_per_frame": round(crowd_objects, 1),
        "zone_events": events,
    }
    say(
        f"detector alone {result['detector_alone_fps']} fps, detector + tracking + zones + counts + grid "
        f"{result['chain_fps']} fps: ratio {result['ratio']} (rounds {result['ratio_rounds']}); "
        f"the chain without the detector {result['chain_without_detector_ms_per_frame']} ms per frame "
        f"({result['people_per_frame']} people per frame); with a crowd of "
        f"{result['crowd_people_per_frame']} per frame "
        f"{result['crowd_chain_without_detector_ms_per_frame']} ms"
    )
    emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
