"""Stream runtime benchmark (issue 3): decode throughput, idle CPU, streams per node.

    .venv/bin/python bench/stream_runtime.py            # full run, about 3-4 minutes
    .venv/bin/python bench/stream_runtime.py --quick    # smoke run, under a minute

It measures the real runtime (workers.runner.StreamRunner on a real Stream row,
capture thread, one-slot buffer, lease, stats in Redis) against a bare OpenCV
loop on the same 1280x720 H.264 25 fps file, in the same process and run:

1. decode   frames per second of one stream task with file pacing off, against
            a bare `cv2.VideoCapture(...).read()` loop (target ratio >= 0.9);
2. cpu      CPU of one idle RUNNING stream (no pipelines, no viewers) at real
            time, against a bare OpenCV loop paced at 25 fps;
3. capacity how many real-time streams one process (one node's worker) runs
            before frames drop or fps falls more than 5% below 25, against the
            bound the bare decode rate gives (bare fps / 25).
4. analytics how many 720p25 street streams one process runs with people
            analytics (NFV4-MPA: detector, tracking, a line, an area, the
            crowd grid) analysing 5 frames a second each, against the bound
            the object detector alone gives on the same frames in the same run
            (its frames per second with one call per core, / 5).

Servers: DATABASE_URL and REDIS_URL when both are set (the bench then uses node
BENCH_NODE and removes what it created), else embedded PostgreSQL and Redis in
a temporary folder that is deleted afterwards. Each scenario prints readable
lines and one JSON line starting with {"bench": ...}.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import psutil  # noqa: E402

from bench._common import OTHER_LOAD, CpuWindow, django_setup, emit, machine, process_cpu, say, servers  # noqa: E402
from tests.support.media import h264_file  # noqa: E402

# A node number no real deployment uses, so no worker or reconcile job touches the bench's streams.
BENCH_NODE = 1023
BENCH_ANALYTIC = "BENCH-COUNT"
FPS = 25
FPS_TOLERANCE = 0.05  # a stream "sustains" real time when it decodes >= 95% of 25 fps
DROP_TOLERANCE = 0.01  # ... and drops < 1% of its frames
ANALYSED_FPS = 5  # the rate a stream is analysed at by default (sampling 200 ms)


# --- output ------------------------------------------------------------------


# --- servers and Django ---------------------------------------------------------


# --- a counting analytic (registered here only) -----------------------------------


@dataclass
class FrameCounter:
    """What the pipeline of one stream saw: the first and the target-th decoded frame."""

    target: int  # decoded frames to span
    first_index: int = 0
    first_ts: float = 0.0
    first_wall: float = 0.0
    last_index: int = 0
    last_ts: float = 0.0
    last_wall: float = 0.0
    first_cpu: float = 0.0  # process CPU seconds at the first frame and at the target-th
    last_cpu: float = 0.0
    processed: int = 0
    done: threading.Event = field(default_factory=threading.Event)

    def see(self, index: int, timestamp: float) -> None:
        if self.done.is_set():
            return
        now = time.perf_counter()
        if not self.processed:
            self.first_index, self.first_ts, self.first_wall = index, timestamp, now
            self.first_cpu = process_cpu()
        self.processed += 1
        self.last_index, self.last_ts, self.last_wall = index, timestamp, now
        if index - self.first_index >= self.target - 1:
            self.last_cpu = process_cpu()
            self.done.set()


COUNTERS: dict[str, FrameCounter] = {}


def register_bench_analytic() -> None:
    from pydantic import Field

    from analytics.plugins import AnalyticPlugin, Frame, Processor, ProcessResult, StrictConfig
    from analytics.registry import register

    class CountConfig(StrictConfig):
        sampling_time_ms: int = Field(default=0, ge=0, description="0: every frame.")

    class CountProcessor(Processor):
        def process(self, frame: Frame) -> ProcessResult:
            counter = COUNTERS.get(frame.stream_id)
            if counter is not None:
                counter.see(frame.index, frame.timestamp)
            return ProcessResult()

    @register
    class CountAnalytic(AnalyticPlugin):
        id = BENCH_ANALYTIC
        name = "Frame counter (benchmark)"
        major_version = 1
        minor_version = 0
        publisher = "bench"
        description = "Counts the frames a stream task hands to its pipelines"
        type = "benchmark"
        config_model = CountConfig

        def create_processor(self, config: StrictConfig) -> Processor:
            return CountProcessor()


# --- streams and runners ------------------------------------------------------------


def ffmpeg_version() -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True, timeout=10).stdout
        return out.split("\n", 1)[0].split(" Copyright")[0]
    return ""


def bench_node():
    from platform_config.models import Node

    node, _ = Node.objects.get_or_create(num=BENCH_NODE, defaults={"name": "benchmark"})
    return node


def stream_make(address: str, *, counting: bool = False, analytics: dict | None = None) -> str:
    # Rows are written directly (not through stream_create) so the platform's
    # max_streams_per_node does not cap the capacity scenario and no control
    # message is queued for a node nobody runs.
    from streams.models import Stream
    from streams.services import pipeline_create, stream_id_new

    stream = Stream.objects.create(
        stream_id=stream_id_new(), node=bench_node(), name="bench", address=address, active=True
    )
    if counting:
        pipeline_create(stream=stream, analytic_id=BENCH_ANALYTIC, config={"sampling_time_ms": 0})
    for analytic_id, config in (analytics or {}).items():
        pipeline_create(stream=stream, analytic_id=analytic_id, config=config)
    return stream.stream_id


@dataclass
class Running:
    runner: object
    thread: threading.Thread


def runner_start(stream_id: str) -> Running:
    from django.db import connections

    from workers.runner import StreamRunner

    runner = StreamRunner(stream_id, node_num=BENCH_NODE, worker_name="bench")

    def body() -> None:
        try:
            if not runner.run():
                raise RuntimeError(f"stream {stream_id}: lease held elsewhere")
        finally:
            connections.close_all()

    thread = threading.Thread(target=body, name=f"runner-{stream_id}", daemon=True)
    thread.start()
    return Running(runner, thread)


def runners_stop(running: list[Running]) -> None:
    for item in running:
        item.runner.request_stop()
    for item in running:
        item.thread.join(15)
        if item.thread.is_alive():
            say(f"  warning: runner {item.runner.stream_id} did not stop within 15 s")


def wait_running(running: list[Running], timeout: float = 30.0) -> None:
    from workers.capture import CaptureState

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sources = [item.runner.source for item in running]
        if all(s is not None and s.state is CaptureState.RUNNING and s.frames_decoded for s in sources):
            return
        time.sleep(0.05)
    raise RuntimeError(f"streams not RUNNING within {timeout:.0f}s")


def cleanup(stream_ids: list[str]) -> None:
    """Remove what the bench wrote (only matters on configured servers)."""
    from analytics.models import Analytic, Seat
    from live.keys import control_queue
    from live.redis import get_redis
    from platform_config.models import Node
    from streams.models import Pipeline, Stream

    Seat.objects.filter(analytic_id=BENCH_ANALYTIC).delete()
    Pipeline.objects.filter(stream_id__in=stream_ids).delete()
    Stream.objects.filter(stream_id__in=stream_ids).delete()
    Analytic.objects.filter(id=BENCH_ANALYTIC).delete()
    Node.objects.filter(num=BENCH_NODE, streams__isnull=True).delete()
    get_redis().delete(control_queue(BENCH_NODE))


# --- 1. decode throughput -------------------------------------------------------------


def bare_decode(path: Path, frames: int) -> dict:
    """A bare OpenCV loop: frames/s (and CPU ms per frame) from the first frame to
    the frames-th, rewinding at the end of the file as the runtime does."""
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    ok, _ = capture.read()  # opening and the first frame are not timed (nor are they for the task)
    if not ok:
        raise RuntimeError(f"OpenCV cannot read {path}")
    started, cpu = time.perf_counter(), process_cpu()
    done = 0
    while done < frames - 1:
        ok, image = capture.read()
        if not ok or image is None:
            capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            continue
        done += 1
    elapsed = time.perf_counter() - started
    cpu = process_cpu() - cpu
    capture.release()
    return {"fps": done / elapsed, "cpu_ms": 1000 * cpu / done}


def task_decode(stream_id: str, frames: int) -> dict:
    """One stream task with pacing off: decoded frames/s between the first frame its
    pipeline saw and the frames-th after it, and the share of them the pipeline got."""
    from django.test import override_settings

    counter = COUNTERS[stream_id] = FrameCounter(target=frames)
    with override_settings(STREAM_PACE_FILES=False):
        running = runner_start(stream_id)
        try:
            if not counter.done.wait(timeout=120):
                raise RuntimeError(f"the stream task did not reach {frames} frames within 120 s")
        finally:
            runners_stop([running])
    decoded = counter.last_index - counter.first_index
    return {
        "fps": decoded / (counter.last_ts - counter.first_ts),
        "processed_fps": (counter.processed - 1) / (counter.last_wall - counter.first_wall),
        "delivered": counter.processed / (decoded + 1),
        "cpu_ms": 1000 * (counter.last_cpu - counter.first_cpu) / decoded,
    }


def scenario_decode(path: Path, frames: int, rounds: int) -> dict:
    say(f"\n[decode] {frames} frames, {rounds} rounds of a bare loop and a stream task (pacing off)")
    stream_id = stream_make(str(path), counting=True)
    bare_decode(path, 50)  # warm the page cache and the codec libraries
    bare, task = [], []
    for n in range(rounds):
        window = CpuWindow()
        if n % 2:  # alternate which goes first, so a change in the machine's load hits both alike
            task.append(task_decode(stream_id, frames))
            bare.append(bare_decode(path, frames))
        else:
            bare.append(bare_decode(path, frames))
            task.append(task_decode(stream_id, frames))
        _, _, other = window.result()
        b, t = bare[-1], task[-1]
        say(
            f"  round {n + 1}: bare {b['fps']:6.1f} fps {b['cpu_ms']:5.2f} CPU ms/frame "
            f"| task {t['fps']:6.1f} fps {t['cpu_ms']:5.2f} CPU ms/frame, "
            f"pipeline got {100 * t['delivered']:5.1f}% "
            f"| ratio {t['fps'] / b['fps']:.3f} | other processes {other:3.0f}% CPU"
        )
    bare_fps = statistics.median(r["fps"] for r in bare)
    task_fps = statistics.median(r["fps"] for r in task)
    bare_cpu = statistics.median(r["cpu_ms"] for r in bare)
    task_cpu = statistics.median(r["cpu_ms"] for r in task)
    processed_fps = statistics.median(r["processed_fps"] for r in task)
    delivered = statistics.median(r["delivered"] for r in task)
    ratio = task_fps / bare_fps
    say(
        f"  median: bare {bare_fps:.1f} fps, task {task_fps:.1f} fps -> ratio {ratio:.3f} (target >= 0.9); "
        f"CPU per frame {task_cpu:.2f} ms vs {bare_cpu:.2f} ms bare ({task_cpu / bare_cpu:.3f}x); "
        f"the pipeline got {100 * delivered:.1f}% of the frames ({processed_fps:.1f} fps)"
    )
    record = {
        "bench": "decode",
        "frames": frames,
        "rounds": rounds,
        "bare_fps": round(bare_fps, 1),
        "task_fps": round(task_fps, 1),
        "ratio": round(ratio, 3),
        "bare_cpu_ms_per_frame": round(bare_cpu, 3),
        "task_cpu_ms_per_frame": round(task_cpu, 3),
        "cpu_ratio": round(task_cpu / bare_cpu, 3),
        "task_processed_fps": round(processed_fps, 1),
        "delivered": round(delivered, 4),
        "round_ratios": [round(t["fps"] / b["fps"], 3) for b, t in zip(bare, task, strict=True)],
    }
    emit(record)
    return record


# --- 2. CPU of one idle real-time stream ----------------------------------------------


def threads_cpu() -> dict[int, float]:
    """CPU seconds of each thread of this process, by native thread id."""
    return {t.id: t.user_time + t.system_time for t in psutil.Process().threads()}


def bare_paced_cpu(path: Path, seconds: float) -> dict:
    """A bare OpenCV loop reading the file at 25 fps: process CPU, its thread's share,
    other processes' CPU, all in % of one core."""
    stop = threading.Event()
    counted = [0]

    def loop() -> None:
        capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
        due = time.monotonic()
        while not stop.is_set():
            ok, image = capture.read()
            if not ok or image is None:
                capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
                continue
            counted[0] += 1
            due += 1 / FPS
            stop.wait(max(0.0, due - time.monotonic()))
        capture.release()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    time.sleep(2)  # settle: open, first frames
    counted0, threads0, window = counted[0], threads_cpu(), CpuWindow()
    time.sleep(seconds)
    wall, own, other = window.result()
    threads1 = threads_cpu()
    stop.set()
    thread.join(5)
    loop_cpu = threads1.get(thread.native_id, 0.0) - threads0.get(thread.native_id, 0.0)
    return {"own": own, "loop": 100 * loop_cpu / wall, "other": other, "fps": (counted[0] - counted0) / wall}


def stream_paced_cpu(path: Path, seconds: float) -> dict:
    """One idle RUNNING stream task at real time: process CPU, split into the runner
    thread, the capture thread and the rest (FFmpeg's decoder threads, Python's others)."""
    stream_id = stream_make(str(path))
    running = runner_start(stream_id)
    try:
        wait_running([running])
        time.sleep(2)  # settle
        source = running.runner.source
        runner_tid, capture_tid = running.thread.native_id, source.reader_thread.native_id
        decoded0, dropped0 = source.frames_decoded, source.frames_dropped
        threads0, window = threads_cpu(), CpuWindow()
        time.sleep(seconds)
        wall, own, other = window.result()
        threads1 = threads_cpu()
        fps = (source.frames_decoded - decoded0) / wall
        dropped = source.frames_dropped - dropped0
        state = running.runner.state
    finally:
        runners_stop([running])

    def share(tid: int) -> float:
        return 100 * (threads1.get(tid, 0.0) - threads0.get(tid, 0.0)) / wall

    return {
        "own": own,
        "other": other,
        "runner": share(runner_tid),
        "capture": share(capture_tid),
        "fps": fps,
        "dropped": dropped,
        "state": state,
    }


def scenario_cpu(path: Path, seconds: float, rounds: int) -> dict:
    say(
        f"\n[cpu] one idle RUNNING stream at real time (pacing on, no pipelines) vs a bare loop paced "
        f"at {FPS} fps; {rounds} rounds of {seconds:.0f} s each"
    )
    bare, task = [], []
    for n in range(rounds):
        bare.append(bare_paced_cpu(path, seconds))
        task.append(stream_paced_cpu(path, seconds))
        b, t = bare[-1], task[-1]
        say(
            f"  round {n + 1}: bare {b['own']:4.1f}% of one core (loop thread {b['loop']:.2f}%) at "
            f"{b['fps']:.2f} fps | stream task {t['own']:4.1f}% "
            f"(runner thread {t['runner']:.2f}%, capture thread {t['capture']:.2f}%) at {t['fps']:.2f} fps, "
            f"{t['dropped']} dropped, {t['state']} | other processes {t['other']:3.0f}%"
        )
    bare_pct = statistics.fmean(b["own"] for b in bare)
    loop_pct = statistics.fmean(b["loop"] for b in bare)
    task_pct = statistics.fmean(t["own"] for t in task)
    runner_pct = statistics.fmean(t["runner"] for t in task)
    capture_pct = statistics.fmean(t["capture"] for t in task)
    say(
        f"  mean: stream task {task_pct:.1f}% of one core vs {bare_pct:.1f}% for the bare loop "
        f"({task_pct / bare_pct:.2f}x); runner thread {runner_pct:.2f}%, capture thread {capture_pct:.2f}% "
        f"(the bare loop's thread {loop_pct:.2f}%)"
    )
    record = {
        "bench": "cpu",
        "seconds": seconds,
        "rounds": rounds,
        "stream_cpu_pct": round(task_pct, 2),
        "bare_cpu_pct": round(bare_pct, 2),
        "ratio": round(task_pct / bare_pct, 3),
        "runner_thread_cpu_pct": round(runner_pct, 2),
        "capture_thread_cpu_pct": round(capture_pct, 2),
        "bare_loop_thread_cpu_pct": round(loop_pct, 2),
        "fps": round(statistics.fmean(t["fps"] for t in task), 2),
        "frames_dropped": sum(t["dropped"] for t in task),
        "states": sorted({t["state"] for t in task}),
        "other_processes_cpu_pct": round(statistics.fmean(t["other"] for t in task), 1),
    }
    emit(record)
    return record


# --- 3. streams per node ------------------------------------------------------------------


@dataclass
class Step:
    streams: int
    min_fps: float
    mean_fps: float
    max_drop_pct: float
    cpu_pct: float
    other_pct: float
    not_running: int
    target_fps: float = FPS  # decoded (or, with analytics, analysed) frames a second per stream
    drops_count: bool = True  # analysing streams drop the frames between analysed ones by design

    @property
    def sustained(self) -> bool:
        return (
            self.not_running == 0
            and self.min_fps >= self.target_fps * (1 - FPS_TOLERANCE)
            and (not self.drops_count or self.max_drop_pct < 100 * DROP_TOLERANCE)
        )


class Fleet:
    """Real-time streams run by one process, like one node's worker; grows and shrinks.
    With `analytics` ({analytic id: config}) each stream runs those pipelines, and a
    step measures the frames they analysed instead of the frames decoded."""

    def __init__(self, address: str, analytics: dict | None = None) -> None:
        self.address = address
        self.analytics = analytics
        self.spare: list[str] = []
        self.running: list[Running] = []

    def resize(self, count: int) -> None:
        if count < len(self.running):
            extra, self.running = self.running[count:], self.running[:count]
            runners_stop(extra)
            self.spare.extend(item.runner.stream_id for item in extra)
        added = []
        while len(self.running) < count:
            if not self.spare:
                self.spare.append(stream_make(self.address, analytics=self.analytics))
            added.append(runner_start(self.spare.pop()))
            self.running.append(added[-1])
        if added:
            with contextlib.suppress(RuntimeError):  # a stream that does not come up counts as not running
                wait_running(added, timeout=60)

    def measure(self, settle: float, window_s: float) -> Step:
        from workers.capture import CaptureState

        time.sleep(settle)
        sources = [item.runner.source for item in self.running]
        before = [(s.frames_decoded, s.frames_dropped) if s else (0, 0) for s in sources]
        analysed_before = [self._analysed(item) for item in self.running]
        window = CpuWindow()
        time.sleep(window_s)
        wall, own, other = window.result()
        fps, drops = [], []
        not_running = 0
        for item, source, (decoded0, dropped0), analysed0 in zip(
            self.running, sources, before, analysed_before, strict=True
        ):
            if source is None:
                not_running += 1
                fps.append(0.0)
                continue
            if item.runner.source is not source or source.state is not CaptureState.RUNNING:
                not_running += 1  # replaced by the watchdog or reconnecting: not sustained
            decoded = source.frames_decoded - decoded0
            counted = self._analysed(item) - analysed0 if self.analytics else decoded
            fps.append(counted / wall)
            drops.append(100 * (source.frames_dropped - dropped0) / max(decoded, 1))
        return Step(
            streams=len(self.running),
            min_fps=min(fps),
            mean_fps=statistics.fmean(fps),
            max_drop_pct=max(drops, default=0.0),
            cpu_pct=own,
            other_pct=other,
            not_running=not_running,
            target_fps=ANALYSED_FPS if self.analytics else FPS,
            drops_count=not self.analytics,
        )

    @staticmethod
    def _analysed(item: Running) -> int:
        """Frames the stream's slowest pipeline analysed so far."""
        host = item.runner.host
        return min((slot.processed for slot in host.slots), default=0) if host else 0

    def close(self) -> None:
        runners_stop(self.running)
        self.spare.extend(item.runner.stream_id for item in self.running)
        self.running = []


def scenario_capacity(
    path: Path,
    *,
    max_streams: int,
    settle: float,
    window_s: float,
    bound: int | None,
    cpu_bound: int | None,
    analytics: dict | None = None,
):
    name = "analytics" if analytics else "capacity"
    if analytics:
        say(
            f"\n[analytics] 720p25 street streams in one process, each analysed by "
            f"{', '.join(analytics)}; sustained = every stream analyses >= "
            f"{ANALYSED_FPS * (1 - FPS_TOLERANCE):.2f} frames/s "
            f"({settle:.0f} s settle, {window_s:.0f} s window per step)"
        )
    else:
        say(
            f"\n[capacity] real-time streams in one process; sustained = every stream >= "
            f"{FPS * (1 - FPS_TOLERANCE):.2f} fps and < {100 * DROP_TOLERANCE:.0f}% dropped "
            f"({settle:.0f} s settle, {window_s:.0f} s window per step)"
        )
    fleet = Fleet(str(path), analytics)
    steps: dict[int, Step] = {}

    def probe(count: int) -> bool:
        fleet.resize(count)
        step = steps[count] = fleet.measure(settle, window_s)
        say(
            f"  {count:3d} streams: fps min {step.min_fps:5.2f} mean {step.mean_fps:5.2f}, "
            f"max drops {step.max_drop_pct:5.2f}%, process CPU {step.cpu_pct:5.1f}%, "
            f"other processes {step.other_pct:3.0f}%, not running {step.not_running} -> "
            f"{'ok' if step.sustained else 'NOT sustained'}"
        )
        return step.sustained

    try:
        # Double until a count fails, then bisect between the last good and the first bad one.
        good, bad, count = 0, None, 1
        while count <= max_streams:
            if probe(count):
                good = count
                count *= 2
            else:
                bad = count
                break
        if bad is None and good < max_streams:
            if probe(max_streams):
                good = max_streams
            else:
                bad = max_streams
        while bad is not None and bad - good > 1:
            middle = (good + bad) // 2
            if probe(middle):
                good = middle
            else:
                bad = middle
    finally:
        fleet.close()
    bound_name = "detector-alone bound" if analytics else "bare decode bound"
    say(
        f"  sustained: {good} streams of 720p25 per process on {os.cpu_count()} cores"
        + (f" at {ANALYSED_FPS} analysed frames/s" if analytics else "")
        + (f" ({bound_name} {bound}: ratio {good / bound:.2f})" if bound else "")
        + (f" (CPU bound with every core free: {cpu_bound})" if cpu_bound else "")
        + (f"; first failing count {bad}" if bad else f"; the cap of {max_streams} streams was reached")
    )
    record = {
        "bench": name,
        "analytics": list(analytics or ()),
        "streams_sustained": good,
        "first_failing": bad,
        "max_streams_tried": max_streams,
        ("detector_alone_bound" if analytics else "bare_decode_bound"): bound,
        "bare_cpu_bound": cpu_bound,
        "ratio": round(good / bound, 3) if bound else None,
        "steps": [
            {
                "streams": s.streams,
                "min_fps": round(s.min_fps, 2),
                "mean_fps": round(s.mean_fps, 2),
                "max_drop_pct": round(s.max_drop_pct, 2),
                "cpu_pct": round(s.cpu_pct, 1),
                "other_processes_cpu_pct": round(s.other_pct, 1),
                "sustained": s.sustained,
            }
            for s in sorted(steps.values(), key=lambda s: s.streams)
        ],
    }
    emit(record)
    return record


# --- 4. analysed streams per node -----------------------------------------------------------

# People analytics as a counting deployment configures them: one line, one area with a
# limit and dwell, the crowd grid (the zones of bench/people.py), analysed 5 times a second.
PEOPLE_CONFIG = {
    "sampling_time_ms": 1000 // ANALYSED_FPS,
    "lines": [
        {"name": "crossing", "points": [{"x": 0.7, "y": 0.2}, {"x": 0.7, "y": 0.8}], "in_side": "right"},
    ],
    "areas": [
        {
            "name": "road",
            "points": [{"x": x, "y": y} for x, y in ((0.0, 0.3), (1.0, 0.2), (1.0, 0.8), (0.0, 0.5))],
            "occupancy_limit": 6,
            "dwell_ms": 5000,
        }
    ],
    "crowd": {"enabled": True},
}


def street_file(media_dir: Path) -> Path:
    """vtest.avi (Debian's opencv-doc: a street with pedestrians) as a 1280x720 25 fps camera."""
    from tests.support.media import h264_transcoded
    from tests.support.opencv_samples import opencv_samples_dir

    vtest = opencv_samples_dir(media_dir) / "vtest.avi"
    return h264_transcoded(vtest, media_dir / "vtest_1280x720_25fps.mp4")


def detector_bound(path: Path, seconds: float) -> int:
    """Streams the object detector alone could analyse at ANALYSED_FPS: its frames per
    second on frames of `path` with one caller per core (as streams call it), / 5."""
    from analytics.objects.detector import object_detector

    capture = cv2.VideoCapture(str(path))
    frames = []
    while len(frames) < 40:
        ok, image = capture.read()
        if not ok:
            break
        frames.append(image)
    capture.release()
    detector = object_detector()  # the process's detector, which the streams' pipelines use too
    detector.detect(frames[0])  # warm
    done = [0] * (os.cpu_count() or 1)
    stop = threading.Event()

    def caller(k: int) -> None:
        i = k
        while not stop.is_set():
            detector.detect(frames[i % len(frames)])
            done[k] += 1
            i += len(done)

    threads = [threading.Thread(target=caller, args=(k,), daemon=True) for k in range(len(done))]
    window = CpuWindow()
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    wall, own, other = window.result()
    fps = sum(done) / wall
    bound = int(fps // ANALYSED_FPS)
    say(
        f"\n[analytics] detector alone, {len(done)} callers: {fps:.1f} frames/s "
        f"({1000 * len(done) / fps:.0f} ms a frame per caller; other processes {other:.0f}%) "
        f"-> bound {bound} streams at {ANALYSED_FPS} frames/s"
    )
    emit({"bench": "detector_alone", "callers": len(done), "fps": round(fps, 2), "bound": bound})
    return bound


# --- main ---------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=["decode", "cpu", "capacity", "analytics"], action="append")
    parser.add_argument("--quick", action="store_true", help="short windows: checks the bench works")
    parser.add_argument("--file-seconds", type=float, default=20.0, help="length of the test file")
    parser.add_argument("--decode-frames", type=int, default=2000)
    parser.add_argument("--decode-rounds", type=int, default=5)
    parser.add_argument("--cpu-seconds", type=float, default=10.0)
    parser.add_argument("--cpu-rounds", type=int, default=2)
    parser.add_argument("--max-streams", type=int, default=64)
    parser.add_argument("--max-analysed-streams", type=int, default=16)
    parser.add_argument("--settle-seconds", type=float, default=3.0)
    parser.add_argument("--window-seconds", type=float, default=8.0)
    parser.add_argument(
        "--media-dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "visionaire-bench-media",
        help="where the test file is made (kept: later runs reuse it)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.decode_frames, args.decode_rounds, args.cpu_seconds, args.cpu_rounds = 500, 1, 4.0, 1
        args.max_streams, args.settle_seconds, args.window_seconds = min(args.max_streams, 4), 1.0, 3.0
        args.max_analysed_streams = min(args.max_analysed_streams, 2)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    scenarios = args.only or ["decode", "cpu", "capacity", "analytics"]
    started = time.monotonic()
    info = machine(opencv=cv2.__version__, ffmpeg=ffmpeg_version())
    say(
        f"machine: {info['nproc']} CPUs ({info['cpu']}), {info['ram_gib']} GiB RAM, Python {info['python']}, "
        f"OpenCV {info['opencv']}, {info['ffmpeg']}, load average {info['loadavg_1m']}"
    )
    emit({"bench": "machine", **info})
    path = h264_file(
        args.media_dir / f"testsrc_1280x720_25fps_{args.file_seconds:g}s.mp4", seconds=args.file_seconds
    )
    say(f"file: {path} (1280x720 H.264 25 fps, {args.file_seconds:g} s, ffmpeg testsrc)")

    data_dir = Path(tempfile.mkdtemp(prefix="visionaire-bench-"))
    stream_ids: list[str] = []
    try:
        with servers(data_dir) as endpoints:
            django_setup(endpoints, data_dir, before_migrate=register_bench_analytic, sync_analytics=True)
            from streams.models import Stream

            try:
                bound = cpu_bound = None
                if "decode" in scenarios:
                    decode = scenario_decode(path, args.decode_frames, args.decode_rounds)
                    # Streams a bare decoder could feed at 25 fps: by this run's throughput
                    # (same machine load), and by CPU per frame with every core free.
                    bound = int(decode["bare_fps"] // FPS)
                    cpu_bound = int(os.cpu_count() * 1000 / (decode["bare_cpu_ms_per_frame"] * FPS))
                if "cpu" in scenarios:
                    scenario_cpu(path, args.cpu_seconds, args.cpu_rounds)
                if "capacity" in scenarios:
                    scenario_capacity(
                        path,
                        max_streams=args.max_streams,
                        settle=args.settle_seconds,
                        window_s=args.window_seconds,
                        bound=bound,
                        cpu_bound=cpu_bound,
                    )
                if "analytics" in scenarios:
                    street = street_file(args.media_dir)
                    scenario_capacity(
                        street,
                        max_streams=args.max_analysed_streams,
                        settle=args.settle_seconds,
                        window_s=args.window_seconds,
                        bound=detector_bound(street, args.window_seconds),
                        cpu_bound=None,
                        analytics={"NFV4-MPA": PEOPLE_CONFIG},
                    )
            finally:
                mine = Stream.objects.filter(node_id=BENCH_NODE, name="bench")
                stream_ids = list(mine.values_list("stream_id", flat=True))
                if not endpoints.embedded:
                    cleanup(stream_ids)
                from django.db import connections

                connections.close_all()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    say(f"\ntotal bench time {time.monotonic() - started:.0f} s")
    if OTHER_LOAD and statistics.fmean(OTHER_LOAD) > 25:
        say(
            f"warning: other processes used {statistics.fmean(OTHER_LOAD):.0f}% of one core on average "
            f"(of {100 * (os.cpu_count() or 1)}%) while this ran: the figures understate a quiet machine"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
