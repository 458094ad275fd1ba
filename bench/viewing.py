"""Live viewing benchmark (issue 4): what more viewers cost the API process.

    .venv/bin/python bench/viewing.py            # about 3 minutes
    .venv/bin/python bench/viewing.py --quick    # smoke run, about a minute

One 1280x720 25 fps H.264 file plays as a camera (a real StreamRunner in this
process, publishing frames while someone watches); the API is a real uvicorn
process (the launcher's `api` command line), measured from outside with psutil;
the viewers are asyncio HTTP clients in this process reading the MJPEG with a
multipart parser.

1. one_vs_fifty  API process CPU with 1 viewer against 50 viewers of the same
                 variant (10 fps, 320 px, quality 60), in alternating rounds;
                 target: ratio <= 1.5 (each variant is encoded once).
2. five_variants 50 viewers over 5 variants (240/320/480/720 px and an overlay
                 variant at 320 px, all 10 fps): API CPU and delivered fps.
3. latency       capture-to-delivery time of every part received while measured
                 (X-NF-Frame-Ts, the frame's capture time, against the time its
                 last byte arrived); target: p95 < 200 ms.

Servers: DATABASE_URL and REDIS_URL when both are set, else embedded PostgreSQL
and Redis in a temporary folder deleted afterwards. Prints readable lines and one
JSON line per scenario starting with {"bench": ...}; exits 0 when both targets are met.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import psutil  # noqa: E402

from bench._common import django_setup, emit, free_port, machine, percentile, say, servers  # noqa: E402
from tests.support.media import h264_file  # noqa: E402

BENCH_NODE = 1021  # a node number no deployment uses: no worker touches the bench's stream
BENCH_ANALYTIC = "BENCH-BOX"
CACHE = Path(os.environ.get("VISIONAIRE_BENCH_CACHE", "/tmp/visionaire-bench-cache"))
RATIO_TARGET = 1.5
P95_TARGET_MS = 200.0
FPS = 10
SAME = {"fps": FPS, "height": 320, "jpeg_quality": 60}
FIVE = [
    ("", {"fps": FPS, "height": 240, "jpeg_quality": 60}),
    ("", {"fps": FPS, "height": 320, "jpeg_quality": 60}),
    ("", {"fps": FPS, "height": 480, "jpeg_quality": 70}),
    ("", {"fps": FPS, "height": 720, "jpeg_quality": 80}),
    (f"/{BENCH_ANALYTIC}", {"fps": FPS, "height": 320, "jpeg_quality": 60}),
]


# --- servers, Django, the stream ----------------------------------------------------


def register_bench_analytic() -> None:
    """An analytic that boxes the middle of every frame: an overlay to draw."""
    from pydantic import Field

    from analytics.plugins import AnalyticPlugin, Frame, OverlayItem, Processor, ProcessResult, StrictConfig
    from analytics.registry import register

    class BoxConfig(StrictConfig):
        sampling_time_ms: int = Field(default=0, ge=0, description="0: every frame.")

    class BoxProcessor(Processor):
        def process(self, frame: Frame) -> ProcessResult:
            height, width = frame.image.shape[:2]
            box = OverlayItem(kind="box", points=((width * 0.3, height * 0.3), (width * 0.6, height * 0.7)))
            line = OverlayItem(kind="line", points=((0, height * 0.8), (width, height * 0.8)), label="line")
            return ProcessResult(overlay=[box, line])

    @register
    class BoxAnalytic(AnalyticPlugin):
        id = BENCH_ANALYTIC
        name = "Box (benchmark)"
        major_version = 1
        minor_version = 0
        publisher = "bench"
        description = "Boxes the middle of every frame"
        type = "benchmark"
        config_model = BoxConfig

        def create_processor(self, config: StrictConfig) -> Processor:
            return BoxProcessor()


def stream_make(address: str) -> str:
    from platform_config.models import Node
    from streams.models import Stream
    from streams.services import pipeline_create, stream_id_new

    node, _ = Node.objects.get_or_create(num=BENCH_NODE, defaults={"name": "benchmark"})
    stream = Stream.objects.create(
        stream_id=stream_id_new(), node=node, name="bench", address=address, active=True
    )
    pipeline_create(stream=stream, analytic_id=BENCH_ANALYTIC, config={"sampling_time_ms": 0})
    return stream.stream_id


def cleanup(stream_id: str) -> None:
    from analytics.models import Analytic, Seat
    from live.keys import control_queue
    from live.redis import get_redis
    from platform_config.models import Node
    from streams.models import Pipeline, Stream

    Pipeline.objects.filter(stream_id=stream_id).delete()
    Stream.objects.filter(stream_id=stream_id).delete()
    Seat.objects.filter(analytic_id=BENCH_ANALYTIC).delete()
    Analytic.objects.filter(id=BENCH_ANALYTIC).delete()
    Node.objects.filter(num=BENCH_NODE, streams__isnull=True).delete()
    get_redis().delete(control_queue(BENCH_NODE))


@dataclass
class Running:
    runner: object
    thread: threading.Thread

    def stop(self) -> None:
        self.runner.request_stop()
        self.thread.join(15)


def runner_start(stream_id: str) -> Running:
    from django.db import connections

    from workers.runner import StreamRunner

    runner = StreamRunner(stream_id, node_num=BENCH_NODE, worker_name="bench")

    def body() -> None:
        try:
            runner.run()
        finally:
            connections.close_all()

    thread = threading.Thread(target=body, name="bench-runner", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while runner.state != "RUNNING":
        if time.monotonic() > deadline:
            raise RuntimeError(f"the stream is not RUNNING after 30 s: {runner.state} {runner.message}")
        time.sleep(0.05)
    return Running(runner, thread)


class ApiProcess:
    """The API as `visionaire.py api` runs it: uvicorn on the ASGI application."""

    def __init__(self, endpoints, data_dir: Path, port: int) -> None:
        from visionaire_site.launcher import api_command

        self.port = port
        env = dict(os.environ)
        env.update(
            DATABASE_URL=endpoints.database_url,
            REDIS_URL=endpoints.redis_url,
            VISIONAIRE_DATA_DIR=str(data_dir),
            DJANGO_SETTINGS_MODULE="visionaire_site.settings",
            VISIONAIRE_LOG_LEVEL="warning",
            PYTHONUNBUFFERED="1",
        )
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            api_command("127.0.0.1", port), cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT
        )
        self.ps = psutil.Process(self.process.pid)
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2):
                    break
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.log.seek(0)
                raise RuntimeError(
                    f"the API did not start:\n{self.log.read().decode(errors='replace')[-3000:]}"
                )
            time.sleep(0.2)

    def cpu_seconds(self) -> float:
        times = self.ps.cpu_times()
        return times.user + times.system

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


# --- viewers -----------------------------------------------------------------------


class Body:
    """The response body of one HTTP/1.1 response, chunked transfer decoded."""

    def __init__(self, reader: asyncio.StreamReader, chunked: bool) -> None:
        self.reader = reader
        self.chunked = chunked
        self.buffer = bytearray()
        self.left = 0  # bytes left in the current chunk

    async def _fill(self) -> None:
        if self.chunked and self.left == 0:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                raise EOFError
            self.left = size
        data = await self.reader.read(min(self.left, 65536) if self.chunked else 65536)
        if not data:
            raise EOFError
        self.buffer += data
        if self.chunked:
            self.left -= len(data)
            if self.left == 0:
                await self.reader.readexactly(2)

    async def readuntil(self, separator: bytes) -> bytes:
        while (index := self.buffer.find(separator)) < 0:
            await self._fill()
        end = index + len(separator)
        out = bytes(self.buffer[:end])
        del self.buffer[:end]
        return out

    async def readexactly(self, count: int) -> bytes:
        while len(self.buffer) < count:
            await self._fill()
        out = bytes(self.buffer[:count])
        del self.buffer[:count]
        return out


@dataclass
class Viewer:
    path: str
    parts: list[tuple[float, float]] = field(default_factory=list)  # (received, captured), unix seconds
    first: asyncio.Event = field(default_factory=asyncio.Event)
    error: str = ""

    async def watch(self, port: int) -> None:
        writer = None
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=2**20)
            writer.write(f"GET {self.path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            if not head.startswith("HTTP/1.1 200"):
                raise RuntimeError(head.split("\r\n", 1)[0])
            body = Body(reader, "transfer-encoding: chunked" in head.lower())
            boundary = re.search(r"boundary=(\S+)", head).group(1).encode()
            while True:
                part_head = (await body.readuntil(b"\r\n\r\n")).decode("latin-1")
                if f"--{boundary.decode()}\r\n" not in part_head:
                    raise RuntimeError("multipart framing lost")
                length = int(re.search(r"Content-Length: (\d+)", part_head).group(1))
                await body.readexactly(length + 2)
                received = time.time()
                captured = re.search(r"X-NF-Frame-Ts: (\d+)", part_head)
                if captured:
                    self.parts.append((received, int(captured.group(1)) / 1000))
                    self.first.set()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # reported with the scenario's figures
            self.error = f"{type(exc).__name__}: {exc}"
            self.first.set()
        finally:
            if writer is not None:
                writer.close()


def mjpeg_path(stream_id: str, suffix: str, query: dict) -> str:
    return f"/mjpeg/{BENCH_NODE}/{stream_id}{suffix}?" + "&".join(f"{k}={v}" for k, v in query.items())


@dataclass
class Measure:
    viewers: int
    seconds: float
    cpu_percent: float  # API process, % of one core
    other_percent: float  # every other process on the machine (this one too: runner, viewers)
    latencies_ms: list[float]
    fps: list[float]  # delivered, per viewer
    errors: list[str]
    by_path: dict[str, list[float]]


async def measure(api: ApiProcess, paths: list[str], *, warmup: float, seconds: float) -> Measure:
    viewers = [Viewer(path) for path in paths]
    tasks = [asyncio.create_task(viewer.watch(api.port)) for viewer in viewers]
    try:
        async with asyncio.timeout(30):
            await asyncio.gather(*(viewer.first.wait() for viewer in viewers))
        await asyncio.sleep(warmup)
        start_wall, start_cpu = time.time(), api.cpu_seconds()
        start_busy = sum(psutil.cpu_times()[:3])
        mono = time.monotonic()
        await asyncio.sleep(seconds)
        elapsed = time.monotonic() - mono
        end_wall, cpu = time.time(), api.cpu_seconds() - start_cpu
        busy = sum(psutil.cpu_times()[:3]) - start_busy
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    latencies, fps, by_path = [], [], {}
    for viewer in viewers:
        window = [(r, c) for r, c in viewer.parts if start_wall <= r <= end_wall]
        latencies += [1000 * (r - c) for r, c in window]
        fps.append(len(window) / (end_wall - start_wall))
        by_path.setdefault(viewer.path, []).append(fps[-1])
    return Measure(
        viewers=len(viewers),
        seconds=elapsed,
        cpu_percent=100 * cpu / elapsed,
        other_percent=max(0.0, 100 * (busy - cpu) / elapsed),
        latencies_ms=latencies,
        fps=fps,
        errors=[viewer.error for viewer in viewers if viewer.error],
        by_path=by_path,
    )


async def settle(seconds: float = 3.0) -> None:
    """Let the API's variants retire (2 s grace) between phases."""
    await asyncio.sleep(seconds)


def describe(name: str, m: Measure) -> str:
    return (
        f"  {name:>12}: API CPU {m.cpu_percent:5.1f}% | {m.viewers:2d} viewers at "
        f"{statistics.mean(m.fps):4.1f} fps (min {min(m.fps):4.1f}) | latency p50 "
        f"{percentile(m.latencies_ms, 0.5):5.1f} ms p95 {percentile(m.latencies_ms, 0.95):5.1f} ms"
        f" | rest of the machine {m.other_percent:4.0f}%"
        + (f" | {len(m.errors)} errors: {m.errors[0]}" if m.errors else "")
    )


async def scenarios(api: ApiProcess, stream_id: str, args) -> bool:
    same = mjpeg_path(stream_id, "", SAME)
    say(f"\n[idle] API process with nobody watching, {args.seconds:.0f} s")
    start, mono = api.cpu_seconds(), time.monotonic()
    await asyncio.sleep(args.seconds)
    idle = 100 * (api.cpu_seconds() - start) / (time.monotonic() - mono)
    say(f"  API CPU {idle:.1f}%")

    say(f"\n[one_vs_fifty] {args.rounds} rounds of 1 and 50 viewers of {same}, {args.seconds:.0f} s each")
    ones: list[Measure] = []
    fifties: list[Measure] = []
    for n in range(args.rounds):
        order = [1, 50] if n % 2 == 0 else [50, 1]  # alternate: a change in load hits both alike
        for count in order:
            m = await measure(api, [same] * count, warmup=args.warmup, seconds=args.seconds)
            (ones if count == 1 else fifties).append(m)
            say(describe(f"round {n + 1} x{count}", m))
            await settle()
    one_cpu = statistics.median(m.cpu_percent for m in ones)
    fifty_cpu = statistics.median(m.cpu_percent for m in fifties)
    ratio = fifty_cpu / one_cpu
    say(
        f"  median API CPU: 1 viewer {one_cpu:.1f}%, 50 viewers {fifty_cpu:.1f}% "
        f"-> ratio {ratio:.2f} (target <= {RATIO_TARGET})"
    )
    emit(
        {
            "bench": "viewing_one_vs_fifty",
            "variant": SAME,
            "idle_cpu_percent": round(idle, 1),
            "one_cpu_percent": round(one_cpu, 1),
            "fifty_cpu_percent": round(fifty_cpu, 1),
            "ratio": round(ratio, 3),
            "round_ratios": [
                round(f.cpu_percent / o.cpu_percent, 3) for o, f in zip(ones, fifties, strict=True)
            ],
            "fifty_fps_mean": round(statistics.mean(statistics.mean(m.fps) for m in fifties), 2),
            "fifty_fps_min": round(min(min(m.fps) for m in fifties), 2),
            "rest_of_machine_cpu_percent": round(
                statistics.median(m.other_percent for m in ones + fifties), 1
            ),
            "errors": sum(len(m.errors) for m in ones + fifties),
        }
    )

    paths = [mjpeg_path(stream_id, suffix, query) for suffix, query in FIVE]
    say(f"\n[five_variants] 50 viewers, 10 on each of {len(paths)} variants, {args.seconds:.0f} s")
    five = await measure(api, [p for p in paths for _ in range(10)], warmup=args.warmup, seconds=args.seconds)
    say(describe("5 variants", five))
    for path, rates in five.by_path.items():
        say(f"    {path}: {statistics.mean(rates):4.1f} fps per viewer")
    emit(
        {
            "bench": "viewing_five_variants",
            "variants": [{"overlay": bool(s), **q} for s, q in FIVE],
            "cpu_percent": round(five.cpu_percent, 1),
            "vs_one_viewer": round(five.cpu_percent / one_cpu, 3),
            "fps_by_variant": [round(statistics.mean(five.by_path[p]), 2) for p in paths],
            "latency_p95_ms": round(percentile(five.latencies_ms, 0.95), 1),
            "rest_of_machine_cpu_percent": round(five.other_percent, 1),
            "errors": len(five.errors),
        }
    )
    await settle()

    latencies = [v for m in fifties for v in m.latencies_ms] + five.latencies_ms
    p95 = percentile(latencies, 0.95)
    say(
        f"\n[latency] capture to delivery, {len(latencies)} parts (50-viewer rounds and 5 variants): "
        f"p50 {percentile(latencies, 0.5):.1f} ms, p95 {p95:.1f} ms, "
        f"p99 {percentile(latencies, 0.99):.1f} ms, max {max(latencies):.1f} ms "
        f"(target p95 < {P95_TARGET_MS:.0f} ms)"
    )
    emit(
        {
            "bench": "viewing_latency",
            "parts": len(latencies),
            "p50_ms": round(percentile(latencies, 0.5), 1),
            "p95_ms": round(p95, 1),
            "p99_ms": round(percentile(latencies, 0.99), 1),
            "max_ms": round(max(latencies), 1),
            "one_viewer_p95_ms": round(percentile([v for m in ones for v in m.latencies_ms], 0.95), 1),
        }
    )
    return ratio <= RATIO_TARGET and p95 < P95_TARGET_MS


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 round of 6 s windows (a smoke run)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of 1 and 50 viewers (default 3)")
    parser.add_argument("--seconds", type=float, default=15.0, help="measured seconds per phase (default 15)")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds before measuring (default 3)")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.seconds, args.warmup = 1, 6.0, 2.0
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    say(f"machine: {json.dumps(machine(opencv=cv2.__version__))}")
    CACHE.mkdir(parents=True, exist_ok=True)
    video = h264_file(CACHE / "viewing-720p-25fps-30s.mp4", width=1280, height=720, fps=25, seconds=30)
    data_dir = Path(tempfile.mkdtemp(prefix="visionaire-bench-viewing-"))
    try:
        with servers(data_dir) as endpoints:
            django_setup(endpoints, data_dir, before_migrate=register_bench_analytic, sync_seats=True)
            stream_id = stream_make(str(video))
            running = runner_start(stream_id)
            api = ApiProcess(endpoints, data_dir, free_port())
            try:
                say(f"stream {stream_id}: {video.name} (1280x720, 25 fps) RUNNING; API pid {api.process.pid}")
                ok = asyncio.run(scenarios(api, stream_id, args))
                published = running.runner.publisher.published
                say(f"\nthe runner published {published} frames in all")
            finally:
                api.stop()
                running.stop()
                cleanup(stream_id)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    say("\ntargets met" if ok else "\ntargets NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
