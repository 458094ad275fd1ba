"""The life of one stream on its node: lease, capture, pipelines, live stats.

A `StreamRunner` runs inside a long-lived Celery task (one per active stream).
It holds the stream's lease in Redis for as long as it runs, decodes frames
through a `FrameSource`, hands them to the pipelines, and writes its figures
to Redis every second. It follows the desired state in SQL: control messages
make a change take effect at once, and a periodic re-read catches any message
that was missed. Nothing a source or an analytic does can end the task; only
a stop (stream deleted or deactivated, worker shutting down) or a lost lease.
Nor can Redis being away: the stream decodes on, its figures and lease wait
for Redis to answer again, and a lease that vanished meanwhile is taken again
(live.leases).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import redis
from django.conf import settings
from django.db import DatabaseError

from analytics.plugins import Frame
from live.address_policy import address_refusal
from live.keys import starting_key
from live.leases import Lease, Refresh
from live.messages import StreamFigures, figures_write
from live.states import StreamState

from .capture import CaptureOptions, CaptureState, FrameSource
from .desired import DesiredStream, desired_stream_get
from .event_sink import event_sink
from .frames import FramePublisher
from .pipelines import PipelineHost
from .runtime_redis import RedisBackoff, runtime_redis

logger = logging.getLogger(__name__)


def capture_options() -> CaptureOptions:
    return CaptureOptions(
        open_timeout_s=settings.STREAM_OPEN_TIMEOUT_SECONDS,
        stall_timeout_s=settings.STREAM_STALL_SECONDS,
        loop_files=settings.STREAM_LOOP_FILES,
        pace_files=settings.STREAM_PACE_FILES,
        every_file_frame=settings.STREAM_EVERY_FILE_FRAME,
        backoff_initial_s=settings.STREAM_BACKOFF_INITIAL_SECONDS,
        backoff_max_s=settings.STREAM_BACKOFF_MAX_SECONDS,
        rtsp_transport=settings.RTSP_TRANSPORT,
        address_check=address_refusal,
    )


class RunnerRegistry:
    """The runners of this worker process, for control messages and shutdown."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runners: dict[str, StreamRunner] = {}

    def add(self, runner: StreamRunner) -> None:
        with self._lock:
            self._runners[runner.stream_id] = runner

    def remove(self, runner: StreamRunner) -> None:
        with self._lock:
            if self._runners.get(runner.stream_id) is runner:
                del self._runners[runner.stream_id]

    def get(self, stream_id: str) -> StreamRunner | None:
        with self._lock:
            return self._runners.get(stream_id)

    def all(self) -> list[StreamRunner]:
        with self._lock:
            return list(self._runners.values())

    def stop_all(self, timeout: float = 10.0) -> None:
        runners = self.all()
        for runner in runners:
            runner.request_stop(terminating=True)
        deadline = time.monotonic() + timeout
        for runner in runners:
            runner.finished.wait(max(0.0, deadline - time.monotonic()))

    def restart_all(self) -> None:
        for runner in self.all():
            runner.request_restart()


RUNNERS = RunnerRegistry()


@dataclass
class Totals:
    """Figures that outlive a source (an address change, a restart request)."""

    frames_decoded: int = 0
    frames_dropped: int = 0
    reconnects: int = 0
    reconnect_attempts: int = 0

    def absorb(self, source: FrameSource) -> None:
        self.frames_decoded += source.frames_decoded
        self.frames_dropped += source.frames_dropped
        self.reconnects += source.reconnects
        self.reconnect_attempts += source.reconnect_attempts


class StreamRunner:
    def __init__(
        self, stream_id: str, *, node_num: int, worker_name: str = "", client: redis.Redis | None = None
    ):
        self.stream_id = stream_id
        self.node_num = node_num
        self.client = client or runtime_redis()
        self.lease = Lease(self.client, stream_id, owner=f"node{node_num}:{worker_name or 'worker'}")
        self.finished = threading.Event()
        self._stop = threading.Event()
        self._restart = threading.Event()
        self._reload = threading.Event()
        self._terminating = False
        self._lease_lost = False  # another runner may hold the stream now
        self.state = StreamState.INITIALIZING
        self.message = "Starting"
        self.totals = Totals()
        self.source: FrameSource | None = None
        self.host: PipelineHost | None = None
        # Stats, lease refreshes and live frames: skipped for a while after Redis failed.
        self.redis_backoff = RedisBackoff(f"stream {stream_id}")
        self.publisher = FramePublisher(stream_id, backoff=self.redis_backoff)

    # -- control (any thread) ---------------------------------------------------
    def request_stop(self, *, terminating: bool = False) -> None:
        self._terminating = self._terminating or terminating
        self._stop.set()

    def request_restart(self) -> None:
        self._restart.set()

    def request_reload(self) -> None:
        self._reload.set()

    # -- the task body ----------------------------------------------------------
    def run(self) -> bool:
        """Run until stopped; False when the stream already runs (here or elsewhere)."""
        if RUNNERS.get(self.stream_id) is not None:
            # A start queued while the lease was missing (Redis lost it) finds the
            # runner that will take it again: it must not take the lease first.
            logger.info("stream %s already runs in this worker; not starting", self.stream_id)
            self._start_taken_up()
            self.finished.set()
            return False
        try:
            acquired = self.lease.acquire()
        except redis.RedisError as exc:
            logger.warning("stream %s not started: Redis unreachable (%s)", self.stream_id, exc)
            self.finished.set()
            return False  # the reconcile job starts it again once Redis answers
        self._start_taken_up()
        if not acquired:
            logger.info("stream %s already runs elsewhere (lease held); not starting", self.stream_id)
            self.finished.set()
            return False
        RUNNERS.add(self)
        logger.info("stream %s: runner started on node %s", self.stream_id, self.node_num)
        try:
            self._supervise()
        finally:
            RUNNERS.remove(self)
            # Logged while the lease is still held: once it is released another
            # runner may start, and the log must show this one ended first.
            logger.info("stream %s: runner ended", self.stream_id)
            try:
                self.lease.release()
            except redis.RedisError as exc:
                logger.warning(
                    "stream %s: lease not released (%s); it expires by itself", self.stream_id, exc
                )
            self.finished.set()
        return True

    def _start_taken_up(self) -> None:
        # This start was taken up (or found redundant): the next one may be queued.
        try:
            self.client.delete(starting_key(self.stream_id))
        except redis.RedisError as exc:
            logger.warning("stream %s: start marker not cleared (%s); it expires", self.stream_id, exc)

    def wanted_again(self) -> bool:
        """After run(): whether the stream should still run on this node. A start
        (or a stop then a start) that arrived while this runner was stopping went
        to this runner, still registered, and ended with it; the task queues the
        stream again rather than leaving it to the next reconcile."""
        if self._terminating or self._lease_lost:  # shutting down, or it runs elsewhere
            return False
        try:
            desired = desired_stream_get(self.stream_id)
        except DatabaseError:
            return False  # the reconcile job catches up
        return desired is not None and desired.active and desired.node_num == self.node_num

    def _supervise(self) -> None:
        pause = settings.STREAM_BACKOFF_INITIAL_SECONDS
        while not self._stop.is_set():
            try:
                desired = desired_stream_get(self.stream_id)
            except DatabaseError as exc:
                self._set(StreamState.ERROR, f"cannot read the stream's configuration: {exc}".strip())
                self._publish_stats(None)
                self._stop.wait(pause)
                pause = min(pause * 2, settings.STREAM_BACKOFF_MAX_SECONDS)
                continue
            if desired is None or not desired.active or desired.node_num != self.node_num:
                break
            try:
                self._session(desired)
                pause = settings.STREAM_BACKOFF_INITIAL_SECONDS
            except Exception as exc:  # a bug must not end the task: report, pause, start over
                logger.exception("stream %s: runner failed", self.stream_id)
                self._set(StreamState.ERROR, f"runner error: {type(exc).__name__}: {exc}"[:500])
                self._publish_stats(None)
                self._stop.wait(pause)
                pause = min(pause * 2, settings.STREAM_BACKOFF_MAX_SECONDS)
        self._set(StreamState.TERMINATING if self._terminating else StreamState.STOPPED, "Stream is stopped")
        if not self._lease_lost:  # the stats hash belongs to the runner that holds the lease now
            self._publish_stats(None, final=True)

    def _session(self, desired: DesiredStream) -> None:
        """Run one configuration of the stream until it changes, a restart is
        asked for, or the stream must stop."""
        self._restart.clear()
        self.source = source = FrameSource(desired.address, capture_options(), name=self.stream_id)
        self.host = host = PipelineHost(list(desired.pipelines))
        self._set(StreamState.INITIALIZING, "Connecting to the source")
        source.start()
        next_stats = next_check = time.monotonic()
        try:
            while not self._stop.is_set() and not self._restart.is_set():
                frame = source.read(timeout=0.2)
                if frame is not None:
                    self._process(host, desired, frame)
                now = time.monotonic()
                if self._reload.is_set() or now >= next_check:
                    self._reload.clear()
                    next_check = now + settings.STREAM_DESIRED_CHECK_SECONDS
                    changed = self._desired_changed(desired)
                    if changed == "stop":
                        self._stop.set()
                    elif changed == "source":
                        break  # a new session opens the new address
                    elif changed == "pipelines":
                        # Only the pipelines that changed restart; what their
                        # processors flush (events of tracks in progress) is stored
                        # as at the session's end.
                        desired = desired_stream_get(self.stream_id) or desired
                        for analytic_id, result in host.update(list(desired.pipelines)):
                            self._emit(desired, analytic_id, result.events, time.time())
                if now >= next_stats:
                    next_stats = now + settings.STREAM_STATS_SECONDS
                    self._sync_state(source)
                    if self.redis_backoff.ready():
                        # The lease first: a runner that lost it (after a freeze)
                        # must not overwrite the figures of the one that holds it now.
                        self._refresh_lease()
                        if not self._lease_lost and self.redis_backoff.ready():
                            self._publish_stats(host)
        finally:
            self._set(StreamState.TERMINATING, "Stream is stopping")
            for analytic_id, result in host.close():
                self._emit(desired, analytic_id, result.events, time.time())
            source.stop(timeout=3.0)
            self.totals.absorb(source)
            self.source = None

    # -- per frame ----------------------------------------------------------------
    def _process(self, host: PipelineHost, desired: DesiredStream, captured) -> None:
        frame = Frame(
            image=captured.image,
            timestamp=captured.timestamp,
            index=captured.index,
            stream_id=self.stream_id,
            node_num=self.node_num,
        )
        for analytic_id, result in host.process(frame):
            self.publisher.overlay(analytic_id, result.overlay, captured.timestamp, result.additional_data)
            if result.events:
                self._emit(desired, analytic_id, result.events, captured.timestamp)
        self.publisher.offer(captured.image, index=captured.index, timestamp=captured.timestamp)

    def _emit(self, desired: DesiredStream, analytic_id: str, events, timestamp: float) -> None:
        sink = event_sink()
        for record in events:
            sink.submit(record.for_stream(desired, analytic_id=analytic_id, emitted_at=timestamp))

    # -- periodic -----------------------------------------------------------------
    def _desired_changed(self, desired: DesiredStream) -> str | None:
        try:
            fresh = desired_stream_get(self.stream_id)
        except DatabaseError as exc:
            logger.warning(
                "stream %s: desired state unreadable (%s); keeping the current one", self.stream_id, exc
            )
            return None
        if fresh is None or not fresh.active or fresh.node_num != self.node_num:
            return "stop"
        if fresh.address != desired.address:
            return "source"
        if fresh.pipelines != desired.pipelines:
            return "pipelines"
        return None

    def _refresh_lease(self) -> None:
        try:
            outcome = self.lease.refresh()
        except redis.RedisError as exc:
            # Not lost: nobody else can take it while Redis is away. The stream
            # runs on; the lease is refreshed, or taken again, once Redis answers.
            self.redis_backoff.failed(exc)
            return
        self.redis_backoff.succeeded()
        if outcome is Refresh.LOST:
            # Expired (this worker was frozen or cut off from Redis) and taken by
            # another worker: stop, never run twice.
            logger.warning("stream %s: lease lost; stopping this runner", self.stream_id)
            self._lease_lost = True
            self._stop.set()
        elif outcome is Refresh.RETAKEN:
            logger.warning(
                "stream %s: lease had vanished (expired while Redis was unreachable, or Redis "
                "restarted); taken again",
                self.stream_id,
            )

    def _set(self, state: StreamState, message: str) -> None:
        self.state, self.message = state, message

    def _sync_state(self, source: FrameSource) -> None:
        mapping = {
            CaptureState.CONNECTING: StreamState.INITIALIZING,
            CaptureState.RUNNING: StreamState.RUNNING,
            CaptureState.RECONNECTING: StreamState.RECONNECTING,
            CaptureState.ENDED: StreamState.STOPPED,
            CaptureState.STOPPED: StreamState.STOPPED,
        }
        self._set(mapping[source.state], source.message)

    def _publish_stats(self, host: PipelineHost | None, *, final: bool = False) -> None:
        source = self.source
        now = time.time()
        totals = self.totals
        stats = StreamFigures(
            fps=source.fps_figure() if source and self.state == StreamState.RUNNING else 0,
            frame_width=source.width if source else 0,
            frame_height=source.height if source else 0,
            state=self.state.value,
            last_error_msg=self.message,
            frames_dropped=totals.frames_dropped + (source.frames_dropped if source else 0),
            reconnects=totals.reconnects + (source.reconnects if source else 0),
            uptime_sec=int(now - source.running_since) if source and source.running_since else 0,
            node_num=self.node_num,
            updated_at=round(now, 3),
            reconnect_attempts=totals.reconnect_attempts + (source.reconnect_attempts if source else 0),
            frames_decoded=totals.frames_decoded + (source.frames_decoded if source else 0),
            last_frame_at=round(source.last_frame_at, 3) if source else 0,
        )
        # Live figures expire soon after their runner stops refreshing them (a
        # killed worker), so the API never shows a dead stream as RUNNING; a final
        # STOPPED lasts a minute for clients to read.
        ttl = 60 if final else int(4 * settings.STREAM_STATS_SECONDS)
        try:
            figures_write(self.client, self.stream_id, stats, host.stats() if host else {}, ttl)
        except redis.RedisError as exc:
            self.redis_backoff.failed(exc)
        else:
            self.redis_backoff.succeeded()
