"""NFV4-LPR3 pipeline benchmark: the whole analytic against its detector and OCR alone.

    python3 visionaire.py bench plates_pipeline            # about 5 minutes on 2 loaded cores
    python3 visionaire.py bench plates_pipeline --quick    # smoke run, about 2 minutes

Media: `tests.support.plates` renders Indonesian plates (DejaVu Sans Mono Bold) on a
photographed car's rear (opencv-doc's licenseplate_motion.jpg) driving nearer over
street scenes of vtest.avi, 1280x720, encoded to H.264 and decoded once into memory;
--frames frames per pass, then --gap frames of the bare street, as at 10 frames/s.

Per round, on the same frames (rounds alternate which goes first, so load from other
processes weighs on both alike):

1. pipeline   `PlateProcessor.process` on every frame (the bundled YOLOv3-tiny, ByteTrack,
              the reader on each track's best frames, the vote, events with crops),
              then `close`; its wall time and this process's CPU time.
2. alone      the detector on every frame, and the plate reader on exactly the crops the
              pipeline read in round 1 (same count, same pixels): the work the pipeline
              cannot avoid.

Figures: frames/s of each (frames / wall time) and their ratio (target >= 0.85), CPU ms
per vehicle pass (pipeline CPU / passes), events and exact plates per pass. No
database or Redis. Readable lines, and one JSON line per figure {"bench": ...}.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._common import emit, machine, process_cpu, say  # noqa: E402

SCENE_FRAMES = [0, 200, 400, 600]
TARGET = 0.85


class RecordingReader:
    """The plate reader, keeping the crops it was given (for the "alone" reference)."""

    def __init__(self, reader):
        self.reader = reader
        self.crops = []

    def read_plate(self, crop, plate_format):
        self.crops.append(crop)
        return self.reader.read_plate(crop, plate_format)


def load_frames(args):
    import cv2

    from tests.support.opencv_samples import opencv_samples_dir, video_frames
    from tests.support.plates import plate_set, plate_video

    samples = opencv_samples_dir(args.media_dir)
    scenes = video_frames(samples / "vtest.avi", SCENE_FRAMES)
    photo = cv2.imread(str(samples / "licenseplate_motion.jpg"))
    passes = [p for p in plate_set(4 * args.passes, seed=args.seed) if p.style == "id"][: args.passes]
    video, _ = plate_video(
        args.media_dir / f"lpr-pipeline-{args.passes}x{args.frames}g{args.gap}-s{args.seed}.mp4",
        passes,
        scenes,
        frames_per_pass=args.frames,
        gap_frames=args.gap,
        fps=10,
        car_photo=photo,
    )
    capture = cv2.VideoCapture(str(video), cv2.CAP_FFMPEG)
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return passes, frames


def run_pipeline(frames, detector, reader):
    from analytics.plates.plugin import PlateConfig, PlateProcessor
    from analytics.plugins import Frame

    recording = RecordingReader(reader)
    processor = PlateProcessor(PlateConfig(), detect=detector.detect, reader=recording)
    events = []
    cpu, started = process_cpu(), time.perf_counter()
    for index, image in enumerate(frames):
        events += processor.process(Frame(image, 1_000_000 + index / 10, index, "bench", 0)).events
    events += processor.close().events
    wall, cpu = time.perf_counter() - started, process_cpu() - cpu
    return wall, cpu, events, recording.crops, processor.stats


def run_alone(frames, crops, detector, reader, plate_format):
    cpu, started = process_cpu(), time.perf_counter()
    for image in frames:
        detector.detect(image)
    for crop in crops:
        reader.read_plate(crop, plate_format)
    return time.perf_counter() - started, process_cpu() - cpu


def run(args) -> int:
    import onnxruntime

    from analytics.objects.detector import DetectorConfig, ObjectDetector
    from analytics.plates.formats import plate_format
    from analytics.plates.reader import plate_reader

    info = machine(onnxruntime=onnxruntime.__version__)
    say(f"machine: {info}")
    emit({"bench": "machine", **info})
    passes, frames = load_frames(args)
    say(f"{len(passes)} passes, {len(frames)} frames of 1280x720")
    detector = ObjectDetector(DetectorConfig(cache_dir=args.media_dir / "models"))
    reader = plate_reader()
    region = plate_format("indonesia")
    ratios, pipeline_fps, alone_fps, cpu_per_pass = [], [], [], []
    # The crops the pipeline read; the warm-up's until the first pipeline round.
    _, _, _, last_crops, _ = run_pipeline(frames, detector, reader)
    for round_index in range(args.rounds):
        order = ("pipeline", "alone") if round_index % 2 == 0 else ("alone", "pipeline")
        results = {}
        for which in order:
            if which == "pipeline":
                wall, cpu, events, last_crops, stats = run_pipeline(frames, detector, reader)
                results["pipeline"] = (wall, cpu)
                exact = sum(e.pipeline_data["plate_text"] in {p.plate for p in passes} for e in events)
            else:
                results["alone"] = run_alone(frames, last_crops, detector, reader, region)
        p_fps = len(frames) / results["pipeline"][0]
        a_fps = len(frames) / results["alone"][0]
        pipeline_fps.append(p_fps)
        alone_fps.append(a_fps)
        ratios.append(p_fps / a_fps)
        cpu_per_pass.append(1000 * results["pipeline"][1] / len(passes))
        say(
            f"round {round_index + 1}: pipeline {p_fps:.2f} frames/s, alone {a_fps:.2f} frames/s, "
            f"ratio {p_fps / a_fps:.3f}; {len(events)} events, {exact} exact of {len(passes)} passes; "
            f"{stats.reads} reads; CPU {cpu_per_pass[-1]:.0f} ms per pass; load {os.getloadavg()[0]:.1f}"
        )
        emit(
            {
                "bench": "plates_pipeline_round",
                "pipeline_fps": round(p_fps, 3),
                "alone_fps": round(a_fps, 3),
                "ratio": round(p_fps / a_fps, 3),
                "events": len(events),
                "exact": exact,
                "passes": len(passes),
                "reads": stats.reads,
                "cpu_ms_per_pass": round(cpu_per_pass[-1], 1),
            }
        )
    ratio = statistics.median(ratios)
    summary = {
        "bench": "plates_pipeline",
        "frames": len(frames),
        "passes": len(passes),
        "pipeline_fps": round(statistics.median(pipeline_fps), 3),
        "alone_fps": round(statistics.median(alone_fps), 3),
        "ratio": round(ratio, 3),
        "ratio_range": [round(min(ratios), 3), round(max(ratios), 3)],
        "cpu_ms_per_pass": round(statistics.median(cpu_per_pass), 1),
        "target": TARGET,
        "met": ratio >= TARGET,
    }
    say(
        f"median ratio {ratio:.3f} (target >= {TARGET}); "
        f"CPU {summary['cpu_ms_per_pass']:.0f} ms per vehicle pass"
    )
    emit(summary)
    return 0 if ratio >= TARGET else 1


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passes", type=int, default=6)
    parser.add_argument("--frames", type=int, default=20, help="frames per pass")
    parser.add_argument("--gap", type=int, default=12, help="frames of bare street after each pass")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="3 passes, 2 rounds")
    parser.add_argument(
        "--media-dir", type=Path, default=Path(tempfile.gettempdir()) / "visionaire-bench-media"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.passes, args.rounds = 3, 2
    if min(args.passes, args.frames, args.rounds) < 1 or args.gap < 0:
        parser.error("--passes, --frames and --rounds must be at least 1, --gap at least 0")
    return args


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
