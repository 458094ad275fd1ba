"""The messages the API and the workers exchange through Redis, with their
encodings. Where they live is in `live.keys`.

JSON messages carry a version `v` (MESSAGE_VERSION); every decoder accepts a
message without it and fills fields an older writer did not send, so a worker
and an API of neighbouring versions still understand each other during an
upgrade. Live figures are Redis hashes (flat, every value a string): their
readers parse each field on its own and fall back to zero.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Literal, TypedDict

from .keys import pipeline_stats_key, stream_stats_key
from .states import PipelineState, StreamState

MESSAGE_VERSION = 1


class MalformedMessage(ValueError):
    """A message that cannot be decoded (the caller logs and ignores it)."""


def _json_object(raw: str | bytes | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def _json_encode(body: dict[str, Any]) -> str:
    return json.dumps({"v": MESSAGE_VERSION, **body})


# --- control: API -> a node's worker (live.keys.control_queue) ----------------------

ControlAction = Literal["start", "stop", "reload"]
CONTROL_ACTIONS: tuple[str, ...] = ("start", "stop", "reload")


@dataclass(frozen=True)
class ControlMessage:
    """Start, stop or reload a stream on the node that consumes the queue."""

    action: ControlAction
    stream_id: str

    def encode(self) -> str:
        return _json_encode({"action": self.action, "stream_id": self.stream_id})

    @classmethod
    def decode(cls, raw: str | bytes) -> ControlMessage:
        """MalformedMessage for anything but an object with a string stream_id
        and a known action."""
        body = _json_object(raw)
        if body is None or not isinstance(body.get("stream_id"), str):
            raise MalformedMessage(f"malformed control message {raw!r:.200}")
        if body.get("action") not in CONTROL_ACTIONS:
            raise MalformedMessage(f"control message with unknown action {body.get('action')!r:.40}")
        return cls(action=body["action"], stream_id=body["stream_id"])


# --- restart: API -> every node (live.keys.RESTART_CHANNEL, RESTART_GENERATION_KEY) --


def restart_encode(generation: int) -> str:
    """The pub/sub payload of a restart request: its generation number as text
    (the same number the generation counter holds)."""
    return str(generation)


def restart_decode(raw: Any) -> int | None:
    try:
        return int(raw)
    except (TypeError, ValueError):
        return None


# --- heartbeats: node agent -> API (live.keys.heartbeat_key) --------------------------


class GpuService(TypedDict):
    service_name: str
    service_number: int


class GpuStats(TypedDict):
    gpu_id: int
    gpu_name: str
    gpu_utilization: int
    gpu_temperature: int
    gpu_memory_total: int
    gpu_memory_used: int
    gpu_memory_free: int
    services: list[GpuService]


class Heartbeat(TypedDict):
    """What a node agent writes every beat. Times come from Redis's clock (TIME),
    so hosts whose clocks disagree are still judged correctly."""

    node_num: int
    ts: float  # Redis time of this beat, unix seconds
    started_at: float  # Redis time when the worker started
    uptime_sec: float  # measured on the worker's monotonic clock
    ip_address: str
    hostname: str
    pid: int
    run_mode: str  # "GPU" or "CPU"
    cpu_percent: float
    ram_percent: float
    swap_memory_percent: float
    gpus: list[GpuStats]
    last_restart_at: float | None
    restart_generation: int


class NodeInfo(TypedDict):
    """Last known facts about a node (live.keys.node_info_key), kept without a TTL."""

    run_mode: str
    ip_address: str


def heartbeat_encode(heartbeat: Heartbeat) -> str:
    return _json_encode(dict(heartbeat))


def node_info_encode(heartbeat: Heartbeat) -> str:
    return _json_encode({"run_mode": heartbeat["run_mode"], "ip_address": heartbeat["ip_address"]})


def heartbeat_decode(raw: str | bytes | None) -> dict[str, Any] | None:
    """A heartbeat or node info as written (fields may be missing: read with .get),
    or None when absent or unreadable."""
    return _json_object(raw)


# --- runtime report: a worker -> API (live.keys.node_runtime_key) -----------------------


class RuntimeReport(TypedDict):
    """What a worker process says about its own machinery, beside the heartbeat:
    the state of each shared model (by name, see analytics.runtime; with its running
    `figures` when it has some, e.g. a batching runtime's) and the event
    writer's counters (None before the writer has started)."""

    node_num: int
    ts: float
    models: dict[str, dict[str, Any]]
    event_writer: dict[str, Any] | None


def runtime_report_encode(report: RuntimeReport) -> str:
    return _json_encode(dict(report))


def runtime_report_decode(raw: str | bytes | None) -> RuntimeReport | None:
    body = _json_object(raw)
    if body is None:
        return None
    models = body.get("models")
    writer = body.get("event_writer")
    return RuntimeReport(
        node_num=as_int(body.get("node_num")),
        ts=as_float(body.get("ts")),
        models={name: status for name, status in (models or {}).items() if isinstance(status, dict)}
        if isinstance(models, dict)
        else {},
        event_writer=writer if isinstance(writer, dict) else None,
    )


# --- live figures: a stream's runner -> API (stream_stats_key, pipeline_stats_key) ----


def as_number(value: Any) -> float | None:
    """A figure from a hash (a string) as a finite number; None when missing or not one."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def as_float(value: Any) -> float:
    number = as_number(value)
    return 0.0 if number is None else number


def as_int(value: Any) -> int:
    return int(as_float(value))


class StreamFigures(TypedDict):
    """The stream's hash as its runner writes it every STREAM_STATS_SECONDS."""

    fps: int
    frame_width: int
    frame_height: int
    state: str  # a StreamState
    last_error_msg: str
    frames_dropped: int
    reconnects: int
    uptime_sec: int
    node_num: int
    updated_at: float
    # Beyond the API's stream_stats: for /metrics and for operators reading Redis.
    reconnect_attempts: int
    frames_decoded: int
    last_frame_at: float


class PipelineFigures(TypedDict):
    """A pipeline's hash as its runner writes it."""

    processed_fps: float
    last_latency_ms: float
    p95_latency_ms: float
    events_emitted: int
    errors: int
    state: str  # a PipelineState
    last_error: str


class StreamStats(TypedDict):
    """A stream's `stream_stats` as the API reports them."""

    fps: int
    frame_width: int
    frame_height: int
    state: str
    last_error_msg: str
    frames_dropped: int
    reconnects: int
    uptime_sec: int


def figures_write(
    client, stream_id: str, stream: StreamFigures, pipelines: dict[str, PipelineFigures], ttl_s: int
) -> None:
    """Write a stream's figures and its pipelines' in one round trip; they expire
    after `ttl_s` unless written again."""
    pipe = client.pipeline(transaction=False)
    pipe.hset(stream_stats_key(stream_id), mapping=dict(stream))
    pipe.expire(stream_stats_key(stream_id), ttl_s)
    for analytic_id, figures in pipelines.items():
        pipe.hset(pipeline_stats_key(stream_id, analytic_id), mapping=dict(figures))
        pipe.expire(pipeline_stats_key(stream_id, analytic_id), ttl_s)
    pipe.execute()


def stream_stats_read(raw: dict[str, str], *, active: bool, node_num: int) -> StreamStats:
    """The API's stream_stats from the stream's hash. Before any runtime has written
    it: STOPPED for an inactive stream, else INITIALIZING."""
    if raw:
        state, message = raw.get("state") or StreamState.INITIALIZING, raw.get("last_error_msg", "")
    elif not active:
        state, message = StreamState.STOPPED, "Stream is stopped"
    else:
        state, message = StreamState.INITIALIZING, f"Waiting for node {node_num} to start the stream"
    return StreamStats(
        fps=as_int(raw.get("fps")),
        frame_width=as_int(raw.get("frame_width")),
        frame_height=as_int(raw.get("frame_height")),
        state=str(state),
        last_error_msg=message,
        frames_dropped=as_int(raw.get("frames_dropped")),
        reconnects=as_int(raw.get("reconnects")),
        uptime_sec=as_int(raw.get("uptime_sec")),
    )


def pipeline_stats_read(raw: dict[str, str]) -> PipelineFigures:
    """A pipeline's figures from its hash; zeros and PENDING until written."""
    return PipelineFigures(
        processed_fps=as_float(raw.get("processed_fps")),
        last_latency_ms=as_float(raw.get("last_latency_ms")),
        p95_latency_ms=as_float(raw.get("p95_latency_ms")),
        events_emitted=as_int(raw.get("events_emitted")),
        errors=as_int(raw.get("errors")),
        state=raw.get("state") or str(PipelineState.PENDING),
        last_error=raw.get("last_error", ""),
    )
