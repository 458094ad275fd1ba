"""Licence plate benchmark: read rate and CPU time of the plate reader on rendered passes.

    python3 visionaire.py bench plates            # about 6 minutes on 2 loaded cores
    python3 visionaire.py bench plates --quick    # smoke run, about a minute

Media: `tests.support.plates` renders plates (Indonesian `B 1234 XYZ` and UK
`LS15 EBC` layouts, DejaVu Sans Mono Bold, black on white or yellow) on drawn
vehicles, perspective-warped, driving nearer over street scenes of vtest.avi
(Debian's opencv-doc, fetched once into --media-dir); the frames are encoded to
H.264 by ffmpeg and decoded again, and each vehicle's box (widened by 5%, as a
detector's would be) is the crop read.

Per vehicle crop, interleaved crop by crop so load from other processes weighs on
all alike:

1. reader     `PlateReader.read_plate` under the pass's region format: the lower
              part of the box, then the whole box; the corrected plate must equal
              the rendered number. Also the same reading's raw text (normalised,
              before correction by slot), to show what the format adds.
2. raw OCR    rapidocr's own pipeline (`RapidOCR`, the same bundled det/rec models
              by path, no angle classifier, detector limited to 640 px on the long
              side) on the same lower part of the box; counted as read when any
              line it returns, normalised, equals the plate (an oracle choice of
              line: an upper bound for OCR without a format).

Per pass (--frames crops of one vehicle): the vote of the reader's readings
(`analytics.plates.voting`), and the reader's CPU ms for the whole pass.
Wall and this process's CPU ms per crop (ONNX Runtime uses all cores). No
database or Redis. Readable lines, and one JSON line per figure {"bench": ...}.
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
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import psutil  # noqa: E402

SCENE_FRAMES = [0, 200, 400, 600]


def say(text: str = "") -> None:
    print(text, flush=True)


def emit(record: dict) -> None:
    print(json.dumps(record, separators=(",", ":")), flush=True)


def machine() -> dict:
    import onnxruntime

    from analytics import runtime as model_runtime

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
        "onnxruntime": onnxruntime.__version__,
        "providers": model_runtime.providers(),
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }


def process_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def busy_cpu() -> float:
    times = psutil.cpu_times()
    return times.user + times.nice + times.system + times.irq + times.softirq + times.steal


def timed(call):
    """(result, wall ms, this process's CPU ms)."""
    cpu, started = process_cpu(), time.perf_counter()
    result = call()
    return result, 1000 * (time.perf_counter() - started), 1000 * (process_cpu() - cpu)


def summary(values: list[float]) -> dict:
    return {
        "mean": round(statistics.fmean(values), 1),
        "p50": round(statistics.median(values), 1),
        "p90": round(float(np.percentile(values, 90)), 1),
    }


def rapidocr_engine(reader):
    from rapidocr import RapidOCR

    return RapidOCR(
        params={
            "Det.model_path": str(reader.models.det),
            "Rec.model_path": str(reader.models.rec),
            "Global.use_cls": False,
            "Det.limit_type": "max",
            "Det.limit_side_len": 640,
            "Global.log_level": "error",
        }
    )


def run(args) -> int:
    from analytics.plates.formats import normalise, plate_format
    from analytics.plates.reader import plate_reader
    from analytics.plates.voting import TrackVote
    from tests.support.opencv_samples import opencv_samples_dir, video_frames
    from tests.support.plates import plate_set, plate_video, vehicle_crops

    say(f"machine: {machine()}")
    emit({"bench": "machine", **machine()})
    scenes = video_frames(opencv_samples_dir(args.media_dir) / "vtest.avi", SCENE_FRAMES)
    passes = plate_set(args.passes, seed=args.seed)
    video, boxes = plate_video(
        args.media_dir / f"plates-{args.passes}x{args.frames}-s{args.seed}.mp4",
        passes,
        scenes,
        frames_per_pass=args.frames,
    )
    formats = {"id": plate_format("indonesia"), "uk": plate_format("uk")}
    reader = plate_reader()
    engine = rapidocr_engine(reader)
    crops = list(vehicle_crops(video, boxes))
    # Warm-up: first runs allocate.
    for _, _, crop in crops[:2]:
        reader.read_plate(crop, formats["uk"])
        engine(crop[int(crop.shape[0] * (1 - reader.config.lower_fraction)) :])

    stats = {key: [] for key in ("reader_ms", "reader_cpu", "raw_ms", "raw_cpu")}
    exact = {"reader": 0, "reader_uncorrected": 0, "raw_ocr": 0}
    votes = {index: TrackVote() for index in range(len(passes))}
    pass_cpu = dict.fromkeys(range(len(passes)), 0.0)
    misses = []
    own, busy, wall = process_cpu(), busy_cpu(), time.monotonic()
    for index, frame, crop in crops:
        spec = passes[index]
        read, ms, cpu = timed(lambda crop=crop, spec=spec: reader.read_plate(crop, formats[spec.style]))
        stats["reader_ms"].append(ms)
        stats["reader_cpu"].append(cpu)
        pass_cpu[index] += cpu
        if read is not None:
            votes[index].add(read.reading())
            exact["reader"] += read.plate == spec.plate
            exact["reader_uncorrected"] += normalise(read.text) == spec.plate
        if read is None or read.plate != spec.plate:
            misses.append({"frame": frame, "plate": spec.number, "read": read.text if read else None})
        lower = crop[int(crop.shape[0] * (1 - reader.config.lower_fraction)) :]
        out, ms, cpu = timed(lambda lower=lower: engine(lower))
        stats["raw_ms"].append(ms)
        stats["raw_cpu"].append(cpu)
        exact["raw_ocr"] += any(normalise(text) == spec.plate for text in (out.txts or ()))
    elapsed = time.monotonic() - wall
    own = process_cpu() - own
    other = max(0.0, 100 * (busy_cpu() - busy - own) / elapsed)

    voted = [votes[i].result() for i in range(len(passes))]
    right = [v for v, p in zip(voted, passes, strict=True) if v is not None and v.plate == p.plate]
    passes_right = len(right)
    agreeing = [v.agreeing for v in right]
    result = {
        "bench": "plates",
        "passes": len(passes),
        "frames_per_pass": args.frames,
        "crops": len(crops),
        "reader_exact_rate": round(exact["reader"] / len(crops), 3),
        "reader_uncorrected_exact_rate": round(exact["reader_uncorrected"] / len(crops), 3),
        "raw_ocr_exact_rate": round(exact["raw_ocr"] / len(crops), 3),
        "passes_voted_exact_rate": round(passes_right / len(passes), 3),
        "mean_agreeing_readings": round(statistics.fmean(agreeing), 2) if agreeing else None,
        "reader_ms": summary(stats["reader_ms"]),
        "reader_cpu_ms": summary(stats["reader_cpu"]),
        "reader_cpu_ms_per_pass": summary(list(pass_cpu.values())),
        "raw_ocr_ms": summary(stats["raw_ms"]),
        "raw_ocr_cpu_ms": summary(stats["raw_cpu"]),
        "other_processes_cpu_pct": round(other),
        "misses": misses,
    }
    emit(result)
    say(
        f"{len(crops)} crops of {len(passes)} passes: reader exact {exact['reader']}/{len(crops)} "
        f"(uncorrected {exact['reader_uncorrected']}), raw OCR {exact['raw_ocr']}/{len(crops)}; "
        f"passes voted exact {passes_right}/{len(passes)}"
    )
    say(
        f"reader {result['reader_ms']} ms, CPU {result['reader_cpu_ms']} ms per crop, "
        f"CPU {result['reader_cpu_ms_per_pass']} ms per pass; raw OCR {result['raw_ocr_ms']} ms, "
        f"CPU {result['raw_ocr_cpu_ms']} ms; other processes {result['other_processes_cpu_pct']}%"
    )
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--passes", type=int, default=24, help="vehicle passes (half Indonesian, half UK)")
    parser.add_argument("--frames", type=int, default=4, help="frames read per pass")
    parser.add_argument("--seed", type=int, default=7, help="seed of the rendered set")
    parser.add_argument("--quick", action="store_true", help="8 passes of 2 frames")
    parser.add_argument(
        "--media-dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "visionaire-bench-media",
        help="where vtest.avi and the rendered video are kept (later runs reuse them)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.passes, args.frames = 8, 2
    if args.passes < 1 or args.frames < 1:
        parser.error("--passes and --frames must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
