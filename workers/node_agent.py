"""The node agent: one daemon thread in each node's worker process.

It registers the node, writes a heartbeat with measured CPU/RAM/swap/GPU figures
to Redis every NODE_HEARTBEAT_SECONDS, and listens for control messages
(`/system/restart`). It never dies of a Redis or database fault: the error is
logged and the next beat tries again.

A restart request reaches the agent two ways: a pub/sub message (fast) and a
generation counter that every beat compares (reliable, for a message missed
while the connection was down). Both carry the same generation number, so one
request runs the restart hooks once.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import psutil
import redis
from django.conf import settings
from django.db import close_old_connections, connection

from live.keys import RESTART_CHANNEL, RESTART_GENERATION_KEY
from live.messages import GpuService, GpuStats, Heartbeat, restart_decode
from live.redis import get_redis
from platform_config.nodes import node_heartbeat_clear, node_heartbeat_write, node_register, redis_now

from .runtime_redis import RedisBackoff

logger = logging.getLogger(__name__)

RestartHook = Callable[[], None]

# --- restart hooks -----------------------------------------------------------

_hooks_lock = threading.Lock()
_restart_hooks: list[RestartHook] = []


def on_restart(callback: RestartHook) -> RestartHook:
    """Call `callback` (no arguments) when this node is asked to restart its
    stream runners. Usable as a decorator; registering twice is a no-op."""
    with _hooks_lock:
        if callback not in _restart_hooks:
            _restart_hooks.append(callback)
    return callback


def remove_restart_hook(callback: RestartHook) -> None:
    with _hooks_lock:
        if callback in _restart_hooks:
            _restart_hooks.remove(callback)


_restart_run_lock = threading.Lock()


def run_restart_hooks() -> None:
    """Run every hook once, in registration order; restarts never overlap."""
    with _hooks_lock:
        hooks = list(_restart_hooks)
    with _restart_run_lock:
        for hook in hooks:
            try:
                hook()
            except Exception:  # one failing hook must not keep the others from running
                logger.exception("restart hook %r failed", hook)


# --- GPU services ------------------------------------------------------------

_services_lock = threading.Lock()
_gpu_services: dict[int, dict[str, int]] = {}


def gpu_service_add(*, gpu_id: int, service_name: str) -> None:
    """Record that one more instance of `service_name` (e.g. a model session)
    runs on GPU `gpu_id`; reported under that GPU in /resource_stats."""
    with _services_lock:
        services = _gpu_services.setdefault(gpu_id, {})
        services[service_name] = services.get(service_name, 0) + 1


def gpu_service_remove(*, gpu_id: int, service_name: str) -> None:
    with _services_lock:
        services = _gpu_services.get(gpu_id, {})
        if services.get(service_name, 0) <= 1:
            services.pop(service_name, None)
        else:
            services[service_name] -= 1


def gpu_services(gpu_id: int) -> list[GpuService]:
    with _services_lock:
        services = dict(_gpu_services.get(gpu_id, {}))
    return [{"service_name": name, "service_number": count} for name, count in sorted(services.items())]


# --- measurements ------------------------------------------------------------


def outbound_ip() -> str:
    """The address this host uses for outbound traffic: connecting a UDP socket
    picks the route without sending anything."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.connect(("10.254.254.254", 1))
            return sock.getsockname()[0]
    except OSError:
        return "127.0.0.1"


class GpuProbe:
    """GPU figures from NVML. Initialised once; without a driver or the pynvml
    package it reports no GPUs."""

    def __init__(self) -> None:
        self._nvml = None
        self._tried = False

    def _init(self):
        if not self._tried:
            self._tried = True
            try:
                import pynvml

                pynvml.nvmlInit()
                self._nvml = pynvml
            except ImportError:
                self._nvml = None
            except Exception as exc:  # NVMLError: no driver, no device
                logger.info("no GPU statistics: %s", exc)
                self._nvml = None
        return self._nvml

    def count(self) -> int:
        nvml = self._init()
        if nvml is None:
            return 0
        try:
            return int(nvml.nvmlDeviceGetCount())
        except Exception:
            return 0

    def stats(self) -> list[GpuStats]:
        nvml = self._init()
        if nvml is None:
            return []
        gpus: list[GpuStats] = []
        try:
            for index in range(nvml.nvmlDeviceGetCount()):
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
                name = nvml.nvmlDeviceGetName(handle)
                memory = nvml.nvmlDeviceGetMemoryInfo(handle)
                gpus.append(
                    {
                        "gpu_id": index,
                        "gpu_name": name.decode() if isinstance(name, bytes) else str(name),
                        "gpu_utilization": int(nvml.nvmlDeviceGetUtilizationRates(handle).gpu),
                        "gpu_temperature": int(
                            nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU)
                        ),
                        "gpu_memory_total": int(memory.total),
                        "gpu_memory_used": int(memory.used),
                        "gpu_memory_free": int(memory.free),
                        "services": gpu_services(index),
                    }
                )
        except Exception as exc:  # NVMLError mid-read (GPU lost): report none this beat
            logger.warning("reading GPU statistics failed: %s", exc)
            return []
        return gpus

    def close(self) -> None:
        if self._nvml is not None:
            try:
                self._nvml.nvmlShutdown()
            except Exception:
                pass
        self._nvml = None
        self._tried = False


def detect_run_mode(gpu_probe: GpuProbe | None = None) -> str:
    """ "GPU" when ONNX Runtime really runs on CUDA here and NVML sees a GPU, else "CPU"."""
    from analytics.runtime import cuda_works

    if not cuda_works():
        return "CPU"
    probe = gpu_probe or GpuProbe()
    return "GPU" if probe.count() > 0 else "CPU"


# --- the agent ---------------------------------------------------------------


class NodeAgent:
    """Heartbeat and control thread of node `node_num` (see module docstring)."""

    # Upper bound on one wait for a control message, so stop() is prompt.
    POLL_SECONDS = 0.5

    def __init__(self, node_num: int, *, client: redis.Redis | None = None, register: bool = True):
        self.node_num = node_num
        self.client = client or get_redis()
        self.register = register
        self.interval = float(settings.NODE_HEARTBEAT_SECONDS)
        self.hostname = socket.gethostname()
        self.pid = os.getpid()
        self.beats = 0  # heartbeats written, for observers and tests
        self.failures = 0  # beats that failed (Redis or database down)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._gpu = GpuProbe()
        self._run_mode = "CPU"
        self._ip = "127.0.0.1"
        self._started_mono = time.monotonic()
        self._started_at: float | None = None
        self._registered = False
        self._generation_seen: int | None = None
        self._last_restart_at: float | None = None
        self._pubsub = None
        self._beat_now = threading.Event()
        self._beaten = threading.Event()  # set by the first heartbeat written
        self._restart_lock = threading.Lock()
        # Logs an outage once, not at every beat; the beats themselves go on as usual.
        self._outage = RedisBackoff(f"node {node_num} heartbeat and control")

    # lifecycle

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._started_mono = time.monotonic()
        psutil.cpu_percent(interval=None)  # the first reading only primes the counter
        self._thread = threading.Thread(target=self._run, name=f"node-agent-{self.node_num}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        thread = self._thread
        self._stop.set()
        if thread is not None:
            thread.join(timeout)
        self._thread = None
        try:
            node_heartbeat_clear(client=self.client, node_num=self.node_num)
        except redis.RedisError as exc:
            logger.warning("node %s: could not clear heartbeat: %s", self.node_num, exc)
        self._gpu.close()

    def wait_for_beat(self, timeout: float) -> bool:
        """Block until the first heartbeat is written (the node is online)."""
        return self._beaten.wait(timeout)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # the thread

    def _run(self) -> None:
        self._ip = outbound_ip()
        self._run_mode = detect_run_mode(self._gpu)
        logger.info("node %s agent started (%s, %s)", self.node_num, self._ip, self._run_mode)
        next_beat = 0.0
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                if now >= next_beat or self._beat_now.is_set():
                    self._beat_now.clear()
                    self._beat()
                    next_beat = time.monotonic() + self.interval
                wait = min(self.POLL_SECONDS, max(0.0, next_beat - time.monotonic()))
                self._poll_control(wait)
        finally:
            self._close_pubsub()
            if self.register:
                connection.close()  # this thread's own connection

    def _beat(self) -> None:
        try:
            if self.register and not self._registered:
                self._register()
            now = redis_now(self.client)
            if self._started_at is None:
                self._started_at = now - (time.monotonic() - self._started_mono)
            self._check_generation()
            node_heartbeat_write(client=self.client, heartbeat=self._measure(now))
            self.beats += 1
            self._beaten.set()
            self._outage.succeeded()
        except redis.RedisError as exc:
            self.failures += 1
            self._outage.failed(exc)
        except Exception:
            # A database fault while registering, or a bug: log it, keep beating.
            self.failures += 1
            logger.exception("node %s heartbeat failed", self.node_num)

    def _register(self) -> None:
        close_old_connections()
        try:
            node_register(node_num=self.node_num, ip_address=self._ip, started_at=datetime.now(UTC))
        finally:
            connection.close()  # do not hold a connection between beats
        self._registered = True

    def _measure(self, now: float) -> Heartbeat:
        return {
            "node_num": self.node_num,
            "ts": now,
            "started_at": float(self._started_at or now),
            "uptime_sec": time.monotonic() - self._started_mono,
            "ip_address": self._ip,
            "hostname": self.hostname,
            "pid": self.pid,
            "run_mode": self._run_mode,
            "cpu_percent": float(psutil.cpu_percent(interval=None)),
            "ram_percent": float(psutil.virtual_memory().percent),
            "swap_memory_percent": float(psutil.swap_memory().percent),
            "gpus": self._gpu.stats(),
            "last_restart_at": self._last_restart_at,
            "restart_generation": self._generation_seen or 0,
        }

    # control messages

    def _check_generation(self) -> None:
        generation = int(self.client.get(RESTART_GENERATION_KEY) or 0)
        if self._generation_seen is None or generation < self._generation_seen:
            # Requests made before this worker started are not for it; a counter
            # that went back means Redis lost its data: start counting again.
            self._generation_seen = generation
        elif generation > self._generation_seen:
            self._restart(generation, source="generation counter")

    def _poll_control(self, timeout: float) -> None:
        if self._generation_seen is None:
            # Not connected yet: subscribe only once the generation baseline is known.
            self._stop.wait(timeout)
            return
        try:
            if self._pubsub is None:
                pubsub = self.client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(RESTART_CHANNEL)
                self._pubsub = pubsub
            message = self._pubsub.get_message(timeout=timeout)
        except (redis.RedisError, OSError) as exc:
            if self._outage.down:  # the beat has said so already
                logger.debug("node %s control channel failed, resubscribing: %s", self.node_num, exc)
            else:
                logger.warning("node %s control channel failed, resubscribing: %s", self.node_num, exc)
            self._close_pubsub()
            self._stop.wait(timeout)
            return
        if message is None:
            if timeout > 0 and not self._pubsub_blocks():
                self._stop.wait(timeout)
            return
        if message.get("type") == "message" and message.get("channel") == RESTART_CHANNEL:
            generation = restart_decode(message.get("data"))
            if generation is None:
                generation = int(self.client.get(RESTART_GENERATION_KEY) or 0)
            self._restart(generation, source="control message")

    def _pubsub_blocks(self) -> bool:
        # get_message() waits for data only once the subscription is confirmed;
        # before that it returns at once, and the loop must not spin.
        return bool(self._pubsub is not None and self._pubsub.subscribed)

    def _close_pubsub(self) -> None:
        if self._pubsub is not None:
            try:
                self._pubsub.close()
            except Exception:
                pass
        self._pubsub = None

    def _restart(self, generation: int, *, source: str) -> None:
        # Any generation but the one already handled is a new request (a lower one
        # follows a reset counter); the message and the counter carry the same number.
        with self._restart_lock:
            if generation == self._generation_seen:
                return
            self._generation_seen = generation
        try:
            self._last_restart_at = redis_now(self.client)
        except redis.RedisError:
            self._last_restart_at = time.time()
        logger.info("node %s: restart %s requested (%s)", self.node_num, generation, source)
        # Hooks stop and start stream runners, which can take seconds; they run
        # beside the heartbeat so the node does not look offline meanwhile.
        threading.Thread(target=run_restart_hooks, name=f"node-restart-{generation}", daemon=True).start()
        self._beat_now.set()
